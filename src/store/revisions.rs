//! Events revised in place after they were first stored (a late weather re-join): the record
//! and its vector are replaced under the same sequence number, and the revision log says which
//! sequence numbers changed when, so an index snapshot written before a revision is corrected.

use std::sync::atomic::Ordering;

use rocksdb::{Direction, IteratorMode, WriteBatch};

use super::keys::vector_key;
use super::{Family, NewEvent, Store, StoreError, StoreOp, decode_json, decode_u64};

/// Weather versions `(station, valid from ms, daily summary)` stored whose re-join has not been
/// committed yet.
const META_PENDING_REJOIN: &[u8] = b"pending_rejoin";

impl StoreOp {
    /// Records weather versions whose re-join is still to run, written with the observations,
    /// so a crash between the two commits leaves the work on record instead of losing it.
    pub fn pending_rejoin(versions: &[(u32, i64, bool)]) -> Result<Self, StoreError> {
        Ok(Self::put(
            Family::Meta,
            META_PENDING_REJOIN,
            serde_json::to_vec(versions)?,
        ))
    }

    /// Clears that record, written with the re-join's revisions.
    pub fn rejoin_done() -> Self {
        Self::delete(Family::Meta, META_PENDING_REJOIN)
    }
}

impl Store {
    /// Replaces stored events (same id, same sequence number) and their vectors, logs each as a
    /// revision and queues it for the Weaviate mirror, with `extra` writes, in one atomic batch.
    /// Callers serialise writers (the pipeline's lock), so revision numbers are dense.
    pub fn revise_events_with(
        &self,
        seqs: &[u64],
        revised: &[NewEvent],
        extra: &[StoreOp],
    ) -> Result<(), StoreError> {
        self.write_changes(&[], (seqs, revised), &[], extra)?;
        Ok(())
    }

    /// Puts revised events into `batch`, numbered from `first`; returns how many.
    pub(super) fn put_revisions(
        &self,
        batch: &mut WriteBatch,
        first: u64,
        (seqs, revised): (&[u64], &[NewEvent]),
    ) -> Result<u64, StoreError> {
        let mirror = self.mirror.load(Ordering::Acquire);
        let mut count = 0;
        for (offset, (seq, new)) in seqs.iter().zip(revised).enumerate() {
            let model = new.event.model_version.as_deref().unwrap_or_default();
            batch.put_cf(
                self.cf(Family::Events)?,
                new.event.event_id.as_bytes(),
                serde_json::to_vec(&new.event)?,
            );
            batch.put_cf(
                self.cf(Family::Vectors)?,
                vector_key(*seq, model),
                super::events::encode_vector(model, &new.event.event_id, &new.vector),
            );
            if mirror {
                batch.put_cf(
                    self.cf(Family::MirrorOutbox)?,
                    vector_key(*seq, model),
                    super::outbox::queue_mark(),
                );
            }
            let revision = first + offset as u64;
            batch.put_cf(
                self.cf(Family::Revisions)?,
                revision.to_be_bytes(),
                seq.to_be_bytes(),
            );
            count += 1;
        }
        Ok(count)
    }

    /// Weather versions whose re-join was recorded and not committed (see
    /// [`StoreOp::pending_rejoin`]).
    pub fn pending_rejoin(&self) -> Result<Vec<(u32, i64, bool)>, StoreError> {
        self.meta(META_PENDING_REJOIN)?
            .map_or(Ok(Vec::new()), |bytes| decode_json(Family::Meta, &bytes))
    }

    /// The revision number the next revised event will get.
    pub fn next_revision(&self) -> u64 {
        self.next_revision.load(Ordering::Acquire)
    }

    /// The sequence numbers revised from revision `first` on, in revision order (a sequence
    /// number revised twice appears twice).
    pub fn revised_from(&self, first: u64) -> Result<Vec<u64>, StoreError> {
        let start = first.to_be_bytes();
        let mode = IteratorMode::From(&start, Direction::Forward);
        let mut seqs = Vec::new();
        for item in self.db.iterator_cf(self.cf(Family::Revisions)?, mode) {
            let (_, value) = item?;
            seqs.push(decode_u64(Family::Revisions, &value)?);
        }
        Ok(seqs)
    }
}

//! The two outboxes, each written in the same atomic batch as the change it publishes and
//! emptied only after the peer acknowledged:
//! - the Weaviate mirror's is a *set* of vectors to send, keyed by the vector's own key (a vector
//!   written twice before it is sent is sent once, as it is now). Each entry's value is the mark
//!   it was queued with (a clock reading), and settling an entry removes it only while it holds
//!   the mark the mirror read: a vector queued again while its earlier copy was being sent (a
//!   revision, a deletion) stays queued, so the newer state is sent too;
//! - the Kafka output's is an ordered *log* of records (`OutRecord`, encoded by `stream::kafka`),
//!   keyed by a sequence number, since records must leave in the order they were made.

use std::sync::atomic::Ordering;

use rocksdb::{IteratorMode, WriteBatch};

use super::keys::vector_key;
use super::{Family, KeyValue, Store, StoreError, StoreOp, decode_u64};

/// A queued mirror entry: the vector (sequence number and model) and the mark it was queued
/// with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    /// The event's sequence number.
    pub seq: u64,
    /// The vector's model, or [`super::deletions::DELETION`] for a deleted event.
    pub model: String,
    mark: Vec<u8>,
}

/// The mark of an entry queued now: the clock in nanoseconds. Writes are serialised and take
/// far longer than a nanosecond, so an entry queued again never gets the mark it had.
pub(super) fn queue_mark() -> [u8; 8] {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    nanos.to_be_bytes()
}

impl Store {
    /// From now on, queue every vector written for the Weaviate mirror (same write batch).
    pub fn enable_mirror_outbox(&self) {
        self.mirror.store(true, Ordering::Release);
    }

    /// Queues every stored vector of `model` for the mirror, once per store and model: a
    /// mirror switched on for a store that already holds events sends those too.
    pub fn backfill_outbox(&self, model: &str) -> Result<usize, StoreError> {
        let done = format!("mirror_backfilled:{model}").into_bytes();
        if self.meta(&done)?.is_some() {
            return Ok(0);
        }
        let mut queued = 0;
        let mut batch = WriteBatch::default();
        for stored in self.vectors()? {
            let stored = stored?;
            if stored.model_version == model {
                batch.put_cf(
                    self.cf(Family::MirrorOutbox)?,
                    vector_key(stored.seq, model),
                    queue_mark(),
                );
                queued += 1;
            }
            if batch.len() >= 10_000 {
                let _queue = self.mirror_queue();
                self.commit(std::mem::take(&mut batch))?;
            }
        }
        batch.put_cf(self.cf(Family::Meta)?, done, []);
        let _queue = self.mirror_queue();
        self.commit(batch)?;
        Ok(queued)
    }

    /// Up to `limit` queued mirror entries, oldest sequence number first.
    pub fn outbox_batch(&self, limit: usize) -> Result<Vec<Queued>, StoreError> {
        let mut out = Vec::with_capacity(limit.min(4096));
        for item in self
            .db
            .iterator_cf(self.cf(Family::MirrorOutbox)?, IteratorMode::Start)
            .take(limit)
        {
            let (key, mark) = item?;
            let (seq, model) = key.split_at_checked(8).ok_or_else(|| StoreError::Corrupt {
                cf: Family::MirrorOutbox.name(),
                reason: format!("key of {} bytes", key.len()),
            })?;
            let model = String::from_utf8(model.to_vec()).map_err(|_| StoreError::Corrupt {
                cf: Family::MirrorOutbox.name(),
                reason: "model name is not UTF-8".to_owned(),
            })?;
            out.push(Queued {
                seq: decode_u64(Family::MirrorOutbox, seq)?,
                model,
                mark: mark.to_vec(),
            });
        }
        Ok(out)
    }

    /// Vectors queued for the mirror: counted exactly up to `exact_up_to`, and from RocksDB's
    /// key estimate beyond (a backlog that large is an outage, and counting it on every scrape
    /// would cost more than the figure is worth).
    pub fn mirror_outbox_depth(&self, exact_up_to: usize) -> Result<u64, StoreError> {
        let cf = self.cf(Family::MirrorOutbox)?;
        // The estimate first: a backlog far past the bound is not walked on every scrape.
        let estimate = self
            .db
            .property_int_value_cf(cf, "rocksdb.estimate-num-keys")?
            .unwrap_or(0);
        if estimate > 2 * exact_up_to as u64 {
            return Ok(estimate);
        }
        let mut counted = 0_usize;
        for item in self.db.iterator_cf(cf, IteratorMode::Start) {
            item?;
            counted += 1;
            if counted > exact_up_to {
                return Ok(estimate.max(counted as u64));
            }
        }
        Ok(counted as u64)
    }

    /// Removes delivered entries from the outbox, each only while it holds the mark it was read
    /// with (see the module's note); returns how many stay queued because they were queued again.
    pub fn outbox_remove(&self, entries: &[Queued]) -> Result<usize, StoreError> {
        let cf = self.cf(Family::MirrorOutbox)?;
        let _queue = self.mirror_queue();
        let mut batch = WriteBatch::default();
        let mut requeued = 0;
        for entry in entries {
            let key = vector_key(entry.seq, &entry.model);
            match self.db.get_pinned_cf(cf, &key)? {
                Some(mark) if *mark == *entry.mark => batch.delete_cf(cf, key),
                Some(_) => requeued += 1,
                None => {}
            }
        }
        self.commit(batch)?;
        Ok(requeued)
    }

    /// Held while entries are queued or settled, so settling compares and removes at once.
    pub(super) fn mirror_queue(&self) -> std::sync::MutexGuard<'_, ()> {
        self.mirror_queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Store {
    /// The sequence number of the newest Kafka outbox entry, if any.
    pub fn last_outbox_seq(&self) -> Result<Option<u64>, StoreError> {
        self.last_key(Family::StreamOutbox)?
            .map(|key| decode_u64(Family::StreamOutbox, &key))
            .transpose()
    }

    /// Kafka outbox records not yet acknowledged, counted from the oldest sequence still queued
    /// to the newest (records leave in order, so the range holds only the few acknowledged out of
    /// order across partitions).
    pub fn kafka_outbox_depth(&self) -> Result<u64, StoreError> {
        let (Some(first), Some(last)) = (
            self.first_key(Family::StreamOutbox)?,
            self.last_key(Family::StreamOutbox)?,
        ) else {
            return Ok(0);
        };
        let first = decode_u64(Family::StreamOutbox, &first)?;
        let last = decode_u64(Family::StreamOutbox, &last)?;
        Ok(last.saturating_sub(first) + 1)
    }

    /// Up to `limit` Kafka outbox entries from sequence `from` on, oldest first, as
    /// `(seq, encoded record)`.
    pub fn outbox_records(
        &self,
        from: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.scan(Family::StreamOutbox, &[], &from.to_be_bytes(), limit)?
            .into_iter()
            .map(|(key, value): KeyValue| Ok((decode_u64(Family::StreamOutbox, &key)?, value)))
            .collect()
    }
}

impl StoreOp {
    /// The write that queues an encoded output record under `seq` in the Kafka outbox.
    pub fn outbox_record(seq: u64, record: Vec<u8>) -> Self {
        Self::put(Family::StreamOutbox, seq.to_be_bytes(), record)
    }

    /// The write that removes an acknowledged Kafka outbox entry.
    pub fn outbox_delivered(seq: u64) -> Self {
        Self::delete(Family::StreamOutbox, seq.to_be_bytes())
    }
}

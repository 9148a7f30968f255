//! Events deleted because their source row was (a Debezium delete, or an update that moved a
//! detection to another id), and the map from source rows to the events they are stored as
//! and back.
//!
//! A deletion removes the record, its time-index entry, its id and every model's vector in the
//! same batch as the change that caused it, and leaves two traces: `deleted` (sequence number →
//! event id), which the Weaviate mirror and the search index read to drop the object, and a
//! revision entry, so an index snapshot written before the deletion drops the point at load.

use rocksdb::WriteBatch;

use super::keys::{event_row_key, event_row_prefix, source_row_key, time_key, vector_key};
use super::{Family, Store, StoreError, StoreOp};

/// The mirror outbox's entry for a deleted event, in place of a model's name: no model is
/// named so (they are `name@version`).
pub const DELETION: &str = "!deleted";

/// A stored event to delete, with what its deletion removes.
#[derive(Debug, Clone, PartialEq)]
pub struct Deletion {
    /// Its vector sequence number (the index's point).
    pub seq: u64,
    /// Its id.
    pub event_id: String,
    /// Its detection time (its time-index key).
    pub detection_time: i64,
    /// The models it has a vector of.
    pub models: Vec<String>,
}

impl StoreOp {
    /// Records that the row `row` of source `source` is stored as event `event_id` (both ways).
    pub fn source_row(source: &str, row: &str, event_id: &str) -> [Self; 2] {
        [
            Self::put(
                Family::SourceRows,
                source_row_key(source, row),
                event_id.as_bytes(),
            ),
            Self::put(Family::EventRows, event_row_key(event_id, source, row), []),
        ]
    }

    /// Records that the row `row` of source `source` no longer holds event `event_id` (it was
    /// deleted, or now holds another).
    pub fn source_row_left(source: &str, row: &str, event_id: &str) -> Self {
        Self::delete(Family::EventRows, event_row_key(event_id, source, row))
    }

    /// Forgets the row `row` of source `source` (it was deleted).
    pub fn source_row_gone(source: &str, row: &str) -> Self {
        Self::delete(Family::SourceRows, source_row_key(source, row))
    }
}

impl Store {
    /// The event the row `row` of source `source` is stored as.
    pub fn source_row(&self, source: &str, row: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .db
            .get_pinned_cf(self.cf(Family::SourceRows)?, source_row_key(source, row))?
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned()))
    }

    /// The source rows stored as event `event_id`: `(source, row key)`.
    pub fn rows_of_event(&self, event_id: &str) -> Result<Vec<(String, String)>, StoreError> {
        let prefix = event_row_prefix(event_id);
        let mut out = Vec::new();
        for item in self.db.iterator_cf(
            self.cf(Family::EventRows)?,
            rocksdb::IteratorMode::From(&prefix, rocksdb::Direction::Forward),
        ) {
            let (key, _) = item?;
            let Some(rest) = key.strip_prefix(prefix.as_slice()) else {
                break;
            };
            let text = String::from_utf8_lossy(rest);
            if let Some((source, row)) = text.split_once('\0') {
                out.push((source.to_owned(), row.to_owned()));
            }
        }
        Ok(out)
    }

    /// What deleting the stored event `event_id` removes; `None` when it is not stored.
    pub fn deletion(&self, event_id: &str) -> Result<Option<Deletion>, StoreError> {
        let (Some(seq), Some(event)) = (self.seq_of(event_id)?, self.event(event_id)?) else {
            return Ok(None);
        };
        let models = self
            .vectors_of(seq)?
            .into_iter()
            .map(|v| v.model_version)
            .collect();
        Ok(Some(Deletion {
            seq,
            event_id: event_id.to_owned(),
            detection_time: event.detection_time,
            models,
        }))
    }

    /// The id of the event deleted from sequence number `seq`, if one was.
    pub fn deleted_event(&self, seq: u64) -> Result<Option<String>, StoreError> {
        Ok(self
            .db
            .get_pinned_cf(self.cf(Family::Deleted)?, seq.to_be_bytes())?
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned()))
    }

    /// Puts the deletions into `batch`, their revision entries numbered from `first_revision`.
    pub(super) fn put_deletions(
        &self,
        batch: &mut WriteBatch,
        first_revision: u64,
        deleted: &[Deletion],
    ) -> Result<(), StoreError> {
        let mirror = self.mirror.load(std::sync::atomic::Ordering::Acquire);
        for (offset, gone) in deleted.iter().enumerate() {
            let id = gone.event_id.as_bytes();
            batch.delete_cf(self.cf(Family::Events)?, id);
            batch.delete_cf(
                self.cf(Family::EventsByTime)?,
                time_key(gone.detection_time, &gone.event_id),
            );
            batch.delete_cf(self.cf(Family::IdMap)?, id);
            for model in &gone.models {
                batch.delete_cf(self.cf(Family::Vectors)?, vector_key(gone.seq, model));
            }
            // Its own outbox entry, not a model's: the mirror sends it even when the event's
            // upsert was in flight as it was deleted.
            if mirror {
                batch.put_cf(
                    self.cf(Family::MirrorOutbox)?,
                    vector_key(gone.seq, DELETION),
                    super::outbox::queue_mark(),
                );
            }
            batch.put_cf(self.cf(Family::Deleted)?, gone.seq.to_be_bytes(), id);
            let revision = first_revision + offset as u64;
            batch.put_cf(
                self.cf(Family::Revisions)?,
                revision.to_be_bytes(),
                gone.seq.to_be_bytes(),
            );
        }
        Ok(())
    }
}

//! The two outboxes, each written in the same atomic batch as the change it publishes and
//! emptied only after the peer acknowledged:
//! - the Weaviate mirror's is a *set* of vectors to send, keyed by the vector's own key (a vector
//!   written twice before it is sent is sent once, as it is now);
//! - the Kafka output's is an ordered *log* of records (`OutRecord`, encoded by `stream::kafka`),
//!   keyed by a sequence number, since records must leave in the order they were made.

use std::sync::atomic::Ordering;

use rocksdb::{IteratorMode, WriteBatch};

use super::keys::vector_key;
use super::{Family, KeyValue, Store, StoreError, StoreOp, decode_u64};

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
                    [],
                );
                queued += 1;
            }
            if batch.len() >= 10_000 {
                self.commit(std::mem::take(&mut batch))?;
            }
        }
        batch.put_cf(self.cf(Family::Meta)?, done, []);
        self.commit(batch)?;
        Ok(queued)
    }

    /// Up to `limit` queued mirror entries, oldest sequence number first: `(seq, model)`.
    pub fn outbox_batch(&self, limit: usize) -> Result<Vec<(u64, String)>, StoreError> {
        let mut out = Vec::with_capacity(limit.min(4096));
        for item in self
            .db
            .iterator_cf(self.cf(Family::MirrorOutbox)?, IteratorMode::Start)
            .take(limit)
        {
            let (key, _) = item?;
            let (seq, model) = key.split_at_checked(8).ok_or_else(|| StoreError::Corrupt {
                cf: Family::MirrorOutbox.name(),
                reason: format!("key of {} bytes", key.len()),
            })?;
            let model = String::from_utf8(model.to_vec()).map_err(|_| StoreError::Corrupt {
                cf: Family::MirrorOutbox.name(),
                reason: "model name is not UTF-8".to_owned(),
            })?;
            out.push((decode_u64(Family::MirrorOutbox, seq)?, model));
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

    /// Removes delivered entries from the outbox.
    pub fn outbox_remove(&self, entries: &[(u64, String)]) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        for (seq, model) in entries {
            batch.delete_cf(self.cf(Family::MirrorOutbox)?, vector_key(*seq, model));
        }
        self.commit(batch)?;
        Ok(())
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

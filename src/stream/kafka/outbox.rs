//! The transactional outbox: output records written in the same RocksDB batch as the state and
//! input offsets that produced them (the store keeps them; this file hands out their sequence
//! numbers; what a record is and its bytes are `firesight_core::outbox_record`).
//!
//! An outbox entry is removed only after the broker acknowledged it, so a crash at any moment
//! either loses nothing (the entry is still there and is sent again, byte for byte) or never
//! happened (the whole batch, offsets included, is absent and the inputs are read again).

use std::sync::atomic::{AtomicU64, Ordering};

pub use firesight_core::outbox_record::OutRecord;

use crate::store::{Store, StoreError, StoreOp};

/// Hands out outbox sequence numbers (continuing after the last entry at open) and reads the
/// consumer's stored offsets.
pub struct Outbox {
    next: AtomicU64,
    /// Entries below this sequence may be published: their events are in the index as well as
    /// in the store (the index is written just after the batch commits).
    visible: AtomicU64,
}

impl Outbox {
    /// Continues after the newest entry still in the store.
    pub fn open(store: &Store) -> Result<Self, StoreError> {
        let next = store.last_outbox_seq()?.map_or(0, |seq| seq + 1);
        // At open every entry is visible: the index was rebuilt from the store before streaming.
        Ok(Self {
            next: AtomicU64::new(next),
            visible: AtomicU64::new(next),
        })
    }

    /// Makes every entry queued so far publishable; called once a run's writes (store and
    /// index) are all done.
    pub fn release(&self) {
        self.visible
            .store(self.next.load(Ordering::Acquire), Ordering::Release);
    }

    /// The first sequence not yet publishable.
    pub fn visible(&self) -> u64 {
        self.visible.load(Ordering::Acquire)
    }

    /// The write that queues `record`.
    pub fn push(&self, record: &OutRecord) -> StoreOp {
        let seq = self.next.fetch_add(1, Ordering::AcqRel);
        StoreOp::outbox_record(seq, record.encode())
    }

    /// Up to `limit` queued records from sequence `from` on, oldest first.
    pub fn pending(
        store: &Store,
        from: u64,
        limit: usize,
    ) -> Result<Vec<(u64, OutRecord)>, StoreError> {
        store
            .outbox_records(from, limit)?
            .into_iter()
            .map(|(seq, value)| {
                let record = OutRecord::decode(&value).map_err(|reason| StoreError::Corrupt {
                    cf: "stream_outbox",
                    reason: format!("entry {seq}: {reason}"),
                })?;
                Ok((seq, record))
            })
            .collect()
    }

    /// The writes that remove acknowledged entries.
    pub fn acknowledge(seqs: &[u64]) -> Vec<StoreOp> {
        seqs.iter()
            .map(|&seq| StoreOp::outbox_delivered(seq))
            .collect()
    }
}

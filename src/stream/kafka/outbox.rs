//! The transactional outbox: output records written in the same RocksDB batch as the state and
//! input offsets that produced them (the store keeps them; this file hands out their sequence
//! numbers; what a record is and its bytes are `firesight_core::outbox_record`).
//!
//! An outbox entry is removed only after the broker acknowledged it, so a crash at any moment
//! either loses nothing (the entry is still there and is sent again, byte for byte) or never
//! happened (the whole batch, offsets included, is absent and the inputs are read again).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

pub use firesight_core::outbox_record::OutRecord;
use prometheus::Histogram;

use crate::store::{Store, StoreError, StoreOp};

/// Hands out outbox sequence numbers (continuing after the last entry at open) and reads the
/// consumer's stored offsets.
pub struct Outbox {
    next: AtomicU64,
    /// Entries below this sequence may be published: their events are in the index as well as
    /// in the store (the index is written just after the batch commits).
    visible: AtomicU64,
    /// Released stretches of entries with the receipt of the oldest input behind each, timed
    /// to the broker's acknowledgement (`latency`); at most [`MAX_STRETCHES`], oldest dropped.
    stretches: Mutex<VecDeque<Stretch>>,
    latency: Histogram,
}

/// Entries `from..to`, released together, and when the oldest input behind them was received.
struct Stretch {
    from: u64,
    to: u64,
    received: Instant,
}

/// Released stretches remembered for timing; one per batch, so an outage of hours at a batch a
/// second stays within it, and what falls out is only left untimed.
const MAX_STRETCHES: usize = 100_000;

impl Outbox {
    /// Continues after the newest entry still in the store; acknowledged entries are timed into
    /// `latency` from their input's receipt.
    pub fn open(store: &Store, latency: Histogram) -> Result<Self, StoreError> {
        let next = store.last_outbox_seq()?.map_or(0, |seq| seq + 1);
        // At open every entry is visible: the index was rebuilt from the store before streaming.
        Ok(Self {
            next: AtomicU64::new(next),
            visible: AtomicU64::new(next),
            stretches: Mutex::new(VecDeque::new()),
            latency,
        })
    }

    /// The first sequence not handed out yet: a batch's entries are all below it once the
    /// batch is written.
    pub fn queued(&self) -> u64 {
        self.next.load(Ordering::Acquire)
    }

    /// Makes every entry queued so far publishable; called once a run's writes (store and
    /// index) are all done and no insert of an earlier run is still going on.
    pub fn release(&self) {
        self.release_to(self.queued(), None);
    }

    /// Makes the entries below `to` publishable (never fewer than already are), once their
    /// events are stored and indexed; with `received`, the receipt of the oldest input behind
    /// the entries released now, they are timed to their acknowledgement.
    pub fn release_to(&self, to: u64, received: Option<Instant>) {
        let from = self.visible.fetch_max(to, Ordering::AcqRel);
        if let Some(received) = received
            && to > from
        {
            let mut stretches = self
                .stretches
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if stretches.len() >= MAX_STRETCHES {
                stretches.pop_front();
            }
            stretches.push_back(Stretch { from, to, received });
        }
    }

    /// Times entries the broker acknowledged from their input's receipt; stretches wholly below
    /// `settled` (every entry before it acknowledged) are forgotten.
    pub fn time_acknowledged(&self, seqs: &[u64], settled: Option<u64>) {
        let mut stretches = self
            .stretches
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for &seq in seqs {
            let i = stretches.partition_point(|s| s.to <= seq);
            if let Some(stretch) = stretches.get(i)
                && stretch.from <= seq
            {
                self.latency
                    .observe(stretch.received.elapsed().as_secs_f64());
            }
        }
        if let Some(settled) = settled {
            while stretches.front().is_some_and(|s| s.to <= settled) {
                stretches.pop_front();
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn histogram() -> Histogram {
        Histogram::with_opts(prometheus::HistogramOpts::new("t", "t")).expect("histogram")
    }

    #[test]
    fn only_entries_released_with_a_receipt_are_timed_and_settled_stretches_are_forgotten() {
        let dir = tempfile::TempDir::new().expect("tmp");
        let store = Store::open(dir.path()).expect("store");
        let latency = histogram();
        let outbox = Outbox::open(&store, latency.clone()).expect("outbox");
        let record = OutRecord {
            topic: "t".into(),
            partition: None,
            key: None,
            payload: b"x".to_vec(),
            headers: Vec::new(),
        };
        // Three entries released without a receipt (an idle close), then two with one.
        (0..3).for_each(|_| drop(outbox.push(&record)));
        outbox.release();
        (0..2).for_each(|_| drop(outbox.push(&record)));
        outbox.release_to(outbox.queued(), Some(Instant::now()));
        assert_eq!(outbox.visible(), 5);
        // A release never makes fewer entries publishable.
        outbox.release_to(1, Some(Instant::now()));
        assert_eq!(outbox.visible(), 5);
        outbox.time_acknowledged(&[0, 1, 2], None);
        assert_eq!(latency.get_sample_count(), 0, "entries of no receipt");
        outbox.time_acknowledged(&[3], None);
        assert_eq!(latency.get_sample_count(), 1);
        // Everything before 5 acknowledged: the stretch is forgotten, a late copy not timed.
        outbox.time_acknowledged(&[4], Some(5));
        assert_eq!(latency.get_sample_count(), 2);
        outbox.time_acknowledged(&[4], None);
        assert_eq!(latency.get_sample_count(), 2);
        assert!(outbox.stretches.lock().expect("lock").is_empty());
    }
}

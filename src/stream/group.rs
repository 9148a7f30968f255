//! Group commit of live detection batches.
//!
//! Live bodies that arrive while the writer lock is busy used to be written one at a time, each
//! paying a batch's fixed costs (the synced store write, the tracker's reads and rewrites of
//! the incidents it touches, the index's per-batch work): at 5,000 detections/s in bodies of 50
//! the service kept up with half of that. Now a live batch joins a queue before it waits for
//! the lock, and whichever live writer gets the lock takes every batch queued by then (up to a
//! cap) and writes them as one, then hands each batch its own tally. A batch that finds the lock
//! free is written alone at once, so an idle service adds no delay; the busier it is, the larger
//! the groups (small batches when idle, large ones when behind).
//!
//! A group that fails is written again one batch at a time, so a batch with a record a stage
//! fails on fails alone, as it would have without the group. Every batch in a group is answered
//! even when the writer panics outside the stages' own guard.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use firesight_core::event::FireDetection;

use super::IngestOutcome;
use super::pipeline::PipelineError;

/// A batch of detections as `(line, detection)`.
pub type Batch = Vec<(u64, FireDetection)>;

/// One live batch waiting to be written, and its answer once it is.
#[derive(Debug)]
pub struct Member {
    /// The records, taken by the writer that writes them.
    batch: Mutex<Option<Batch>>,
    /// How many records, for the group's cap.
    records: usize,
    answer: Mutex<Option<Result<IngestOutcome, PipelineError>>>,
    /// Set, under the writer lock, once `answer` holds the answer.
    served: AtomicBool,
}

impl Member {
    /// Whether a writer has written this batch (see `WriterLock::lock_unless`).
    pub fn served(&self) -> &AtomicBool {
        &self.served
    }

    /// The answer. Only `None` if asked before [`Member::served`] is set, which the caller
    /// never does; answered as a failed batch then rather than panicking.
    pub fn answer(&self) -> Result<IngestOutcome, PipelineError> {
        self.answer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .unwrap_or_else(|| Err(lost("the batch was not answered by its group")))
    }

    fn finish(&self, answer: Result<IngestOutcome, PipelineError>) {
        *self.answer.lock().unwrap_or_else(PoisonError::into_inner) = Some(answer);
        self.served.store(true, Ordering::Release);
    }

    fn take_batch(&self) -> Batch {
        self.batch
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .unwrap_or_default()
    }
}

fn lost(message: &str) -> PipelineError {
    PipelineError::Panicked {
        stage: "detections",
        message: message.to_owned(),
    }
}

/// The live batches waiting for the writer lock, oldest first.
#[derive(Debug, Default)]
pub struct LiveGroups {
    queue: Mutex<VecDeque<Arc<Member>>>,
}

impl LiveGroups {
    /// Queues a batch; the caller then waits for the lock or for another writer to serve it.
    pub fn join(&self, batch: Batch) -> Arc<Member> {
        let member = Arc::new(Member {
            records: batch.len(),
            batch: Mutex::new(Some(batch)),
            answer: Mutex::new(None),
            served: AtomicBool::new(false),
        });
        self.queue().push_back(Arc::clone(&member));
        member
    }

    /// Called by the writer of `own` once it holds the lock: `own` and the batches queued before
    /// and after it, oldest first, while the group stays within `max_records` records (`own` is
    /// always in it). The rest stay queued for the next writer.
    pub fn take(&self, own: &Arc<Member>, max_records: usize) -> Vec<Arc<Member>> {
        let mut queue = self.queue();
        let mut records = own.records;
        let mut group = Vec::new();
        let mut rest = VecDeque::with_capacity(queue.len());
        for member in queue.drain(..) {
            if Arc::ptr_eq(&member, own) {
                group.push(member);
            } else if records.saturating_add(member.records) <= max_records {
                records += member.records;
                group.push(member);
            } else {
                rest.push_back(member);
            }
        }
        if !group.iter().any(|m| Arc::ptr_eq(m, own)) {
            group.push(Arc::clone(own));
        }
        *queue = rest;
        group
    }

    /// Batches waiting.
    pub fn len(&self) -> usize {
        self.queue().len()
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, VecDeque<Arc<Member>>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Answers every member it was made with that is still unanswered when it goes, so a writer
/// that unwinds cannot leave a batch waiting for ever.
struct AnswerAll<'a>(&'a [Arc<Member>]);

impl Drop for AnswerAll<'_> {
    fn drop(&mut self) {
        for member in self.0 {
            if !member.served.load(Ordering::Acquire) {
                member.finish(Err(lost("the writer of its group failed")));
            }
        }
    }
}

/// Writes `group` (under the writer lock, which the caller holds) and answers each member:
/// all batches at once through `together`, which returns the whole group's tally and the ids of
/// the events it stored; when that fails, each batch alone through `alone`.
pub fn write(
    group: &[Arc<Member>],
    together: impl FnOnce(Batch) -> Result<(IngestOutcome, HashSet<String>), PipelineError>,
    alone: impl Fn(Batch) -> Result<IngestOutcome, PipelineError>,
) {
    let _answer_all = AnswerAll(group);
    if let [only] = group {
        only.finish(alone(only.take_batch()));
        return;
    }
    let batches: Vec<Batch> = group.iter().map(|m| m.take_batch()).collect();
    let ids: Vec<Vec<String>> = batches
        .iter()
        .map(|b| b.iter().map(|(_, d)| d.event_id()).collect())
        .collect();
    let combined: Batch = batches.iter().flatten().cloned().collect();
    match together(combined) {
        Ok((_, stored)) => {
            for (member, tally) in group.iter().zip(split(&ids, &stored)) {
                member.finish(Ok(tally));
            }
        }
        Err(error) => {
            tracing::warn!(batches = group.len(), %error, "A group of live batches failed; writing each alone.");
            for (member, batch) in group.iter().zip(batches) {
                member.finish(alone(batch));
            }
        }
    }
}

/// Each batch's tally from the ids of its records (in order, batch by batch) and the ids the
/// group stored: a stored id counts as accepted for the first record that carries it, as it
/// would have had the batches been written one after another; every other record is a
/// duplicate (within the group, or of an event stored before).
fn split(ids: &[Vec<String>], stored: &HashSet<String>) -> Vec<IngestOutcome> {
    let mut claimed: HashSet<&str> = HashSet::with_capacity(stored.len());
    ids.iter()
        .map(|batch| {
            let mut tally = IngestOutcome::default();
            for id in batch {
                if stored.contains(id) && claimed.insert(id) {
                    tally.accepted += 1;
                } else {
                    tally.duplicates += 1;
                }
            }
            tally
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[&[&str]]) -> Vec<Vec<String>> {
        list.iter()
            .map(|b| b.iter().map(|s| (*s).to_owned()).collect())
            .collect()
    }

    #[test]
    fn a_group_tally_is_split_as_if_its_batches_had_been_written_in_turn() {
        let stored: HashSet<String> = ["a", "b", "c"].iter().map(|s| (*s).to_owned()).collect();
        // `b` twice in the first batch and again in the second; `z` stored before the group.
        let tallies = split(&ids(&[&["a", "b", "b"], &["b", "c", "z"]]), &stored);
        let counts: Vec<(u64, u64)> = tallies.iter().map(|t| (t.accepted, t.duplicates)).collect();
        assert_eq!(counts, [(2, 1), (1, 2)]);
    }

    fn member(records: usize) -> Batch {
        let detection: FireDetection = serde_json::from_value(serde_json::json!({
            "latitude": -33.0, "longitude": 150.0, "acquired_at": "2020-01-01T03:00:00Z",
            "satellite": "Terra", "instrument": "MODIS", "brightness_k": 330.5,
            "brightness_background_k": 295.1, "scan_km": 1.0, "track_km": 1.0,
            "confidence_percent": 80.0, "confidence": "high", "frp_mw": 25.3, "daytime": true,
            "version": "6.3", "detection_type": 0
        }))
        .expect("detection");
        (0..records as u64)
            .map(|l| (l, detection.clone()))
            .collect()
    }

    #[test]
    fn the_writer_takes_its_own_batch_and_the_queued_ones_within_the_cap_oldest_first() {
        let groups = LiveGroups::default();
        let first = groups.join(member(40));
        let second = groups.join(member(30));
        let own = groups.join(member(10));
        let fourth = groups.join(member(20));
        // 10 (own) + 40 + 20 = 70 fit in 75; the 30 would not, and waits for the next writer.
        let group = groups.take(&own, 75);
        let sizes: Vec<usize> = group.iter().map(|m| m.records).collect();
        assert_eq!(sizes, [40, 10, 20]);
        assert!(Arc::ptr_eq(&group[0], &first) && Arc::ptr_eq(&group[2], &fourth));
        let next = groups.take(&second, 0);
        assert_eq!(next.len(), 1, "its own batch goes even beyond the cap");
        assert!(groups.queue().is_empty());
    }

    #[test]
    fn a_failed_group_is_written_again_batch_by_batch_and_every_batch_is_answered() {
        let groups = LiveGroups::default();
        let a = groups.join(member(2));
        let b = groups.join(member(3));
        let group = groups.take(&b, 100);
        write(
            &group,
            |_| Err(lost("a record no stage can take")),
            |batch| {
                if batch.len() == 2 {
                    Err(lost("the bad batch"))
                } else {
                    Ok(IngestOutcome {
                        accepted: batch.len() as u64,
                        ..IngestOutcome::default()
                    })
                }
            },
        );
        assert!(a.served().load(Ordering::Acquire) && b.served().load(Ordering::Acquire));
        assert!(a.answer().is_err());
        assert_eq!(b.answer().map(|t| t.accepted).ok(), Some(3));
    }

    #[test]
    fn a_writer_that_panics_still_answers_its_group() {
        let groups = LiveGroups::default();
        let a = groups.join(member(1));
        let b = groups.join(member(1));
        let group = groups.take(&a, 100);
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            write(
                &group,
                |_| panic!("a bug outside the stages' guard"),
                |_| Ok(IngestOutcome::default()),
            )
        }));
        assert!(unwound.is_err());
        for m in [&a, &b] {
            assert!(m.served().load(Ordering::Acquire));
            assert!(matches!(m.answer(), Err(PipelineError::Panicked { .. })));
        }
    }
}

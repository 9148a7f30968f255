//! The pipeline's writer lock, with a live lane that goes before bulk work.
//!
//! One writer at a time keeps sequence numbers dense and the index in step with the store. A
//! plain mutex lets a backfill, which asks for the lock again as soon as it lets go, keep a
//! single live detection waiting for seconds; here a waiting live batch is served before any
//! waiting bulk batch, and after [`LIVE_STREAK`] live batches in a row a waiting bulk batch has
//! its turn, so neither lane can shut the other out.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Which lane a writer queues in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// A small batch someone is waiting for (one POSTed detection, a small stream batch).
    Live,
    /// Backfill, replay, a file: throughput matters, not the wait of one batch.
    Bulk,
}

impl Lane {
    /// The metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Live => "live",
            Self::Bulk => "bulk",
        }
    }
}

/// Live batches served in a row while bulk work waits, before one bulk batch goes.
const LIVE_STREAK: u32 = 16;

#[derive(Debug, Default)]
struct Queue {
    held: bool,
    live_waiting: usize,
    bulk_waiting: usize,
    /// Live batches served since the last bulk one while bulk work was waiting.
    live_streak: u32,
    /// When a live writer last asked for the lock.
    last_live: Option<Instant>,
}

/// The lock. Its state is only ever held for a few instructions, never across a writer's work,
/// so a panicking writer cannot poison it; its guard lets go on unwinding like on return.
#[derive(Debug, Default)]
pub struct WriterLock {
    queue: Mutex<Queue>,
    turn: Condvar,
}

/// Held while writing; dropping it lets the next writer in.
#[derive(Debug)]
pub struct WriterGuard<'a> {
    lock: &'a WriterLock,
}

impl WriterLock {
    /// Waits for the lock in `lane`.
    pub fn lock(&self, lane: Lane) -> WriterGuard<'_> {
        let mut queue = self.queue();
        match lane {
            Lane::Live => {
                queue.live_waiting += 1;
                queue.last_live = Some(Instant::now());
            }
            Lane::Bulk => queue.bulk_waiting += 1,
        }
        while !Self::may_go(&queue, lane) {
            queue = self
                .turn
                .wait(queue)
                .unwrap_or_else(PoisonError::into_inner);
        }
        queue.held = true;
        match lane {
            Lane::Live => {
                queue.live_waiting -= 1;
                if queue.bulk_waiting > 0 {
                    queue.live_streak += 1;
                }
            }
            Lane::Bulk => {
                queue.bulk_waiting -= 1;
                queue.live_streak = 0;
            }
        }
        WriterGuard { lock: self }
    }

    /// Whether a live writer asked for the lock within `window`: bulk work then writes in
    /// small pieces.
    pub fn live_within(&self, window: Duration) -> bool {
        self.queue()
            .last_live
            .is_some_and(|at| at.elapsed() <= window)
    }

    fn may_go(queue: &Queue, lane: Lane) -> bool {
        if queue.held {
            return false;
        }
        let bulk_due = queue.bulk_waiting > 0 && queue.live_streak >= LIVE_STREAK;
        match lane {
            Lane::Live => !bulk_due,
            Lane::Bulk => queue.live_waiting == 0 || bulk_due,
        }
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for WriterGuard<'_> {
    fn drop(&mut self) {
        self.lock.queue().held = false;
        self.lock.turn.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    /// Holds the lock in `lane` after `first` has it, recording the order writers got in.
    fn queue_behind(
        lock: &Arc<WriterLock>,
        order: &Arc<Mutex<Vec<&'static str>>>,
        lane: Lane,
        name: &'static str,
    ) -> std::thread::JoinHandle<()> {
        let (lock, order) = (Arc::clone(lock), Arc::clone(order));
        std::thread::spawn(move || {
            let _guard = lock.lock(lane);
            order
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(name);
        })
    }

    fn waiting(lock: &WriterLock) -> usize {
        let queue = lock.queue();
        queue.live_waiting + queue.bulk_waiting
    }

    #[test]
    fn a_waiting_live_writer_goes_before_bulk_writers_that_waited_longer() {
        let lock = Arc::new(WriterLock::default());
        let order = Arc::new(Mutex::new(Vec::new()));
        let first = lock.lock(Lane::Bulk);
        let bulk = queue_behind(&lock, &order, Lane::Bulk, "bulk");
        while waiting(&lock) < 1 {
            std::thread::sleep(Duration::from_millis(1));
        }
        let live = queue_behind(&lock, &order, Lane::Live, "live");
        while waiting(&lock) < 2 {
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(first);
        bulk.join().expect("bulk");
        live.join().expect("live");
        assert_eq!(*order.lock().expect("order"), ["live", "bulk"]);
    }

    #[test]
    fn bulk_work_gets_a_turn_among_a_stream_of_live_writers() {
        let lock = Arc::new(WriterLock::default());
        let order = Arc::new(Mutex::new(Vec::new()));
        let first = lock.lock(Lane::Live);
        let bulk = queue_behind(&lock, &order, Lane::Bulk, "bulk");
        while waiting(&lock) < 1 {
            std::thread::sleep(Duration::from_millis(1));
        }
        // Sixty-four live writers waiting as well: without the streak rule, bulk would go last.
        let live: Vec<_> = (0..64)
            .map(|_| queue_behind(&lock, &order, Lane::Live, "live"))
            .collect();
        while waiting(&lock) < 65 {
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(first);
        live.into_iter().for_each(|t| t.join().expect("live"));
        bulk.join().expect("bulk");
        let order = order.lock().expect("order");
        let at = order.iter().position(|w| *w == "bulk").expect("bulk ran");
        assert_eq!(at, LIVE_STREAK as usize, "{order:?}");
    }

    #[test]
    fn a_writer_that_panics_lets_the_next_one_in() {
        let lock = Arc::new(WriterLock::default());
        let panicking = {
            let lock = Arc::clone(&lock);
            std::thread::spawn(move || {
                let _guard = lock.lock(Lane::Bulk);
                panic!("a bug inside a batch");
            })
        };
        assert!(panicking.join().is_err());
        drop(lock.lock(Lane::Live));
        drop(lock.lock(Lane::Bulk));
    }
}

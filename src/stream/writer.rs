//! The pipeline's writer lock, with a live lane that goes before bulk work.
//!
//! One writer at a time keeps sequence numbers dense and the index in step with the store. A
//! plain mutex lets a backfill, which asks for the lock again as soon as it lets go, keep a
//! single live detection waiting for seconds; here a waiting live batch is served before any
//! waiting bulk batch, and after [`LIVE_STREAK`] live batches in a row a waiting bulk batch has
//! its turn, so neither lane can shut the other out.
//!
//! A writer whose batch only adds new points to the index may let go of the lock once its batch
//! is in the store and insert its vectors while the next writer goes in
//! ([`WriterGuard::release_for_insert`]): a live detection then waits for a backfill piece's
//! store write, not for its index insert as well. The lock counts those inserts, and a writer
//! that changes points already in the index (a weather rejoin, a source row's update or
//! delete), a snapshot or a space switch first waits for them ([`WriterGuard::settle`]).

use std::sync::atomic::{AtomicBool, Ordering};
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
    /// Index inserts running after their writer let go of the lock.
    inserting: usize,
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
        let never = AtomicBool::new(false);
        loop {
            // `never` is never set, so the first wait ends with the lock.
            if let Some(guard) = self.lock_unless(lane, &never) {
                return guard;
            }
        }
    }

    /// Waits for the lock in `lane`, or until `served` is set (another writer did this one's
    /// work while it waited, see `super::group`): then `None`. A writer that sets another's
    /// `served` does so while it holds the lock, so the waiter sees it when the lock is let go.
    pub fn lock_unless(&self, lane: Lane, served: &AtomicBool) -> Option<WriterGuard<'_>> {
        let mut queue = self.queue();
        match lane {
            Lane::Live => {
                queue.live_waiting += 1;
                queue.last_live = Some(Instant::now());
            }
            Lane::Bulk => queue.bulk_waiting += 1,
        }
        loop {
            if served.load(Ordering::Acquire) {
                match lane {
                    Lane::Live => queue.live_waiting -= 1,
                    Lane::Bulk => queue.bulk_waiting -= 1,
                }
                // A writer that may go now that this one has left the queue (bulk behind it).
                drop(queue);
                self.turn.notify_all();
                return None;
            }
            if Self::may_go(&queue, lane) {
                break;
            }
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
        Some(WriterGuard { lock: self })
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

/// An index insert running after its writer let go of the lock; dropping it (on return or on
/// unwinding) says the insert is over.
#[derive(Debug)]
pub struct InsertTicket<'a> {
    lock: &'a WriterLock,
}

impl<'a> WriterGuard<'a> {
    /// Lets the next writer in while this one inserts its new points into the index; the
    /// insert counts as running until the ticket is dropped.
    pub fn release_for_insert(self) -> InsertTicket<'a> {
        let lock = self.lock;
        // The guard's own drop would only let go of the lock; here the insert is counted in
        // the same step, so a writer that settles cannot slip in between.
        std::mem::forget(self);
        {
            let mut queue = lock.queue();
            queue.held = false;
            queue.inserting += 1;
        }
        lock.turn.notify_all();
        InsertTicket { lock }
    }

    /// Waits, holding the lock, until no insert let go of it earlier is still running: the
    /// index then holds every point of every batch stored so far.
    pub fn settle(&self) {
        let mut queue = self.lock.queue();
        while queue.inserting > 0 {
            queue = self
                .lock
                .turn
                .wait(queue)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

impl Drop for WriterGuard<'_> {
    fn drop(&mut self) {
        self.lock.queue().held = false;
        self.lock.turn.notify_all();
    }
}

impl Drop for InsertTicket<'_> {
    fn drop(&mut self) {
        self.lock.queue().inserting -= 1;
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
    fn a_writer_inserting_after_the_lock_lets_the_next_in_and_settling_waits_for_it() {
        let lock = Arc::new(WriterLock::default());
        let ticket = lock.lock(Lane::Bulk).release_for_insert();
        // The next writer gets in at once, while the insert runs...
        let next = lock.lock(Lane::Live);
        // ...and a writer that settles waits until the insert is over.
        let settled = Arc::new(AtomicBool::new(false));
        let settler = {
            let (lock, settled) = (Arc::clone(&lock), Arc::clone(&settled));
            std::thread::spawn(move || {
                let guard = lock.lock(Lane::Bulk);
                guard.settle();
                settled.store(true, Ordering::Release);
            })
        };
        drop(next);
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            !settled.load(Ordering::Acquire),
            "settled while an insert ran"
        );
        drop(ticket);
        settler.join().expect("settler");
        assert!(settled.load(Ordering::Acquire));
    }

    #[test]
    fn a_live_writer_served_by_another_leaves_without_the_lock() {
        let lock = Arc::new(WriterLock::default());
        let held = lock.lock(Lane::Bulk);
        let served = Arc::new(AtomicBool::new(false));
        let waiter = {
            let (lock, served) = (Arc::clone(&lock), Arc::clone(&served));
            std::thread::spawn(move || lock.lock_unless(Lane::Live, &served).is_none())
        };
        while waiting(&lock) < 1 {
            std::thread::sleep(Duration::from_millis(1));
        }
        served.store(true, Ordering::Release);
        drop(held);
        assert!(waiter.join().expect("waiter"), "it took the lock instead");
        assert_eq!(waiting(&lock), 0);
        drop(lock.lock(Lane::Bulk));
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

//! The index insert's own thread, shared by every pipelined ingest path (file, HTTP, Kafka):
//! while one batch's points go into the index there, the next batch is decoded, correlated,
//! embedded and tracked on the caller's thread. One insert at a time, in order: the caller
//! joins the one in flight before it starts the next.

use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{Scope, ScopedJoinHandle};

/// An insert started by [`start`]: on its thread, or already run in line.
pub(crate) enum Insert<'s, T> {
    Thread(ScopedJoinHandle<'s, Option<T>>),
    Ran(Option<T>),
}

impl<T> Insert<'_, T> {
    /// Waits for the insert's result; `None` when its thread failed (panicked).
    pub(crate) fn join(self) -> Option<T> {
        match self {
            Self::Thread(handle) => handle.join().ok().flatten(),
            Self::Ran(done) => done,
        }
    }
}

/// Runs `work` on a scoped thread named `insert` (profiles tell the stages apart), or here when
/// the system refuses a thread, rather than losing it.
pub(crate) fn start<'s, 'e, T, F>(scope: &'s Scope<'s, 'e>, work: F) -> Insert<'s, T>
where
    F: FnOnce() -> T + Send + 's,
    T: Send + 's,
{
    // A refused spawn drops its closure, so the work waits here for whoever takes it first.
    let handed = Arc::new(Mutex::new(Some(work)));
    let run = |handed: &Mutex<Option<F>>| {
        let work = handed.lock().unwrap_or_else(PoisonError::into_inner).take();
        work.map(|work| work())
    };
    let spawned = std::thread::Builder::new()
        .name("insert".to_owned())
        .spawn_scoped(scope, {
            let handed = Arc::clone(&handed);
            move || run(&handed)
        });
    match spawned {
        Ok(handle) => Insert::Thread(handle),
        Err(error) => {
            tracing::warn!(%error, "No thread for an index insert; inserting in line.");
            // A panic here too is a missing result, as on the thread.
            let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&handed)));
            Insert::Ran(ran.ok().flatten())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_insert_runs_on_a_thread_named_insert_and_hands_back_its_result() {
        let name = std::thread::scope(|scope| {
            start(scope, || std::thread::current().name().map(str::to_owned)).join()
        });
        assert_eq!(name, Some(Some("insert".to_owned())));
    }

    #[test]
    fn a_panicking_insert_is_a_missing_result_not_a_panic_of_the_caller() {
        let joined = std::thread::scope(|scope| {
            let insert: Insert<'_, u32> = start(scope, || panic!("a bug in the insert"));
            insert.join()
        });
        assert_eq!(joined, None);
    }
}

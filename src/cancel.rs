//! Cancellation of abandoned work. A query's CPU work runs on a blocking thread, which nothing
//! can interrupt; when the request it serves is dropped (its time limit passed, or the
//! connection closed) the work should stop rather than run on for an answer nobody reads. The
//! request holds a [`CancelOnDrop`]; the work holds the [`Token`] and asks it at safe points.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Asked by long work at safe points; set when the request it serves goes away.
#[derive(Clone, Default, Debug)]
pub struct Token(Arc<AtomicBool>);

/// The work was abandoned by the request it served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the request was abandoned (timed out or closed); its work stopped")]
pub struct Cancelled;

impl Token {
    /// A token nobody cancels (batch jobs, benchmarks, tests).
    pub fn never() -> Self {
        Self::default()
    }

    /// `Err(Cancelled)` once the request has gone away.
    pub fn check(&self) -> Result<(), Cancelled> {
        if self.0.load(Ordering::Relaxed) {
            Err(Cancelled)
        } else {
            Ok(())
        }
    }

    /// A guard that cancels this token when dropped, unless disarmed first.
    pub fn cancel_on_drop(&self) -> CancelOnDrop {
        CancelOnDrop(Some(self.clone()))
    }
}

/// Cancels its token when dropped (see [`Token::cancel_on_drop`]).
pub struct CancelOnDrop(Option<Token>);

impl CancelOnDrop {
    /// The work finished: nothing to cancel.
    pub fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(token) = &self.0 {
            token.0.store(true, Ordering::Relaxed);
        }
    }
}

/// Runs `work` on a blocking thread with a token that is cancelled if the returned future is
/// dropped before the work ends (an async caller's time limit, a closed connection).
pub async fn blocking<T: Send + 'static>(
    work: impl FnOnce(&Token) -> T + Send + 'static,
) -> Result<T, tokio::task::JoinError> {
    let token = Token::default();
    let guard = token.cancel_on_drop();
    let result = tokio::task::spawn_blocking(move || work(&token)).await;
    guard.disarm();
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn work_whose_caller_gave_up_stops_at_its_next_check() {
        let (tx, rx) = std::sync::mpsc::channel();
        let caller = tokio::time::timeout(
            Duration::from_millis(50),
            blocking(move |token| {
                let mut rounds = 0u64;
                // Without cancellation this would run for about 100 s.
                while rounds < 10_000 && token.check().is_ok() {
                    std::thread::sleep(Duration::from_millis(10));
                    rounds += 1;
                }
                let _ = tx.send(rounds);
            }),
        )
        .await;
        assert!(caller.is_err(), "the caller timed out");
        let rounds = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("the work stopped soon after");
        assert!(rounds < 100, "{rounds} rounds");
    }

    #[tokio::test]
    async fn work_that_finishes_is_not_cancelled() {
        let token = blocking(|token| token.clone()).await.expect("join");
        assert_eq!(token.check(), Ok(()));
    }
}

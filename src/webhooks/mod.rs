//! Alert delivery to webhook receivers, from a durable queue in the store.
//!
//! The alert log is the source: each target keeps a cursor in it, and a round first moves the
//! alerts after the cursor that the target wants into its queue (cursor and queue entries in one
//! write), then POSTs the due entries oldest first. The body is the alert exactly as logged, so
//! a retry sends the same bytes; `X-FireSight-Alert-Id` carries its stable id for the receiver to
//! drop a repeat (delivery is at least once: a crash after the receiver's 2xx and before the
//! entry is settled sends it again). A 2xx settles an entry. A failure reschedules it with a
//! doubling backoff (a `Retry-After` in seconds is honoured up to the maximum). A receiver that
//! is away (unreachable, timed out, 429, 502, 503, 504) is waited for as long as it takes (the
//! queue is on disk), and nothing else is tried until that alert's retry is due: an outage
//! costs one probe per backoff, not one per queued alert. One that fails on the alert itself
//! (500, 408, another 5xx) gets `max_attempts` tries while the others go on; then, or at once on
//! any other status, the alert moves to the dead letters with the reason. One task per target:
//! a slow receiver delays only its own alerts.

pub mod sign;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, WebhookSettings};
use crate::event::FieldError;
use crate::metrics::Metrics;
use crate::store::{DeadLetter, Store, StoreError, StoreOp};
use crate::tracker::{Alert, AlertKind};

/// Alerts moved from the log into a queue per write.
const ENQUEUE_PAGE: usize = 512;
/// Queue entries looked at per round.
const ROUND: usize = 256;
/// Longest sleep between rounds when nothing is due (new alerts also wake the task).
const IDLE: Duration = Duration::from_secs(1);
/// Bytes of a refusing receiver's answer kept in the dead letter's reason.
const ANSWER_EXCERPT: usize = 200;
/// The header carrying the alert's stable id.
pub const ALERT_ID_HEADER: &str = "x-firesight-alert-id";
/// The header carrying `target:sequence`, unique per queued delivery.
pub const DELIVERY_HEADER: &str = "x-firesight-delivery";

/// One configured receiver.
#[derive(Debug, Clone)]
pub struct Target {
    /// Its name (queue key, metrics label).
    pub name: String,
    /// Where alerts are POSTed.
    pub url: String,
    key: Vec<u8>,
    /// Kinds it wants; empty: all.
    kinds: Vec<AlertKind>,
}

impl Target {
    fn wants(&self, kind: AlertKind) -> bool {
        self.kinds.is_empty() || self.kinds.contains(&kind)
    }
}

/// A queued delivery's state, as kept in the store.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Queued {
    /// Failed attempts so far.
    attempts: u32,
    /// Not before this wall-clock time, ms.
    next_at_ms: i64,
    /// The last failure, for the logs and the dead letter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_error: Option<String>,
}

/// What one POST came to.
enum Answer {
    Accepted,
    /// The receiver failed on this alert (500, 408, …): worth trying again, up to
    /// `max_attempts` (after the receiver's hint, when it gave one).
    Retry(String, Option<Duration>),
    /// The receiver is not there (unreachable, timed out, 429, 502, 503, 504): tried again for
    /// as long as it takes, never dead-lettered for it; the queue is on disk.
    Unavailable(String, Option<Duration>),
    /// Will not succeed on retry.
    Refused(String),
}

/// Delivers logged alerts to every configured target until shut down.
pub struct Dispatcher {
    store: Arc<Store>,
    targets: Vec<Target>,
    /// Per target, until when (wall clock, ms) its receiver is taken as away: no delivery is
    /// tried before then, so an outage costs one probe per backoff, not one per queued alert.
    away_until: Vec<AtomicI64>,
    client: reqwest::Client,
    max_attempts: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
    metrics: Metrics,
}

impl Dispatcher {
    /// A dispatcher for `settings.targets`; `None` when there are none.
    pub fn new(
        settings: &WebhookSettings,
        trust: &crate::tls::Trust,
        store: Arc<Store>,
        metrics: Metrics,
    ) -> anyhow::Result<Option<Self>> {
        if settings.targets.is_empty() {
            return Ok(None);
        }
        let targets = targets(settings)?;
        let client = trust
            .http()
            .timeout(Duration::from_millis(settings.timeout_ms))
            .connect_timeout(Duration::from_millis(settings.timeout_ms))
            // A receiver that moved is a configuration to fix, not a place to follow blindly.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("FireSight/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Some(Self {
            store,
            away_until: targets.iter().map(|_| AtomicI64::new(0)).collect(),
            targets,
            client,
            max_attempts: settings.max_attempts,
            initial_backoff: Duration::from_millis(settings.initial_backoff_ms),
            max_backoff: Duration::from_millis(settings.max_backoff_ms),
            metrics,
        }))
    }

    /// The targets.
    pub fn targets(&self) -> &[Target] {
        &self.targets
    }

    /// Runs every target's loop until `shutdown` resolves; `alerts` (the pipeline's
    /// [`crate::stream::Pipeline::alerts_seen`]) wakes them when a batch logs alerts. A request
    /// in flight at shutdown is abandoned and sent again after the restart.
    pub async fn run(
        self,
        alerts: tokio::sync::watch::Receiver<u64>,
        shutdown: impl Future<Output = ()>,
    ) {
        let this = Arc::new(self);
        let loops = (0..this.targets.len()).map(|i| {
            let this = Arc::clone(&this);
            let mut alerts = alerts.clone();
            async move {
                let mut watching = true;
                loop {
                    let pause = match this.round(i).await {
                        Ok(pause) => pause,
                        Err(error) => {
                            tracing::error!(target_name = %this.targets[i].name, %error, "Webhook round failed; will retry.");
                            IDLE
                        }
                    };
                    if watching {
                        tokio::select! {
                            () = tokio::time::sleep(pause) => {}
                            changed = alerts.changed() => watching = changed.is_ok(),
                        }
                    } else {
                        tokio::time::sleep(pause).await;
                    }
                }
            }
        });
        tokio::select! {
            _ = futures_util::future::join_all(loops) => {}
            () = shutdown => {}
        }
    }

    /// One round for target `i`: queue new alerts, deliver what is due; returns how long to
    /// wait before the next round.
    pub async fn round(&self, i: usize) -> anyhow::Result<Duration> {
        let target = self.targets[i].clone();
        let store = Arc::clone(&self.store);
        let name = target.name.clone();
        let kinds = target.clone();
        let away_until = self.away_until[i].load(Ordering::Acquire);
        let due = tokio::task::spawn_blocking(move || -> Result<_, StoreError> {
            enqueue(&store, &kinds)?;
            let now = now_ms();
            let mut due = Vec::new();
            if now < away_until {
                return Ok(due);
            }
            for (seq, state) in store.webhook_queue(&name, ROUND)? {
                let state = queued_state(&name, seq, &state);
                if state.next_at_ms <= now {
                    let body = store.alerts_from(seq, 1)?.into_iter().next();
                    let body = body.filter(|(s, _)| *s == seq).map(|(_, b)| b);
                    due.push((seq, state, body));
                }
            }
            Ok(due)
        })
        .await??;

        for (seq, mut state, body) in due {
            let Some(body) = body else {
                self.settle_dead(
                    &target,
                    seq,
                    "the alert is no longer in the log".into(),
                    String::new(),
                )
                .await?;
                continue;
            };
            let answer = self.post(&target, seq, &body).await;
            let away = matches!(answer, Answer::Unavailable(..));
            match answer {
                Answer::Accepted => {
                    self.away_until[i].store(0, Ordering::Release);
                    self.count(&target, "delivered");
                    self.apply(vec![StoreOp::webhook_settled(&target.name, seq)])
                        .await?;
                }
                Answer::Refused(reason) => {
                    self.settle_dead(&target, seq, reason, lossy(&body)).await?;
                }
                Answer::Retry(reason, hint) | Answer::Unavailable(reason, hint) => {
                    state.attempts = state.attempts.saturating_add(1);
                    if state.attempts >= self.max_attempts && !away {
                        let reason =
                            format!("gave up after {} attempts; last: {reason}", state.attempts);
                        self.settle_dead(&target, seq, reason, lossy(&body)).await?;
                        continue;
                    }
                    let wait = self.backoff(state.attempts, hint);
                    tracing::warn!(target_name = %target.name, seq, attempts = state.attempts, retry_in_ms = wait.as_millis() as u64, reason = %reason, "Webhook delivery failed; will retry.");
                    self.count(&target, "retry");
                    state.next_at_ms = now_ms().saturating_add(wait.as_millis() as i64);
                    state.last_error = Some(reason);
                    self.apply(vec![StoreOp::webhook_queued(
                        &target.name,
                        seq,
                        serde_json::to_vec(&state)?,
                    )])
                    .await?;
                    if away {
                        // The receiver is away: nothing more is tried until this probe is due.
                        self.away_until[i].store(state.next_at_ms, Ordering::Release);
                        break;
                    }
                }
            }
        }

        let store = Arc::clone(&self.store);
        let name = target.name.clone();
        let (queued, next) = tokio::task::spawn_blocking(move || -> Result<_, StoreError> {
            let queue = store.webhook_queue(&name, usize::MAX)?;
            let mut next: Option<i64> = None;
            for (seq, state) in queue.iter().take(ROUND) {
                let state = queued_state(&name, *seq, state);
                next = Some(next.map_or(state.next_at_ms, |n| n.min(state.next_at_ms)));
            }
            Ok((queue.len(), next))
        })
        .await??;
        self.metrics
            .webhook_queued
            .with_label_values(&[target.name.as_str()])
            .set(queued as i64);
        let away_until = self.away_until[i].load(Ordering::Acquire);
        let next = next.map(|at| at.max(away_until));
        Ok(match next {
            None => IDLE,
            Some(at) => Duration::from_millis(at.saturating_sub(now_ms()).max(0) as u64).min(IDLE),
        })
    }

    /// The wait after the `attempts`-th failure: doubling from the initial backoff, at least the
    /// receiver's hint, never more than the maximum.
    fn backoff(&self, attempts: u32, hint: Option<Duration>) -> Duration {
        let doubled = self
            .initial_backoff
            .saturating_mul(1_u32 << attempts.saturating_sub(1).min(20));
        doubled.max(hint.unwrap_or_default()).min(self.max_backoff)
    }

    async fn post(&self, target: &Target, seq: u64, body: &[u8]) -> Answer {
        let timestamp = chrono::Utc::now().timestamp();
        let alert_id = serde_json::from_slice::<Alert>(body)
            .map(|a| a.id)
            .unwrap_or_default();
        let Ok(signature) = sign::signature(&target.key, timestamp, body) else {
            return Answer::Refused("the signing key was refused by HMAC-SHA256".into());
        };
        let request = self
            .client
            .post(&target.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(ALERT_ID_HEADER, alert_id)
            .header(DELIVERY_HEADER, format!("{}:{seq}", target.name))
            .header(sign::TIMESTAMP_HEADER, timestamp.to_string())
            .header(sign::SIGNATURE_HEADER, signature)
            .body(body.to_vec());
        let mut response = match request.send().await {
            Ok(response) => response,
            Err(error) if error.is_timeout() => {
                return Answer::Unavailable("the receiver did not answer in time".into(), None);
            }
            Err(error) => return Answer::Unavailable(format!("not delivered: {error}"), None),
        };
        let status = response.status();
        if status.is_success() {
            return Answer::Accepted;
        }
        let hint = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let excerpt = match response.chunk().await {
            Ok(Some(bytes)) => {
                let cut = &bytes[..bytes.len().min(ANSWER_EXCERPT)];
                String::from_utf8_lossy(cut).trim().to_owned()
            }
            _ => String::new(),
        };
        let reason = if excerpt.is_empty() {
            format!("the receiver answered {status}")
        } else {
            format!("the receiver answered {status}: {excerpt}")
        };
        let code = status.as_u16();
        if matches!(code, 429 | 502 | 503 | 504) {
            Answer::Unavailable(reason, hint)
        } else if status.is_server_error() || code == 408 {
            Answer::Retry(reason, hint)
        } else if status.is_redirection() {
            let to = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("?");
            Answer::Refused(format!(
                "{reason}; redirects are not followed, configure the final URL ({to})"
            ))
        } else {
            Answer::Refused(reason)
        }
    }

    async fn settle_dead(
        &self,
        target: &Target,
        seq: u64,
        reason: String,
        raw: String,
    ) -> anyhow::Result<()> {
        tracing::error!(target_name = %target.name, seq, reason = %reason, "Webhook delivery dead-lettered.");
        self.count(target, "dead_letter");
        let letter = DeadLetter {
            source: format!("webhook:{}", target.name),
            error: FieldError::new(seq, "delivery", reason),
            raw,
            at_ms: now_ms(),
        };
        let store = Arc::clone(&self.store);
        let name = target.name.clone();
        tokio::task::spawn_blocking(move || -> Result<(), StoreError> {
            // Dead letter first: a crash between the two writes retries, never loses.
            store.put_dead_letters(&[letter])?;
            store.apply(&[StoreOp::webhook_settled(&name, seq)])
        })
        .await??;
        Ok(())
    }

    async fn apply(&self, ops: Vec<StoreOp>) -> anyhow::Result<()> {
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || store.apply(&ops)).await??;
        Ok(())
    }

    fn count(&self, target: &Target, outcome: &str) {
        self.metrics
            .webhook_deliveries
            .with_label_values(&[target.name.as_str(), outcome])
            .inc();
    }
}

/// The configured targets, each checked: its signing key found, its kinds known (refused with
/// the target and the choices otherwise).
pub fn targets(settings: &WebhookSettings) -> Result<Vec<Target>, ConfigError> {
    settings
        .targets
        .iter()
        .map(|t| {
            let kinds = t
                .kinds
                .iter()
                .map(|k| {
                    AlertKind::parse(k).ok_or_else(|| {
                        let choices: Vec<&str> =
                            AlertKind::ALL.iter().map(|k| k.as_str()).collect();
                        ConfigError::Invalid {
                            key: "webhooks.targets",
                            reason: format!(
                                "target `{}`: kind `{k}` is not one of {}",
                                t.name,
                                choices.join(", ")
                            ),
                        }
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Target {
                name: t.name.clone(),
                url: t.url.clone(),
                key: t.signing_key()?.into_bytes(),
                kinds,
            })
        })
        .collect()
}

/// Gives every target that has no cursor yet one at the end of the alert log, so a receiver
/// added to a running deployment gets alerts from now on, not the history. Called when the
/// service opens, before anything is loaded.
pub fn start_cursors(settings: &WebhookSettings, store: &Store) -> anyhow::Result<()> {
    targets(settings)?;
    let mut ops = Vec::new();
    for target in &settings.targets {
        if store.webhook_cursor(&target.name)?.is_none() {
            ops.push(StoreOp::webhook_cursor(
                &target.name,
                store.peek_alert_seq(),
            ));
        }
    }
    Ok(store.apply(&ops)?)
}

/// Moves the alerts after `target`'s cursor into its queue, a page per write.
fn enqueue(store: &Store, target: &Target) -> Result<(), StoreError> {
    let fresh = serde_json::to_vec(&Queued::default())?;
    loop {
        let from = match store.webhook_cursor(&target.name)? {
            Some(from) => from,
            None => store.peek_alert_seq(),
        };
        let page = store.alerts_from(from, ENQUEUE_PAGE)?;
        let Some(&(last, _)) = page.last() else {
            return Ok(());
        };
        let mut ops = Vec::with_capacity(page.len() + 1);
        let mut unreadable = Vec::new();
        for (seq, bytes) in &page {
            match decode::<Alert>(bytes) {
                Ok(alert) if target.wants(alert.kind) => {
                    ops.push(StoreOp::webhook_queued(&target.name, *seq, fresh.clone()));
                }
                Ok(_) => {}
                // Not sent (a receiver would get garbage) and not a stall: a dead letter says why.
                Err(e) => {
                    tracing::error!(target_name = %target.name, seq, error = %e, "An alert log entry is unreadable; dead-lettered, not sent.");
                    unreadable.push(DeadLetter {
                        source: format!("webhook:{}", target.name),
                        error: FieldError::new(
                            *seq,
                            "alert",
                            format!("the alert log entry is not an alert: {e}"),
                        ),
                        raw: lossy(bytes),
                        at_ms: now_ms(),
                    });
                }
            }
        }
        // Dead letters before the cursor moves past them: a crash between repeats, never loses.
        if !unreadable.is_empty() {
            store.put_dead_letters(&unreadable)?;
        }
        ops.push(StoreOp::webhook_cursor(&target.name, last + 1));
        store.apply(&ops)?;
        if page.len() < ENQUEUE_PAGE {
            return Ok(());
        }
    }
}

/// A queue entry's delivery state. An unreadable one (a torn or foreign write) must not stall
/// the target for ever: the alert is delivered afresh, and the logs say so.
fn queued_state(target: &str, seq: u64, bytes: &[u8]) -> Queued {
    decode(bytes).unwrap_or_else(|e| {
        tracing::error!(target_name = %target, seq, error = %e, "A webhook queue entry is unreadable; delivering its alert afresh.");
        Queued {
            last_error: Some(format!("queue entry unreadable: {e}")),
            ..Queued::default()
        }
    })
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        cf: "webhook_queue",
        reason: e.to_string(),
    })
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Settings, WebhookTarget};

    fn target(kinds: &[&str], secret: &str, secret_env: &str) -> WebhookTarget {
        WebhookTarget {
            name: "ops".into(),
            url: "http://127.0.0.1:9/hook".into(),
            secret: secret.into(),
            secret_env: secret_env.into(),
            kinds: kinds.iter().map(|k| (*k).to_owned()).collect(),
        }
    }

    #[test]
    fn targets_are_refused_with_the_reason() {
        let mut settings = Settings::defaults().expect("defaults").webhooks;
        settings.targets = vec![target(&["growth", "new_fire"], "s", "")];
        let ok = targets(&settings).expect("valid");
        assert!(ok[0].wants(AlertKind::Growth) && !ok[0].wants(AlertKind::Rule));
        settings.targets = vec![target(&["wildfire"], "s", "")];
        let err = targets(&settings).expect_err("unknown kind").to_string();
        assert!(
            err.contains("`wildfire` is not one of new_fire, growth, rule, high_danger"),
            "{err}"
        );
        settings.targets = vec![target(&[], "", "")];
        let err = targets(&settings).expect_err("no secret").to_string();
        assert!(
            err.contains("exactly one of secret and secret_env"),
            "{err}"
        );
        settings.targets = vec![target(&[], "", "FIRESIGHT_TEST_SECRET_THAT_IS_NOT_SET")];
        let err = targets(&settings).expect_err("unset variable").to_string();
        assert!(err.contains("not set or empty"), "{err}");
    }

    #[test]
    fn the_backoff_doubles_honours_the_hint_and_stops_at_the_maximum() {
        let mut settings = Settings::defaults().expect("defaults").webhooks;
        settings.targets = vec![target(&[], "s", "")];
        settings.initial_backoff_ms = 1_000;
        settings.max_backoff_ms = 10_000;
        let dir = tempfile::TempDir::new().expect("tempdir");
        let store = Arc::new(Store::open(dir.path()).expect("store"));
        let metrics = Metrics::new().expect("metrics");
        let d = Dispatcher::new(&settings, &crate::tls::Trust::default(), store, metrics)
            .expect("dispatcher")
            .expect("a target");
        let secs = |attempts, hint: Option<u64>| {
            d.backoff(attempts, hint.map(Duration::from_secs))
                .as_millis()
        };
        assert_eq!(
            [
                secs(1, None),
                secs(2, None),
                secs(3, None),
                secs(4, None),
                secs(5, None)
            ],
            [1_000, 2_000, 4_000, 8_000, 10_000]
        );
        assert_eq!(secs(1, Some(5)), 5_000);
        assert_eq!(
            secs(1, Some(3_600)),
            10_000,
            "a hint never exceeds the maximum"
        );
        assert_eq!(secs(u32::MAX, None), 10_000, "no overflow");
    }
}

//! The drainer: publishes the outbox with an idempotent producer and removes each entry once
//! the broker acknowledged it. An entry that cannot be published — refused for good (too large,
//! invalid, not authorised, a topic that does not exist) or failing
//! [`MAX_DELIVERY_FAILURES`] times for another reason — moves to the dead letters with the
//! broker's reason, so one bad output never holds up the others. A failure that says only that
//! the broker is away or slow (a timeout, a lost connection, no leader yet) is never counted: an
//! outage of any length holds the outputs back and loses none. A producer that has lost its
//! idempotence state (fenced, or another fatal error: after a broker hung past the delivery
//! timeout, say) fails every record from then on; it is replaced by a new producer, which sends
//! the outbox again from its first entry.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::error::KafkaError;
use rdkafka::message::{DeliveryResult, Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;

use rdkafka::error::KafkaResult;

use super::config::client_config;
use super::outbox::{OutRecord, Outbox};
use crate::config::KafkaSettings;
use crate::event::FieldError;
use crate::store::{DeadLetter, Store};

/// Failed deliveries of one entry after which it is dead-lettered even if each failure looked
/// transient (librdkafka has already retried inside each one, for `message.timeout.ms`).
pub(super) const MAX_DELIVERY_FAILURES: u32 = 5;
/// Bytes of a dead-lettered output's payload kept with its reason.
const DEAD_PAYLOAD_BYTES: usize = 64 * 1024;

/// How long shutdown waits for the outbox to be published.
pub(super) const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The producer's acknowledgements, collected for the drainer.
pub(super) struct Acks {
    pub(super) done: std::sync::Mutex<AckState>,
    pub(super) published: prometheus::IntCounterVec,
}

#[derive(Default)]
pub(super) struct AckState {
    delivered: Vec<u64>,
    /// Sequence, the broker's reason, and what kind of failure it was.
    failed: Vec<(u64, String, Failure)>,
}

impl ClientContext for Acks {}

impl ProducerContext for Acks {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, seq: usize) {
        let mut done = self.done.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(message) => {
                done.delivered.push(seq as u64);
                self.published.with_label_values(&[message.topic()]).inc();
            }
            Err((error, _)) => {
                // Logged per round by the drainer: an outage fails thousands at once.
                tracing::debug!(%error, seq, "Delivery failed; the record stays in the outbox.");
                done.failed
                    .push((seq as u64, error.to_string(), Failure::of(error)));
            }
        }
    }
}

/// The idempotent producer the drainer publishes with.
pub(super) fn producer(
    settings: &KafkaSettings,
    published: &prometheus::IntCounterVec,
) -> KafkaResult<BaseProducer<Acks>> {
    client_config(settings)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "1")
        .set(
            "message.max.bytes",
            (settings.max_record_bytes.max(1 << 20) * 12).to_string(),
        )
        .create_with_context(Acks {
            done: std::sync::Mutex::default(),
            published: published.clone(),
        })
}

/// Publishes the outbox in order, deleting each entry once acknowledged, until processing has
/// stopped and the outbox is empty. `make` builds the producer, again whenever the one in use
/// has hit a fatal error.
///
/// A record for `changelog` (a partition's checkpoint: its next offset and window state) is a
/// barrier: it is sent only once every record before it has been acknowledged. Kafka orders
/// records within a partition only, and an instance that dies without its disk is succeeded
/// from its last published checkpoint: a checkpoint that overtook its batch's outputs would
/// let the successor skip outputs that were never published.
pub(super) fn drain(
    store: &Store,
    outbox: &Outbox,
    make: &dyn Fn() -> KafkaResult<BaseProducer<Acks>>,
    changelog: &str,
    processed: &AtomicBool,
) {
    let Some(mut producer) = renewed(make, processed) else {
        return;
    };
    let mut cursor = 0u64;
    let mut pause = Pause::default();
    let mut stopping_since: Option<Instant> = None;
    let mut failures: HashMap<u64, u32> = HashMap::new();
    loop {
        if processed.load(Ordering::Acquire) {
            let since = *stopping_since.get_or_insert_with(Instant::now);
            if since.elapsed() > DRAIN_TIMEOUT {
                tracing::warn!(
                    "Stopping with records still in the outbox; they are sent at the next start."
                );
                break;
            }
        }
        // Only released entries: those from `visible` on wait for their events to be indexed.
        let visible = outbox.visible();
        let releasable = visible.saturating_sub(cursor).min(1000) as usize;
        let pending = match Outbox::pending(store, cursor, releasable) {
            Ok(mut pending) => {
                // Acknowledged entries leave gaps, so the scan can reach past `visible`.
                pending.retain(|(seq, _)| *seq < visible);
                pending
            }
            Err(error) => {
                tracing::error!(%error, "Reading the outbox failed.");
                std::thread::sleep(Duration::from_millis(500));
                continue;
            }
        };
        let mut held = false;
        for (seq, record) in &pending {
            // In-flight counts unserved delivery reports too: at 0 every earlier record is
            // acknowledged (or failed, and the cursor was moved back to it last round).
            if record.topic == changelog && producer.in_flight_count() > 0 {
                held = true;
                break;
            }
            match send(&producer, *seq, record) {
                Sent::Queued => {}
                Sent::Later => break,
                Sent::Refused(reason) => bury(store, *seq, Some(record), &reason),
            }
            cursor = seq + 1;
        }
        // Delivery reports are served without waiting: librdkafka's poll rounds the rest of a
        // timeout down to whole milliseconds, so rdkafka's loop spins through the last one, and
        // a 2 ms poll here kept a core a third busy reading the clock (perf, bench run).
        producer.poll(Duration::ZERO);
        if pending.is_empty() || held {
            std::thread::sleep(Duration::from_millis(1));
        }
        let (delivered, failed) = {
            let mut done = producer
                .context()
                .done
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            (
                std::mem::take(&mut done.delivered),
                std::mem::take(&mut done.failed),
            )
        };
        if !delivered.is_empty() {
            if let Err(error) = store.apply(&Outbox::acknowledge(&delivered)) {
                tracing::error!(%error, "Removing delivered records from the outbox failed.");
            }
            let settled = (producer.in_flight_count() == 0).then_some(cursor);
            outbox.time_acknowledged(&delivered, settled);
        }
        let lost_state = failed
            .iter()
            .find(|(_, _, kind)| *kind == Failure::ProducerState);
        let fatal = producer
            .client()
            .fatal_error()
            .map(|(code, reason)| format!("{code:?}: {reason}"));
        if let Some(reason) = fatal.or_else(|| lost_state.map(|(_, reason, _)| reason.clone())) {
            // Its failures say nothing about the records: they are all sent again.
            tracing::error!(%reason, "The producer lost its idempotence state (fenced, or a fatal error); a new one takes over and sends the outbox again from its first entry.");
            drop(producer);
            let Some(next) = renewed(make, processed) else {
                return;
            };
            producer = next;
            cursor = 0;
            std::thread::sleep(pause.next());
            continue;
        }
        if let Some((_, reason, _)) = failed.first() {
            tracing::warn!(failed = failed.len(), first = %reason, "Deliveries failed; those records stay in the outbox and are sent again.");
        }
        let mut again: Option<u64> = None;
        for (seq, reason, kind) in failed {
            let count = failures.entry(seq).or_insert(0);
            if kind == Failure::Other || kind == Failure::ForGood {
                *count += 1;
            }
            if kind == Failure::ForGood || *count >= MAX_DELIVERY_FAILURES {
                let reason = format!("not published after {count} attempt(s): {reason}");
                failures.remove(&seq);
                bury(store, seq, None, &reason);
            } else {
                again = Some(again.map_or(seq, |a| a.min(seq)));
            }
        }
        if let Some(first) = again {
            // Send again from the first failure, after a pause that grows while failures go on
            // (a broker that fails every record at once must not be asked again in a tight
            // loop); later entries may go twice, byte-identical.
            cursor = cursor.min(first);
            std::thread::sleep(pause.next());
        } else if !delivered.is_empty() {
            pause = Pause::default();
        }
        if stopping_since.is_some() && pending.is_empty() && producer.in_flight_count() == 0 {
            let empty = Outbox::pending(store, 0, 1)
                .map(|p| p.is_empty())
                .unwrap_or(true);
            if empty {
                break;
            }
        }
    }
    if let Err(error) = producer.flush(Duration::from_secs(5)) {
        tracing::warn!(%error, "Flushing the producer failed.");
    }
}

/// The wait before sending failed records again: 50 ms, doubling to 5 s while failures go on.
#[derive(Default)]
struct Pause(u32);

impl Pause {
    fn next(&mut self) -> Duration {
        let wait = Duration::from_millis(50) * 2u32.pow(self.0.min(7));
        self.0 += 1;
        wait.min(Duration::from_secs(5))
    }
}

/// A new producer, tried every second until one is made or processing has stopped.
fn renewed(
    make: &dyn Fn() -> KafkaResult<BaseProducer<Acks>>,
    processed: &AtomicBool,
) -> Option<BaseProducer<Acks>> {
    loop {
        match make() {
            Ok(producer) => return Some(producer),
            Err(error) => {
                tracing::error!(%error, "Creating the Kafka producer failed; trying again in 1 s.");
                if processed.load(Ordering::Acquire) {
                    return None;
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
}

/// What handing a record to the producer came to.
enum Sent {
    /// Queued; its delivery report comes later.
    Queued,
    /// Not now (the drainer tries again later).
    Later,
    /// Refused for good, with the reason.
    Refused(String),
}

/// Hands a record to the producer.
fn send(producer: &BaseProducer<Acks>, seq: u64, record: &OutRecord) -> Sent {
    loop {
        let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
        for (name, value) in &record.headers {
            headers = headers.insert(Header {
                key: name,
                value: Some(value.as_slice()),
            });
        }
        let mut out = BaseRecord::<[u8], [u8], usize>::with_opaque_to(&record.topic, seq as usize)
            .headers(headers);
        // An empty value goes out as null: a tombstone (a deleted event's key).
        if !record.payload.is_empty() {
            out = out.payload(record.payload.as_slice());
        }
        if let Some(key) = &record.key {
            out = out.key(key.as_slice());
        }
        if let Some(partition) = record.partition {
            out = out.partition(partition);
        }
        match producer.send(out) {
            Ok(()) => return Sent::Queued,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                producer.poll(Duration::from_millis(10));
            }
            Err((error, _)) if refused_for_good(&error) => {
                tracing::error!(%error, seq, topic = %record.topic, "The producer refused a record for good; it goes to the dead letters.");
                return Sent::Refused(error.to_string());
            }
            Err((error, _)) => {
                tracing::error!(%error, seq, "Producing failed; trying again shortly.");
                std::thread::sleep(Duration::from_millis(200));
                return Sent::Later;
            }
        }
    }
}

/// What a failed delivery says about the record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Failure {
    /// Refused in a way no retry changes.
    ForGood,
    /// The broker is away or slow: says nothing about the record; never counted.
    Outage,
    /// The producer lost its idempotence state (fenced, an unknown id or epoch, its sequence
    /// out of step): says nothing about the record; never counted, and the producer is replaced.
    ProducerState,
    /// Anything else: retried, and counted towards [`MAX_DELIVERY_FAILURES`].
    Other,
}

impl Failure {
    pub(super) fn of(error: &KafkaError) -> Self {
        if refused_for_good(error) {
            Self::ForGood
        } else if producer_state(error) {
            Self::ProducerState
        } else if outage(error) {
            Self::Outage
        } else {
            Self::Other
        }
    }
}

/// Whether a failure says only that the broker is unreachable, slow or electing a leader.
fn outage(error: &KafkaError) -> bool {
    let KafkaError::MessageProduction(code) = error else {
        return false;
    };
    matches!(
        code,
        RDKafkaErrorCode::MessageTimedOut
            | RDKafkaErrorCode::BrokerTransportFailure
            | RDKafkaErrorCode::AllBrokersDown
            | RDKafkaErrorCode::OperationTimedOut
            | RDKafkaErrorCode::RequestTimedOut
            | RDKafkaErrorCode::NetworkException
            | RDKafkaErrorCode::LeaderNotAvailable
            | RDKafkaErrorCode::NotLeaderForPartition
            | RDKafkaErrorCode::NotEnoughReplicas
            | RDKafkaErrorCode::NotEnoughReplicasAfterAppend
    )
}

/// Whether a failure says the producer's idempotence state is gone (a new producer is needed).
fn producer_state(error: &KafkaError) -> bool {
    let KafkaError::MessageProduction(code) = error else {
        return false;
    };
    matches!(
        code,
        RDKafkaErrorCode::Fatal
            | RDKafkaErrorCode::ProducerFenced
            | RDKafkaErrorCode::InvalidProducerEpoch
            | RDKafkaErrorCode::UnknownProducerId
            | RDKafkaErrorCode::OutOfOrderSequenceNumber
    )
}

/// Whether the producer or the broker refused a record in a way no retry changes.
fn refused_for_good(error: &KafkaError) -> bool {
    let KafkaError::MessageProduction(code) = error else {
        return false;
    };
    matches!(
        code,
        RDKafkaErrorCode::MessageSizeTooLarge
            | RDKafkaErrorCode::InvalidMessageSize
            | RDKafkaErrorCode::InvalidMessage
            | RDKafkaErrorCode::InvalidRecord
            | RDKafkaErrorCode::BadMessage
            | RDKafkaErrorCode::InvalidTopic
            | RDKafkaErrorCode::UnknownTopic
            | RDKafkaErrorCode::TopicAuthorizationFailed
            | RDKafkaErrorCode::PolicyViolation
            | RDKafkaErrorCode::InvalidArgument
    )
}

/// Moves outbox entry `seq` to the dead letters with `reason` and removes it from the outbox.
/// A failure to write either is logged; the entry then stays and is tried again.
fn bury(store: &Store, seq: u64, record: Option<&OutRecord>, reason: &str) {
    let found;
    let record = match record {
        Some(record) => Some(record),
        None => {
            found = Outbox::pending(store, seq, 1)
                .ok()
                .and_then(|mut p| p.pop().filter(|(s, _)| *s == seq).map(|(_, r)| r));
            found.as_ref()
        }
    };
    let topic = record.map_or("?", |r| r.topic.as_str());
    tracing::error!(
        seq,
        topic,
        reason,
        "An output record could not be published; it is in the dead letters."
    );
    let raw = record.map_or_else(String::new, |r| {
        String::from_utf8_lossy(&r.payload[..r.payload.len().min(DEAD_PAYLOAD_BYTES)]).into_owned()
    });
    let letter = DeadLetter {
        source: format!("kafka-output:{topic}"),
        error: FieldError::new(seq, "record", reason),
        raw,
        at_ms: chrono::Utc::now().timestamp_millis(),
    };
    if let Err(error) = store
        .put_dead_letters(&[letter])
        .and_then(|_| store.apply(&Outbox::acknowledge(&[seq])))
    {
        tracing::error!(%error, seq, "Dead-lettering an output record failed; it stays in the outbox.");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_is_never_counted_against_a_record_and_a_refusal_is_final() {
        let of = |code| Failure::of(&KafkaError::MessageProduction(code));
        for code in [
            RDKafkaErrorCode::MessageTimedOut,
            RDKafkaErrorCode::AllBrokersDown,
            RDKafkaErrorCode::BrokerTransportFailure,
            RDKafkaErrorCode::RequestTimedOut,
            RDKafkaErrorCode::NotLeaderForPartition,
        ] {
            assert_eq!(of(code), Failure::Outage, "{code:?}");
        }
        for code in [
            RDKafkaErrorCode::MessageSizeTooLarge,
            RDKafkaErrorCode::UnknownTopic,
            RDKafkaErrorCode::TopicAuthorizationFailed,
        ] {
            assert_eq!(of(code), Failure::ForGood, "{code:?}");
        }
        assert_eq!(of(RDKafkaErrorCode::ProducerFenced), Failure::ProducerState);
        assert_eq!(
            of(RDKafkaErrorCode::OutOfOrderSequenceNumber),
            Failure::ProducerState
        );
        assert_eq!(of(RDKafkaErrorCode::InvalidRequiredAcks), Failure::Other);
        assert_eq!(Failure::of(&KafkaError::Canceled), Failure::Other);
    }
}

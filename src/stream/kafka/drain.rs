//! The drainer: publishes the outbox with an idempotent producer and removes each entry once
//! the broker acknowledged it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::error::KafkaError;
use rdkafka::message::{DeliveryResult, Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};

use super::outbox::{OutRecord, Outbox};
use crate::store::Store;

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
    failed: Vec<u64>,
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
                tracing::warn!(%error, seq, "Delivery failed; the record stays in the outbox.");
                done.failed.push(seq as u64);
            }
        }
    }
}

/// Publishes the outbox in order, deleting each entry once acknowledged, until processing has
/// stopped and the outbox is empty.
pub(super) fn drain(
    store: &Store,
    outbox: &Outbox,
    producer: &BaseProducer<Acks>,
    processed: &AtomicBool,
) {
    let mut cursor = 0u64;
    let mut stopping_since: Option<Instant> = None;
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
        for (seq, record) in &pending {
            if !send(producer, *seq, record) {
                break;
            }
            cursor = seq + 1;
        }
        // Delivery reports are served without waiting: librdkafka's poll rounds the rest of a
        // timeout down to whole milliseconds, so rdkafka's loop spins through the last one, and
        // a 2 ms poll here kept a core a third busy reading the clock (perf, bench run).
        producer.poll(Duration::ZERO);
        if pending.is_empty() {
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
        if !delivered.is_empty()
            && let Err(error) = store.apply(&Outbox::acknowledge(&delivered))
        {
            tracing::error!(%error, "Removing delivered records from the outbox failed.");
        }
        if let Some(first) = failed.iter().min() {
            // Send again from the first failure; later entries may go twice, byte-identical.
            cursor = cursor.min(*first);
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

/// Hands a record to the producer; false when it refused it (the drainer tries again later).
fn send(producer: &BaseProducer<Acks>, seq: u64, record: &OutRecord) -> bool {
    loop {
        let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
        for (name, value) in &record.headers {
            headers = headers.insert(Header {
                key: name,
                value: Some(value.as_slice()),
            });
        }
        let mut out = BaseRecord::with_opaque_to(&record.topic, seq as usize)
            .payload(record.payload.as_slice())
            .headers(headers);
        if let Some(key) = &record.key {
            out = out.key(key.as_slice());
        }
        if let Some(partition) = record.partition {
            out = out.partition(partition);
        }
        match producer.send(out) {
            Ok(()) => return true,
            Err((
                KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull),
                _,
            )) => {
                producer.poll(Duration::from_millis(10));
            }
            Err((error, _)) => {
                tracing::error!(%error, seq, "Producing failed; trying again shortly.");
                std::thread::sleep(Duration::from_millis(200));
                return false;
            }
        }
    }
}

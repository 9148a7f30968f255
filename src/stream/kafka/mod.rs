//! Kafka streaming: the three input topics through the same stages as the embedded default,
//! with effectively-exactly-once processing built on RocksDB (see `outbox`).
//!
//! One consumer thread reads the inputs in batches. Each run of consecutive records of one
//! kind goes through the pipeline, and the state it changes, the input offsets that caused it
//! and the records it publishes (enriched events, dead letters) commit in one RocksDB batch. A
//! drainer thread publishes the outbox with an idempotent producer and removes each entry once
//! the broker acknowledged it. On assignment the consumer starts each partition at the offset
//! in its own store, so no input is applied twice and no output is lost; an output sent twice
//! (a crash between the broker's acknowledgement and the delete) is byte-identical and keyed by
//! event id. Group offsets are committed too, for lag monitoring.
//!
//! One job per file: `processor` (the consumer loop), `tables` (the weather and sensor tables),
//! `rebalance` (assignment and the changelog restore), `state` (window state in the store),
//! `outputs` (what a run queues), `drain` (publishing the outbox) and `config` (client settings).

/// Record formats on the topics: `firesight_core::codec`, with the registry client's
/// [`WithRegistry`](registry::WithRegistry) beside it.
pub mod codec {
    pub use super::registry::WithRegistry;
    pub use firesight_core::codec::*;
}
/// Debezium change events on the input topics: `firesight_core::debezium`.
pub use firesight_core::debezium;
mod config;
mod drain;
mod granules;
mod lag;
pub mod outbox;
mod outputs;
mod processor;
mod rebalance;
mod registry;
mod state;
mod tables;
mod trace;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};

use self::codec::{Schemas, WithRegistry};
use self::config::consumer_config;
use self::drain::{DRAIN_TIMEOUT, drain};
use self::outbox::Outbox;
use self::processor::Processor;
use self::rebalance::Rebalancer;
use self::state::States;
use self::tables::table_consumer;
use super::pipeline::Pipeline;
use crate::config::Settings;

/// Late-record header: the operators whose window had closed (`tumbling,session,hopping`).
pub const HEADER_LATE_FOR: &str = "firesight-late-for";
/// Late-record header: the partition's stream time on arrival, ms.
pub const HEADER_STREAM_TIME: &str = "firesight-stream-time";
/// Late-record header: the record's event time, ms.
pub const HEADER_EVENT_TIME: &str = "firesight-event-time";
/// Alert header: the alert's kind (`growth`).
pub const HEADER_ALERT: &str = "firesight-alert";
/// Dead-letter header: the field at fault (`$` for the whole record).
pub const HEADER_FIELD: &str = "firesight-error-field";
/// Dead-letter header: the reason in words.
pub const HEADER_REASON: &str = "firesight-error-reason";
/// Dead-letter header: the input topic.
pub const HEADER_TOPIC: &str = "firesight-source-topic";
/// Dead-letter header: the input partition (decimal).
pub const HEADER_PARTITION: &str = "firesight-source-partition";
/// Dead-letter header: the input offset (decimal).
pub const HEADER_OFFSET: &str = "firesight-source-offset";

/// How long shutdown waits for the consumer thread: the outbox's drain (`DRAIN_TIMEOUT`, and
/// the consumer's own margin of 5 s) and then the group's goodbye. librdkafka's consumer close
/// waits for the coordinator's answer with no limit of its own; tansu 0.6.0 was seen not to
/// answer a member that left right after joining (a SIGTERM during start-up held shutdown past
/// 60 s).
const CONSUMER_STOP_TIMEOUT: Duration = Duration::from_secs(DRAIN_TIMEOUT.as_secs() + 5 + 10);

/// A running consumer and drainer; dropping it without [`StreamHandle::stop`] leaves them running.
pub struct StreamHandle {
    stop: Arc<AtomicBool>,
    consumer: Option<JoinHandle<()>>,
    /// Closed (or sent on) when the consumer thread is done, so stopping can wait with a limit.
    consumer_done: std::sync::mpsc::Receiver<()>,
    drainer: Option<JoinHandle<()>>,
}

impl StreamHandle {
    /// Stops consuming, publishes what the outbox holds (up to `DRAIN_TIMEOUT`), leaves the
    /// group (up to [`CONSUMER_STOP_TIMEOUT`] in all), and waits for the drainer.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Release);
        let started = Instant::now();
        match self.consumer_done.recv_timeout(CONSUMER_STOP_TIMEOUT) {
            Ok(()) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                if let Some(handle) = self.consumer.take()
                    && handle.join().is_err()
                {
                    tracing::error!("The Kafka consumer thread panicked.");
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                // Left running: the process is about to exit, and everything the consumer
                // applied is in the store; the group times the member out.
                tracing::warn!(
                    waited_seconds = started.elapsed().as_secs(),
                    "The broker did not answer the consumer's goodbye; stopping without it."
                );
            }
        }
        if let Some(handle) = self.drainer.take()
            && handle.join().is_err()
        {
            tracing::error!("The Kafka outbox thread panicked.");
        }
    }
}

/// Starts consuming the input topics and publishing the outbox.
pub fn start(
    all: &Settings,
    pipeline: Arc<Pipeline>,
    runtime: tokio::runtime::Handle,
) -> anyhow::Result<StreamHandle> {
    let settings = &all.kafka;
    let mut schemas = Schemas::bundled()?;
    if !settings.schema_registry_url.is_empty() {
        let trust = crate::tls::Trust::load(&all.tls)?;
        schemas = schemas.with_registry(&settings.schema_registry_url, &trust, runtime)?;
        if settings.output_format == crate::config::OutputFormat::Avro {
            let subject = format!("{}-value", settings.enriched_topic);
            let id = schemas.register_output(&subject)?;
            tracing::info!(%subject, id, "Enriched records are framed with the registry's schema id.");
        }
    }
    let store = Arc::clone(pipeline.store());
    let outbox = Arc::new(Outbox::open(
        &store,
        pipeline.metrics().stream_output_latency.clone(),
    )?);
    let stop = Arc::new(AtomicBool::new(false));
    let states: States = Arc::default();
    let consumer: BaseConsumer<Rebalancer> = consumer_config(settings, &settings.group_id)
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("group.protocol", "classic")
        // A partition's end tells the granule gate that partition holds no one back.
        .set("enable.partition.eof", "true")
        .create_with_context(Rebalancer {
            store: Arc::clone(&store),
            states: Arc::clone(&states),
            settings: settings.clone(),
            metrics: pipeline.metrics().clone(),
            reassigned: std::sync::Mutex::default(),
        })?;
    // Only detections are shared out by the group: the weather and sensor topics are global
    // tables, read whole by every instance (below), so a detection finds the weather of any
    // station and the group's assignor balances the detections partitions alone.
    consumer.subscribe(&[settings.detections_topic.as_str()])?;
    let tables = [&settings.weather_topic, &settings.sensors_topic]
        .into_iter()
        .map(|topic| table_consumer(settings, &store, pipeline.metrics(), topic))
        .collect::<anyhow::Result<Vec<_>>>()?;
    // Made here once, so a configuration error stops the start; later by the drainer itself.
    let first = std::sync::Mutex::new(Some(drain::producer(
        settings,
        &pipeline.metrics().stream_published,
    )?));
    let make = {
        let (settings, published) = (
            settings.clone(),
            pipeline.metrics().stream_published.clone(),
        );
        move || match first.lock().unwrap_or_else(|p| p.into_inner()).take() {
            Some(producer) => Ok(producer),
            None => drain::producer(&settings, &published),
        }
    };
    let drained_outbox = Arc::clone(&outbox);
    let processor = Processor {
        settings: settings.clone(),
        windows: all.windows.clone(),
        pipeline,
        schemas,
        outbox,
        states,
        last_input: std::sync::Mutex::default(),
        poison_streak: std::sync::atomic::AtomicU32::new(0),
    };
    // Shutdown order: stop processing, publish the whole outbox (the last checkpoints included),
    // and only then leave the group, so the next owner of a partition restores its newest state.
    let processed = Arc::new(AtomicBool::new(false));
    let drained = Arc::new(AtomicBool::new(false));
    let (consumer_finished, consumer_done) = std::sync::mpsc::sync_channel(1);
    let consumer = {
        let (stop, processed, drained) = (
            Arc::clone(&stop),
            Arc::clone(&processed),
            Arc::clone(&drained),
        );
        std::thread::Builder::new()
            .name("kafka-consumer".into())
            .spawn(move || {
                processor.bootstrap(&tables, &stop);
                processor.run(&consumer, &tables, &stop);
                processed.store(true, Ordering::Release);
                let deadline = Instant::now() + DRAIN_TIMEOUT + Duration::from_secs(5);
                while !drained.load(Ordering::Acquire) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(10));
                }
                drop(consumer);
                let _ = consumer_finished.send(());
            })?
    };
    let changelog = settings.changelog();
    let drainer = std::thread::Builder::new()
        .name("kafka-outbox".into())
        .spawn(move || {
            drain(&store, &drained_outbox, &make, &changelog, &processed);
            drained.store(true, Ordering::Release);
        })?;
    Ok(StreamHandle {
        stop,
        consumer: Some(consumer),
        consumer_done,
        drainer: Some(drainer),
    })
}

/// Reads the value of a header, for consumers of the dead-letter topic.
pub fn header<'a>(message: &'a impl Message, name: &str) -> Option<&'a [u8]> {
    let headers = message.headers()?;
    headers.iter().find(|h| h.key == name).and_then(|h| h.value)
}

/// The key producers give a record at a point: its 1° cell (about 110 km), so an incident's
/// detections, and the weather and sensors around them, share a partition.
pub fn cell_key(latitude: f64, longitude: f64) -> String {
    format!("{}:{}", latitude.floor() as i32, longitude.floor() as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cell_keys_are_the_south_west_corner_of_the_degree_cell() {
        assert_eq!(cell_key(-33.86, 151.2), "-34:151");
        assert_eq!(cell_key(0.5, -0.5), "0:-1");
        assert_eq!(cell_key(45.0, -120.0), "45:-120");
        assert_eq!(cell_key(-0.0, 0.0), "0:0");
        // Points of one cell share a key; the next cell over does not.
        assert_eq!(cell_key(-33.01, 151.99), cell_key(-33.99, 151.0));
        assert_ne!(cell_key(-33.99, 151.0), cell_key(-34.01, 151.0));
    }
}

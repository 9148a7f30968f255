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

pub mod codec;
pub mod outbox;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, DeliveryResult, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Offset, TopicPartitionList};

use self::codec::{Input, Refusal, Schemas};
use self::outbox::{OutRecord, Outbox, offset_op, stored_offset};
use super::decode::Rejected;
use super::pipeline::{Pipeline, PipelineError};
use super::windows::{Emitted, PartitionState, Point};
use crate::config::{KafkaSettings, Settings, WindowSettings};
use crate::event::{FieldError, FireDetection, SensorReading, SimilarEvent, WeatherObservation};
use crate::store::{CF_STREAM_STATE, NewEvent, Store, StoreError, StoreOp};

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

/// Longest text of a refused record kept in the store's own dead letters (the topic gets all of it).
const STORED_RAW_BYTES: usize = 64 * 1024;

/// A running consumer and drainer; dropping it without [`StreamHandle::stop`] leaves them running.
pub struct StreamHandle {
    stop: Arc<AtomicBool>,
    consumer: Option<JoinHandle<()>>,
    drainer: Option<JoinHandle<()>>,
}

impl StreamHandle {
    /// Stops consuming, publishes what the outbox holds (up to `drain_for`), and waits.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Release);
        for handle in [self.consumer.take(), self.drainer.take()]
            .into_iter()
            .flatten()
        {
            if handle.join().is_err() {
                tracing::error!("a Kafka thread panicked");
            }
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
        schemas = schemas.with_registry(&settings.schema_registry_url, runtime)?;
        if settings.output_format == "avro" {
            let subject = format!("{}-value", settings.enriched_topic);
            let id = schemas.register_output(&subject)?;
            tracing::info!(%subject, id, "Enriched records are framed with the registry's schema id.");
        }
    }
    let store = Arc::clone(pipeline.store());
    let outbox = Arc::new(Outbox::open(&store)?);
    let stop = Arc::new(AtomicBool::new(false));
    let states: States = Arc::default();
    let consumer: BaseConsumer<Rebalancer> = consumer_config(settings, &settings.group_id)
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("group.protocol", "classic")
        .create_with_context(Rebalancer {
            store: Arc::clone(&store),
            states: Arc::clone(&states),
            settings: settings.clone(),
            metrics: pipeline.metrics().clone(),
        })?;
    // Only detections are shared out by the group: the weather and sensor topics are global
    // tables, read whole by every instance (below), so a detection finds the weather of any
    // station and the group's assignor balances the detections partitions alone.
    consumer.subscribe(&[settings.detections_topic.as_str()])?;
    let tables = [&settings.weather_topic, &settings.sensors_topic]
        .into_iter()
        .map(|topic| table_consumer(settings, &store, topic))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let producer: BaseProducer<Acks> = client_config(settings)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "1")
        .set(
            "message.max.bytes",
            (settings.max_record_bytes.max(1 << 20) * 12).to_string(),
        )
        .create_with_context(Acks {
            done: std::sync::Mutex::default(),
            published: pipeline.metrics().stream_published.clone(),
        })?;
    let drained_outbox = Arc::clone(&outbox);
    let processor = Processor {
        settings: settings.clone(),
        windows: all.windows.clone(),
        pipeline,
        schemas,
        outbox,
        states,
        last_input: std::sync::Mutex::default(),
    };
    // Shutdown order: stop processing, publish the whole outbox (the last checkpoints included),
    // and only then leave the group, so the next owner of a partition restores its newest state.
    let processed = Arc::new(AtomicBool::new(false));
    let drained = Arc::new(AtomicBool::new(false));
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
            })?
    };
    let drainer = std::thread::Builder::new()
        .name("kafka-outbox".into())
        .spawn(move || {
            drain(&store, &drained_outbox, &producer, &processed);
            drained.store(true, Ordering::Release);
        })?;
    Ok(StreamHandle {
        stop,
        consumer: Some(consumer),
        drainer: Some(drainer),
    })
}

/// A global table's consumer: every partition of `topic` assigned (no group), each starting at
/// the offset in the store, reporting when it reaches a partition's end. One per topic, because
/// librdkafka's end-of-partition event names the partition but not the topic.
fn table_consumer(
    settings: &KafkaSettings,
    store: &Store,
    topic: &str,
) -> anyhow::Result<(String, BaseConsumer<Tables>)> {
    let consumer: BaseConsumer<Tables> =
        consumer_config(settings, &format!("{}-tables", settings.group_id))
            .set("enable.partition.eof", "true")
            .create_with_context(Tables)?;
    let assigned = assign_new_partitions(&consumer, store, topic, Duration::from_secs(30))?;
    if assigned == 0 {
        tracing::warn!(
            %topic,
            every_seconds = settings.table_refresh_seconds,
            "table topic has no partitions yet (does it exist?); looking again periodically"
        );
    } else {
        tracing::info!(%topic, partitions = assigned, "reading a global table");
    }
    Ok((topic.to_owned(), consumer))
}

/// Assigns the partitions of a table topic that `consumer` does not read yet, each from the
/// store's offset or the beginning; returns how many. Called at start and then periodically, so
/// partitions added to the topic, or the topic created after start, are read without a restart.
fn assign_new_partitions(
    consumer: &BaseConsumer<Tables>,
    store: &Store,
    topic: &str,
    timeout: Duration,
) -> anyhow::Result<usize> {
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    let assigned: std::collections::HashSet<i32> = consumer
        .assignment()?
        .elements_for_topic(topic)
        .iter()
        .map(|e| e.partition())
        .collect();
    let mut tpl = TopicPartitionList::new();
    let partitions = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()));
    for partition in partitions.filter(|p| !assigned.contains(p)) {
        let start = match stored_offset(store, topic, partition)? {
            Some(next) => Offset::Offset(next),
            None => Offset::Beginning,
        };
        tpl.add_partition_offset(topic, partition, start)?;
    }
    if tpl.count() > 0 {
        consumer.incremental_assign(&tpl)?;
    }
    Ok(tpl.count())
}

/// A consumer's settings: no automatic offsets (FireSight's are in its store), from the start
/// of a partition it has none for, and fetches sized for `max_record_bytes`.
fn consumer_config(settings: &KafkaSettings, group_id: &str) -> ClientConfig {
    let mut config = client_config(settings);
    config
        .set("group.id", group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set(
            "fetch.max.bytes",
            (settings.max_record_bytes.max(1 << 20) * 16).to_string(),
        )
        .set(
            "max.partition.fetch.bytes",
            (settings.max_record_bytes.max(1 << 20) * 2).to_string(),
        );
    config
}

fn client_config(settings: &KafkaSettings) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &settings.brokers);
    for (key, value) in &settings.client {
        config.set(key, value);
    }
    config
}

/// The window state of the partitions this instance holds, loaded from the store on first use.
type States = Arc<std::sync::Mutex<HashMap<(String, i32), PartitionState>>>;

/// Starts every assigned partition at the offset in FireSight's own store, and forgets the
/// window state of revoked ones (it is in the store, and in the new owner's).
struct Rebalancer {
    store: Arc<Store>,
    states: States,
    settings: KafkaSettings,
    metrics: crate::metrics::Metrics,
}

/// One changelog record: a detections partition's next offset and its window state, together,
/// so a restore never pairs a state with the wrong position.
#[derive(serde::Serialize, serde::Deserialize)]
struct Checkpoint {
    offset: i64,
    state: PartitionState,
}

impl Rebalancer {
    fn count_assigned(&self, consumer: &BaseConsumer<Self>) {
        let held = consumer.assignment().map_or(0, |tpl| tpl.count());
        self.metrics.stream_assigned.set(held as i64);
    }

    /// Brings a detections partition's state up to the changelog's newest checkpoint when that
    /// is ahead of the local store (the partition was processed elsewhere meanwhile).
    fn restore(&self, topic: &str, partition: i32) -> anyhow::Result<()> {
        let started = Instant::now();
        let changelog = &self.settings.changelog();
        let consumer: BaseConsumer = client_config(&self.settings)
            .set("group.id", format!("{}-restore", self.settings.group_id))
            .set("enable.auto.commit", "false")
            .create()?;
        let (low, high) =
            consumer.fetch_watermarks(changelog, partition, Duration::from_secs(10))?;
        let wanted = state_key(&(topic.to_owned(), partition));
        let mut newest: Option<Vec<u8>> = None;
        let mut read = 0u64;
        if high > low {
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(changelog, partition, Offset::Offset(low))?;
            consumer.assign(&tpl)?;
            let mut position = low;
            let mut quiet_since = Instant::now();
            while position < high {
                match consumer.poll(Duration::from_millis(200)) {
                    Some(Ok(message)) => {
                        position = message.offset() + 1;
                        read += 1;
                        quiet_since = Instant::now();
                        if message.key() == Some(wanted.as_slice()) {
                            newest = message.payload().map(<[u8]>::to_vec);
                        }
                    }
                    Some(Err(error)) => return Err(error.into()),
                    None => {
                        // The high watermark can count offsets no record occupies (a batch
                        // written by a producer that died): give up waiting for them.
                        if quiet_since.elapsed() > CHANGELOG_QUIET {
                            tracing::warn!(%changelog, partition, position, high, "no changelog records past this offset; restoring from what was read");
                            break;
                        }
                    }
                }
            }
        }
        let local = stored_offset(&self.store, topic, partition)?;
        let restored = match newest {
            Some(bytes) => {
                let checkpoint: Checkpoint = serde_json::from_slice(&bytes)?;
                if local.is_none_or(|l| checkpoint.offset > l) {
                    self.store.apply(&[
                        offset_op(topic, partition, checkpoint.offset),
                        state_op(&(topic.to_owned(), partition), &checkpoint.state)?,
                    ])?;
                    self.metrics.stream_restored.inc();
                    Some(checkpoint.offset)
                } else {
                    None
                }
            }
            None => None,
        };
        let seconds = started.elapsed().as_secs_f64();
        self.metrics.stream_restore_seconds.observe(seconds);
        tracing::info!(%topic, partition, changelog_records = read, ?local, ?restored, seconds, "restored from the changelog");
        Ok(())
    }
}

impl ClientContext for Rebalancer {}

/// The table consumers' context: reaching a partition's end is what they ask to be told, not
/// an error, so librdkafka's copy of that event is not logged as one.
struct Tables;

impl ClientContext for Tables {
    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::PartitionEOF) {
            tracing::trace!(%reason, "table partition end");
        } else {
            tracing::error!(%error, %reason, "librdkafka");
        }
    }
}

impl ConsumerContext for Tables {}

impl ConsumerContext for Rebalancer {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        self.metrics.stream_rebalances.inc();
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let result = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let partitions: Vec<(String, i32)> = tpl
                    .elements()
                    .iter()
                    .map(|e| (e.topic().to_owned(), e.partition()))
                    .collect();
                for (topic, partition) in partitions {
                    if topic == self.settings.detections_topic {
                        self.states
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .remove(&(topic.clone(), partition));
                        if let Err(error) = self.restore(&topic, partition) {
                            tracing::error!(%topic, partition, %error, "restoring from the changelog failed; going on with the local state");
                        }
                    }
                    match stored_offset(&self.store, &topic, partition) {
                        Ok(Some(next)) => {
                            if let Err(error) =
                                tpl.set_partition_offset(&topic, partition, Offset::Offset(next))
                            {
                                tracing::error!(%topic, partition, %error, "cannot set the start offset");
                            }
                            tracing::info!(%topic, partition, next, "assigned; resuming at the stored offset");
                        }
                        Ok(None) => tracing::info!(%topic, partition, "assigned; no stored offset"),
                        Err(error) => {
                            tracing::error!(%topic, partition, %error, "reading the stored offset failed")
                        }
                    }
                }
                let result = if cooperative {
                    consumer.incremental_assign(tpl)
                } else {
                    consumer.assign(tpl)
                };
                self.count_assigned(consumer);
                result
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                tracing::info!(partitions = tpl.count(), "partitions revoked");
                let mut states = self.states.lock().unwrap_or_else(|p| p.into_inner());
                for element in tpl.elements() {
                    states.remove(&(element.topic().to_owned(), element.partition()));
                }
                drop(states);
                let result = if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                };
                self.count_assigned(consumer);
                result
            }
            other => {
                tracing::error!(?other, "rebalance error");
                consumer.unassign()
            }
        };
        if let Err(error) = result {
            tracing::error!(%error, "applying the rebalance failed");
        }
    }
}

/// A decoded run: the items with their index in the run, and the refused records.
type Decoded<T> = (Vec<(u64, T)>, Vec<(usize, Refusal)>);

/// One input record, detached from the consumer.
struct Polled {
    topic: String,
    partition: i32,
    offset: i64,
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
}

impl Polled {
    fn of(message: &BorrowedMessage<'_>) -> Self {
        Self {
            topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().map(<[u8]>::to_vec).unwrap_or_default(),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Detection,
    Weather,
    Sensor,
}

struct Processor {
    settings: KafkaSettings,
    windows: WindowSettings,
    pipeline: Arc<Pipeline>,
    schemas: Schemas,
    outbox: Arc<Outbox>,
    states: States,
    /// When each detection partition last had input (for the idle close).
    last_input: std::sync::Mutex<HashMap<(String, i32), Instant>>,
}

impl Processor {
    /// Reads the tables up to their ends before any detection is processed, so start-up joins
    /// against loaded tables; gives up after `table_bootstrap_seconds` (the rest follows).
    fn bootstrap(&self, tables: &[(String, BaseConsumer<Tables>)], stop: &AtomicBool) {
        let started = Instant::now();
        let limit = Duration::from_secs(self.settings.table_bootstrap_seconds);
        let mut pending: Vec<std::collections::HashSet<i32>> = tables
            .iter()
            .map(|(_, consumer)| {
                consumer
                    .assignment()
                    .map(|tpl| tpl.elements().iter().map(|e| e.partition()).collect())
                    .unwrap_or_default()
            })
            .collect();
        let mut read = 0;
        while pending.iter().any(|p| !p.is_empty()) && !stop.load(Ordering::Acquire) {
            if started.elapsed() > limit {
                let partitions: usize = pending.iter().map(|p| p.len()).sum();
                tracing::warn!(
                    partitions,
                    read,
                    "tables not at their ends after table_bootstrap_seconds; processing detections while they catch up"
                );
                return;
            }
            for ((_, consumer), pending) in tables.iter().zip(&mut pending) {
                let mut ends = Vec::new();
                let batch = self.poll_batch(consumer, Duration::from_millis(50), &mut ends);
                read += batch.len();
                self.process_table_batch(consumer, &batch);
                for partition in ends {
                    pending.remove(&partition);
                }
            }
        }
        tracing::info!(
            read,
            seconds = started.elapsed().as_secs_f64(),
            "weather and sensor tables loaded"
        );
    }

    /// Starts reading table partitions that appeared since the last look.
    fn find_table_partitions(&self, tables: &[(String, BaseConsumer<Tables>)]) {
        let store = self.pipeline.store();
        for (topic, consumer) in tables {
            match assign_new_partitions(consumer, store, topic, Duration::from_secs(5)) {
                Ok(0) => {}
                Ok(partitions) => {
                    tracing::info!(%topic, partitions, "new table partitions: reading them");
                }
                Err(error) => {
                    tracing::warn!(%topic, %error, "looking for new table partitions failed");
                }
            }
        }
    }

    /// Processes a batch of table records; on failure seeks back to the stored offsets.
    fn process_table_batch(&self, tables: &BaseConsumer<Tables>, batch: &[Polled]) {
        if batch.is_empty() {
            return;
        }
        match self.process(batch) {
            Ok(()) => self.outbox.release(),
            Err(error) => {
                tracing::error!(%error, "processing a table batch failed; rewinding to the stored offsets");
                rewind(self.pipeline.store(), tables, batch);
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }

    fn run(
        &self,
        consumer: &BaseConsumer<Rebalancer>,
        tables: &[(String, BaseConsumer<Tables>)],
        stop: &AtomicBool,
    ) {
        let refresh = Duration::from_secs(self.settings.table_refresh_seconds);
        let mut refreshed = Instant::now();
        while !stop.load(Ordering::Acquire) {
            if refreshed.elapsed() >= refresh {
                self.find_table_partitions(tables);
                refreshed = Instant::now();
            }
            // Table records first: they are what the detections after them join against.
            for (_, table) in tables {
                let updates = self.poll_batch(table, Duration::ZERO, &mut Vec::new());
                self.process_table_batch(table, &updates);
            }
            let batch = self.poll_batch(consumer, Duration::from_millis(100), &mut Vec::new());
            if batch.is_empty() {
                match self.close_idle() {
                    Ok(()) => self.outbox.release(),
                    Err(error) => {
                        tracing::error!(%error, "closing idle partitions failed");
                        self.forget_states();
                    }
                }
                continue;
            }
            match self.process(&batch) {
                Ok(()) => {
                    self.outbox.release();
                    self.commit_group(consumer, &batch);
                }
                Err(error) => {
                    // Nothing of the failed run was committed: go back to the store's offsets
                    // and window state.
                    tracing::error!(%error, "processing a batch failed; rewinding to the stored offsets");
                    self.forget_states();
                    rewind(self.pipeline.store(), consumer, &batch);
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }
    }

    /// Up to `max_batch` records: waits `wait` for the first, then `linger_ms` for the rest.
    /// Partitions whose end the consumer reached are added to `ends`.
    fn poll_batch<C: ConsumerContext>(
        &self,
        consumer: &BaseConsumer<C>,
        wait: Duration,
        ends: &mut Vec<i32>,
    ) -> Vec<Polled> {
        let linger = Duration::from_millis(self.settings.linger_ms);
        let mut batch = Vec::new();
        let mut deadline: Option<Instant> = None;
        while batch.len() < self.settings.max_batch {
            let timeout = match deadline {
                None => wait,
                Some(at) => at.saturating_duration_since(Instant::now()),
            };
            match consumer.poll(timeout) {
                Some(Ok(message)) => {
                    batch.push(Polled::of(&message));
                    deadline.get_or_insert_with(|| Instant::now() + linger);
                }
                Some(Err(KafkaError::PartitionEOF(partition))) => {
                    ends.push(partition);
                    if deadline.is_none() {
                        break;
                    }
                }
                Some(Err(error)) => {
                    tracing::warn!(%error, "consumer error");
                    if deadline.is_none() {
                        break;
                    }
                }
                None => break,
            }
        }
        batch
    }

    fn kind(&self, topic: &str) -> Option<Kind> {
        let s = &self.settings;
        if topic == s.detections_topic {
            Some(Kind::Detection)
        } else if topic == s.weather_topic {
            Some(Kind::Weather)
        } else if topic == s.sensors_topic {
            Some(Kind::Sensor)
        } else {
            None
        }
    }

    /// Processes runs of one kind, each committed with its offsets and outputs.
    fn process(&self, batch: &[Polled]) -> Result<(), StreamError> {
        self.count_gaps(batch)?;
        let mut start = 0;
        while start < batch.len() {
            let kind = self.kind(&batch[start].topic);
            let end = batch[start..]
                .iter()
                .position(|p| self.kind(&p.topic) != kind)
                .map_or(batch.len(), |n| start + n);
            let run = &batch[start..end];
            match kind {
                Some(Kind::Detection) => self.detections(run)?,
                Some(Kind::Weather) => self.weather(run)?,
                Some(Kind::Sensor) => self.sensors(run)?,
                None => {
                    tracing::warn!(topic = %run[0].topic, "record from a topic FireSight does not read");
                }
            }
            start = end;
        }
        Ok(())
    }

    /// Counts and logs offsets the broker skipped on each partition of a batch: from the stored
    /// offset to the first record, then between records. Compaction and transaction markers
    /// leave such gaps on purpose; on an input topic that has neither, a gap is records the
    /// broker never delivered (tansu 0.6.0 does this after a seek into the middle of a producer
    /// batch), and this is where they become visible rather than lost without a trace.
    fn count_gaps(&self, batch: &[Polled]) -> Result<(), PipelineError> {
        let mut expected: HashMap<(&str, i32), Option<i64>> = HashMap::new();
        for record in batch {
            let key = (record.topic.as_str(), record.partition);
            let next = match expected.get(&key) {
                Some(next) => *next,
                None => stored_offset(self.pipeline.store(), key.0, key.1)?,
            };
            if let Some(next) = next
                && record.offset > next
            {
                let skipped = record.offset - next;
                tracing::warn!(topic = %record.topic, partition = record.partition, from = next, to = record.offset, skipped, "offsets skipped: the broker delivered no records for them");
                self.pipeline
                    .metrics()
                    .stream_offset_gaps
                    .with_label_values(&[&record.topic])
                    .inc_by(skipped as u64);
            }
            expected.insert(key, Some(record.offset + 1));
        }
        Ok(())
    }

    /// Decodes a run: the items with their index in the run, and the refused records.
    fn decode<T: Input>(&self, run: &[Polled]) -> Result<Decoded<T>, StreamError> {
        let mut items = Vec::with_capacity(run.len());
        let mut refused = Vec::new();
        for (i, record) in run.iter().enumerate() {
            if record.payload.len() > self.settings.max_record_bytes {
                refused.push((
                    i,
                    Refusal::Format(format!(
                        "record is {} bytes, over kafka.max_record_bytes = {}",
                        record.payload.len(),
                        self.settings.max_record_bytes
                    )),
                ));
                continue;
            }
            match self.schemas.decode::<T>(&record.payload) {
                Ok(item) => items.push((i as u64, item)),
                Err(Refusal::Schema(error)) => return Err(StreamError::Schema(error.to_string())),
                Err(refusal) => refused.push((i, refusal)),
            }
        }
        Ok((items, refused))
    }

    /// The writes every run commits: its offsets and its dead letters.
    fn bookkeeping(
        &self,
        kind: &str,
        run: &[Polled],
        refused: &[(usize, Refusal)],
    ) -> Result<Vec<StoreOp>, PipelineError> {
        let mut ops = self.offsets(run);
        let mut letters = Vec::with_capacity(refused.len());
        for (i, refusal) in refused {
            let record = &run[*i];
            ops.push(self.outbox.push(&self.dead_letter(record, refusal)));
            let raw = String::from_utf8_lossy(
                &record.payload[..record.payload.len().min(STORED_RAW_BYTES)],
            );
            letters.push(Rejected {
                error: FieldError::new(1, refusal.field(), refusal.reason()),
                raw: raw.into_owned(),
            });
            tracing::debug!(topic = %record.topic, partition = record.partition, offset = record.offset, reason = %refusal.reason(), "refused");
        }
        if !letters.is_empty() {
            let source = format!("kafka:{}", run[0].topic);
            self.pipeline.dead_letter(&source, kind, &letters)?;
        }
        Ok(ops)
    }

    fn dead_letter(&self, record: &Polled, refusal: &Refusal) -> OutRecord {
        OutRecord {
            topic: self.settings.dead_letter_topic.clone(),
            partition: None,
            key: record.key.clone(),
            payload: record.payload.clone(),
            headers: vec![
                (HEADER_FIELD.into(), refusal.field().as_bytes().to_vec()),
                (HEADER_REASON.into(), refusal.reason().into_bytes()),
                (HEADER_TOPIC.into(), record.topic.as_bytes().to_vec()),
                (
                    HEADER_PARTITION.into(),
                    record.partition.to_string().into_bytes(),
                ),
                (HEADER_OFFSET.into(), record.offset.to_string().into_bytes()),
            ],
        }
    }

    fn forget_states(&self) {
        self.states
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// Closes every window of partitions that had no input for `idle_close_seconds`.
    fn close_idle(&self) -> Result<(), PipelineError> {
        let idle_for = Duration::from_secs(u64::from(self.windows.idle_close_seconds));
        let idle: Vec<(String, i32)> = self
            .last_input
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(_, at)| at.elapsed() >= idle_for)
            .map(|(key, _)| key.clone())
            .collect();
        let mut states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        let mut ops = Vec::new();
        for key in &idle {
            let Some(state) = states.get_mut(key) else {
                continue;
            };
            if state.is_quiet() {
                continue;
            }
            let emitted = state.flush(&self.windows);
            tracing::info!(topic = %key.0, partition = key.1, incidents = emitted.incidents.len(), "idle partition: closing its windows");
            self.route(&emitted, None, &mut ops);
            ops.push(state_op(key, state)?);
            let offset = stored_offset(self.pipeline.store(), &key.0, key.1)?.unwrap_or(0);
            ops.push(self.checkpoint(key, offset, state));
        }
        drop(states);
        self.last_input
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|key, _| !idle.contains(key));
        self.pipeline.store().apply(&ops)?;
        Ok(())
    }

    fn detections(&self, run: &[Polled]) -> Result<(), StreamError> {
        let (items, refused) = self.decode::<FireDetection>(run)?;
        let mut first_of: HashMap<String, usize> = HashMap::with_capacity(items.len());
        for (i, detection) in &items {
            first_of.entry(detection.event_id()).or_insert(*i as usize);
        }
        {
            let now = Instant::now();
            let mut last = self.last_input.lock().unwrap_or_else(|p| p.into_inner());
            for record in run {
                last.insert((record.topic.clone(), record.partition), now);
            }
        }
        let outcome = self.pipeline.ingest_detections_with(items, |_, new| {
            let mut ops = self.bookkeeping("firms", run, &refused)?;
            self.windows_over(run, &first_of, new, &mut ops)?;
            self.checkpoints(run, &mut ops)?;
            self.publish_events(new, &mut ops)?;
            Ok(ops)
        })?;
        tracing::debug!(
            accepted = outcome.accepted,
            duplicates = outcome.duplicates,
            refused = refused.len(),
            spans = ?spans(run),
            "detections"
        );
        Ok(())
    }

    /// Runs each new event through its partition's windows, in partition order: sets its
    /// incident, and queues what the windows emit and the partitions' new state.
    fn windows_over(
        &self,
        run: &[Polled],
        first_of: &HashMap<String, usize>,
        new: &mut [NewEvent],
        ops: &mut Vec<StoreOp>,
    ) -> Result<(), PipelineError> {
        let mut states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        for new_event in new.iter_mut() {
            let event = &mut new_event.event;
            let Some(record) = first_of.get(&event.event_id).and_then(|&i| run.get(i)) else {
                continue;
            };
            let key = (record.topic.clone(), record.partition);
            let state = state_mut(&mut states, self.pipeline.store(), &key)?;
            let emitted = state.on_detection(&point_of(event), &self.windows);
            event.correlation_id = emitted.correlation_id.clone();
            self.route(&emitted, Some(record), ops);
        }
        Ok(())
    }

    /// Stores each partition's window state and queues its checkpoint (next offset and state)
    /// for the changelog.
    fn checkpoints(&self, run: &[Polled], ops: &mut Vec<StoreOp>) -> Result<(), PipelineError> {
        let next = next_offsets(run);
        let mut states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        for ((topic, partition), offset) in next {
            let key = (topic.to_owned(), partition);
            let state = state_mut(&mut states, self.pipeline.store(), &key)?;
            ops.push(state_op(&key, state)?);
            ops.push(self.checkpoint(&key, offset, state));
        }
        Ok(())
    }

    fn checkpoint(&self, key: &(String, i32), offset: i64, state: &PartitionState) -> StoreOp {
        let checkpoint = Checkpoint {
            offset,
            state: state.clone(),
        };
        self.outbox.push(&OutRecord {
            topic: self.settings.changelog(),
            partition: Some(key.1),
            key: Some(state_key(key)),
            payload: json(&checkpoint),
            headers: Vec::new(),
        })
    }

    /// Queues what the windows emitted: late records, alerts, incident changes, active fires.
    fn route(&self, emitted: &Emitted, record: Option<&Polled>, ops: &mut Vec<StoreOp>) {
        if let (Some(late), Some(record)) = (&emitted.late, record) {
            for operator in &late.operators {
                self.pipeline
                    .metrics()
                    .stream_late
                    .with_label_values(&[operator.as_str()])
                    .inc();
            }
            ops.push(self.outbox.push(&OutRecord {
                topic: self.settings.late_topic.clone(),
                partition: None,
                key: record.key.clone(),
                payload: record.payload.clone(),
                headers: vec![
                    (
                        HEADER_LATE_FOR.into(),
                        late.operators.join(",").into_bytes(),
                    ),
                    (
                        HEADER_STREAM_TIME.into(),
                        late.stream_time_ms.to_string().into_bytes(),
                    ),
                    (
                        HEADER_EVENT_TIME.into(),
                        late.event_time_ms.to_string().into_bytes(),
                    ),
                    (HEADER_TOPIC.into(), record.topic.as_bytes().to_vec()),
                    (
                        HEADER_PARTITION.into(),
                        record.partition.to_string().into_bytes(),
                    ),
                    (HEADER_OFFSET.into(), record.offset.to_string().into_bytes()),
                ],
            }));
        }
        let s = &self.settings;
        for alert in &emitted.alerts {
            let growth = vec![(HEADER_ALERT.into(), b"growth".to_vec())];
            ops.push(self.keyed(&s.alerts_topic, &alert.incident_id, json(alert), growth));
        }
        for incident in &emitted.incidents {
            let payload = json(incident);
            ops.push(self.keyed(
                &s.incidents_topic,
                &incident.incident_id,
                payload,
                Vec::new(),
            ));
        }
        for window in &emitted.active_fires {
            ops.push(self.keyed(
                &s.active_fires_topic,
                &window.region,
                json(window),
                Vec::new(),
            ));
        }
    }

    /// The write that queues a window output keyed by `key`, partitioned by the producer.
    fn keyed(
        &self,
        topic: &str,
        key: &str,
        payload: Vec<u8>,
        headers: Vec<(String, Vec<u8>)>,
    ) -> StoreOp {
        self.outbox.push(&OutRecord {
            topic: topic.to_owned(),
            partition: None,
            key: Some(key.as_bytes().to_vec()),
            payload,
            headers,
        })
    }

    /// Queues each new event's enriched record, with its nearest earlier events.
    fn publish_events(
        &self,
        new: &mut [NewEvent],
        ops: &mut Vec<StoreOp>,
    ) -> Result<(), PipelineError> {
        let space = self.pipeline.space();
        let store = self.pipeline.store();
        for event in new.iter() {
            let mut record = event.event.clone();
            if self.settings.similar_k > 0 {
                // An empty index has no neighbours to give: the list is empty, not absent.
                let hits = if space.index.is_empty() {
                    Vec::new()
                } else {
                    space.index.search(&event.vector, self.settings.similar_k)?
                };
                let model = record.model_version.clone().unwrap_or_default();
                let mut similar = Vec::with_capacity(hits.len());
                for hit in hits {
                    if let Some(stored) = store.vector(hit.seq, &model)? {
                        similar.push(SimilarEvent {
                            event_id: stored.event_id,
                            distance: f64::from(hit.distance),
                        });
                    }
                }
                record.similar_events = Some(similar);
            }
            let payload = if self.settings.output_format == "json" {
                serde_json::to_vec(&record).map_err(crate::store::StoreError::from)?
            } else {
                self.schemas.encode_fire_event(&record).map_err(|reason| {
                    PipelineError::Store(crate::store::StoreError::Corrupt {
                        cf: "kafka_output",
                        reason: format!(
                            "event {} does not encode as FireEventV2: {reason}",
                            record.event_id
                        ),
                    })
                })?
            };
            ops.push(self.outbox.push(&OutRecord {
                topic: self.settings.enriched_topic.clone(),
                partition: None,
                key: Some(record.event_id.into_bytes()),
                payload,
                headers: Vec::new(),
            }));
        }
        Ok(())
    }

    fn weather(&self, run: &[Polled]) -> Result<(), StreamError> {
        let (items, refused) = self.decode::<WeatherObservation>(run)?;
        let source = format!("kafka:{}", self.settings.weather_topic);
        self.pipeline
            .ingest_weather_with(&source, items, |outcome| {
                let mut ops = self.bookkeeping("weather", run, &refused)?;
                // The pipeline refuses observations of unknown stations and contradicting ones (and
                // keeps them as its own dead letters); the line it names is the record's index in the run.
                let rejected: Vec<(usize, Refusal)> = outcome
                    .rejected
                    .iter()
                    .map(|error| (error.line as usize, Refusal::Field(error.clone())))
                    .collect();
                ops.extend(self.bookkeeping_topic_only(run, &rejected));
                Ok(ops)
            })?;
        Ok(())
    }

    fn sensors(&self, run: &[Polled]) -> Result<(), StreamError> {
        let (items, refused) = self.decode::<SensorReading>(run)?;
        self.pipeline
            .ingest_sensors_with(items, |_| self.bookkeeping("sensors", run, &refused))?;
        Ok(())
    }

    /// Dead letters for the topic only (the pipeline already stored them as its own).
    fn bookkeeping_topic_only(&self, run: &[Polled], refused: &[(usize, Refusal)]) -> Vec<StoreOp> {
        refused
            .iter()
            .filter_map(|(i, refusal)| {
                run.get(*i)
                    .map(|record| self.outbox.push(&self.dead_letter(record, refusal)))
            })
            .collect()
    }

    fn offsets(&self, run: &[Polled]) -> Vec<StoreOp> {
        let next = next_offsets(run);
        next.into_iter()
            .map(|((topic, partition), offset)| offset_op(topic, partition, offset))
            .collect()
    }

    /// Commits group offsets (asynchronously) for lag monitoring; FireSight's own are in RocksDB.
    fn commit_group(&self, consumer: &BaseConsumer<Rebalancer>, batch: &[Polled]) {
        let next = next_offsets(batch);
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), offset) in next {
            if let Err(error) = tpl.add_partition_offset(topic, partition, Offset::Offset(offset)) {
                tracing::warn!(%error, "building the group commit");
            }
        }
        if let Err(error) = consumer.commit(&tpl, CommitMode::Async) {
            tracing::debug!(%error, "group offset commit failed (lag figures only)");
        }
    }
}

/// Seeks every partition of a failed batch back to the offset in the store.
fn rewind<C: ConsumerContext>(store: &Store, consumer: &BaseConsumer<C>, batch: &[Polled]) {
    let mut first: HashMap<(&str, i32), i64> = HashMap::new();
    for record in batch {
        let slot = first
            .entry((record.topic.as_str(), record.partition))
            .or_insert(record.offset);
        *slot = (*slot).min(record.offset);
    }
    for ((topic, partition), earliest) in first {
        let offset = match stored_offset(store, topic, partition) {
            Ok(Some(next)) => next,
            _ => earliest,
        };
        if let Err(error) = consumer.seek(
            topic,
            partition,
            Offset::Offset(offset),
            Duration::from_secs(5),
        ) {
            tracing::error!(%topic, partition, %error, "seek failed");
        }
    }
}

/// Each partition's first offset, last offset and record count in a run, for debug logs.
fn spans(records: &[Polled]) -> BTreeMap<i32, (i64, i64, usize)> {
    let mut spans: BTreeMap<i32, (i64, i64, usize)> = BTreeMap::new();
    for record in records {
        let span = spans
            .entry(record.partition)
            .or_insert((record.offset, record.offset, 0));
        span.0 = span.0.min(record.offset);
        span.1 = span.1.max(record.offset);
        span.2 += 1;
    }
    spans
}

/// Each partition's next offset after `records`.
fn next_offsets(records: &[Polled]) -> BTreeMap<(&str, i32), i64> {
    let mut next: BTreeMap<(&str, i32), i64> = BTreeMap::new();
    for record in records {
        let slot = next
            .entry((record.topic.as_str(), record.partition))
            .or_insert(0);
        *slot = (*slot).max(record.offset + 1);
    }
    next
}

/// The JSON form of a window output. They are plain structs of strings and numbers (no maps
/// with non-string keys), which serde_json always serialises.
fn json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

fn state_key(key: &(String, i32)) -> Vec<u8> {
    let mut out = b"partition\0".to_vec();
    out.extend(outbox::offset_key(&key.0, key.1));
    out
}

/// A partition's state, loaded from the store the first time it is needed.
fn state_mut<'a>(
    states: &'a mut HashMap<(String, i32), PartitionState>,
    store: &Store,
    key: &(String, i32),
) -> Result<&'a mut PartitionState, PipelineError> {
    Ok(match states.entry(key.clone()) {
        std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
        std::collections::hash_map::Entry::Vacant(entry) => entry.insert(load_state(store, key)?),
    })
}

fn load_state(store: &Store, key: &(String, i32)) -> Result<PartitionState, PipelineError> {
    match store.get(CF_STREAM_STATE, &state_key(key))? {
        None => Ok(PartitionState::default()),
        Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            PipelineError::Store(StoreError::Corrupt {
                cf: CF_STREAM_STATE,
                reason: format!("window state of {}/{}: {e}", key.0, key.1),
            })
        }),
    }
}

fn state_op(key: &(String, i32), state: &PartitionState) -> Result<StoreOp, PipelineError> {
    let value = serde_json::to_vec(state).map_err(StoreError::from)?;
    Ok(StoreOp::put(CF_STREAM_STATE, state_key(key), value))
}

/// What the windows need of an event. VIIRS gives only a class: low, nominal and high count
/// as 20, 60 and 90 percent (mid-points of the MODIS ranges FIRMS maps to those classes).
fn point_of(event: &crate::event::FireEventV2) -> Point {
    let fire = &event.fire_characteristics;
    let confidence = fire.confidence_percent.map_or_else(
        || match fire.confidence.as_str() {
            "low" => 20.0,
            "high" => 90.0,
            _ => 60.0,
        },
        f64::from,
    );
    Point {
        event_id: event.event_id.clone(),
        time_ms: event.detection_time,
        latitude: event.location.latitude,
        longitude: event.location.longitude,
        frp_mw: fire.frp_mw,
        confidence,
    }
}

/// Why a batch could not be processed (it is read again from the stored offsets).
#[derive(Debug, thiserror::Error)]
enum StreamError {
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error("schema registry unavailable: {0}")]
    Schema(String),
}

/// The producer's acknowledgements, collected for the drainer.
struct Acks {
    done: std::sync::Mutex<AckState>,
    published: prometheus::IntCounterVec,
}

#[derive(Default)]
struct AckState {
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
                tracing::warn!(%error, seq, "delivery failed; the record stays in the outbox");
                done.failed.push(seq as u64);
            }
        }
    }
}

/// How long a restore waits for the next changelog record before taking what it read as all.
const CHANGELOG_QUIET: Duration = Duration::from_secs(2);

/// How long shutdown waits for the outbox to be published.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Publishes the outbox in order, deleting each entry once acknowledged, until processing has
/// stopped and the outbox is empty.
fn drain(store: &Store, outbox: &Outbox, producer: &BaseProducer<Acks>, processed: &AtomicBool) {
    let mut cursor = 0u64;
    let mut stopping_since: Option<Instant> = None;
    loop {
        if processed.load(Ordering::Acquire) {
            let since = *stopping_since.get_or_insert_with(Instant::now);
            if since.elapsed() > DRAIN_TIMEOUT {
                tracing::warn!(
                    "stopping with records still in the outbox; they are sent at the next start"
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
                tracing::error!(%error, "reading the outbox failed");
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
            tracing::error!(%error, "removing delivered records from the outbox failed");
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
        tracing::warn!(%error, "flushing the producer");
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
                tracing::error!(%error, seq, "producing failed; trying again shortly");
                std::thread::sleep(Duration::from_millis(200));
                return false;
            }
        }
    }
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

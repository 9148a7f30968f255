//! The consumer loop: polls the inputs in batches and runs each run of one kind through the
//! pipeline, committing its state, offsets and outputs together.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};

use super::codec::{Input, Refusal, Schemas};
use super::granules::Gate;
use super::outbox::Outbox;
use super::outputs::point_of;
use super::rebalance::Rebalancer;
use super::state::{States, state_mut, state_op};
use super::tables::Tables;
use crate::config::{KafkaSettings, WindowSettings};
use crate::event::{FireDetection, SensorReading, WeatherObservation};
use crate::store::{NewEvent, Store, StoreOp};
use crate::stream::RowChanges;
use crate::stream::ingest::Ingestible;
use crate::stream::insert_thread::{self, Insert};
use crate::stream::pipeline::{PendingInsert, Pipeline, PipelineError};
use firesight_core::debezium::{self, CdcRow, Change, DebeziumMapping};

/// A decoded run: the items with their index in the run, and the refused records.
type Decoded<T> = (Vec<(u64, T)>, Vec<(usize, Refusal)>);

/// One input record, detached from the consumer.
#[derive(Clone)]
pub(super) struct Polled {
    pub(super) topic: String,
    pub(super) partition: i32,
    pub(super) offset: i64,
    pub(super) key: Option<Vec<u8>>,
    pub(super) payload: Vec<u8>,
    /// The record's timestamp (producer's create time or the broker's append time), ms.
    pub(super) timestamp: Option<i64>,
    /// Its W3C trace-context headers, if the producer traced it.
    pub(super) trace: super::trace::TraceHeaders,
    /// When this consumer polled it, for the latency metric.
    pub(super) received: Instant,
}

impl Polled {
    fn of(message: &BorrowedMessage<'_>) -> Self {
        Self {
            topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().map(<[u8]>::to_vec).unwrap_or_default(),
            timestamp: message.timestamp().to_millis(),
            trace: super::trace::headers_of(message),
            received: Instant::now(),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Detection,
    Weather,
    Sensor,
}

impl Kind {
    /// The kind's name in metrics and dead letters, as the other ingest paths name it.
    fn label(self) -> &'static str {
        match self {
            Kind::Detection => "firms",
            Kind::Weather => "weather",
            Kind::Sensor => "sensors",
        }
    }
}

pub(super) struct Processor {
    pub(super) settings: KafkaSettings,
    pub(super) windows: WindowSettings,
    pub(super) pipeline: Arc<Pipeline>,
    pub(super) schemas: Schemas,
    pub(super) outbox: Arc<Outbox>,
    pub(super) states: States,
    /// When each detection partition last had input (for the idle close).
    pub(super) last_input: std::sync::Mutex<HashMap<(String, i32), Instant>>,
    /// Records in a row that failed alone on a bug (see [`Processor::isolate`]).
    pub(super) poison_streak: AtomicU32,
}

/// Records in a row failing alone, with none succeeding between them, after which the stage
/// is taken to be broken rather than the records: they are no longer dead-lettered, and the
/// partition waits (rewound and retried) with the failure in `/readyz`.
const MAX_POISON_STREAK: u32 = 10;

impl Processor {
    pub(super) fn run(
        &self,
        consumer: &BaseConsumer<Rebalancer>,
        tables: &[(String, BaseConsumer<Tables>)],
        stop: &AtomicBool,
    ) {
        // Pipelined: while one batch's new points go into the index on a second thread, the
        // next batch is polled, decoded, correlated, embedded and tracked on this one (it waits
        // for that insert before it searches the index for `similar_events`). One insert at a
        // time, in order.
        std::thread::scope(|scope| self.consume(consumer, tables, stop, scope));
    }

    /// The run loop of [`Processor::run`], its inserts on threads of `scope`.
    fn consume<'s, 'p: 's>(
        &'p self,
        consumer: &BaseConsumer<Rebalancer>,
        tables: &[(String, BaseConsumer<Tables>)],
        stop: &AtomicBool,
        scope: &'s std::thread::Scope<'s, 'p>,
    ) {
        let mut gate = Gate::new(Duration::from_millis(self.settings.granule_grace_ms));
        let mut backlog = false;
        // The insert in flight, which releases its batch's outputs and times its records.
        let mut inserting: Option<Insert<'s, ()>> = None;
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
                if !updates.is_empty() {
                    // A table batch releases every entry queued so far: the insert of the
                    // detections before it is over first.
                    self.finish_insert(inserting.take());
                }
                self.process_table_batch(table, updates);
            }
            let mut ends = Vec::new();
            // While the gate has a backlog to pass on, polling does not wait.
            let wait = if backlog {
                Duration::ZERO
            } else {
                Duration::from_millis(100)
            };
            let polled = self.poll_batch(consumer, wait, &mut ends);
            let reassigned = consumer.context().take_reassigned();
            if !reassigned.is_empty() {
                for partition in reassigned {
                    gate.forget(partition);
                }
                let held: Vec<i32> = consumer
                    .assignment()
                    .map(|tpl| {
                        tpl.elements_for_topic(&self.settings.detections_topic)
                            .iter()
                            .map(|e| e.partition())
                            .collect()
                    })
                    .unwrap_or_default();
                gate.assigned(&held);
            }
            let idle = polled.is_empty();
            let polled = polled
                .into_iter()
                .map(|record| (self.granule(&record), record))
                .collect();
            let passed = Instant::now();
            let mut batch = gate.pass(polled, &ends, self.settings.max_batch, passed);
            backlog = batch.len() >= self.settings.max_batch;
            self.pipeline
                .metrics()
                .stream_granule_held
                .set(gate.held() as i64);
            if batch.is_empty() {
                if idle {
                    self.finish_insert(inserting.take());
                    match self.close_idle() {
                        Ok(()) => self.outbox.release(),
                        Err(error) => {
                            tracing::error!(%error, "Closing idle partitions failed.");
                            self.forget_states();
                        }
                    }
                }
                continue;
            }
            let result = match self.process(&mut batch) {
                Ok(insert) => {
                    // A whole batch went through: the stage works, so a streak ends here.
                    self.poison_streak.store(0, Ordering::Release);
                    Ok(insert)
                }
                Err(StreamError::Pipeline(PipelineError::Panicked { .. })) => {
                    self.forget_states();
                    self.isolate(&batch).map(|()| None)
                }
                Err(other) => Err(other),
            };
            match result {
                Ok(insert) => {
                    // The insert before is over before this one starts (one at a time, in
                    // order), and before anything is released: entries go out once their events
                    // are searchable, and the insert's thread releases its batch's entries.
                    self.finish_insert(inserting.take());
                    // Timed once applied (a batch that fails is read and timed again; records
                    // a resume had applied before are dropped from it by now).
                    let wait = &self.pipeline.metrics().stream_granule_wait;
                    for record in &batch {
                        wait.observe(
                            passed
                                .saturating_duration_since(record.received)
                                .as_secs_f64(),
                        );
                    }
                    let queued = self.outbox.queued();
                    let received = batch.iter().map(|r| r.received).min();
                    match insert {
                        Some(insert) => {
                            inserting = Some(self.start_insert(scope, insert, &batch, queued));
                        }
                        None => {
                            self.outbox.release_to(queued, received);
                            self.time_applied(batch.iter().map(|r| self.applied(r)));
                        }
                    }
                    if !batch.is_empty() {
                        self.commit_group(consumer, &batch);
                    }
                }
                Err(error) => {
                    // Nothing of the failed run was committed: go back to the store's offsets
                    // and window state (what the gate held is read again too).
                    tracing::error!(%error, "Processing a batch failed; rewinding to the stored offsets.");
                    self.forget_states();
                    batch.extend(gate.flush());
                    let back = self.settings.resume_rewind_records;
                    rewind(self.pipeline.store(), consumer, &batch, back);
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }
        self.finish_insert(inserting.take());
    }

    /// Starts `insert` on its own thread ([`insert_thread::start`]), which, when it is over,
    /// releases the outbox entries below `queued` (the batch's) and times the batch's records as
    /// applied.
    fn start_insert<'s, 'p: 's>(
        &'p self,
        scope: &'s std::thread::Scope<'s, 'p>,
        insert: PendingInsert<'p>,
        batch: &[Polled],
        queued: u64,
    ) -> Insert<'s, ()> {
        let applied: Vec<_> = batch.iter().map(|r| self.applied(r)).collect();
        let received = batch.iter().map(|r| r.received).min();
        insert_thread::start(scope, move || {
            let done = self.pipeline.finish_insert(insert);
            // Released even when the insert failed (logged there): the events are stored
            // and committed, and holding their outputs back would hold every later one.
            self.outbox.release_to(queued, received);
            self.applied_or_logged(done, applied);
        })
    }

    /// Waits for the insert in flight, if any.
    fn finish_insert(&self, inserting: Option<Insert<'_, ()>>) {
        if let Some(insert) = inserting
            && insert.join().is_none()
        {
            // `finish_insert` turns a panic in the insert into an error; this is the thread.
            tracing::error!(
                "The index insert's thread failed; its batch is stored but may be missing from the index until a re-index."
            );
        }
    }

    /// An insert ended with `done`: its records are timed as applied, or its failure logged
    /// (the batch is stored and committed; its points are missing from the index until a
    /// re-index).
    fn applied_or_logged(
        &self,
        done: Result<(), PipelineError>,
        applied: Vec<(&'static str, Instant)>,
    ) {
        match done {
            Ok(()) => self.time_applied(applied),
            Err(error) => {
                tracing::error!(%error, records = applied.len(), "A batch's index insert failed; its events are stored but not searchable by vector until a re-index.");
            }
        }
    }

    /// A record's kind and receipt, for [`Processor::time_applied`].
    fn applied(&self, record: &Polled) -> (&'static str, Instant) {
        let kind = self.kind(&record.topic).map_or("unknown", Kind::label);
        (kind, record.received)
    }

    /// After a batch failed on a bug (a stage panicked), runs its records one at a time: the
    /// others are applied, and a record that fails alone is a dead letter naming the stage and
    /// the panic, instead of holding its partition for ever. Records that fail alone
    /// `MAX_POISON_STREAK` times in a row mean the stage is broken, not the records: that stops
    /// the isolation with the error, so the batch is rewound and waits for a fix.
    fn isolate(&self, batch: &[Polled]) -> Result<(), StreamError> {
        tracing::warn!(
            records = batch.len(),
            "A batch failed on a bug; applying its records one at a time to find the one."
        );
        for record in batch {
            let mut one = vec![record.clone()];
            match self.process_in_line(&mut one) {
                Ok(()) => self.poison_streak.store(0, Ordering::Release),
                Err(StreamError::Pipeline(PipelineError::Panicked { stage, message })) => {
                    self.forget_states();
                    let streak = self.poison_streak.fetch_add(1, Ordering::AcqRel) + 1;
                    if streak > MAX_POISON_STREAK {
                        return Err(StreamError::Pipeline(PipelineError::Panicked {
                            stage,
                            message: format!(
                                "{message} ({streak} records in a row failed alone: the stage is broken, not the records; holding)"
                            ),
                        }));
                    }
                    self.poison(record, stage, &message)?;
                }
                Err(other) => return Err(other),
            }
        }
        Ok(())
    }

    /// Observes each applied record's time from its poll to now: stored, indexed, its alerts
    /// queued and its outputs publishable.
    fn time_applied(&self, applied: impl IntoIterator<Item = (&'static str, Instant)>) {
        let latency = &self.pipeline.metrics().ingest_latency;
        for (kind, received) in applied {
            latency
                .with_label_values(&[kind, "kafka"])
                .observe(received.elapsed().as_secs_f64());
        }
    }

    /// Dead-letters one record a stage panicked on, and moves its partition past it.
    fn poison(&self, record: &Polled, stage: &str, message: &str) -> Result<(), StreamError> {
        let kind = self.kind(&record.topic).map_or("unknown", Kind::label);
        let refusal = Refusal::Format(format!(
            "the {stage} stage failed on this record (a bug; reported, the record was not applied): {message}"
        ));
        tracing::error!(topic = %record.topic, partition = record.partition, offset = record.offset, stage, %message, "A record fails alone on a bug; dead-lettered.");
        let ops = self.bookkeeping(kind, std::slice::from_ref(record), &[(0, refusal)])?;
        self.pipeline
            .store()
            .apply(&ops)
            .map_err(PipelineError::from)?;
        Ok(())
    }

    /// A detection record's granule (its acquisition time, ms), for the gate; `None` when it
    /// does not decode (the batch's decode refuses it with the reason).
    fn granule(&self, record: &Polled) -> Option<i64> {
        if record.payload.len() > self.settings.max_record_bytes {
            return None;
        }
        if self.settings.debezium.detections {
            let change = debezium::decode::<FireDetection>(
                record.key.as_deref(),
                &record.payload,
                &self.settings.debezium.detection_table,
            );
            return match change.ok()? {
                Change::Upsert { item, .. } => item.granule(),
                Change::Delete { .. } => None,
            };
        }
        let detection: FireDetection = self.schemas.decode(&record.payload).ok()?;
        detection.granule()
    }

    /// Up to `max_batch` records: waits `wait` for the first, then `linger_ms` for the rest.
    /// Partitions whose end the consumer reached after their last record in the batch are
    /// added to `ends` (each consumer reads one topic, so a partition number names it).
    pub(super) fn poll_batch<C: ConsumerContext>(
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
                    // An end reached before this record is not the partition's end any more.
                    ends.retain(|p| *p != message.partition());
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
                    tracing::warn!(%error, "The consumer reported an error.");
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

    /// Drops from `batch` what was already applied, then processes runs of one kind, each
    /// committed with its offsets and outputs.
    /// Applies a batch, run by run of one kind. The last run's index insert, when it is a run
    /// of detections that only adds points, comes back to be run by the caller (see
    /// [`Pipeline::finish_insert`]); an earlier run's is run before the next run starts, since
    /// a writer may wait for inserts let go of the lock before it.
    pub(super) fn process(
        &self,
        batch: &mut Vec<Polled>,
    ) -> Result<Option<PendingInsert<'_>>, StreamError> {
        self.drop_applied(batch)?;
        let batch = &batch[..];
        self.count_gaps(batch)?;
        let mut pending: Option<PendingInsert<'_>> = None;
        let mut start = 0;
        while start < batch.len() {
            if let Some(insert) = pending.take() {
                self.pipeline.finish_insert(insert)?;
            }
            let kind = self.kind(&batch[start].topic);
            let end = batch[start..]
                .iter()
                .position(|p| self.kind(&p.topic) != kind)
                .map_or(batch.len(), |n| start + n);
            let run = &batch[start..end];
            let name = match kind {
                Some(Kind::Detection) => "stream.detections",
                Some(Kind::Weather) => "stream.weather",
                Some(Kind::Sensor) => "stream.sensors",
                None => "stream.unknown",
            };
            let span = super::trace::run_span(name, run.len(), run.iter().map(|p| &p.trace));
            let _entered = span.enter();
            match kind {
                Some(Kind::Detection) => pending = self.detections(run)?,
                Some(Kind::Weather) => self.weather(run)?,
                Some(Kind::Sensor) => self.sensors(run)?,
                None => {
                    tracing::warn!(topic = %run[0].topic, "Record from a topic FireSight does not read.");
                }
            }
            start = end;
        }
        Ok(pending)
    }

    /// Applies a batch as [`Processor::process`] does, its index insert run here.
    pub(super) fn process_in_line(&self, batch: &mut Vec<Polled>) -> Result<(), StreamError> {
        match self.process(batch)? {
            Some(insert) => Ok(self.pipeline.finish_insert(insert)?),
            None => Ok(()),
        }
    }

    /// Drops the records before their partition's stored offset: a resume reads again from
    /// `resume_rewind_records` before it (see [`resume_from`]), and those were applied.
    fn drop_applied(&self, batch: &mut Vec<Polled>) -> Result<(), PipelineError> {
        let mut stored: Vec<((&str, i32), Option<i64>)> = Vec::new();
        let mut keep = Vec::with_capacity(batch.len());
        for record in batch.iter() {
            let key = (record.topic.as_str(), record.partition);
            let next = match stored.iter().find(|(k, _)| *k == key) {
                Some((_, next)) => *next,
                None => {
                    let next = self.pipeline.store().stream_offset(key.0, key.1)?;
                    stored.push((key, next));
                    next
                }
            };
            keep.push(next.is_none_or(|next| record.offset >= next));
        }
        let dropped = keep.iter().filter(|k| !**k).count();
        if dropped > 0 {
            tracing::debug!(
                dropped,
                "Records read again after a resume were applied before; skipped."
            );
            let mut flags = keep.into_iter();
            batch.retain(|_| flags.next().unwrap_or(true));
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
                None => self.pipeline.store().stream_offset(key.0, key.1)?,
            };
            if let Some(next) = next
                && record.offset > next
            {
                let skipped = record.offset - next;
                tracing::warn!(topic = %record.topic, partition = record.partition, from = next, to = record.offset, skipped, "Offsets skipped: the broker delivered no records for them.");
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

    /// The refusal of a record over `kafka.max_record_bytes`, decoded by no decoder.
    fn oversize(&self, record: &Polled) -> Option<Refusal> {
        (record.payload.len() > self.settings.max_record_bytes).then(|| {
            Refusal::Format(format!(
                "record is {} bytes, over kafka.max_record_bytes = {}",
                record.payload.len(),
                self.settings.max_record_bytes
            ))
        })
    }

    /// Decodes a run: the items with their index in the run, and the refused records.
    fn decode<T: Input>(&self, run: &[Polled]) -> Result<Decoded<T>, StreamError> {
        let mut items = Vec::with_capacity(run.len());
        let mut refused = Vec::new();
        for (i, record) in run.iter().enumerate() {
            if let Some(refusal) = self.oversize(record) {
                refused.push((i, refusal));
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

    /// Decodes a run of Debezium change events; a key changed more than once in the run
    /// keeps its last change (the row as it is after the run), at that record's index.
    fn decode_changes<T: CdcRow>(
        &self,
        run: &[Polled],
        mapping: &DebeziumMapping,
    ) -> Decoded<Change<T>> {
        let mut last: HashMap<String, (u64, Change<T>)> = HashMap::with_capacity(run.len());
        let mut refused = Vec::new();
        for (i, record) in run.iter().enumerate() {
            if let Some(refusal) = self.oversize(record) {
                refused.push((i, refusal));
                continue;
            }
            match debezium::decode::<T>(record.key.as_deref(), &record.payload, mapping) {
                Ok(change) => {
                    // The tombstone after a delete adds nothing to it: the delete, which has
                    // the row's content (and is what a dead letter should show), stays.
                    let tombstone = record.payload.iter().all(u8::is_ascii_whitespace);
                    if tombstone
                        && matches!(last.get(change.key()), Some((_, Change::Delete { .. })))
                    {
                        continue;
                    }
                    last.insert(change.key().to_owned(), (i as u64, change));
                }
                Err(refusal) => refused.push((i, refusal)),
            }
        }
        let mut changes: Vec<(u64, Change<T>)> = last.into_values().collect();
        changes.sort_by_key(|(i, _)| *i);
        (changes, refused)
    }

    /// A run's changes as upserts (by index) and the row changes they carry. A kind whose
    /// deletes are not applied (`refuse_deletes`: its name) refuses each delete with the reason.
    fn split_changes<T>(
        &self,
        changes: Vec<(u64, Change<T>)>,
        source: &str,
        refuse_deletes: Option<&str>,
        refused: &mut Vec<(usize, Refusal)>,
    ) -> (Vec<(u64, T)>, RowChanges) {
        let mut items = Vec::with_capacity(changes.len());
        let mut rows = RowChanges {
            source: source.to_owned(),
            ..RowChanges::default()
        };
        for (i, change) in changes {
            match (change, refuse_deletes) {
                (Change::Upsert { key, item }, _) => {
                    rows.upserts.insert(i, key);
                    items.push((i, item));
                }
                (Change::Delete { key }, None) => rows.deletes.push(key),
                (Change::Delete { key }, Some(kind)) => refused.push((
                    i as usize,
                    Refusal::Field(crate::event::FieldError::new(
                        1,
                        "op",
                        format!(
                            "a deleted {kind} row ({key}) is not applied: the joins it made stay, and a {kind} is corrected by an update"
                        ),
                    )),
                )),
            }
        }
        (items, rows)
    }

    /// Decodes a run of a table topic (weather, sensors): Debezium change events when
    /// `debezium` says so (their deletes refused, as `kind` rows), FireSight's records otherwise.
    fn decode_table<T: Input + CdcRow>(
        &self,
        run: &[Polled],
        debezium: Option<&DebeziumMapping>,
        topic: &str,
        kind: &str,
    ) -> Result<Decoded<T>, StreamError> {
        let Some(mapping) = debezium else {
            return self.decode::<T>(run);
        };
        let (changes, mut refused) = self.decode_changes(run, mapping);
        let (items, _) = self.split_changes(changes, topic, Some(kind), &mut refused);
        Ok((items, refused))
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
            tracing::info!(topic = %key.0, partition = key.1, windows = emitted.active_fires.len(), "Idle partition; closing its windows.");
            self.route(&emitted, None, &mut ops);
            ops.push(state_op(key, state)?);
            let offset = self
                .pipeline
                .store()
                .stream_offset(&key.0, key.1)?
                .unwrap_or(0);
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

    fn detections(&self, run: &[Polled]) -> Result<Option<PendingInsert<'_>>, StreamError> {
        let (items, refused, rows) = if self.settings.debezium.detections {
            let (changes, mut refused) =
                self.decode_changes(run, &self.settings.debezium.detection_table);
            let (items, rows) =
                self.split_changes(changes, &self.settings.detections_topic, None, &mut refused);
            (items, refused, rows)
        } else {
            let (items, refused) = self.decode::<FireDetection>(run)?;
            (items, refused, RowChanges::default())
        };
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
        let (outcome, insert) = self.pipeline.apply_detection_changes_pipelined(
            self.pipeline.lane_of(items.len()),
            items,
            rows,
            |_, written| {
                let (new, tracked) = (&mut *written.new, written.tracked);
                // `ingested_at` is the record's timestamp, not the clock: a record processed
                // again (after a crash, or by the next owner of its partition) is published
                // byte for byte as the first time.
                for n in new.iter_mut() {
                    if let Some(at) = first_of
                        .get(&n.event.event_id)
                        .and_then(|&i| run.get(i))
                        .and_then(|r| r.timestamp)
                    {
                        n.event.ingested_at = Some(at);
                    }
                }
                let mut ops = self.bookkeeping("firms", run, &refused)?;
                self.windows_over(run, &first_of, new, &mut ops)?;
                self.publish_events(new, &mut ops)?;
                // A row updated in place: its corrected record, same key, next revision. A
                // deleted one: a tombstone under its key.
                self.publish_events(written.revised, &mut ops)?;
                self.publish_tombstones(written.deleted, &mut ops);
                self.publish_tracked(tracked, &mut ops);
                // Last in the outbox: the drainer sends a checkpoint only once everything
                // before it is acknowledged, so a successor that resumes from it never skips
                // an output this instance had not yet published.
                self.checkpoints(run, &mut ops)?;
                Ok(ops)
            },
        )?;
        tracing::debug!(
            accepted = outcome.accepted,
            duplicates = outcome.duplicates,
            refused = refused.len(),
            spans = ?spans(run),
            "Detections processed."
        );
        Ok(insert)
    }

    /// Runs each new event through its partition's windows, in partition order, and queues
    /// what the windows emit.
    fn windows_over(
        &self,
        run: &[Polled],
        first_of: &HashMap<String, usize>,
        new: &[NewEvent],
        ops: &mut Vec<StoreOp>,
    ) -> Result<(), PipelineError> {
        let mut states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        for new_event in new.iter() {
            let event = &new_event.event;
            let Some(record) = first_of.get(&event.event_id).and_then(|&i| run.get(i)) else {
                continue;
            };
            let key = (record.topic.clone(), record.partition);
            let state = state_mut(&mut states, self.pipeline.store(), &key)?;
            let emitted = state.on_detection(&point_of(event), &self.windows);
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

    fn weather(&self, run: &[Polled]) -> Result<(), StreamError> {
        let d = &self.settings.debezium;
        let (items, refused) = self.decode_table::<WeatherObservation>(
            run,
            d.weather.then_some(&d.weather_table),
            &self.settings.weather_topic,
            "weather",
        )?;
        let source = format!("kafka:{}", self.settings.weather_topic);
        // A source database's update of a row is a correction: it replaces what was stored.
        self.pipeline.apply_weather(
            &source,
            items,
            self.settings.debezium.weather,
            |outcome| {
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
            },
            |revised| {
                // A detection the late weather re-joined: its corrected record, same key, with
                // its revision. Only this instance stored it (it read the detection's
                // partition), so only this instance publishes the correction.
                let mut ops = Vec::new();
                self.publish_events(revised, &mut ops)?;
                Ok(ops)
            },
        )?;
        Ok(())
    }

    fn sensors(&self, run: &[Polled]) -> Result<(), StreamError> {
        let d = &self.settings.debezium;
        let (items, refused) = self.decode_table::<SensorReading>(
            run,
            d.sensors.then_some(&d.sensor_table),
            &self.settings.sensors_topic,
            "sensor",
        )?;
        self.pipeline
            .ingest_sensors_with(items, |_| self.bookkeeping("sensors", run, &refused))?;
        Ok(())
    }

    pub(super) fn offsets(&self, run: &[Polled]) -> Vec<StoreOp> {
        let next = next_offsets(run);
        next.into_iter()
            .map(|((topic, partition), offset)| StoreOp::stream_offset(topic, partition, offset))
            .collect()
    }

    /// Commits group offsets (asynchronously) for lag monitoring; FireSight's own are in RocksDB.
    fn commit_group(&self, consumer: &BaseConsumer<Rebalancer>, batch: &[Polled]) {
        let next = next_offsets(batch);
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), offset) in next {
            if let Err(error) = tpl.add_partition_offset(topic, partition, Offset::Offset(offset)) {
                tracing::warn!(%error, "Building the group commit failed.");
            }
        }
        if let Err(error) = consumer.commit(&tpl, CommitMode::Async) {
            tracing::debug!(%error, "Group offset commit failed (lag figures only).");
        }
    }
}

/// Where reading a partition resumes when `next` is its stored offset: `back` offsets before
/// it. A broker that answers a fetch from inside a producer batch with only the batches after
/// it (tansu 0.6.0) still delivers the batch that holds `next`, as long as `back` spans a
/// batch; the records before `next` are dropped as applied (`Processor::drop_applied`).
pub(super) fn resume_from(next: i64, back: u32) -> i64 {
    next.saturating_sub(i64::from(back)).max(0)
}

/// Seeks every partition of a failed batch back to `back` before the offset in the store (or
/// to the batch's first record where the store has none).
pub(super) fn rewind<C: ConsumerContext>(
    store: &Store,
    consumer: &BaseConsumer<C>,
    batch: &[Polled],
    back: u32,
) {
    let mut first: HashMap<(&str, i32), i64> = HashMap::new();
    for record in batch {
        let slot = first
            .entry((record.topic.as_str(), record.partition))
            .or_insert(record.offset);
        *slot = (*slot).min(record.offset);
    }
    for ((topic, partition), earliest) in first {
        let offset = match store.stream_offset(topic, partition) {
            Ok(Some(next)) => resume_from(next, back),
            _ => earliest,
        };
        if let Err(error) = consumer.seek(
            topic,
            partition,
            Offset::Offset(offset),
            Duration::from_secs(5),
        ) {
            tracing::error!(%topic, partition, %error, "Seeking the partition back failed.");
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

/// Why a batch could not be processed (it is read again from the stored offsets).
#[derive(Debug, thiserror::Error)]
pub(super) enum StreamError {
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error("schema registry unavailable: {0}")]
    Schema(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn polled(topic: &str, partition: i32, offset: i64) -> Polled {
        Polled {
            topic: topic.to_owned(),
            partition,
            offset,
            key: None,
            payload: Vec::new(),
            timestamp: None,
            trace: Vec::new(),
            received: Instant::now(),
        }
    }

    #[test]
    fn a_resume_reads_again_from_before_the_stored_offset_never_below_zero() {
        assert_eq!(resume_from(25_000, 10_000), 15_000);
        assert_eq!(resume_from(5, 10_000), 0);
        assert_eq!(resume_from(0, 10_000), 0);
        assert_eq!(resume_from(7, 0), 7);
        assert_eq!(resume_from(i64::MIN, 10), 0);
    }

    #[test]
    fn next_offsets_are_one_past_each_partitions_highest_offset() {
        let records = [
            polled("detections", 1, 7),
            polled("detections", 0, 12),
            polled("weather", 0, 3),
            polled("detections", 0, 10),
            polled("detections", 1, 9),
            polled("weather", 0, 2),
            polled("sensors", 2, 0),
            polled("detections", 0, 11),
        ];
        let expected: BTreeMap<(&str, i32), i64> = [
            (("detections", 0), 13),
            (("detections", 1), 10),
            (("sensors", 2), 1),
            (("weather", 0), 4),
        ]
        .into_iter()
        .collect();
        assert_eq!(next_offsets(&records), expected);
        assert!(next_offsets(&[]).is_empty());
    }

    #[test]
    fn spans_give_each_partitions_lowest_and_highest_offset_and_count() {
        let records = [
            polled("detections", 2, 40),
            polled("detections", 0, 5),
            polled("detections", 2, 38),
            polled("detections", 1, 9),
            polled("detections", 0, 6),
            polled("detections", 2, 41),
        ];
        let expected: BTreeMap<i32, (i64, i64, usize)> =
            [(0, (5, 6, 2)), (1, (9, 9, 1)), (2, (38, 41, 3))]
                .into_iter()
                .collect();
        assert_eq!(spans(&records), expected);
        assert!(spans(&[]).is_empty());
    }
}

//! The pipeline stages as plain functions over a batch; one lock serialises writers.

use std::collections::{HashMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Instant;

use super::correlate::Correlator;
use super::decode::Rejected;
use super::group::LiveGroups;
use super::ingest::IngestOutcome;
use super::source_rows::RowChanges;
use super::writer::{InsertTicket, Lane, WriterGuard, WriterLock};
use crate::embed::{EmbedError, Embedder, FEATURE_COUNT, Predictors, event_features};
use crate::event::{
    FieldError, FireCharacteristics, FireDetection, FireEventV2, HistoricalIncident,
    ImpactAssessment, Location, SensorReading, SourceInfo, Station, WeatherConditions,
    WeatherObservation, WeatherStatus,
};
use crate::index::{IndexError, IndexPoint, NativeHnsw, PointAttrs, VectorIndex};
use crate::metrics::Metrics;
use crate::store::{DeadLetter, NewEvent, Store, StoreError, StoreOp};
use crate::tracker::{Tracked, Tracker};

/// Relative humidity at or above which a detection is flagged (seed rule).
const HIGH_HUMIDITY_PCT: f64 = 70.0;
/// Rain at or above which a detection is flagged (seed rule).
const RAIN_MM: f64 = 1.0;

/// What to do with one observation.
enum WeatherVerdict {
    New,
    Duplicate,
}

/// A failure that stops a whole batch (bad records do not: they are rejected one by one).
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The encoder failed.
    #[error(transparent)]
    Embed(#[from] EmbedError),
    /// The index refused a vector.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// A stage panicked on this batch: nothing of it was stored, and the next batch goes on.
    #[error("the {stage} stage failed on this batch (a bug; nothing of it was stored): {message}")]
    Panicked {
        /// The ingest stage, e.g. `detections`.
        stage: &'static str,
        /// The panic's message.
        message: String,
    },
}

/// A vector space: the encoder that makes its vectors and the index that holds them.
#[derive(Clone)]
pub struct Space {
    /// The encoder.
    pub embedder: Arc<dyn Embedder>,
    /// The index over its vectors.
    pub index: Arc<dyn VectorIndex>,
    /// The same index when it is the native engine (snapshots, compaction).
    pub native: Option<Arc<NativeHnsw>>,
}

/// The stages and the components they write to.
pub struct Pipeline {
    store: Arc<Store>,
    correlator: RwLock<Correlator>,
    /// The active space; the re-index job replaces it whole.
    space: RwLock<Arc<Space>>,
    metrics: Metrics,
    writer: WriterLock,
    /// Live detection batches waiting for the writer lock, written together (group commit).
    groups: LiveGroups,
    /// At most this many records in one such write (`ingest.live_group_records`).
    live_group_records: usize,
    embed_batch: usize,
    /// Detections batches of at most this many records go in the live lane (`ingest.live_batch`).
    live_batch: usize,
    /// Predictors run on every new event (none until `set_predictors`).
    predictors: RwLock<Arc<Predictors>>,
    /// Doorbells rung after every stored batch of events (the search index follows them).
    followers: Mutex<Vec<std::sync::mpsc::SyncSender<()>>>,
    /// The incident tracker (none when `incidents.enabled` is off).
    tracker: Option<Tracker>,
    /// The next alert sequence after the last committed batch: live alert streams wait on it.
    alerts_seen: tokio::sync::watch::Sender<u64>,
    /// The last batch that failed on a bug, for `/readyz`.
    last_failure: Mutex<Option<BatchFailure>>,
}

/// A batch that failed on a bug (a panic in a stage), as `/readyz` reports it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BatchFailure {
    /// The ingest stage.
    pub stage: &'static str,
    /// The panic's message.
    pub message: String,
    /// When, ms since the epoch.
    pub at_ms: i64,
}

impl Pipeline {
    /// Wires the stages: every stored batch of detections is also inserted into `space`'s
    /// index. The caller brings the index up to the store first (`lifecycle::replay`).
    pub fn new(
        store: Arc<Store>,
        correlator: Correlator,
        space: Space,
        metrics: Metrics,
        embed_batch: usize,
        tracker: Option<Tracker>,
    ) -> Self {
        let (alerts_seen, _) = tokio::sync::watch::channel(0);
        // Both lanes from the start, so the wait histograms read as a full table.
        for lane in [Lane::Live, Lane::Bulk] {
            metrics.writer_wait.with_label_values(&[lane.as_str()]);
        }
        Self {
            tracker,
            alerts_seen,
            last_failure: Mutex::new(None),
            store,
            correlator: RwLock::new(correlator),
            space: RwLock::new(Arc::new(space)),
            metrics,
            writer: WriterLock::default(),
            groups: LiveGroups::default(),
            live_group_records: DEFAULT_LIVE_GROUP_RECORDS,
            live_batch: usize::MAX,
            embed_batch,
            predictors: RwLock::new(Arc::new(Predictors::none())),
            followers: Mutex::new(Vec::new()),
        }
    }

    /// The incident tracker, when tracking is on.
    pub fn tracker(&self) -> Option<&Tracker> {
        self.tracker.as_ref()
    }

    /// Changes whenever a batch commits new alerts; its value is the sequence after the last.
    pub fn alerts_seen(&self) -> tokio::sync::watch::Receiver<u64> {
        self.alerts_seen.subscribe()
    }

    /// Sets the predictors whose outputs go into `ml_predictions`.
    pub fn set_predictors(&self, predictors: Predictors) {
        *self.predictors.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(predictors);
    }

    /// The loaded predictors.
    pub fn predictors(&self) -> Arc<Predictors> {
        Arc::clone(&self.predictors.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// A doorbell rung after every batch of events stored from now on. At most one ring waits,
    /// whatever the follower's speed: it reads what is new from the store (by sequence number),
    /// so a slow follower never makes the pipeline queue events in memory.
    pub fn follow(&self) -> std::sync::mpsc::Receiver<()> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.followers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(tx);
        rx
    }

    /// Runs the predictors on events and writes their outputs into `ml_predictions`.
    pub fn predict(&self, events: &mut [FireEventV2]) -> Result<(), PipelineError> {
        let rows: Vec<_> = events.iter().map(event_features).collect();
        self.predict_rows(events, &rows)
    }

    /// [`Pipeline::predict`] over feature rows already computed for `events`.
    fn predict_rows(
        &self,
        events: &mut [FireEventV2],
        rows: &[[f32; FEATURE_COUNT]],
    ) -> Result<(), PipelineError> {
        let predictors = self.predictors();
        if predictors.is_empty() {
            return Ok(());
        }
        // The growth outlook the tracker's model gave an event (its incident's) stays when the
        // event is predicted again; everything else is the predictors' to give again.
        let outlook = self
            .tracker
            .as_ref()
            .and_then(|t| t.outlook())
            .map(|m| (m.name().to_owned(), m.version().to_owned()));
        let kept = |p: &crate::event::MlPrediction| {
            p.name == crate::tracker::outlook::PREDICTION
                && outlook
                    .as_ref()
                    .is_some_and(|(name, version)| p.model == *name && p.version == *version)
        };
        let chunks = events
            .chunks_mut(self.embed_batch)
            .zip(rows.chunks(self.embed_batch));
        for (events, rows) in chunks {
            let predicted = predictors.predict(events, rows)?;
            for (event, mut predictions) in events.iter_mut().zip(predicted) {
                let before = event.ml_predictions.take().into_iter().flatten();
                predictions.extend(before.filter(kept));
                event.ml_predictions = Some(predictions);
            }
        }
        Ok(())
    }

    /// The active space. A reader holds its own `Arc`, so a switch never pulls it away mid-query.
    pub fn space(&self) -> Arc<Space> {
        let guard = self.space.read().unwrap_or_else(|p| p.into_inner());
        Arc::clone(&guard)
    }

    /// Replaces the active space while no batch is written: `prepare` runs under the writer
    /// lock (to catch up on what arrived meanwhile) and returns the new space.
    pub fn switch<E>(&self, prepare: impl FnOnce() -> Result<Space, E>) -> Result<(), E>
    where
        E: From<PipelineError>,
    {
        let _writer = self.writer();
        let next = Arc::new(prepare()?);
        *self.space.write().unwrap_or_else(|p| p.into_inner()) = next;
        Ok(())
    }

    /// The store.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Reads the correlator's tables (stations, what they report, their fire-weather series).
    pub fn read_correlator<T>(&self, read: impl FnOnce(&Correlator) -> T) -> T {
        read(
            &self
                .correlator
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// Correlates a detection and applies the rules, without storing anything.
    pub fn enrich(&self, detection: &FireDetection) -> Result<FireEventV2, PipelineError> {
        let correlator = self
            .correlator
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let correlation = correlator.correlate(&self.store, detection)?;
        let mut event = build_event(
            detection,
            correlation.status,
            correlation.conditions,
            self.space().embedder.model_version(),
        );
        event.sensor_summary = correlator.sensors(&self.store, detection)?;
        Ok(event)
    }

    /// Embeds events with the active encoder, in encoder-sized chunks.
    pub fn embed(&self, events: &[FireEventV2]) -> Result<Vec<Vec<f32>>, PipelineError> {
        self.embed_with(self.space().embedder.as_ref(), events)
    }

    /// Embeds events with `embedder` (the re-index job passes the incoming one).
    pub fn embed_with(
        &self,
        embedder: &dyn Embedder,
        events: &[FireEventV2],
    ) -> Result<Vec<Vec<f32>>, PipelineError> {
        let rows: Vec<_> = events.iter().map(event_features).collect();
        self.embed_rows(embedder, &rows)
    }

    /// Embeds feature rows in encoder-sized chunks, timing each call.
    fn embed_rows(
        &self,
        embedder: &dyn Embedder,
        rows: &[[f32; FEATURE_COUNT]],
    ) -> Result<Vec<Vec<f32>>, PipelineError> {
        let mut vectors = Vec::with_capacity(rows.len());
        for chunk in rows.chunks(self.embed_batch) {
            let started = Instant::now();
            vectors.extend(embedder.embed(chunk)?);
            self.metrics
                .embed_seconds
                .observe(started.elapsed().as_secs_f64());
            self.metrics.embed_batches.inc();
            self.metrics.embed_rows.inc_by(chunk.len() as u64);
        }
        Ok(vectors)
    }

    /// The writer lock, in the bulk lane. A panic inside it (a bug) fails only its own batch
    /// (see [`Pipeline::guarded`]) and lets the lock go: every write it guards is one atomic
    /// RocksDB batch, applied whole or not at all.
    fn writer(&self) -> WriterGuard<'_> {
        let guard = self.writer_in(Lane::Bulk);
        // These writers change points the index holds, snapshot it or switch it: inserts let go
        // of the lock earlier finish first.
        guard.settle();
        guard
    }

    /// The writer lock in `lane`, the wait recorded in `firesight_writer_wait_seconds{lane}`.
    fn writer_in(&self, lane: Lane) -> WriterGuard<'_> {
        let started = Instant::now();
        let guard = self.writer.lock(lane);
        self.metrics
            .writer_wait
            .with_label_values(&[lane.as_str()])
            .observe(started.elapsed().as_secs_f64());
        guard
    }

    /// Batches of detections with at most `records` records go before bulk work at the writer
    /// lock (`ingest.live_batch`); files and bodies are written in granule-aligned pieces of
    /// about that size (see [`IngestSession`](super::IngestSession)).
    pub fn set_live_batch(&mut self, records: usize) {
        self.live_batch = records;
    }

    /// Live batches queued behind a busy writer are written together up to `records` records
    /// a write (`ingest.live_group_records`; 0: each alone).
    pub fn set_live_group_records(&mut self, records: usize) {
        self.live_group_records = records;
    }

    /// `ingest.live_batch`.
    pub fn live_batch(&self) -> usize {
        self.live_batch
    }

    /// How long a piece of bulk input is written under the lock at a time: `ingest.live_batch`
    /// records while live writers are about (one asked within [`LIVE_RECENT`]), so each waits
    /// for one short piece at most; [`QUIET_PIECES`] times that when none is, so a backfill
    /// alone pays little for the pieces.
    pub fn bulk_piece(&self) -> usize {
        if self.writer.live_within(LIVE_RECENT) {
            self.live_batch
        } else {
            self.live_batch.saturating_mul(QUIET_PIECES)
        }
    }

    /// The lane a detections batch of `records` records goes in when its caller does not say.
    pub fn lane_of(&self, records: usize) -> Lane {
        if records <= self.live_batch {
            Lane::Live
        } else {
            Lane::Bulk
        }
    }

    /// The last batch that failed on a bug, if any did since start.
    pub fn last_failure(&self) -> Option<BatchFailure> {
        self.last_failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Runs one batch of `stage`, turning a panic into [`PipelineError::Panicked`] for that batch
    /// alone (answered 500, logged, counted), so no input can stop ingest.
    fn guarded<T>(
        &self,
        stage: &'static str,
        f: impl FnOnce() -> Result<T, PipelineError>,
    ) -> Result<T, PipelineError> {
        std::panic::catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|payload| {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".to_owned());
            tracing::error!(stage, %message, "A batch failed on a bug; it was not stored, and ingest goes on.");
            self.metrics
                .ingest_records
                .with_label_values(&[stage, "failed_batch"])
                .inc();
            *self
                .last_failure
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(BatchFailure {
                stage,
                message: message.clone(),
                at_ms: chrono::Utc::now().timestamp_millis(),
            });
            Err(PipelineError::Panicked { stage, message })
        })
    }

    /// Runs `f` while no batch is being written, so the store and the index agree throughout.
    pub fn quiesce<T>(&self, f: impl FnOnce() -> T) -> Result<T, PipelineError> {
        let _writer = self.writer();
        Ok(f())
    }

    /// Decode has happened; this runs correlate → features → embed → store → index for new detections.
    /// A batch of at most `ingest.live_batch` records goes in the live lane.
    pub fn ingest_detections(
        &self,
        batch: Vec<(u64, FireDetection)>,
    ) -> Result<IngestOutcome, PipelineError> {
        let lane = self.lane_of(batch.len());
        self.ingest_detections_in(lane, batch)
    }

    /// [`Pipeline::ingest_detections`] in the given lane: a piece of a bulk input goes in the
    /// bulk lane however small it is.
    pub fn ingest_detections_in(
        &self,
        lane: Lane,
        batch: Vec<(u64, FireDetection)>,
    ) -> Result<IngestOutcome, PipelineError> {
        match lane {
            Lane::Live => self.ingest_live(batch),
            Lane::Bulk => self.ingest_detections_with(lane, batch, |_, _, _| Ok(Vec::new())),
        }
    }

    /// Live detection batches waiting for the writer lock to be written (with others queued
    /// beside them, see [`super::group`]).
    pub fn live_batches_waiting(&self) -> usize {
        self.groups.len()
    }

    /// A live batch, written together with the live batches queued beside it when the lock is
    /// busy (group commit, see [`super::group`]); the answer is this batch's own tally.
    fn ingest_live(
        &self,
        batch: Vec<(u64, FireDetection)>,
    ) -> Result<IngestOutcome, PipelineError> {
        let member = self.groups.join(batch);
        let started = Instant::now();
        let writer = self.writer.lock_unless(Lane::Live, member.served());
        self.metrics
            .writer_wait
            .with_label_values(&[Lane::Live.as_str()])
            .observe(started.elapsed().as_secs_f64());
        if let Some(writer) = writer {
            let group = self.groups.take(&member, self.live_group_records);
            self.metrics.live_group_batches.observe(group.len() as f64);
            let plain = |_: &IngestOutcome, _: &mut Written<'_>| Ok(Vec::new());
            super::group::write(
                &group,
                |batch| {
                    self.guarded("detections", || {
                        let mut stored = HashSet::new();
                        let (outcome, insert) = self.apply_locked(
                            Held::Caller(&writer),
                            batch,
                            RowChanges::default(),
                            ExtraReads::Store,
                            |_, written| {
                                stored.extend(written.new.iter().map(|n| n.event.event_id.clone()));
                                Ok(Vec::new())
                            },
                        )?;
                        insert.map_or(Ok(()), PendingInsert::run)?;
                        Ok((outcome, stored))
                    })
                },
                |batch| {
                    self.guarded("detections", || {
                        let (outcome, insert) = self.apply_locked(
                            Held::Caller(&writer),
                            batch,
                            RowChanges::default(),
                            ExtraReads::Store,
                            plain,
                        )?;
                        insert.map_or(Ok(()), PendingInsert::run)?;
                        Ok(outcome)
                    })
                },
            );
        }
        member.answer()
    }

    /// [`Pipeline::ingest_detections`], letting `extra` see (and amend) the new events after the
    /// models and the tracker ran and before they are stored, with what the tracker did; the
    /// writes it returns commit in the same batch. The streaming consumer adds its offsets,
    /// window state and output records (enriched events, incidents, alerts) this way.
    pub fn ingest_detections_with(
        &self,
        lane: Lane,
        batch: Vec<(u64, FireDetection)>,
        extra: impl FnOnce(
            &IngestOutcome,
            &mut [NewEvent],
            &Tracked,
        ) -> Result<Vec<StoreOp>, PipelineError>,
    ) -> Result<IngestOutcome, PipelineError> {
        self.apply_detection_changes(lane, batch, RowChanges::default(), |outcome, written| {
            extra(outcome, written.new, written.tracked)
        })
    }

    /// Applies a batch of detections that are, besides new detections, changes to a source
    /// database's rows (`rows`, from Debezium): a row seen before and updated replaces the
    /// event it was stored as (in place, as its next `revision`, when the update leaves the
    /// detection's identity alone; by deleting the old event and storing the new one when it
    /// moves it); a deleted row's event is deleted from the store, the index, the search index
    /// and the Weaviate mirror. Everything, with `extra`'s writes, commits in one batch.
    pub fn apply_detection_changes(
        &self,
        lane: Lane,
        batch: Vec<(u64, FireDetection)>,
        rows: RowChanges,
        extra: impl FnOnce(&IngestOutcome, &mut Written<'_>) -> Result<Vec<StoreOp>, PipelineError>,
    ) -> Result<IngestOutcome, PipelineError> {
        self.guarded("detections", move || {
            let writer = self.writer_in(lane);
            let (outcome, insert) = self.apply_locked(
                Held::Mine(Some(writer)),
                batch,
                rows,
                ExtraReads::Store,
                extra,
            )?;
            insert.map_or(Ok(()), PendingInsert::run)?;
            Ok(outcome)
        })
    }

    /// [`Pipeline::apply_detection_changes`] for a caller that runs the index insert itself
    /// ([`Pipeline::finish_insert`], on another thread) while it prepares its next batch; the
    /// streaming consumer does. Before `extra` runs, the index is brought up to date with every
    /// earlier batch (its inserts waited for), so what `extra` searches (`similar_events`) is the
    /// same as if each batch had been inserted in line. `None`: nothing left to insert.
    pub fn apply_detection_changes_pipelined(
        &self,
        lane: Lane,
        batch: Vec<(u64, FireDetection)>,
        rows: RowChanges,
        extra: impl FnOnce(&IngestOutcome, &mut Written<'_>) -> Result<Vec<StoreOp>, PipelineError>,
    ) -> Result<(IngestOutcome, Option<PendingInsert<'_>>), PipelineError> {
        self.guarded("detections", move || {
            let writer = Held::Mine(Some(self.writer_in(lane)));
            self.apply_locked(writer, batch, rows, ExtraReads::Index, extra)
        })
    }

    /// New detections from a piece of a bulk input: stored under the writer lock, which is let
    /// go of before their index insert; the insert comes back to be run (with
    /// [`Pipeline::finish_insert`]) while the input's next piece is written, so storing one
    /// piece and indexing the one before share the two cores. `None`: nothing left to insert.
    pub fn ingest_detections_pipelined(
        &self,
        lane: Lane,
        batch: Vec<(u64, FireDetection)>,
    ) -> Result<(IngestOutcome, Option<PendingInsert<'_>>), PipelineError> {
        self.guarded("detections", move || {
            let writer = self.writer_in(lane);
            self.apply_locked(
                Held::Mine(Some(writer)),
                batch,
                RowChanges::default(),
                ExtraReads::Store,
                |_, _| Ok(Vec::new()),
            )
        })
    }

    /// Runs an insert handed back by [`Pipeline::ingest_detections_pipelined`], a panic in it
    /// failing only its batch (see [`Pipeline::guarded`]).
    pub fn finish_insert(&self, insert: PendingInsert<'_>) -> Result<(), PipelineError> {
        self.guarded("detections", move || insert.run())
    }

    /// [`Pipeline::apply_detection_changes`] under the writer lock. A batch of new points that
    /// holds the lock itself lets go of it once stored and hands back its index insert, to be
    /// run by the caller ([`PendingInsert::run`]) while the next writer goes in. When `extra`
    /// searches the index, the inserts that let go of the lock earlier are waited for first.
    fn apply_locked<'a>(
        &'a self,
        mut writer: Held<'a>,
        batch: Vec<(u64, FireDetection)>,
        rows: RowChanges,
        reads: ExtraReads,
        extra: impl FnOnce(&IngestOutcome, &mut Written<'_>) -> Result<Vec<StoreOp>, PipelineError>,
    ) -> Result<(IngestOutcome, Option<PendingInsert<'a>>), PipelineError> {
        let mut outcome = IngestOutcome::default();
        let mut seen = HashSet::with_capacity(batch.len());
        let mut events = Vec::with_capacity(batch.len());
        // One span per stage, each with its record count: a trace shows where a batch's
        // time went.
        let stage = |name: &'static str, records: usize| {
            tracing::info_span!("stage", otel.name = name, records).entered()
        };
        let correlating = stage("correlate", batch.len());
        // Source rows: what each changed row was stored as, and what replaces or removes it.
        let resolved = super::source_rows::resolve(&self.store, &batch, &rows, describes)?;
        outcome.duplicates += resolved.unchanged;
        for detection in resolved.fresh {
            let id = detection.event_id();
            if !seen.insert(id.clone()) || self.store.contains_event(&id)? {
                outcome.duplicates += 1;
                continue;
            }
            super::drill::check(&detection.satellite);
            let event = self.enrich(detection)?;
            // Counted here, not in `enrich`: ad-hoc similarity queries also enrich.
            let status = event.weather_status.map_or("none", WeatherStatus::as_str);
            self.metrics
                .correlate_joins
                .with_label_values(&[status])
                .inc();
            events.push(event);
        }
        // A row updated in place: enriched again, keeping what the tracker and the first
        // storing gave it.
        let mut revised_events = Vec::with_capacity(resolved.corrections.len());
        for (detection, stored) in resolved.corrections {
            let mut event = self.enrich(detection)?;
            event.correlation_id = stored.correlation_id;
            event.ml_predictions = stored.ml_predictions;
            event.impact_assessment =
                reassess(stored.impact_assessment, event.weather_conditions.as_ref());
            event.ingested_at = stored.ingested_at;
            event.revision = Some(stored.revision.unwrap_or(0).saturating_add(1));
            revised_events.push(event);
        }
        let gone = resolved.gone;
        let row_ops = resolved.ops;
        drop(correlating);
        let space = self.space();
        // One feature row per event feeds both the predictors and the encoder.
        let fresh = events.len();
        events.extend(revised_events);
        let rows_in: Vec<_> = events.iter().map(event_features).collect();
        let predicting = stage("predict", rows_in.len());
        self.predict_rows(&mut events, &rows_in)?;
        drop(predicting);
        let embedding = stage("embed", rows_in.len());
        let mut vectors = self.embed_rows(space.embedder.as_ref(), &rows_in)?;
        drop(embedding);
        let revised_vectors = vectors.split_off(fresh.min(vectors.len()));
        let revised_events = events.split_off(fresh);
        let now = chrono::Utc::now().timestamp_millis();
        let mut new: Vec<NewEvent> = events
            .into_iter()
            .zip(vectors)
            .map(|(mut event, vector)| {
                event.ingested_at = Some(now);
                NewEvent { event, vector }
            })
            .collect();
        let mut revised_seqs = Vec::with_capacity(revised_events.len());
        let mut revised = Vec::with_capacity(revised_events.len());
        for (event, vector) in revised_events.into_iter().zip(revised_vectors) {
            if let Some(seq) = self.store.seq_of(&event.event_id)? {
                revised_seqs.push(seq);
                revised.push(NewEvent { event, vector });
            }
        }
        outcome.accepted = new.len() as u64;
        let tracking = stage("track", new.len());
        let tracked = self.track(&mut new)?;
        drop(tracking);
        let storing = stage("store", new.len() + revised.len() + gone.len());
        let deleted: Vec<String> = gone.iter().map(|d| d.event_id.clone()).collect();
        if reads == ExtraReads::Index {
            writer.settle();
        }
        let mut ops = {
            let mut written = Written {
                new: &mut new,
                revised: &mut revised,
                deleted: &deleted,
                tracked: &tracked,
            };
            extra(&outcome, &mut written)?
        };
        let alerts = tracked.alerts.len();
        ops.extend(tracked.ops);
        ops.extend(row_ops);
        let seqs = self
            .store
            .write_changes(&new, (&revised_seqs, &revised), &gone, &ops)?;
        drop(storing);
        if alerts > 0 {
            self.metrics.tracker_alerts.inc_by(alerts as u64);
            self.alerts_seen.send_replace(self.store.peek_alert_seq());
        }
        if !revised.is_empty() || !gone.is_empty() {
            self.metrics
                .source_row_changes
                .with_label_values(&["replaced"])
                .inc_by(revised.len() as u64);
            self.metrics
                .source_row_changes
                .with_label_values(&["deleted"])
                .inc_by(gone.len() as u64);
        }
        self.count("firms", &outcome);
        self.metrics
            .store_events
            .set(self.store.event_count() as i64);
        let mut insert = PendingInsert {
            pipeline: self,
            space,
            seqs,
            new,
            parent: tracing::Span::current(),
            _ticket: None,
        };
        if revised.is_empty() && gone.is_empty() {
            // A batch that only adds points lets the next writer in while they are inserted
            // (by its caller, see `PendingInsert`); under a group's lock it inserts them now.
            insert._ticket = writer.release_for_insert();
            if insert._ticket.is_some() {
                return Ok((outcome, Some(insert)));
            }
            insert.run()?;
            return Ok((outcome, None));
        }
        // One that changes points the index holds waits, under the lock, for earlier inserts.
        writer.settle();
        let _indexing = stage("index", insert.seqs.len());
        let index = &insert.space.index;
        index.insert(&points(&insert.seqs, &insert.new))?;
        replace_points(index.as_ref(), &points(&revised_seqs, &revised))?;
        let seqs: Vec<u64> = gone.iter().map(|d| d.seq).collect();
        delete_points(index.as_ref(), &seqs)?;
        self.metrics.index_vectors.set(index.len() as i64);
        self.notify(&insert.new, !gone.is_empty());
        Ok((outcome, None))
    }

    /// Runs the tracker over the new events (setting their incidents), timing it.
    fn track(&self, new: &mut [NewEvent]) -> Result<Tracked, PipelineError> {
        let Some(tracker) = &self.tracker else {
            return Ok(Tracked::default());
        };
        let started = Instant::now();
        let mut events: Vec<&mut FireEventV2> = new.iter_mut().map(|n| &mut n.event).collect();
        let tracked = tracker.track(&self.store, &mut events)?;
        self.metrics
            .tracker_seconds
            .observe(started.elapsed().as_secs_f64());
        self.metrics.tracker_late.inc_by(tracked.late);
        Ok(tracked)
    }

    fn notify(&self, new: &[NewEvent], deleted: bool) {
        let mut followers = self.followers.lock().unwrap_or_else(|p| p.into_inner());
        if followers.is_empty() || (new.is_empty() && !deleted) {
            return;
        }
        // A full doorbell has a ring waiting already; a follower that has gone away is dropped.
        followers.retain(|tx| {
            !matches!(
                tx.try_send(()),
                Err(std::sync::mpsc::TrySendError::Disconnected(()))
            )
        });
    }

    /// Stores observations whose station is known; a wrong number beside a known name is resolved
    /// by the name. An observation that contradicts one already given for the same station and day
    /// is refused, never silently overwritten.
    pub fn ingest_weather(
        &self,
        source: &str,
        batch: Vec<(u64, WeatherObservation)>,
    ) -> Result<IngestOutcome, PipelineError> {
        self.ingest_weather_with(source, batch, |_| Ok(Vec::new()), |_| Ok(Vec::new()))
    }

    /// [`Pipeline::ingest_weather`] with `extra` writes, made from the outcome, in the same batch
    /// as the observations, and `publish` writes, made from the stored detections the new
    /// weather re-joined (see [`Pipeline::rejoin`]), in the same batch as their revisions.
    pub fn ingest_weather_with(
        &self,
        source: &str,
        batch: Vec<(u64, WeatherObservation)>,
        extra: impl FnOnce(&IngestOutcome) -> Result<Vec<StoreOp>, PipelineError>,
        publish: impl FnOnce(&mut [NewEvent]) -> Result<Vec<StoreOp>, PipelineError>,
    ) -> Result<IngestOutcome, PipelineError> {
        self.apply_weather(source, batch, false, extra, publish)
    }

    /// [`Pipeline::ingest_weather_with`]; with `corrections`, an observation that differs from
    /// the one stored for its station and time replaces it (a source database's row was
    /// updated) instead of being refused, and the detections it joins are joined again.
    pub fn apply_weather(
        &self,
        source: &str,
        batch: Vec<(u64, WeatherObservation)>,
        corrections: bool,
        extra: impl FnOnce(&IngestOutcome) -> Result<Vec<StoreOp>, PipelineError>,
        publish: impl FnOnce(&mut [NewEvent]) -> Result<Vec<StoreOp>, PipelineError>,
    ) -> Result<IngestOutcome, PipelineError> {
        self.guarded("weather", move || {
            let _writer = self.writer();
            let mut outcome = IngestOutcome::default();
            let mut fresh: HashMap<(u32, i64), (u64, WeatherObservation)> =
                HashMap::with_capacity(batch.len());
            let mut refused = Vec::new();
            {
                let correlator = self
                    .correlator
                    .read()
                    .unwrap_or_else(PoisonError::into_inner);
                for (line, mut obs) in batch {
                    let version = resolve_station(&correlator, line, &obs).and_then(|station| {
                        obs.station_id = station.id;
                        obs.check_day(line, station.longitude)?;
                        Ok(obs.valid_from(station.longitude).timestamp_millis())
                    });
                    let verdict = match version {
                        Ok(valid_from) => self
                            .weather_verdict(line, &obs, valid_from, &fresh, corrections)?
                            .map(|verdict| (verdict, valid_from)),
                        Err(error) => Err(error),
                    };
                    match verdict {
                        Ok((WeatherVerdict::New, valid_from)) => {
                            fresh.insert((obs.station_id, valid_from), (line, obs));
                        }
                        Ok((WeatherVerdict::Duplicate, _)) => outcome.duplicates += 1,
                        Err(error) => refused.push(Rejected {
                            error,
                            raw: serde_json::to_string(&obs).unwrap_or_default(),
                        }),
                    }
                }
            }
            self.dead_letter(source, "weather", &refused)?;
            refused.into_iter().for_each(|r| outcome.reject(r.error));
            let observations: Vec<(i64, WeatherObservation)> = fresh
                .into_iter()
                .map(|((_, valid_from), (_, obs))| (valid_from, obs))
                .collect();
            outcome.accepted = observations.len() as u64;
            // The versions whose re-join is to run: this batch's, and any a crash left undone.
            let mut versions = self.store.pending_rejoin()?;
            versions.extend(
                observations.iter().map(|(valid_from, obs)| {
                    (obs.station_id, *valid_from, obs.observed_at.is_none())
                }),
            );
            let mut ops = extra(&outcome)?;
            if !observations.is_empty() {
                ops.push(StoreOp::pending_rejoin(&versions)?);
            }
            self.store.put_weather_with(&observations, &ops)?;
            {
                let mut correlator = self
                    .correlator
                    .write()
                    .unwrap_or_else(PoisonError::into_inner);
                observations.iter().for_each(|(valid_from, obs)| {
                    correlator.add_version(obs.station_id, *valid_from)
                });
                let touched = observations.iter().map(|(_, obs)| obs.station_id).collect();
                correlator.refresh_fire_weather(&self.store, &touched)?;
            }
            self.count("weather", &outcome);
            if !versions.is_empty() {
                let (seqs, mut revised) = self.rejoin(&versions)?;
                let mut ops = publish(&mut revised)?;
                if let Some(tracker) = &self.tracker {
                    let events: Vec<&FireEventV2> = revised.iter().map(|n| &n.event).collect();
                    ops.extend(tracker.reweather(&self.store, &events)?);
                }
                ops.push(StoreOp::rejoin_done());
                self.revise(&seqs, &revised, &ops)?;
            }
            Ok(outcome)
        })
    }

    /// The stored detections that join differently now that `versions` (station, valid from,
    /// whether a daily summary) are stored, correlated again, with their rules, predictions
    /// and vector recomputed and their revision counted up: a detection processed before its
    /// weather arrived (on the satellite path, every detection of a day whose summary comes the
    /// next morning) gets it.
    /// Looks only where a version can change a join (see [`Correlator::reach`]): within the
    /// join radius of its station, from it to the maximum age after it (a daily summary: to
    /// the end of its station's Fire Weather Index series).
    fn rejoin(
        &self,
        versions: &[(u32, i64, bool)],
    ) -> Result<(Vec<u64>, Vec<NewEvent>), PipelineError> {
        let correlator = self
            .correlator
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let reach: Vec<_> = versions
            .iter()
            .filter_map(|&(station, valid_from, daily)| {
                correlator.reach(station, valid_from, daily)
            })
            .collect();
        let mut seen = HashSet::new();
        let mut events = Vec::new();
        for (from, to) in super::correlate::spans(&reach) {
            for event in self.store.events_between(from, to)? {
                let mut event = event?;
                let (lat, lon) = (event.location.latitude, event.location.longitude);
                if !correlator.within(&reach, lat, lon, event.detection_time)
                    || !seen.insert(event.event_id.clone())
                {
                    continue;
                }
                let Some(at) = chrono::DateTime::from_timestamp_millis(event.detection_time) else {
                    continue;
                };
                let joined = correlator.correlate_at(&self.store, lat, lon, at)?;
                if Some(joined.status) == event.weather_status
                    && joined.conditions == event.weather_conditions
                {
                    continue;
                }
                self.metrics
                    .correlate_rejoins
                    .with_label_values(&[joined.status.as_str()])
                    .inc();
                event.impact_assessment =
                    reassess(event.impact_assessment.take(), joined.conditions.as_ref());
                event.weather_status = Some(joined.status);
                event.weather_conditions = joined.conditions;
                event.revision = Some(event.revision.unwrap_or(0).saturating_add(1));
                events.push(event);
            }
        }
        drop(correlator);
        if events.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let space = self.space();
        let rows: Vec<_> = events.iter().map(event_features).collect();
        self.predict_rows(&mut events, &rows)?;
        let vectors = self.embed_rows(space.embedder.as_ref(), &rows)?;
        let mut seqs = Vec::with_capacity(events.len());
        let mut revised = Vec::with_capacity(events.len());
        for (mut event, vector) in events.into_iter().zip(vectors) {
            let Some(seq) = self.store.seq_of(&event.event_id)? else {
                continue;
            };
            event.model_version = Some(space.embedder.model_version().to_owned());
            seqs.push(seq);
            revised.push(NewEvent { event, vector });
        }
        Ok((seqs, revised))
    }

    /// Stores revised events in place with `ops` in one batch, then replaces their points in
    /// the index (an engine that cannot replace a point keeps the old vector until the next
    /// re-index, and says so).
    fn revise(
        &self,
        seqs: &[u64],
        revised: &[NewEvent],
        ops: &[StoreOp],
    ) -> Result<(), PipelineError> {
        self.store.revise_events_with(seqs, revised, ops)?;
        if revised.is_empty() {
            return Ok(());
        }
        let space = self.space();
        replace_points(space.index.as_ref(), &points(seqs, revised))?;
        Ok(())
    }

    fn weather_verdict(
        &self,
        line: u64,
        obs: &WeatherObservation,
        valid_from: i64,
        fresh: &HashMap<(u32, i64), (u64, WeatherObservation)>,
        corrections: bool,
    ) -> Result<Result<WeatherVerdict, FieldError>, StoreError> {
        let conflict = |previous: String| {
            let (field, when) = match obs.observed_at {
                Some(at) => ("observed_at", at.to_rfc3339()),
                None => ("Date", obs.date.to_string()),
            };
            FieldError::new(
                line,
                field,
                format!(
                    "station {:06} already has a different observation for {when} ({previous})",
                    obs.station_id
                ),
            )
        };
        if let Some((earlier, seen)) = fresh.get(&(obs.station_id, valid_from)) {
            return Ok(if seen == obs {
                Ok(WeatherVerdict::Duplicate)
            } else {
                Err(conflict(format!("line {earlier}")))
            });
        }
        Ok(match self.store.weather_at(obs.station_id, valid_from)? {
            None => Ok(WeatherVerdict::New),
            Some(stored) if &stored == obs => Ok(WeatherVerdict::Duplicate),
            Some(_) if corrections => Ok(WeatherVerdict::New),
            Some(_) => Err(conflict("stored earlier".into())),
        })
    }

    /// Stores stations; an identical station already stored counts as a duplicate.
    pub fn ingest_stations(
        &self,
        batch: Vec<(u64, Station)>,
    ) -> Result<IngestOutcome, PipelineError> {
        self.guarded("stations", move || {
            let _writer = self.writer();
            let mut outcome = IngestOutcome::default();
            let mut correlator = self
                .correlator
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            let mut fresh: Vec<Station> = Vec::with_capacity(batch.len());
            for (_, station) in batch {
                let known =
                    correlator.station(station.id) == Some(&station) || fresh.contains(&station);
                if known {
                    outcome.duplicates += 1;
                } else {
                    fresh.push(station);
                }
            }
            self.store.put_stations(&fresh)?;
            outcome.accepted = fresh.len() as u64;
            correlator.add_stations(fresh);
            self.count("stations", &outcome);
            Ok(outcome)
        })
    }

    /// Stores sensor readings; later detections within range summarise them (`sensor_summary`).
    pub fn ingest_sensors(
        &self,
        batch: Vec<(u64, SensorReading)>,
    ) -> Result<IngestOutcome, PipelineError> {
        self.ingest_sensors_with(batch, |_| Ok(Vec::new()))
    }

    /// [`Pipeline::ingest_sensors`] with `extra` writes in the same batch.
    pub fn ingest_sensors_with(
        &self,
        batch: Vec<(u64, SensorReading)>,
        extra: impl FnOnce(&IngestOutcome) -> Result<Vec<StoreOp>, PipelineError>,
    ) -> Result<IngestOutcome, PipelineError> {
        self.guarded("sensors", move || {
            let _writer = self.writer();
            let readings: Vec<SensorReading> = batch.into_iter().map(|(_, r)| r).collect();
            let outcome = IngestOutcome {
                accepted: readings.len() as u64,
                ..IngestOutcome::default()
            };
            let ops = extra(&outcome)?;
            self.store.put_sensor_readings_with(&readings, &ops)?;
            self.count("sensors", &outcome);
            Ok(outcome)
        })
    }

    /// Decodes an agency's incident export (CAL FIRE's two CSV shapes) and stores its
    /// incidents, merging with any already stored; refused records go to the dead letters with
    /// their reason. Counted like every other source. Returns the tally and the records as
    /// stored, for the caller to hand to the search index.
    pub fn ingest_historical(
        &self,
        bytes: &[u8],
        source: &str,
    ) -> Result<(IngestOutcome, Vec<HistoricalIncident>), PipelineError> {
        self.guarded("historical_incidents", move || {
            let (incidents, rejected) = super::decode::decode_calfire(bytes);
            let _writer = self.writer();
            let letters: Vec<Rejected> = rejected
                .into_iter()
                .map(|(error, raw)| Rejected { error, raw })
                .collect();
            self.dead_letter(source, "historical_incidents", &letters)?;
            let mut outcome = IngestOutcome::default();
            for letter in letters {
                outcome.reject(letter.error);
            }
            let total = incidents.len() as u64;
            let (new, stored) = self.store.put_historical_incidents(incidents)?;
            outcome.accepted = new as u64;
            outcome.duplicates = total - new as u64;
            self.count("historical_incidents", &outcome);
            Ok((outcome, stored))
        })
    }

    /// Keeps refused records with their reasons and counts them.
    pub fn dead_letter(
        &self,
        source: &str,
        kind: &str,
        rejected: &[Rejected],
    ) -> Result<(), PipelineError> {
        let at_ms = chrono::Utc::now().timestamp_millis();
        let letters: Vec<DeadLetter> = rejected
            .iter()
            .map(|r| DeadLetter {
                source: source.to_owned(),
                error: r.error.clone(),
                raw: r.raw.clone(),
                at_ms,
            })
            .collect();
        self.store.put_dead_letters(&letters)?;
        self.metrics
            .ingest_records
            .with_label_values(&[kind, "rejected"])
            .inc_by(rejected.len() as u64);
        Ok(())
    }

    fn count(&self, kind: &str, outcome: &IngestOutcome) {
        let records = &self.metrics.ingest_records;
        records
            .with_label_values(&[kind, "accepted"])
            .inc_by(outcome.accepted);
        records
            .with_label_values(&[kind, "duplicate"])
            .inc_by(outcome.duplicates);
    }
}

fn resolve_station<'a>(
    correlator: &'a Correlator,
    line: u64,
    obs: &WeatherObservation,
) -> Result<&'a Station, FieldError> {
    if let Some(station) = correlator
        .station(obs.station_id)
        .or_else(|| correlator.station_named(&obs.station_name))
    {
        return Ok(station);
    }
    Err(FieldError::new(
        line,
        "Station",
        format!(
            "station {:06} is not in the station list and no listed station is named `{}` (load the BOM station file first)",
            obs.station_id, obs.station_name
        ),
    ))
}

/// The index points of stored events, by their sequence numbers.
fn points<'a>(seqs: &[u64], events: &'a [NewEvent]) -> Vec<IndexPoint<'a>> {
    seqs.iter()
        .zip(events)
        .map(|(&seq, n)| IndexPoint {
            seq,
            vector: &n.vector,
            attrs: PointAttrs::of(&n.event),
        })
        .collect()
}

/// Deletes the points of deleted events from `index`. An engine that cannot delete a point
/// (hnsw_rs) keeps it until the next re-index, and the log says so; returns whether the
/// points were deleted.
pub fn delete_points(index: &dyn VectorIndex, seqs: &[u64]) -> Result<bool, IndexError> {
    if seqs.is_empty() {
        return Ok(true);
    }
    match index.delete(seqs) {
        Err(IndexError::Unsupported { engine, operation }) => {
            tracing::warn!(
                engine,
                operation,
                deleted = seqs.len(),
                "Deleted events stay in this index engine until a re-index (searches skip them: their records are gone)."
            );
            Ok(false)
        }
        other => other.map(|_| true),
    }
}

/// Replaces the points of revised events in `index`. An engine that cannot replace a point
/// (hnsw_rs) keeps the older vectors until the next re-index, and the log says so; returns
/// whether the points were replaced.
pub fn replace_points(
    index: &dyn VectorIndex,
    points: &[IndexPoint<'_>],
) -> Result<bool, IndexError> {
    match index.insert(points) {
        Err(IndexError::Unsupported { engine, operation }) => {
            tracing::warn!(
                engine,
                operation,
                revised = points.len(),
                "Revised events keep their older vectors in this index engine until a re-index."
            );
            Ok(false)
        }
        other => other.map(|()| true),
    }
}

/// What a batch of detections writes, for a caller's writes in the same commit.
pub struct Written<'a> {
    /// New events, after the models and the tracker.
    pub new: &'a mut [NewEvent],
    /// Stored events replaced in place by their row's update (their next `revision`).
    pub revised: &'a mut [NewEvent],
    /// Ids of stored events deleted (their row was deleted, or its update moved the detection).
    pub deleted: &'a [String],
    /// What the tracker did.
    pub tracked: &'a Tracked,
}

/// A stored batch's new points, to be inserted into the index after its writer let go of the
/// lock; the lock counts the insert as running until this is run or dropped.
pub struct PendingInsert<'a> {
    pipeline: &'a Pipeline,
    space: Arc<Space>,
    seqs: Vec<u64>,
    new: Vec<NewEvent>,
    /// The span the batch was stored in (a Kafka run's, a request's): the insert's stage span
    /// is its child on whichever thread runs it, and it stays open until the insert is over.
    parent: tracing::Span,
    _ticket: Option<InsertTicket<'a>>,
}

impl PendingInsert<'_> {
    /// Inserts the points; a search finds them once it returns.
    pub fn run(self) -> Result<(), PipelineError> {
        let _parent = self.parent.enter();
        super::drill::slow_insert();
        let _indexing =
            tracing::info_span!("stage", otel.name = "index", records = self.seqs.len()).entered();
        let index = &self.space.index;
        index.insert(&points(&self.seqs, &self.new))?;
        self.pipeline.metrics.index_vectors.set(index.len() as i64);
        self.pipeline.notify(&self.new, false);
        Ok(())
    }
}

/// What a batch's `extra` reads besides the store: the index too means every earlier batch's
/// insert must be in it first.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ExtraReads {
    Store,
    Index,
}

/// The writer lock as a batch holds it: its own, which it may let go of for its index insert
/// (`None` once it has), or its caller's (a group's writer), held until the caller is done.
enum Held<'a> {
    Mine(Option<WriterGuard<'a>>),
    Caller(&'a WriterGuard<'a>),
}

impl<'a> Held<'a> {
    /// Lets go of the lock for an insert of new points when it is the batch's own.
    fn release_for_insert(&mut self) -> Option<InsertTicket<'a>> {
        match self {
            Self::Mine(guard) => guard.take().map(WriterGuard::release_for_insert),
            Self::Caller(_) => None,
        }
    }

    /// Waits for inserts let go of the lock earlier (see [`WriterGuard::settle`]).
    fn settle(&self) {
        match self {
            Self::Mine(Some(guard)) => guard.settle(),
            Self::Caller(guard) => guard.settle(),
            Self::Mine(None) => {}
        }
    }
}

/// How long after a live writer bulk work keeps writing in short pieces.
const LIVE_RECENT: std::time::Duration = std::time::Duration::from_secs(60);
/// Bulk pieces are this many times `ingest.live_batch` while no live writer is about.
const QUIET_PIECES: usize = 16;
/// `ingest.live_group_records` until set: the default configuration's value.
const DEFAULT_LIVE_GROUP_RECORDS: usize = 1024;

/// The rule anomalies the weather decides.
const UNDER_HIGH_HUMIDITY: &str = "fire_under_high_humidity";
const IN_RAIN: &str = "fire_in_rain";

/// The seed's rule anomalies of a detection under this weather (none without weather).
fn impact_of(weather: Option<&WeatherConditions>) -> Option<ImpactAssessment> {
    weather.map(|w| {
        let mut anomalies = Vec::new();
        if w.rh_3pm_pct.is_some_and(|rh| rh >= HIGH_HUMIDITY_PCT) {
            anomalies.push(UNDER_HIGH_HUMIDITY.to_owned());
        }
        if w.rain_mm.is_some_and(|mm| mm >= RAIN_MM) {
            anomalies.push(IN_RAIN.to_owned());
        }
        ImpactAssessment { anomalies }
    })
}

/// An assessment with its weather rules decided again under `weather`; the flags the tracker
/// added (a static source, a persistent hot spot) stay, after them as when first stored.
fn reassess(
    assessment: Option<ImpactAssessment>,
    weather: Option<&WeatherConditions>,
) -> Option<ImpactAssessment> {
    let kept: Vec<String> = assessment
        .map(|a| a.anomalies)
        .unwrap_or_default()
        .into_iter()
        .filter(|flag| flag != UNDER_HIGH_HUMIDITY && flag != IN_RAIN)
        .collect();
    match impact_of(weather) {
        Some(mut rules) => {
            rules.anomalies.extend(kept);
            Some(rules)
        }
        None if kept.is_empty() => None,
        None => Some(ImpactAssessment { anomalies: kept }),
    }
}

/// Whether a stored event describes `detection` as it is: the same pixel, time, instrument
/// readings and product version (its joins and models may differ).
fn describes(stored: &FireEventV2, detection: &FireDetection) -> bool {
    let fresh = build_event(detection, WeatherStatus::NoStationInRange, None, "");
    stored.source == fresh.source
        && stored.location == fresh.location
        && stored.detection_time == fresh.detection_time
        && stored.fire_characteristics == fresh.fire_characteristics
}

/// Assembles the record from a detection and its weather join, applying the seed's rule anomalies.
fn build_event(
    detection: &FireDetection,
    status: crate::event::WeatherStatus,
    weather: Option<WeatherConditions>,
    model_version: &str,
) -> FireEventV2 {
    let impact_assessment = impact_of(weather.as_ref());
    FireEventV2 {
        event_id: detection.event_id(),
        correlation_id: None,
        source: SourceInfo {
            provider: "NASA FIRMS".into(),
            satellite: detection.satellite.clone(),
            instrument: detection.instrument.as_str().into(),
            version: detection.version.clone(),
        },
        detection_time: detection.acquired_at.timestamp_millis(),
        location: Location {
            latitude: detection.latitude,
            longitude: detection.longitude,
        },
        fire_characteristics: FireCharacteristics {
            brightness_k: detection.brightness_k,
            brightness_background_k: detection.brightness_background_k,
            frp_mw: detection.frp_mw,
            scan_km: detection.scan_km,
            track_km: detection.track_km,
            confidence: detection.confidence,
            confidence_percent: detection.confidence_percent,
            daytime: detection.daytime,
            detection_type: detection.detection_type.map(i32::from),
        },
        weather_status: Some(status),
        weather_conditions: weather,
        sensor_summary: None,
        impact_assessment,
        ml_predictions: None,
        model_version: Some(model_version.to_owned()),
        ingested_at: None,
        similar_events: None,
        revision: None,
    }
}

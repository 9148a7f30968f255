//! Wiring: open the store, load the encoder, rebuild the index, load files, serve until shutdown.

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use anyhow::Context;

use crate::api::{self, AppState};
use crate::config::{QueryBackend, Settings};
use crate::embed::{Embedder, Predictors, SentenceEncoder};
use crate::index::VectorIndex;
use crate::lifecycle::{IndexLifecycle, load_embedder, open_space, replay, serving_model};
use crate::metrics::Metrics;
use crate::search::{Doc, SearchIndex, SearchState};
use crate::store::Store;
use crate::stream::Pipeline;
use crate::stream::{Correlator, load_files};
use crate::tracker::outlook::{OUTLOOK_FEATURES, OutlookModel};

/// The assembled service: every component, ready to ingest and answer.
pub struct Service {
    /// Settings it was built from.
    pub settings: Settings,
    /// The pipeline (owns the write path and the active space).
    pub pipeline: Arc<Pipeline>,
    /// The store.
    pub store: Arc<Store>,
    /// Metrics.
    pub metrics: Metrics,
    /// Weaviate as the query backend, when `index.query_backend = "weaviate"`.
    pub remote: Option<crate::weaviate::WeaviateSearch>,
    /// Natural-language search, when `search.enabled`.
    pub search: Option<Arc<SearchState>>,
    /// The serving space's lifecycle, shared with the re-index job and the admin routes.
    pub lifecycle: Arc<IndexLifecycle>,
}

/// Documents per search-index batch while building.
const SEARCH_BUILD_BATCH: usize = 512;

/// Builds the search index from the store on its own thread, then follows new events.
fn start_search(
    settings: &Settings,
    store: &Arc<Store>,
    pipeline: &Arc<Pipeline>,
) -> anyhow::Result<Option<Arc<SearchState>>> {
    let s = &settings.search;
    if !s.enabled {
        return Ok(None);
    }
    let e = &settings.embed;
    let encoder = SentenceEncoder::load(&e.manifest, &s.sentence_model, &e.onnxruntime_lib, e.intra_threads)
        .with_context(|| {
            format!(
                "loading the sentence encoder {} (scripts/setup.sh installs it; search.enabled = false turns search off)",
                s.sentence_model
            )
        })?;
    let index = Arc::new(SearchIndex::new(
        Arc::new(encoder),
        Arc::clone(store),
        s.fusion(),
    )?);
    let state = Arc::new(SearchState {
        index: Arc::clone(&index),
        ready: std::sync::atomic::AtomicBool::new(false),
        failure: std::sync::Mutex::new(None),
        max_query_bytes: s.max_query_bytes,
    });
    // Subscribe before the scan, so nothing stored meanwhile is missed (ids already in are skipped).
    let follow = s
        .index_events
        .then(|| (pipeline.follow(), store.next_seq(), store.next_revision()));
    let store = Arc::clone(store);
    let building = Arc::clone(&state);
    let index_events = s.index_events;
    std::thread::Builder::new()
        .name("search-index".into())
        .spawn(move || {
            let started = Instant::now();
            // Text first: BM25 answers over everything as soon as the text index is built
            // (seconds); the sentence vectors follow, from the store's cache or the encoder.
            let build = || -> anyhow::Result<(usize, usize)> {
                let incidents: Vec<Doc> = store.historical_incidents()?.iter().map(Doc::incident).collect();
                let n_incidents = incidents.len();
                for chunk in incidents.chunks(SEARCH_BUILD_BATCH) {
                    index.add_text(chunk.to_vec())?;
                }
                let mut n_events = 0;
                if index_events {
                    let mut batch = Vec::with_capacity(SEARCH_BUILD_BATCH);
                    for event in store.events_between(i64::MIN, i64::MAX)? {
                        batch.push(Doc::event(&event?));
                        if batch.len() == SEARCH_BUILD_BATCH {
                            n_events += index.add_text(std::mem::take(&mut batch))?;
                        }
                    }
                    n_events += index.add_text(batch)?;
                }
                Ok((n_incidents, n_events))
            };
            match build() {
                Ok((incidents, events)) => {
                    building.ready.store(true, std::sync::atomic::Ordering::Release);
                    tracing::info!(incidents, events, pending_vectors = index.pending_vectors(), elapsed_ms = started.elapsed().as_millis() as u64, "Search index ready (BM25); sentence vectors follow.");
                }
                Err(e) => {
                    tracing::error!(error = %e, "Search index build failed; POST /v1/search answers 503.");
                    *building.failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(format!("{e:#}"));
                    return;
                }
            }
            let (rx, mut next, mut revision) = match follow {
                Some((rx, next, revision)) => (Some(rx), next, revision),
                None => (None, 0, 0),
            };
            let mut vectors_done_logged = false;
            loop {
                // New events go into the text index before more of the backlog is embedded, so
                // a live detection is searchable by BM25 within one encoder batch.
                let rang = rx.as_ref().is_some_and(|rx| rx.try_iter().count() > 0);
                if rang {
                    match catch_up(&store, &index, next, revision) {
                        Ok(done) => (next, revision) = done,
                        Err(e) => tracing::error!(error = %e, "Events could not be added to the search index; retried at the next batch."),
                    }
                }
                match index.embed_pending(SEARCH_BUILD_BATCH) {
                    Ok(0) => {}
                    Ok(_) => continue,
                    Err(e) => {
                        // The encoder failed on this batch: BM25 keeps answering; try again in
                        // a few seconds rather than spinning on the same error.
                        tracing::error!(error = %e, pending = index.pending_vectors(), "Sentence vectors could not be computed; retrying in 5 s.");
                        std::thread::sleep(std::time::Duration::from_secs(5));
                        continue;
                    }
                }
                if !vectors_done_logged && index.pending_vectors() == 0 {
                    vectors_done_logged = true;
                    tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "Search sentence vectors complete.");
                }
                let Some(rx) = rx.as_ref() else { return };
                if rx.recv().is_err() {
                    return;
                }
                match catch_up(&store, &index, next, revision) {
                    Ok(done) => (next, revision) = done,
                    Err(e) => tracing::error!(error = %e, "Events could not be added to the search index; retried at the next batch."),
                }
            }
        })?;
    Ok(Some(state))
}

/// Adds the events stored from sequence number `from` on to the search index, in batches, and
/// removes those deleted from revision `revision` on; returns the sequence and revision numbers
/// to go on from.
fn catch_up(
    store: &Store,
    index: &SearchIndex,
    from: u64,
    revision: u64,
) -> anyhow::Result<(u64, u64)> {
    // The events' end first: a deletion logged after it is seen by the next call.
    let end = store.next_seq();
    let revision_end = store.next_revision();
    let mut deleted = Vec::new();
    for seq in store.revised_from(revision)? {
        // An event deleted and stored again since keeps its document.
        if let Some(event_id) = store.deleted_event(seq)?
            && !store.contains_event(&event_id)?
        {
            deleted.push(event_id);
        }
    }
    index.remove(&deleted)?;
    let mut next = from;
    let mut batch = Vec::with_capacity(SEARCH_BUILD_BATCH);
    for stored in store.vectors_from(from)? {
        let stored = stored?;
        if stored.seq >= end {
            break;
        }
        // One entry per model: an event is added once.
        if stored.seq < next {
            continue;
        }
        if let Some(event) = store.event(&stored.event_id)? {
            batch.push(Doc::event(&event));
        }
        next = stored.seq + 1;
        if batch.len() == SEARCH_BUILD_BATCH {
            index.add_text(std::mem::take(&mut batch))?;
        }
    }
    index.add_text(batch)?;
    Ok((next, revision_end))
}

impl Service {
    /// Opens RocksDB, the active encoder and its index (from a snapshot when one matches),
    /// indexes every stored vector the index lacks (a fresh start, a restart and a load after a
    /// crash all take this one path), then loads `files` through the live pipeline.
    pub fn open(settings: Settings, files: &[PathBuf], progress: bool) -> anyhow::Result<Self> {
        let path = &settings.store.path;
        let store = Arc::new(
            Store::open(path).with_context(|| format!("opening store {}", path.display()))?,
        );
        store.set_sync_writes(settings.store.sync_writes);
        let model = serving_model(&settings, &store)?;
        let embedder = load_embedder(&settings, &model)?;
        if !settings.weaviate.url.is_empty() {
            store.enable_mirror_outbox();
            let queued = store.backfill_outbox(embedder.model_version())?;
            if queued > 0 {
                tracing::info!(queued, "Weaviate mirror switched on: stored events queued.");
            }
        }
        // Before anything is loaded, so the alerts this run raises reach a new webhook target.
        crate::webhooks::start_cursors(&settings.webhooks, &store).context("webhooks")?;
        let metrics = Metrics::new().context("registering metrics")?;
        let (space, covered) = open_space(&settings, &store, embedder)?;
        let correlator = Correlator::load(
            &store,
            settings.correlate.max_station_distance_km,
            settings.correlate.weather_max_age_hours,
        )?
        .with_sensors(
            settings.correlate.sensor_radius_km,
            settings.correlate.sensor_window_minutes,
        );
        let mut pipeline = Pipeline::new(
            Arc::clone(&store),
            correlator,
            space.clone(),
            metrics.clone(),
            settings.embed.batch_size,
            tracker(&settings)?,
        );
        pipeline.set_live_batch(settings.ingest.live_batch);
        pipeline.set_live_group_records(settings.ingest.live_group_records);
        let pipeline = Arc::new(pipeline);
        let e = &settings.embed;
        pipeline.set_predictors(
            Predictors::load(
                &e.manifest,
                &e.predictors,
                &e.onnxruntime_lib,
                e.intra_threads,
            )
            .context("loading the predictors (embed.predictors)")?,
        );
        let started = Instant::now();
        let loaded = space.index.len();
        let model = space.embedder.model_version();
        let replayed = replay(space.index.as_ref(), &store, model, covered, progress)?;
        tracing::info!(
            engine = space.index.engine(),
            model,
            from_snapshot = loaded,
            replayed,
            vectors = space.index.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "Index ready."
        );
        // Files go in as an HTTP body does, with the index up to the store: one piece's points
        // are indexed on a second thread while the next piece is stored, instead of storing
        // everything and then building the index from the store with one core idle.
        if !files.is_empty() {
            report(load_files(
                &pipeline,
                files,
                settings.ingest.batch_size,
                progress,
            )?);
        }
        metrics.index_vectors.set(space.index.len() as i64);
        metrics.store_events.set(store.event_count() as i64);
        let remote = query_backend(&settings)?;
        let search = start_search(&settings, &store, &pipeline)?;
        let lifecycle = Arc::new(IndexLifecycle {
            settings: settings.clone(),
            store: Arc::clone(&store),
            pipeline: Arc::clone(&pipeline),
            metrics: metrics.clone(),
        });
        Ok(Self {
            settings,
            pipeline,
            store,
            metrics,
            remote,
            search,
            lifecycle,
        })
    }

    /// The Weaviate mirror's drainer, when `weaviate.url` is set.
    pub fn mirror(&self) -> anyhow::Result<Option<crate::weaviate::Mirror>> {
        let w = &self.settings.weaviate;
        if w.url.is_empty() {
            return Ok(None);
        }
        let client = crate::weaviate::WeaviateClient::new(
            &w.url,
            &w.class,
            Some(w.api_key.clone()),
            std::time::Duration::from_millis(w.timeout_ms),
            &crate::tls::Trust::load(&self.settings.tls)?,
        )?;
        Ok(Some(crate::weaviate::Mirror::new(
            client,
            Arc::clone(&self.store),
            w,
            self.metrics.clone(),
        )))
    }

    /// The webhook dispatcher, when `webhooks.targets` has any.
    pub fn webhooks(&self) -> anyhow::Result<Option<crate::webhooks::Dispatcher>> {
        crate::webhooks::Dispatcher::new(
            &self.settings.webhooks,
            &crate::tls::Trust::load(&self.settings.tls)?,
            Arc::clone(&self.store),
            self.metrics.clone(),
        )
    }

    /// The active index.
    pub fn index(&self) -> Arc<dyn VectorIndex> {
        Arc::clone(&self.pipeline.space().index)
    }

    /// The active encoder.
    pub fn embedder(&self) -> Arc<dyn Embedder> {
        Arc::clone(&self.pipeline.space().embedder)
    }

    /// Loads files through the live pipeline (each batch is indexed as it is stored).
    pub fn load(&self, files: &[PathBuf], progress: bool) -> anyhow::Result<()> {
        report(load_files(
            &self.pipeline,
            files,
            self.settings.ingest.batch_size,
            progress,
        )?);
        Ok(())
    }

    /// Writes the native engine's snapshot (see [`IndexLifecycle::save_snapshot`]).
    pub fn save_index(&self) -> anyhow::Result<bool> {
        self.lifecycle.save_snapshot()
    }

    /// The API state for this service.
    pub fn api_state(&self) -> AppState {
        AppState {
            pipeline: Arc::clone(&self.pipeline),
            store: Arc::clone(&self.store),
            metrics: self.metrics.clone(),
            settings: self.settings.api.clone(),
            ingest_batch: self.settings.ingest.batch_size,
            remote: self.remote.clone(),
            keys: Arc::new(api::auth::KeyRing::new(&self.settings.auth)),
            patterns: self.settings.patterns.clone(),
            search: self.search.clone(),
        }
    }
}

/// The incident tracker when `incidents.enabled`, with its outlook model when one is named.
fn tracker(settings: &Settings) -> anyhow::Result<Option<crate::tracker::Tracker>> {
    let s = &settings.incidents;
    if !s.enabled {
        return Ok(None);
    }
    let tracker = crate::tracker::Tracker::new(s.clone());
    if s.outlook_model.is_empty() {
        return Ok(Some(tracker));
    }
    let e = &settings.embed;
    let model = crate::embed::IncidentOutlook::load::<OUTLOOK_FEATURES>(
        &e.manifest,
        &s.outlook_model,
        &e.onnxruntime_lib,
        e.intra_threads,
    )
    .context("loading the growth outlook (incidents.outlook_model)")?;
    Ok(Some(tracker.with_outlook(Arc::new(Outlook(model)))))
}

/// The registry's incident model behind the tracker's port.
struct Outlook(crate::embed::IncidentOutlook);

impl OutlookModel for Outlook {
    fn name(&self) -> &str {
        self.0.name()
    }

    fn version(&self) -> &str {
        self.0.version()
    }

    fn predict(&self, rows: &[[f32; OUTLOOK_FEATURES]]) -> Result<Vec<f32>, String> {
        self.0.predict(rows).map_err(|e| e.to_string())
    }
}

/// The Weaviate query client when `index.query_backend = "weaviate"` (it connects on first use).
fn query_backend(settings: &Settings) -> anyhow::Result<Option<crate::weaviate::WeaviateSearch>> {
    if settings.index.query_backend != QueryBackend::Weaviate {
        return Ok(None);
    }
    let w = &settings.weaviate;
    let timeout = std::time::Duration::from_millis(w.timeout_ms);
    let key = Some(w.api_key.clone());
    let trust = crate::tls::Trust::load(&settings.tls)?;
    let rest =
        crate::weaviate::WeaviateClient::new(&w.url, &w.class, key.clone(), timeout, &trust)?;
    Ok(Some(crate::weaviate::WeaviateSearch::new(
        &w.grpc_endpoint(),
        rest,
        key,
        timeout,
        &trust,
    )?))
}

/// Logs the first rejections of each file; all of them are in the dead-letter store.
fn report(results: Vec<(PathBuf, crate::stream::IngestOutcome)>) {
    for (path, outcome) in results {
        for r in outcome.rejected.iter().take(5) {
            tracing::warn!(path = %path.display(), line = r.line, field = %r.field, reason = %r.reason, "Record rejected.");
        }
    }
}

/// Runs the embedded default: open, load `files`, serve until `shutdown` resolves.
pub async fn run(
    settings: Settings,
    files: Vec<PathBuf>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listen = settings.api.listen;
    let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
    // Bind first, so a bad address fails at once and liveness answers while we load.
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let slot = Arc::new(OnceLock::new());
    let server = tokio::spawn(api::server::serve(
        listener,
        api::starting_router(Arc::clone(&slot)),
        api::server::ServerLimits::of(&settings.api),
        shutdown,
    ));
    tracing::info!(%listen, "Listening; /healthz answers, the API opens when loading is done.");
    let opened =
        tokio::task::spawn_blocking(move || Service::open(settings, &files, progress)).await?;
    let service = match opened {
        Ok(service) => service,
        Err(error) => {
            server.abort();
            return Err(error);
        }
    };
    // This is the only place the slot is filled, once, so `set` cannot find it taken.
    let service = Arc::new(service);
    let (stop_senders, senders_stopped) = tokio::sync::watch::channel(false);
    let mirror = match service.mirror()? {
        Some(mirror) => {
            tracing::info!(url = %crate::credentials::redacted(&service.settings.weaviate.url), "Mirroring to Weaviate.");
            let mut stopped = senders_stopped;
            Some(tokio::spawn(mirror.run(async move {
                let _ = stopped.changed().await;
            })))
        }
        None => None,
    };
    let webhooks = match service.webhooks()? {
        Some(dispatcher) => {
            let targets: Vec<&str> = dispatcher
                .targets()
                .iter()
                .map(|t| t.name.as_str())
                .collect();
            tracing::info!(targets = ?targets, "Delivering alerts to webhooks.");
            let mut stopped = stop_senders.subscribe();
            let alerts = service.pipeline.alerts_seen();
            Some(tokio::spawn(dispatcher.run(alerts, async move {
                let _ = stopped.changed().await;
            })))
        }
        None => None,
    };
    let stream = if service.settings.kafka.enabled() {
        let handle = crate::stream::kafka::start(
            &service.settings,
            Arc::clone(&service.pipeline),
            tokio::runtime::Handle::current(),
        )
        .context("starting the Kafka consumer")?;
        tracing::info!(brokers = %service.settings.kafka.brokers, "Consuming from Kafka.");
        Some(handle)
    } else {
        None
    };
    if service.settings.auth.keys.is_empty() {
        tracing::warn!(%listen, "No API keys configured: every route, ingest and re-index included, is open.");
    }
    let app =
        api::router(service.api_state()).merge(api::admin::routes(Arc::clone(&service.lifecycle)));
    let _ = slot.set(app);
    tracing::info!(
        events = service.store.event_count(),
        indexed = service.index().len(),
        "FireSight is serving."
    );
    server.await.context("serving HTTP")?;
    if let Some(stream) = stream {
        tokio::task::spawn_blocking(move || stream.stop()).await?;
    }
    let _ = stop_senders.send(true);
    if let Some(mirror) = mirror {
        mirror.await?;
    }
    if let Some(webhooks) = webhooks {
        webhooks.await?;
    }
    tokio::task::spawn_blocking(move || service.save_index()).await??;
    tracing::info!("Shut down cleanly.");
    Ok(())
}

//! Wiring: open the store, load the encoder, rebuild the index, load files, serve until shutdown.

use std::future::Future;
use std::future::IntoFuture;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use crate::api::{self, AppState};
use crate::config::Settings;
use crate::embed::{Embedder, OnnxEmbedder, Predictors, SentenceEncoder};
use crate::index::{
    HnswIndex, IndexPoint, Metric, NativeHnsw, NativeParams, PointAttrs, VectorIndex,
    VectorIndexRead, insertion_key,
};
use crate::metrics::Metrics;
use crate::search::{Doc, SearchIndex};
use crate::store::Store;
use crate::stream::Pipeline;
use crate::stream::{Correlator, Space, load_files};

/// Vectors per insert call while building the index from the store.
const REBUILD_BATCH: usize = 8192;

/// Meta key naming the encoder (`name@version`) whose space serves; set by the re-index job.
pub const META_ACTIVE_MODEL: &[u8] = b"active_model";

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
}

/// The search index and whether its first build has finished.
pub struct SearchState {
    /// The index.
    pub index: Arc<SearchIndex>,
    /// True once every stored incident (and event, with `search.index_events`) is in it.
    pub ready: std::sync::atomic::AtomicBool,
    /// Why the build stopped, if it failed.
    pub failure: std::sync::Mutex<Option<String>>,
    /// Longest query accepted, bytes.
    pub max_query_bytes: usize,
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
    let index = Arc::new(SearchIndex::new(Arc::new(encoder), Arc::clone(store))?);
    let state = Arc::new(SearchState {
        index: Arc::clone(&index),
        ready: std::sync::atomic::AtomicBool::new(false),
        failure: std::sync::Mutex::new(None),
        max_query_bytes: s.max_query_bytes,
    });
    // Subscribe before the scan, so nothing stored meanwhile is missed (ids already in are skipped).
    let follow = s.index_events.then(|| pipeline.follow());
    let store = Arc::clone(store);
    let building = Arc::clone(&state);
    let index_events = s.index_events;
    std::thread::Builder::new()
        .name("search-index".into())
        .spawn(move || {
            let started = Instant::now();
            let build = || -> anyhow::Result<(usize, usize)> {
                let incidents: Vec<Doc> = store.historical_incidents()?.iter().map(Doc::incident).collect();
                let n_incidents = incidents.len();
                for chunk in incidents.chunks(SEARCH_BUILD_BATCH) {
                    index.add(chunk.to_vec())?;
                }
                let mut n_events = 0;
                if index_events {
                    let mut batch = Vec::with_capacity(SEARCH_BUILD_BATCH);
                    for event in store.events_between(i64::MIN, i64::MAX)? {
                        batch.push(Doc::event(&event?));
                        if batch.len() == SEARCH_BUILD_BATCH {
                            n_events += index.add(std::mem::take(&mut batch))?;
                        }
                    }
                    n_events += index.add(batch)?;
                }
                Ok((n_incidents, n_events))
            };
            match build() {
                Ok((incidents, events)) => {
                    building.ready.store(true, std::sync::atomic::Ordering::Release);
                    tracing::info!(incidents, events, elapsed_ms = started.elapsed().as_millis() as u64, "Search index ready.");
                }
                Err(e) => {
                    tracing::error!(error = %e, "Search index build failed; POST /v1/search answers 503.");
                    *building.failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(format!("{e:#}"));
                    return;
                }
            }
            let Some(rx) = follow else { return };
            while let Ok(events) = rx.recv() {
                if let Err(e) = index.add(events.iter().map(Doc::event).collect()) {
                    tracing::error!(error = %e, "Events could not be added to the search index.");
                }
            }
        })?;
    Ok(Some(state))
}

impl Service {
    /// Opens RocksDB, the active encoder and its index (from a snapshot when one matches),
    /// bulk-loads `files` into the store, then indexes every stored vector the index lacks:
    /// a fresh start, a restart and a load after a crash all take this one path.
    pub fn open(settings: Settings, files: &[PathBuf], progress: bool) -> anyhow::Result<Self> {
        let path = &settings.store.path;
        let store = Arc::new(
            Store::open(path).with_context(|| format!("opening store {}", path.display()))?,
        );
        let model = match store.meta(META_ACTIVE_MODEL)? {
            Some(bytes) => String::from_utf8(bytes).context("active model name is not UTF-8")?,
            // A store filled before the re-index job recorded the serving model keeps the
            // space its vectors are in; switching is the re-index job's business.
            None => match store.vectors()?.next().transpose()? {
                Some(v) => v.model_version,
                None => settings.embed.model.clone(),
            },
        };
        let embedder = load_embedder(&settings, &model)?;
        if !settings.weaviate.url.is_empty() {
            store.enable_mirror_outbox();
            let queued = store.backfill_outbox(embedder.model_version())?;
            if queued > 0 {
                tracing::info!(queued, "Weaviate mirror switched on: stored events queued.");
            }
        }
        let metrics = Metrics::new().context("registering metrics")?;
        let (space, through) = open_space(&settings, &store, embedder)?;
        let correlator = Correlator::load(
            &store,
            settings.correlate.max_station_distance_km,
            settings.correlate.weather_max_age_hours,
        )?
        .with_sensors(
            settings.correlate.sensor_radius_km,
            settings.correlate.sensor_window_minutes,
        );
        let pipeline = Arc::new(Pipeline::new(
            Arc::clone(&store),
            correlator,
            space.clone(),
            metrics.clone(),
            settings.embed.batch_size,
        ));
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
        if !files.is_empty() {
            report(load_files(
                &pipeline,
                files,
                settings.ingest.batch_size,
                progress,
            )?);
        }
        let started = Instant::now();
        let loaded = space.index.len();
        let model = space.embedder.model_version();
        let replayed = replay(space.index.as_ref(), &store, model, through, progress)?;
        pipeline.go_live();
        tracing::info!(
            engine = space.index.engine(),
            model,
            from_snapshot = loaded,
            replayed,
            vectors = space.index.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "Index ready."
        );
        metrics.index_vectors.set(space.index.len() as i64);
        metrics.store_events.set(store.event_count() as i64);
        let remote = query_backend(&settings)?;
        let search = start_search(&settings, &store, &pipeline)?;
        Ok(Self {
            settings,
            pipeline,
            store,
            metrics,
            remote,
            search,
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
        )?;
        Ok(Some(crate::weaviate::Mirror {
            client,
            store: Arc::clone(&self.store),
            batch_size: w.batch_size,
            max_backoff: std::time::Duration::from_millis(w.max_backoff_ms),
            metrics: self.metrics.clone(),
        }))
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

    /// Writes the native engine's snapshot, so the next start loads it instead of rebuilding.
    /// Returns whether one was written (other engines and `index.snapshot = false` write none).
    pub fn save_index(&self) -> anyhow::Result<bool> {
        if !self.settings.index.snapshot {
            return Ok(false);
        }
        let space = self.pipeline.space();
        let Some(native) = space.native.as_ref() else {
            return Ok(false);
        };
        let model = space.embedder.model_version();
        let path = snapshot_path(&self.settings, model);
        // The pipeline's writer lock keeps batches out while the covered range is read.
        let started = Instant::now();
        self.pipeline.quiesce(|| {
            let meta = SnapshotMeta {
                model_version: model.to_owned(),
                through_seq: self.store.next_seq().checked_sub(1),
            };
            native.save(&path, &serde_json::to_vec(&meta)?)?;
            anyhow::Ok(())
        })??;
        tracing::info!(path = %path.display(), vectors = native.len(), elapsed_ms = started.elapsed().as_millis() as u64, "Index snapshot written.");
        Ok(true)
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
            incidents: self.settings.incidents.clone(),
            search: self.search.clone(),
        }
    }
}

/// The Weaviate query client when `index.query_backend = "weaviate"` (it connects on first use).
fn query_backend(settings: &Settings) -> anyhow::Result<Option<crate::weaviate::WeaviateSearch>> {
    if settings.index.query_backend != "weaviate" {
        return Ok(None);
    }
    let w = &settings.weaviate;
    let timeout = std::time::Duration::from_millis(w.timeout_ms);
    let key = Some(w.api_key.clone());
    let rest = crate::weaviate::WeaviateClient::new(&w.url, &w.class, key.clone(), timeout)?;
    Ok(Some(crate::weaviate::WeaviateSearch::new(
        &w.grpc_endpoint(),
        rest,
        key,
        timeout,
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

/// What a snapshot says about itself, so a stale or foreign one is never trusted.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct SnapshotMeta {
    /// Encoder whose vectors the graph holds.
    model_version: String,
    /// Every stored vector up to this sequence number is in the graph; none after it.
    through_seq: Option<u64>,
}

/// Where the native engine keeps the graph of one model version: beside the store.
pub fn snapshot_path(settings: &Settings, model_version: &str) -> PathBuf {
    let mut name = settings.store.path.clone().into_os_string();
    name.push(format!(".{}.hnsw", model_version.replace(['/', '\\'], "_")));
    PathBuf::from(name)
}

/// Loads the encoder `model` names (`name`, or `name@version`) from the manifest.
pub fn load_embedder(settings: &Settings, model: &str) -> anyhow::Result<Arc<dyn Embedder>> {
    let e = &settings.embed;
    let embedder = OnnxEmbedder::load(&e.manifest, model, &e.onnxruntime_lib, e.intra_threads)
        .with_context(|| format!("loading the encoder {model}"))?;
    Ok(Arc::new(embedder))
}

/// An index for `embedder`'s space: the native engine from its snapshot when one matches
/// this store and model, else an empty one of the configured engine. Returns it with the last
/// sequence number it already holds; the caller replays the stored vectors after that.
pub fn open_space(
    settings: &Settings,
    store: &Store,
    embedder: Arc<dyn Embedder>,
) -> anyhow::Result<(Space, Option<u64>)> {
    let s = &settings.index;
    let model = embedder.model_version().to_owned();
    if s.engine == "hnsw_rs" {
        let capacity = store.event_count() as usize;
        let index = HnswIndex::new(
            embedder.dim(),
            s.m,
            s.ef_construction,
            s.ef_search,
            capacity,
        );
        let space = Space {
            embedder,
            index: Arc::new(index),
            native: None,
        };
        return Ok((space, None));
    }
    let params = native_params(settings, embedder.dim());
    let path = snapshot_path(settings, &model);
    let (native, through) = match s
        .snapshot
        .then(|| load_snapshot(&path, params, &model, store))
        .flatten()
    {
        Some((index, through)) => (Arc::new(index), through),
        None => (Arc::new(NativeHnsw::new(params)), None),
    };
    let space = Space {
        embedder,
        index: Arc::clone(&native) as Arc<dyn VectorIndex>,
        native: Some(native),
    };
    Ok((space, through))
}

/// The native engine's settings from the configuration.
fn native_params(settings: &Settings, dim: usize) -> NativeParams {
    let s = &settings.index;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    NativeParams {
        dim,
        m: s.m,
        ef_construction: s.ef_construction,
        ef_search: s.ef_search,
        metric: Metric::L2,
        flat_search_cutoff: s.flat_search_cutoff,
        build_threads: if s.build_threads == 0 {
            cores
        } else {
            s.build_threads
        },
        ..NativeParams::new(dim)
    }
}

/// A snapshot that matches this store and model, or `None` (with the reason logged).
fn load_snapshot(
    path: &std::path::Path,
    params: NativeParams,
    model: &str,
    store: &Store,
) -> Option<(NativeHnsw, Option<u64>)> {
    if !path.exists() {
        return None;
    }
    let refuse = |reason: String| {
        tracing::warn!(path = %path.display(), %reason, "Snapshot not used; rebuilding from the store.");
        None
    };
    let (index, meta) = match NativeHnsw::load(path, params) {
        Ok(loaded) => loaded,
        Err(e) => return refuse(e.to_string()),
    };
    let meta: SnapshotMeta = match serde_json::from_slice(&meta) {
        Ok(meta) => meta,
        Err(e) => return refuse(format!("unreadable metadata: {e}")),
    };
    if meta.model_version != model {
        return refuse(format!(
            "holds {} vectors, the encoder is {model}",
            meta.model_version
        ));
    }
    if meta.through_seq.is_some_and(|t| t >= store.next_seq()) {
        return refuse("it is newer than the store (was the store replaced?)".to_owned());
    }
    Some((index, meta.through_seq))
}

/// Inserts the stored vectors of `model` after `through` (all of them when `None`).
pub fn replay(
    index: &dyn VectorIndex,
    store: &Store,
    model: &str,
    through: Option<u64>,
    progress: bool,
) -> anyhow::Result<usize> {
    let first = through.map_or(0, |t| t + 1);
    let total = store.next_seq().saturating_sub(first);
    let bar = if progress && total > 0 {
        ProgressBar::new(total)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("indexing [{bar:40}] {pos}/{len} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut vectors = Vec::with_capacity(total as usize);
    let mut skipped = 0u64;
    for stored in store.vectors_from(first)? {
        let stored = stored?;
        if stored.model_version == model {
            let event = store.event(&stored.event_id)?.ok_or_else(|| {
                anyhow::anyhow!(
                    "vector {} names event {} which is not stored",
                    stored.seq,
                    stored.event_id
                )
            })?;
            vectors.push((stored, PointAttrs::of(&event)));
        } else {
            skipped += 1;
        }
    }
    // hnsw_rs needs one global scramble (see `insertion_key`); the native engine does not
    // care, and the same order keeps both reproducible.
    vectors.sort_by_key(|(v, _)| insertion_key(v.seq));
    let replayed = vectors.len();
    for chunk in vectors.chunks(REBUILD_BATCH) {
        let points: Vec<IndexPoint<'_>> = chunk
            .iter()
            .map(|(v, attrs)| IndexPoint {
                seq: v.seq,
                vector: &v.vector,
                attrs: *attrs,
            })
            .collect();
        index.insert(&points)?;
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    if skipped > 0 {
        tracing::warn!(
            skipped,
            model,
            "Vectors of another model version were not indexed; run a re-index."
        );
    }
    Ok(replayed)
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
    let server = axum::serve(listener, api::starting_router(Arc::clone(&slot)))
        .with_graceful_shutdown(shutdown)
        .into_future();
    let server = tokio::spawn(server);
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
    let (stop_mirror, mirror_stopped) = tokio::sync::watch::channel(false);
    let mirror = match service.mirror()? {
        Some(mirror) => {
            tracing::info!(url = %service.settings.weaviate.url, "Mirroring to Weaviate.");
            let mut stopped = mirror_stopped;
            Some(tokio::spawn(mirror.run(async move {
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
    let app = api::router(service.api_state()).merge(api::admin::routes(Arc::clone(&service)));
    let _ = slot.set(app);
    tracing::info!(
        events = service.store.event_count(),
        indexed = service.index().len(),
        "FireSight is serving."
    );
    server.await?.context("serving HTTP")?;
    if let Some(stream) = stream {
        tokio::task::spawn_blocking(move || stream.stop()).await?;
    }
    let _ = stop_mirror.send(true);
    if let Some(mirror) = mirror {
        mirror.await?;
    }
    tokio::task::spawn_blocking(move || service.save_index()).await??;
    tracing::info!("Shut down cleanly.");
    Ok(())
}

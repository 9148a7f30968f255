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
use crate::embed::{Embedder, OnnxEmbedder};
use crate::index::{
    HnswIndex, IndexPoint, Metric, NativeHnsw, NativeParams, PointAttrs, VectorIndex,
    VectorIndexRead, insertion_key,
};
use crate::metrics::Metrics;
use crate::store::Store;
use crate::stream::{Correlator, Pipeline, load_files};

/// Vectors per insert call while building the index from the store.
const REBUILD_BATCH: usize = 8192;

/// The assembled service: every component, ready to ingest and answer.
pub struct Service {
    /// Settings it was built from.
    pub settings: Settings,
    /// The pipeline (owns the write path).
    pub pipeline: Arc<Pipeline>,
    /// The store.
    pub store: Arc<Store>,
    /// The index.
    pub index: Arc<dyn VectorIndex>,
    /// The same index when it is the native engine (for snapshots and maintenance).
    pub native: Option<Arc<NativeHnsw>>,
    /// The encoder.
    pub embedder: Arc<dyn Embedder>,
    /// Metrics.
    pub metrics: Metrics,
}

impl Service {
    /// Opens RocksDB and the encoder, bulk-loads `files` into the store, then builds the index
    /// once from every stored vector — the same path as a restart, so both give the same graph.
    pub fn open(settings: Settings, files: &[PathBuf], progress: bool) -> anyhow::Result<Self> {
        let path = &settings.store.path;
        let store = Arc::new(
            Store::open(path).with_context(|| format!("opening store {}", path.display()))?,
        );
        let e = &settings.embed;
        let embedder: Arc<dyn Embedder> = Arc::new(
            OnnxEmbedder::load(&e.manifest, &e.model, &e.onnxruntime_lib, e.intra_threads)
                .context("loading the event encoder")?,
        );
        let metrics = Metrics::new().context("registering metrics")?;
        let correlator = Correlator::load(&store, settings.correlate.max_station_distance_km)?;
        let bulk = Arc::new(Pipeline::new(
            Arc::clone(&store),
            correlator,
            Arc::clone(&embedder),
            metrics.clone(),
            e.batch_size,
        ));
        if !files.is_empty() {
            report(load_files(
                &bulk,
                files,
                settings.ingest.batch_size,
                progress,
            )?);
        }
        let (index, native) = open_index(&settings, &store, embedder.as_ref(), progress)?;
        // The loads have returned, so nothing else holds the pipeline: keep its correlator
        // rather than reading every stored observation a second time.
        let pipeline = Arc::try_unwrap(bulk)
            .map_err(|_| anyhow::anyhow!("the bulk-load pipeline is still shared after loading"))?;
        let pipeline = Arc::new(pipeline.with_index(Arc::clone(&index)));
        metrics.index_vectors.set(index.len() as i64);
        metrics.store_events.set(store.event_count() as i64);
        Ok(Self {
            settings,
            pipeline,
            store,
            index,
            native,
            embedder,
            metrics,
        })
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
        let Some(native) = self.native.as_ref() else {
            return Ok(false);
        };
        let model = self.embedder.model_version();
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
            index: Arc::clone(&self.index) as Arc<dyn VectorIndexRead>,
            embedder: Arc::clone(&self.embedder),
            metrics: self.metrics.clone(),
            settings: self.settings.api.clone(),
            ingest_batch: self.settings.ingest.batch_size,
        }
    }
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

/// The index behind its trait, and the same index as the native engine when it is one.
type OpenedIndex = (Arc<dyn VectorIndex>, Option<Arc<NativeHnsw>>);

/// The index for `embedder`'s vectors: the native engine from its snapshot plus the events
/// stored after it, or any engine rebuilt from RocksDB, the source of truth.
fn open_index(
    settings: &Settings,
    store: &Store,
    embedder: &dyn Embedder,
    progress: bool,
) -> anyhow::Result<OpenedIndex> {
    let started = Instant::now();
    let s = &settings.index;
    let model = embedder.model_version();
    let (index, native, through): (Arc<dyn VectorIndex>, _, _) = match s.engine.as_str() {
        "hnsw_rs" => {
            let capacity = store.event_count() as usize;
            let index = HnswIndex::new(
                embedder.dim(),
                s.m,
                s.ef_construction,
                s.ef_search,
                capacity,
            );
            (Arc::new(index), None, None)
        }
        _ => {
            let params = native_params(settings, embedder.dim());
            let path = snapshot_path(settings, model);
            let (native, through) = match s
                .snapshot
                .then(|| load_snapshot(&path, params, model, store))
                .flatten()
            {
                Some((index, through)) => (Arc::new(index), through),
                None => (Arc::new(NativeHnsw::new(params)), None),
            };
            (
                Arc::clone(&native) as Arc<dyn VectorIndex>,
                Some(native),
                through,
            )
        }
    };
    let loaded = index.len();
    let replayed = replay(index.as_ref(), store, model, through, progress)?;
    tracing::info!(
        engine = index.engine(),
        from_snapshot = loaded,
        replayed,
        vectors = index.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "Index ready."
    );
    Ok((index, native))
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
fn replay(
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
    let _ = slot.set(api::router(service.api_state()));
    tracing::info!(
        events = service.store.event_count(),
        indexed = service.index.len(),
        "FireSight is serving."
    );
    server.await?.context("serving HTTP")?;
    tokio::task::spawn_blocking(move || service.save_index()).await??;
    tracing::info!("Shut down cleanly.");
    Ok(())
}

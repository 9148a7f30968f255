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
use crate::index::{HnswIndex, VectorIndex, VectorIndexRead, insertion_key};
use crate::metrics::Metrics;
use crate::store::Store;
use crate::stream::{Correlator, Pipeline, load_files};

/// Vectors per insert call while rebuilding the index.
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
        let index = rebuild_index(&settings, &store, embedder.as_ref(), progress)?;
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

/// Rebuilds the HNSW graph from RocksDB, the source of truth; vectors of another model version are skipped.
fn rebuild_index(
    settings: &Settings,
    store: &Store,
    embedder: &dyn Embedder,
    progress: bool,
) -> anyhow::Result<Arc<dyn VectorIndex>> {
    let started = Instant::now();
    let total = store.event_count();
    let s = &settings.index;
    let index = HnswIndex::new(
        embedder.dim(),
        s.m,
        s.ef_construction,
        s.ef_search,
        total as usize,
    );
    let bar = if progress && total > 0 {
        ProgressBar::new(total)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("rebuilding index [{bar:40}] {pos}/{len} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut vectors = Vec::with_capacity(total as usize);
    let mut skipped = 0u64;
    for stored in store.vectors()? {
        let stored = stored?;
        if stored.model_version == embedder.model_version() {
            vectors.push(stored);
        } else {
            skipped += 1;
        }
    }
    // One global scramble (not per chunk) so the whole rebuild follows `insertion_key` order.
    vectors.sort_by_key(|v| insertion_key(v.seq));
    for chunk in vectors.chunks(REBUILD_BATCH) {
        let points: Vec<(u64, &[f32])> =
            chunk.iter().map(|v| (v.seq, v.vector.as_slice())).collect();
        index.insert(&points)?;
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    if skipped > 0 {
        tracing::warn!(
            skipped,
            model = embedder.model_version(),
            "Vectors of another model version were not indexed; run a re-index."
        );
    }
    tracing::info!(
        vectors = index.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "Index rebuilt from the store."
    );
    Ok(Arc::new(index))
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
    tracing::info!("Shut down cleanly.");
    Ok(())
}

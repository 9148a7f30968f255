//! The index lifecycle: which encoder's space serves, opening that space (from its snapshot
//! or empty), replaying the stored vectors it lacks, and writing its snapshot. `app` uses it at
//! start and shutdown; the re-index job and the admin routes use it to build and switch to
//! another space, so neither needs the whole service.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use crate::config::{IndexEngine, Settings};
use crate::embed::{Embedder, OnnxEmbedder};
use crate::index::{
    HnswIndex, IndexPoint, Metric, NativeHnsw, NativeParams, PointAttrs, VectorIndex,
    VectorIndexRead, insertion_key,
};
use crate::metrics::Metrics;
use crate::store::{Store, StoredVector};
use crate::stream::{Pipeline, Space};

/// Vectors per insert call while building the index from the store.
const REBUILD_BATCH: usize = 8192;

/// Meta key naming the encoder (`name@version`) whose space serves; set by the re-index job.
pub const META_ACTIVE_MODEL: &[u8] = b"active_model";

/// What the re-index job and the admin routes need of a running service: its settings, store,
/// pipeline (which holds the serving space) and metrics.
pub struct IndexLifecycle {
    /// Settings the service was built from.
    pub settings: Settings,
    /// The store.
    pub store: Arc<Store>,
    /// The pipeline; its space is the one that serves.
    pub pipeline: Arc<Pipeline>,
    /// Metrics.
    pub metrics: Metrics,
}

impl IndexLifecycle {
    /// The serving encoder.
    pub fn embedder(&self) -> Arc<dyn Embedder> {
        Arc::clone(&self.pipeline.space().embedder)
    }

    /// Writes the native engine's snapshot, so the next start loads it instead of rebuilding.
    /// Returns whether one was written (other engines and `index.snapshot = false` write none).
    pub fn save_snapshot(&self) -> anyhow::Result<bool> {
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
                next_revision: Some(self.store.next_revision()),
                store_id: Some(self.store.identity().to_owned()),
                ef_construction: Some(native.params().ef_construction),
            };
            native.save(&path, &serde_json::to_vec(&meta)?)?;
            anyhow::Ok(())
        })??;
        tracing::info!(path = %path.display(), vectors = native.len(), elapsed_ms = started.elapsed().as_millis() as u64, "Index snapshot written.");
        Ok(true)
    }
}

/// The encoder whose space serves this store: the one the re-index job recorded, else the one
/// the stored vectors are in, else the configured one (an empty store).
pub fn serving_model(settings: &Settings, store: &Store) -> anyhow::Result<String> {
    Ok(match store.meta(META_ACTIVE_MODEL)? {
        Some(bytes) => String::from_utf8(bytes).context("active model name is not UTF-8")?,
        // A store filled before the re-index job recorded the serving model keeps the
        // space its vectors are in; switching is the re-index job's business.
        None => match store.vectors()?.next().transpose()? {
            Some(v) => v.model_version,
            None => settings.embed.model.clone(),
        },
    })
}

/// What a snapshot says about itself, so a stale or foreign one is never trusted.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct SnapshotMeta {
    /// Encoder whose vectors the graph holds.
    model_version: String,
    /// Every stored vector up to this sequence number is in the graph; none after it.
    through_seq: Option<u64>,
    /// The store it was written from ([`Store::identity`]); absent in snapshots written before
    /// snapshots named their store, which are rebuilt once.
    #[serde(default)]
    store_id: Option<String>,
    /// The store's next revision number when it was written: events revised from this one on
    /// (stored in place under sequence numbers it may hold) are inserted again. Absent in
    /// older snapshots, which replay every revision.
    #[serde(default)]
    next_revision: Option<u64>,
    /// The build-time candidate list size its points were linked with. Absent in older
    /// snapshots (which were built with 200).
    #[serde(default)]
    ef_construction: Option<usize>,
}

/// What an index holds of the store: every stored vector through sequence number `seq` (none
/// when `None`), as it was before revision `next_revision`. [`replay`] brings it up to date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Covered {
    /// The last sequence number held.
    pub seq: Option<u64>,
    /// The first revision not reflected.
    pub next_revision: u64,
}

impl Covered {
    /// An empty index over `store` now: every vector to insert, as stored now.
    pub fn nothing(store: &Store) -> Self {
        Self {
            seq: None,
            next_revision: store.next_revision(),
        }
    }
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
/// what it already holds; the caller replays the rest.
pub fn open_space(
    settings: &Settings,
    store: &Store,
    embedder: Arc<dyn Embedder>,
) -> anyhow::Result<(Space, Covered)> {
    let s = &settings.index;
    let model = embedder.model_version().to_owned();
    if s.engine == IndexEngine::HnswRs {
        let capacity = store.event_count() as usize;
        let index = HnswIndex::new(
            embedder.dim(),
            s.m,
            s.ef_construction_for(embedder.as_ref()),
            s.ef_search,
            capacity,
        );
        let space = Space {
            embedder,
            index: Arc::new(index),
            native: None,
        };
        return Ok((space, Covered::nothing(store)));
    }
    let params = native_params(settings, embedder.as_ref());
    let path = snapshot_path(settings, &model);
    let (native, covered) = match s
        .snapshot
        .then(|| load_snapshot(&path, params, &model, store))
        .flatten()
    {
        Some((index, covered)) => (Arc::new(index), covered),
        None => (Arc::new(NativeHnsw::new(params)), Covered::nothing(store)),
    };
    let space = Space {
        embedder,
        index: Arc::clone(&native) as Arc<dyn VectorIndex>,
        native: Some(native),
    };
    Ok((space, covered))
}

/// The native engine's settings for `embedder`'s space, from the configuration.
fn native_params(settings: &Settings, embedder: &dyn Embedder) -> NativeParams {
    let s = &settings.index;
    let dim = embedder.dim();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    NativeParams {
        dim,
        m: s.m,
        ef_construction: s.ef_construction_for(embedder),
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
) -> Option<(NativeHnsw, Covered)> {
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
    match meta.store_id.as_deref() {
        Some(id) if id == store.identity() => {}
        Some(id) => {
            return refuse(format!(
                "it was written from store {id}, this is store {} (was the store replaced?)",
                store.identity()
            ));
        }
        None => return refuse("it does not name the store it was written from".to_owned()),
    }
    if meta.model_version != model {
        return refuse(format!(
            "holds {} vectors, the encoder is {model}",
            meta.model_version
        ));
    }
    if meta.through_seq.is_some_and(|t| t >= store.next_seq()) {
        return refuse("it is newer than the store (was the store replaced?)".to_owned());
    }
    if meta.ef_construction != Some(params.ef_construction) {
        // Still a sound graph: its links were chosen from more (or fewer) candidates, and
        // new points go in with the setting in force.
        tracing::info!(path = %path.display(), built_with = ?meta.ef_construction, now = params.ef_construction, "Snapshot's points were linked with another index.ef_construction; new ones use the current setting.");
    }
    Some((
        index,
        Covered {
            seq: meta.through_seq,
            next_revision: meta.next_revision.unwrap_or(0),
        },
    ))
}

/// Inserts the stored vectors of `model` the index does not hold (`covered`), then those of
/// events revised since, in place of their older vectors.
pub fn replay(
    index: &dyn VectorIndex,
    store: &Store,
    model: &str,
    covered: Covered,
    progress: bool,
) -> anyhow::Result<usize> {
    let first = covered.seq.map_or(0, |t| t + 1);
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
    // hnsw_rs needs one global scramble (see `insertion_key`); the exact index does not care.
    // The native engine scrambles each call's points itself, which breaks up one fire's
    // near-identical detections, so it takes them in store order, `REBUILD_BATCH` consecutive
    // events at a time: neighbours in time and space go in close together, as on the live
    // path, and a walk finds the points it reads still in the cache. A global scramble made
    // every step of every insert a cache miss: at a million events the replay took 224 s
    // against 120 s to store and index the same events through HTTP.
    if index.engine() == "hnsw_rs" {
        vectors.sort_by_key(|(v, _)| insertion_key(v.seq));
    }
    let replayed = vectors.len();
    in_chunks(&vectors, |points| {
        index.insert(points)?;
        bar.inc(points.len() as u64);
        Ok(true)
    })?;
    bar.finish_and_clear();
    let revised = replay_revisions(index, store, model, covered)?;
    if skipped > 0 {
        tracing::warn!(
            skipped,
            model,
            "Vectors of another model version were not indexed; run a re-index."
        );
    }
    Ok(replayed + revised)
}

/// Inserts again the vectors of events revised from `covered.next_revision` on that the index
/// held before (those after `covered.seq` were just inserted as they are now), and deletes
/// the points of events deleted since. An engine that cannot replace or delete a point keeps
/// it, and says so.
fn replay_revisions(
    index: &dyn VectorIndex,
    store: &Store,
    model: &str,
    covered: Covered,
) -> anyhow::Result<usize> {
    let Some(through) = covered.seq else {
        return Ok(0);
    };
    let mut seqs = store.revised_from(covered.next_revision)?;
    seqs.retain(|&seq| seq <= through);
    seqs.sort_unstable();
    seqs.dedup();
    let mut vectors = Vec::with_capacity(seqs.len());
    let mut deleted = Vec::new();
    for seq in seqs {
        let Some(stored) = store.vector(seq, model)? else {
            if store.deleted_event(seq)?.is_some() {
                deleted.push(seq);
            }
            continue;
        };
        let Some(event) = store.event(&stored.event_id)? else {
            continue;
        };
        vectors.push((stored, PointAttrs::of(&event)));
    }
    let replaced = in_chunks(&vectors, |points| {
        Ok(crate::stream::replace_points(index, points)?)
    })?;
    // Events deleted since the snapshot was written leave it too.
    let removed = crate::stream::delete_points(index, &deleted)?;
    Ok(usize::from(replaced) * vectors.len() + usize::from(removed) * deleted.len())
}

/// Hands `vectors` to `insert` as index points, `REBUILD_BATCH` at a time, while it answers
/// true; returns whether every chunk was taken.
fn in_chunks(
    vectors: &[(StoredVector, PointAttrs)],
    mut insert: impl FnMut(&[IndexPoint<'_>]) -> anyhow::Result<bool>,
) -> anyhow::Result<bool> {
    for chunk in vectors.chunks(REBUILD_BATCH) {
        let points: Vec<IndexPoint<'_>> = chunk
            .iter()
            .map(|(v, attrs)| IndexPoint {
                seq: v.seq,
                vector: &v.vector,
                attrs: *attrs,
            })
            .collect();
        if !insert(&points)? {
            return Ok(false);
        }
    }
    Ok(true)
}

//! The re-index job: embed every stored event with another encoder, build that encoder's index
//! beside the live one, then switch the service to it in one step.
//!
//! Work is committed in chunks: each chunk's vectors and the checkpoint that says how far the
//! job got are one RocksDB batch, so a job killed at any moment resumes where it stopped and
//! never embeds an event twice. Queries keep using the old space until the switch, which
//! happens under the pipeline's writer lock after catching up on events ingested meanwhile;
//! a query holds its own handle on the space it started with, so none fails during the swap.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use crate::embed::Embedder;
use crate::lifecycle::{
    Covered, IndexLifecycle, META_ACTIVE_MODEL, load_embedder, open_space, replay,
};
use crate::store::Store;
use crate::stream::Space;

/// Events embedded and committed per chunk.
const CHUNK: usize = 2048;

/// What a finished job did.
#[derive(Debug, Clone, PartialEq)]
pub struct ReindexReport {
    /// The encoder now serving, `name@version`.
    pub model: String,
    /// Sequence number the job resumed from (0 for a fresh start).
    pub resumed_from: u64,
    /// Events embedded by this run (not counting those an earlier, interrupted run did).
    pub embedded: u64,
    /// Vectors in the new index.
    pub indexed: usize,
    /// Wall time, seconds.
    pub seconds: f64,
}

/// Meta key holding the next sequence number to embed for `model`.
fn checkpoint_key(model: &str) -> Vec<u8> {
    format!("reindex_next:{model}").into_bytes()
}

/// Where an interrupted job for `model` stopped, if one did.
pub fn checkpoint(store: &Store, model: &str) -> anyhow::Result<Option<u64>> {
    store
        .meta(&checkpoint_key(model))?
        .map(|bytes| {
            let array: [u8; 8] = bytes
                .as_slice()
                .try_into()
                .context("checkpoint is not 8 bytes")?;
            Ok(u64::from_be_bytes(array))
        })
        .transpose()
}

/// Embeds up to `CHUNK` stored events from sequence number `from` with `embedder` and commits
/// them with the new checkpoint. Returns the next sequence number and how many were embedded.
fn embed_chunk(
    service: &IndexLifecycle,
    embedder: &dyn Embedder,
    from: u64,
) -> anyhow::Result<(u64, u64)> {
    let store = &service.store;
    let model = embedder.model_version();
    let mut seqs: Vec<(u64, String)> = Vec::with_capacity(CHUNK);
    for stored in store.vectors_from(from)? {
        let stored = stored?;
        if seqs.last().is_some_and(|(seq, _)| *seq == stored.seq) {
            continue; // the same event's vector under another model
        }
        if seqs.len() == CHUNK {
            break;
        }
        seqs.push((stored.seq, stored.event_id));
    }
    let Some(&(last, _)) = seqs.last() else {
        return Ok((from, 0));
    };
    let mut events = Vec::with_capacity(seqs.len());
    for (seq, id) in &seqs {
        let event = store
            .event(id)?
            .with_context(|| format!("vector {seq} names event {id}, which is not stored"))?;
        events.push(event);
    }
    let vectors = service.pipeline.embed_with(embedder, &events)?;
    let rows: Vec<(u64, &str, &[f32])> = seqs
        .iter()
        .zip(&vectors)
        .map(|((seq, id), v)| (*seq, id.as_str(), v.as_slice()))
        .collect();
    let next = (last + 1).to_be_bytes();
    store.write_vectors(model, &rows, &[(&checkpoint_key(model), Some(&next))])?;
    Ok((last + 1, seqs.len() as u64))
}

/// Re-embeds every stored event with `target` (`name@version` from the manifest), builds its
/// index and switches the service to it. Safe to call again after a crash: it resumes.
pub fn reindex(
    service: &IndexLifecycle,
    target: &str,
    progress: bool,
) -> anyhow::Result<ReindexReport> {
    let started = Instant::now();
    let embedder = load_embedder(&service.settings, target)?;
    let model = embedder.model_version().to_owned();
    let serving = service.pipeline.space();
    if serving.embedder.model_version() == model {
        anyhow::bail!("{model} is already the serving model; nothing to re-index");
    }
    let store = &service.store;
    let resumed_from = checkpoint(store, &model)?.unwrap_or(0);
    if resumed_from > 0 {
        tracing::info!(model, resumed_from, "Resuming an interrupted re-index.");
    }
    let bar = if progress {
        ProgressBar::new(store.next_seq())
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("re-embedding [{bar:40}] {pos}/{len} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_position(resumed_from);
    let (mut next, mut embedded) = (resumed_from, 0u64);
    loop {
        let (after, count) = embed_chunk(service, embedder.as_ref(), next)?;
        if count == 0 {
            break;
        }
        (next, embedded) = (after, embedded + count);
        bar.set_position(next);
        tracing::info!(model, next, total = store.next_seq(), "Re-index progress.");
    }
    bar.finish_and_clear();

    // The new index, built beside the one that serves.
    let (space, covered) = open_space(&service.settings, store, Arc::clone(&embedder))?;
    let mut indexed = covered;
    if next > covered.seq.map_or(0, |t| t + 1) {
        replay(space.index.as_ref(), store, &model, covered, progress)?;
        indexed = Covered {
            seq: Some(next - 1),
            next_revision: store.next_revision(),
        };
    }

    // Catch up on what arrived meanwhile and switch, with ingest held off.
    let switched = space.clone();
    service.pipeline.switch(|| -> anyhow::Result<Space> {
        loop {
            let (after, count) = embed_chunk(service, embedder.as_ref(), next)?;
            if count == 0 {
                break;
            }
            (next, embedded) = (after, embedded + count);
        }
        replay(switched.index.as_ref(), store, &model, indexed, false)?;
        store.write_vectors(
            &model,
            &[],
            &[
                (META_ACTIVE_MODEL, Some(model.as_bytes())),
                (&checkpoint_key(&model), None),
            ],
        )?;
        Ok(switched)
    })?;
    service.metrics.index_vectors.set(space.index.len() as i64);
    if service.save_snapshot()? {
        tracing::info!(model, "Snapshot of the new space written.");
    }
    let report = ReindexReport {
        model,
        resumed_from,
        embedded,
        indexed: space.index.len(),
        seconds: started.elapsed().as_secs_f64(),
    };
    tracing::info!(?report, "Re-index done; the new space serves.");
    Ok(report)
}

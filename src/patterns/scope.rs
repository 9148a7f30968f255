//! The window a pattern query analyses: the stored events in its time range and filters, with
//! their vectors and encoder features, and the neighbour graph over them (by exact scan for a
//! small window, by filtered index searches otherwise).

use std::collections::HashMap;

use super::PatternError;
use super::hdbscan::{self, NeighbourList};
use crate::cancel::Token;
use crate::embed::{FEATURE_COUNT, event_features};
use crate::event::FireEventV2;
use crate::index::{IndexError, PointAttrs, SearchFilter, VectorIndexRead};
use crate::store::Store;

/// The events of a window, with what the analyses need of each.
pub struct Window {
    /// The events, newest first.
    pub events: Vec<FireEventV2>,
    /// Their vector sequence numbers (the index's point ids).
    pub seqs: Vec<u64>,
    /// Their vectors, `dim` floats each.
    pub vectors: Vec<f32>,
    /// Vector width.
    pub dim: usize,
    /// Their encoder features.
    pub features: Vec<[f32; FEATURE_COUNT]>,
    /// Bounds actually used, ms since the epoch.
    pub from_ms: i64,
    /// Upper bound, inclusive.
    pub to_ms: i64,
}

impl Window {
    /// Events in the window.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// True when the window holds no event.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    pub(super) fn vector(&self, i: usize) -> &[f32] {
        &self.vectors[i * self.dim..(i + 1) * self.dim]
    }
}

/// Reads the window: the stored events between `from_ms` and `to_ms` that pass `filter` and
/// have a vector in `model`'s space. More than `limit` is [`PatternError::TooLarge`]; a
/// cancelled `cancel` stops the scan.
pub fn load_window(
    store: &Store,
    model: &str,
    filter: &SearchFilter,
    (from_ms, to_ms): (i64, i64),
    limit: usize,
    cancel: &Token,
) -> Result<Window, PatternError> {
    let mut window = Window {
        events: Vec::new(),
        seqs: Vec::new(),
        vectors: Vec::new(),
        dim: 0,
        features: Vec::new(),
        from_ms,
        to_ms,
    };
    let scan_limit = limit.saturating_mul(8).max(100_000);
    for (scanned, event) in store.events_between(from_ms, to_ms)?.enumerate() {
        if scanned >= scan_limit {
            return Err(PatternError::ScanTooLong { scanned });
        }
        if scanned % 1024 == 0 {
            cancel.check()?;
        }
        let event = event?;
        if !filter.matches(&PointAttrs::of(&event)) {
            continue;
        }
        if window.events.len() == limit {
            return Err(PatternError::TooLarge { limit });
        }
        let Some(seq) = store.seq_of(&event.event_id)? else {
            continue;
        };
        let Some(stored) = store.vector(seq, model)? else {
            continue;
        };
        window.dim = stored.vector.len();
        window.vectors.extend_from_slice(&stored.vector);
        window.seqs.push(seq);
        window.features.push(event_features(&event));
        window.events.push(event);
    }
    Ok(window)
}

/// The `k` nearest window events of every window event: by exact scan below `exact_below`
/// events, otherwise by one filtered index search per event (on up to two threads), each
/// thread stopping at a cancelled `cancel`.
pub fn window_neighbours(
    window: &Window,
    index: &dyn VectorIndexRead,
    filter: &SearchFilter,
    k: usize,
    exact_below: usize,
    cancel: &Token,
) -> Result<Vec<NeighbourList>, PatternError> {
    if window.len() <= exact_below {
        return Ok(hdbscan::exact_knn(&window.vectors, window.dim, k));
    }
    let position: HashMap<u64, u32> = window
        .seqs
        .iter()
        .enumerate()
        .map(|(i, &s)| (s, i as u32))
        .collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    let chunk = window.len().div_ceil(threads);
    let parts: Vec<Result<Vec<NeighbourList>, PatternError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..window.len())
            .step_by(chunk)
            .map(|start| {
                let position = &position;
                scope.spawn(move || {
                    (start..(start + chunk).min(window.len()))
                        .map(|i| {
                            cancel.check()?;
                            let hits =
                                index.search_filtered(window.vector(i), k + 1, Some(filter))?;
                            Ok(hits
                                .into_iter()
                                .filter_map(|h| position.get(&h.seq).map(|&j| (j, h.distance)))
                                .filter(|&(j, _)| j as usize != i)
                                .take(k)
                                .collect())
                        })
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(Err(IndexError::Poisoned.into())))
            .collect()
    });
    let mut out = Vec::with_capacity(window.len());
    for part in parts {
        out.extend(part?);
    }
    Ok(out)
}

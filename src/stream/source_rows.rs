//! A batch's changes to a source database's rows (Debezium), resolved against the store: which
//! stored event each changed row was, and so what each detection of the batch does (a new
//! event, a correction in place, nothing when the row did not change) and which events leave.
//!
//! Two rows may hold the same detection (one event); an event is deleted only when no row holds
//! it any more, checked through `event_rows`.

use std::collections::{HashMap, HashSet};

use crate::event::{FireDetection, FireEventV2};
use crate::store::{Deletion, Store, StoreError, StoreOp};

/// Changes to a source database's rows carried by a batch of detections (Debezium).
#[derive(Debug, Default)]
pub struct RowChanges {
    /// The source (its topic): row keys are unique within it.
    pub source: String,
    /// The row key of each detection of the batch that is a row's insert or update, by the
    /// detection's line.
    pub upserts: HashMap<u64, String>,
    /// Keys of the rows deleted.
    pub deletes: Vec<String>,
}

/// What a batch's detections do, once their rows are looked up.
pub(super) struct Resolved<'a> {
    /// Detections to store as new events (the usual duplicate check still applies).
    pub(super) fresh: Vec<&'a FireDetection>,
    /// Rows updated in place: the detection and the event stored for it.
    pub(super) corrections: Vec<(&'a FireDetection, FireEventV2)>,
    /// Rows whose detection is already stored as it is (a snapshot read again, an update of
    /// columns FireSight does not read): duplicates.
    pub(super) unchanged: u64,
    /// Events no row holds any more.
    pub(super) gone: Vec<Deletion>,
    /// The row map's writes, for the batch.
    pub(super) ops: Vec<StoreOp>,
}

/// Resolves `batch` against `rows`; `same` says whether a stored event describes a detection
/// as it is.
pub(super) fn resolve<'a>(
    store: &Store,
    batch: &'a [(u64, FireDetection)],
    rows: &RowChanges,
    same: impl Fn(&FireEventV2, &FireDetection) -> bool,
) -> Result<Resolved<'a>, StoreError> {
    let source = rows.source.as_str();
    let mut out = Resolved {
        fresh: Vec::with_capacity(batch.len()),
        corrections: Vec::new(),
        unchanged: 0,
        gone: Vec::new(),
        ops: Vec::new(),
    };
    // Events rows left in this batch, with those rows; events rows hold after it.
    let mut left: HashMap<String, HashSet<&str>> = HashMap::new();
    let mut held: HashSet<String> = HashSet::new();
    let mut corrected: HashSet<String> = HashSet::new();
    for key in &rows.deletes {
        out.ops.push(StoreOp::source_row_gone(source, key));
        if let Some(old) = store.source_row(source, key)? {
            out.ops.push(StoreOp::source_row_left(source, key, &old));
            left.entry(old).or_default().insert(key);
        }
    }
    for (line, detection) in batch {
        let Some(key) = rows.upserts.get(line) else {
            out.fresh.push(detection);
            continue;
        };
        let id = detection.event_id();
        let old = store.source_row(source, key)?;
        held.insert(id.clone());
        match old {
            Some(old) if old == id => match store.event(&id)? {
                Some(stored) if same(&stored, detection) => out.unchanged += 1,
                // Two rows holding one detection, both updated: the first row's values win.
                Some(_) if !corrected.insert(id.clone()) => out.unchanged += 1,
                Some(stored) => out.corrections.push((detection, stored)),
                None => out.fresh.push(detection),
            },
            other => {
                out.ops.extend(StoreOp::source_row(source, key, &id));
                if let Some(old) = other {
                    out.ops.push(StoreOp::source_row_left(source, key, &old));
                    left.entry(old).or_default().insert(key);
                }
                out.fresh.push(detection);
            }
        }
    }
    for (old, keys) in left {
        if held.contains(&old) {
            continue;
        }
        let still_held = store
            .rows_of_event(&old)?
            .iter()
            .any(|(s, k)| s != source || !keys.contains(k.as_str()));
        if still_held {
            continue;
        }
        if let Some(deletion) = store.deletion(&old)? {
            out.gone.push(deletion);
        }
    }
    // A deterministic order: the same batch deletes in the same order on every instance.
    out.gone.sort_by_key(|d| d.seq);
    Ok(out)
}

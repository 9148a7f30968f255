//! FireSight's own HNSW engine.
//!
//! Layout: vectors in one contiguous array, level-0 neighbour lists in one flat array of
//! `1 + 2M` words per slot (count, then ids), upper-level lists per slot. Lists are atomics: a
//! search reads them without locking, while a writer holding the list's stripe lock rewrites
//! entries and then the count. Every id ever written into a list names an allocated slot, so a
//! search that catches a list mid-rewrite still walks valid points.
//!
//! Locks: `core` is read-locked by searches and by the linking phase of inserts, and
//! write-locked only to allocate a slot, to delete, and at the end of a compaction.
//! `maintenance` lets inserts and deletes run together but keeps them out while a compaction
//! rewrites the lists that point at deleted points.
//!
//! Neighbours are chosen with the heuristic of Malkov & Yashunin (2018, algorithm 4), both for a
//! new point and when a full list of an existing point has to drop a link; such a list is
//! chosen down to three quarters of its room, so re-choosing (the build's dearest step when
//! `prune_alpha` keeps most candidates) happens once per quarter of new links, not at each
//! one, as DiskANN leaves slack in its lists. A parallel insert
//! links first, then searches for each new point and gives the ones it cannot find a link from
//! where the search ended (`repair_one`).

mod distance;
mod scratch;
mod snapshot;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::atomic::{AtomicU32, Ordering as AtomicOrdering};
use std::sync::{Mutex, RwLock, RwLockReadGuard};

pub use distance::{
    Kernel, Metric, kernel, kernel_name, kernels, prefetch, prefetch_words, scalar_kernel,
};

use super::{
    IndexError, IndexPoint, Neighbour, PointAttrs, SearchFilter, VectorIndex, VectorIndexRead,
    check_vector,
};
use scratch::{Scored, Scratch, ScratchPool};

/// Stripes of the list locks; a slot's lists share the stripe `slot % LOCK_STRIPES`.
const LOCK_STRIPES: usize = 4096;

/// Slots sampled to estimate how many points a filter lets through.
const SELECTIVITY_SAMPLE: usize = 1024;

/// Highest level a point can be given.
const MAX_LEVEL: u8 = 15;

/// Engine settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NativeParams {
    /// Vector width.
    pub dim: usize,
    /// Links per point on upper levels; level 0 allows `2 * m`.
    pub m: usize,
    /// Candidate list size while inserting.
    pub ef_construction: usize,
    /// Candidate list size while searching (raised to `k` when `k` is larger).
    pub ef_search: usize,
    /// Distance.
    pub metric: Metric,
    /// A filtered search that is expected to match at most this many points scans them exactly.
    pub flat_search_cutoff: usize,
    /// Threads used by one `insert` call with many points (1 = serial and reproducible).
    pub build_threads: usize,
    /// Pruning slack (L2 only): a candidate is dropped only when a kept neighbour is nearer to
    /// it by this factor than the base point is. 1.0 is the paper's heuristic; above 1 keeps
    /// the long links that join tight clusters (FIRMS detections of one fire are such a
    /// cluster), as DiskANN's robust prune does.
    pub prune_alpha: f32,
}

impl NativeParams {
    /// Defaults for `dim`-wide vectors: M = 64, efConstruction = 200, ef = 64, L2.
    pub fn new(dim: usize) -> Self {
        Self {
            dim,
            m: 64,
            ef_construction: 200,
            ef_search: 64,
            metric: Metric::L2,
            flat_search_cutoff: 10_000,
            build_threads: 1,
            prune_alpha: 1.2,
        }
    }
}

/// What a slot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum SlotState {
    Live = 0,
    /// Deleted: still walked through, never returned, not linked to by new points.
    Deleted = 1,
    /// Unlinked by a compaction and ready for reuse.
    Free = 2,
}

/// Everything behind the `core` lock.
struct Core {
    vectors: Vec<f32>,
    ids: Vec<u64>,
    attrs: Vec<PointAttrs>,
    levels: Vec<u8>,
    states: Vec<SlotState>,
    /// Level 0: `stride0` words per slot: count, then up to `2M` ids.
    links0: Vec<AtomicU32>,
    /// Levels 1..=level: `M + 1` words per level per slot.
    upper: Vec<Box<[AtomicU32]>>,
    by_id: HashMap<u64, u32>,
    free: Vec<u32>,
    entry: Option<u32>,
    max_level: u8,
    deleted: usize,
}

impl Core {
    fn empty() -> Self {
        Self {
            vectors: Vec::new(),
            ids: Vec::new(),
            attrs: Vec::new(),
            levels: Vec::new(),
            states: Vec::new(),
            links0: Vec::new(),
            upper: Vec::new(),
            by_id: HashMap::new(),
            free: Vec::new(),
            entry: None,
            max_level: 0,
            deleted: 0,
        }
    }

    fn slots(&self) -> usize {
        self.ids.len()
    }

    fn live(&self) -> usize {
        self.by_id.len()
    }
}

/// The engine. See the module documentation for its layout and locking.
pub struct NativeHnsw {
    params: NativeParams,
    kernel: Kernel,
    /// Words per slot in `links0`.
    stride0: usize,
    /// Level multiplier, 1 / ln(M).
    level_mult: f64,
    /// `prune_alpha` squared (the graph compares squared L2), 1 for other metrics.
    slack: f32,
    core: RwLock<Core>,
    stripes: Box<[Mutex<()>]>,
    maintenance: RwLock<()>,
    scratch: ScratchPool,
}

/// A read-locked view of the graph, with the helpers a walk needs.
struct View<'a> {
    engine: &'a NativeHnsw,
    core: RwLockReadGuard<'a, Core>,
}

impl View<'_> {
    #[inline]
    fn vector(&self, slot: u32) -> &[f32] {
        let dim = self.engine.params.dim;
        let at = slot as usize * dim;
        &self.core.vectors[at..at + dim]
    }

    #[inline]
    fn dist(&self, q: &[f32], slot: u32) -> f32 {
        (self.engine.kernel)(q, self.vector(slot))
    }

    #[inline]
    fn list(&self, slot: u32, level: u8) -> &[AtomicU32] {
        if level == 0 {
            let at = slot as usize * self.engine.stride0;
            &self.core.links0[at..at + self.engine.stride0]
        } else {
            let stride = self.engine.params.m + 1;
            let at = (level as usize - 1) * stride;
            &self.core.upper[slot as usize][at..at + stride]
        }
    }

    /// The ids a list holds now. A writer may rewrite it meanwhile; every id it ever holds
    /// names an allocated slot, so a reader that catches it mid-rewrite still walks valid points.
    #[inline]
    fn entries(&self, slot: u32, level: u8) -> &[AtomicU32] {
        let list = self.list(slot, level);
        let count = (list[0].load(AtomicOrdering::Acquire) as usize).min(list.len() - 1);
        &list[1..=count]
    }

    /// Asks the CPU to start loading the start of a list (its count and first ids).
    #[inline]
    fn prefetch_list(&self, slot: u32, level: u8) {
        let list = self.list(slot, level);
        prefetch_words(list);
    }

    /// Copies a list's ids into `out` (cleared first).
    #[inline]
    fn neighbours(&self, slot: u32, level: u8, out: &mut Vec<u32>) {
        out.clear();
        out.extend(
            self.entries(slot, level)
                .iter()
                .map(|a| a.load(AtomicOrdering::Relaxed)),
        );
    }

    fn write_list(&self, slot: u32, level: u8, ids: impl ExactSizeIterator<Item = u32>) {
        let list = self.list(slot, level);
        let n = ids.len().min(list.len() - 1);
        for (cell, id) in list[1..=n].iter().zip(ids) {
            cell.store(id, AtomicOrdering::Relaxed);
        }
        list[0].store(n as u32, AtomicOrdering::Release);
    }

    fn live(&self, slot: u32) -> bool {
        self.core.states[slot as usize] == SlotState::Live
    }

    /// True when no point is deleted: every slot a list names is then live, so a walk can skip
    /// reading its state (a cache miss per candidate in a large graph). Steady while the view
    /// is held: deletions take the write lock.
    fn nothing_deleted(&self) -> bool {
        self.core.deleted == 0
    }

    /// Greedy descent on one level: follows the nearest neighbour until none is nearer.
    fn greedy(&self, q: &[f32], mut best: Scored, level: u8) -> Scored {
        loop {
            let mut moved = false;
            for cell in self.entries(best.slot, level) {
                let n = cell.load(AtomicOrdering::Relaxed);
                let d = self.dist(q, n);
                if d < best.dist {
                    best = Scored { dist: d, slot: n };
                    moved = true;
                }
            }
            if !moved {
                return best;
            }
        }
    }

    /// Greedy descent from `entry` through the levels above `level`: where a search of
    /// `level` starts.
    fn descend(&self, q: &[f32], entry: u32, level: u8) -> Scored {
        let mut best = Scored {
            dist: self.dist(q, entry),
            slot: entry,
        };
        for l in (level + 1..=self.core.max_level).rev() {
            best = self.greedy(q, best, l);
        }
        best
    }

    /// The beam search of one level. Every visited point steers the walk; only points that
    /// `accept` lets through are kept as results. Leaves up to `ef` results in `s.found`,
    /// nearest first. `s.visited` must be cleared beforehand.
    fn search_level(
        &self,
        q: &[f32],
        entry: Scored,
        ef: usize,
        level: u8,
        s: &mut Scratch,
        accept: impl Fn(u32) -> bool,
    ) {
        let params = &self.engine.params;
        distance::with_score(
            params.metric,
            params.dim,
            self.engine.kernel,
            Beam {
                view: self,
                q,
                entry,
                ef,
                level,
                s,
                accept,
            },
        );
    }

    /// The paper's heuristic: walking candidates nearest first, keep one only if it is nearer
    /// to the base point than to every point already kept (with `prune_alpha`'s slack).
    /// `candidates` must be sorted; `kept` is cleared first.
    fn select(&self, candidates: &[Scored], m: usize, kept: &mut Vec<Scored>) {
        let slack = self.engine.slack;
        kept.clear();
        for c in candidates {
            if kept.len() >= m {
                break;
            }
            let cv = self.vector(c.slot);
            if kept.iter().all(|k| slack * self.dist(cv, k.slot) >= c.dist) {
                kept.push(*c);
            }
        }
    }

    /// Writes a new point's list on `level`. Another insert may already have linked to it
    /// there (it can start a level's search from this point before the list exists), so links
    /// found in the list are kept beside the chosen ones, re-chosen by the heuristic if they
    /// do not all fit. Overwriting them would leave that other point without an incoming link.
    fn set_own_links(&self, slot: u32, level: u8, chosen: &[Scored], s: &mut Scratch) {
        let _stripe = self.engine.stripe(slot);
        self.neighbours(slot, level, &mut s.ids);
        if s.ids.is_empty() {
            self.write_list(slot, level, chosen.iter().map(|c| c.slot));
            return;
        }
        let base = self.vector(slot);
        s.pool.clear();
        s.pool.extend_from_slice(chosen);
        s.pool.extend(
            s.ids
                .iter()
                .filter(|p| !chosen.iter().any(|c| c.slot == **p))
                .map(|&p| Scored {
                    dist: self.dist(base, p),
                    slot: p,
                }),
        );
        s.pool.sort_unstable();
        let cap = self.engine.capacity(level);
        if s.pool.len() <= cap {
            self.write_list(slot, level, s.pool.iter().map(|c| c.slot));
        } else {
            self.select(&s.pool, self.engine.refill(level), &mut s.kept);
            self.write_list(slot, level, s.kept.iter().map(|c| c.slot));
        }
    }

    /// Links `from` → `to` on `level`; a full list is re-chosen by the heuristic.
    fn add_link(&self, from: u32, to: u32, dist: f32, level: u8, s: &mut Scratch) {
        let _stripe = self.engine.stripe(from);
        let cap = self.engine.capacity(level);
        let list = self.list(from, level);
        let count = list[0].load(AtomicOrdering::Acquire) as usize;
        if count < cap {
            list[count + 1].store(to, AtomicOrdering::Relaxed);
            list[0].store(count as u32 + 1, AtomicOrdering::Release);
            return;
        }
        let base = self.vector(from);
        s.pool.clear();
        s.pool.extend(list[1..=count].iter().map(|a| {
            let slot = a.load(AtomicOrdering::Relaxed);
            Scored {
                dist: self.dist(base, slot),
                slot,
            }
        }));
        s.pool.push(Scored { dist, slot: to });
        s.pool.sort_unstable();
        self.select(&s.pool, self.engine.refill(level), &mut s.kept);
        self.write_list(from, level, s.kept.iter().map(|c| c.slot));
    }
}

/// One level's beam search ([`View::search_level`]) with its arguments, handed to
/// [`distance::with_score`], which runs it with the score it picked: inlined there, so that on
/// the encoders' widths the kernel is inlined into this loop.
struct Beam<'v, 'a, 's, F> {
    view: &'v View<'a>,
    q: &'v [f32],
    entry: Scored,
    ef: usize,
    level: u8,
    s: &'s mut Scratch,
    accept: F,
}

impl<F: Fn(u32) -> bool> distance::Walk for Beam<'_, '_, '_, F> {
    type Out = ();

    #[inline(always)]
    fn run<S: distance::Score>(self, score: S) {
        let Beam {
            view,
            q,
            entry,
            ef,
            level,
            s,
            accept,
        } = self;
        let Scratch {
            visited,
            candidates,
            results,
            found,
            ..
        } = s;
        candidates.clear();
        results.clear();
        visited.test_and_set(entry.slot);
        candidates.push(Reverse(entry));
        if accept(entry.slot) {
            results.push(entry);
        }
        let mut bound = if results.len() >= ef {
            entry.dist
        } else {
            f32::INFINITY
        };
        while let Some(Reverse(c)) = candidates.pop() {
            if c.dist > bound {
                break;
            }
            // The list to read after this one is most often the next candidate's: start
            // loading it now, so that its cache misses overlap this list's distances.
            if let Some(Reverse(next)) = candidates.peek() {
                view.prefetch_list(next.slot, level);
            }
            let entries = view.entries(c.slot, level);
            for cell in entries {
                let n = cell.load(AtomicOrdering::Relaxed);
                if !visited.seen(n) {
                    prefetch(view.vector(n));
                }
            }
            for cell in entries {
                let n = cell.load(AtomicOrdering::Relaxed);
                if visited.test_and_set(n) {
                    continue;
                }
                let d = score.score(q, view.vector(n));
                if d < bound || results.len() < ef {
                    let s = Scored { dist: d, slot: n };
                    candidates.push(Reverse(s));
                    if accept(n) {
                        if results.len() < ef {
                            results.push(s);
                        } else if let Some(mut farthest) = results.peek_mut() {
                            // Full, and `s` is nearer than the farthest kept (`d < bound`):
                            // it takes that place, one sift instead of a push and a pop.
                            debug_assert!(s < *farthest, "a full beam only admits nearer points");
                            *farthest = s;
                        }
                        if results.len() >= ef {
                            bound = results.peek().map_or(f32::INFINITY, |w| w.dist);
                        }
                    }
                }
            }
        }
        found.clear();
        found.extend(results.drain());
        found.sort_unstable();
    }
}

impl View<'_> {
    /// Links `from` → `to` on level 0 only if `from`'s list has room; true when it did.
    fn link_if_room(&self, from: u32, to: u32) -> bool {
        let _stripe = self.engine.stripe(from);
        let list = self.list(from, 0);
        let count = list[0].load(AtomicOrdering::Acquire) as usize;
        if count >= list.len() - 1 {
            return false;
        }
        if list[1..=count]
            .iter()
            .any(|a| a.load(AtomicOrdering::Relaxed) == to)
        {
            return true;
        }
        list[count + 1].store(to, AtomicOrdering::Relaxed);
        list[0].store(count as u32 + 1, AtomicOrdering::Release);
        true
    }
}

impl Core {
    /// Points the entry at a live slot of the highest level when the current one is not live.
    fn repair_entry(&mut self) {
        if self
            .entry
            .is_some_and(|e| self.states[e as usize] != SlotState::Live)
        {
            let best = (0..self.slots())
                .filter(|&s| self.states[s] == SlotState::Live)
                .max_by_key(|&s| (self.levels[s], Reverse(s)));
            self.entry = best.map(|s| s as u32);
            self.max_level = best.map_or(0, |s| self.levels[s]);
        }
    }
}

impl NativeHnsw {
    /// An empty index.
    pub fn new(params: NativeParams) -> Self {
        let m = params.m.max(2);
        let params = NativeParams {
            m,
            ef_construction: params.ef_construction.max(m),
            ef_search: params.ef_search.max(1),
            build_threads: params.build_threads.max(1),
            ..params
        };
        Self {
            kernel: kernel(params.metric, params.dim),
            stride0: 2 * m + 1,
            level_mult: 1.0 / (m as f64).ln(),
            slack: if params.metric == Metric::L2 {
                params.prune_alpha.max(1.0).powi(2)
            } else {
                1.0
            },
            params,
            core: RwLock::new(Core::empty()),
            stripes: (0..LOCK_STRIPES).map(|_| Mutex::new(())).collect(),
            maintenance: RwLock::new(()),
            scratch: ScratchPool,
        }
    }

    /// The settings in force.
    pub fn params(&self) -> NativeParams {
        self.params
    }

    fn view(&self) -> Result<View<'_>, IndexError> {
        Ok(View {
            engine: self,
            core: self.core.read().map_err(|_| IndexError::Poisoned)?,
        })
    }

    fn stripe(&self, slot: u32) -> std::sync::MutexGuard<'_, ()> {
        let m = &self.stripes[slot as usize % LOCK_STRIPES];
        m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn capacity(&self, level: u8) -> usize {
        if level == 0 {
            2 * self.params.m
        } else {
            self.params.m
        }
    }

    /// How many links a full list keeps when it is re-chosen: a quarter of its room is left
    /// free, so the next links it is given go in without choosing again.
    fn refill(&self, level: u8) -> usize {
        let cap = self.capacity(level);
        cap - cap / 4
    }

    /// A point's level, drawn from its id: the same id gets the same level in any insert
    /// order, so a serial rebuild reproduces the graph exactly.
    fn level_of(&self, seq: u64) -> u8 {
        let mut h = seq.wrapping_add(0x9E37_79B9_7F4A_7C15);
        h = (h ^ (h >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        h = (h ^ (h >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        h ^= h >> 31;
        // A uniform draw in (0, 1]; never 0, so the logarithm is finite.
        let u = ((h >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
        ((-u.ln() * self.level_mult).floor() as u64).min(MAX_LEVEL as u64) as u8
    }

    /// Deleted points not yet unlinked.
    pub fn tombstones(&self) -> usize {
        self.core.read().map_or(0, |c| c.deleted)
    }

    /// Slots allocated (live, deleted and free); bounded by the peak number of points held.
    pub fn slots(&self) -> usize {
        self.core.read().map_or(0, |c| c.slots())
    }

    /// Bytes held by vectors, attributes, ids and lists (not counting the id map's overhead).
    pub fn memory_bytes(&self) -> usize {
        let Ok(c) = self.core.read() else { return 0 };
        c.vectors.capacity() * 4
            + c.links0.capacity() * 4
            + c.upper.iter().map(|u| u.len() * 4 + 16).sum::<usize>()
            + c.ids.capacity() * 8
            + c.attrs.capacity() * std::mem::size_of::<PointAttrs>()
            + c.levels.capacity()
            + c.states.capacity()
            + c.by_id.capacity() * 16
    }

    /// Puts a point in a slot (reusing a free one) and links nothing yet.
    fn allocate(&self, core: &mut Core, seq: u64, vector: &[f32], attrs: PointAttrs) -> u32 {
        let level = self.level_of(seq);
        let upper = || -> Box<[AtomicU32]> {
            (0..level as usize * (self.params.m + 1))
                .map(|_| AtomicU32::new(0))
                .collect()
        };
        let slot = if let Some(slot) = core.free.pop() {
            let s = slot as usize;
            let dim = self.params.dim;
            core.vectors[s * dim..(s + 1) * dim].copy_from_slice(vector);
            core.ids[s] = seq;
            core.attrs[s] = attrs;
            core.levels[s] = level;
            core.states[s] = SlotState::Live;
            core.links0[s * self.stride0].store(0, AtomicOrdering::Relaxed);
            core.upper[s] = upper();
            slot
        } else {
            let slot = core.ids.len() as u32;
            core.vectors.extend_from_slice(vector);
            core.ids.push(seq);
            core.attrs.push(attrs);
            core.levels.push(level);
            core.states.push(SlotState::Live);
            core.links0
                .extend((0..self.stride0).map(|_| AtomicU32::new(0)));
            core.upper.push(upper());
            slot
        };
        core.by_id.insert(seq, slot);
        slot
    }

    /// Puts the points of one call in slots, under one write lock, in the given order; a point
    /// whose id is held replaces it. Returns the slots still to be linked (the first point of
    /// an empty graph becomes its entry and has nothing to link to).
    fn place(&self, points: &[IndexPoint<'_>], order: &[usize]) -> Result<Vec<u32>, IndexError> {
        let mut core = self.core.write().map_err(|_| IndexError::Poisoned)?;
        let fresh = points.len().saturating_sub(core.free.len());
        core.vectors.reserve(fresh * self.params.dim);
        core.links0.reserve(fresh * self.stride0);
        let mut slots = Vec::with_capacity(points.len());
        for &i in order {
            let p = &points[i];
            if let Some(old) = core.by_id.remove(&p.seq) {
                core.states[old as usize] = SlotState::Deleted;
                core.deleted += 1;
                core.repair_entry();
            }
            let vector = match self.params.metric {
                Metric::Cosine => {
                    std::borrow::Cow::Owned(distance::prepare(Metric::Cosine, p.vector))
                }
                _ => std::borrow::Cow::Borrowed(p.vector),
            };
            let slot = self.allocate(&mut core, p.seq, &vector, p.attrs);
            if core.entry.is_none() {
                core.entry = Some(slot);
                core.max_level = core.levels[slot as usize];
            } else {
                slots.push(slot);
            }
        }
        Ok(slots)
    }

    /// Links a placed point into the graph (read lock), then raises the entry point if the
    /// point sits above it (write lock, rare).
    fn link(&self, slot: u32) -> Result<(), IndexError> {
        let (level, top) = {
            let view = self.view()?;
            let (Some(entry), true) = (view.core.entry, view.live(slot)) else {
                return Ok(());
            };
            let top = view.core.max_level;
            let level = view.core.levels[slot as usize];
            let q = view.vector(slot);
            let mut best = view.descend(q, entry, level);
            let mut s = self.scratch.take(view.core.slots());
            // Each case in its own copy of the loop, so the common one tests nothing more.
            let all_live = view.nothing_deleted();
            let efc = self.params.ef_construction;
            for l in (0..=level.min(top)).rev() {
                if all_live {
                    view.search_level(q, best, efc, l, &mut s, |x| x != slot);
                } else {
                    view.search_level(q, best, efc, l, &mut s, |x| x != slot && view.live(x));
                }
                s.visited.reset(view.core.slots());
                if let Some(first) = s.found.first() {
                    best = *first;
                }
                // Taken out for the loop below, which lends `s` to each link; put back after,
                // so the buffer is reused.
                let mut chosen = std::mem::take(&mut s.chosen);
                view.select(&s.found, self.params.m, &mut chosen);
                view.set_own_links(slot, l, &chosen, &mut s);
                for c in &chosen {
                    view.add_link(c.slot, slot, c.dist, l, &mut s);
                }
                s.chosen = chosen;
            }
            self.scratch.give(s);
            (level, top)
        };
        if level > top {
            let mut core = self.core.write().map_err(|_| IndexError::Poisoned)?;
            if level > core.max_level && core.states[slot as usize] == SlotState::Live {
                core.max_level = level;
                core.entry = Some(slot);
            }
        }
        Ok(())
    }

    /// Runs `work` for each of `slots` on `threads` threads, each taking the next slot.
    fn on_threads(
        &self,
        slots: &[u32],
        threads: usize,
        work: impl Fn(u32) -> Result<(), IndexError> + Sync,
    ) -> Result<(), IndexError> {
        let next = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    scope.spawn(|| -> Result<(), IndexError> {
                        while let Some(&slot) =
                            slots.get(next.fetch_add(1, AtomicOrdering::Relaxed))
                        {
                            work(slot)?;
                        }
                        Ok(())
                    })
                })
                .collect();
            workers
                .into_iter()
                .try_for_each(|w| w.join().unwrap_or(Err(IndexError::Poisoned)))
        })
    }

    /// Checks that a search for `slot`'s own vector finds it, and where it does not, links the
    /// point the search ended at (or, failing room there, the next nearest) to it, bypassing
    /// the heuristic. Returns whether it had to.
    ///
    /// A group of new points far from the rest (a fire in a region the index has not seen)
    /// links out to the old graph, but the old points' full lists prune the newcomers away
    /// (each is "covered" by a nearer old point), so a search for one of them stops at an old
    /// point that links to none of the group. Linking such points concurrently makes it more
    /// likely (two newcomers cannot see each other).
    fn repair_one(&self, slot: u32) -> Result<bool, IndexError> {
        let view = self.view()?;
        let Some(entry) = view.core.entry else {
            return Ok(false);
        };
        if !view.live(slot) {
            return Ok(false);
        }
        let q = view.vector(slot);
        let best = view.descend(q, entry, 0);
        let mut s = self.scratch.take(view.core.slots());
        view.search_level(q, best, self.params.ef_search, 0, &mut s, |x| view.live(x));
        let linked = s
            .found
            .first()
            .is_some_and(|f| f.slot != slot && f.dist > 0.0)
            && s.found
                .iter()
                .filter(|f| f.slot != slot)
                .any(|f| view.link_if_room(f.slot, slot));
        self.scratch.give(s);
        Ok(linked)
    }

    /// Unlinks deleted points: every list that names one is re-chosen from its live entries and
    /// the live neighbours of the deleted ones, then deleted slots become free for reuse.
    /// Searches run throughout; inserts and deletes wait. Returns the slots freed.
    ///
    /// A live point whose only way in was through a deleted one can be pruned from every
    /// re-chosen list (each live neighbour finds it "covered" by a nearer point), so once the
    /// deleted slots are gone every live neighbour they had is searched for and relinked
    /// where the search cannot find it.
    pub fn compact(&self) -> Result<usize, IndexError> {
        let _exclusive = self.maintenance.write().map_err(|_| IndexError::Poisoned)?;
        let mut orphans = Vec::new();
        {
            let view = self.view()?;
            if view.nothing_deleted() {
                return Ok(0);
            }
            let mut list = Vec::new();
            let mut second = Vec::new();
            let mut kept = Vec::new();
            for slot in 0..view.core.slots() as u32 {
                if !view.live(slot) {
                    if view.core.states[slot as usize] == SlotState::Deleted {
                        for level in 0..=view.core.levels[slot as usize] {
                            view.neighbours(slot, level, &mut list);
                            orphans.extend(list.iter().filter(|&&n| view.live(n)));
                        }
                    }
                    continue;
                }
                for level in 0..=view.core.levels[slot as usize] {
                    view.neighbours(slot, level, &mut list);
                    if list.iter().all(|&n| view.live(n)) {
                        continue;
                    }
                    let base = view.vector(slot);
                    let mut pool: Vec<u32> = Vec::with_capacity(list.len() * 2);
                    for &n in &list {
                        if view.live(n) {
                            pool.push(n);
                        } else if view.core.levels[n as usize] >= level {
                            view.neighbours(n, level, &mut second);
                            pool.extend(second.iter().filter(|&&s| s != slot && view.live(s)));
                        }
                    }
                    pool.sort_unstable();
                    pool.dedup();
                    let mut scored: Vec<Scored> = pool
                        .into_iter()
                        .map(|s| Scored {
                            dist: view.dist(base, s),
                            slot: s,
                        })
                        .collect();
                    scored.sort_unstable();
                    view.select(&scored, self.capacity(level), &mut kept);
                    let _stripe = self.stripe(slot);
                    view.write_list(slot, level, kept.iter().map(|s| s.slot));
                }
            }
        }
        let mut core = self.core.write().map_err(|_| IndexError::Poisoned)?;
        core.repair_entry();
        let mut freed = 0;
        for s in 0..core.slots() {
            if core.states[s] == SlotState::Deleted {
                core.states[s] = SlotState::Free;
                core.links0[s * self.stride0].store(0, AtomicOrdering::Relaxed);
                core.upper[s] = Box::new([]);
                core.levels[s] = 0;
                core.free.push(s as u32);
                freed += 1;
            }
        }
        core.deleted = 0;
        drop(core);
        orphans.sort_unstable();
        orphans.dedup();
        for slot in orphans {
            self.repair_one(slot)?;
        }
        Ok(freed)
    }

    /// True when deleted points make up more than a tenth of the graph.
    pub fn needs_compaction(&self) -> bool {
        self.core
            .read()
            .is_ok_and(|c| c.deleted > 0 && c.deleted * 10 > c.live() + c.deleted)
    }

    /// Exact search over the points a filter lets through.
    fn exact(
        &self,
        view: &View<'_>,
        q: &[f32],
        k: usize,
        filter: Option<&SearchFilter>,
    ) -> Vec<Scored> {
        let mut best: BinaryHeap<Scored> = BinaryHeap::with_capacity(k + 1);
        let (states, attrs) = (&view.core.states, &view.core.attrs);
        let vectors = &view.core.vectors[..view.core.slots() * self.params.dim];
        let wanted =
            |i: usize| states[i] == SlotState::Live && filter.is_none_or(|f| f.matches(&attrs[i]));
        distance::scan(self.params.metric, q, vectors, wanted, |i, dist| {
            let s = Scored {
                dist,
                slot: i as u32,
            };
            if best.len() < k {
                best.push(s);
            } else if let Some(mut farthest) = best.peek_mut()
                && s < *farthest
            {
                *farthest = s;
            }
        });
        best.into_sorted_vec()
    }

    /// Estimated number of live points `filter` lets through, from an even sample of slots.
    fn estimate_matches(&self, view: &View<'_>, filter: &SearchFilter) -> usize {
        let slots = view.core.slots();
        let step = (slots / SELECTIVITY_SAMPLE).max(1);
        let (mut sampled, mut matched) = (0usize, 0usize);
        for s in (0..slots).step_by(step) {
            if view.core.states[s] == SlotState::Live {
                sampled += 1;
                matched += usize::from(filter.matches(&view.core.attrs[s]));
            }
        }
        (matched * view.core.live())
            .checked_div(sampled)
            .unwrap_or(0)
    }

    /// Search with an explicit `ef`, for benchmarks that sweep it.
    pub fn search_with_ef(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        filter: Option<&SearchFilter>,
    ) -> Result<Vec<Neighbour>, IndexError> {
        self.answer(query, k, filter, |view, q, entry, filter| {
            match (entry, filter) {
                (None, _) => Vec::new(),
                (_, Some(f))
                    if self.estimate_matches(view, f) <= self.params.flat_search_cutoff =>
                {
                    self.exact(view, q, k, Some(f))
                }
                (Some(entry), _) => {
                    let best = view.descend(q, entry, 0);
                    let mut s = self.scratch.take(view.core.slots());
                    let attrs = &view.core.attrs;
                    if filter.is_none() && view.nothing_deleted() {
                        // Every point is an answer: the loop's own copy checks nothing.
                        view.search_level(q, best, ef.max(k), 0, &mut s, |_| true);
                    } else {
                        view.search_level(q, best, ef.max(k), 0, &mut s, |x| {
                            view.live(x) && filter.is_none_or(|f| f.matches(&attrs[x as usize]))
                        });
                    }
                    let found = s.found.iter().take(k).copied().collect();
                    self.scratch.give(s);
                    found
                }
            }
        })
    }

    /// The exact `k` nearest, by scoring every live point (with the same SIMD kernel) instead of
    /// walking the graph: what the graph approximates, and on a small index the faster of the
    /// two (the crossover is measured in `benches/README.md`).
    pub fn search_exact(
        &self,
        query: &[f32],
        k: usize,
        filter: Option<&SearchFilter>,
    ) -> Result<Vec<Neighbour>, IndexError> {
        self.answer(query, k, filter, |view, q, _, filter| {
            self.exact(view, q, k, filter)
        })
    }

    /// Checks and prepares the query, runs `find` (given the view, the query, the entry point if
    /// the graph has one, and a non-empty filter) and turns the slots it found into ids and
    /// reported distances.
    fn answer(
        &self,
        query: &[f32],
        k: usize,
        filter: Option<&SearchFilter>,
        find: impl FnOnce(&View<'_>, &[f32], Option<u32>, Option<&SearchFilter>) -> Vec<Scored>,
    ) -> Result<Vec<Neighbour>, IndexError> {
        check_vector(self.params.dim, query)?;
        let view = self.view()?;
        if k == 0 {
            return Ok(Vec::new());
        }
        let prepared;
        let q = if self.params.metric == Metric::Cosine {
            prepared = distance::prepare(Metric::Cosine, query);
            prepared.as_slice()
        } else {
            query
        };
        let found = find(&view, q, view.core.entry, filter.filter(|f| !f.is_empty()));
        Ok(found
            .into_iter()
            .map(|s| Neighbour {
                seq: view.core.ids[s.slot as usize],
                distance: self.params.metric.report(s.dist),
            })
            .collect())
    }

    /// Every live id with its vector, in slot order (for tests and re-indexing).
    pub fn points(&self) -> Result<Vec<(u64, Vec<f32>)>, IndexError> {
        let view = self.view()?;
        Ok((0..view.core.slots() as u32)
            .filter(|&s| view.live(s))
            .map(|s| (view.core.ids[s as usize], view.vector(s).to_vec()))
            .collect())
    }

    /// The level-0 neighbour ids of a point, for tests that compare graphs.
    pub fn neighbour_ids(&self, seq: u64) -> Result<Option<Vec<u64>>, IndexError> {
        let view = self.view()?;
        let Some(&slot) = view.core.by_id.get(&seq) else {
            return Ok(None);
        };
        let mut list = Vec::new();
        view.neighbours(slot, 0, &mut list);
        Ok(Some(
            list.iter().map(|&s| view.core.ids[s as usize]).collect(),
        ))
    }
}

impl VectorIndexRead for NativeHnsw {
    fn search_filtered(
        &self,
        query: &[f32],
        k: usize,
        filter: Option<&SearchFilter>,
    ) -> Result<Vec<Neighbour>, IndexError> {
        self.search_with_ef(query, k, self.params.ef_search, filter)
    }

    fn len(&self) -> usize {
        self.core.read().map_or(0, |c| c.live())
    }

    fn dim(&self) -> usize {
        self.params.dim
    }
}

impl VectorIndex for NativeHnsw {
    fn insert(&self, points: &[IndexPoint<'_>]) -> Result<(), IndexError> {
        for p in points {
            check_vector(self.params.dim, p.vector)?;
        }
        // Points of one call go in scrambled order: a batch arrives in time order, one fire's
        // near-identical detections back to back, and inserted so they form a cluster the rest
        // of the graph barely links into. The sort is stable, so repeated ids keep their order.
        let mut order: Vec<usize> = (0..points.len()).collect();
        order.sort_by_key(|&i| super::insertion_key(points[i].seq));
        let _shared = self.maintenance.read().map_err(|_| IndexError::Poisoned)?;
        let slots = self.place(points, &order)?;
        let threads = self.params.build_threads.min(slots.len() / 256).max(1);
        if threads == 1 {
            return slots.iter().try_for_each(|&slot| self.link(slot));
        }
        self.on_threads(&slots, threads, |slot| self.link(slot))?;
        // Only once every point is linked can a search tell which ones it cannot find.
        self.on_threads(&slots, threads, |slot| self.repair_one(slot).map(|_| ()))
    }

    fn delete(&self, seqs: &[u64]) -> Result<usize, IndexError> {
        let _shared = self.maintenance.read().map_err(|_| IndexError::Poisoned)?;
        let mut core = self.core.write().map_err(|_| IndexError::Poisoned)?;
        let mut removed = 0;
        for seq in seqs {
            if let Some(slot) = core.by_id.remove(seq) {
                core.states[slot as usize] = SlotState::Deleted;
                core.deleted += 1;
                removed += 1;
            }
        }
        core.repair_entry();
        if core.by_id.is_empty() {
            // Nothing left to walk to: start afresh so the next insert seeds a new graph.
            let dim = self.params.dim;
            let kept_capacity = core.vectors.capacity() / dim.max(1);
            *core = Core::empty();
            core.vectors.reserve(kept_capacity * dim);
        }
        Ok(removed)
    }

    fn engine(&self) -> &'static str {
        "native"
    }
}

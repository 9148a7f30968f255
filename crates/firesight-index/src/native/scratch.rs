//! What a graph walk works with: scored slots, the visited set, and the buffers a walk fills,
//! kept per thread so that neither a search nor an insert allocates once the thread has warmed up.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

/// A distance and a slot, ordered by distance (then slot, so ties are deterministic).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    pub dist: f32,
    pub slot: u32,
}

impl Eq for Scored {}

impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scored {
    #[inline]
    fn cmp(&self, other: &Self) -> Ordering {
        self.dist
            .total_cmp(&other.dist)
            .then(self.slot.cmp(&other.slot))
    }
}

/// Marks slots as seen; clearing is one increment of the epoch, not a pass over the array.
pub struct Visited {
    marks: Vec<u16>,
    epoch: u16,
}

impl Visited {
    fn new() -> Self {
        Self {
            marks: Vec::new(),
            epoch: 1,
        }
    }

    /// Starts a new walk over at least `slots` slots.
    pub fn reset(&mut self, slots: usize) {
        if self.marks.len() < slots {
            self.marks.resize(slots.next_power_of_two(), 0);
        }
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.marks.fill(0);
            self.epoch = 1;
        }
    }

    /// Marks `slot`; true when it was already marked in this walk.
    #[inline]
    pub fn test_and_set(&mut self, slot: u32) -> bool {
        let mark = &mut self.marks[slot as usize];
        let seen = *mark == self.epoch;
        *mark = self.epoch;
        seen
    }

    /// True when `slot` was marked in this walk.
    #[inline]
    pub fn seen(&self, slot: u32) -> bool {
        self.marks[slot as usize] == self.epoch
    }
}

/// Everything one walk (a search, or the linking of one new point) fills and empties again.
pub struct Scratch {
    pub visited: Visited,
    /// The beam's frontier, nearest first.
    pub candidates: BinaryHeap<Reverse<Scored>>,
    /// The best `ef` so far, farthest on top.
    pub results: BinaryHeap<Scored>,
    /// A level's results, nearest first: what `search_level` hands back.
    pub found: Vec<Scored>,
    /// Neighbours chosen for a new point on one level.
    pub chosen: Vec<Scored>,
    /// A list being re-chosen: its entries scored against its owner.
    pub pool: Vec<Scored>,
    /// What the heuristic keeps of `pool`.
    pub kept: Vec<Scored>,
    /// Slot ids copied out of a list.
    pub ids: Vec<u32>,
}

impl Scratch {
    fn new() -> Self {
        Self {
            visited: Visited::new(),
            candidates: BinaryHeap::new(),
            results: BinaryHeap::new(),
            found: Vec::new(),
            chosen: Vec::new(),
            pool: Vec::new(),
            kept: Vec::new(),
            ids: Vec::new(),
        }
    }
}

thread_local! {
    /// One scratch per thread, shared by every index the thread walks: a walk takes it and gives
    /// it back, so walks on different threads never contend for a lock.
    static SPARE: std::cell::RefCell<Option<Box<Scratch>>> = const { std::cell::RefCell::new(None) };
}

/// Hands out scratch: the calling thread's spare when it has one, else a new one.
#[derive(Default)]
pub struct ScratchPool;

impl ScratchPool {
    /// Scratch whose visited set is cleared and covers `slots` slots.
    pub fn take(&self, slots: usize) -> Box<Scratch> {
        let spare = SPARE.with(|s| s.borrow_mut().take());
        let mut scratch = spare.unwrap_or_else(|| Box::new(Scratch::new()));
        scratch.visited.reset(slots);
        scratch
    }

    /// Returns scratch for reuse by this thread.
    pub fn give(&self, scratch: Box<Scratch>) {
        SPARE.with(|s| *s.borrow_mut() = Some(scratch));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_clear_marks_including_across_wraparound() {
        let pool = ScratchPool;
        let mut s = pool.take(10);
        assert!(!s.visited.test_and_set(3));
        assert!(s.visited.test_and_set(3));
        for _ in 0..70_000 {
            pool.give(s);
            s = pool.take(10);
            assert!(!s.visited.seen(3), "a new walk starts clear");
        }
        let mut s = pool.take(5000);
        assert!(
            !s.visited.test_and_set(4999),
            "grows to the slots asked for"
        );
    }

    #[test]
    fn scored_orders_by_distance_then_slot() {
        let a = Scored { dist: 1.0, slot: 7 };
        let b = Scored { dist: 1.0, slot: 3 };
        let c = Scored { dist: 0.5, slot: 9 };
        let mut v = vec![a, b, c];
        v.sort_unstable();
        assert_eq!(v, vec![c, b, a]);
    }
}

//! Visited sets for graph walks: an epoch-stamped array, kept per thread so a search allocates nothing.

/// Marks slots as seen; clearing is one increment of the epoch, not a pass over the array.
pub struct Visited {
    marks: Vec<u16>,
    epoch: u16,
}

impl Visited {
    fn new(slots: usize) -> Self {
        Self {
            marks: vec![0; slots],
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

thread_local! {
    /// One visited set per thread, shared by every index the thread searches: a walk takes it
    /// and gives it back, so searches on different threads never contend for a lock.
    static SPARE: std::cell::RefCell<Option<Visited>> = const { std::cell::RefCell::new(None) };
}

/// Hands out visited sets: the calling thread's spare when it has one, else a new set.
#[derive(Default)]
pub struct VisitedPool;

impl VisitedPool {
    /// A cleared set covering `slots` slots.
    pub fn take(&self, slots: usize) -> Visited {
        let spare = SPARE.with(|s| s.borrow_mut().take());
        let mut v = spare.unwrap_or_else(|| Visited::new(slots));
        v.reset(slots);
        v
    }

    /// Returns a set for reuse by this thread.
    pub fn give(&self, v: Visited) {
        SPARE.with(|s| *s.borrow_mut() = Some(v));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_clear_marks_including_across_wraparound() {
        let pool = VisitedPool;
        let mut v = pool.take(10);
        assert!(!v.test_and_set(3));
        assert!(v.test_and_set(3));
        for _ in 0..70_000 {
            pool.give(v);
            v = pool.take(10);
            assert!(!v.seen(3), "a new walk starts clear");
        }
        let mut v = pool.take(5000);
        assert!(!v.test_and_set(4999), "grows to the slots asked for");
    }
}

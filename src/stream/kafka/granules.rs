//! Granules a poll cut: the detections of one overpass minute are spread over the detections
//! partitions (records are keyed by cell), and a poll can end inside one, on one partition or on
//! several. The tracker evaluates alerts after each granule, so a cut granule would be alerted on
//! in part: a `new_fire` for pixels that the rest of the granule joins to an older fire. The gate
//! passes on what every partition still being read has moved past, and keeps the rest for the
//! next poll, so the Kafka path raises the alerts a file load of the same detections raises.
//!
//! Held records are not applied: their offsets are not stored, so a crash or a revoked partition
//! reads them again. A granule goes on when every partition being read has moved past it; while
//! a partition is at its end (librdkafka's partition EOF) it may yet receive more of the granule
//! (a producer may be writing it), so the granule also waits until it was first read
//! `kafka.granule_grace_ms` ago. Granules go on oldest first, whole, about `kafka.max_batch`
//! records at a time. A partition that goes back in time (a late granule written behind newer
//! ones, a replay) keeps its older records behind its newer one: they go on with it, so such a
//! batch can be larger than `kafka.max_batch` (never larger than what is held). When nothing was read for the grace, or more than `HOLD_BATCHES` batches
//! or `HOLD_BYTES` of payload are held, the waiting is waived (the order is kept).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::processor::Polled;

/// Most records held, in batches of `kafka.max_batch`: past it nothing waits any more, so memory
/// stays bounded (a granule cut by then is alerted on in parts, as without the gate). librdkafka hands out one
/// partition's fetched records (up to `max.partition.fetch.bytes`) before the next one's, so
/// the bound must span several partitions' fetches.
const HOLD_BATCHES: usize = 64;
/// Most payload bytes held: records may be up to `kafka.max_record_bytes` each, so a count alone
/// would let a few large ones hold gigabytes.
const HOLD_BYTES: usize = 64 * 1024 * 1024;

/// Where one detections partition has been read to.
#[derive(Debug, Default, Clone, Copy)]
struct Frontier {
    /// The granule (acquisition time, ms) of the last record read that has one (`None`, and
    /// not at its end: nothing read yet, so it may hold any granule and everything waits).
    last: Option<i64>,
    /// When the partition reached its end, if it has since its last record.
    at_end: Option<Instant>,
}

/// The records held back and each partition's frontier.
pub(super) struct Gate {
    held: Vec<(Option<i64>, Polled)>,
    frontier: HashMap<i32, Frontier>,
    /// When each held granule was first read.
    first_read: HashMap<i64, Instant>,
    grace: Duration,
    last_read: Option<Instant>,
}

impl Gate {
    /// A gate whose granules wait up to `grace` for partitions at their end.
    pub(super) fn new(grace: Duration) -> Self {
        Self {
            held: Vec::new(),
            frontier: HashMap::new(),
            first_read: HashMap::new(),
            grace,
            last_read: None,
        }
    }

    /// Takes a poll's records (with their granules) and the partitions whose end it reached
    /// after their last record in it; returns what can be processed now, held records first,
    /// each partition's in offset order. A record goes on when its granule is older than every
    /// partition being read was last seen in and, while some partition is at its end, was first
    /// read the grace ago; a partition's records after one that waits wait too.
    pub(super) fn pass(
        &mut self,
        polled: Vec<(Option<i64>, Polled)>,
        ends: &[i32],
        max_batch: usize,
        now: Instant,
    ) -> Vec<Polled> {
        let max_batch = max_batch.max(1);
        let mut records = std::mem::take(&mut self.held);
        if !polled.is_empty() {
            self.last_read = Some(now);
        }
        for (granule, record) in polled {
            let frontier = self.frontier.entry(record.partition).or_default();
            if let Some(g) = granule {
                frontier.last = Some(g);
                self.first_read.entry(g).or_insert(now);
            }
            frontier.at_end = None;
            records.push((granule, record));
        }
        for partition in ends {
            self.frontier.entry(*partition).or_default().at_end = Some(now);
        }
        let grace = self.grace;
        let aged = |since: Instant| now.saturating_duration_since(since) >= grace;
        // Nothing read for the grace: what is held is as whole as it will get. Past the bound,
        // memory comes first. Either way the rest goes on, still oldest first.
        let held_bytes: usize = records.iter().map(|(_, r)| r.payload.len()).sum();
        let waive = self.last_read.is_none_or(aged)
            || records.len() > HOLD_BATCHES * max_batch
            || held_bytes > HOLD_BYTES;
        // The oldest granule a partition being read was last seen in; a partition assigned but
        // not read yet could hold any granule (`i64::MIN`: nothing goes on).
        let reading = self
            .frontier
            .values()
            .filter(|f| f.at_end.is_none())
            .map(|f| f.last.unwrap_or(i64::MIN))
            .min();
        let some_at_end = self.frontier.values().any(|f| f.at_end.is_some());
        let first_read = &self.first_read;
        let goes_on = |g: i64| {
            waive
                || (reading.is_none_or(|w| g < w)
                    && (!some_at_end || first_read.get(&g).is_none_or(|at| aged(*at))))
        };
        // A record can only go with every record before it on its partition, so it counts as
        // new as the newest granule up to it there: a partition that went back in time (a late
        // granule, a replay) holds its older records behind its newer ones, and they go on
        // together once the newer ones may.
        let mut newest: HashMap<i32, i64> = HashMap::new();
        let rank: Vec<Option<i64>> = records
            .iter()
            .map(|(granule, record)| match granule {
                Some(g) => {
                    let n = newest.entry(record.partition).or_insert(*g);
                    *n = (*n).max(*g);
                    Some(*n)
                }
                None => newest.get(&record.partition).copied(),
            })
            .collect();
        // Up to the oldest granule that must wait, oldest rank first and whole, about `max_batch`
        // records at a time (a rank is one granule where partitions go forward in time).
        let mut cut = records
            .iter()
            .filter_map(|(granule, _)| *granule)
            .filter(|g| !goes_on(*g))
            .min()
            .unwrap_or(i64::MAX);
        let mut sizes: std::collections::BTreeMap<i64, usize> = std::collections::BTreeMap::new();
        for r in rank.iter().flatten() {
            *sizes.entry(*r).or_default() += 1;
        }
        let mut taken = 0;
        for (&r, &n) in sizes.range(..cut) {
            if taken >= max_batch {
                cut = r;
                break;
            }
            taken += n;
        }
        let wait: Vec<bool> = rank.iter().map(|r| r.is_some_and(|r| r >= cut)).collect();
        let mut out = Vec::with_capacity(records.len());
        for ((granule, record), wait) in records.into_iter().zip(wait) {
            if wait {
                self.held.push((granule, record));
            } else {
                out.push(record);
            }
        }
        let held: std::collections::HashSet<i64> =
            self.held.iter().filter_map(|(g, _)| *g).collect();
        self.first_read.retain(|g, _| held.contains(g));
        out
    }

    /// The detections partitions this instance now holds: a new one is being read from an
    /// unknown granule until its first record or its end.
    pub(super) fn assigned(&mut self, partitions: &[i32]) {
        self.frontier.retain(|p, _| partitions.contains(p));
        for partition in partitions {
            self.frontier.entry(*partition).or_default();
        }
    }

    /// Everything held, to read again (a failed batch).
    pub(super) fn flush(&mut self) -> Vec<Polled> {
        self.held.drain(..).map(|(_, r)| r).collect()
    }

    /// Forgets a partition that was assigned or revoked: its held records are read again from
    /// the stored offset if it is this instance's, and are not this instance's to apply if not.
    pub(super) fn forget(&mut self, partition: i32) {
        self.held.retain(|(_, r)| r.partition != partition);
        self.frontier.remove(&partition);
    }

    /// How many records are held.
    pub(super) fn held(&self) -> usize {
        self.held.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(partition: i32, offset: i64, granule: i64) -> (Option<i64>, Polled) {
        (
            Some(granule),
            Polled {
                topic: "detections".to_owned(),
                partition,
                offset,
                key: None,
                payload: Vec::new(),
                timestamp: None,
                trace: Vec::new(),
                received: std::time::Instant::now(),
            },
        )
    }

    const GRACE: Duration = Duration::from_secs(2);

    fn offsets(records: &[Polled]) -> Vec<(i32, i64)> {
        records.iter().map(|r| (r.partition, r.offset)).collect()
    }

    #[test]
    fn a_partition_that_goes_back_in_time_does_not_stall_the_gate() {
        // A replay or a late granule: granule 10 first, then older ones behind it on the same
        // partition, more of them than a batch. They cannot go before granule 10 (offset order),
        // and granule 10 must not be cut off by the batch budget they fill: all go, in order.
        let t0 = Instant::now();
        let mut gate = Gate::new(GRACE);
        gate.assigned(&[0]);
        let polled = vec![
            record(0, 0, 10),
            record(0, 1, 1),
            record(0, 2, 2),
            record(0, 3, 3),
        ];
        assert!(
            gate.pass(polled, &[0], 2, t0).is_empty(),
            "within the grace"
        );
        let mut out = Vec::new();
        for i in 0..4 {
            out.extend(gate.pass(Vec::new(), &[], 2, t0 + GRACE + Duration::from_millis(i)));
        }
        assert_eq!(offsets(&out), vec![(0, 0), (0, 1), (0, 2), (0, 3)]);
        assert_eq!(gate.held(), 0);
    }

    #[test]
    fn older_records_behind_a_newer_one_go_with_it_and_other_partitions_keep_their_batches() {
        let t0 = Instant::now();
        let mut gate = Gate::new(GRACE);
        gate.assigned(&[0, 1]);
        // Partition 0 went back in time (30, then 5 and 6); partition 1 is in order.
        let polled = vec![
            record(0, 0, 30),
            record(0, 1, 5),
            record(0, 2, 6),
            record(1, 0, 4),
            record(1, 1, 7),
            record(1, 2, 40),
        ];
        // Partition 0 was last seen in granule 6, so only granules under 6 may go: partition
        // 1's 4 does; partition 0's 5 may too, but it is behind that partition's 30.
        let first = gate.pass(polled, &[], 1, t0);
        assert_eq!(offsets(&first), vec![(1, 0)]);
        // Partition 0 moves on to 50: everything under 40 may go; a budget of one record takes
        // the oldest rank first, partition 1's 7, then partition 0's 30 with the 5 and 6 behind it.
        let second = gate.pass(vec![record(0, 3, 50)], &[], 1, t0);
        assert_eq!(offsets(&second), vec![(1, 1)]);
        let third = gate.pass(Vec::new(), &[], 1, t0);
        assert_eq!(offsets(&third), vec![(0, 0), (0, 1), (0, 2)]);
        assert_eq!(
            gate.held(),
            2,
            "granules 40 and 50 wait for partitions to move past them"
        );
    }

    #[test]
    fn a_granule_cut_on_one_partition_waits_until_every_partition_has_moved_past_it() {
        let t0 = Instant::now();
        let mut gate = Gate::new(GRACE);
        // Partition 0 read into granule 20; partition 1 only up to granule 10 so far.
        let first = gate.pass(
            vec![
                record(0, 0, 10),
                record(0, 1, 20),
                record(1, 0, 10),
                record(0, 2, 20),
            ],
            &[],
            100,
            t0,
        );
        // Granule 10 may continue on partition 1: it and everything after it waits.
        assert_eq!(offsets(&first), Vec::<(i32, i64)>::new());
        assert_eq!(gate.held(), 4);
        // Partition 1 moves on to 20: granule 10 is whole, granule 20 may still grow.
        let second = gate.pass(vec![record(1, 1, 10), record(1, 2, 20)], &[], 100, t0);
        assert_eq!(offsets(&second), vec![(0, 0), (1, 0), (1, 1)]);
        assert_eq!(gate.held(), 3);
        // Both partitions at their ends: within the grace the rest still waits (a producer may
        // be writing more of granule 20), after it the rest goes on, in offset order.
        let third = gate.pass(Vec::new(), &[0, 1], 100, t0 + GRACE / 2);
        assert!(third.is_empty());
        let fourth = gate.pass(Vec::new(), &[], 100, t0 + GRACE);
        assert_eq!(offsets(&fourth), vec![(0, 1), (0, 2), (1, 2)]);
        assert_eq!(gate.held(), 0);
    }

    #[test]
    fn while_a_partition_is_at_its_end_a_granule_waits_the_grace_from_its_first_read() {
        let t0 = Instant::now();
        let mut gate = Gate::new(GRACE);
        // Both partitions at their ends (an empty topic), then partition 0 gets granules 7
        // and 9. Partition 1 may be about to receive its part of 7: 7 waits the grace.
        assert!(gate.pass(Vec::new(), &[0, 1], 100, t0).is_empty());
        let t1 = t0 + GRACE * 3;
        let passed = gate.pass(vec![record(0, 0, 7), record(0, 1, 9)], &[], 100, t1);
        assert!(passed.is_empty());
        // Partition 1 delivers its part of 7 within the grace, then moves on to 9.
        let passed = gate.pass(
            vec![record(1, 0, 7), record(1, 1, 9)],
            &[],
            100,
            t1 + GRACE / 4,
        );
        assert_eq!(offsets(&passed), vec![(0, 0), (1, 0)]);
        // Partition 1 at its end again; 9 goes on once first read the grace ago.
        let passed = gate.pass(Vec::new(), &[1], 100, t1 + GRACE / 2);
        assert!(passed.is_empty());
        let passed = gate.pass(vec![record(0, 2, 11)], &[], 100, t1 + GRACE);
        assert_eq!(offsets(&passed), vec![(0, 1), (1, 1)]);
        assert_eq!(gate.held(), 1, "11 is partition 0's newest: it waits");
    }

    #[test]
    fn an_assigned_partition_not_read_yet_holds_everything_back() {
        let t0 = Instant::now();
        let mut gate = Gate::new(GRACE);
        gate.assigned(&[0, 1]);
        // librdkafka hands out partition 0's fetch first: granules 1 to 3, none may go on
        // while partition 1 could still hold granule 1.
        let passed = gate.pass(
            vec![record(0, 0, 1), record(0, 1, 2), record(0, 2, 3)],
            &[],
            100,
            t0,
        );
        assert!(passed.is_empty());
        let passed = gate.pass(vec![record(1, 0, 1), record(1, 1, 2)], &[], 100, t0);
        assert_eq!(offsets(&passed), vec![(0, 0), (1, 0)]);
        // Revoked: partition 1's held record is dropped and it holds nobody back.
        gate.forget(1);
        gate.assigned(&[0]);
        let passed = gate.pass(vec![record(0, 3, 4)], &[], 100, t0);
        assert_eq!(offsets(&passed), vec![(0, 1), (0, 2)]);
    }

    #[test]
    fn granules_go_on_oldest_first_and_whole_about_a_batch_at_a_time() {
        let t0 = Instant::now();
        let mut gate = Gate::new(GRACE);
        gate.assigned(&[0, 1]);
        // Partition 0's fetch first: granules 2 and 3, read long before partition 1's 1 and 2.
        assert!(
            gate.pass(vec![record(0, 0, 2), record(0, 1, 3)], &[0], 100, t0)
                .is_empty()
        );
        let t1 = t0 + GRACE;
        let passed = gate.pass(vec![record(1, 0, 1), record(1, 1, 2)], &[1], 100, t1);
        // Granule 2 has aged, granule 1 has not: 2 may not overtake 1, so nothing goes on.
        assert!(passed.is_empty());
        // Granule 1 aged too: 1 and 2 go on, 3 (first read at t0) too, in one batch.
        let passed = gate.pass(Vec::new(), &[], 100, t1 + GRACE / 2);
        assert!(passed.is_empty(), "granule 1 was first read at t1");
        let passed = gate.pass(Vec::new(), &[], 100, t1 + GRACE);
        assert_eq!(offsets(&passed), vec![(0, 0), (0, 1), (1, 0), (1, 1)]);

        // Whole granules, oldest first, about `max_batch` (here 2) records at a time.
        let mut gate = Gate::new(GRACE);
        let polled = vec![
            record(0, 0, 1),
            record(0, 1, 1),
            record(0, 2, 1),
            record(0, 3, 2),
            record(0, 4, 3),
            record(0, 5, 4),
        ];
        let passed = gate.pass(polled, &[], 2, t0);
        assert_eq!(offsets(&passed), vec![(0, 0), (0, 1), (0, 2)]);
        let passed = gate.pass(Vec::new(), &[], 2, t0);
        assert_eq!(offsets(&passed), vec![(0, 3), (0, 4)]);
        let passed = gate.pass(Vec::new(), &[], 2, t0);
        assert!(passed.is_empty(), "4 is the partition's newest: it waits");
    }

    #[test]
    fn large_records_are_held_up_to_a_byte_bound_not_only_a_count() {
        let now = Instant::now();
        let mut gate = Gate::new(GRACE);
        let big = |offset: i64| {
            let (granule, mut record) = record(0, offset, 42);
            record.payload = vec![b' '; 1 << 20];
            (granule, record)
        };
        // 63 MiB of one granule waits (the partition may hold more of it); 65 MiB does not.
        assert!(
            gate.pass((0..63).map(big).collect(), &[], 1000, now)
                .is_empty()
        );
        assert_eq!(gate.pass(vec![big(63), big(64)], &[], 1000, now).len(), 65);
    }

    #[test]
    fn nothing_read_for_the_grace_passes_everything_on() {
        let t0 = Instant::now();
        let mut gate = Gate::new(GRACE);
        assert!(
            gate.pass(vec![record(0, 0, 1), record(1, 0, 2)], &[], 100, t0)
                .is_empty()
        );
        assert!(gate.pass(Vec::new(), &[], 100, t0 + GRACE / 2).is_empty());
        assert_eq!(gate.pass(Vec::new(), &[], 100, t0 + GRACE).len(), 2);
    }

    #[test]
    fn a_record_that_waits_keeps_the_later_records_of_its_partition_waiting() {
        let mut gate = Gate::new(GRACE);
        // Partition 1 was read into granule 5: on partition 0, 3 goes on, 9 waits, and the late
        // 4 behind it waits too, so a stored offset never passes a held record.
        let passed = gate.pass(
            vec![
                record(1, 0, 5),
                record(0, 0, 3),
                record(0, 1, 9),
                record(0, 2, 4),
            ],
            &[],
            100,
            Instant::now(),
        );
        assert_eq!(offsets(&passed), vec![(0, 0)]);
        assert_eq!(gate.held(), 3);
    }

    #[test]
    fn the_hold_is_bounded_and_a_forgotten_partition_loses_its_held_records() {
        let now = Instant::now();
        let mut gate = Gate::new(GRACE);
        let one_granule: Vec<_> = (0..9).map(|o| record(0, o, 42)).collect();
        assert!(gate.pass(one_granule, &[], 4, now).is_empty());
        assert_eq!(gate.held(), 9);
        gate.forget(0);
        assert_eq!(gate.held(), 0);
        let long: Vec<_> = (0..257).map(|o| record(0, o, 42)).collect();
        assert_eq!(
            gate.pass(long, &[], 4, now).len(),
            257,
            "over 64 batches nothing waits: the granule goes on whole"
        );
    }
}

//! Consumer lag as FireSight owns it: from librdkafka's statistics, each input partition's end
//! against the next offset FireSight's store holds for it (its offsets live there, not in the
//! group; the group commit is informational, for outside tools such as KEDA).

use rdkafka::Statistics;

use crate::metrics::Metrics;
use crate::store::Store;

/// How often the consumers report statistics (librdkafka's `statistics.interval.ms`), unless
/// `[kafka.client]` sets it.
pub(super) const STATS_INTERVAL_MS: &str = "5000";

/// Sets `firesight_stream_consumer_lag` for every partition the consumer holds, and removes the
/// series of partitions it no longer holds.
pub(super) fn record(statistics: &Statistics, store: &Store, metrics: &Metrics) {
    for (topic, stats) in &statistics.topics {
        for (partition, p) in &stats.partitions {
            // librdkafka's internal "unassigned" partition.
            if *partition < 0 {
                continue;
            }
            let label = partition.to_string();
            if !p.desired {
                // Absent already when it was never set: nothing to remove.
                let _ = metrics
                    .stream_consumer_lag
                    .remove_label_values(&[topic, &label]);
                continue;
            }
            // The last stable offset under read_committed (librdkafka's default), else the high
            // watermark; both unknown until the first fetch answers.
            let end = if p.ls_offset >= 0 {
                p.ls_offset
            } else {
                p.hi_offset
            };
            if end < 0 {
                continue;
            }
            let applied = match store.stream_offset(topic, *partition) {
                Ok(Some(next)) => next,
                Ok(None) if p.lo_offset >= 0 => p.lo_offset,
                Ok(None) => continue,
                Err(error) => {
                    tracing::warn!(%topic, partition, %error, "Reading the stored offset for the lag failed.");
                    continue;
                }
            };
            metrics
                .stream_consumer_lag
                .with_label_values(&[topic, &label])
                .set(end.saturating_sub(applied).max(0));
        }
    }
}

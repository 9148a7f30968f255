//! Prometheus metrics: names as constants, bounded labels, one registry per service.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Records through ingest, by kind (`firms`, `weather`, `stations`, `sensors`) and outcome.
pub const INGEST_RECORDS: &str = "firesight_ingest_records_total";
/// Detections through the weather join, by outcome (`status`: `matched`, `no_station_in_range`,
/// `no_reporting_station`, `no_recent_observation`, `stale_observation`): coverage by reason.
pub const CORRELATE_JOINS: &str = "firesight_correlate_joins_total";
/// Stored detections joined again after weather arrived late and revised in place, by the
/// status of the new join (coverage now = joins − re-joins from a status + re-joins to it).
pub const CORRELATE_REJOINS: &str = "firesight_correlate_rejoins_total";
/// Stored detections changed because their source database row changed (Debezium), by what
/// happened: `replaced` (updated in place, a new revision) or `deleted`.
pub const SOURCE_ROW_CHANGES: &str = "firesight_source_row_changes_total";
/// Encoder calls.
pub const EMBED_BATCHES: &str = "firesight_embed_batches_total";
/// Encoder rows.
pub const EMBED_ROWS: &str = "firesight_embed_rows_total";
/// Encoder call latency.
pub const EMBED_BATCH_SECONDS: &str = "firesight_embed_batch_duration_seconds";
/// Points in the vector index.
pub const INDEX_VECTORS: &str = "firesight_index_vectors";
/// Stored events.
pub const STORE_EVENTS: &str = "firesight_store_events";
/// HTTP requests, by route template, method and status.
pub const HTTP_REQUESTS: &str = "firesight_http_requests_total";
/// HTTP latency, by route template.
pub const HTTP_REQUEST_SECONDS: &str = "firesight_http_request_duration_seconds";
/// Objects the Weaviate mirror delivered.
pub const MIRROR_SENT: &str = "firesight_mirror_objects_sent_total";
/// Mirror batches that failed (Weaviate down or refusing); each is retried.
pub const MIRROR_FAILURES: &str = "firesight_mirror_batch_failures_total";
/// Objects Weaviate refused in a batch and that stay queued for another attempt.
pub const MIRROR_OBJECT_RETRIES: &str = "firesight_mirror_object_retries_total";
/// Objects dead-lettered after Weaviate refused them `weaviate.max_object_attempts` times.
pub const MIRROR_DEAD_LETTERS: &str = "firesight_mirror_dead_letters_total";

/// Streaming records later than their window's end plus grace, by operator.
pub const STREAM_LATE: &str = "firesight_stream_late_records_total";
/// Records the broker acknowledged from the streaming outbox, by topic.
pub const STREAM_PUBLISHED: &str = "firesight_stream_published_total";

/// Time to restore one partition's window state from the changelog.
pub const STREAM_RESTORE_SECONDS: &str = "firesight_stream_restore_duration_seconds";

/// Partitions whose checkpoint was newer in the changelog than in the local store.
pub const STREAM_RESTORED: &str = "firesight_stream_restored_partitions_total";
/// Rebalance callbacks this instance ran (assignments and revocations, empty ones included).
pub const STREAM_REBALANCES: &str = "firesight_stream_rebalances_total";
/// Input offsets the broker skipped: from a partition's stored offset to the first record it
/// delivered after it, and between records of one fetch, by topic.
pub const STREAM_OFFSET_GAPS: &str = "firesight_stream_offset_gaps_total";
/// Detections partitions the group gave this instance (the weather and sensor tables are read
/// whole by every instance and not counted).
pub const STREAM_ASSIGNED: &str = "firesight_stream_assigned_partitions";
/// Detection records read and held back until every partition has moved past their granule.
pub const STREAM_GRANULE_HELD: &str = "firesight_stream_granule_held_records";
/// Time a write waited for the pipeline's writer lock, by lane (`live`, `bulk`): how long a live
/// detection queued behind other writes.
pub const WRITER_WAIT_SECONDS: &str = "firesight_writer_wait_seconds";
/// Live detection batches (POSTed bodies, small inputs) written together in one write of the
/// live lane (group commit): 1 while the writer lock is free, more when live traffic queues.
pub const WRITER_LIVE_GROUP_BATCHES: &str = "firesight_writer_live_group_batches";
/// Kafka path: time each detection record waited at the granule gate, from the consumer's poll
/// until its granule went on to the pipeline (every partition past it, or the grace over). The
/// part of `firesight_ingest_latency_seconds` that is waiting for a whole overpass, not work.
pub const STREAM_GRANULE_WAIT_SECONDS: &str = "firesight_stream_granule_wait_seconds";
/// Time from FireSight receiving a record to the record being stored, indexed (so a search
/// finds it) and its alerts queued, by kind (`firms`, `weather`, `stations`, `sensors`) and path
/// (`http`: from the request's body chunk that carried it; `file`: from reading its chunk of a
/// `--load` file; `kafka`: from the consumer's poll until its outputs may be published, the
/// granule gate's hold included). One observation per record.
pub const INGEST_LATENCY_SECONDS: &str = "firesight_ingest_latency_seconds";
/// Kafka path: time from the consumer's poll of the oldest input record of a batch to the
/// broker's acknowledgement of each output record that batch wrote (enriched events, alerts,
/// incidents, dead letters, checkpoints), so the outbox and the producer included; the part of
/// detection-to-published that FireSight owns. One observation per acknowledged output.
pub const STREAM_OUTPUT_LATENCY_SECONDS: &str = "firesight_stream_output_latency_seconds";
/// Time the incident tracker took per batch.
pub const TRACKER_SECONDS: &str = "firesight_tracker_batch_duration_seconds";
/// Alerts the tracker raised, all kinds.
pub const TRACKER_ALERTS: &str = "firesight_tracker_alerts_total";
/// Detections older than the inactivity horizon when they arrived (still tracked and stored).
pub const TRACKER_LATE: &str = "firesight_tracker_late_detections_total";
/// Webhook delivery attempts, by target and outcome (`delivered`, `retry`, `dead_letter`).
pub const WEBHOOK_DELIVERIES: &str = "firesight_webhook_deliveries_total";
/// Alerts queued for a webhook target and not yet accepted, by target.
pub const WEBHOOK_QUEUED: &str = "firesight_webhook_queued";

/// How far this instance's applied position trails the end of each input partition it reads:
/// the partition's high watermark (last stable offset under `read_committed`) minus the next
/// offset FireSight's store holds for it, by topic and partition. From librdkafka's statistics
/// every `statistics.interval.ms`.
pub const STREAM_CONSUMER_LAG: &str = "firesight_stream_consumer_lag";
/// Tumbling active-fire windows closed and queued for output.
pub const STREAM_WINDOWS_CLOSED: &str = "firesight_stream_windows_closed_total";
/// Entries waiting in an outbox, by outbox (`kafka`: output records not yet acknowledged by the
/// broker, counted from the oldest to the newest sequence; `mirror`: vectors not yet accepted by
/// Weaviate, counted exactly up to 100,000 and estimated by RocksDB beyond).
pub const OUTBOX_DEPTH: &str = "firesight_outbox_depth";
/// The store's size on disk and in memory, by column family and kind (`sst`: live SST files;
/// `memtable`: every memtable, flushed or not).
pub const STORE_SIZE_BYTES: &str = "firesight_store_size_bytes";

/// The service's metrics.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// See [`INGEST_RECORDS`].
    pub ingest_records: IntCounterVec,
    /// See [`CORRELATE_JOINS`].
    pub correlate_joins: IntCounterVec,
    /// See [`CORRELATE_REJOINS`].
    pub correlate_rejoins: IntCounterVec,
    /// See [`SOURCE_ROW_CHANGES`].
    pub source_row_changes: IntCounterVec,
    /// See [`EMBED_BATCHES`].
    pub embed_batches: IntCounter,
    /// See [`EMBED_ROWS`].
    pub embed_rows: IntCounter,
    /// See [`EMBED_BATCH_SECONDS`].
    pub embed_seconds: Histogram,
    /// See [`INDEX_VECTORS`].
    pub index_vectors: IntGauge,
    /// See [`STORE_EVENTS`].
    pub store_events: IntGauge,
    /// See [`HTTP_REQUESTS`].
    pub http_requests: IntCounterVec,
    /// See [`HTTP_REQUEST_SECONDS`].
    pub http_seconds: HistogramVec,
    /// See [`MIRROR_SENT`].
    pub mirror_sent: IntCounter,
    /// See [`MIRROR_FAILURES`].
    pub mirror_failures: IntCounter,
    /// See [`MIRROR_OBJECT_RETRIES`].
    pub mirror_object_retries: IntCounter,
    /// See [`MIRROR_DEAD_LETTERS`].
    pub mirror_dead_letters: IntCounter,
    /// See [`STREAM_LATE`].
    pub stream_late: IntCounterVec,
    /// See [`STREAM_PUBLISHED`].
    pub stream_published: IntCounterVec,
    /// See [`STREAM_RESTORE_SECONDS`].
    pub stream_restore_seconds: Histogram,
    /// See [`STREAM_RESTORED`].
    pub stream_restored: IntCounter,
    /// See [`STREAM_ASSIGNED`].
    pub stream_assigned: IntGauge,
    /// See [`STREAM_GRANULE_HELD`].
    pub stream_granule_held: IntGauge,
    /// See [`STREAM_OFFSET_GAPS`].
    pub stream_offset_gaps: IntCounterVec,
    /// See [`STREAM_REBALANCES`].
    pub stream_rebalances: IntCounter,
    /// See [`TRACKER_SECONDS`].
    pub tracker_seconds: Histogram,
    /// See [`WRITER_WAIT_SECONDS`].
    pub writer_wait: HistogramVec,
    /// See [`WRITER_LIVE_GROUP_BATCHES`].
    pub live_group_batches: Histogram,
    /// See [`INGEST_LATENCY_SECONDS`].
    pub ingest_latency: HistogramVec,
    /// See [`STREAM_OUTPUT_LATENCY_SECONDS`].
    pub stream_output_latency: Histogram,
    /// See [`STREAM_GRANULE_WAIT_SECONDS`].
    pub stream_granule_wait: Histogram,
    /// See [`TRACKER_ALERTS`].
    pub tracker_alerts: IntCounter,
    /// See [`TRACKER_LATE`].
    pub tracker_late: IntCounter,
    /// See [`WEBHOOK_DELIVERIES`].
    pub webhook_deliveries: IntCounterVec,
    /// See [`WEBHOOK_QUEUED`].
    pub webhook_queued: IntGaugeVec,
    /// See [`STREAM_CONSUMER_LAG`].
    pub stream_consumer_lag: IntGaugeVec,
    /// See [`STREAM_WINDOWS_CLOSED`].
    pub stream_windows_closed: IntCounter,
    /// See [`OUTBOX_DEPTH`].
    pub outbox_depth: IntGaugeVec,
    /// See [`STORE_SIZE_BYTES`].
    pub store_size: IntGaugeVec,
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let metrics = Self {
            ingest_records: IntCounterVec::new(
                Opts::new(INGEST_RECORDS, "Records through ingest."),
                &["kind", "outcome"],
            )?,
            correlate_joins: IntCounterVec::new(
                Opts::new(
                    CORRELATE_JOINS,
                    "Detections through the weather join, by outcome.",
                ),
                &["status"],
            )?,
            correlate_rejoins: IntCounterVec::new(
                Opts::new(
                    CORRELATE_REJOINS,
                    "Stored detections joined again after late weather, by the new outcome.",
                ),
                &["status"],
            )?,
            source_row_changes: IntCounterVec::new(
                Opts::new(
                    SOURCE_ROW_CHANGES,
                    "Stored detections replaced or deleted because their source row changed.",
                ),
                &["change"],
            )?,
            embed_batches: IntCounter::new(EMBED_BATCHES, "Encoder calls.")?,
            embed_rows: IntCounter::new(EMBED_ROWS, "Rows embedded.")?,
            embed_seconds: Histogram::with_opts(
                HistogramOpts::new(EMBED_BATCH_SECONDS, "Encoder call latency.")
                    .buckets(prometheus::exponential_buckets(0.0001, 4.0, 10)?),
            )?,
            index_vectors: IntGauge::new(INDEX_VECTORS, "Points in the vector index.")?,
            store_events: IntGauge::new(STORE_EVENTS, "Events in the store.")?,
            http_requests: IntCounterVec::new(
                Opts::new(HTTP_REQUESTS, "HTTP requests."),
                &["route", "method", "status"],
            )?,
            http_seconds: HistogramVec::new(
                HistogramOpts::new(HTTP_REQUEST_SECONDS, "HTTP latency.")
                    .buckets(prometheus::exponential_buckets(0.0001, 4.0, 10)?),
                &["route"],
            )?,
            mirror_sent: IntCounter::new(MIRROR_SENT, "Objects delivered to Weaviate.")?,
            mirror_failures: IntCounter::new(
                MIRROR_FAILURES,
                "Weaviate batches that failed and were retried.",
            )?,
            mirror_object_retries: IntCounter::new(
                MIRROR_OBJECT_RETRIES,
                "Objects Weaviate refused that stay queued for another attempt.",
            )?,
            mirror_dead_letters: IntCounter::new(
                MIRROR_DEAD_LETTERS,
                "Objects dead-lettered after Weaviate refused them every attempt.",
            )?,
            stream_late: IntCounterVec::new(
                Opts::new(
                    STREAM_LATE,
                    "Streaming records later than their window's grace.",
                ),
                &["operator"],
            )?,
            stream_published: IntCounterVec::new(
                Opts::new(STREAM_PUBLISHED, "Outbox records the broker acknowledged."),
                &["topic"],
            )?,
            stream_restore_seconds: Histogram::with_opts(HistogramOpts::new(
                STREAM_RESTORE_SECONDS,
                "Restoring one partition's window state from the changelog.",
            ))?,
            stream_restored: IntCounter::new(
                STREAM_RESTORED,
                "Partitions whose state was restored from the changelog.",
            )?,
            stream_assigned: IntGauge::new(STREAM_ASSIGNED, "Detections partitions held.")?,
            stream_granule_held: IntGauge::new(
                STREAM_GRANULE_HELD,
                "Detection records held back until every partition has moved past their granule.",
            )?,
            stream_offset_gaps: IntCounterVec::new(
                Opts::new(
                    STREAM_OFFSET_GAPS,
                    "Input offsets skipped between the stored offset and the records delivered.",
                ),
                &["topic"],
            )?,
            stream_rebalances: IntCounter::new(
                STREAM_REBALANCES,
                "Rebalance callbacks run (assignments and revocations).",
            )?,
            tracker_seconds: Histogram::with_opts(
                HistogramOpts::new(TRACKER_SECONDS, "Incident tracking per batch.")
                    .buckets(prometheus::exponential_buckets(0.0001, 4.0, 10)?),
            )?,
            writer_wait: HistogramVec::new(
                HistogramOpts::new(
                    WRITER_WAIT_SECONDS,
                    "Time a write waited for the pipeline's writer lock, by lane.",
                )
                .buckets(prometheus::exponential_buckets(0.0005, 2.5, 12)?),
                &["lane"],
            )?,
            live_group_batches: Histogram::with_opts(
                HistogramOpts::new(
                    WRITER_LIVE_GROUP_BATCHES,
                    "Live detection batches written together per write of the live lane.",
                )
                .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0]),
            )?,
            // 0.5 ms to about 65 s in 18 doublings: a live POST's few ms, a granule gate's
            // seconds, a backfill's queue.
            ingest_latency: HistogramVec::new(
                HistogramOpts::new(
                    INGEST_LATENCY_SECONDS,
                    "Receipt of a record to stored, indexed and its alerts queued, by kind and path.",
                )
                .buckets(prometheus::exponential_buckets(0.0005, 2.0, 18)?),
                &["kind", "path"],
            )?,
            stream_output_latency: Histogram::with_opts(
                HistogramOpts::new(
                    STREAM_OUTPUT_LATENCY_SECONDS,
                    "Kafka: poll of a batch's oldest input to the broker's ack of each output it wrote.",
                )
                .buckets(prometheus::exponential_buckets(0.0005, 2.0, 18)?),
            )?,
            stream_granule_wait: Histogram::with_opts(
                HistogramOpts::new(
                    STREAM_GRANULE_WAIT_SECONDS,
                    "Kafka: poll of a detection to its granule going on past the granule gate.",
                )
                .buckets(prometheus::exponential_buckets(0.0005, 2.0, 18)?),
            )?,
            tracker_alerts: IntCounter::new(TRACKER_ALERTS, "Alerts raised by the tracker.")?,
            tracker_late: IntCounter::new(
                TRACKER_LATE,
                "Detections older than the inactivity horizon on arrival.",
            )?,
            webhook_deliveries: IntCounterVec::new(
                Opts::new(WEBHOOK_DELIVERIES, "Webhook delivery attempts by outcome."),
                &["target", "outcome"],
            )?,
            webhook_queued: IntGaugeVec::new(
                Opts::new(WEBHOOK_QUEUED, "Alerts waiting for a webhook receiver."),
                &["target"],
            )?,
            stream_consumer_lag: IntGaugeVec::new(
                Opts::new(
                    STREAM_CONSUMER_LAG,
                    "Input records not yet applied, by topic and partition.",
                ),
                &["topic", "partition"],
            )?,
            stream_windows_closed: IntCounter::new(
                STREAM_WINDOWS_CLOSED,
                "Active-fire windows closed and queued for output.",
            )?,
            outbox_depth: IntGaugeVec::new(
                Opts::new(OUTBOX_DEPTH, "Entries waiting in an outbox."),
                &["outbox"],
            )?,
            store_size: IntGaugeVec::new(
                Opts::new(STORE_SIZE_BYTES, "Store size by column family and kind."),
                &["family", "kind"],
            )?,
            registry,
        };
        metrics
            .registry
            .register(Box::new(metrics.ingest_records.clone()))?;
        metrics
            .registry
            .register(Box::new(metrics.correlate_joins.clone()))?;
        metrics
            .registry
            .register(Box::new(metrics.correlate_rejoins.clone()))?;
        metrics
            .registry
            .register(Box::new(metrics.source_row_changes.clone()))?;
        metrics
            .registry
            .register(Box::new(metrics.embed_batches.clone()))?;
        metrics
            .registry
            .register(Box::new(metrics.embed_rows.clone()))?;
        metrics
            .registry
            .register(Box::new(metrics.embed_seconds.clone()))?;
        metrics
            .registry
            .register(Box::new(metrics.index_vectors.clone()))?;
        metrics
            .registry
            .register(Box::new(metrics.store_events.clone()))?;
        metrics
            .registry
            .register(Box::new(metrics.http_requests.clone()))?;
        metrics
            .registry
            .register(Box::new(metrics.http_seconds.clone()))?;
        metrics
            .registry
            .register(Box::new(metrics.mirror_sent.clone()))?;
        metrics
            .registry
            .register(Box::new(metrics.mirror_failures.clone()))?;
        metrics
            .registry
            .register(Box::new(metrics.mirror_object_retries.clone()))?;
        metrics
            .registry
            .register(Box::new(metrics.mirror_dead_letters.clone()))?;
        metrics
            .registry
            .register(Box::new(metrics.stream_late.clone()))?;
        metrics
            .registry
            .register(Box::new(metrics.stream_published.clone()))?;
        metrics
            .registry
            .register(Box::new(metrics.stream_restore_seconds.clone()))?;
        metrics
            .registry
            .register(Box::new(metrics.stream_restored.clone()))?;
        metrics
            .registry
            .register(Box::new(metrics.stream_assigned.clone()))?;
        metrics
            .registry
            .register(Box::new(metrics.stream_granule_held.clone()))?;
        metrics
            .registry
            .register(Box::new(metrics.stream_offset_gaps.clone()))?;
        metrics
            .registry
            .register(Box::new(metrics.stream_rebalances.clone()))?;
        for metric in [
            Box::new(metrics.tracker_seconds.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(metrics.tracker_alerts.clone()),
            Box::new(metrics.writer_wait.clone()),
            Box::new(metrics.live_group_batches.clone()),
            Box::new(metrics.ingest_latency.clone()),
            Box::new(metrics.stream_output_latency.clone()),
            Box::new(metrics.stream_granule_wait.clone()),
            Box::new(metrics.tracker_late.clone()),
            Box::new(metrics.webhook_deliveries.clone()),
            Box::new(metrics.webhook_queued.clone()),
            Box::new(metrics.stream_consumer_lag.clone()),
            Box::new(metrics.stream_windows_closed.clone()),
            Box::new(metrics.outbox_depth.clone()),
            Box::new(metrics.store_size.clone()),
        ] {
            metrics.registry.register(metric)?;
        }
        // Every outcome from the start, so coverage by reason reads as a full table.
        for status in crate::event::WeatherStatus::ALL {
            metrics
                .correlate_joins
                .with_label_values(&[status.as_str()]);
        }
        for outbox in ["kafka", "mirror"] {
            metrics.outbox_depth.with_label_values(&[outbox]);
        }
        Ok(metrics)
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        if let Err(error) = TextEncoder::new().encode(&self.registry.gather(), &mut buffer) {
            tracing::warn!(%error, "Metrics could not be encoded.");
        }
        String::from_utf8_lossy(&buffer).into_owned()
    }
}

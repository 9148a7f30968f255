//! The global tables: the weather and sensor topics, read whole by every instance.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};

use super::config::consumer_config;
use super::processor::{Polled, Processor, resume_from, rewind};
use crate::config::KafkaSettings;
use crate::metrics::Metrics;
use crate::store::Store;

/// A global table's consumer: every partition of `topic` assigned (no group), each starting at
/// the offset in the store, reporting when it reaches a partition's end. One per topic, because
/// librdkafka's end-of-partition event names the partition but not the topic. Nothing is asked
/// of the broker here: [`Processor::bootstrap`] finds the partitions, so a broker that is down or
/// refuses our credentials at start is logged and tried again, never a reason to exit.
pub(super) fn table_consumer(
    settings: &KafkaSettings,
    store: &Arc<Store>,
    metrics: &Metrics,
    topic: &str,
) -> anyhow::Result<(String, BaseConsumer<Tables>)> {
    let consumer: BaseConsumer<Tables> =
        consumer_config(settings, &format!("{}-tables", settings.group_id))
            .set("enable.partition.eof", "true")
            .create_with_context(Tables {
                store: Arc::clone(store),
                metrics: metrics.clone(),
            })?;
    Ok((topic.to_owned(), consumer))
}

/// How long one look at a table topic's metadata waits at start before the consumers are polled
/// (which is when librdkafka's reports, a refused password among them, reach the log) and the
/// look is made again.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

/// Assigns the partitions of a table topic that `consumer` does not read yet, each from
/// `rewind` before the store's offset (what was applied is skipped) or from the beginning;
/// returns how many. Called at start and then periodically, so
/// partitions added to the topic, or the topic created after start, are read without a restart.
fn assign_new_partitions(
    consumer: &BaseConsumer<Tables>,
    store: &Store,
    topic: &str,
    rewind: u32,
    timeout: Duration,
) -> anyhow::Result<usize> {
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    let assigned: std::collections::HashSet<i32> = consumer
        .assignment()?
        .elements_for_topic(topic)
        .iter()
        .map(|e| e.partition())
        .collect();
    let mut tpl = TopicPartitionList::new();
    let partitions = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()));
    for partition in partitions.filter(|p| !assigned.contains(p)) {
        let start = match store.stream_offset(topic, partition)? {
            Some(next) => Offset::Offset(resume_from(next, rewind)),
            None => Offset::Beginning,
        };
        tpl.add_partition_offset(topic, partition, start)?;
    }
    if tpl.count() > 0 {
        consumer.incremental_assign(&tpl)?;
    }
    Ok(tpl.count())
}

/// The table consumers' context: reaching a partition's end is what they ask to be told, not
/// an error, so librdkafka's copy of that event is not logged as one; statistics set the lag.
pub(super) struct Tables {
    store: Arc<Store>,
    metrics: Metrics,
}

impl ClientContext for Tables {
    fn error(&self, error: KafkaError, reason: &str) {
        log_client_error(error, reason);
    }

    fn stats(&self, statistics: rdkafka::Statistics) {
        super::lag::record(&statistics, &self.store, &self.metrics);
    }
}

/// Logs an error librdkafka reports, except a partition's end, which the consumers ask for.
pub(super) fn log_client_error(error: KafkaError, reason: &str) {
    if error.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::PartitionEOF) {
        tracing::trace!(%reason, "Partition end reached.");
    } else {
        tracing::error!(%error, %reason, "Error reported by librdkafka.");
    }
}

impl ConsumerContext for Tables {}

impl Processor {
    /// Finds the tables' partitions and reads them up to their ends before any detection is
    /// processed, so start-up joins against loaded tables; gives up after
    /// `table_bootstrap_seconds` (the periodic look and the run loop do the rest). A broker that
    /// does not answer, or refuses our credentials, is logged as it happens and asked again.
    pub(super) fn bootstrap(&self, tables: &[(String, BaseConsumer<Tables>)], stop: &AtomicBool) {
        let started = Instant::now();
        let limit = Duration::from_secs(self.settings.table_bootstrap_seconds);
        let mut found = vec![false; tables.len()];
        while found.iter().any(|f| !f) && !stop.load(Ordering::Acquire) {
            for ((topic, consumer), found) in tables.iter().zip(&mut found) {
                if *found {
                    continue;
                }
                let rewind = self.settings.resume_rewind_records;
                let store = self.pipeline.store();
                match assign_new_partitions(consumer, store, topic, rewind, LOOKUP_TIMEOUT) {
                    Ok(0) => {
                        *found = true;
                        tracing::warn!(
                            %topic,
                            every_seconds = self.settings.table_refresh_seconds,
                            "Table topic has no partitions yet (does it exist?); looking again periodically."
                        );
                    }
                    Ok(partitions) => {
                        *found = true;
                        tracing::info!(%topic, partitions, "Reading the topic as a global table.");
                    }
                    Err(error) => {
                        // Serves librdkafka's queued reports, so the cause (a refused password,
                        // an unknown host) is logged now rather than when the consumer closes.
                        if let Some(Err(reported)) = consumer.poll(Duration::ZERO) {
                            tracing::warn!(%topic, error = %reported, "The table consumer reported an error.");
                        }
                        tracing::warn!(%topic, %error, "The broker did not answer for a table topic; asking again.");
                    }
                }
            }
            if started.elapsed() > limit {
                tracing::warn!(
                    "Table topics not found after table_bootstrap_seconds; processing detections and looking again periodically."
                );
                return;
            }
        }
        let mut pending: Vec<std::collections::HashSet<i32>> = tables
            .iter()
            .map(|(_, consumer)| {
                consumer
                    .assignment()
                    .map(|tpl| tpl.elements().iter().map(|e| e.partition()).collect())
                    .unwrap_or_default()
            })
            .collect();
        let mut read = 0;
        while pending.iter().any(|p| !p.is_empty()) && !stop.load(Ordering::Acquire) {
            if started.elapsed() > limit {
                let partitions: usize = pending.iter().map(|p| p.len()).sum();
                tracing::warn!(
                    partitions,
                    read,
                    "Tables not at their ends after table_bootstrap_seconds; processing detections while they catch up."
                );
                return;
            }
            for ((_, consumer), pending) in tables.iter().zip(&mut pending) {
                let mut ends = Vec::new();
                let batch = self.poll_batch(consumer, Duration::from_millis(50), &mut ends);
                read += batch.len();
                self.process_table_batch(consumer, batch);
                for partition in ends {
                    pending.remove(&partition);
                }
            }
        }
        tracing::info!(
            read,
            seconds = started.elapsed().as_secs_f64(),
            "Weather and sensor tables loaded."
        );
    }

    /// Starts reading table partitions that appeared since the last look.
    pub(super) fn find_table_partitions(&self, tables: &[(String, BaseConsumer<Tables>)]) {
        let store = self.pipeline.store();
        for (topic, consumer) in tables {
            let rewind = self.settings.resume_rewind_records;
            match assign_new_partitions(consumer, store, topic, rewind, Duration::from_secs(5)) {
                Ok(0) => {}
                Ok(partitions) => {
                    tracing::info!(%topic, partitions, "New table partitions found; reading them.");
                }
                Err(error) => {
                    tracing::warn!(%topic, %error, "Looking for new table partitions failed.");
                }
            }
        }
    }

    /// Processes a batch of table records; on failure seeks back to the stored offsets.
    pub(super) fn process_table_batch(
        &self,
        tables: &BaseConsumer<Tables>,
        mut batch: Vec<Polled>,
    ) {
        if batch.is_empty() {
            return;
        }
        match self.process_in_line(&mut batch) {
            Ok(()) => self.outbox.release(),
            Err(error) => {
                tracing::error!(%error, "Processing a table batch failed; rewinding to the stored offsets.");
                let back = self.settings.resume_rewind_records;
                rewind(self.pipeline.store(), tables, &batch, back);
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
}

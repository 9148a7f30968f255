//! Rebalances: where an assigned partition starts, and restoring its window state from the
//! changelog.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::message::Message;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Offset, TopicPartitionList};

use super::config::client_config;
use super::processor::resume_from;
use super::state::{States, state_key, state_op};
use crate::config::KafkaSettings;
use crate::store::{Store, StoreOp};
use crate::stream::windows::PartitionState;

/// How long a restore waits for the next changelog record before taking what it read as all.
const CHANGELOG_QUIET: Duration = Duration::from_secs(2);

/// Starts every assigned partition at the offset in FireSight's own store (read again from a
/// little before it, see [`resume_from`]), and forgets the
/// window state of revoked ones (it is in the store, and in the new owner's).
pub(super) struct Rebalancer {
    pub(super) store: Arc<Store>,
    pub(super) states: States,
    pub(super) settings: KafkaSettings,
    pub(super) metrics: crate::metrics::Metrics,
    /// Detections partitions assigned or revoked since the consumer loop last asked: records it
    /// read from them and holds back are not its to apply any more, or are read again.
    pub(super) reassigned: std::sync::Mutex<Vec<i32>>,
}

/// One changelog record: a detections partition's next offset and its window state, together,
/// so a restore never pairs a state with the wrong position.
#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct Checkpoint {
    pub(super) offset: i64,
    pub(super) state: PartitionState,
}

impl Rebalancer {
    /// The detections partitions assigned or revoked since the last call.
    pub(super) fn take_reassigned(&self) -> Vec<i32> {
        std::mem::take(&mut *self.reassigned.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn note_reassigned(&self, tpl: &TopicPartitionList) {
        let mut reassigned = self.reassigned.lock().unwrap_or_else(|p| p.into_inner());
        reassigned.extend(
            tpl.elements()
                .iter()
                .filter(|e| e.topic() == self.settings.detections_topic)
                .map(|e| e.partition()),
        );
    }

    fn count_assigned(&self, consumer: &BaseConsumer<Self>) {
        let held = consumer.assignment().map_or(0, |tpl| tpl.count());
        self.metrics.stream_assigned.set(held as i64);
    }

    /// Brings a detections partition's state up to the changelog's newest checkpoint when that
    /// is ahead of the local store (the partition was processed elsewhere meanwhile).
    fn restore(&self, topic: &str, partition: i32) -> anyhow::Result<()> {
        let started = Instant::now();
        let changelog = &self.settings.changelog();
        let consumer: BaseConsumer = client_config(&self.settings)
            .set("group.id", format!("{}-restore", self.settings.group_id))
            .set("enable.auto.commit", "false")
            .create()?;
        let (low, high) =
            consumer.fetch_watermarks(changelog, partition, Duration::from_secs(10))?;
        let wanted = state_key(&(topic.to_owned(), partition));
        let mut newest: Option<Vec<u8>> = None;
        let mut read = 0u64;
        if high > low {
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(changelog, partition, Offset::Offset(low))?;
            consumer.assign(&tpl)?;
            let mut position = low;
            let mut quiet_since = Instant::now();
            while position < high {
                match consumer.poll(Duration::from_millis(200)) {
                    Some(Ok(message)) => {
                        position = message.offset() + 1;
                        read += 1;
                        quiet_since = Instant::now();
                        if message.key() == Some(wanted.as_slice()) {
                            newest = message.payload().map(<[u8]>::to_vec);
                        }
                    }
                    Some(Err(error)) => return Err(error.into()),
                    None => {
                        // The high watermark can count offsets no record occupies (a batch
                        // written by a producer that died): give up waiting for them.
                        if quiet_since.elapsed() > CHANGELOG_QUIET {
                            tracing::warn!(%changelog, partition, position, high, "No changelog records past this offset; restoring from what was read.");
                            break;
                        }
                    }
                }
            }
        }
        let local = self.store.stream_offset(topic, partition)?;
        let restored = match newest {
            Some(bytes) => {
                let checkpoint: Checkpoint = serde_json::from_slice(&bytes)?;
                if local.is_none_or(|l| checkpoint.offset > l) {
                    self.store.apply(&[
                        StoreOp::stream_offset(topic, partition, checkpoint.offset),
                        state_op(&(topic.to_owned(), partition), &checkpoint.state)?,
                    ])?;
                    self.metrics.stream_restored.inc();
                    Some(checkpoint.offset)
                } else {
                    None
                }
            }
            None => None,
        };
        let seconds = started.elapsed().as_secs_f64();
        self.metrics.stream_restore_seconds.observe(seconds);
        tracing::info!(%topic, partition, changelog_records = read, ?local, ?restored, seconds, "Restored from the changelog.");
        Ok(())
    }
}

impl ClientContext for Rebalancer {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        super::tables::log_client_error(error, reason);
    }

    fn stats(&self, statistics: rdkafka::Statistics) {
        super::lag::record(&statistics, &self.store, &self.metrics);
    }
}

impl ConsumerContext for Rebalancer {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        self.metrics.stream_rebalances.inc();
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let result = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                self.note_reassigned(tpl);
                let partitions: Vec<(String, i32)> = tpl
                    .elements()
                    .iter()
                    .map(|e| (e.topic().to_owned(), e.partition()))
                    .collect();
                for (topic, partition) in partitions {
                    if topic == self.settings.detections_topic {
                        self.states
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .remove(&(topic.clone(), partition));
                        if let Err(error) = self.restore(&topic, partition) {
                            tracing::error!(%topic, partition, %error, "Restoring from the changelog failed; going on with the local state.");
                        }
                    }
                    match self.store.stream_offset(&topic, partition) {
                        Ok(Some(next)) => {
                            let from = resume_from(next, self.settings.resume_rewind_records);
                            if let Err(error) =
                                tpl.set_partition_offset(&topic, partition, Offset::Offset(from))
                            {
                                tracing::error!(%topic, partition, %error, "Cannot set the start offset.");
                            }
                            tracing::info!(%topic, partition, next, from, "Partition assigned; resuming at the stored offset (read again from `from`, applied records skipped).");
                        }
                        Ok(None) => {
                            tracing::info!(%topic, partition, "Partition assigned; it has no stored offset.")
                        }
                        Err(error) => {
                            tracing::error!(%topic, partition, %error, "Reading the stored offset failed.")
                        }
                    }
                }
                let result = if cooperative {
                    consumer.incremental_assign(tpl)
                } else {
                    consumer.assign(tpl)
                };
                self.count_assigned(consumer);
                result
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                self.note_reassigned(tpl);
                tracing::info!(partitions = tpl.count(), "Partitions revoked.");
                let mut states = self.states.lock().unwrap_or_else(|p| p.into_inner());
                for element in tpl.elements() {
                    states.remove(&(element.topic().to_owned(), element.partition()));
                }
                drop(states);
                let result = if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                };
                self.count_assigned(consumer);
                result
            }
            other => {
                tracing::error!(?other, "Rebalance reported an error.");
                consumer.unassign()
            }
        };
        if let Err(error) = result {
            tracing::error!(%error, "Applying the rebalance failed."
            );
        }
    }
}

//! The outputs: what a run queues in the outbox for publishing (enriched events, window
//! outputs, dead letters, checkpoints).

use super::codec::Refusal;
use super::outbox::OutRecord;
use super::processor::{Polled, Processor};
use super::rebalance::Checkpoint;
use super::state::state_key;
use super::{
    HEADER_ALERT, HEADER_EVENT_TIME, HEADER_FIELD, HEADER_LATE_FOR, HEADER_OFFSET,
    HEADER_PARTITION, HEADER_REASON, HEADER_STREAM_TIME, HEADER_TOPIC,
};
use crate::config::OutputFormat;
use crate::event::{FieldError, SimilarEvent};
use crate::store::{NewEvent, StoreOp};
use crate::stream::decode::Rejected;
use crate::stream::pipeline::PipelineError;
use crate::stream::windows::{Emitted, PartitionState, Point};
use crate::tracker::Tracked;

/// Longest text of a refused record kept in the store's own dead letters (the topic gets all of it).
const STORED_RAW_BYTES: usize = 64 * 1024;

impl Processor {
    /// The writes every run commits: its offsets and its dead letters.
    pub(super) fn bookkeeping(
        &self,
        kind: &str,
        run: &[Polled],
        refused: &[(usize, Refusal)],
    ) -> Result<Vec<StoreOp>, PipelineError> {
        let mut ops = self.offsets(run);
        let mut letters = Vec::with_capacity(refused.len());
        for (i, refusal) in refused {
            let record = &run[*i];
            ops.push(self.outbox.push(&self.dead_letter(record, refusal)));
            let raw = String::from_utf8_lossy(
                &record.payload[..record.payload.len().min(STORED_RAW_BYTES)],
            );
            letters.push(Rejected {
                error: FieldError::new(1, refusal.field(), refusal.reason()),
                raw: raw.into_owned(),
            });
            tracing::debug!(topic = %record.topic, partition = record.partition, offset = record.offset, reason = %refusal.reason(), "Record refused.");
        }
        if !letters.is_empty() {
            let source = format!("kafka:{}", run[0].topic);
            self.pipeline.dead_letter(&source, kind, &letters)?;
        }
        Ok(ops)
    }

    fn dead_letter(&self, record: &Polled, refusal: &Refusal) -> OutRecord {
        OutRecord {
            topic: self.settings.dead_letter_topic.clone(),
            partition: None,
            key: record.key.clone(),
            payload: record.payload.clone(),
            headers: vec![
                (HEADER_FIELD.into(), refusal.field().as_bytes().to_vec()),
                (HEADER_REASON.into(), refusal.reason().into_bytes()),
                (HEADER_TOPIC.into(), record.topic.as_bytes().to_vec()),
                (
                    HEADER_PARTITION.into(),
                    record.partition.to_string().into_bytes(),
                ),
                (HEADER_OFFSET.into(), record.offset.to_string().into_bytes()),
            ],
        }
    }

    pub(super) fn checkpoint(
        &self,
        key: &(String, i32),
        offset: i64,
        state: &PartitionState,
    ) -> StoreOp {
        let checkpoint = Checkpoint {
            offset,
            state: state.clone(),
        };
        self.outbox.push(&OutRecord {
            topic: self.settings.changelog(),
            partition: Some(key.1),
            key: Some(state_key(key)),
            payload: json(&checkpoint),
            headers: Vec::new(),
        })
    }

    /// Queues what the tracker did in a batch: each changed incident's record (merged ones as
    /// redirects), keyed by incident id so a compacted topic keeps each incident's latest, and
    /// each alert, keyed by its incident with its kind in a header.
    pub(super) fn publish_tracked(&self, tracked: &Tracked, ops: &mut Vec<StoreOp>) {
        let s = &self.settings;
        for incident in &tracked.incidents {
            ops.push(self.keyed(&s.incidents_topic, &incident.id, json(incident), Vec::new()));
        }
        for alert in &tracked.alerts {
            let kind = vec![(HEADER_ALERT.into(), alert.kind.as_str().as_bytes().to_vec())];
            ops.push(self.keyed(&s.alerts_topic, &alert.incident_id, json(alert), kind));
        }
    }

    /// Queues what the windows emitted: late records and closed active-fire windows.
    pub(super) fn route(&self, emitted: &Emitted, record: Option<&Polled>, ops: &mut Vec<StoreOp>) {
        if let (Some(late), Some(record)) = (&emitted.late, record) {
            for operator in &late.operators {
                self.pipeline
                    .metrics()
                    .stream_late
                    .with_label_values(&[operator.as_str()])
                    .inc();
            }
            ops.push(self.outbox.push(&OutRecord {
                topic: self.settings.late_topic.clone(),
                partition: None,
                key: record.key.clone(),
                payload: record.payload.clone(),
                headers: vec![
                    (
                        HEADER_LATE_FOR.into(),
                        late.operators.join(",").into_bytes(),
                    ),
                    (
                        HEADER_STREAM_TIME.into(),
                        late.stream_time_ms.to_string().into_bytes(),
                    ),
                    (
                        HEADER_EVENT_TIME.into(),
                        late.event_time_ms.to_string().into_bytes(),
                    ),
                    (HEADER_TOPIC.into(), record.topic.as_bytes().to_vec()),
                    (
                        HEADER_PARTITION.into(),
                        record.partition.to_string().into_bytes(),
                    ),
                    (HEADER_OFFSET.into(), record.offset.to_string().into_bytes()),
                ],
            }));
        }
        let s = &self.settings;
        self.pipeline
            .metrics()
            .stream_windows_closed
            .inc_by(emitted.active_fires.len() as u64);
        for window in &emitted.active_fires {
            ops.push(self.keyed(
                &s.active_fires_topic,
                &window.region,
                json(window),
                Vec::new(),
            ));
        }
    }

    /// The write that queues a window output keyed by `key`, partitioned by the producer.
    fn keyed(
        &self,
        topic: &str,
        key: &str,
        payload: Vec<u8>,
        headers: Vec<(String, Vec<u8>)>,
    ) -> StoreOp {
        self.outbox.push(&OutRecord {
            topic: topic.to_owned(),
            partition: None,
            key: Some(key.as_bytes().to_vec()),
            payload,
            headers,
        })
    }

    /// Queues each new (or revised) event's enriched record, with its nearest earlier events
    /// (a revised event, already indexed, is not its own neighbour).
    pub(super) fn publish_events(
        &self,
        new: &mut [NewEvent],
        ops: &mut Vec<StoreOp>,
    ) -> Result<(), PipelineError> {
        let space = self.pipeline.space();
        let store = self.pipeline.store();
        // The span that made these records: a reader of the enriched topic continues its trace.
        let trace = super::trace::current_headers();
        for event in new.iter() {
            let mut record = event.event.clone();
            if self.settings.similar_k > 0 {
                // An empty index has no neighbours to give: the list is empty, not absent.
                let hits = if space.index.is_empty() {
                    Vec::new()
                } else {
                    space
                        .index
                        .search(&event.vector, self.settings.similar_k + 1)?
                };
                let model = record.model_version.clone().unwrap_or_default();
                let mut similar = Vec::with_capacity(hits.len());
                for hit in hits {
                    if similar.len() == self.settings.similar_k {
                        break;
                    }
                    if let Some(stored) = store.vector(hit.seq, &model)?
                        && stored.event_id != record.event_id
                    {
                        similar.push(SimilarEvent {
                            event_id: stored.event_id,
                            distance: f64::from(hit.distance),
                        });
                    }
                }
                record.similar_events = Some(similar);
            }
            let payload = if self.settings.output_format == OutputFormat::Json {
                serde_json::to_vec(&record).map_err(crate::store::StoreError::from)?
            } else {
                self.schemas.encode_fire_event(&record).map_err(|reason| {
                    PipelineError::Store(crate::store::StoreError::Corrupt {
                        cf: "kafka_output",
                        reason: format!(
                            "event {} does not encode as FireEventV2: {reason}",
                            record.event_id
                        ),
                    })
                })?
            };
            ops.push(self.outbox.push(&OutRecord {
                topic: self.settings.enriched_topic.clone(),
                partition: None,
                key: Some(record.event_id.into_bytes()),
                payload,
                headers: trace.clone(),
            }));
        }
        Ok(())
    }

    /// A tombstone (a null value) under each deleted event's key on the enriched topic: a
    /// compacted copy of it forgets the event, and a reader learns it is gone.
    pub(super) fn publish_tombstones(&self, deleted: &[String], ops: &mut Vec<StoreOp>) {
        for event_id in deleted {
            ops.push(self.outbox.push(&OutRecord {
                topic: self.settings.enriched_topic.clone(),
                partition: None,
                key: Some(event_id.clone().into_bytes()),
                payload: Vec::new(),
                headers: Vec::new(),
            }));
        }
    }

    /// Dead letters for the topic only (the pipeline already stored them as its own).
    pub(super) fn bookkeeping_topic_only(
        &self,
        run: &[Polled],
        refused: &[(usize, Refusal)],
    ) -> Vec<StoreOp> {
        refused
            .iter()
            .filter_map(|(i, refusal)| {
                run.get(*i)
                    .map(|record| self.outbox.push(&self.dead_letter(record, refusal)))
            })
            .collect()
    }
}

/// The JSON form of a window output. They are plain structs of strings and numbers (no maps
/// with non-string keys), which serde_json always serialises.
fn json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

/// What the windows need of an event. VIIRS gives only a class, which counts as its stand-in
/// percentage (`ConfidenceClass::stand_in_percent`, the same the encoder sees).
pub(super) fn point_of(event: &crate::event::FireEventV2) -> Point {
    let fire = &event.fire_characteristics;
    let confidence = f64::from(
        fire.confidence_percent
            .unwrap_or_else(|| fire.confidence.stand_in_percent()),
    );
    Point {
        event_id: event.event_id.clone(),
        time_ms: event.detection_time,
        latitude: event.location.latitude,
        longitude: event.location.longitude,
        frp_mw: fire.frp_mw,
        confidence,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{ConfidenceClass, FireCharacteristics, FireEventV2, Location, SourceInfo};

    fn event(confidence: ConfidenceClass, confidence_percent: Option<f32>) -> FireEventV2 {
        FireEventV2 {
            event_id: "fd_test".to_owned(),
            correlation_id: None,
            source: SourceInfo {
                provider: "NASA FIRMS".to_owned(),
                satellite: "Suomi NPP".to_owned(),
                instrument: "VIIRS".to_owned(),
                version: "2.0NRT".to_owned(),
            },
            detection_time: 1_700_000_000_000,
            location: Location {
                latitude: -33.86,
                longitude: 151.2,
            },
            fire_characteristics: FireCharacteristics {
                brightness_k: 330.0,
                brightness_background_k: 295.0,
                frp_mw: 12.5,
                scan_km: 0.4,
                track_km: 0.4,
                confidence,
                confidence_percent,
                daytime: true,
                detection_type: Some(0),
            },
            weather_status: None,
            weather_conditions: None,
            sensor_summary: None,
            impact_assessment: None,
            ml_predictions: None,
            model_version: None,
            ingested_at: None,
            similar_events: None,
            revision: None,
        }
    }

    #[test]
    fn viirs_classes_count_as_20_55_and_90_percent() {
        for (class, percent) in [
            (ConfidenceClass::Low, 20.0),
            (ConfidenceClass::Nominal, 55.0),
            (ConfidenceClass::High, 90.0),
        ] {
            assert_eq!(point_of(&event(class, None)).confidence, percent, "{class}");
        }
    }

    #[test]
    fn a_modis_percentage_passes_through_whatever_the_class() {
        assert_eq!(
            point_of(&event(ConfidenceClass::High, Some(42.0))),
            Point {
                event_id: "fd_test".to_owned(),
                time_ms: 1_700_000_000_000,
                latitude: -33.86,
                longitude: 151.2,
                frp_mw: 12.5,
                confidence: 42.0,
            }
        );
        assert_eq!(
            point_of(&event(ConfidenceClass::Nominal, Some(85.0))).confidence,
            85.0
        );
    }
}

//! Every column family and every key encoding: the byte layout of the store, in one place.
//! Numbers in keys are big-endian, signed ones with the sign bit flipped, so RocksDB's byte
//! order is the numbers' order (the tests below check each encoding's order).

use super::StoreError;

/// A column family of the store, with its key → value layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// `events`: event id → `FireEventV2` (JSON).
    Events,
    /// `events_by_time`: (inverted detection time, event id) → nothing; newest-first listing.
    EventsByTime,
    /// `id_map`: event id → vector sequence number (u64 BE).
    IdMap,
    /// `vectors`: sequence number → (model version, event id, vector).
    Vectors,
    /// `meta`: counters.
    Meta,
    /// `stations`: station number → `Station`.
    Stations,
    /// `weather`: (station, valid-from time) → `WeatherObservation`: the versioned weather table.
    Weather,
    /// `sensors`: (sensor, time) → `SensorReading`.
    Sensors,
    /// `sensor_cells`: sensor readings by place and time: `0.1° cell (lat, lon) | time | sensor id` → the reading (JSON), for the join with detections.
    SensorCells,
    /// `dead_letters`: sequence → refused record with its reason.
    DeadLetters,
    /// `dead_letter_digests`: digest of a dead letter → its sequence number, so replays do not repeat it.
    DeadLetterDigests,
    /// `mirror_outbox`: events (and models) waiting to be mirrored to Weaviate; key = vector key.
    MirrorOutbox,
    /// `stream_outbox`: outbox sequence → an output record not yet acknowledged by the broker.
    StreamOutbox,
    /// `stream_offsets`: `topic \0 partition` → the next input offset to process (the streaming consumer's own position, written in the same batch as the state and outputs it caused).
    StreamOffsets,
    /// `stream_state`: the streaming operators' state (sessions, windows, stream time).
    StreamState,
    /// `historical_incidents`: CAL FIRE incident id → `HistoricalIncident` (JSON).
    HistoricalIncidents,
    /// `text_vectors`: (sentence-encoder version, document id#text digest) → its text vector (f32 LE), so a restart does not embed every text again.
    TextVectors,
    /// `incidents`: incident id → the tracker's incident record (JSON), redirects of merged ones included.
    Incidents,
    /// `incident_points`: tracked detections by place and time: `cell lat | cell lon | time | event id` → the detection and the incident it joined (JSON), for linking new detections.
    IncidentPoints,
    /// `incident_members`: `incident id \0 time | event id` → the detection (JSON): each incident's members, under the id it had when they joined.
    IncidentMembers,
    /// `alerts`: alert sequence (u64 BE) → the alert (JSON): the log `GET /v1/alerts` and the SSE stream read.
    Alerts,
    /// `revisions`: revision number (u64 BE) → the vector sequence number (u64 BE) of an event
    /// revised in place after it was first stored (a late weather re-join), in order, so an
    /// index snapshot re-reads the vectors that changed after it was written.
    Revisions,
    /// `deleted`: vector sequence number (u64 BE) → the id of the event deleted from it (a row
    /// deleted at its source), so the index, the search index and the Weaviate mirror that held
    /// it drop it too.
    Deleted,
    /// `source_rows`: `source topic \0 row key` → the id of the event a source database's row
    /// (Debezium) is stored as, so the row's update replaces it and its delete removes it.
    SourceRows,
    /// `event_rows`: `event id \0 source topic \0 row key` → nothing: the source rows stored as
    /// each event (two rows holding the same detection are one event), so an event is deleted
    /// only when no row holds it any more.
    EventRows,
    /// `webhook_queue`: `target name \0 alert sequence (u64 BE)` → the delivery's attempts so far and when to try next (JSON): alerts waiting for a webhook receiver's 2xx.
    WebhookQueue,
}

impl Family {
    /// Every column family, opened (and created if missing) with the store.
    pub const ALL: [Family; 26] = [
        Family::Events,
        Family::EventsByTime,
        Family::IdMap,
        Family::Vectors,
        Family::Meta,
        Family::Stations,
        Family::Weather,
        Family::Sensors,
        Family::SensorCells,
        Family::DeadLetters,
        Family::DeadLetterDigests,
        Family::MirrorOutbox,
        Family::StreamOutbox,
        Family::StreamOffsets,
        Family::StreamState,
        Family::HistoricalIncidents,
        Family::TextVectors,
        Family::Incidents,
        Family::IncidentPoints,
        Family::IncidentMembers,
        Family::Alerts,
        Family::WebhookQueue,
        Family::Revisions,
        Family::Deleted,
        Family::SourceRows,
        Family::EventRows,
    ];

    /// The RocksDB name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Events => "events",
            Self::EventsByTime => "events_by_time",
            Self::IdMap => "id_map",
            Self::Vectors => "vectors",
            Self::Meta => "meta",
            Self::Stations => "stations",
            Self::Weather => "weather",
            Self::Sensors => "sensors",
            Self::SensorCells => "sensor_cells",
            Self::DeadLetters => "dead_letters",
            Self::DeadLetterDigests => "dead_letter_digests",
            Self::MirrorOutbox => "mirror_outbox",
            Self::StreamOutbox => "stream_outbox",
            Self::StreamOffsets => "stream_offsets",
            Self::StreamState => "stream_state",
            Self::HistoricalIncidents => "historical_incidents",
            Self::TextVectors => "text_vectors",
            Self::Incidents => "incidents",
            Self::IncidentPoints => "incident_points",
            Self::IncidentMembers => "incident_members",
            Self::Alerts => "alerts",
            Self::WebhookQueue => "webhook_queue",
            Self::Revisions => "revisions",
            Self::Deleted => "deleted",
            Self::SourceRows => "source_rows",
            Self::EventRows => "event_rows",
        }
    }
}

/// Newest-first ordering: the key starts with `u64::MAX - (time + 2^63)` big-endian.
pub(super) fn time_key(detection_ms: i64, event_id: &str) -> Vec<u8> {
    let shifted = (detection_ms as u64) ^ (1 << 63); // order-preserving i64 → u64
    let mut key = (u64::MAX - shifted).to_be_bytes().to_vec();
    key.extend_from_slice(event_id.as_bytes());
    key
}

pub(super) fn decode_time(prefix: &[u8]) -> i64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(prefix);
    ((u64::MAX - u64::from_be_bytes(bytes)) ^ (1 << 63)) as i64
}

/// `(station BE, valid from as order-preserving i64 BE)`: one station's versions sort by time,
/// so "latest at or before t" is one step back from `(station, t)`.
pub(super) fn weather_key(station: u32, valid_from: i64) -> [u8; 12] {
    let mut key = [0u8; 12];
    key[..4].copy_from_slice(&station.to_be_bytes());
    key[4..].copy_from_slice(&((valid_from as u64) ^ (1 << 63)).to_be_bytes());
    key
}

pub(super) fn decode_weather_key(key: &[u8]) -> Result<(u32, i64), StoreError> {
    let key: [u8; 12] = key.try_into().map_err(|_| StoreError::Corrupt {
        cf: Family::Weather.name(),
        reason: format!("key of {} bytes, expected 12", key.len()),
    })?;
    let station = u32::from_be_bytes([key[0], key[1], key[2], key[3]]);
    let mut time = [0u8; 8];
    time.copy_from_slice(&key[4..]);
    Ok((station, (u64::from_be_bytes(time) ^ (1 << 63)) as i64))
}

/// `[model len u16][model][id len u16][id][f32 LE …]`.
/// A vector's key: the event's sequence number, then the model version, so an event holds one
/// vector per model and a scan in key order visits events in sequence order.
pub(super) fn vector_key(seq: u64, model: &str) -> Vec<u8> {
    let mut key = seq.to_be_bytes().to_vec();
    key.extend_from_slice(model.as_bytes());
    key
}

/// `source \0 row key`: a source database row's key within its topic.
pub(super) fn source_row_key(source: &str, row: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(source.len() + 1 + row.len());
    key.extend_from_slice(source.as_bytes());
    key.push(0);
    key.extend_from_slice(row.as_bytes());
    key
}

/// `event id \0 source \0 row key`: a source row under the event it is stored as.
pub(super) fn event_row_key(event_id: &str, source: &str, row: &str) -> Vec<u8> {
    let mut key = event_row_prefix(event_id);
    key.extend_from_slice(source.as_bytes());
    key.push(0);
    key.extend_from_slice(row.as_bytes());
    key
}

/// `event id \0`: the prefix of an event's source rows.
pub(super) fn event_row_prefix(event_id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(event_id.len() + 1);
    key.extend_from_slice(event_id.as_bytes());
    key.push(0);
    key
}

/// `cell lat | cell lon | time | id`, each number order-preserving big-endian: the layout of
/// every place-and-time table (sensor readings, tracked detections).
pub(super) fn cell_time_key(cell: (i32, i32), time_ms: i64, id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(16 + id.len());
    key.extend_from_slice(&((cell.0 as u32) ^ (1 << 31)).to_be_bytes());
    key.extend_from_slice(&((cell.1 as u32) ^ (1 << 31)).to_be_bytes());
    key.extend_from_slice(&((time_ms as u64) ^ (1 << 63)).to_be_bytes());
    key.extend_from_slice(id.as_bytes());
    key
}

/// `incident id \0 time | event id`: one incident's members in time order.
pub(super) fn member_key(incident: &str, time_ms: i64, event_id: &str) -> Vec<u8> {
    let mut key = incident_prefix(incident);
    key.extend_from_slice(&((time_ms as u64) ^ (1 << 63)).to_be_bytes());
    key.extend_from_slice(event_id.as_bytes());
    key
}

/// `incident id \0`: the prefix of one incident's member keys (no id is a prefix of another's).
pub(super) fn incident_prefix(incident: &str) -> Vec<u8> {
    let mut key = incident.as_bytes().to_vec();
    key.push(0);
    key
}

/// `target \0 alert sequence (u64 BE)`: one webhook target's queue in alert order (target names
/// have no NUL, so no target's keys are a prefix of another's).
pub(super) fn webhook_key(target: &str, seq: u64) -> Vec<u8> {
    let mut key = webhook_prefix(target);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// `target \0`: the prefix of one webhook target's queue.
pub(super) fn webhook_prefix(target: &str) -> Vec<u8> {
    let mut key = target.as_bytes().to_vec();
    key.push(0);
    key
}

pub(super) fn text_vector_key(model: &str, doc: &str) -> Vec<u8> {
    let mut key = model.as_bytes().to_vec();
    key.push(0);
    key.extend_from_slice(doc.as_bytes());
    key
}

/// `topic \0 partition (i32 BE)`: one input partition's key in the stream tables.
pub(super) fn partition_key(topic: &str, partition: i32) -> Vec<u8> {
    let mut key = topic.as_bytes().to_vec();
    key.push(0);
    key.extend_from_slice(&partition.to_be_bytes());
    key
}

/// A detections partition's window-state key: `partition \0` then [`partition_key`]. Also the
/// key of the partition's records in the stream changelog topic.
pub fn window_state_key(topic: &str, partition: i32) -> Vec<u8> {
    let mut key = b"partition\0".to_vec();
    key.extend(partition_key(topic, partition));
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_keys_sort_newest_first_and_round_trip() {
        let older = time_key(1_564_620_960_000, "a");
        let newer = time_key(1_564_620_960_001, "a");
        assert!(newer < older);
        assert_eq!(decode_time(&older[..8]), 1_564_620_960_000);
        assert_eq!(decode_time(&time_key(-5, "")[..8]), -5);
    }

    #[test]
    fn weather_keys_sort_by_station_then_time_and_round_trip() {
        let times = [i64::MIN, -1_000, -1, 0, 1, 1_573_480_511_000, i64::MAX];
        let mut keys: Vec<[u8; 12]> = Vec::new();
        for station in [1_u32, 66_062, u32::MAX] {
            for &t in &times {
                let key = weather_key(station, t);
                assert_eq!(decode_weather_key(&key).expect("decodes"), (station, t));
                keys.push(key);
            }
        }
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(sorted, keys, "byte order is (station, time) order");
        assert!(decode_weather_key(&keys[0][..11]).is_err());
    }

    #[test]
    fn time_keys_put_newer_first_over_the_whole_range() {
        let times = [i64::MAX, 1_000, 1, 0, -1, -1_000, i64::MIN];
        let keys: Vec<Vec<u8>> = times.iter().map(|&t| time_key(t, "a")).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(sorted, keys, "newest first");
        for (key, &t) in keys.iter().zip(&times) {
            assert_eq!(decode_time(&key[..8]), t);
        }
        assert!(
            time_key(5, "a") < time_key(5, "b"),
            "ties break by event id"
        );
    }

    #[test]
    fn vector_keys_sort_by_sequence_then_model() {
        let keys = [
            vector_key(1, "event-encoder@1"),
            vector_key(1, "event-encoder@2"),
            vector_key(2, "event-encoder@1"),
            vector_key(256, "a"),
            vector_key(u64::MAX, ""),
        ];
        let mut sorted = keys.to_vec();
        sorted.sort();
        assert_eq!(sorted, keys);
    }

    #[test]
    fn sensor_cell_keys_sort_by_cell_then_time() {
        let keys = [
            cell_time_key((-339, 1512), i64::MIN, "s"),
            cell_time_key((-339, 1512), -1, "s"),
            cell_time_key((-339, 1512), 0, "s"),
            cell_time_key((-339, 1512), 1_564_620_960_000, "a"),
            cell_time_key((-339, 1512), 1_564_620_960_000, "b"),
            cell_time_key((-339, 1513), i64::MIN, "a"),
            cell_time_key((0, -1800), 0, "a"),
            cell_time_key((1, -1800), 0, "a"),
        ];
        let mut sorted = keys.to_vec();
        sorted.sort();
        assert_eq!(sorted, keys);
    }

    #[test]
    fn member_keys_group_by_incident_then_sort_by_time() {
        let keys = [
            member_key("inc_a", i64::MIN, "fd_z"),
            member_key("inc_a", -1, "fd_z"),
            member_key("inc_a", 0, "fd_a"),
            member_key("inc_a", 5, "fd_a"),
            member_key("inc_a", 5, "fd_b"),
            member_key("inc_ab", i64::MIN, "fd_a"),
        ];
        let mut sorted = keys.to_vec();
        sorted.sort();
        assert_eq!(sorted, keys);
        assert!(
            keys[..5]
                .iter()
                .all(|k| k.starts_with(&incident_prefix("inc_a")))
        );
        assert!(!keys[5].starts_with(&incident_prefix("inc_a")));
    }

    #[test]
    fn webhook_keys_group_by_target_then_sort_by_sequence() {
        let keys = [
            webhook_key("a", 0),
            webhook_key("a", 1),
            webhook_key("a", 256),
            webhook_key("a", u64::MAX),
            webhook_key("a-b", 0),
            webhook_key("b", 0),
        ];
        let mut sorted = keys.to_vec();
        sorted.sort();
        assert_eq!(sorted, keys);
        assert!(
            keys[..4]
                .iter()
                .all(|k| k.starts_with(&webhook_prefix("a")))
        );
        assert!(!keys[4].starts_with(&webhook_prefix("a")));
    }

    #[test]
    fn partition_keys_are_distinct_and_group_by_topic() {
        let a0 = partition_key("detections", 0);
        let a1 = partition_key("detections", 1);
        let b0 = partition_key("detections-2", 0);
        assert!(a0 < a1);
        assert_ne!(a0, b0);
        assert!(window_state_key("detections", 0).starts_with(b"partition\0"));
        assert_ne!(
            window_state_key("detections", 0),
            window_state_key("detections", 1)
        );
    }

    mod properties {
        use proptest::prelude::*;

        use super::super::*;

        /// Names as the store gets them (ids, topics, models, targets): anything without a NUL.
        fn name() -> impl Strategy<Value = String> {
            "[^\\x00]{0,12}"
        }

        /// A time anywhere in i64, with ties and neighbours likely.
        fn time() -> impl Strategy<Value = i64> {
            prop_oneof![any::<i64>(), -3i64..3, Just(i64::MIN), Just(i64::MAX)]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2_000))]

            // Every key encoding: byte order is the order its scans rely on, for any pair.
            #[test]
            fn time_keys_order_newest_first_then_by_id(a in (time(), name()), b in (time(), name())) {
                let order = (std::cmp::Reverse(a.0), a.1.as_bytes()).cmp(&(std::cmp::Reverse(b.0), b.1.as_bytes()));
                prop_assert_eq!(time_key(a.0, &a.1).cmp(&time_key(b.0, &b.1)), order);
                prop_assert_eq!(decode_time(&time_key(a.0, &a.1)[..8]), a.0);
            }

            #[test]
            fn weather_keys_order_by_station_then_time(a in (any::<u32>(), time()), b in (any::<u32>(), time())) {
                prop_assert_eq!(weather_key(a.0, a.1).cmp(&weather_key(b.0, b.1)), a.cmp(&b));
                prop_assert_eq!(decode_weather_key(&weather_key(a.0, a.1)).ok(), Some(a));
            }

            #[test]
            fn vector_keys_order_by_sequence_then_model(a in (any::<u64>(), name()), b in (any::<u64>(), name())) {
                let order = (a.0, a.1.as_bytes()).cmp(&(b.0, b.1.as_bytes()));
                prop_assert_eq!(vector_key(a.0, &a.1).cmp(&vector_key(b.0, &b.1)), order);
            }

            #[test]
            fn cell_keys_order_by_cell_then_time_then_id(
                a in ((any::<i32>(), any::<i32>()), time(), name()),
                b in ((any::<i32>(), any::<i32>()), time(), name()),
            ) {
                let order = (a.0, a.1, a.2.as_bytes()).cmp(&(b.0, b.1, b.2.as_bytes()));
                prop_assert_eq!(cell_time_key(a.0, a.1, &a.2).cmp(&cell_time_key(b.0, b.1, &b.2)), order);
            }

            #[test]
            fn member_keys_order_by_incident_then_time_and_stay_under_their_prefix(
                a in (name(), time(), name()),
                b in (name(), time(), name()),
            ) {
                let order = (a.0.as_bytes(), a.1, a.2.as_bytes()).cmp(&(b.0.as_bytes(), b.1, b.2.as_bytes()));
                let (ka, kb) = (member_key(&a.0, a.1, &a.2), member_key(&b.0, b.1, &b.2));
                prop_assert_eq!(ka.cmp(&kb), order);
                prop_assert_eq!(kb.starts_with(&incident_prefix(&a.0)), a.0 == b.0);
            }

            #[test]
            fn webhook_keys_order_by_target_then_sequence_and_stay_under_their_prefix(
                a in (name(), any::<u64>()),
                b in (name(), any::<u64>()),
            ) {
                let order = (a.0.as_bytes(), a.1).cmp(&(b.0.as_bytes(), b.1));
                prop_assert_eq!(webhook_key(&a.0, a.1).cmp(&webhook_key(&b.0, b.1)), order);
                prop_assert_eq!(webhook_key(&b.0, b.1).starts_with(&webhook_prefix(&a.0)), a.0 == b.0);
            }

            #[test]
            fn text_vector_keys_order_by_model_then_document(a in (name(), name()), b in (name(), name())) {
                let order = (a.0.as_bytes(), a.1.as_bytes()).cmp(&(b.0.as_bytes(), b.1.as_bytes()));
                prop_assert_eq!(text_vector_key(&a.0, &a.1).cmp(&text_vector_key(&b.0, &b.1)), order);
            }

            #[test]
            fn partition_keys_order_by_topic_then_partition(a in (name(), 0i32..=i32::MAX), b in (name(), 0i32..=i32::MAX)) {
                let order = (a.0.as_bytes(), a.1).cmp(&(b.0.as_bytes(), b.1));
                prop_assert_eq!(partition_key(&a.0, a.1).cmp(&partition_key(&b.0, b.1)), order);
                prop_assert_eq!(window_state_key(&a.0, a.1) == window_state_key(&b.0, b.1), a == b);
            }
        }
    }

    #[test]
    fn every_family_has_its_own_name() {
        let names: std::collections::HashSet<&str> = Family::ALL.iter().map(|f| f.name()).collect();
        assert_eq!(names.len(), Family::ALL.len());
    }
}

//! Debezium's documented shapes of one PostgreSQL row, decoded.

use serde_json::{Value as Json, json};

use super::*;
use crate::event::FireDetection;
use crate::event::{Instrument, SensorReading, WeatherObservation};

/// The row schema Debezium's PostgreSQL connector writes for a `fire_detections` table with a
/// `date` day, a `numeric(6,2)` brightness and FIRMS's other columns.
fn row_schema(name: &str) -> Json {
    json!({
        "type": "struct", "optional": true, "name": "pg.public.fire_detections.Value", "field": name,
        "fields": [
            {"type": "int32", "optional": false, "default": 0, "field": "id"},
            {"type": "double", "optional": false, "field": "latitude"},
            {"type": "double", "optional": false, "field": "longitude"},
            {"type": "bytes", "optional": true, "name": "org.apache.kafka.connect.data.Decimal",
             "version": 1, "parameters": {"scale": "2", "connect.decimal.precision": "6"}, "field": "brightness"},
            {"type": "float", "optional": true, "field": "scan"},
            {"type": "float", "optional": true, "field": "track"},
            {"type": "int32", "optional": false, "name": "io.debezium.time.Date", "version": 1, "field": "acq_date"},
            {"type": "string", "optional": false, "field": "acq_time"},
            {"type": "string", "optional": false, "field": "satellite"},
            {"type": "string", "optional": true, "field": "confidence"},
            {"type": "string", "optional": true, "field": "version"},
            {"type": "double", "optional": true, "field": "bright_t31"},
            {"type": "double", "optional": true, "field": "frp"},
            {"type": "string", "optional": true, "field": "daynight"},
            {"type": "int64", "optional": true, "name": "io.debezium.time.MicroTimestamp", "version": 1, "field": "updated_at"}
        ]
    })
}

/// `30.943,-88.017,303.2,1,1,2020-09-30,0405,T,54,6.0NRT,286.7,7.7,N` of the MODIS 24 h file,
/// as the row Debezium reads: brightness 303.20 is the unscaled 30320 (0x7670).
fn row(frp: f64) -> Json {
    json!({
        "id": 7, "latitude": 30.943, "longitude": -88.017, "brightness": "dnA=",
        "scan": 1.0, "track": 1.0, "acq_date": 18_535, "acq_time": "0405", "satellite": "T",
        "confidence": "54", "version": "6.0NRT", "bright_t31": 286.7, "frp": frp, "daynight": "N",
        "updated_at": 1_601_500_000_000_000_i64
    })
}

fn envelope(op: &str, before: Json, after: Json) -> Json {
    json!({
        "before": before, "after": after,
        "source": {"version": "2.7.3.Final", "connector": "postgresql", "name": "pg",
                   "ts_ms": 1_601_500_000_000_i64, "db": "fires", "schema": "public",
                   "table": "fire_detections", "txId": 771, "lsn": 24_023_128},
        "op": op, "ts_ms": 1_601_500_000_100_i64
    })
}

fn with_schema(payload: Json) -> Vec<u8> {
    let schema = json!({
        "type": "struct", "name": "pg.public.fire_detections.Envelope", "optional": false,
        "fields": [row_schema("before"), row_schema("after"),
                   {"type": "struct", "field": "source", "fields": []},
                   {"type": "string", "optional": false, "field": "op"},
                   {"type": "int64", "optional": true, "field": "ts_ms"}]
    });
    serde_json::to_vec(&json!({"schema": schema, "payload": payload})).expect("json")
}

fn key() -> Vec<u8> {
    serde_json::to_vec(&json!({
        "schema": {"type": "struct", "name": "pg.public.fire_detections.Key", "optional": false,
                   "fields": [{"type": "int32", "optional": false, "field": "id"}]},
        "payload": {"id": 7}
    }))
    .expect("json")
}

fn detection(change: Change<FireDetection>) -> (String, FireDetection) {
    match change {
        Change::Upsert { key, item } => (key, item),
        Change::Delete { key } => panic!("a delete of {key}, not an upsert"),
    }
}

#[test]
fn an_insert_with_its_schema_reads_as_the_firms_row_it_holds() {
    let value = with_schema(envelope("c", Json::Null, row(7.7)));
    let change = decode::<FireDetection>(Some(&key()), &value, &DebeziumMapping::default());
    let (key, d) = detection(change.expect("decoded"));
    assert_eq!(key, r#"{"id":7}"#);
    let csv = "latitude,longitude,brightness,scan,track,acq_date,acq_time,satellite,confidence,version,bright_t31,frp,daynight\n\
               30.943,-88.017,303.2,1,1,2020-09-30,0405,T,54,6.0NRT,286.7,7.7,N\n";
    let mut from_file = Vec::new();
    let mut decoder = crate::decode::CsvStream::<crate::decode::FirmsDecoder>::default();
    crate::decode::StreamDecoder::push(&mut decoder, csv.as_bytes(), &mut from_file).expect("csv");
    crate::decode::StreamDecoder::finish(&mut decoder, &mut from_file).expect("csv");
    let (_, expected) = from_file.remove(0).expect("the file's row decodes");
    assert_eq!(d, expected);
    assert_eq!(d.instrument, Instrument::Modis);
    assert_eq!(d.event_id(), expected.event_id());
}

#[test]
fn every_shape_of_one_update_gives_the_same_change() {
    let mapping = DebeziumMapping::default();
    let full = with_schema(envelope("u", row(5.0), row(9.5)));
    let bare = serde_json::to_vec(&envelope("u", row(5.0), row(9.5))).expect("json");
    // ExtractNewRecordState: the row alone, with the metadata it adds.
    let mut unwrapped = row(9.5);
    unwrapped["__op"] = json!("u");
    unwrapped["__deleted"] = json!("false");
    unwrapped["__source_ts_ms"] = json!(1_601_500_000_000_i64);
    let mut unwrapped_schema = row_schema("");
    unwrapped_schema["fields"]
        .as_array_mut()
        .expect("fields")
        .push(json!({"type": "string", "optional": true, "field": "__deleted"}));
    let unwrapped_with_schema =
        serde_json::to_vec(&json!({"schema": unwrapped_schema, "payload": unwrapped.clone()}))
            .expect("json");
    let unwrapped = serde_json::to_vec(&unwrapped).expect("json");
    let first = detection(decode(Some(&key()), &full, &mapping).expect("full"));
    assert_eq!(first.1.frp_mw, 9.5);
    for (name, value) in [
        ("bare envelope", bare),
        ("unwrapped", unwrapped),
        ("unwrapped with schema", unwrapped_with_schema),
    ] {
        // Without the schema the brightness is base64 text, which no number is: the schema
        // is what says how a Decimal is encoded.
        let change = decode::<FireDetection>(Some(&key()), &value, &mapping);
        if name == "unwrapped with schema" {
            assert_eq!(detection(change.expect(name)), first, "{name}");
        } else {
            let refusal = change.expect_err(name);
            assert_eq!(refusal.field(), "brightness", "{name}");
            assert!(
                refusal.reason().contains("dnA="),
                "{name}: {}",
                refusal.reason()
            );
        }
    }
}

#[test]
fn deletes_come_as_an_envelope_a_rewritten_row_or_a_tombstone() {
    let mapping = DebeziumMapping::default();
    // REPLICA IDENTITY DEFAULT: the before image holds the key columns only.
    let before = json!({"id": 7, "latitude": 0.0, "longitude": 0.0, "acq_date": 0, "acq_time": "", "satellite": ""});
    let full = with_schema(envelope("d", before, Json::Null));
    let deleted = json!({"id": 7, "__deleted": "true"});
    /// (name, record key, value)
    type Case = (&'static str, Option<Vec<u8>>, Vec<u8>);
    let cases: [Case; 4] = [
        ("envelope", Some(key()), full.clone()),
        ("envelope without a key", None, full),
        ("rewrite", None, serde_json::to_vec(&deleted).expect("json")),
        ("tombstone", Some(key()), Vec::new()),
    ];
    for (name, record_key, value) in cases {
        let change = decode::<FireDetection>(record_key.as_deref(), &value, &mapping);
        assert_eq!(
            change.expect(name),
            Change::Delete {
                key: r#"{"id":7}"#.into()
            },
            "{name}"
        );
    }
    let keyless_tombstone = decode::<FireDetection>(None, b"", &mapping).expect_err("no key");
    assert!(keyless_tombstone.reason().contains("tombstone"));
}

#[test]
fn refusals_name_the_field_and_the_reason() {
    let mapping = DebeziumMapping::default();
    // As Debezium writes them: a truncate and a message carry neither `before` nor `after`.
    let truncate = json!({"source": {"connector": "postgresql", "table": "fire_detections"},
        "op": "t", "ts_ms": 1});
    let refusal = decode::<FireDetection>(
        None,
        &serde_json::to_vec(&truncate).expect("json"),
        &mapping,
    )
    .expect_err("truncate");
    assert_eq!(refusal.field(), "op");
    assert!(refusal.reason().contains("truncate"));
    let message = json!({"source": {"connector": "postgresql"}, "op": "m", "ts_ms": 1,
        "message": {"prefix": "audit", "content": "AQID"}});
    let refusal = decode::<FireDetection>(
        Some(&key()),
        &serde_json::to_vec(&message).expect("json"),
        &mapping,
    )
    .expect_err("message");
    assert_eq!(refusal.field(), "op");
    assert!(
        refusal.reason().contains("not a row change"),
        "{}",
        refusal.reason()
    );
    let mut no_scan = row(1.0);
    no_scan.as_object_mut().expect("row").remove("scan");
    let refusal = decode::<FireDetection>(
        Some(&key()),
        &with_schema(envelope("c", Json::Null, no_scan)),
        &mapping,
    )
    .expect_err("no scan");
    assert_eq!(refusal.field(), "scan");
    assert!(
        refusal.reason().contains("no `scan` column"),
        "{}",
        refusal.reason()
    );
    let mut keyless = row(1.0);
    keyless.as_object_mut().expect("row").remove("id");
    let refusal =
        decode::<FireDetection>(None, &serde_json::to_vec(&keyless).expect("json"), &mapping)
            .expect_err("no key");
    assert_eq!(refusal.field(), "id");
    let refusal = decode::<FireDetection>(None, b"{\"op\":", &mapping).expect_err("not json");
    assert!(refusal.reason().contains("not JSON"));
    let refusal = decode::<FireDetection>(None, b"[1,2]", &mapping).expect_err("array");
    assert!(refusal.reason().contains("not a JSON object"));
}

#[test]
fn columns_named_otherwise_are_mapped_and_one_timestamp_stands_for_date_and_time() {
    let mapping = DebeziumMapping {
        key_columns: vec!["detection_id".into()],
        columns: [
            ("acquired_at", "acquired"),
            ("bright_ti4", "brightness_k"),
            ("bright_ti5", "background_k"),
            ("latitude", "lat"),
            ("longitude", "lon"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .collect(),
    };
    let row = json!({
        "detection_id": "v-1", "lat": 48.18656, "lon": -64.9242, "brightness_k": 301.04,
        "scan": 0.42, "track": 0.61, "acquired": "2025-10-29T07:29:00Z", "satellite": "N",
        "confidence": "nominal", "version": "2.0NRT", "background_k": 277.49, "frp": 1.27,
        "daynight": "N"
    });
    let (key, d) = detection(
        decode(None, &serde_json::to_vec(&row).expect("json"), &mapping).expect("decoded"),
    );
    assert_eq!(key, r#"{"detection_id":"v-1"}"#);
    assert_eq!(d.instrument, Instrument::Viirs);
    assert_eq!(d.acquired_at.to_rfc3339(), "2025-10-29T07:29:00+00:00");
    assert_eq!(d.brightness_k, 301.04);
}

#[test]
fn weather_and_sensor_rows_read_through_their_json_form() {
    let mapping = DebeziumMapping::default();
    let weather = json!({
        "id": 3, "station_id": "66037", "station_name": "Sydney Airport", "date": 18_208,
        "max_temp_c": "31.4", "rh_3pm_pct": 22, "rain_mm": null, "wind_dir_3pm": "NW",
        "created_at": "2019-11-08T09:00:00Z"
    });
    let change = decode::<WeatherObservation>(
        None,
        &serde_json::to_vec(&envelope("r", Json::Null, weather)).expect("json"),
        &mapping,
    )
    .expect("weather");
    let Change::Upsert { key, item } = change else {
        panic!("upsert")
    };
    assert_eq!(key, r#"{"id":3}"#);
    assert_eq!(item.station_id, 66037);
    assert_eq!(item.date.to_string(), "2019-11-08");
    assert_eq!(item.max_temp_c, Some(31.4));
    assert_eq!(item.rh_3pm_pct, Some(22.0));
    let sensor = json!({"id": 9, "sensor_id": "s-1", "latitude": -33.9, "longitude": 151.2,
        "observed_at": 1_573_182_000_000_000_i64, "temperature_c": 35.0});
    let change =
        decode::<SensorReading>(None, &serde_json::to_vec(&sensor).expect("json"), &mapping)
            .expect("sensor");
    let Change::Upsert { item, .. } = change else {
        panic!("upsert")
    };
    assert_eq!(item.observed_at.to_rfc3339(), "2019-11-08T03:00:00+00:00");
    let bad = json!({"id": 9, "sensor_id": "s-1", "latitude": 123.0, "longitude": 151.2,
        "observed_at": "2019-11-08T03:00:00Z"});
    let refusal = decode::<SensorReading>(None, &serde_json::to_vec(&bad).expect("json"), &mapping)
        .expect_err("latitude");
    assert_eq!(refusal.field(), "latitude");
}

#[test]
fn the_field_lists_are_the_json_forms_fields() {
    let weather: WeatherObservation = serde_json::from_value(json!({
        "station_id": 1, "station_name": "x", "date": "2020-01-01", "min_temp_c": 1.0,
        "max_temp_c": 1.0, "rain_mm": 1.0, "max_gust_kmh": 1.0, "temp_9am_c": 1.0,
        "rh_9am_pct": 1.0, "wind_9am_kmh": 1.0, "temp_3pm_c": 1.0, "rh_3pm_pct": 1.0,
        "wind_3pm_kmh": 1.0, "wind_dir_3pm": "N", "mslp_3pm_hpa": 1.0,
        "observed_at": "2020-01-01T00:00:00Z"
    }))
    .expect("every field");
    let Json::Object(fields) = serde_json::to_value(&weather).expect("json") else {
        panic!()
    };
    let mut names: Vec<&str> = fields.keys().map(String::as_str).collect();
    let mut listed = WEATHER_FIELDS.to_vec();
    names.sort_unstable();
    listed.sort_unstable();
    assert_eq!(names, listed);
    let sensor: SensorReading = serde_json::from_value(json!({
        "sensor_id": "s", "latitude": 1.0, "longitude": 1.0, "observed_at": "2020-01-01T00:00:00Z",
        "temperature_c": 1.0, "humidity_pct": 1.0, "pm25_ugm3": 1.0, "wind_kmh": 1.0
    }))
    .expect("every field");
    let Json::Object(fields) = serde_json::to_value(&sensor).expect("json") else {
        panic!()
    };
    let mut names: Vec<&str> = fields.keys().map(String::as_str).collect();
    let mut listed = SENSOR_FIELDS.to_vec();
    names.sort_unstable();
    listed.sort_unstable();
    assert_eq!(names, listed);
}

#[test]
fn decimal_keys_are_exact_and_whole_decimals_are_integers() {
    let key = |payload: Json| {
        serde_json::to_vec(&json!({
            "schema": {"type": "struct", "fields": [{"type": "bytes", "field": "id",
                "name": "org.apache.kafka.connect.data.Decimal", "parameters": {"scale": "0"}}]},
            "payload": payload
        }))
        .expect("json")
    };
    // 2^60 and 2^60 + 1: one float, two keys.
    let (a, b) = ("EAAAAAAAAAA=", "EAAAAAAAAAE=");
    let delete = |k: &str| {
        decode::<FireDetection>(
            Some(&key(json!({"id": k}))),
            b"",
            &DebeziumMapping::default(),
        )
        .expect("tombstone")
    };
    assert_eq!(
        delete(a),
        Change::Delete {
            key: r#"{"id":"1152921504606846976"}"#.into()
        }
    );
    assert_ne!(delete(a), delete(b));
    // A numeric(9,0) station number reads as the integer a station id is.
    let weather = json!({
        "schema": {"type": "struct", "fields": [{"type": "bytes", "field": "station_id",
            "name": "org.apache.kafka.connect.data.Decimal", "parameters": {"scale": "0"}}]},
        "payload": {"id": 1, "station_id": "AQH1", "station_name": "Sydney Airport",
                    "date": "2019-11-08"}
    });
    let change = decode::<WeatherObservation>(
        None,
        &serde_json::to_vec(&weather).expect("json"),
        &DebeziumMapping::default(),
    )
    .expect("weather");
    let Change::Upsert { item, .. } = change else {
        panic!("upsert")
    };
    assert_eq!(item.station_id, 66_037);
}

//! The Avro contract: V2 reads V1 data, and every stored record is a valid V2 datum.

use apache_avro::types::{Record, Value};
use apache_avro::{Reader, Schema, Writer, from_avro_datum, from_value, to_avro_datum, to_value};
use firesight::event::{FireEventV2, WeatherStatus};

use super::support::{loaded, repo};

fn schema(name: &str) -> Schema {
    let text = std::fs::read_to_string(repo().join("schemas").join(name)).expect("schema file");
    Schema::parse_str(&text).expect("schema parses")
}

fn nested(schema: &Schema, field: &str) -> Schema {
    let Schema::Record(record) = schema else {
        panic!("record schema")
    };
    record
        .fields
        .iter()
        .find(|f| f.name == field)
        .expect("field")
        .schema
        .clone()
}

#[test]
fn v2_reader_reads_v1_data() {
    let v1 = schema("fire_event_v1.avsc");
    let v2 = schema("fire_event_v2.avsc");
    let (source_schema, location_schema, fire_schema) = (
        nested(&v1, "source"),
        nested(&v1, "location"),
        nested(&v1, "fire_characteristics"),
    );
    let mut source = Record::new(&source_schema).expect("source");
    for (k, v) in [
        ("provider", "NASA FIRMS"),
        ("satellite", "Terra"),
        ("instrument", "MODIS"),
        ("version", "6.3"),
    ] {
        source.put(k, v);
    }
    let mut location = Record::new(&location_schema).expect("location");
    location.put("latitude", -11.807);
    location.put("longitude", 142.0583);
    let mut fire = Record::new(&fire_schema).expect("fire");
    for (k, v) in [
        ("brightness_k", 313.0),
        ("brightness_background_k", 297.3),
        ("frp_mw", 6.6),
        ("scan_km", 1.0),
        ("track_km", 1.0),
    ] {
        fire.put(k, v);
    }
    fire.put("confidence", "nominal");
    fire.put("daytime", true);
    let mut record = Record::new(&v1).expect("v1 record");
    record.put("event_id", "fd_0123");
    record.put("source", source);
    record.put("detection_time", Value::TimestampMillis(1_564_620_960_000));
    record.put("location", location);
    record.put("fire_characteristics", fire);
    record.put("weather_conditions", Value::Union(0, Box::new(Value::Null)));

    let mut writer = Writer::new(&v1, Vec::new());
    writer.append(record).expect("append v1");
    let bytes = writer.into_inner().expect("flush");

    let reader = Reader::with_schema(&v2, &bytes[..]).expect("v2 reader over v1 data");
    let values: Vec<Value> = reader.map(|v| v.expect("resolves")).collect();
    let event: FireEventV2 = from_value(&values[0]).expect("into FireEventV2");
    assert_eq!(event.event_id, "fd_0123");
    assert_eq!(event.detection_time, 1_564_620_960_000);
    assert_eq!(
        event.fire_characteristics.confidence,
        firesight::event::ConfidenceClass::Nominal
    );
    assert_eq!(
        event.fire_characteristics.confidence_percent, None,
        "new nested field takes its default"
    );
    assert_eq!(
        (
            event.correlation_id,
            event.weather_status,
            event.ml_predictions
        ),
        (None, None, None)
    );
}

#[test]
fn stored_events_are_valid_v2_datums_and_round_trip() {
    let v2 = schema("fire_event_v2.avsc");
    let service = &loaded().service;
    let page = service
        .store
        .list_events(i64::MIN, i64::MAX, None, 1000)
        .expect("list");
    let mut matched = 0;
    for event in &page.events {
        let value = to_value(event)
            .expect("to avro value")
            .resolve(&v2)
            .expect("conforms to FireEventV2");
        let bytes = to_avro_datum(&v2, value).expect("encodes");
        let back: FireEventV2 =
            from_value(&from_avro_datum(&v2, &mut &bytes[..], None).expect("decodes"))
                .expect("into struct");
        assert_eq!(&back, event);
        matched += usize::from(event.weather_status == Some(WeatherStatus::Matched));
    }
    assert_eq!(page.events.len(), 1000);
    assert!(
        matched > 0,
        "the sample page should include weather-joined events"
    );
}

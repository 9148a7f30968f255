//! Properties over generated input: the JSON and Avro forms of every input kind decode alike,
//! and every time function holds over the whole of chrono's range.

use chrono::{DateTime, NaiveDate, Utc};
use firesight_core::codec::{FIRE_DETECTION_ID, SENSOR_ID, Schemas, WEATHER_ID};
use firesight_core::event::{FireDetection, SensorReading, WeatherObservation, check_time};
use firesight_core::geo::{local_day, local_solar_time, utc_of_local};
use firesight_core::params::parse_time;
use proptest::prelude::*;
use serde_json::{Value as Json, json};

/// Avro's zig-zag varint.
fn zigzag(n: i64, out: &mut Vec<u8>) {
    let mut v = ((n << 1) ^ (n >> 63)) as u64;
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Encodes `value` as Avro of type `kind`, written from the schema file by hand (as a producer
/// in another language would), not through the crate FireSight decodes with.
fn encode(kind: &Json, value: &Json, out: &mut Vec<u8>) {
    match kind {
        Json::Array(branches) => {
            let null = branches.iter().position(|b| b == "null");
            match (value, null) {
                (Json::Null, Some(i)) => zigzag(i as i64, out),
                _ => {
                    let (i, branch) = branches
                        .iter()
                        .enumerate()
                        .find(|(_, b)| *b != "null")
                        .expect("a non-null branch");
                    zigzag(i as i64, out);
                    encode(branch, value, out);
                }
            }
        }
        Json::Object(o) => match o.get("logicalType").and_then(Json::as_str) {
            Some("timestamp-millis") => {
                let at: DateTime<Utc> = value.as_str().expect("a time").parse().expect("RFC 3339");
                zigzag(at.timestamp_millis(), out);
            }
            Some("date") => {
                let day: NaiveDate = value.as_str().expect("a day").parse().expect("a date");
                let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch");
                zigzag((day - epoch).num_days(), out);
            }
            _ => encode(&o["type"], value, out),
        },
        Json::String(t) => match t.as_str() {
            "double" => out.extend(value.as_f64().expect("a number").to_le_bytes()),
            "float" => out.extend((value.as_f64().expect("a number") as f32).to_le_bytes()),
            "int" | "long" => zigzag(value.as_i64().expect("an integer"), out),
            "boolean" => out.push(u8::from(value.as_bool().expect("a boolean"))),
            "string" => {
                let s = value.as_str().expect("a string");
                zigzag(s.len() as i64, out);
                out.extend(s.as_bytes());
            }
            other => panic!("type {other} is not in the input schemas"),
        },
        other => panic!("schema type {other}"),
    }
}

/// `record` as a Confluent-framed Avro datum of the bundled schema `file` under `id`.
fn framed(file: &str, id: u32, record: &Json) -> Vec<u8> {
    let path = format!("{}/../../schemas/{file}", env!("CARGO_MANIFEST_DIR"));
    let schema: Json =
        serde_json::from_str(&std::fs::read_to_string(path).expect("schema")).expect("schema JSON");
    let mut out = vec![0];
    out.extend(id.to_be_bytes());
    for field in schema["fields"].as_array().expect("fields") {
        let name = field["name"].as_str().expect("name");
        encode(
            &field["type"],
            record.get(name).unwrap_or(&Json::Null),
            &mut out,
        );
    }
    out
}

/// Both forms decode to the same record, or are refused naming the same field for the same
/// reason.
fn same_either_way<T>(file: &str, id: u32, record: &Json) -> Result<(), TestCaseError>
where
    T: firesight_core::codec::Input + PartialEq + std::fmt::Debug,
{
    let schemas = Schemas::bundled().expect("bundled schemas");
    let as_json = schemas.decode::<T>(record.to_string().as_bytes());
    let as_avro = schemas.decode::<T>(&framed(file, id, record));
    match (as_json, as_avro) {
        (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
        (Err(a), Err(b)) => {
            prop_assert_eq!(a.field(), b.field());
            prop_assert_eq!(a.reason(), b.reason());
        }
        (a, b) => prop_assert!(false, "JSON {a:?} but Avro {b:?}"),
    }
    Ok(())
}

/// An instant, mostly in the record's span, sometimes before it or in the future.
fn instant() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => 946_684_800_000i64..1_800_000_000_000,
        1 => -10_000_000_000_000i64..946_684_800_000,
        1 => 1_800_000_000_000i64..100_000_000_000_000,
    ]
    .prop_map(|ms| {
        DateTime::from_timestamp_millis(ms)
            .expect("in range")
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    })
}

/// A value, mostly in `[lo, hi]`, sometimes out of it.
fn around(lo: f64, hi: f64) -> impl Strategy<Value = f64> {
    let span = hi - lo;
    prop_oneof![9 => lo..=hi, 1 => (lo - span)..(hi + span)]
}

fn maybe(s: impl Strategy<Value = f64>) -> impl Strategy<Value = Option<f64>> {
    prop::option::weighted(0.8, s)
}

fn detection() -> impl Strategy<Value = Json> {
    (
        (around(-90.0, 90.0), around(-180.0, 180.0), instant()),
        (
            prop::sample::select(vec![
                "Terra",
                "Aqua",
                "Suomi NPP",
                "NOAA-20",
                "NOAA-21",
                "GOES-16",
            ]),
            prop::sample::select(vec!["MODIS", "VIIRS"]),
        ),
        (
            around(200.0, 510.0),
            around(200.0, 400.0),
            around(0.3, 5.0),
            around(0.3, 2.5),
        ),
        (
            prop::option::weighted(0.7, 0u8..=100),
            prop::sample::select(vec!["low", "nominal", "high"]),
            around(0.0, 5_000.0),
            any::<bool>(),
            prop::sample::select(vec!["6.3", "6.1NRT", "2.0NRT", "2"]),
            prop::option::of(0u8..=3),
        ),
    )
        .prop_map(
            |((lat, lon, at), (satellite, instrument), (b, b31, scan, track), rest)| {
                let (percent, confidence, frp, daytime, version, kind) = rest;
                json!({"latitude": lat, "longitude": lon, "acquired_at": at, "satellite": satellite,
                   "instrument": instrument, "brightness_k": b, "brightness_background_k": b31,
                   "scan_km": scan, "track_km": track, "confidence_percent": percent,
                   "confidence": confidence, "frp_mw": frp, "daytime": daytime,
                   "version": version, "detection_type": kind})
            },
        )
}

fn weather() -> impl Strategy<Value = Json> {
    (
        (
            1u32..200_000,
            prop::sample::select(vec!["KALUMBURU", "SYDNEY (OBSERVATORY HILL)", "Ü"]),
        ),
        (-15_000i64..30_000).prop_map(|days| {
            (NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch") + chrono::Duration::days(days))
                .to_string()
        }),
        (
            maybe(around(-60.0, 60.0)),
            maybe(around(-60.0, 60.0)),
            maybe(around(0.0, 1_000.0)),
        ),
        (
            maybe(around(0.0, 500.0)),
            maybe(around(0.0, 100.0)),
            maybe(around(800.0, 1_100.0)),
        ),
        prop::option::of(prop::sample::select(vec!["N", "SSE", "CALM"])),
        prop::option::weighted(0.3, instant()),
    )
        .prop_map(
            |((station, name), date, (min, max, rain), (wind, rh, mslp), dir, at)| {
                json!({"station_id": station, "station_name": name, "date": date,
                   "min_temp_c": min, "max_temp_c": max, "rain_mm": rain, "max_gust_kmh": wind,
                   "temp_9am_c": min, "rh_9am_pct": rh, "wind_9am_kmh": wind,
                   "temp_3pm_c": max, "rh_3pm_pct": rh, "wind_3pm_kmh": wind,
                   "wind_dir_3pm": dir, "mslp_3pm_hpa": mslp, "observed_at": at})
            },
        )
}

fn sensor() -> impl Strategy<Value = Json> {
    (
        prop::sample::select(vec!["s-1", "bushfire-cam-07", " "]),
        (around(-90.0, 90.0), around(-180.0, 180.0), instant()),
        (maybe(around(-60.0, 90.0)), maybe(around(0.0, 100.0))),
        (maybe(around(0.0, 10_000.0)), maybe(around(0.0, 500.0))),
    )
        .prop_map(|(id, (lat, lon, at), (t, rh), (pm, wind))| {
            json!({"sensor_id": id, "latitude": lat, "longitude": lon, "observed_at": at,
                   "temperature_c": t, "humidity_pct": rh, "pm25_ugm3": pm, "wind_kmh": wind})
        })
}

/// Any instant chrono can hold, the ends included.
fn any_instant() -> impl Strategy<Value = DateTime<Utc>> {
    let (lo, hi) = (
        DateTime::<Utc>::MIN_UTC.timestamp_millis(),
        DateTime::<Utc>::MAX_UTC.timestamp_millis(),
    );
    prop_oneof![
        lo..=hi,
        Just(lo),
        Just(hi),
        (lo..lo + 100_000_000),
        (hi - 100_000_000..=hi),
        946_684_800_000i64..1_800_000_000_000,
    ]
    .prop_map(|ms| DateTime::from_timestamp_millis(ms).expect("in range"))
}

/// Any longitude, nonsense included (time functions clamp what they are given).
fn any_longitude() -> impl Strategy<Value = f64> {
    prop_oneof![
        -180.0..=180.0,
        any::<f64>(),
        Just(f64::NAN),
        Just(f64::INFINITY)
    ]
}

proptest! {
    // A failure prints its minimal input; an integration test has no lib.rs to keep it beside.
    #![proptest_config(ProptestConfig { cases: 1_000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn a_detection_decodes_alike_from_json_and_from_avro(record in detection()) {
        same_either_way::<FireDetection>("fire_detection_v1.avsc", FIRE_DETECTION_ID, &record)?;
    }

    #[test]
    fn a_weather_observation_decodes_alike_from_json_and_from_avro(record in weather()) {
        same_either_way::<WeatherObservation>("weather_observation_v2.avsc", WEATHER_ID, &record)?;
    }

    #[test]
    fn a_sensor_reading_decodes_alike_from_json_and_from_avro(record in sensor()) {
        same_either_way::<SensorReading>("sensor_reading_v1.avsc", SENSOR_ID, &record)?;
    }

    #[test]
    fn solar_time_holds_over_the_whole_range(at in any_instant(), lon in any_longitude(), hour in 0u32..30) {
        let local = local_solar_time(at, lon);
        let day = local_day(at, lon);
        prop_assert_eq!(local.date(), day);
        // Within 12 h of UTC (the clamp to ±180°), or unshifted at the very ends.
        prop_assert!((local - at.naive_utc()).num_seconds().abs() <= 12 * 3600);
        let back = utc_of_local(day, hour, lon);
        prop_assert!((back - at).num_hours().abs() <= 24 + 24 + 12, "{at} {lon} {back}");
    }

    #[test]
    fn event_times_are_accepted_exactly_within_the_bounds(at in any_instant()) {
        let ms = at.timestamp_millis();
        let inside = ms >= firesight_core::event::EARLIEST_EVENT_MS
            && ms <= Utc::now().timestamp_millis() + 3_600_000 - 1_000;
        let outside = ms < firesight_core::event::EARLIEST_EVENT_MS
            || ms > Utc::now().timestamp_millis() + 3_600_000 + 1_000;
        let verdict = check_time(1, "acquired_at", at);
        if inside {
            prop_assert!(verdict.is_ok());
        }
        if outside {
            prop_assert_eq!(verdict.map_err(|e| e.field), Err("acquired_at".to_owned()));
        }
    }

    #[test]
    fn query_times_read_back_what_was_written_or_refuse(at in any_instant(), end_of_day in any::<bool>()) {
        let text = at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        match parse_time("from", &text, end_of_day) {
            Ok(read) => prop_assert_eq!(read, at),
            Err(e) => prop_assert_eq!(e.field, "from"),
        }
        let day = at.date_naive().to_string();
        if let Ok(read) = parse_time("to", &day, end_of_day) {
            prop_assert_eq!(read.date_naive(), at.date_naive());
        }
    }
}

//! A source row as an input: a detection through the FIRMS decoder (so a table holding any
//! FIRMS product's columns reads as that product's file does), a weather observation or a
//! sensor reading through their JSON form. Columns are renamed by the mapping first; columns
//! the kind does not know are ignored (a table has its own `id`, audit columns, …).

use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{Map, Number, Value as Json};

use super::DebeziumMapping;
use super::values::{day_json, epoch_by_size};
use crate::decode::{FirmsDecoder, JsonEvent, RecordDecoder, json_error};
use crate::event::{FieldError, FireDetection, SensorReading, WeatherObservation};

/// An input kind a source row can be.
pub trait CdcRow: Sized {
    /// The row (plain JSON values, the table's column names) as this kind.
    fn from_row(row: Map<String, Json>, mapping: &DebeziumMapping) -> Result<Self, FieldError>;
}

/// The fields of a weather observation's JSON form.
pub const WEATHER_FIELDS: [&str; 16] = [
    "station_id",
    "station_name",
    "date",
    "min_temp_c",
    "max_temp_c",
    "rain_mm",
    "max_gust_kmh",
    "temp_9am_c",
    "rh_9am_pct",
    "wind_9am_kmh",
    "temp_3pm_c",
    "rh_3pm_pct",
    "wind_3pm_kmh",
    "wind_dir_3pm",
    "mslp_3pm_hpa",
    "observed_at",
];

/// The fields of a sensor reading's JSON form.
pub const SENSOR_FIELDS: [&str; 8] = [
    "sensor_id",
    "latitude",
    "longitude",
    "observed_at",
    "temperature_c",
    "humidity_pct",
    "pm25_ugm3",
    "wind_kmh",
];

/// The row with the mapping's columns under FireSight's names.
fn renamed(mut row: Map<String, Json>, mapping: &DebeziumMapping) -> Map<String, Json> {
    for (ours, theirs) in &mapping.columns {
        if ours != theirs
            && let Some(value) = row.remove(theirs)
        {
            row.insert(ours.clone(), value);
        }
    }
    row
}

/// A timestamp column's value as RFC 3339: already so (a `timestamptz`), a SQL
/// `YYYY-MM-DD HH:MM[:SS]` taken as UTC, or an epoch count read by its size.
fn instant(name: &str, value: &Json) -> Result<DateTime<Utc>, FieldError> {
    let bad = || FieldError::new(1, name, format!("{value} is not a timestamp"));
    let text = match value {
        Json::Number(n) => match n.as_i64().and_then(epoch_by_size) {
            Some(Json::String(text)) => text,
            _ => return Err(bad()),
        },
        Json::String(text) => text.clone(),
        _ => return Err(bad()),
    };
    if let Ok(at) = DateTime::parse_from_rfc3339(&text) {
        return Ok(at.with_timezone(&Utc));
    }
    [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
    ]
    .iter()
    .find_map(|format| NaiveDateTime::parse_from_str(&text, format).ok())
    .map(|naive| naive.and_utc())
    .ok_or_else(bad)
}

/// A cell of the FIRMS record: text as it is, a number as written, null as empty.
fn cell(value: &Json) -> String {
    match value {
        Json::Null => String::new(),
        Json::String(text) => text.clone(),
        other => other.to_string(),
    }
}

impl CdcRow for FireDetection {
    fn from_row(row: Map<String, Json>, mapping: &DebeziumMapping) -> Result<Self, FieldError> {
        let mut row = renamed(row, mapping);
        if let Some(at) = row.remove("acquired_at").filter(|v| !v.is_null())
            && !row.contains_key("acq_date")
        {
            let at = instant("acquired_at", &at)?;
            row.insert(
                "acq_date".into(),
                Json::String(at.format("%Y-%m-%d").to_string()),
            );
            row.insert(
                "acq_time".into(),
                Json::String(at.format("%H%M").to_string()),
            );
        }
        // A `date` column without its schema arrives as days since the epoch.
        if let Some(days) = row.get("acq_date").and_then(Json::as_i64) {
            let text = day_json(days).ok_or_else(|| {
                FieldError::new(1, "acq_date", format!("{days} days is not a date"))
            })?;
            row.insert("acq_date".into(), text);
        }
        // A `time` column (`HH:MM:SS`) to FIRMS's minutes.
        if let Some(Json::String(time)) = row.get("acq_time")
            && time.len() == 8
            && time.as_bytes()[5] == b':'
        {
            let minutes = time[..5].to_owned();
            row.insert("acq_time".into(), Json::String(minutes));
        }
        let names: Vec<&str> = row.keys().map(String::as_str).collect();
        let header = csv::StringRecord::from(names);
        let decoder = FirmsDecoder::from_header(&header).map_err(|mut error| {
            if error.reason.contains("missing from the header") {
                error.reason = format!(
                    "the row has no `{}` column (name the table's column in kafka.debezium's detection columns)",
                    error.field
                );
            }
            error
        })?;
        let record = csv::StringRecord::from(row.values().map(cell).collect::<Vec<_>>());
        decoder.decode(1, &record)
    }
}

/// The row's fields of a JSON-form kind: only `fields`, numbers given as text made numbers (a
/// `numeric` column under `decimal.handling.mode = string`), timestamps as RFC 3339.
fn json_form<T: JsonEvent>(
    row: Map<String, Json>,
    mapping: &DebeziumMapping,
    fields: &[&str],
    text_fields: &[&str],
) -> Result<T, FieldError> {
    let row = renamed(row, mapping);
    let mut object = Map::with_capacity(fields.len());
    for (name, value) in row {
        if !fields.contains(&name.as_str()) {
            continue;
        }
        let value = match (name.as_str(), value) {
            ("observed_at", value) if !value.is_null() => {
                Json::String(instant("observed_at", &value)?.to_rfc3339())
            }
            ("date", Json::Number(days)) => days
                .as_i64()
                .and_then(day_json)
                .ok_or_else(|| FieldError::new(1, "date", format!("{days} is not a day count")))?,
            ("date", Json::String(text)) if text.len() > 10 => Json::String(
                instant("date", &Json::String(text))?
                    .format("%Y-%m-%d")
                    .to_string(),
            ),
            (name, Json::String(text)) if !text_fields.contains(&name) => text
                .trim()
                .parse::<f64>()
                .ok()
                .and_then(Number::from_f64)
                .map_or(Json::String(text), |n| {
                    // Whole numbers stay integers (`station_id` is one).
                    match n.as_f64() {
                        Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Json::from(f as i64),
                        _ => Json::Number(n),
                    }
                }),
            (_, value) => value,
        };
        object.insert(name, value);
    }
    let item: T = serde_json::from_value(Json::Object(object)).map_err(|e| json_error(1, &e))?;
    item.check(1)?;
    Ok(item)
}

impl CdcRow for WeatherObservation {
    fn from_row(row: Map<String, Json>, mapping: &DebeziumMapping) -> Result<Self, FieldError> {
        json_form(
            row,
            mapping,
            &WEATHER_FIELDS,
            &["station_name", "date", "wind_dir_3pm", "observed_at"],
        )
    }
}

impl CdcRow for SensorReading {
    fn from_row(row: Map<String, Json>, mapping: &DebeziumMapping) -> Result<Self, FieldError> {
        json_form(row, mapping, &SENSOR_FIELDS, &["sensor_id", "observed_at"])
    }
}

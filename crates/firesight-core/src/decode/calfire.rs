//! CAL FIRE incident exports: the older `California_Fire_Incidents.csv` (with free text) and
//! the newer `mapdataall` export. Both carry the incident's UUID, so loading both merges them.

use chrono::{DateTime, NaiveDate};

use crate::event::{FieldError, HistoricalIncident};

/// True when a CSV header line is one of the two CAL FIRE exports.
pub fn is_calfire_header(line: &str) -> bool {
    let line = line.to_ascii_lowercase();
    (line.contains("acresburned") && line.contains("uniqueid"))
        || (line.contains("incident_name") && line.contains("incident_id"))
}

/// Decodes a whole export. Records that cannot be used come back with the field and reason and
/// their original text; the rest are returned in file order.
pub fn decode(bytes: &[u8]) -> (Vec<HistoricalIncident>, Vec<(FieldError, String)>) {
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(bytes);
    let mut rejected = Vec::new();
    let headers = match reader.headers() {
        Ok(h) => h
            .iter()
            .map(|c| c.trim_start_matches('\u{feff}').trim().to_owned())
            .collect::<Vec<_>>(),
        Err(e) => {
            rejected.push((FieldError::new(1, "header", e.to_string()), String::new()));
            return (Vec::new(), rejected);
        }
    };
    let newer = headers.iter().any(|h| h == "incident_id");
    let mut out = Vec::new();
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                rejected.push((
                    FieldError::new(line, "record", e.to_string()),
                    String::new(),
                ));
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line());
        let raw = record.iter().collect::<Vec<_>>().join(",");
        let get = |name: &str| {
            headers
                .iter()
                .position(|h| h == name)
                .and_then(|i| record.get(i))
                .map(str::trim)
                .unwrap_or("")
        };
        let result = if newer {
            newer_record(&get)
        } else {
            older_record(&get)
        };
        match result {
            Ok(incident) => out.push(incident),
            Err((field, reason)) => rejected.push((FieldError::new(line, field, reason), raw)),
        }
    }
    (out, rejected)
}

type Refusal = (&'static str, String);

fn older_record<'a>(get: &impl Fn(&str) -> &'a str) -> Result<HistoricalIncident, Refusal> {
    let keywords = get("SearchKeywords");
    let description = [get("SearchDescription"), keywords]
        .iter()
        .filter(|s| !s.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
    let (latitude, longitude) = position(get("Latitude"), get("Longitude"));
    Ok(HistoricalIncident {
        id: required("UniqueId", get("UniqueId"))?,
        name: required("Name", get("Name"))?,
        counties: split_counties(get("Counties")),
        location: get("Location").to_owned(),
        acres: number("AcresBurned", get("AcresBurned"))?,
        started_ms: time("Started", get("Started"))?,
        extinguished_ms: time("Extinguished", get("Extinguished"))?,
        latitude,
        longitude,
        admin_unit: get("AdminUnit").to_owned(),
        description,
        structures_destroyed: count("StructuresDestroyed", get("StructuresDestroyed"))?,
        fatalities: count("Fatalities", get("Fatalities"))?,
    })
}

fn newer_record<'a>(get: &impl Fn(&str) -> &'a str) -> Result<HistoricalIncident, Refusal> {
    let (latitude, longitude) = position(get("incident_latitude"), get("incident_longitude"));
    Ok(HistoricalIncident {
        id: required("incident_id", get("incident_id"))?,
        name: required("incident_name", get("incident_name"))?,
        counties: split_counties(get("incident_county")),
        location: get("incident_location").to_owned(),
        acres: number("incident_acres_burned", get("incident_acres_burned"))?,
        started_ms: time("incident_date_created", get("incident_date_created"))?,
        extinguished_ms: time(
            "incident_date_extinguished",
            get("incident_date_extinguished"),
        )?,
        latitude,
        longitude,
        admin_unit: get("incident_administrative_unit").to_owned(),
        description: String::new(),
        structures_destroyed: None,
        fatalities: None,
    })
}

fn required(field: &'static str, value: &str) -> Result<String, Refusal> {
    if value.is_empty() {
        Err((field, "is empty".into()))
    } else {
        Ok(value.to_owned())
    }
}

fn number(field: &'static str, value: &str) -> Result<Option<f64>, Refusal> {
    if value.is_empty() {
        return Ok(None);
    }
    match value.replace(',', "").parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(Some(v)),
        _ => Err((field, format!("`{value}` is not a non-negative number"))),
    }
}

fn count(field: &'static str, value: &str) -> Result<Option<u64>, Refusal> {
    Ok(number(field, value)?.map(|v| v as u64))
}

/// RFC 3339 (both exports) or a bare date.
fn time(field: &'static str, value: &str) -> Result<Option<i64>, Refusal> {
    if value.is_empty() {
        return Ok(None);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Ok(Some(t.timestamp_millis()));
    }
    if let Ok(t) = chrono::NaiveDateTime::parse_from_str(value, "%Y-%m-%dT%H:%M:%S") {
        return Ok(Some(t.and_utc().timestamp_millis()));
    }
    if let Ok(d) = NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        return Ok(d
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc().timestamp_millis()));
    }
    Err((field, format!("`{value}` is not an RFC 3339 time")))
}

/// Positions outside California's neighbourhood (0/0 placeholders, swapped signs) are dropped,
/// not refused: the incident's text is still worth finding.
fn position(lat: &str, lon: &str) -> (Option<f64>, Option<f64>) {
    match (lat.parse::<f64>(), lon.parse::<f64>()) {
        (Ok(a), Ok(o)) if (30.0..=45.0).contains(&a) && (-126.0..=-112.0).contains(&o) => {
            (Some(a), Some(o))
        }
        _ => (None, None),
    }
}

fn split_counties(text: &str) -> Vec<String> {
    text.split([',', ';', '/'])
        .map(|c| c.trim().trim_end_matches(" County").trim())
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect()
}

//! Debezium change events: a source database's rows (detections, weather, sensor readings) as
//! they are inserted, updated and deleted, read from the topics Debezium writes.
//!
//! Three shapes of the same event are accepted, told apart by their content:
//! - the full envelope `{before, after, source, op, ts_ms}`, bare (the JSON converter with
//!   `schemas.enable=false`) or inside `{schema, payload}` (with the schema, which says how
//!   each column's value is encoded: a `date` as days, a `timestamp` as micro- or milliseconds,
//!   a `numeric` as a scaled big-endian integer in base64);
//! - the row alone, after the `ExtractNewRecordState` transform (`__deleted: "true"` marks a
//!   delete in its `rewrite` mode; other `__` fields are its metadata), again with or without
//!   the schema;
//! - a tombstone (an empty value): a delete, known only by the record's key.
//!
//! `op` `c` (insert), `r` (snapshot read) and `u` (update) carry the row after the change; `d`
//! deletes. A truncate (`t`) and a logical-decoding message (`m`) are refused with the reason:
//! neither names the rows it affects.
//!
//! Each change names its row by the source table's primary key: the record's key (Debezium
//! keys each record by it), or, when a record has none, the `key_columns` of its row. The key
//! is canonical JSON (sorted columns), so an insert, its updates and its delete agree on it.
//! - `values.rs`: a column's value as plain JSON, by its Connect schema (dates, times,
//!   timestamps, decimals).
//! - `rows.rs`: a row as a detection (through the FIRMS decoder, columns by their FIRMS names),
//!   a weather observation or a sensor reading, with the configured column names.

mod rows;
mod values;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use crate::codec::Refusal;
use crate::event::FieldError;

pub use rows::{CdcRow, SENSOR_FIELDS, WEATHER_FIELDS};

/// How a source table's rows map onto one input kind.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DebeziumMapping {
    /// The primary-key columns, read from the row when a record has no key. Empty: `["id"]`.
    pub key_columns: Vec<String>,
    /// FireSight's name → the table's column, for columns named otherwise. A detection reads
    /// FIRMS column names (`latitude`, `acq_date`, `acq_time`, `bright_ti4`, …) plus
    /// `acquired_at`, one timestamp column instead of `acq_date` and `acq_time`; weather and
    /// sensor readings read the fields of their JSON form. Columns not named stay as they are.
    pub columns: BTreeMap<String, String>,
}

impl DebeziumMapping {
    fn key_columns(&self) -> Vec<String> {
        if self.key_columns.is_empty() {
            vec!["id".to_owned()]
        } else {
            self.key_columns.clone()
        }
    }
}

/// One change to a source row, as an input of kind `T`.
#[derive(Debug, Clone, PartialEq)]
pub enum Change<T> {
    /// The row as it is now (inserted, read by a snapshot, or updated).
    Upsert {
        /// The row's primary key (canonical JSON).
        key: String,
        /// The row as an input.
        item: T,
    },
    /// The row was deleted.
    Delete {
        /// The row's primary key (canonical JSON).
        key: String,
    },
}

impl<T> Change<T> {
    /// The changed row's primary key.
    pub fn key(&self) -> &str {
        match self {
            Self::Upsert { key, .. } | Self::Delete { key } => key,
        }
    }
}

/// Decodes one Debezium record (its Kafka key and value) as a change of kind `T`.
pub fn decode<T: CdcRow>(
    key: Option<&[u8]>,
    value: &[u8],
    mapping: &DebeziumMapping,
) -> Result<Change<T>, Refusal> {
    let record_key = key.and_then(parse_key);
    let tombstone = value.iter().all(u8::is_ascii_whitespace) || value == b"null";
    if tombstone {
        let key = record_key.ok_or_else(|| {
            Refusal::Format(
                "a tombstone (empty value) without a JSON key: no row to delete".to_owned(),
            )
        })?;
        return Ok(Change::Delete { key });
    }
    let json: Json = serde_json::from_slice(value)
        .map_err(|e| Refusal::Format(format!("not a Debezium change event (not JSON: {e})")))?;
    let (payload, schema) = unwrap_schema(json)?;
    let Json::Object(mut payload) = payload else {
        return Err(Refusal::Format(
            "not a Debezium change event: the payload is not a JSON object".to_owned(),
        ));
    };
    let (op, row) = if is_envelope(&payload) {
        let op = match payload.get("op") {
            Some(Json::String(op)) => op.clone(),
            _ => return Err(field("op", "is missing or not a string")),
        };
        let side = match op.as_str() {
            "c" | "r" | "u" => "after",
            "d" => "before",
            "t" => {
                return Err(field(
                    "op",
                    "a truncate names no rows; FireSight applies row changes only (delete the rows instead)",
                ));
            }
            "m" => {
                return Err(field(
                    "op",
                    "a logical-decoding message is not a row change",
                ));
            }
            other => {
                return Err(field(
                    "op",
                    format!("`{other}` is not a Debezium operation"),
                ));
            }
        };
        let row_schema = schema.as_ref().and_then(|s| field_schema(s, side));
        let row = match payload.remove(side) {
            Some(Json::Object(row)) => Some(values::normalise_row(row, row_schema, false)?),
            Some(Json::Null) | None if op == "d" => None,
            _ => return Err(field(side, "is missing or not an object")),
        };
        (Op::from_envelope(&op), row)
    } else {
        let deleted = matches!(payload.get("__deleted"), Some(Json::String(s)) if s == "true")
            || matches!(payload.get("__deleted"), Some(Json::Bool(true)))
            || matches!(payload.get("__op"), Some(Json::String(s)) if s == "d");
        payload.retain(|name, _| !name.starts_with("__"));
        let row = values::normalise_row(payload, schema.as_ref(), false)?;
        (if deleted { Op::Delete } else { Op::Upsert }, Some(row))
    };
    let key = match record_key {
        Some(key) => key,
        None => row_key(row.as_ref(), &mapping.key_columns())?,
    };
    match (op, row) {
        (Op::Delete, _) => Ok(Change::Delete { key }),
        (Op::Upsert, Some(row)) => {
            let item = T::from_row(row, mapping).map_err(Refusal::Field)?;
            Ok(Change::Upsert { key, item })
        }
        (Op::Upsert, None) => Err(field("after", "is missing")),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Upsert,
    Delete,
}

impl Op {
    fn from_envelope(op: &str) -> Self {
        if op == "d" {
            Self::Delete
        } else {
            Self::Upsert
        }
    }
}

fn field(name: &str, reason: impl Into<String>) -> Refusal {
    Refusal::Field(FieldError::new(1, name, reason))
}

/// A full change event has a string `op` and a `source` object (a truncate or a message has
/// neither `before` nor `after`), or, written by hand, `op` beside a `before` or `after`; a row
/// after `ExtractNewRecordState` has none of these together.
fn is_envelope(payload: &Map<String, Json>) -> bool {
    matches!(payload.get("op"), Some(Json::String(_)))
        && (matches!(payload.get("source"), Some(Json::Object(_)))
            || payload.contains_key("after")
            || payload.contains_key("before"))
}

/// `{schema, payload}` → (payload, schema); anything else is the payload itself.
fn unwrap_schema(json: Json) -> Result<(Json, Option<Json>), Refusal> {
    match json {
        Json::Object(mut map)
            if map.len() == 2 && map.contains_key("schema") && map.contains_key("payload") =>
        {
            let payload = map.remove("payload").unwrap_or(Json::Null);
            let schema = map.remove("schema").filter(|s| !s.is_null());
            Ok((payload, schema))
        }
        other => Ok((other, None)),
    }
}

/// The schema of the struct field `name` of a struct schema.
fn field_schema<'a>(schema: &'a Json, name: &str) -> Option<&'a Json> {
    schema
        .get("fields")?
        .as_array()?
        .iter()
        .find(|f| f.get("field").and_then(Json::as_str) == Some(name))
}

/// A record key as canonical JSON: its payload object (under `{schema, payload}` or bare),
/// columns sorted; `None` when the key is not a JSON object.
fn parse_key(key: &[u8]) -> Option<String> {
    let json: Json = serde_json::from_slice(key).ok()?;
    let (payload, schema) = unwrap_schema(json).ok()?;
    let Json::Object(map) = payload else {
        return None;
    };
    // Exact: a numeric key read as a float would let two keys beyond 2^53 collide.
    let map = values::normalise_row(map, schema.as_ref(), true).ok()?;
    if map.is_empty() {
        return None;
    }
    serde_json::to_string(&map).ok()
}

/// The key of a record without one: its row's key columns, canonical JSON.
fn row_key(row: Option<&Map<String, Json>>, columns: &[String]) -> Result<String, Refusal> {
    let Some(row) = row else {
        return Err(Refusal::Format(
            "a delete with neither a record key nor a `before` row: no row to delete".to_owned(),
        ));
    };
    let mut key = Map::new();
    for column in columns {
        match row.get(column) {
            Some(value) if !value.is_null() => {
                key.insert(column.clone(), value.clone());
            }
            _ => {
                return Err(field(
                    column,
                    "the record has no key and its row lacks this key column (kafka.debezium key_columns)",
                ));
            }
        }
    }
    serde_json::to_string(&key).map_err(|e| Refusal::Format(e.to_string()))
}

#[cfg(test)]
mod tests;

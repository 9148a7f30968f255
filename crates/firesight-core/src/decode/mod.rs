//! Decoders from FIRMS CSV, BOM CSV and JSON into domain events, fed incrementally so bodies can stream.

mod bom;
mod calfire;
mod firms;
mod json;
mod lines;

pub use bom::{StationDecoder, WeatherDecoder};
pub use calfire::{decode as decode_calfire, is_calfire_header};
pub use firms::FirmsDecoder;
pub use json::{JsonDecoder, JsonEvent, json_error};
pub use lines::{CsvStream, RecordDecoder, StreamDecoder};

use crate::event::FieldError;

/// One decoded line: its line number and item, or the reason it was refused together with its raw text.
pub type Decoded<T> = Result<(u64, T), Rejected>;

/// A refused input record: the field-level reason and the original bytes, for the dead-letter store.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    /// Field and reason.
    pub error: FieldError,
    /// The line as received (lossy UTF-8).
    pub raw: String,
}

/// Normalises a header cell: drops a UTF-8 byte-order mark, trims, lower-cases.
pub(crate) fn header_key(cell: &str) -> String {
    cell.trim_start_matches('\u{feff}')
        .trim()
        .to_ascii_lowercase()
}

/// Position of each wanted column in a header, looked up by normalised name.
pub(crate) struct Columns {
    names: Vec<String>,
}

impl Columns {
    /// Reads a header with `normalise` applied to every cell.
    pub(crate) fn new(header: &csv::StringRecord, normalise: fn(&str) -> String) -> Self {
        Self {
            names: header.iter().map(normalise).collect(),
        }
    }

    /// Index of an optional column.
    pub(crate) fn find(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    /// Index of a column the format cannot do without.
    pub(crate) fn require(&self, name: &str) -> Result<usize, FieldError> {
        self.find(name)
            .ok_or_else(|| FieldError::new(1, name, "required column is missing from the header"))
    }
}

/// The trimmed cell at `index`, or `""` when the row is short.
pub(crate) fn cell(record: &csv::StringRecord, index: usize) -> &str {
    record
        .get(index)
        .map_or("", |c| c.trim_matches(|ch: char| ch.is_whitespace()))
}

/// Parses a required number, naming the field when it is absent or not a number.
pub(crate) fn number(line: u64, field: &str, text: &str) -> Result<f64, FieldError> {
    if text.is_empty() {
        return Err(FieldError::new(line, field, "is empty"));
    }
    text.parse::<f64>()
        .map_err(|_| FieldError::new(line, field, format!("`{text}` is not a number")))
}

/// Parses an optional number: empty is `None`, garbage is an error.
pub(crate) fn optional_number(
    line: u64,
    field: &str,
    text: &str,
) -> Result<Option<f64>, FieldError> {
    if text.is_empty() {
        Ok(None)
    } else {
        number(line, field, text).map(Some)
    }
}

//! The JSON form of every event kind: one object per line (NDJSON).

use std::marker::PhantomData;

use serde::de::DeserializeOwned;

use super::lines::LineSplitter;
use super::{Decoded, Rejected, StreamDecoder};
use crate::event::{FieldError, FireDetection, SensorReading, Station, WeatherObservation};

/// An event kind that has a JSON form and range checks.
pub trait JsonEvent: DeserializeOwned {
    /// The same checks the CSV decoders apply.
    fn check(&self, line: u64) -> Result<(), FieldError>;
}

impl JsonEvent for FireDetection {
    fn check(&self, line: u64) -> Result<(), FieldError> {
        self.validate(line)
    }
}

impl JsonEvent for WeatherObservation {
    fn check(&self, line: u64) -> Result<(), FieldError> {
        self.validate(line)
    }
}

impl JsonEvent for SensorReading {
    fn check(&self, line: u64) -> Result<(), FieldError> {
        self.validate(line)
    }
}

impl JsonEvent for Station {
    fn check(&self, line: u64) -> Result<(), FieldError> {
        self.validate(line)
    }
}

/// Decodes NDJSON: each non-empty line is one `T`.
pub struct JsonDecoder<T> {
    splitter: LineSplitter,
    kind: PhantomData<fn() -> T>,
}

impl<T> Default for JsonDecoder<T> {
    fn default() -> Self {
        Self {
            splitter: LineSplitter::default(),
            kind: PhantomData,
        }
    }
}

impl<T: JsonEvent> JsonDecoder<T> {
    /// A decoder at line 1.
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes one JSON object, naming the field serde or the range check objected to.
    pub fn decode_line(line: u64, text: &str) -> Result<T, FieldError> {
        let item: T = serde_json::from_str(text).map_err(|e| json_error(line, &e))?;
        item.check(line)?;
        Ok(item)
    }
}

impl<T: JsonEvent> StreamDecoder for JsonDecoder<T> {
    type Item = T;

    fn push(&mut self, chunk: &[u8], out: &mut Vec<Decoded<T>>) -> Result<(), FieldError> {
        self.splitter
            .push(chunk, |line, text| decode_line(line, text, out));
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<Decoded<T>>) -> Result<(), FieldError> {
        self.splitter
            .finish(|line, text| decode_line(line, text, out));
        Ok(())
    }

    fn lines_seen(&self) -> u64 {
        self.splitter.lines()
    }
}

fn decode_line<T: JsonEvent>(line: u64, text: Result<&str, Rejected>, out: &mut Vec<Decoded<T>>) {
    match text {
        Ok(text) => decode_into(line, text, out),
        Err(rejected) => out.push(Err(rejected)),
    }
}

fn decode_into<T: JsonEvent>(line: u64, text: &str, out: &mut Vec<Decoded<T>>) {
    if text.trim().is_empty() {
        return;
    }
    let decoded = JsonDecoder::<T>::decode_line(line, text);
    out.push(decoded.map(|item| (line, item)).map_err(|error| Rejected {
        error,
        raw: text.to_owned(),
    }));
}

/// serde_json names the offending key in backticks (`missing field `latitude``); keep that name.
pub fn json_error(line: u64, error: &serde_json::Error) -> FieldError {
    let message = error.to_string();
    let field = message
        .split('`')
        .nth(1)
        .filter(|name| {
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
        .unwrap_or("$");
    FieldError::new(line, field, message.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `kafka_codec` fuzz target: a key that starts with a backtick made serde's
    /// message quote an empty name, and the refusal named no field.
    #[test]
    fn a_key_with_a_backtick_still_gives_a_refusal_a_field() {
        let text = r#"{"sensor_id":"s-1","`latitude":-33.9,"longitude":151.2,"observed_at":"2019-11-08T03:00:00Z"}"#;
        let error = JsonDecoder::<SensorReading>::decode_line(1, text).expect_err("refused");
        assert!(!error.field.is_empty(), "{error:?}");
    }

    #[test]
    fn sensor_json_round_trip_and_errors() {
        let good = r#"{"sensor_id":"s-1","latitude":-33.9,"longitude":151.2,"observed_at":"2019-11-08T03:00:00Z","temperature_c":41.5,"humidity_pct":9.0,"pm25_ugm3":310.0,"wind_kmh":null}"#;
        let reading = JsonDecoder::<SensorReading>::decode_line(1, good).expect("valid");
        assert_eq!(reading.pm25_ugm3, Some(310.0));
        let missing =
            r#"{"sensor_id":"s-1","longitude":151.2,"observed_at":"2019-11-08T03:00:00Z"}"#;
        assert_eq!(
            JsonDecoder::<SensorReading>::decode_line(4, missing)
                .expect_err("missing")
                .field,
            "latitude"
        );
        let wet = good.replace("9.0", "140.0");
        let err = JsonDecoder::<SensorReading>::decode_line(5, &wet).expect_err("humidity > 100");
        assert_eq!((err.line, err.field.as_str()), (5, "humidity_pct"));
    }
}

//! Query-string parameters parsed one by one, so every error names its parameter.

use std::collections::HashMap;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};

use super::error::ApiError;

/// Parsed query parameters.
pub struct Params(HashMap<String, String>);

impl Params {
    /// Takes the raw map and refuses parameters the route does not know.
    pub fn new(raw: HashMap<String, String>, known: &[&str]) -> Result<Self, ApiError> {
        if let Some(unknown) = raw.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(ApiError::bad(
                unknown.clone(),
                format!("unknown parameter; this route takes {}", known.join(", ")),
            ));
        }
        Ok(Self(raw))
    }

    /// A number in `[min, max]`, or `default` when absent.
    pub fn bounded<T>(&self, name: &str, default: T, min: T, max: T) -> Result<T, ApiError>
    where
        T: FromStr + PartialOrd + std::fmt::Display + Copy,
    {
        let Some(text) = self.0.get(name) else {
            return Ok(default);
        };
        let value: T = text
            .parse()
            .map_err(|_| ApiError::bad(name, format!("`{text}` is not a whole number")))?;
        if value < min || value > max {
            return Err(ApiError::bad(
                name,
                format!("{value} is outside [{min}, {max}]"),
            ));
        }
        Ok(value)
    }

    /// A time as RFC 3339 or a `YYYY-MM-DD` day (UTC; its last millisecond when `end_of_day`).
    pub fn time(&self, name: &str, end_of_day: bool) -> Result<Option<DateTime<Utc>>, ApiError> {
        let Some(text) = self.0.get(name) else {
            return Ok(None);
        };
        if let Ok(t) = DateTime::parse_from_rfc3339(text) {
            return Ok(Some(t.with_timezone(&Utc)));
        }
        NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .map(|d| {
                let start = d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
                Some(if end_of_day {
                    start + chrono::Duration::milliseconds(86_399_999)
                } else {
                    start
                })
            })
            .map_err(|_| {
                ApiError::bad(name, format!("`{text}` is neither RFC 3339 nor YYYY-MM-DD"))
            })
    }

    /// A string parameter.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

//! Query-string parameters parsed one by one, so every error names its parameter.

use std::collections::HashMap;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};

use super::error::ApiError;
use crate::index::{BBox, PointAttrs, SOURCES, SearchFilter};

/// Parsed query parameters.
pub struct Params(HashMap<String, String>);

impl Params {
    /// Takes the raw pairs and refuses parameters the route does not know, blank ones, and
    /// any given twice (rather than silently picking one of its values).
    pub fn new(
        raw: impl IntoIterator<Item = (String, String)>,
        known: &[&str],
    ) -> Result<Self, ApiError> {
        let mut map = HashMap::new();
        for (name, value) in raw {
            if !known.contains(&name.as_str()) {
                return Err(ApiError::bad(
                    name,
                    format!("unknown parameter; this route takes {}", known.join(", ")),
                ));
            }
            if value.is_empty() {
                return Err(ApiError::bad(name, "is empty; leave it out instead"));
            }
            if map.contains_key(&name) {
                return Err(ApiError::bad(name, "given more than once"));
            }
            map.insert(name, value);
        }
        Ok(Self(map))
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
        self.0
            .get(name)
            .map(|text| parse_time(name, text, end_of_day))
            .transpose()
    }

    /// A boolean parameter: `true` or `false`, absent is false.
    pub fn flag(&self, name: &str) -> Result<bool, ApiError> {
        match self.text(name) {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(other) => Err(ApiError::bad(
                name,
                format!("`{other}` is neither true nor false"),
            )),
        }
    }

    /// `cursor` of an event listing (`/v1/fires`, `/ogc` fires): the hex of a store key, at
    /// least 8 bytes, as the listing returned it.
    pub fn event_cursor(&self) -> Result<Option<String>, ApiError> {
        match self.text("cursor") {
            Some(c)
                if c.len() < 16
                    || !c.len().is_multiple_of(2)
                    || !c.bytes().all(|b| b.is_ascii_hexdigit()) =>
            {
                Err(ApiError::bad(
                    "cursor",
                    "not a cursor returned by this endpoint",
                ))
            }
            other => Ok(other.map(str::to_owned)),
        }
    }

    /// A string parameter.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// `bbox` (`min_lon,min_lat,max_lon,max_lat`), when given.
    pub fn bbox(&self) -> Result<Option<BBox>, ApiError> {
        self.text("bbox").map(parse_bbox).transpose()
    }

    /// The search filter parameters: `from`, `to` (as [`Params::time`]), `bbox`
    /// (`min_lon,min_lat,max_lon,max_lat`; west > east crosses the antimeridian), `source`
    /// (satellites, comma-separated), `min_confidence` (`low`, `nominal`, `high`), `incident`.
    pub fn filter(&self) -> Result<SearchFilter, ApiError> {
        let from = self.time("from", false)?.map(|t| t.timestamp());
        let to = self.time("to", true)?.map(|t| t.timestamp());
        if let (Some(f), Some(t)) = (from, to)
            && f > t
        {
            return Err(ApiError::bad("from", "must not be after `to`"));
        }
        let time = (from.is_some() || to.is_some())
            .then(|| (from.unwrap_or(i64::MIN), to.unwrap_or(i64::MAX)));
        let bbox = self.text("bbox").map(parse_bbox).transpose()?;
        let sources = match self.text("source") {
            None => None,
            Some(list) => {
                let mut set = 0u32;
                for name in list.split(',').map(str::trim) {
                    let code = SOURCES
                        .iter()
                        .position(|s| s.eq_ignore_ascii_case(name))
                        .ok_or_else(|| {
                            ApiError::bad(
                                "source",
                                format!("`{name}` is not one of {}", SOURCES.join(", ")),
                            )
                        })?;
                    set |= 1 << code;
                }
                Some(set)
            }
        };
        let min_confidence = match self.text("min_confidence") {
            None => None,
            Some(text @ ("low" | "nominal" | "high")) => {
                crate::event::ConfidenceClass::parse(text).map(crate::event::ConfidenceClass::rank)
            }
            Some(other) => {
                return Err(ApiError::bad(
                    "min_confidence",
                    format!("`{other}` is not one of low, nominal, high"),
                ));
            }
        };
        let incident = self.text("incident").map(PointAttrs::incident_code);
        Ok(SearchFilter {
            time,
            bbox,
            sources,
            incident,
            min_confidence,
        })
    }
}

/// Parses `min_lon,min_lat,max_lon,max_lat`.
pub(super) fn parse_bbox(text: &str) -> Result<BBox, ApiError> {
    let bad = |reason: String| ApiError::bad("bbox", reason);
    let parts: Vec<f32> = text
        .split(',')
        .map(|p| p.trim().parse::<f32>())
        .collect::<Result<_, _>>()
        .map_err(|_| bad(format!("`{text}` is not four numbers")))?;
    let [min_lon, min_lat, max_lon, max_lat] = parts[..] else {
        return Err(bad(format!(
            "`{text}` has {} numbers; give min_lon,min_lat,max_lon,max_lat",
            parts.len()
        )));
    };
    let lon = -180.0..=180.0;
    let lat = -90.0..=90.0;
    if !(lon.contains(&min_lon) && lon.contains(&max_lon)) {
        return Err(bad("longitudes must be within [-180, 180]".to_owned()));
    }
    if !(lat.contains(&min_lat) && lat.contains(&max_lat)) {
        return Err(bad("latitudes must be within [-90, 90]".to_owned()));
    }
    if min_lat > max_lat {
        return Err(bad("min_lat is north of max_lat".to_owned()));
    }
    Ok(BBox {
        min_lon,
        min_lat,
        max_lon,
        max_lat,
    })
}

/// RFC 3339, or a `YYYY-MM-DD` day in UTC (its last millisecond when `end_of_day`); a 400 naming
/// `field` otherwise.
pub(super) fn parse_time(
    field: &str,
    text: &str,
    end_of_day: bool,
) -> Result<DateTime<Utc>, ApiError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map(|d| {
            let start = d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
            if end_of_day {
                start + chrono::Duration::milliseconds(86_399_999)
            } else {
                start
            }
        })
        .map_err(|_| {
            ApiError::bad(
                field,
                format!("`{text}` is neither RFC 3339 nor YYYY-MM-DD"),
            )
        })
}

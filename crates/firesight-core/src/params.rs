//! Query-string parameters, parsed one by one so every error names its parameter. A query string
//! is untrusted input: nothing here panics, and nothing is sized by what a parameter says (the
//! `query_params` fuzz target holds it to that).

use std::collections::HashMap;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};

use crate::filter::{BBox, PointAttrs, SOURCES, SearchFilter};

/// A parameter refused: which one, and why (the API answers it as a 400 naming `field`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("parameter `{field}`: {reason}")]
pub struct ParamError {
    /// The parameter at fault.
    pub field: String,
    /// Why, in words.
    pub reason: String,
}

impl ParamError {
    /// A refusal of `field`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Parsed query parameters.
pub struct Params(HashMap<String, String>);

impl Params {
    /// Takes the raw pairs and refuses parameters the route does not know, blank ones, and
    /// any given twice (rather than silently picking one of its values).
    pub fn new(
        raw: impl IntoIterator<Item = (String, String)>,
        known: &[&str],
    ) -> Result<Self, ParamError> {
        let mut map = HashMap::new();
        for (name, value) in raw {
            if !known.contains(&name.as_str()) {
                return Err(ParamError::new(
                    name,
                    format!("unknown parameter; this route takes {}", known.join(", ")),
                ));
            }
            if value.is_empty() {
                return Err(ParamError::new(name, "is empty; leave it out instead"));
            }
            if map.contains_key(&name) {
                return Err(ParamError::new(name, "given more than once"));
            }
            map.insert(name, value);
        }
        Ok(Self(map))
    }

    /// A number in `[min, max]`, or `default` when absent.
    pub fn bounded<T>(&self, name: &str, default: T, min: T, max: T) -> Result<T, ParamError>
    where
        T: FromStr + PartialOrd + std::fmt::Display + Copy,
    {
        let Some(text) = self.0.get(name) else {
            return Ok(default);
        };
        let kind = if std::any::type_name::<T>().starts_with('f') {
            "number"
        } else {
            "whole number"
        };
        let value: T = text
            .parse()
            .map_err(|_| ParamError::new(name, format!("`{text}` is not a {kind}")))?;
        // Written so that NaN, which compares false with everything, is outside too.
        if !(value >= min && value <= max) {
            return Err(ParamError::new(
                name,
                format!("{value} is outside [{min}, {max}]"),
            ));
        }
        Ok(value)
    }

    /// A time as RFC 3339 or a `YYYY-MM-DD` day (UTC; its last millisecond when `end_of_day`).
    pub fn time(&self, name: &str, end_of_day: bool) -> Result<Option<DateTime<Utc>>, ParamError> {
        self.0
            .get(name)
            .map(|text| parse_time(name, text, end_of_day))
            .transpose()
    }

    /// A boolean parameter: `true` or `false`, absent is false.
    pub fn flag(&self, name: &str) -> Result<bool, ParamError> {
        match self.text(name) {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(other) => Err(ParamError::new(
                name,
                format!("`{other}` is neither true nor false"),
            )),
        }
    }

    /// `cursor` of an event listing (`/v1/fires`, `/ogc` fires): the hex of a store key, at
    /// least 8 bytes, as the listing returned it.
    pub fn event_cursor(&self) -> Result<Option<String>, ParamError> {
        match self.text("cursor") {
            Some(c)
                if c.len() < 16
                    || !c.len().is_multiple_of(2)
                    || !c.bytes().all(|b| b.is_ascii_hexdigit()) =>
            {
                Err(ParamError::new(
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
    pub fn bbox(&self) -> Result<Option<BBox>, ParamError> {
        self.text("bbox").map(parse_bbox).transpose()
    }

    /// The search filter parameters: `from`, `to` (as [`Params::time`]), `bbox`
    /// (`min_lon,min_lat,max_lon,max_lat`; west > east crosses the antimeridian), `source`
    /// (satellites, comma-separated), `min_confidence` (`low`, `nominal`, `high`), `incident`.
    pub fn filter(&self) -> Result<SearchFilter, ParamError> {
        let from = self.time("from", false)?.map(|t| t.timestamp());
        let to = self.time("to", true)?.map(|t| t.timestamp());
        if let (Some(f), Some(t)) = (from, to)
            && f > t
        {
            return Err(ParamError::new("from", "must not be after `to`"));
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
                            ParamError::new(
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
                return Err(ParamError::new(
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
pub fn parse_bbox(text: &str) -> Result<BBox, ParamError> {
    let bad = |reason: String| ParamError::new("bbox", reason);
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
pub fn parse_time(field: &str, text: &str, end_of_day: bool) -> Result<DateTime<Utc>, ParamError> {
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
            ParamError::new(
                field,
                format!("`{text}` is neither RFC 3339 nor YYYY-MM-DD"),
            )
        })
}

/// `bbox` as OGC API gives it: four numbers, or six with a lower and an upper height (ignored:
/// detections have no height).
pub fn ogc_bbox(text: &str) -> Result<BBox, ParamError> {
    let parts: Vec<&str> = text.split(',').collect();
    match parts.len() {
        6 => parse_bbox(&[parts[0], parts[1], parts[3], parts[4]].join(",")),
        _ => parse_bbox(text),
    }
}

/// `datetime`: an instant (a day means the whole day), or `start/end` with `..` (or nothing)
/// for an open end. Bounds in ms, inclusive.
pub fn ogc_datetime(text: &str) -> Result<(Option<i64>, Option<i64>), ParamError> {
    let bound = |part: &str, end: bool| -> Result<Option<i64>, ParamError> {
        match part.trim() {
            "" | ".." => Ok(None),
            t => Ok(Some(parse_time("datetime", t, end)?.timestamp_millis())),
        }
    };
    let (from, to) = match text.split_once('/') {
        Some((a, b)) => {
            let (from, to) = (bound(a, false)?, bound(b, true)?);
            if from.is_none() && to.is_none() {
                return Err(ParamError::new(
                    "datetime",
                    "`../..` leaves both ends open; leave `datetime` out instead",
                ));
            }
            (from, to)
        }
        None if matches!(text.trim(), "" | "..") => {
            return Err(ParamError::new(
                "datetime",
                "an instant or an interval `start/end`",
            ));
        }
        None => (bound(text, false)?, bound(text, true)?),
    };
    if let (Some(f), Some(t)) = (from, to)
        && f > t
    {
        return Err(ParamError::new("datetime", "the start is after the end"));
    }
    Ok((from, to))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)], known: &[&str]) -> Result<Params, ParamError> {
        Params::new(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
            known,
        )
    }

    #[test]
    fn unknown_blank_and_repeated_parameters_are_refused_by_name() {
        let e = params(&[("limit", "5"), ("colour", "red")], &["limit"]).err();
        assert_eq!(e.map(|e| e.field), Some("colour".to_owned()));
        let e = params(&[("limit", "")], &["limit"]).err();
        assert_eq!(e.map(|e| e.field), Some("limit".to_owned()));
        let e = params(&[("limit", "5"), ("limit", "6")], &["limit"]).err();
        assert!(e.is_some_and(|e| e.reason.contains("more than once")));
    }

    #[test]
    fn numbers_are_bounded_and_filters_checked() {
        let p = params(&[("limit", "1001")], &["limit"]).expect("known");
        assert!(p.bounded("limit", 10u32, 1, 1000).is_err());
        let p = params(&[("limit", "-1")], &["limit"]).expect("known");
        assert!(p.bounded("limit", 10u32, 1, 1000).is_err());
        // `f64::from_str` reads "NaN" and "inf": neither is within any bounds.
        for text in ["NaN", "nan", "inf", "-inf"] {
            let p = params(&[("cell_deg", text)], &["cell_deg"]).expect("known");
            let refused = p.bounded("cell_deg", 1.0f64, 0.01, 10.0).err();
            assert_eq!(
                refused.map(|e| e.field),
                Some("cell_deg".to_owned()),
                "{text}"
            );
        }
        let p = params(&[("cell_deg", "fine")], &["cell_deg"]).expect("known");
        let refused = p.bounded("cell_deg", 1.0f64, 0.01, 10.0).err();
        assert!(refused.is_some_and(|e| e.reason == "`fine` is not a number"));
        let p = params(
            &[("from", "2019-12-31"), ("to", "2019-12-30")],
            &["from", "to"],
        )
        .expect("known");
        assert_eq!(p.filter().err().map(|e| e.field), Some("from".to_owned()));
        let p = params(&[("source", "Terra, aqua")], &["source"]).expect("known");
        assert_eq!(p.filter().expect("two satellites").sources, Some(0b11));
        let p = params(&[("min_confidence", "certain")], &["min_confidence"]).expect("known");
        assert!(p.filter().is_err());
    }

    #[test]
    fn datetimes_take_instants_days_and_open_intervals() {
        let day = ogc_datetime("2019-12-30").expect("a day");
        assert_eq!(day.1.unwrap() - day.0.unwrap(), 86_399_999);
        let instant = ogc_datetime("2019-12-30T04:05:00Z").expect("an instant");
        assert_eq!(instant.0, instant.1);
        let open = ogc_datetime("2019-12-30T00:00:00Z/..").expect("open end");
        assert!(open.0.is_some() && open.1.is_none());
        let open = ogc_datetime("/2019-12-30").expect("open start");
        assert!(open.0.is_none() && open.1.is_some());
        assert!(ogc_datetime("../..").is_err());
        assert!(ogc_datetime("2019-12-31/2019-12-30").is_err());
        assert!(ogc_datetime("yesterday").is_err());
        // The edges of the calendar answer or refuse; they never overflow.
        for edge in [
            "+262142-12-31",
            "-262143-01-01",
            "+262142-12-31/..",
            "../-262143-01-01",
        ] {
            let _ = ogc_datetime(edge);
        }
    }

    #[test]
    fn six_number_boxes_drop_their_heights() {
        let b = ogc_bbox("140,-39,0,154,-28,100").expect("6 numbers");
        assert_eq!(
            (b.min_lon, b.min_lat, b.max_lon, b.max_lat),
            (140.0, -39.0, 154.0, -28.0)
        );
        assert!(ogc_bbox("140,-39,154").is_err());
        assert!(parse_bbox("NaN,-39,154,-28").is_err());
    }
}

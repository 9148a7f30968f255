//! The growth outlook of an incident: will it add at least [`GROWTH_KM2`] of burned area within
//! the next 24 hours? One feature row per incident, read from the tracker's own state (its size,
//! its growth and FRP over the last two days, how often it was seen, the weather and Fire
//! Weather Index codes joined to its newest detections, and the local time of day and season),
//! is the input of the `growth-outlook` incident model; `models/incident_states.rs` writes the
//! same rows, as the tracker saw them after each granule, with their labels, for training.
//! The weather is that of the incident's newest detection with any; when late weather joins its
//! detections again, the incident takes it and its outlook is given again
//! ([`super::Tracker::reweather`]), while each detection keeps the outlook of its granule. The answer is kept on the incident and copied into
//! the `ml_predictions` of the detections that moved it.

use std::sync::Arc;

use chrono::{Datelike, Timelike};
use serde::{Deserialize, Serialize};

use super::incident::Incident;
use crate::event::{FireEventV2, MlPrediction, WeatherConditions};
use crate::fwi::SPUN_UP_DAYS;

/// The question's threshold: new burned area (union of pixel footprints not burning before),
/// km², added within [`HORIZON_MS`]. About one MODIS pixel at nadir, or seven VIIRS pixels.
pub const GROWTH_KM2: f64 = 1.0;

/// The question's horizon, ms.
pub const HORIZON_MS: i64 = 24 * HOUR_MS;

const HOUR_MS: i64 = 3_600_000;

/// The prediction's name in `ml_predictions` and on the incident.
pub const PREDICTION: &str = "p_growth_24h";

/// The row's columns, in order. NaN marks a missing value (no weather, or no spun-up codes);
/// the model imputes it and reads the two `has_` flags.
pub const OUTLOOK_FEATURE_NAMES: [&str; 25] = [
    "log_area_km2",
    "log_detections",
    "log_age_h",
    "log_hours_since_previous",
    "log_new_area_24h",
    "log_new_area_24_48h",
    "log_detections_24h",
    "log_detections_24_48h",
    "log_frp_24h",
    "log_frp_24_48h",
    "log_frp_max_24h",
    "snapshots_72h",
    "hour_sin",
    "hour_cos",
    "season_sin",
    "season_cos",
    "max_temp_c",
    "rh_3pm_pct",
    "wind_3pm_kmh",
    "log_rain_mm",
    "ffmc",
    "isi",
    "bui",
    "has_weather",
    "has_fire_weather",
];

/// Width of an outlook row.
pub const OUTLOOK_FEATURES: usize = OUTLOOK_FEATURE_NAMES.len();

/// The weather joined to an incident's newest detection that had any, as it was joined.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IncidentWeather {
    /// The detection's time, ms.
    pub time_ms: i64,
    /// Its weather.
    pub conditions: WeatherConditions,
}

impl IncidentWeather {
    /// What `event` carries, if it carries weather.
    pub fn of(event: &FireEventV2) -> Option<Self> {
        Some(Self {
            time_ms: event.detection_time,
            conditions: event.weather_conditions.clone()?,
        })
    }

    /// The newer of two; of two from the same time, the lower station id's, so that the order
    /// detections were tracked or joined again in does not matter; of two from the same time and
    /// station, the second (a detection joined again gets that day's codes as they are now).
    pub fn newer(a: Option<Self>, b: Option<Self>) -> Option<Self> {
        let key = |w: &Self| (w.time_ms, std::cmp::Reverse(w.conditions.station_id));
        match (a, b) {
            (Some(a), Some(b)) => Some(if key(&b) >= key(&a) { b } else { a }),
            (a, b) => a.or(b),
        }
    }
}

/// An incident's growth outlook, as of its newest detection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GrowthOutlook {
    /// Model name.
    pub model: String,
    /// Model version.
    pub version: String,
    /// Probability that the incident adds at least 1 km² of burned area within 24 hours.
    pub p_growth_24h: f64,
    /// The incident's newest detection when it was computed, ms.
    pub as_of_ms: i64,
}

impl GrowthOutlook {
    /// As an event's prediction.
    pub fn prediction(&self) -> MlPrediction {
        MlPrediction {
            model: self.model.clone(),
            version: self.version.clone(),
            name: PREDICTION.to_owned(),
            value: self.p_growth_24h,
        }
    }
}

/// A model that reads outlook rows and gives one probability per row.
pub trait OutlookModel: Send + Sync {
    /// Its name.
    fn name(&self) -> &str;
    /// Its version.
    fn version(&self) -> &str;
    /// One probability per row (NaN where it cannot answer).
    fn predict(&self, rows: &[[f32; OUTLOOK_FEATURES]]) -> Result<Vec<f32>, String>;
}

/// A shared outlook model.
pub type SharedOutlook = Arc<dyn OutlookModel>;

/// The outlook row of `incident` as of `as_of_ms`, which the service and the training rows
/// (`models/incident_states.rs`, taken live after each granule) both give as the incident's
/// newest detection. An earlier `as_of_ms` leaves out snapshots begun after it, but is not the
/// incident's past: the snapshots begun before keep their later detections, and the weather, the
/// centre and the incidents absorbed since are today's. Do not build training rows that way.
pub fn outlook_features(incident: &Incident, as_of_ms: i64) -> [f32; OUTLOOK_FEATURES] {
    let ln = |x: f64| x.max(0.0).ln_1p() as f32;
    let mut area = 0.0;
    let mut detections = 0u64;
    let mut first = i64::MAX;
    let mut last = i64::MIN;
    let mut previous = None;
    let (mut area_24, mut area_48) = (0.0, 0.0);
    let (mut det_24, mut det_48) = (0u64, 0u64);
    let (mut frp_24, mut frp_48, mut frp_max_24) = (0.0, 0.0, 0.0f64);
    let mut seen_72 = 0u32;
    for s in incident.snapshots.iter().filter(|s| s.first_ms <= as_of_ms) {
        area += s.new_area_km2;
        detections += s.detections;
        first = first.min(s.first_ms);
        if s.last_ms > last {
            previous = (last != i64::MIN).then_some(last);
            last = s.last_ms;
        }
        let ago = as_of_ms.saturating_sub(s.last_ms);
        if ago < HORIZON_MS {
            area_24 += s.new_area_km2;
            det_24 += s.detections;
            frp_24 += s.frp_sum_mw;
            frp_max_24 = frp_max_24.max(s.frp_max_mw);
        } else if ago < 2 * HORIZON_MS {
            area_48 += s.new_area_km2;
            det_48 += s.detections;
            frp_48 += s.frp_sum_mw;
        }
        if ago < 3 * HORIZON_MS {
            seen_72 += 1;
        }
    }
    let hours = |ms: i64| ms as f64 / HOUR_MS as f64;
    let age = if first == i64::MAX {
        0.0
    } else {
        hours(as_of_ms.saturating_sub(first))
    };
    let since_previous = previous.map_or(f32::NAN, |p| ln(hours(last.saturating_sub(p))));
    // Local solar time of day and the season of the hemisphere the fire is in.
    let centre = incident.centroid();
    let solar = as_of_ms.saturating_add((centre.longitude * 240_000.0) as i64);
    let (hour, day_of_year) =
        chrono::DateTime::from_timestamp_millis(solar).map_or((0.0, 0.0), |t| {
            (
                f64::from(t.hour()) + f64::from(t.minute()) / 60.0,
                f64::from(t.ordinal0()),
            )
        });
    let season = if centre.latitude < 0.0 {
        day_of_year + 182.625
    } else {
        day_of_year
    };
    let turn = |x: f64, period: f64| (x / period) * std::f64::consts::TAU;
    let weather = incident.weather.as_ref().map(|w| &w.conditions);
    let value = |v: Option<f64>| v.map_or(f32::NAN, |v| v as f32);
    let codes = weather
        .and_then(|w| w.fire_weather.as_ref())
        .filter(|c| c.days_in_series >= SPUN_UP_DAYS);
    [
        ln(area),
        ln(detections as f64),
        ln(age),
        since_previous,
        ln(area_24),
        ln(area_48),
        ln(det_24 as f64),
        ln(det_48 as f64),
        ln(frp_24),
        ln(frp_48),
        ln(frp_max_24),
        seen_72 as f32,
        turn(hour, 24.0).sin() as f32,
        turn(hour, 24.0).cos() as f32,
        turn(season, 365.25).sin() as f32,
        turn(season, 365.25).cos() as f32,
        value(weather.and_then(|w| w.max_temp_c)),
        value(weather.and_then(|w| w.rh_3pm_pct)),
        value(weather.and_then(|w| w.wind_3pm_kmh)),
        weather.and_then(|w| w.rain_mm).map_or(f32::NAN, ln),
        value(codes.map(|c| c.ffmc)),
        value(codes.map(|c| c.isi)),
        value(codes.map(|c| c.bui)),
        f32::from(u8::from(weather.is_some())),
        f32::from(u8::from(codes.is_some())),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tracker::incident::Member;

    fn member(id: &str, hours: f64, lat: f64) -> Member {
        Member {
            event_id: id.to_owned(),
            time_ms: (hours * HOUR_MS as f64) as i64 + 1_567_296_000_000,
            lat,
            lon: 150.0,
            scan_km: 1.0,
            track_km: 1.0,
            frp_mw: 10.0,
        }
    }

    #[test]
    fn a_row_reads_only_what_had_happened_by_its_time() {
        let first = member("a", 0.0, -33.0);
        let mut incident = Incident::founded_by(&first);
        incident.add(&first, 1.0, 2, false);
        incident.add(&member("b", 13.0, -33.0), 1.0, 2, false);
        incident.add(&member("c", 40.0, -33.0), 1.0, 2, false);
        let col = |name: &str| {
            OUTLOOK_FEATURE_NAMES
                .iter()
                .position(|n| *n == name)
                .unwrap()
        };
        let early = outlook_features(&incident, first.time_ms + 14 * HOUR_MS);
        let late = outlook_features(&incident, first.time_ms + 40 * HOUR_MS);
        assert_eq!(early[col("log_detections")], 2f32.ln_1p());
        assert_eq!(late[col("log_detections")], 3f32.ln_1p());
        // At 40 h, the 13 h snapshot is 27 h old: in the day before, not the last day.
        assert_eq!(late[col("log_new_area_24h")], 1f32.ln_1p());
        assert_eq!(late[col("log_new_area_24_48h")], 2f32.ln_1p());
        assert_eq!(late[col("snapshots_72h")], 3.0);
        // No weather: the weather columns are missing, not zero.
        assert!(late[col("max_temp_c")].is_nan() && late[col("has_weather")] == 0.0);
    }

    #[test]
    fn the_season_is_the_hemisphere_s() {
        let south = Incident::founded_by(&member("s", 0.0, -33.0));
        let mut north = south.clone();
        north.centre_sum = [0.0; 3];
        let mut south = south;
        let (p, l) = (-33f64.to_radians(), 150f64.to_radians());
        south.centre_sum = [p.cos() * l.cos(), p.cos() * l.sin(), p.sin()];
        let p = 33f64.to_radians();
        north.centre_sum = [p.cos() * l.cos(), p.cos() * l.sin(), p.sin()];
        let t = south.first_ms;
        let col = OUTLOOK_FEATURE_NAMES
            .iter()
            .position(|n| *n == "season_cos")
            .unwrap();
        let (s, n) = (
            outlook_features(&south, t)[col],
            outlook_features(&north, t)[col],
        );
        assert!((s + n).abs() < 1e-3, "half a year apart: {s} and {n}");
    }
}

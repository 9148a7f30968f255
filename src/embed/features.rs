//! The encoder's input features, computed from a `FireEventV2` so stored events can be re-embedded.
//!
//! `models/train_event_encoder.py` computes the same features; the golden fixture test keeps them equal.

use chrono::{Datelike, Timelike};

use crate::event::FireEventV2;
use crate::geo;

/// Number of features.
pub const FEATURE_COUNT: usize = 22;

/// Feature names in input order (also in the model card).
pub const FEATURE_NAMES: [&str; FEATURE_COUNT] = [
    "loc_x",
    "loc_y",
    "loc_z",
    "brightness_k",
    "brightness_background_k",
    "log1p_frp_mw",
    "scan_km",
    "track_km",
    "confidence_pct",
    "daytime",
    "tod_sin",
    "tod_cos",
    "doy_sin",
    "doy_cos",
    "is_viirs",
    "max_temp_c",
    "min_temp_c",
    "log1p_rain_mm",
    "rh_3pm_pct",
    "wind_3pm_kmh",
    "max_gust_kmh",
    "weather_present",
];

/// The feature row of an event. Missing weather values are NaN; the model imputes them.
pub fn event_features(event: &FireEventV2) -> [f32; FEATURE_COUNT] {
    let fc = &event.fire_characteristics;
    let (lat, lon) = (
        event.location.latitude.to_radians(),
        event.location.longitude.to_radians(),
    );
    let at = chrono::DateTime::from_timestamp_millis(event.detection_time).unwrap_or_default();
    let local = geo::local_solar_time(at, event.location.longitude);
    let hour = f64::from(local.hour()) + f64::from(local.minute()) / 60.0;
    let tod = std::f64::consts::TAU * hour / 24.0;
    let doy = std::f64::consts::TAU * f64::from(local.ordinal0()) / 365.25;
    let w = event.weather_conditions.as_ref();
    let weather =
        |f: fn(&crate::event::WeatherConditions) -> Option<f64>| w.and_then(f).unwrap_or(f64::NAN);
    let confidence = fc
        .confidence_percent
        .unwrap_or_else(|| fc.confidence.stand_in_percent());
    let row = [
        lat.cos() * lon.cos(),
        lat.cos() * lon.sin(),
        lat.sin(),
        fc.brightness_k,
        fc.brightness_background_k,
        fc.frp_mw.max(0.0).ln_1p(),
        fc.scan_km,
        fc.track_km,
        f64::from(confidence),
        f64::from(u8::from(fc.daytime)),
        tod.sin(),
        tod.cos(),
        doy.sin(),
        doy.cos(),
        f64::from(u8::from(event.source.instrument == "VIIRS")),
        weather(|c| c.max_temp_c),
        weather(|c| c.min_temp_c),
        weather(|c| c.rain_mm.map(|r| r.max(0.0).ln_1p())),
        weather(|c| c.rh_3pm_pct),
        weather(|c| c.wind_3pm_kmh),
        weather(|c| c.max_gust_kmh),
        f64::from(u8::from(w.is_some())),
    ];
    row.map(|x| x as f32)
}

/// The Fire Weather Index codes a predictor may read after the features, in order.
pub const FIRE_WEATHER_NAMES: [&str; 6] = ["ffmc", "dmc", "dc", "isi", "bui", "fwi"];

/// Width of a predictor row that reads the codes: the features, then [`FIRE_WEATHER_NAMES`].
pub const WIDE_FEATURE_COUNT: usize = FEATURE_COUNT + FIRE_WEATHER_NAMES.len();

pub use crate::fwi::SPUN_UP_DAYS;

/// An event's feature row followed by its station's Fire Weather Index codes for the
/// observation day (NaN when the event has none, or when its series is younger than
/// [`SPUN_UP_DAYS`]): the input of the predictors that read them. `models/train_models.py`
/// (`wide_features`) computes the same row.
pub fn wide_features(event: &FireEventV2, row: &[f32; FEATURE_COUNT]) -> [f32; WIDE_FEATURE_COUNT] {
    let mut wide = [f32::NAN; WIDE_FEATURE_COUNT];
    wide[..FEATURE_COUNT].copy_from_slice(row);
    if let Some(codes) = event
        .weather_conditions
        .as_ref()
        .and_then(|w| w.fire_weather.as_ref())
        .filter(|codes| codes.days_in_series >= SPUN_UP_DAYS)
    {
        let values = [
            codes.ffmc, codes.dmc, codes.dc, codes.isi, codes.bui, codes.fwi,
        ];
        for (slot, value) in wide[FEATURE_COUNT..].iter_mut().zip(values) {
            *slot = value as f32;
        }
    }
    wide
}

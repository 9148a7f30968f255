//! `FireEventV2`: the enriched record the pipeline stores and serves, shaped by `schemas/fire_event_v2.avsc`.

use serde::{Deserialize, Serialize};

/// The enriched fire event. Field names and types mirror the Avro schema so that
/// `apache_avro::to_value` of this struct validates against it (a test checks that).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FireEventV2 {
    /// Content-derived detection id (`fd_…`).
    pub event_id: String,
    /// Incident this event belongs to: on the Kafka path, the spatial session the stream
    /// windows put it in; absent on the embedded default, whose `GET /v1/incidents` groups
    /// detections per request.
    pub correlation_id: Option<String>,
    /// Where the detection came from.
    pub source: SourceInfo,
    /// Acquisition time, milliseconds since the Unix epoch (Avro `timestamp-millis`).
    pub detection_time: i64,
    /// Pixel centre.
    pub location: Location,
    /// Radiometric description of the fire pixel.
    pub fire_characteristics: FireCharacteristics,
    /// Outcome of the weather join (`matched`, `no_station_in_range`, `no_reporting_station`,
    /// `no_recent_observation`, `stale_observation`).
    pub weather_status: Option<WeatherStatus>,
    /// The joined observation, when one was in range.
    pub weather_conditions: Option<WeatherConditions>,
    /// IoT sensor readings within `correlate.sensor_radius_km` and `sensor_window_minutes` before
    /// the detection; absent when there were none.
    pub sensor_summary: Option<SensorSummary>,
    /// Rule-based assessment.
    pub impact_assessment: Option<ImpactAssessment>,
    /// Model outputs written back by the ML stages.
    pub ml_predictions: Option<Vec<MlPrediction>>,
    /// `name@version` of the encoder that produced this event's vector.
    pub model_version: Option<String>,
    /// When FireSight first stored the event, ms since the epoch.
    pub ingested_at: Option<i64>,
    /// The nearest earlier events when the streaming consumer published this record, nearest
    /// first (absent in stored records and from the file and HTTP sources).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub similar_events: Option<Vec<SimilarEvent>>,
    /// How many times the stored record was revised after it was first stored: 1 after the
    /// first late weather re-join, and so on (absent: the first version). A consumer of the
    /// enriched topic keeps the record with the highest revision of each key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<i32>,
}

/// One neighbour written into a published record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SimilarEvent {
    /// The neighbour's event id.
    pub event_id: String,
    /// L2 distance in the encoder's space, as `GET /v1/fires/{id}/similar` reports it.
    pub distance: f64,
}

/// Provenance of a detection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SourceInfo {
    /// Data provider, e.g. `NASA FIRMS`.
    pub provider: String,
    /// Satellite, normalised.
    pub satellite: String,
    /// `MODIS` or `VIIRS`.
    pub instrument: String,
    /// Product version as FIRMS writes it.
    pub version: String,
}

/// A point on the Earth.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Location {
    /// Degrees north.
    pub latitude: f64,
    /// Degrees east.
    pub longitude: f64,
}

impl From<(f64, f64)> for Location {
    /// A `(lat, lon)` pair, as `geo` computes them.
    fn from((latitude, longitude): (f64, f64)) -> Self {
        Self {
            latitude,
            longitude,
        }
    }
}

/// Radiometric description of the pixel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FireCharacteristics {
    /// Fire channel brightness temperature, K.
    pub brightness_k: f64,
    /// Background channel brightness temperature, K.
    pub brightness_background_k: f64,
    /// Fire radiative power, MW.
    pub frp_mw: f64,
    /// Along-scan pixel size, km.
    pub scan_km: f64,
    /// Along-track pixel size, km.
    pub track_km: f64,
    /// `low`, `nominal` or `high`.
    pub confidence: super::ConfidenceClass,
    /// MODIS confidence percentage.
    pub confidence_percent: Option<f32>,
    /// Daytime overpass.
    pub daytime: bool,
    /// Archive detection type.
    pub detection_type: Option<i32>,
}

/// Outcome of the weather join, so that "no weather" is never confused with "not joined".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WeatherStatus {
    /// A station within range had an observation at or before the detection, within the maximum age.
    Matched,
    /// No listed station lies within the configured radius.
    NoStationInRange,
    /// A station in range reports, but none has an observation at or before the detection: its
    /// weather for that time has not arrived (a late observation re-joins it).
    NoRecentObservation,
    /// Stations lie within range, but none of them has ever reported an observation.
    NoReportingStation,
    /// A station in range has an observation before the detection, but older than the maximum
    /// age, and none has a newer one.
    StaleObservation,
}

impl WeatherStatus {
    /// Every status, in the order of the Avro symbols.
    pub const ALL: [Self; 5] = [
        Self::Matched,
        Self::NoStationInRange,
        Self::NoRecentObservation,
        Self::NoReportingStation,
        Self::StaleObservation,
    ];

    /// The status as it is written on the wire (`matched`, `no_station_in_range`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Matched => "matched",
            Self::NoStationInRange => "no_station_in_range",
            Self::NoRecentObservation => "no_recent_observation",
            Self::NoReportingStation => "no_reporting_station",
            Self::StaleObservation => "stale_observation",
        }
    }
}

/// The observation joined to a detection, with how far and how old it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WeatherConditions {
    /// BOM station number.
    pub station_id: i64,
    /// Station name.
    pub station_name: String,
    /// Great-circle distance from the detection, km.
    pub distance_km: f64,
    /// Observation day (`YYYY-MM-DD`, station local).
    pub observation_date: String,
    /// Detection time minus the observation's time, hours (a daily summary's is its 3 pm reading,
    /// local solar time, so this is negative for a morning detection).
    pub age_hours: f64,
    /// Minimum temperature, °C.
    pub min_temp_c: Option<f64>,
    /// Maximum temperature, °C.
    pub max_temp_c: Option<f64>,
    /// Rain to 9am, mm.
    pub rain_mm: Option<f64>,
    /// Relative humidity at 3pm, %.
    pub rh_3pm_pct: Option<f64>,
    /// Wind speed at 3pm, km/h.
    pub wind_3pm_kmh: Option<f64>,
    /// Strongest gust, km/h.
    pub max_gust_kmh: Option<f64>,
    /// The station's Fire Weather Index System codes for the observation day; null when the
    /// station has no complete noon reading for it.
    #[serde(default)]
    pub fire_weather: Option<FireWeather>,
}

/// One station-day of the Canadian Fire Weather Index System, from the station's daily series
/// (3 pm temperature, humidity and wind, and the rain to 9 am, standing in for noon readings).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FireWeather {
    /// The day (`YYYY-MM-DD`, station local).
    pub date: String,
    /// Fine Fuel Moisture Code.
    pub ffmc: f64,
    /// Duff Moisture Code.
    pub dmc: f64,
    /// Drought Code.
    pub dc: f64,
    /// Initial Spread Index.
    pub isi: f64,
    /// Buildup Index.
    pub bui: f64,
    /// Fire Weather Index.
    pub fwi: f64,
    /// Daily Severity Rating.
    pub dsr: f64,
    /// Danger class of the FWI on EFFIS's scale: `very_low`, `low`, `moderate`, `high`,
    /// `very_high` or `extreme`.
    pub danger_class: String,
    /// Days since the station's series started from the standard start-up codes, this one
    /// included; below about 50 the Drought Code still carries its start-up value.
    pub days_in_series: i32,
}

impl FireWeather {
    /// The record of one series day, each value to one decimal as agencies publish them.
    pub fn of(day: &crate::fwi::SeriesDay) -> Self {
        let round = |v: f64| (v * 10.0).round() / 10.0;
        let i = &day.indices;
        Self {
            date: day.date.to_string(),
            ffmc: round(i.codes.ffmc),
            dmc: round(i.codes.dmc),
            dc: round(i.codes.dc),
            isi: round(i.isi),
            bui: round(i.bui),
            fwi: round(i.fwi),
            dsr: round(i.dsr),
            // The class of the value as published, so a reader never sees FWI 5.2 called "very low".
            danger_class: crate::fwi::danger_class(round(i.fwi)).to_owned(),
            days_in_series: i32::try_from(day.days_in_series).unwrap_or(i32::MAX),
        }
    }
}

/// Summary of nearby IoT sensor readings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SensorSummary {
    /// Readings that contributed.
    pub reading_count: i32,
    /// Mean air temperature, °C.
    pub mean_temperature_c: Option<f64>,
    /// Lowest humidity, %.
    pub min_humidity_pct: Option<f64>,
    /// Highest PM2.5, µg/m³.
    pub max_pm25_ugm3: Option<f64>,
}

/// Rule-based assessment of the event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ImpactAssessment {
    /// Rule anomalies, e.g. `fire_under_high_humidity`, `fire_in_rain`.
    pub anomalies: Vec<String>,
}

/// One model output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MlPrediction {
    /// Model name.
    pub model: String,
    /// Model version.
    pub version: String,
    /// Output name.
    pub name: String,
    /// Output value.
    pub value: f64,
}

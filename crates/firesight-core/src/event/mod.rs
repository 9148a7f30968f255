//! Domain events (fire detections, weather, stations, sensor readings) and the `FireEventV2` record.

mod historical;
mod record;

pub use historical::HistoricalIncident;

pub use record::{
    FireCharacteristics, FireEventV2, FireWeather, ImpactAssessment, Location, MlPrediction,
    SensorSummary, SimilarEvent, SourceInfo, WeatherConditions, WeatherStatus,
};

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Why one input record was refused: the field at fault and the reason, with its line if it came from a file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FieldError {
    /// 1-based line in the input (the header is line 1); 0 when the input has no lines.
    pub line: u64,
    /// Input field (column or JSON key) at fault.
    pub field: String,
    /// Human-readable reason.
    pub reason: String,
}

impl FieldError {
    /// A rejection for `field` at `line`.
    pub fn new(line: u64, field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            line,
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "line {}: field `{}`: {}",
            self.line, self.field, self.reason
        )
    }
}

/// The sensor that made a detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Instrument {
    /// MODIS on Terra/Aqua: 1 km pixels, `brightness` (21/22 µm) and `bright_t31`.
    Modis,
    /// VIIRS on S-NPP/NOAA-20/21: 375 m pixels, `bright_ti4` and `bright_ti5`.
    Viirs,
}

impl Instrument {
    /// Name as FIRMS writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Modis => "MODIS",
            Self::Viirs => "VIIRS",
        }
    }
}

// The one definition of confidence: every source format maps onto it here, and every consumer
// (the encoder's features, the index filters, the stream windows) reads its number from here.
/// FIRMS confidence class: `low`, `nominal` or `high`. VIIRS reports the class; a MODIS
/// percentage maps onto it with FIRMS' own thresholds (< 30, 30–79, ≥ 80).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ConfidenceClass {
    /// MODIS < 30 %, VIIRS `l`.
    Low,
    /// MODIS 30–79 %, VIIRS `n`.
    Nominal,
    /// MODIS ≥ 80 %, VIIRS `h`.
    High,
}

/// Written as its lower-case name, a plain string: the Avro schemas declare `confidence` a
/// string, and a string (not an enum variant) is what the schema-driven Avro writer takes for one.
impl Serialize for ConfidenceClass {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl ConfidenceClass {
    /// The class of a MODIS confidence percentage.
    pub fn from_percent(percent: f32) -> Self {
        if percent < 30.0 {
            Self::Low
        } else if percent < 80.0 {
            Self::Nominal
        } else {
            Self::High
        }
    }

    /// The class FIRMS writes as `l`/`n`/`h` (VIIRS archive files) or spells out (NRT files and
    /// FireSight's own records), in any case; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "l" | "low" => Some(Self::Low),
            "n" | "nominal" => Some(Self::Nominal),
            "h" | "high" => Some(Self::High),
            _ => None,
        }
    }

    /// Lower-case name, as every format writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Nominal => "nominal",
            Self::High => "high",
        }
    }

    /// A percentage standing in for the class where only a class is known (VIIRS): inside the
    /// MODIS range FIRMS maps to the same class (low < 30, nominal 30–79, high ≥ 80). The event
    /// encoder was trained on these values.
    pub fn stand_in_percent(self) -> f32 {
        match self {
            Self::Low => 20.0,
            Self::Nominal => 55.0,
            Self::High => 90.0,
        }
    }

    /// The class as a rank, 0 (low) to 2 (high), for filters kept beside each vector.
    pub fn rank(self) -> u8 {
        match self {
            Self::Low => 0,
            Self::Nominal => 1,
            Self::High => 2,
        }
    }
}

impl std::fmt::Display for ConfidenceClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One active-fire pixel as reported by FIRMS.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FireDetection {
    /// Pixel centre latitude, degrees.
    pub latitude: f64,
    /// Pixel centre longitude, degrees.
    pub longitude: f64,
    /// Acquisition time (UTC).
    pub acquired_at: DateTime<Utc>,
    /// Satellite, normalised (`Terra`, `Aqua`, `Suomi NPP`, `NOAA-20`, `NOAA-21`).
    pub satellite: String,
    /// Instrument.
    pub instrument: Instrument,
    /// Fire channel brightness temperature, kelvin (MODIS `brightness`, VIIRS `bright_ti4`).
    pub brightness_k: f64,
    /// Background channel brightness temperature, kelvin (MODIS `bright_t31`, VIIRS `bright_ti5`).
    pub brightness_background_k: f64,
    /// Along-scan pixel size, km.
    pub scan_km: f64,
    /// Along-track pixel size, km.
    pub track_km: f64,
    /// MODIS confidence percentage; VIIRS gives only a class.
    pub confidence_percent: Option<f32>,
    /// Confidence class.
    pub confidence: ConfidenceClass,
    /// Fire radiative power, MW.
    pub frp_mw: f64,
    /// True for a daytime overpass.
    pub daytime: bool,
    /// Collection/processing version as written by FIRMS (`6.3`, `6.0NRT`, `2.0NRT`).
    pub version: String,
    /// Archive `type`: 0 vegetation fire, 1 volcano, 2 static land source, 3 offshore.
    pub detection_type: Option<u8>,
}

impl FireDetection {
    /// Content-derived id: the same detection ingested twice, from any product, is one event.
    ///
    /// Coordinates are rounded to 1e-4 degrees (about 11 m), finer than any FIRMS pixel, so
    /// archive and NRT files that print different decimals still agree.
    pub fn event_id(&self) -> String {
        let key = format!(
            "{}|{}|{}|{:.4}|{:.4}",
            self.satellite,
            self.instrument.as_str(),
            self.acquired_at.format("%Y-%m-%dT%H:%MZ"),
            self.latitude,
            self.longitude
        );
        let digest = Sha256::digest(key.as_bytes());
        format!("fd_{}", hex::encode(&digest[..12]))
    }

    /// Checks value ranges; decoders call it so every source enforces the same rules.
    pub fn validate(&self, line: u64) -> Result<(), FieldError> {
        check_range(line, "latitude", self.latitude, -90.0, 90.0)?;
        check_range(line, "longitude", self.longitude, -180.0, 180.0)?;
        let (fire_channel, background_channel) = match self.instrument {
            Instrument::Modis => ("brightness", "bright_t31"),
            Instrument::Viirs => ("bright_ti4", "bright_ti5"),
        };
        check_range(line, fire_channel, self.brightness_k, 150.0, 600.0)?;
        check_range(
            line,
            background_channel,
            self.brightness_background_k,
            150.0,
            600.0,
        )?;
        check_range(line, "scan", self.scan_km, 0.0, 20.0)?;
        check_range(line, "track", self.track_km, 0.0, 20.0)?;
        check_range(line, "frp", self.frp_mw, 0.0, 100_000.0)?;
        if let Some(pct) = self.confidence_percent {
            check_range(line, "confidence", f64::from(pct), 0.0, 100.0)?;
        }
        if self.satellite.is_empty() {
            return Err(FieldError::new(line, "satellite", "must not be empty"));
        }
        check_time(line, "acq_date", self.acquired_at)
    }
}

/// A BOM weather station.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Station {
    /// BOM station number.
    pub id: u32,
    /// Station name.
    pub name: String,
    /// State or region code.
    pub region: String,
    /// Latitude, degrees.
    pub latitude: f64,
    /// Longitude, degrees.
    pub longitude: f64,
    /// Station height, metres.
    pub height_m: Option<f64>,
}

impl Station {
    /// Checks coordinates.
    pub fn validate(&self, line: u64) -> Result<(), FieldError> {
        check_range(line, "LATITUDE", self.latitude, -90.0, 90.0)?;
        check_range(line, "LONGITUDE", self.longitude, -180.0, 180.0)
    }
}

/// One station's daily observation (BOM daily weather observations).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeatherObservation {
    /// BOM station number, as printed in the station name.
    pub station_id: u32,
    /// Station name without the `{station N}` suffix.
    pub station_name: String,
    /// Local calendar day of the observation.
    pub date: NaiveDate,
    /// Minimum temperature, °C.
    pub min_temp_c: Option<f64>,
    /// Maximum temperature, °C.
    pub max_temp_c: Option<f64>,
    /// Rain to 9am, mm.
    pub rain_mm: Option<f64>,
    /// Strongest gust, km/h.
    pub max_gust_kmh: Option<f64>,
    /// Temperature at 9am, °C.
    pub temp_9am_c: Option<f64>,
    /// Relative humidity at 9am, %.
    pub rh_9am_pct: Option<f64>,
    /// Wind speed at 9am, km/h.
    pub wind_9am_kmh: Option<f64>,
    /// Temperature at 3pm, °C.
    pub temp_3pm_c: Option<f64>,
    /// Relative humidity at 3pm, %.
    pub rh_3pm_pct: Option<f64>,
    /// Wind speed at 3pm, km/h.
    pub wind_3pm_kmh: Option<f64>,
    /// Wind direction at 3pm (compass point or `Calm`).
    pub wind_dir_3pm: Option<String>,
    /// Mean sea-level pressure at 3pm, hPa.
    pub mslp_3pm_hpa: Option<f64>,
    /// When a point observation was taken (UTC). Absent for a daily summary, which describes its
    /// whole local day and is valid from the station's local midnight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_at: Option<DateTime<Utc>>,
}

impl WeatherObservation {
    /// The Fire Weather Index System's input for this day at a station at `latitude`: a daily
    /// summary's 3 pm temperature (its maximum when 3 pm is missing), 3 pm humidity and wind, and
    /// its rain to 9 am. BOM daily files have no noon reading, and 3 pm is the afternoon reading
    /// Australian agencies rate danger from. `None` for a point observation or when a reading
    /// is missing: the series treats that day as a gap rather than guess dry or wet.
    pub fn noon_weather(&self, latitude: f64) -> Option<crate::fwi::NoonWeather> {
        if self.observed_at.is_some() {
            return None;
        }
        let weather = crate::fwi::NoonWeather {
            temp_c: self.temp_3pm_c.or(self.max_temp_c)?,
            rh_pct: self.rh_3pm_pct?,
            wind_kmh: self.wind_3pm_kmh?,
            rain_mm: self.rain_mm?,
            month: chrono::Datelike::month(&self.date),
            latitude,
        };
        weather.check().is_ok().then_some(weather)
    }

    /// The instant from which this observation is the station's latest: `observed_at`, or the
    /// station's local (solar) midnight starting `date`. The weather table is versioned by it.
    pub fn valid_from(&self, station_longitude: f64) -> DateTime<Utc> {
        self.observed_at
            .unwrap_or_else(|| crate::geo::utc_of_local(self.date, 0, station_longitude))
    }

    /// Refuses an `observed_at` that does not fall on `date` at the station's local solar time.
    pub fn check_day(&self, line: u64, station_longitude: f64) -> Result<(), FieldError> {
        let Some(at) = self.observed_at else {
            return Ok(());
        };
        let day = crate::geo::local_day(at, station_longitude);
        if day == self.date {
            return Ok(());
        }
        Err(FieldError::new(
            line,
            "observed_at",
            format!(
                "{} is on {day} at the station (local solar time), not on `date` {}",
                at.to_rfc3339(),
                self.date
            ),
        ))
    }

    /// Checks physical ranges of the values that are present.
    pub fn validate(&self, line: u64) -> Result<(), FieldError> {
        let checks: [(&str, Option<f64>, f64, f64); 9] = [
            ("Min °C", self.min_temp_c, -60.0, 60.0),
            ("Max °C", self.max_temp_c, -60.0, 60.0),
            ("Rain(mm)", self.rain_mm, 0.0, 2000.0),
            ("Max wind gust Spd - km/h", self.max_gust_kmh, 0.0, 500.0),
            ("RH -% 9:00AM", self.rh_9am_pct, 0.0, 100.0),
            ("RH -% 3:00PM", self.rh_3pm_pct, 0.0, 100.0),
            ("Spd - 9:00AM - km/h", self.wind_9am_kmh, 0.0, 500.0),
            ("Spd - 3:00PM - km/h", self.wind_3pm_kmh, 0.0, 500.0),
            ("MSLP- hPa - 3:00PM", self.mslp_3pm_hpa, 800.0, 1100.0),
        ];
        for (field, value, lo, hi) in checks {
            if let Some(v) = value {
                check_range(line, field, v, lo, hi)?;
            }
        }
        // A day is in range when its UTC noon is after the start of the record and it has begun
        // somewhere on Earth: its earliest local midnight (UTC+14) is 14 h before UTC's.
        let noon = self
            .date
            .and_hms_opt(12, 0, 0)
            .unwrap_or_default()
            .and_utc();
        let begun = noon
            .checked_sub_signed(chrono::Duration::hours(26))
            .unwrap_or(noon);
        if noon.timestamp_millis() < EARLIEST_EVENT_MS {
            check_time(line, "Date", noon)?;
        }
        check_time(line, "Date", begun.max(noon.min(earliest_event())))?;
        if let Some(at) = self.observed_at {
            check_time(line, "observed_at", at)?;
        }
        Ok(())
    }
}

/// One IoT sensor reading (NDJSON over HTTP and files, JSON or Avro on the sensors topic).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SensorReading {
    /// Sensor id.
    pub sensor_id: String,
    /// Latitude, degrees.
    pub latitude: f64,
    /// Longitude, degrees.
    pub longitude: f64,
    /// Time of the reading (UTC).
    pub observed_at: DateTime<Utc>,
    /// Air temperature, °C.
    pub temperature_c: Option<f64>,
    /// Relative humidity, %.
    pub humidity_pct: Option<f64>,
    /// PM2.5 smoke concentration, µg/m³.
    pub pm25_ugm3: Option<f64>,
    /// Wind speed, km/h.
    pub wind_kmh: Option<f64>,
}

impl SensorReading {
    /// Checks id and ranges.
    pub fn validate(&self, line: u64) -> Result<(), FieldError> {
        if self.sensor_id.trim().is_empty() {
            return Err(FieldError::new(line, "sensor_id", "must not be empty"));
        }
        check_range(line, "latitude", self.latitude, -90.0, 90.0)?;
        check_range(line, "longitude", self.longitude, -180.0, 180.0)?;
        let checks = [
            ("temperature_c", self.temperature_c, -60.0, 90.0),
            ("humidity_pct", self.humidity_pct, 0.0, 100.0),
            ("pm25_ugm3", self.pm25_ugm3, 0.0, 10_000.0),
            ("wind_kmh", self.wind_kmh, 0.0, 500.0),
        ];
        for (field, value, lo, hi) in checks {
            if let Some(v) = value {
                check_range(line, field, v, lo, hi)?;
            }
        }
        check_time(line, "observed_at", self.observed_at)
    }
}

/// The earliest event time accepted: 2000-01-01 UTC. FIRMS' record starts with MODIS on Terra
/// (first fire data in November 2000); weather and sensor readings older than that have no
/// detection to join. An earlier time is a typo (or a year that wrapped).
pub const EARLIEST_EVENT_MS: i64 = 946_684_800_000;
/// How far past this host's clock an event time may lie: clock skew between a provider and this
/// host, no more. A later time is a typo or a forged record; accepted, it would move the
/// tracker's and the stream's data clocks into the future for good.
pub const MAX_FUTURE_SKEW_MS: i64 = 3_600_000;

fn earliest_event() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(EARLIEST_EVENT_MS).unwrap_or_default()
}

/// Refuses an event time before [`EARLIEST_EVENT_MS`] or more than [`MAX_FUTURE_SKEW_MS`] after
/// the host's clock, naming the field.
pub fn check_time(line: u64, field: &str, at: DateTime<Utc>) -> Result<(), FieldError> {
    let ms = at.timestamp_millis();
    if ms < EARLIEST_EVENT_MS {
        return Err(FieldError::new(
            line,
            field,
            format!(
                "{} is before 2000-01-01, the start of the satellite fire record",
                at.to_rfc3339()
            ),
        ));
    }
    let latest = Utc::now()
        .timestamp_millis()
        .saturating_add(MAX_FUTURE_SKEW_MS);
    if ms > latest {
        return Err(FieldError::new(
            line,
            field,
            format!(
                "{} is in the future (more than an hour past this host's clock)",
                at.to_rfc3339()
            ),
        ));
    }
    Ok(())
}

/// Refuses NaN, infinities and values outside `[lo, hi]`, naming the field.
pub fn check_range(line: u64, field: &str, value: f64, lo: f64, hi: f64) -> Result<(), FieldError> {
    if !value.is_finite() {
        return Err(FieldError::new(
            line,
            field,
            format!("must be a finite number, got {value}"),
        ));
    }
    if value < lo || value > hi {
        return Err(FieldError::new(
            line,
            field,
            format!("{value} is outside [{lo}, {hi}]"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detection() -> FireDetection {
        FireDetection {
            latitude: -11.807,
            longitude: 142.0583,
            acquired_at: "2019-08-01T00:56:00Z".parse().expect("time"),
            satellite: "Terra".into(),
            instrument: Instrument::Modis,
            brightness_k: 313.0,
            brightness_background_k: 297.3,
            scan_km: 1.0,
            track_km: 1.0,
            confidence_percent: Some(48.0),
            confidence: ConfidenceClass::Nominal,
            frp_mw: 6.6,
            daytime: true,
            version: "6.3".into(),
            detection_type: Some(0),
        }
    }

    #[test]
    fn id_ignores_measurements_and_print_precision() {
        let a = detection();
        let mut b = a.clone();
        b.frp_mw = 99.0;
        b.version = "6.0NRT".into();
        b.latitude = -11.80700001;
        assert_eq!(a.event_id(), b.event_id());
        b.longitude += 0.01;
        assert_ne!(a.event_id(), b.event_id());
    }

    #[test]
    fn validation_names_the_field() {
        let mut d = detection();
        d.latitude = 123.0;
        let err = d.validate(7).expect_err("latitude 123 is refused");
        assert_eq!((err.line, err.field.as_str()), (7, "latitude"));
        let mut d = detection();
        d.frp_mw = f64::NAN;
        assert_eq!(d.validate(1).expect_err("NaN").field, "frp");
    }
}

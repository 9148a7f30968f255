//! The weather join: each detection meets the nearest station's latest observation at or before
//! it, within a maximum age (an as-of join on the versioned weather table).

use std::collections::{BTreeSet, HashMap};

use super::fire_weather::FireWeatherTable;
use crate::event::FireWeather;
use crate::event::{
    FireDetection, SensorSummary, Station, WeatherConditions, WeatherObservation, WeatherStatus,
};
use crate::geo;
use crate::store::{Store, StoreError};

/// Hour of the BOM afternoon observation; a daily summary's `age_hours` is measured from it.
const OBSERVATION_HOUR: u32 = 15;

/// Stations and the instants their observations are valid from; observations stay in RocksDB.
#[derive(Debug, Default)]
pub struct Correlator {
    stations: HashMap<u32, Station>,
    /// Station numbers by normalised name (`normalise_name`), for observations whose number is
    /// not listed.
    named: HashMap<String, BTreeSet<u32>>,
    /// Per station, the valid-from instants (epoch ms) of its stored observations, ascending.
    versions: HashMap<u32, Vec<i64>>,
    /// Fire Weather Index series, derived from the stored daily observations.
    fire_weather: FireWeatherTable,
    max_distance_km: f64,
    max_age_ms: i64,
    sensor_radius_km: f64,
    sensor_window_ms: i64,
}

/// The join's outcome for one detection.
#[derive(Debug, Clone, PartialEq)]
pub struct Correlation {
    /// Whether weather was found.
    pub status: WeatherStatus,
    /// The joined observation.
    pub conditions: Option<WeatherConditions>,
}

impl Correlator {
    /// Builds the station table and the weather versions from the store. Observations older
    /// than `max_age_hours` at a detection's time do not join it.
    pub fn load(
        store: &Store,
        max_distance_km: f64,
        max_age_hours: f64,
    ) -> Result<Self, StoreError> {
        let mut correlator = Self {
            max_distance_km,
            max_age_ms: (max_age_hours * 3_600_000.0).round() as i64,
            ..Self::default()
        };
        correlator.add_stations(store.stations()?);
        let mut reporting = BTreeSet::new();
        for (station, valid_from) in store.weather_versions()? {
            correlator.add_version(station, valid_from);
            reporting.insert(station);
        }
        correlator.refresh_fire_weather(store, &reporting)?;
        Ok(correlator)
    }

    /// Joins sensor readings within `radius_km` and `window_minutes` of a detection (off by
    /// default: a zero radius).
    pub fn with_sensors(mut self, radius_km: f64, window_minutes: u32) -> Self {
        self.sensor_radius_km = radius_km;
        self.sensor_window_ms = i64::from(window_minutes) * 60_000;
        self
    }

    /// Summarises the sensor readings near a detection in space and time; `None` when none are.
    pub fn sensors(
        &self,
        store: &Store,
        detection: &FireDetection,
    ) -> Result<Option<SensorSummary>, StoreError> {
        if self.sensor_radius_km <= 0.0 {
            return Ok(None);
        }
        let (lat, lon) = (detection.latitude, detection.longitude);
        let at = detection.acquired_at.timestamp_millis();
        let lat_span = self.sensor_radius_km / 110.0;
        let lon_span = self.sensor_radius_km / (111.32 * lat.to_radians().cos().max(0.01));
        let (south, west) = geo::sensor_cell(lat - lat_span, lon - lon_span);
        let (north, east) = geo::sensor_cell(lat + lat_span, lon + lon_span);
        let cells: Vec<(i32, i32)> = (south..=north)
            .flat_map(|y| (west..=east).map(move |x| (y, x)))
            .collect();
        let mut near = store.sensor_readings_in(
            &cells,
            at - self.sensor_window_ms,
            at + self.sensor_window_ms,
        )?;
        near.retain(|r| {
            geo::distance_km(lat, lon, r.latitude, r.longitude) <= self.sensor_radius_km
        });
        if near.is_empty() {
            return Ok(None);
        }
        let temperatures: Vec<f64> = near.iter().filter_map(|r| r.temperature_c).collect();
        let mean_temperature_c = (!temperatures.is_empty())
            .then(|| temperatures.iter().sum::<f64>() / temperatures.len() as f64);
        let min_humidity_pct = near
            .iter()
            .filter_map(|r| r.humidity_pct)
            .min_by(f64::total_cmp);
        let max_pm25_ugm3 = near
            .iter()
            .filter_map(|r| r.pm25_ugm3)
            .max_by(f64::total_cmp);
        Ok(Some(SensorSummary {
            reading_count: i32::try_from(near.len()).unwrap_or(i32::MAX),
            mean_temperature_c,
            min_humidity_pct,
            max_pm25_ugm3,
        }))
    }

    /// Adds or replaces stations.
    pub fn add_stations(&mut self, stations: impl IntoIterator<Item = Station>) {
        for station in stations {
            let (id, name) = (station.id, normalise_name(&station.name));
            if let Some(old) = self.stations.insert(id, station) {
                let old_name = normalise_name(&old.name);
                if let Some(ids) = self.named.get_mut(&old_name) {
                    ids.remove(&id);
                    if ids.is_empty() {
                        self.named.remove(&old_name);
                    }
                }
            }
            self.named.entry(name).or_default().insert(id);
        }
    }

    /// Records that `station` has an observation valid from `valid_from` (epoch ms).
    pub fn add_version(&mut self, station: u32, valid_from: i64) {
        let versions = self.versions.entry(station).or_default();
        if let Err(at) = versions.binary_search(&valid_from) {
            versions.insert(at, valid_from);
        }
    }

    /// Recomputes the Fire Weather Index series of `stations` from their stored daily summaries
    /// (after their observations changed).
    pub fn refresh_fire_weather(
        &mut self,
        store: &Store,
        stations: &BTreeSet<u32>,
    ) -> Result<(), StoreError> {
        for id in stations {
            if let Some(station) = self.stations.get(id) {
                self.fire_weather
                    .rebuild(station, &store.daily_weather(*id)?);
            }
        }
        Ok(())
    }

    /// `station`'s Fire Weather Index series between two days, both included.
    pub fn fire_weather_between(
        &self,
        station: u32,
        from: chrono::NaiveDate,
        to: chrono::NaiveDate,
    ) -> Vec<FireWeather> {
        self.fire_weather.between(station, from, to)
    }

    /// A listed station with how many observations it has reported and the days of its Fire
    /// Weather Index series.
    pub fn station_report(&self, id: u32) -> Option<(&Station, usize, usize)> {
        let station = self.stations.get(&id)?;
        let observations = self.versions.get(&id).map_or(0, Vec::len);
        Some((station, observations, self.fire_weather.days(id)))
    }

    /// [`Correlator::station_report`] of every listed station, by number.
    pub fn station_list(&self) -> Vec<(&Station, usize, usize)> {
        let mut ids: Vec<u32> = self.stations.keys().copied().collect();
        ids.sort_unstable();
        ids.into_iter()
            .filter_map(|id| self.station_report(id))
            .collect()
    }

    /// The station with this number.
    pub fn station(&self, id: u32) -> Option<&Station> {
        self.stations.get(&id)
    }

    /// The one station whose name matches, ignoring case and spacing (BOM files sometimes
    /// carry a wrong number beside the right name).
    pub fn station_named(&self, name: &str) -> Option<&Station> {
        let ids = self.named.get(&normalise_name(name))?;
        let mut ids = ids.iter();
        let first = ids.next()?;
        ids.next()
            .is_none()
            .then(|| self.stations.get(first))
            .flatten()
    }

    /// Joins a detection with the nearest station whose latest observation at or before the
    /// detection is at most the maximum age old.
    pub fn correlate(
        &self,
        store: &Store,
        detection: &FireDetection,
    ) -> Result<Correlation, StoreError> {
        self.correlate_at(
            store,
            detection.latitude,
            detection.longitude,
            detection.acquired_at,
        )
    }

    /// [`Correlator::correlate`] for a detection at this place and instant.
    pub fn correlate_at(
        &self,
        store: &Store,
        latitude: f64,
        longitude: f64,
        acquired_at: chrono::DateTime<chrono::Utc>,
    ) -> Result<Correlation, StoreError> {
        let at = acquired_at.timestamp_millis();
        let in_range = self.stations_in_range(latitude, longitude);
        // Why nothing joined, from the most to the least telling: a reporting station whose
        // latest observation is too old, one with nothing yet at that time, then none reporting.
        let mut status = if in_range.is_empty() {
            WeatherStatus::NoStationInRange
        } else {
            WeatherStatus::NoReportingStation
        };
        for (station, distance_km) in in_range {
            let latest = match self.latest_at(station.id, at) {
                Latest::Within(valid_from) => valid_from,
                Latest::TooOld => {
                    status = WeatherStatus::StaleObservation;
                    continue;
                }
                Latest::NoneYet => {
                    if status != WeatherStatus::StaleObservation {
                        status = WeatherStatus::NoRecentObservation;
                    }
                    continue;
                }
                Latest::NeverReported => continue,
            };
            let Some(obs) = store.weather_at(station.id, latest)? else {
                continue;
            };
            let observed_at = obs.observed_at.unwrap_or_else(|| {
                geo::utc_of_local(obs.date, OBSERVATION_HOUR, station.longitude)
            });
            let age_hours = (acquired_at - observed_at).num_seconds() as f64 / 3600.0;
            let mut joined = conditions(station, &obs, distance_km, age_hours);
            joined.fire_weather = self.fire_weather.on(station.id, obs.date);
            return Ok(Correlation {
                status: WeatherStatus::Matched,
                conditions: Some(joined),
            });
        }
        Ok(Correlation {
            status,
            conditions: None,
        })
    }

    /// Where and when stored detections may join differently now that `station` has an
    /// observation valid from `valid_from` (already added): within the join radius of the
    /// station, from that instant until the maximum age after it or the station's next
    /// version, whichever is first; for the station's earliest version, from the beginning of
    /// time until its next version, since the status of every detection before it and of those
    /// too long after it changes too (no reporting station, or nothing yet, becomes a stale
    /// observation or nothing yet). A daily summary reaches on to the end of time: it enters
    /// the station's Fire Weather Index series, whose codes carry into every later day.
    /// `None` for an unlisted station.
    pub fn reach(&self, station: u32, valid_from: i64, daily: bool) -> Option<Reach> {
        let versions = self.versions.get(&station).map_or(&[][..], Vec::as_slice);
        let station = self.stations.get(&station)?;
        let at = versions.partition_point(|&v| v < valid_from);
        let next = versions
            .get(at + usize::from(versions.get(at) == Some(&valid_from)))
            .map_or(i64::MAX, |&next| next - 1);
        let from = if at == 0 { i64::MIN } else { valid_from };
        let to = if daily {
            i64::MAX
        } else if at == 0 {
            next
        } else {
            next.min(valid_from.saturating_add(self.max_age_ms))
        };
        Some(Reach {
            latitude: station.latitude,
            longitude: station.longitude,
            from,
            to,
        })
    }

    /// Whether a detection at this place and instant (epoch ms) lies within any of `reach`.
    pub fn within(&self, reach: &[Reach], latitude: f64, longitude: f64, at: i64) -> bool {
        reach.iter().any(|r| {
            (r.from..=r.to).contains(&at)
                && geo::distance_km(latitude, longitude, r.latitude, r.longitude)
                    <= self.max_distance_km
        })
    }

    /// Where `station`'s latest observation at or before `at` stands against the maximum age.
    fn latest_at(&self, station: u32, at: i64) -> Latest {
        let Some(versions) = self.versions.get(&station).filter(|v| !v.is_empty()) else {
            return Latest::NeverReported;
        };
        let Some(before) = versions.partition_point(|&v| v <= at).checked_sub(1) else {
            return Latest::NoneYet;
        };
        let latest = versions[before];
        if at - latest <= self.max_age_ms {
            Latest::Within(latest)
        } else {
            Latest::TooOld
        }
    }

    /// Listed stations within the join radius, nearest first (ties by number).
    fn stations_in_range(&self, lat: f64, lon: f64) -> Vec<(&Station, f64)> {
        // One degree of latitude is ~111 km: a cheap bound before the haversine.
        let lat_window = self.max_distance_km / 110.0;
        let mut near: Vec<(&Station, f64)> = self
            .stations
            .values()
            .filter(|s| (s.latitude - lat).abs() <= lat_window)
            .map(|s| (s, geo::distance_km(lat, lon, s.latitude, s.longitude)))
            .filter(|(_, d)| *d <= self.max_distance_km)
            .collect();
        near.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.id.cmp(&b.0.id)));
        near
    }
}

/// Where and when a new weather version can change joins already made (see
/// [`Correlator::reach`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reach {
    latitude: f64,
    longitude: f64,
    /// First instant (epoch ms) a detection can join the version.
    pub from: i64,
    /// Last instant (epoch ms) a detection can join it.
    pub to: i64,
}

/// The time spans `reach` covers, merged where they overlap, in order: the spans to read
/// stored detections from.
pub fn spans(reach: &[Reach]) -> Vec<(i64, i64)> {
    let mut spans: Vec<(i64, i64)> = reach.iter().map(|r| (r.from, r.to)).collect();
    spans.sort_unstable();
    let mut merged: Vec<(i64, i64)> = Vec::with_capacity(spans.len());
    for (from, to) in spans {
        match merged.last_mut() {
            Some(last) if from <= last.1 => last.1 = last.1.max(to),
            _ => merged.push((from, to)),
        }
    }
    merged
}

/// A station's latest observation at some instant.
enum Latest {
    /// Valid from this instant (epoch ms), within the maximum age.
    Within(i64),
    /// Older than the maximum age.
    TooOld,
    /// The station reports, but nothing at or before the instant.
    NoneYet,
    /// The station has never reported.
    NeverReported,
}

fn conditions(
    station: &Station,
    obs: &WeatherObservation,
    distance_km: f64,
    age_hours: f64,
) -> WeatherConditions {
    WeatherConditions {
        station_id: i64::from(station.id),
        station_name: obs.station_name.clone(),
        distance_km: (distance_km * 1000.0).round() / 1000.0,
        observation_date: obs.date.to_string(),
        age_hours: (age_hours * 100.0).round() / 100.0,
        min_temp_c: obs.min_temp_c,
        max_temp_c: obs.max_temp_c,
        rain_mm: obs.rain_mm,
        rh_3pm_pct: obs.rh_3pm_pct,
        wind_3pm_kmh: obs.wind_3pm_kmh,
        max_gust_kmh: obs.max_gust_kmh,
        fire_weather: None,
    }
}

fn normalise_name(name: &str) -> String {
    name.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_uppercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reach(from: i64, to: i64) -> Reach {
        Reach {
            latitude: 0.0,
            longitude: 0.0,
            from,
            to,
        }
    }

    fn station(id: u32, name: &str) -> Station {
        serde_json::from_value(serde_json::json!({
            "id": id, "name": name, "region": "NSW", "latitude": -33.0, "longitude": 151.0
        }))
        .expect("station")
    }

    #[test]
    fn a_name_finds_its_one_station_whatever_the_case_and_spacing_and_a_shared_name_finds_none() {
        let mut correlator = Correlator::default();
        correlator.add_stations([
            station(1, "Sydney  Airport AMO"),
            station(2, "Nowra"),
            station(3, "NOWRA "),
        ]);
        let named = |c: &Correlator, name: &str| c.station_named(name).map(|s| s.id);
        assert_eq!(named(&correlator, "sydney airport amo"), Some(1));
        assert_eq!(named(&correlator, "Nowra"), None, "two stations share it");
        assert_eq!(named(&correlator, "Bourke"), None);
        // Renamed: the new name finds it, the old one no longer does.
        correlator.add_stations([station(3, "Nowra RAN Air Station")]);
        assert_eq!(named(&correlator, "nowra"), Some(2));
        assert_eq!(named(&correlator, "Nowra RAN Air Station"), Some(3));
        correlator.add_stations([station(1, "Richmond")]);
        assert_eq!(named(&correlator, "Sydney Airport AMO"), None);
    }

    #[test]
    fn a_version_reaches_to_the_maximum_age_or_the_next_version_and_the_earliest_back_in_time() {
        let mut correlator = Correlator {
            max_distance_km: 150.0,
            max_age_ms: 100,
            ..Correlator::default()
        };
        correlator.add_stations([station(1, "A")]);
        for v in [1_000, 1_050, 2_000] {
            correlator.add_version(1, v);
        }
        let span = |v| correlator.reach(1, v, false).map(|r| (r.from, r.to));
        assert_eq!(span(1_000), Some((i64::MIN, 1_049)));
        assert_eq!(span(1_050), Some((1_050, 1_150)));
        assert_eq!(span(2_000), Some((2_000, 2_100)));
        assert_eq!(correlator.reach(2, 1_000, false), None, "unlisted");
        // A daily summary's codes carry into every later day.
        let daily = correlator.reach(1, 1_050, true).map(|r| (r.from, r.to));
        assert_eq!(daily, Some((1_050, i64::MAX)));
    }

    #[test]
    fn spans_merge_where_they_overlap_or_touch_and_stay_apart_otherwise() {
        let merged = spans(&[reach(50, 60), reach(0, 10), reach(10, 20), reach(15, 30)]);
        assert_eq!(merged, vec![(0, 30), (50, 60)]);
        assert!(spans(&[]).is_empty());
    }
}

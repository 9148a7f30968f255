//! Stations and the versioned weather table: one entry per station and the instant each
//! observation is valid from, so "latest at or before t" is one step back from `(station, t)`.

use rocksdb::{IteratorMode, WriteBatch};

use super::keys::{decode_weather_key, weather_key};
use super::{Family, Store, StoreError, StoreOp, decode_json};
use crate::event::{Station, WeatherObservation};

impl Store {
    /// Stores or replaces stations.
    pub fn put_stations(&self, stations: &[Station]) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        for station in stations {
            batch.put_cf(
                self.cf(Family::Stations)?,
                station.id.to_be_bytes(),
                serde_json::to_vec(station)?,
            );
        }
        Ok(self.commit(batch)?)
    }

    /// Every stored station.
    pub fn stations(&self) -> Result<Vec<Station>, StoreError> {
        self.db
            .iterator_cf(self.cf(Family::Stations)?, IteratorMode::Start)
            .map(|item| decode_json(Family::Stations, &item?.1))
            .collect()
    }

    /// Stores observations, each under its station and the instant it is valid from (epoch ms),
    /// with `extra` writes in the same atomic batch; callers have checked them against what is
    /// stored.
    pub fn put_weather_with(
        &self,
        observations: &[(i64, WeatherObservation)],
        extra: &[StoreOp],
    ) -> Result<(), StoreError> {
        let mut batch = self.batch_of(extra)?;
        for (valid_from, obs) in observations {
            batch.put_cf(
                self.cf(Family::Weather)?,
                weather_key(obs.station_id, *valid_from),
                serde_json::to_vec(obs)?,
            );
        }
        Ok(self.commit(batch)?)
    }

    /// The observation of `station` valid from exactly `valid_from` (epoch ms).
    pub fn weather_at(
        &self,
        station: u32,
        valid_from: i64,
    ) -> Result<Option<WeatherObservation>, StoreError> {
        self.db
            .get_pinned_cf(self.cf(Family::Weather)?, weather_key(station, valid_from))?
            .map(|v| decode_json(Family::Weather, &v))
            .transpose()
    }

    /// `station`'s daily summaries (point observations left out), in date order: the input of
    /// its Fire Weather Index series.
    pub fn daily_weather(&self, station: u32) -> Result<Vec<WeatherObservation>, StoreError> {
        let cf = self.cf(Family::Weather)?;
        let start = weather_key(station, i64::MIN);
        let mut days = Vec::new();
        let from = IteratorMode::From(&start, rocksdb::Direction::Forward);
        for item in self.db.iterator_cf(cf, from) {
            let (key, value) = item?;
            if decode_weather_key(&key)?.0 != station {
                break;
            }
            let obs: WeatherObservation = decode_json(Family::Weather, &value)?;
            if obs.observed_at.is_none() {
                days.push(obs);
            }
        }
        Ok(days)
    }

    /// `(station, valid from)` of every stored observation, in key order: the correlator's
    /// in-memory index of the versioned weather table.
    pub fn weather_versions(&self) -> Result<Vec<(u32, i64)>, StoreError> {
        self.db
            .iterator_cf(self.cf(Family::Weather)?, IteratorMode::Start)
            .map(|item| decode_weather_key(&item?.0))
            .collect()
    }

    /// Re-keys observations written by FireSight before the weather table was versioned by
    /// time (8-byte `(station, day)` keys) to `(station, valid from)`. Returns how many moved.
    pub(super) fn migrate_weather_keys(&self) -> Result<usize, StoreError> {
        let cf = self.cf(Family::Weather)?;
        // The migration is one atomic batch, so a store has old keys only, new keys only, or
        // none: the first key tells, without a scan at every start.
        let first = self
            .db
            .iterator_cf(cf, IteratorMode::Start)
            .next()
            .transpose()?;
        if first.is_none_or(|(key, _)| key.len() != 8) {
            return Ok(0);
        }
        let mut batch = WriteBatch::default();
        let mut moved = 0;
        for item in self.db.iterator_cf(cf, IteratorMode::Start) {
            let (key, value) = item?;
            if key.len() != 8 {
                continue;
            }
            let obs: WeatherObservation = decode_json(Family::Weather, &value)?;
            let station: Station = self
                .db
                .get_pinned_cf(self.cf(Family::Stations)?, obs.station_id.to_be_bytes())?
                .map(|v| decode_json(Family::Stations, &v))
                .transpose()?
                .ok_or_else(|| StoreError::Corrupt {
                    cf: Family::Weather.name(),
                    reason: format!("observation of unknown station {:06}", obs.station_id),
                })?;
            let valid_from = obs.valid_from(station.longitude).timestamp_millis();
            batch.delete_cf(cf, &key);
            batch.put_cf(cf, weather_key(obs.station_id, valid_from), &value);
            moved += 1;
        }
        if moved > 0 {
            self.commit(batch)?;
        }
        Ok(moved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_keyed_weather_from_before_versioning_is_rekeyed_when_the_store_opens() {
        let dir = tempfile::TempDir::new().expect("tempdir");
        let station: Station = serde_json::from_value(serde_json::json!({
            "id": 66062, "name": "SYDNEY (OBSERVATORY HILL)", "region": "NSW", "height_m": 39.0,
            "latitude": -33.8607, "longitude": 151.205
        }))
        .expect("station");
        let obs: WeatherObservation = serde_json::from_value(serde_json::json!({
            "station_id": 66062, "station_name": "SYDNEY (OBSERVATORY HILL)", "date": "2019-11-12",
            "min_temp_c": null, "max_temp_c": 26.5, "rain_mm": null, "max_gust_kmh": null,
            "temp_9am_c": null, "rh_9am_pct": null, "wind_9am_kmh": null, "temp_3pm_c": null,
            "rh_3pm_pct": null, "wind_3pm_kmh": null, "wind_dir_3pm": null, "mslp_3pm_hpa": null
        }))
        .expect("observation");
        {
            let store = Store::open(dir.path()).expect("open");
            store.put_stations(&[station]).expect("station");
            // The old key: station, then the day as days from the common era, both BE.
            let mut old = 66_062_u32.to_be_bytes().to_vec();
            old.extend_from_slice(&737_375_i32.to_be_bytes());
            let cf = store.cf(Family::Weather).expect("cf");
            let json = serde_json::to_vec(&obs).expect("json");
            store.db.put_cf(cf, old, json).expect("put");
        }
        let store = Store::open(dir.path()).expect("reopen");
        // Local solar midnight at 151.205° E starting 2019-11-12.
        let midnight = 1_573_480_511_000;
        assert_eq!(
            store.weather_versions().expect("versions"),
            vec![(66_062, midnight)]
        );
        assert_eq!(store.weather_at(66_062, midnight).expect("read"), Some(obs));
    }
}

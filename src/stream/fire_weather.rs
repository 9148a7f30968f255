//! The Fire Weather Index table: per station, one row per day of its series, derived from the
//! stored daily observations and recomputed for a station whenever its observations change (a
//! late or corrected day changes every day after it). The weather table stays the only truth,
//! so a restore from the changelog needs nothing more.

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDate;

use crate::event::{FireWeather, Station, WeatherObservation};
use crate::fwi;

/// Every station's series.
#[derive(Debug, Default)]
pub struct FireWeatherTable {
    by_station: HashMap<u32, BTreeMap<NaiveDate, FireWeather>>,
}

impl FireWeatherTable {
    /// Replaces `station`'s series with one computed from `days`, its daily summaries in date
    /// order.
    pub fn rebuild(&mut self, station: &Station, days: &[WeatherObservation]) {
        let inputs = days.iter().filter_map(|obs| {
            obs.noon_weather(station.latitude)
                .map(|weather| (obs.date, weather))
        });
        let series: BTreeMap<NaiveDate, FireWeather> = fwi::series(inputs)
            .iter()
            .map(|day| (day.date, FireWeather::of(day)))
            .collect();
        if series.is_empty() {
            self.by_station.remove(&station.id);
        } else {
            self.by_station.insert(station.id, series);
        }
    }

    /// `station`'s codes on `date`, if its series has that day.
    pub fn on(&self, station: u32, date: NaiveDate) -> Option<&FireWeather> {
        self.by_station.get(&station)?.get(&date)
    }

    /// `station`'s series between `from` and `to`, both included.
    pub fn between(&self, station: u32, from: NaiveDate, to: NaiveDate) -> Vec<FireWeather> {
        self.by_station
            .get(&station)
            .filter(|_| from <= to)
            .map(|series| {
                series
                    .range(from..=to)
                    .map(|(_, day)| day.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Days in `station`'s series.
    pub fn days(&self, station: u32) -> usize {
        self.by_station.get(&station).map_or(0, BTreeMap::len)
    }
}

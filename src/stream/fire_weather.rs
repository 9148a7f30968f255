//! The Fire Weather Index table: per station, one row per day of its series, derived from the
//! stored daily observations and recomputed for a station whenever its observations change (a
//! late or corrected day changes every day after it). The weather table stays the only truth,
//! so a restore from the changelog needs nothing more. Rows are kept compact (36 bytes a
//! station-day, in a sorted vector), since their number follows what senders store.

use std::collections::HashMap;

use chrono::NaiveDate;

use crate::event::{FireWeather, Station, WeatherObservation};
use crate::fwi;

/// One station-day: the published values (one decimal) as `f32`, FFMC, DMC, DC, ISI, BUI, FWI
/// and DSR in that order.
#[derive(Debug, Clone, Copy)]
struct Day {
    date: NaiveDate,
    values: [f32; 7],
    days_in_series: u32,
}

impl Day {
    fn of(day: &fwi::SeriesDay) -> Self {
        let record = FireWeather::of(day);
        let values = [
            record.ffmc,
            record.dmc,
            record.dc,
            record.isi,
            record.bui,
            record.fwi,
            record.dsr,
        ]
        .map(|v| v as f32);
        Self {
            date: day.date,
            values,
            days_in_series: day.days_in_series,
        }
    }

    /// The record, equal to [`FireWeather::of`] of the series day it was made from.
    fn record(&self) -> FireWeather {
        // Back to the nearest one-decimal f64, as the series day's record has it.
        let [ffmc, dmc, dc, isi, bui, fwi, dsr] =
            self.values.map(|v| (f64::from(v) * 10.0).round() / 10.0);
        FireWeather {
            date: self.date.to_string(),
            ffmc,
            dmc,
            dc,
            isi,
            bui,
            fwi,
            dsr,
            danger_class: fwi::danger_class(fwi).to_owned(),
            days_in_series: i32::try_from(self.days_in_series).unwrap_or(i32::MAX),
        }
    }
}

/// Every station's series.
#[derive(Debug, Default)]
pub struct FireWeatherTable {
    /// Per station, its days in date order.
    by_station: HashMap<u32, Vec<Day>>,
}

impl FireWeatherTable {
    /// Replaces `station`'s series with one computed from `days`, its daily summaries in date
    /// order.
    pub fn rebuild(&mut self, station: &Station, days: &[WeatherObservation]) {
        let inputs = days.iter().filter_map(|obs| {
            obs.noon_weather(station.latitude)
                .map(|weather| (obs.date, weather))
        });
        let series: Vec<Day> = fwi::series(inputs).iter().map(Day::of).collect();
        if series.is_empty() {
            self.by_station.remove(&station.id);
        } else {
            self.by_station.insert(station.id, series);
        }
    }

    /// `station`'s codes on `date`, if its series has that day.
    pub fn on(&self, station: u32, date: NaiveDate) -> Option<FireWeather> {
        let days = self.by_station.get(&station)?;
        let at = days.binary_search_by_key(&date, |d| d.date).ok()?;
        Some(days[at].record())
    }

    /// `station`'s series between `from` and `to`, both included.
    pub fn between(&self, station: u32, from: NaiveDate, to: NaiveDate) -> Vec<FireWeather> {
        let Some(days) = self.by_station.get(&station) else {
            return Vec::new();
        };
        let start = days.partition_point(|d| d.date < from);
        days[start..]
            .iter()
            .take_while(|d| d.date <= to)
            .map(Day::record)
            .collect()
    }

    /// Days in `station`'s series.
    pub fn days(&self, station: u32) -> usize {
        self.by_station.get(&station).map_or(0, Vec::len)
    }
}

//! Australian Bureau of Meteorology daily observations and the station list.
//!
//! Quirks of the real files handled here: a UTF-8 byte-order mark, CRLF, the station number
//! carried in the name as `{station 070351}` (sometimes without the closing brace), a leading
//! no-break space in a name, month names instead of numbers, and rows with an empty day.

use chrono::NaiveDate;

use super::{Columns, RecordDecoder, cell, number, optional_number};
use crate::event::{FieldError, Station, WeatherObservation};

/// Header cells reduced to lower-case letters and digits, so `Temp °C- 3:00PM` is `tempc300pm`.
fn compact_key(cell: &str) -> String {
    cell.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Decodes daily-observation rows.
#[derive(Debug)]
pub struct WeatherDecoder {
    station: usize,
    year: usize,
    month: usize,
    day: usize,
    wind_dir_3pm: Option<usize>,
    optional: [Option<usize>; 11],
}

/// Optional numeric columns, in the order of `WeatherDecoder::optional`, with their header names.
const OPTIONAL_COLUMNS: [(&str, &str); 11] = [
    ("minc", "Min °C"),
    ("maxc", "Max °C"),
    ("rainmm", "Rain(mm)"),
    ("maxwindgustspdkmh", "Max wind gust Spd - km/h"),
    ("tempc900am", "Temp °C- 9:00AM"),
    ("rh900am", "RH -% 9:00AM"),
    ("spd900amkmh", "Spd - 9:00AM - km/h"),
    ("tempc300pm", "Temp °C- 3:00PM"),
    ("rh300pm", "RH -% 3:00PM"),
    ("spd300pmkmh", "Spd - 3:00PM - km/h"),
    ("mslphpa300pm", "MSLP- hPa - 3:00PM"),
];

impl RecordDecoder for WeatherDecoder {
    type Item = WeatherObservation;

    fn from_header(header: &csv::StringRecord) -> Result<Self, FieldError> {
        let columns = Columns::new(header, compact_key);
        let station = columns.find("station").ok_or_else(|| {
            FieldError::new(
                1,
                "Station",
                "required column is missing: not a BOM daily-weather file",
            )
        })?;
        Ok(Self {
            station,
            year: columns.require("year")?,
            month: columns.require("month")?,
            day: columns.require("date")?,
            // BOM's header calls the direction column `Dir - 3:00 PM - km/h`; it holds compass points.
            wind_dir_3pm: columns.find("dir300pmkmh"),
            optional: OPTIONAL_COLUMNS.map(|(key, _)| columns.find(key)),
        })
    }

    fn decode(&self, line: u64, record: &csv::StringRecord) -> Result<Self::Item, FieldError> {
        let (station_name, station_id) = station_label(line, cell(record, self.station))?;
        let date = self.date(line, record)?;
        let values = self.values(line, record)?;
        let wind_dir = self
            .wind_dir_3pm
            .map(|i| cell(record, i))
            .filter(|d| !d.is_empty())
            .map(str::to_owned);
        let [min, max, rain, gust, t9, rh9, w9, t3, rh3, w3, p3] = values;
        let observation = WeatherObservation {
            station_id,
            station_name,
            date,
            min_temp_c: min,
            max_temp_c: max,
            rain_mm: rain,
            max_gust_kmh: gust,
            temp_9am_c: t9,
            rh_9am_pct: rh9,
            wind_9am_kmh: w9,
            temp_3pm_c: t3,
            rh_3pm_pct: rh3,
            wind_3pm_kmh: w3,
            wind_dir_3pm: wind_dir,
            mslp_3pm_hpa: p3,
            observed_at: None,
        };
        observation.validate(line)?;
        Ok(observation)
    }
}

impl WeatherDecoder {
    fn date(&self, line: u64, record: &csv::StringRecord) -> Result<NaiveDate, FieldError> {
        let year = integer(line, "Year", cell(record, self.year))?;
        let month = month_number(line, cell(record, self.month))?;
        let day = integer(line, "Date", cell(record, self.day))?;
        let date = i32::try_from(year)
            .ok()
            .and_then(|y| NaiveDate::from_ymd_opt(y, month, day));
        date.ok_or_else(|| {
            FieldError::new(
                line,
                "Date",
                format!("{year}-{month}-{day} is not a calendar day"),
            )
        })
    }

    fn values(
        &self,
        line: u64,
        record: &csv::StringRecord,
    ) -> Result<[Option<f64>; 11], FieldError> {
        let mut values = [None; 11];
        for (slot, (index, (_, field))) in values
            .iter_mut()
            .zip(self.optional.iter().zip(OPTIONAL_COLUMNS))
        {
            if let Some(index) = index {
                *slot = optional_number(line, field, cell(record, *index))?;
            }
        }
        Ok(values)
    }
}

/// Splits `Canberra Airport {station 070351}` into the name and the number.
pub(crate) fn station_label(line: u64, text: &str) -> Result<(String, u32), FieldError> {
    let Some(open) = text.find("{station") else {
        return Err(FieldError::new(
            line,
            "Station",
            format!("`{text}` carries no `{{station N}}` number"),
        ));
    };
    let name = text[..open]
        .trim_matches(|c: char| c.is_whitespace())
        .to_owned();
    let digits: String = text[open + "{station".len()..]
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let id = digits.parse::<u32>().map_err(|_| {
        FieldError::new(
            line,
            "Station",
            format!("`{text}` has no station number after `{{station`"),
        )
    })?;
    Ok((name, id))
}

fn integer(line: u64, field: &str, text: &str) -> Result<u32, FieldError> {
    if text.is_empty() {
        return Err(FieldError::new(line, field, "is empty"));
    }
    text.parse::<u32>()
        .map_err(|_| FieldError::new(line, field, format!("`{text}` is not a whole number")))
}

fn month_number(line: u64, text: &str) -> Result<u32, FieldError> {
    const MONTHS: [&str; 12] = [
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ];
    let lower = text.to_ascii_lowercase();
    if let Some(index) = MONTHS
        .iter()
        .position(|m| lower.len() >= 3 && m.starts_with(&lower))
    {
        return Ok(index as u32 + 1);
    }
    match lower.parse::<u32>() {
        Ok(m) if (1..=12).contains(&m) => Ok(m),
        _ => Err(FieldError::new(
            line,
            "Month",
            format!("`{text}` is not a month"),
        )),
    }
}

/// Decodes the BOM station list (`STN_NUM, NAME, REGION, LATITUDE, LONGITUDE, STN_HT`, …).
#[derive(Debug)]
pub struct StationDecoder {
    id: usize,
    name: usize,
    region: Option<usize>,
    latitude: usize,
    longitude: usize,
    height: Option<usize>,
}

impl RecordDecoder for StationDecoder {
    type Item = Station;

    fn from_header(header: &csv::StringRecord) -> Result<Self, FieldError> {
        let columns = Columns::new(header, compact_key);
        let id = columns.find("stnnum").ok_or_else(|| {
            FieldError::new(
                1,
                "STN_NUM",
                "required column is missing: not a BOM station list",
            )
        })?;
        Ok(Self {
            id,
            name: columns.require("name")?,
            region: columns.find("region").or_else(|| columns.find("state")),
            latitude: columns.require("latitude")?,
            longitude: columns.require("longitude")?,
            height: columns.find("stnht"),
        })
    }

    fn decode(&self, line: u64, record: &csv::StringRecord) -> Result<Station, FieldError> {
        let id_text = cell(record, self.id);
        let id = id_text.parse::<u32>().map_err(|_| {
            FieldError::new(
                line,
                "STN_NUM",
                format!("`{id_text}` is not a station number"),
            )
        })?;
        let station = Station {
            id,
            name: cell(record, self.name).to_owned(),
            region: self
                .region
                .map(|i| cell(record, i).to_owned())
                .unwrap_or_default(),
            latitude: number(line, "LATITUDE", cell(record, self.latitude))?,
            longitude: number(line, "LONGITUDE", cell(record, self.longitude))?,
            height_m: self
                .height
                .map(|i| optional_number(line, "STN_HT", cell(record, i)))
                .transpose()?
                .flatten(),
        };
        station.validate(line)?;
        Ok(station)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn station_label_with_and_without_closing_brace() {
        assert_eq!(
            station_label(2, "Canberra Airport {station 070351}").expect("ok"),
            ("Canberra Airport".into(), 70351)
        );
        assert_eq!(
            station_label(2, "Penrith Lakes AWS {station 067113").expect("ok"),
            ("Penrith Lakes AWS".into(), 67113)
        );
        assert_eq!(
            station_label(2, "\u{a0}Launceston (Ti Tree Bend) {station 091237}")
                .expect("ok")
                .0,
            "Launceston (Ti Tree Bend)"
        );
        assert_eq!(
            station_label(9, "Nowhere").expect_err("no number").field,
            "Station"
        );
    }

    #[test]
    fn months_by_name_or_number() {
        assert_eq!(month_number(1, "September").expect("ok"), 9);
        assert_eq!(month_number(1, "Sep").expect("ok"), 9);
        assert_eq!(month_number(1, "12").expect("ok"), 12);
        assert!(month_number(1, "Ma").is_err());
    }
}

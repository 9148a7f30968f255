//! The Canadian Forest Fire Weather Index System (Van Wagner 1987; the daily equations as
//! published by Van Wagner and Pickett 1985): three moisture codes carried from day to day (FFMC,
//! DMC, DC) and the three indices built on them (ISI, BUI, FWI), plus the daily severity rating.
//!
//! Inputs are one reading per day at local noon: temperature (°C), relative humidity (%), 10 m
//! wind (km/h) and the rain of the 24 hours before it (mm). The day-length factors of the DMC and
//! DC follow the latitude bands of Lawson and Armitage (2008), so stations in the southern
//! hemisphere and the tropics get their own seasons rather than Canada's.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// The codes assumed on the first day of a series (the system's standard start-up values).
pub const STARTUP: MoistureCodes = MoistureCodes {
    ffmc: 85.0,
    dmc: 6.0,
    dc: 15.0,
};

/// Calendar days without a complete reading that a series carries its codes across unchanged; a
/// longer gap restarts it from [`STARTUP`], since codes that old say nothing about the fuels.
pub const MAX_GAP_DAYS: i64 = 5;

/// Days a station's series must have run before its codes are read as the station's own (by the
/// predictors and the growth outlook): the DMC (about a 12-day time lag) has then forgotten its
/// start-up value, and the BUI built on it too. Younger codes are treated as absent.
pub const SPUN_UP_DAYS: i32 = 21;

/// One day of a station's series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SeriesDay {
    /// The day.
    pub date: NaiveDate,
    /// Its codes and indices.
    pub indices: FireWeatherIndices,
    /// Calendar days since the series (re)started from the start-up codes, this one included.
    /// The DC needs about fifty days to forget its start-up value.
    pub days_in_series: u32,
}

/// One day's noon weather, the system's input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NoonWeather {
    /// Air temperature, °C.
    pub temp_c: f64,
    /// Relative humidity, %.
    pub rh_pct: f64,
    /// Wind speed at 10 m, km/h.
    pub wind_kmh: f64,
    /// Rain in the 24 hours to noon, mm.
    pub rain_mm: f64,
    /// Month of the day, 1–12.
    pub month: u32,
    /// Latitude of the station, degrees (negative south).
    pub latitude: f64,
}

/// The three moisture codes carried from one day to the next.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MoistureCodes {
    /// Fine Fuel Moisture Code: litter and fine fuels, about two-thirds of a day to respond.
    pub ffmc: f64,
    /// Duff Moisture Code: loosely compacted organic layers, about two weeks.
    pub dmc: f64,
    /// Drought Code: deep compact organic layers, about seven weeks.
    pub dc: f64,
}

/// A day's codes and indices.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FireWeatherIndices {
    /// The moisture codes at the end of the day.
    pub codes: MoistureCodes,
    /// Initial Spread Index: expected rate of spread.
    pub isi: f64,
    /// Buildup Index: fuel available for combustion.
    pub bui: f64,
    /// Fire Weather Index: fire intensity.
    pub fwi: f64,
    /// Daily Severity Rating: difficulty of control, linear in effort.
    pub dsr: f64,
}

impl NoonWeather {
    /// Refuses readings outside what the equations are defined for, naming the field.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        let finite = [
            ("temp_c", self.temp_c),
            ("rh_pct", self.rh_pct),
            ("wind_kmh", self.wind_kmh),
            ("rain_mm", self.rain_mm),
            ("latitude", self.latitude),
        ];
        for (field, value) in finite {
            if !value.is_finite() {
                return Err((field, format!("{value} is not a number")));
            }
        }
        let ranges = [
            ("rh_pct", self.rh_pct, 0.0, 100.0),
            ("wind_kmh", self.wind_kmh, 0.0, 500.0),
            ("rain_mm", self.rain_mm, 0.0, 2_000.0),
            ("temp_c", self.temp_c, -90.0, 60.0),
            ("latitude", self.latitude, -90.0, 90.0),
        ];
        for (field, value, low, high) in ranges {
            if !(low..=high).contains(&value) {
                return Err((field, format!("{value} is outside {low}..={high}")));
            }
        }
        if !(1..=12).contains(&self.month) {
            return Err(("month", format!("{} is not a month", self.month)));
        }
        Ok(())
    }
}

impl MoistureCodes {
    /// The codes at the end of a day with `weather`, starting from `self` (yesterday's).
    pub fn next_day(&self, weather: &NoonWeather) -> Self {
        Self {
            ffmc: ffmc(self.ffmc, weather),
            dmc: dmc(self.dmc, weather),
            dc: dc(self.dc, weather),
        }
    }

    /// The indices these codes give with a day's noon wind.
    pub fn indices(&self, wind_kmh: f64) -> FireWeatherIndices {
        let isi = isi(self.ffmc, wind_kmh);
        let bui = bui(self.dmc, self.dc);
        let fwi = fwi(isi, bui);
        FireWeatherIndices {
            codes: *self,
            isi,
            bui,
            fwi,
            dsr: 0.0272 * fwi.powf(1.77),
        }
    }
}

/// Runs the system over a station's days with a complete reading, in ascending date order
/// (a day out of order is ignored). Days missing from `days` are gaps: up to
/// [`MAX_GAP_DAYS`] in a row carry the codes over; a longer gap starts a new series.
pub fn series(days: impl IntoIterator<Item = (NaiveDate, NoonWeather)>) -> Vec<SeriesDay> {
    let mut out: Vec<SeriesDay> = Vec::new();
    let mut codes = STARTUP;
    let mut started: Option<NaiveDate> = None;
    let mut last: Option<NaiveDate> = None;
    for (date, weather) in days {
        if last.is_some_and(|last| date <= last) {
            continue;
        }
        let restart = last.is_none_or(|last| (date - last).num_days() - 1 > MAX_GAP_DAYS);
        if restart {
            codes = STARTUP;
            started = Some(date);
        }
        codes = codes.next_day(&weather);
        let since = started.map_or(0, |start| (date - start).num_days());
        out.push(SeriesDay {
            date,
            indices: codes.indices(weather.wind_kmh),
            days_in_series: u32::try_from(since + 1).unwrap_or(u32::MAX),
        });
        last = Some(date);
    }
    out
}

/// The fire danger class of a Fire Weather Index, on the European Forest Fire Information
/// System's scale (EFFIS, 2020 thresholds): `very_low` below 5.2, `low` to 11.2, `moderate` to
/// 21.3, `high` to 38, `very_high` to 50, `extreme` from 50. Canada's own classes are calibrated
/// per region; EFFIS's are the ones used across countries.
pub fn danger_class(fwi: f64) -> &'static str {
    match fwi {
        v if v >= 50.0 => "extreme",
        v if v >= 38.0 => "very_high",
        v if v >= 21.3 => "high",
        v if v >= 11.2 => "moderate",
        v if v >= 5.2 => "low",
        _ => "very_low",
    }
}

/// Fine-fuel moisture content (%) of an FFMC, and back.
fn ffmc_to_moisture(ffmc: f64) -> f64 {
    147.2 * (101.0 - ffmc) / (59.5 + ffmc)
}

fn moisture_to_ffmc(moisture: f64) -> f64 {
    (59.5 * (250.0 - moisture) / (147.2 + moisture)).clamp(0.0, 101.0)
}

/// Fine Fuel Moisture Code after a day, from yesterday's.
pub fn ffmc(yesterday: f64, w: &NoonWeather) -> f64 {
    let (t, h, wind) = (w.temp_c, w.rh_pct, w.wind_kmh);
    let mut m0 = ffmc_to_moisture(yesterday);
    // Rain: the canopy holds the first half millimetre.
    if w.rain_mm > 0.5 {
        let rf = w.rain_mm - 0.5;
        let wetting = 42.5 * rf * (-100.0 / (251.0 - m0)).exp() * (1.0 - (-6.93 / rf).exp());
        let saturated = if m0 > 150.0 {
            0.0015 * (m0 - 150.0).powi(2) * rf.sqrt()
        } else {
            0.0
        };
        m0 = (m0 + wetting + saturated).min(250.0);
    }
    let humid = 1.0 - (-0.115 * h).exp();
    let drying_emc =
        0.942 * h.powf(0.679) + 11.0 * ((h - 100.0) / 10.0).exp() + 0.18 * (21.1 - t) * humid;
    let moisture = if m0 > drying_emc {
        let k0 = 0.424 * (1.0 - (h / 100.0).powf(1.7))
            + 0.0694 * wind.sqrt() * (1.0 - (h / 100.0).powi(8));
        let kd = k0 * 0.581 * (0.0365 * t).exp();
        drying_emc + (m0 - drying_emc) * 10f64.powf(-kd)
    } else {
        let wetting_emc =
            0.618 * h.powf(0.753) + 10.0 * ((h - 100.0) / 10.0).exp() + 0.18 * (21.1 - t) * humid;
        if m0 < wetting_emc {
            let dry = (100.0 - h) / 100.0;
            let k1 = 0.424 * (1.0 - dry.powf(1.7)) + 0.0694 * wind.sqrt() * (1.0 - dry.powi(8));
            let kw = k1 * 0.581 * (0.0365 * t).exp();
            wetting_emc - (wetting_emc - m0) * 10f64.powf(-kw)
        } else {
            m0
        }
    };
    moisture_to_ffmc(moisture)
}

/// Effective day length (hours) for the DMC, by month and latitude band.
fn dmc_day_length(month: u32, latitude: f64) -> f64 {
    const NORTH_46: [f64; 12] = [
        6.5, 7.5, 9.0, 12.8, 13.9, 13.9, 12.4, 10.9, 9.4, 8.0, 7.0, 6.0,
    ];
    const NORTH_20: [f64; 12] = [7.9, 8.4, 8.9, 9.5, 9.9, 10.2, 10.1, 9.7, 9.1, 8.6, 8.1, 7.8];
    const SOUTH_20: [f64; 12] = [10.1, 9.6, 9.1, 8.5, 8.1, 7.8, 7.9, 8.3, 8.9, 9.4, 9.9, 10.2];
    const SOUTH_40: [f64; 12] = [
        11.5, 10.5, 9.2, 7.9, 6.8, 6.2, 6.5, 7.4, 8.7, 10.0, 11.2, 11.8,
    ];
    let i = month.clamp(1, 12) as usize - 1;
    if latitude >= 30.0 {
        NORTH_46[i]
    } else if latitude >= 10.0 {
        NORTH_20[i]
    } else if latitude > -10.0 {
        9.0
    } else if latitude > -30.0 {
        SOUTH_20[i]
    } else {
        SOUTH_40[i]
    }
}

/// Duff Moisture Code after a day, from yesterday's.
pub fn dmc(yesterday: f64, w: &NoonWeather) -> f64 {
    let mut p0 = yesterday;
    if w.rain_mm > 1.5 {
        let re = 0.92 * w.rain_mm - 1.27;
        let m0 = 20.0 + (5.6348 - p0 / 43.43).exp();
        let b = if p0 <= 33.0 {
            100.0 / (0.5 + 0.3 * p0)
        } else if p0 <= 65.0 {
            14.0 - 1.3 * p0.ln()
        } else {
            6.2 * p0.ln() - 17.2
        };
        let mr = m0 + 1000.0 * re / (48.77 + b * re);
        p0 = (244.72 - 43.43 * (mr - 20.0).ln()).max(0.0);
    }
    let t = w.temp_c.max(-1.1);
    let drying =
        1.894 * (t + 1.1) * (100.0 - w.rh_pct) * dmc_day_length(w.month, w.latitude) * 1e-6;
    (p0 + 100.0 * drying).max(0.0)
}

/// Day-length adjustment of the DC's potential evapotranspiration, by month and hemisphere.
fn dc_day_length(month: u32, latitude: f64) -> f64 {
    const NORTH: [f64; 12] = [
        -1.6, -1.6, -1.6, 0.9, 3.8, 5.8, 6.4, 5.0, 2.4, 0.4, -1.6, -1.6,
    ];
    const SOUTH: [f64; 12] = [
        6.4, 5.0, 2.4, 0.4, -1.6, -1.6, -1.6, -1.6, -1.6, 0.9, 3.8, 5.8,
    ];
    let i = month.clamp(1, 12) as usize - 1;
    if latitude > 20.0 {
        NORTH[i]
    } else if latitude <= -20.0 {
        SOUTH[i]
    } else {
        1.4
    }
}

/// Drought Code after a day, from yesterday's.
pub fn dc(yesterday: f64, w: &NoonWeather) -> f64 {
    let mut d0 = yesterday;
    if w.rain_mm > 2.8 {
        let rd = 0.83 * w.rain_mm - 1.27;
        let q0 = 800.0 * (-d0 / 400.0).exp();
        let qr = q0 + 3.937 * rd;
        d0 = (400.0 * (800.0 / qr).ln()).max(0.0);
    }
    let t = w.temp_c.max(-2.8);
    let evapotranspiration = (0.36 * (t + 2.8) + dc_day_length(w.month, w.latitude)).max(0.0);
    d0 + 0.5 * evapotranspiration
}

/// Initial Spread Index from the FFMC and the wind.
pub fn isi(ffmc: f64, wind_kmh: f64) -> f64 {
    let m = ffmc_to_moisture(ffmc);
    let wind = (0.05039 * wind_kmh).exp();
    let fine_fuel = 91.9 * (-0.1386 * m).exp() * (1.0 + m.powf(5.31) / 4.93e7);
    0.208 * wind * fine_fuel
}

/// Buildup Index from the DMC and the DC.
pub fn bui(dmc: f64, dc: f64) -> f64 {
    if dmc <= 0.0 && dc <= 0.0 {
        return 0.0;
    }
    let u = if dmc <= 0.4 * dc {
        0.8 * dmc * dc / (dmc + 0.4 * dc)
    } else {
        dmc - (1.0 - 0.8 * dc / (dmc + 0.4 * dc)) * (0.92 + (0.0114 * dmc).powf(1.7))
    };
    u.max(0.0)
}

/// Fire Weather Index from the ISI and the BUI.
pub fn fwi(isi: f64, bui: f64) -> f64 {
    let duff = if bui <= 80.0 {
        0.626 * bui.powf(0.809) + 2.0
    } else {
        1000.0 / (25.0 + 108.64 * (-0.023 * bui).exp())
    };
    let b = 0.1 * isi * duff;
    if b > 1.0 {
        (2.72 * (0.434 * b.ln()).powf(0.647)).exp()
    } else {
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(temp_c: f64, rh_pct: f64, wind_kmh: f64, rain_mm: f64, month: u32) -> NoonWeather {
        NoonWeather {
            temp_c,
            rh_pct,
            wind_kmh,
            rain_mm,
            month,
            latitude: 46.0,
        }
    }

    #[test]
    fn one_dry_april_day_from_the_startup_codes() {
        // Hand-worked: DMC = 6 + 100·1.894·18.1·58·12.8·1e-6; DC = 15 + 0.5·(0.36·19.8 + 0.9).
        let codes = STARTUP.next_day(&day(17.0, 42.0, 25.0, 0.0, 4));
        assert!((codes.dmc - 8.5451).abs() < 1e-3, "{codes:?}");
        assert!((codes.dc - 19.014).abs() < 1e-3, "{codes:?}");
        assert!(
            codes.ffmc > STARTUP.ffmc,
            "a dry day dries fine fuels: {codes:?}"
        );
    }

    #[test]
    fn heavy_rain_wets_every_code_and_nothing_leaves_its_range() {
        let dry = MoistureCodes {
            ffmc: 95.0,
            dmc: 80.0,
            dc: 600.0,
        };
        let wet = dry.next_day(&day(12.0, 95.0, 5.0, 60.0, 7));
        assert!(
            wet.ffmc < 30.0 && wet.dmc < 40.0 && wet.dc < 500.0,
            "{wet:?}"
        );
        let extremes = [
            day(-60.0, 0.0, 0.0, 0.0, 1),
            day(55.0, 0.0, 400.0, 0.0, 7),
            day(55.0, 100.0, 0.0, 1_900.0, 7),
            day(0.0, 100.0, 500.0, 0.0, 12),
        ];
        for w in extremes {
            let mut codes = STARTUP;
            for _ in 0..400 {
                codes = codes.next_day(&w);
                let i = codes.indices(w.wind_kmh);
                for v in [codes.ffmc, codes.dmc, codes.dc, i.isi, i.bui, i.fwi, i.dsr] {
                    assert!(v.is_finite() && v >= 0.0, "{w:?} gave {i:?}");
                }
                assert!(codes.ffmc <= 101.0);
            }
        }
    }

    #[test]
    fn seasons_follow_the_hemisphere() {
        let january = |latitude| NoonWeather {
            latitude,
            ..day(25.0, 30.0, 10.0, 0.0, 1)
        };
        // January is summer in the south: longer drying days there than at 46° N.
        assert!(dmc(10.0, &january(-35.0)) > dmc(10.0, &january(46.0)));
        assert!(dc(100.0, &january(-35.0)) > dc(100.0, &january(46.0)));
        assert_eq!(dmc_day_length(1, 0.0), 9.0);
        assert_eq!(dc_day_length(7, 5.0), 1.4);
    }

    #[test]
    fn a_short_gap_carries_the_codes_and_a_long_one_restarts_them() {
        let start = NaiveDate::from_ymd_opt(2019, 8, 1).expect("date");
        let hot = day(32.0, 15.0, 20.0, 0.0, 8);
        let at = |offset: i64| (start + chrono::Days::new(offset as u64), hot);
        let days = series([at(0), at(1), at(1), at(7), at(14)]);
        let dates: Vec<i64> = days.iter().map(|d| (d.date - start).num_days()).collect();
        assert_eq!(dates, [0, 1, 7, 14], "the repeated day is ignored");
        // Day 7 follows a five-day gap: carried, so drier than day 1.
        assert!(days[2].indices.codes.dc > days[1].indices.codes.dc);
        assert_eq!(days[2].days_in_series, 8);
        // Day 14 follows a six-day gap: a new series from the start-up codes.
        assert_eq!(days[3].days_in_series, 1);
        assert_eq!(days[3].indices.codes, days[0].indices.codes);
    }

    #[test]
    fn danger_classes_follow_the_effis_thresholds() {
        let classes: Vec<&str> = [0.0, 5.2, 11.19, 11.2, 21.3, 37.9, 38.0, 50.0, 120.0]
            .into_iter()
            .map(danger_class)
            .collect();
        assert_eq!(
            classes,
            [
                "very_low",
                "low",
                "low",
                "moderate",
                "high",
                "high",
                "very_high",
                "extreme",
                "extreme"
            ]
        );
    }

    #[test]
    fn the_checker_names_the_field() {
        let mut w = day(20.0, 40.0, 10.0, 0.0, 6);
        assert!(w.check().is_ok());
        w.rh_pct = 140.0;
        assert_eq!(w.check().unwrap_err().0, "rh_pct");
        w.rh_pct = 40.0;
        w.wind_kmh = f64::NAN;
        assert_eq!(w.check().unwrap_err().0, "wind_kmh");
    }
}

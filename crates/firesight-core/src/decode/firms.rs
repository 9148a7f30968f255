//! NASA FIRMS active-fire CSV: MODIS (`brightness`/`bright_t31`) and VIIRS (`bright_ti4`/`bright_ti5`), archive and NRT.

use chrono::{NaiveDate, NaiveTime, TimeZone, Utc};

use super::{Columns, RecordDecoder, cell, header_key, number};
use crate::event::{ConfidenceClass, FieldError, FireDetection, Instrument};

/// Decodes FIRMS rows by column name, so column order and optional columns may vary.
#[derive(Debug)]
pub struct FirmsDecoder {
    instrument: Instrument,
    latitude: usize,
    longitude: usize,
    brightness: usize,
    brightness_background: usize,
    scan: usize,
    track: usize,
    acq_date: usize,
    acq_time: usize,
    satellite: usize,
    confidence: usize,
    frp: usize,
    daynight: usize,
    instrument_column: Option<usize>,
    version: Option<usize>,
    detection_type: Option<usize>,
}

impl FirmsDecoder {
    /// This row's instrument. Files named like MODIS (`brightness`, `bright_t31`) may hold VIIRS
    /// rows: FIRMS archive downloads of VIIRS (`fire_archive_SV-C2_*`, `fire_archive_J1V-C2_*`)
    /// use those names with `instrument` = `VIIRS`, the I4 and I5 channels in them. So the
    /// `instrument` column decides, or else the satellite (Terra and Aqua carry MODIS, the
    /// others VIIRS); only a MODIS row under VIIRS column names is a contradiction.
    fn row_instrument(
        &self,
        line: u64,
        record: &csv::StringRecord,
        satellite: &str,
    ) -> Result<Instrument, FieldError> {
        let by_satellite = match satellite {
            "Terra" | "Aqua" => Instrument::Modis,
            _ => Instrument::Viirs,
        };
        let written = self.instrument_column.map_or("", |i| cell(record, i));
        let instrument = if written.is_empty() {
            match self.instrument {
                // VIIRS column names: a VIIRS file whatever the satellite says (checked below).
                Instrument::Viirs => Instrument::Viirs,
                Instrument::Modis => by_satellite,
            }
        } else if written.eq_ignore_ascii_case("MODIS") {
            Instrument::Modis
        } else if written.eq_ignore_ascii_case("VIIRS") {
            Instrument::Viirs
        } else {
            return Err(FieldError::new(
                line,
                "instrument",
                format!("unknown instrument `{written}` (FIRMS has MODIS and VIIRS)"),
            ));
        };
        if instrument == Instrument::Modis && self.instrument == Instrument::Viirs {
            return Err(FieldError::new(
                line,
                "instrument",
                "`MODIS` contradicts the VIIRS columns (`bright_ti4`) of this file",
            ));
        }
        if instrument != by_satellite {
            return Err(FieldError::new(
                line,
                "satellite",
                format!("{satellite} does not carry {}", instrument.as_str()),
            ));
        }
        Ok(instrument)
    }
}

/// An error a detection's own check raised about a brightness channel, named as this file names
/// the column (a VIIRS row of an archive file reads its I4 channel from `brightness`).
fn as_file_names(mut error: FieldError, fire: &str, background: &str) -> FieldError {
    error.field = match error.field.as_str() {
        "brightness" | "bright_ti4" => fire.to_owned(),
        "bright_t31" | "bright_ti5" => background.to_owned(),
        _ => return error,
    };
    error
}

impl RecordDecoder for FirmsDecoder {
    type Item = FireDetection;

    fn from_header(header: &csv::StringRecord) -> Result<Self, FieldError> {
        let columns = Columns::new(header, header_key);
        let instrument = match (columns.find("brightness"), columns.find("bright_ti4")) {
            (Some(_), _) => Instrument::Modis,
            (None, Some(_)) => Instrument::Viirs,
            (None, None) => {
                return Err(FieldError::new(
                    1,
                    "brightness",
                    "header has neither `brightness` (MODIS) nor `bright_ti4` (VIIRS): not a FIRMS file",
                ));
            }
        };
        let (fire, background) = match instrument {
            Instrument::Modis => ("brightness", "bright_t31"),
            Instrument::Viirs => ("bright_ti4", "bright_ti5"),
        };
        Ok(Self {
            instrument,
            latitude: columns.require("latitude")?,
            longitude: columns.require("longitude")?,
            brightness: columns.require(fire)?,
            brightness_background: columns.require(background)?,
            scan: columns.require("scan")?,
            track: columns.require("track")?,
            acq_date: columns.require("acq_date")?,
            acq_time: columns.require("acq_time")?,
            satellite: columns.require("satellite")?,
            confidence: columns.require("confidence")?,
            frp: columns.require("frp")?,
            daynight: columns.require("daynight")?,
            instrument_column: columns.find("instrument"),
            version: columns.find("version"),
            detection_type: columns.find("type"),
        })
    }

    fn decode(&self, line: u64, record: &csv::StringRecord) -> Result<FireDetection, FieldError> {
        let (fire, background) = match self.instrument {
            Instrument::Modis => ("brightness", "bright_t31"),
            Instrument::Viirs => ("bright_ti4", "bright_ti5"),
        };
        let satellite = satellite(line, cell(record, self.satellite))?;
        let instrument = self.row_instrument(line, record, satellite)?;
        let (confidence_percent, confidence) = confidence(line, cell(record, self.confidence))?;
        let detection = FireDetection {
            latitude: number(line, "latitude", cell(record, self.latitude))?,
            longitude: number(line, "longitude", cell(record, self.longitude))?,
            acquired_at: acquisition_time(
                line,
                cell(record, self.acq_date),
                cell(record, self.acq_time),
            )?,
            satellite: satellite.to_owned(),
            instrument,
            brightness_k: number(line, fire, cell(record, self.brightness))?,
            brightness_background_k: number(
                line,
                background,
                cell(record, self.brightness_background),
            )?,
            scan_km: number(line, "scan", cell(record, self.scan))?,
            track_km: number(line, "track", cell(record, self.track))?,
            confidence_percent,
            confidence,
            frp_mw: number(line, "frp", cell(record, self.frp))?,
            daytime: daynight(line, cell(record, self.daynight))?,
            version: self
                .version
                .map(|i| cell(record, i).to_owned())
                .unwrap_or_default(),
            detection_type: self
                .detection_type
                .map(|i| detection_type(line, cell(record, i)))
                .transpose()?
                .flatten(),
        };
        detection
            .validate(line)
            .map_err(|e| as_file_names(e, fire, background))?;
        Ok(detection)
    }
}

/// Date `YYYY-MM-DD` plus `HHMM` (zero-padded or not, `HH:MM` accepted) in UTC.
fn acquisition_time(
    line: u64,
    date: &str,
    time: &str,
) -> Result<chrono::DateTime<Utc>, FieldError> {
    let day = NaiveDate::parse_from_str(date, "%Y-%m-%d").map_err(|_| {
        FieldError::new(
            line,
            "acq_date",
            format!("`{date}` is not a YYYY-MM-DD date"),
        )
    })?;
    let digits: String = time.chars().filter(|c| *c != ':').collect();
    let bad_time = || FieldError::new(line, "acq_time", format!("`{time}` is not an HHMM time"));
    if digits.is_empty() || digits.len() > 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad_time());
    }
    let hhmm: u32 = digits.parse().map_err(|_| bad_time())?;
    let clock = NaiveTime::from_hms_opt(hhmm / 100, hhmm % 100, 0).ok_or_else(bad_time)?;
    Ok(Utc.from_utc_datetime(&day.and_time(clock)))
}

/// Normalises the satellite codes of archive and NRT products to one name per spacecraft.
fn satellite(line: u64, text: &str) -> Result<&'static str, FieldError> {
    let name = match text.to_ascii_uppercase().as_str() {
        "T" | "TERRA" => "Terra",
        "A" | "AQUA" => "Aqua",
        "N" | "NPP" | "SNPP" | "SUOMI NPP" | "SUOMI-NPP" => "Suomi NPP",
        "1" | "N20" | "J1" | "NOAA-20" | "NOAA20" => "NOAA-20",
        "2" | "N21" | "J2" | "NOAA-21" | "NOAA21" => "NOAA-21",
        _ => {
            return Err(FieldError::new(
                line,
                "satellite",
                format!("unknown satellite `{text}`"),
            ));
        }
    };
    Ok(name)
}

/// MODIS writes a percentage; VIIRS writes `l`/`n`/`h` (NRT files spell them out).
fn confidence(line: u64, text: &str) -> Result<(Option<f32>, ConfidenceClass), FieldError> {
    if let Some(class) = ConfidenceClass::parse(text) {
        return Ok((None, class));
    }
    let percent = number(line, "confidence", text)?;
    crate::event::check_range(line, "confidence", percent, 0.0, 100.0)?;
    let percent = percent as f32; // checked to lie in 0..=100, so nothing is lost

    Ok((Some(percent), ConfidenceClass::from_percent(percent)))
}

fn daynight(line: u64, text: &str) -> Result<bool, FieldError> {
    match text {
        "D" | "d" => Ok(true),
        "N" | "n" => Ok(false),
        _ => Err(FieldError::new(
            line,
            "daynight",
            format!("`{text}` is neither D nor N"),
        )),
    }
}

fn detection_type(line: u64, text: &str) -> Result<Option<u8>, FieldError> {
    if text.is_empty() {
        return Ok(None);
    }
    match text.parse::<u8>() {
        Ok(t) if t <= 3 => Ok(Some(t)),
        _ => Err(FieldError::new(
            line,
            "type",
            format!("`{text}` is not a FIRMS type (0-3)"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{CsvStream, StreamDecoder};

    fn decode_all(input: &str) -> Vec<super::super::Decoded<FireDetection>> {
        let mut stream = CsvStream::<FirmsDecoder>::new();
        let mut out = Vec::new();
        stream.push(input.as_bytes(), &mut out).expect("header");
        stream.finish(&mut out).expect("finish");
        out
    }

    #[test]
    fn modis_archive_row_with_crlf() {
        let rows = decode_all(
            "latitude,longitude,brightness,scan,track,acq_date,acq_time,satellite,instrument,confidence,version,bright_t31,frp,daynight,type\r\n\
             -11.807,142.0583,313,1,1,2019-08-01,0056,Terra,MODIS,48,6.3,297.3,6.6,D,0\r\n",
        );
        let (_, d) = rows[0].as_ref().expect("decodes");
        assert_eq!(d.acquired_at.to_rfc3339(), "2019-08-01T00:56:00+00:00");
        assert_eq!(
            (d.confidence_percent, d.confidence),
            (Some(48.0), ConfidenceClass::Nominal)
        );
        assert_eq!(d.detection_type, Some(0));
    }

    #[test]
    fn viirs_nrt_row_with_word_confidence() {
        let rows = decode_all(
            "latitude,longitude,bright_ti4,scan,track,acq_date,acq_time,satellite,confidence,version,bright_ti5,frp,daynight\n\
             48.18656,-64.9242,301.04,0.42,0.61,2025-10-29,729,N,nominal,2.0NRT,277.49,1.27,N\n",
        );
        let (_, d) = rows[0].as_ref().expect("decodes");
        assert_eq!(
            (d.instrument, d.satellite.as_str()),
            (Instrument::Viirs, "Suomi NPP")
        );
        assert_eq!(d.acquired_at.to_rfc3339(), "2025-10-29T07:29:00+00:00");
        assert_eq!(
            (d.confidence_percent, d.confidence),
            (None, ConfidenceClass::Nominal)
        );
    }

    #[test]
    fn bad_fields_are_named_with_their_line() {
        let rows = decode_all(
            "latitude,longitude,bright_ti4,scan,track,acq_date,acq_time,satellite,confidence,version,bright_ti5,frp,daynight\n\
             48.1,-64.9,301.04,0.42,0.61,2025-10-29,2575,N,n,2.0NRT,277.49,1.27,N\n\
             48.1,-64.9,301.04,0.42,0.61,2025-10-29,0729,N,n,2.0NRT,277.49,abc,N\n",
        );
        let errors: Vec<_> = rows
            .iter()
            .map(|r| r.as_ref().expect_err("refused").error.clone())
            .collect();
        assert_eq!((errors[0].line, errors[0].field.as_str()), (2, "acq_time"));
        assert_eq!((errors[1].line, errors[1].field.as_str()), (3, "frp"));
    }

    #[test]
    fn viirs_archive_rows_under_modis_column_names_are_viirs() {
        // The shape of FIRMS' `fire_archive_SV-C2_*.csv` and `fire_archive_J1V-C2_*.csv`.
        let rows = decode_all(
            "latitude,longitude,brightness,scan,track,acq_date,acq_time,satellite,instrument,confidence,version,bright_t31,frp,daynight,type\n\
             -33.40123,150.2178,340.25,0.39,0.36,2019-11-08,0318,N,VIIRS,n,2,290.12,5.61,D,0\n\
             -33.40511,150.2201,367.0,0.52,0.42,2019-11-08,0412,1,VIIRS,h,2,296.3,22.4,D,0\n\
             -33.4,150.2,320.5,1.0,1.0,2019-11-08,0015,T,MODIS,76,6.03,290.2,19.1,D,0\n\
             -33.4,150.2,320.5,0.4,0.4,2019-11-08,0015,T,VIIRS,n,2,290.2,19.1,D,0\n\
             -33.4,150.2,720.5,0.4,0.4,2019-11-08,0015,N,VIIRS,n,2,290.2,19.1,D,0\n\
             -33.4,150.2,320.5,0.4,0.4,2019-11-08,0015,N,AVHRR,n,2,290.2,19.1,D,0\n",
        );
        let (_, snpp) = rows[0].as_ref().expect("VIIRS archive row decodes");
        assert_eq!(
            (snpp.instrument, snpp.satellite.as_str(), snpp.confidence),
            (Instrument::Viirs, "Suomi NPP", ConfidenceClass::Nominal)
        );
        assert_eq!(
            (snpp.brightness_k, snpp.brightness_background_k),
            (340.25, 290.12)
        );
        let (_, noaa20) = rows[1].as_ref().expect("J1V archive row decodes");
        assert_eq!(
            (noaa20.instrument, noaa20.satellite.as_str()),
            (Instrument::Viirs, "NOAA-20")
        );
        let (_, modis) = rows[2].as_ref().expect("a MODIS row of the same shape");
        assert_eq!(modis.instrument, Instrument::Modis);
        let refused: Vec<(u64, String)> = rows[3..]
            .iter()
            .map(|r| {
                let e = &r.as_ref().expect_err("refused").error;
                (e.line, e.field.clone())
            })
            .collect();
        assert_eq!(
            refused,
            [
                (5, "satellite".to_owned()),
                (6, "brightness".to_owned()),
                (7, "instrument".to_owned())
            ],
            "Terra carries no VIIRS; a range error names this file's column; AVHRR is not FIRMS"
        );
    }

    #[test]
    fn modis_rows_under_viirs_column_names_are_refused() {
        let rows = decode_all(
            "latitude,longitude,bright_ti4,scan,track,acq_date,acq_time,satellite,instrument,confidence,version,bright_ti5,frp,daynight\n\
             48.1,-64.9,301.04,0.42,0.61,2025-10-29,0729,T,MODIS,n,2.0NRT,277.49,1.27,N\n",
        );
        let e = &rows[0].as_ref().expect_err("refused").error;
        assert_eq!(e.field, "instrument");
    }

    #[test]
    fn acquisition_dates_outside_the_satellite_era_are_refused() {
        let far = chrono::Utc::now() + chrono::Duration::days(2);
        let text = format!(
            "latitude,longitude,brightness,scan,track,acq_date,acq_time,satellite,instrument,confidence,version,bright_t31,frp,daynight,type\n\
             -33.4,150.2,320.5,1.0,1.0,+262142-12-31,0015,T,MODIS,76,6.03,290.2,19.1,D,0\n\
             -33.4,150.2,320.5,1.0,1.0,-262143-01-01,0015,T,MODIS,76,6.03,290.2,19.1,D,0\n\
             -33.4,150.2,320.5,1.0,1.0,2099-01-01,0015,T,MODIS,76,6.03,290.2,19.1,D,0\n\
             -33.4,150.2,320.5,1.0,1.0,1999-12-31,2359,T,MODIS,76,6.03,290.2,19.1,D,0\n\
             -33.4,150.2,320.5,1.0,1.0,{},0000,T,MODIS,76,6.03,290.2,19.1,D,0\n\
             -33.4,150.2,320.5,1.0,1.0,2000-11-01,0000,T,MODIS,76,6.03,290.2,19.1,D,0\n",
            far.format("%Y-%m-%d")
        );
        let rows = decode_all(&text);
        for (i, row) in rows[..5].iter().enumerate() {
            let e = &row.as_ref().expect_err("refused").error;
            assert_eq!(e.field, "acq_date", "row {i}: {}", e.reason);
        }
        assert!(rows[5].is_ok(), "November 2000, MODIS' first fires");
    }

    #[test]
    fn header_without_brightness_is_refused() {
        let mut stream = CsvStream::<FirmsDecoder>::new();
        let err = stream
            .push(b"a,b,c\n1,2,3\n", &mut Vec::new())
            .expect_err("not FIRMS");
        assert_eq!(err.field, "brightness");
    }
}

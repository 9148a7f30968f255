//! Decoders on the real shared files.

use firesight::event::{ConfidenceClass, Instrument};
use firesight::stream::decode::{FirmsDecoder, StationDecoder, WeatherDecoder};

use super::support::{decode_file, shared};

#[test]
fn firms_files_in_both_column_sets_decode_completely() {
    let cases = [
        ("firms/fire_archive_M6_96619.csv", 36_011, Instrument::Modis),
        (
            "firms/MODIS_C6_USA_contiguous_and_Hawaii_24h.2020-10-01.csv",
            2_575,
            Instrument::Modis,
        ),
        (
            "firms/SUOMI_VIIRS_C2_USA_contiguous_and_Hawaii_7d.2025-11-05.csv",
            13_100,
            Instrument::Viirs,
        ),
    ];
    for (file, rows, instrument) in cases {
        let decoded = decode_file::<FirmsDecoder>(&shared(file));
        let rejected: Vec<_> = decoded
            .iter()
            .filter_map(|d| d.as_ref().err())
            .take(3)
            .collect();
        assert!(rejected.is_empty(), "{file}: {rejected:?}");
        assert_eq!(decoded.len(), rows, "{file}");
        assert!(
            decoded
                .iter()
                .flatten()
                .all(|(_, d)| d.instrument == instrument),
            "{file}"
        );
    }
}

#[test]
fn nrt_and_archive_spellings_normalise() {
    let modis = decode_file::<FirmsDecoder>(&shared(
        "firms/MODIS_C6_USA_contiguous_and_Hawaii_24h.2020-10-01.csv",
    ));
    let (line, first) = modis[0].as_ref().expect("first row");
    assert_eq!(*line, 2);
    assert_eq!(
        (first.satellite.as_str(), first.version.as_str()),
        ("Terra", "6.0NRT")
    );
    assert_eq!(first.acquired_at.to_rfc3339(), "2020-09-30T04:05:00+00:00");
    assert_eq!(
        (first.confidence_percent, first.daytime),
        (Some(54.0), false)
    );

    let viirs = decode_file::<FirmsDecoder>(&shared(
        "firms/SUOMI_VIIRS_C2_USA_contiguous_and_Hawaii_7d.2025-11-05.csv",
    ));
    let classes: std::collections::HashSet<_> =
        viirs.iter().flatten().map(|(_, d)| d.confidence).collect();
    assert!(
        classes.contains(&ConfidenceClass::Nominal) && classes.len() >= 2,
        "{classes:?}"
    );
    assert!(
        viirs
            .iter()
            .flatten()
            .all(|(_, d)| d.satellite == "Suomi NPP" && d.confidence_percent.is_none())
    );
}

#[test]
fn bom_weather_quirks_decode() {
    let decoded = decode_file::<WeatherDecoder>(&shared(
        "weather/australia_bom_daily_weather_2019-05_2020-06.csv",
    ));
    // 11,848 data rows (the shared README says 11,847; the file has one more).
    assert_eq!(decoded.len(), 11_848);
    let rejected: Vec<_> = decoded.iter().filter_map(|d| d.as_ref().err()).collect();
    // Two rows have an empty day of month: they are refused by name, not skipped.
    assert_eq!(rejected.len(), 2, "{rejected:?}");
    assert!(
        rejected
            .iter()
            .all(|r| r.error.field == "Date" && r.error.reason.contains("empty"))
    );
    let obs: Vec<_> = decoded.iter().flatten().map(|(_, o)| o).collect();
    // UTF-8 BOM before the header, full month names, values by column name.
    let canberra = obs
        .iter()
        .find(|o| o.station_id == 70_351)
        .expect("Canberra decoded");
    assert_eq!(
        (
            canberra.station_name.as_str(),
            canberra.date.to_string().as_str()
        ),
        ("Canberra Airport", "2019-05-01")
    );
    assert_eq!(
        (
            canberra.max_temp_c,
            canberra.rh_3pm_pct,
            canberra.wind_dir_3pm.as_deref()
        ),
        (Some(20.8), Some(61.0), Some("WNW"))
    );
    // A station label without its closing brace, and a name with a leading no-break space.
    assert!(
        obs.iter()
            .any(|o| o.station_id == 67_113 && o.station_name == "Penrith Lakes AWS")
    );
    assert!(
        obs.iter()
            .any(|o| o.station_id == 91_237 && o.station_name == "Launceston (Ti Tree Bend)")
    );
}

#[test]
fn bom_station_list_decodes() {
    let decoded =
        decode_file::<StationDecoder>(&shared("weather/australia_bom_weather_stations.csv"));
    assert!(decoded.iter().all(Result::is_ok));
    assert_eq!(decoded.len(), 716);
    let (_, canberra) = decoded
        .iter()
        .flatten()
        .find(|(_, s)| s.id == 70_351)
        .expect("Canberra");
    assert_eq!(
        (canberra.latitude, canberra.longitude),
        (-35.3088, 149.2003)
    );
}

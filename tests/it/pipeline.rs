//! The pipeline slice on the real sample: correlation, recall, restart, idempotence, rejections.

use std::collections::HashSet;
use std::sync::Arc;

use firesight::event::WeatherStatus;
use firesight::index::{FlatIndex, IndexPoint, PointAttrs, VectorIndex, VectorIndexRead};
use firesight::stream::IngestSession;
use firesight::stream::decode::{CsvStream, FirmsDecoder};

use super::support::{ARCHIVE_ROWS, loaded, open, sample, sample_files};

/// Finds the stored event for an archive row by its printed fields.
fn event_at(lat: f64, lon: f64, date: &str, time: &str) -> firesight::event::FireEventV2 {
    let store = &loaded().service.store;
    let at: chrono::DateTime<chrono::Utc> = format!("{date}T{}:{}:00Z", &time[..2], &time[2..])
        .parse()
        .expect("time");
    let ms = at.timestamp_millis();
    let page = store.list_events(ms, ms, None, 100).expect("list");
    page.events
        .into_iter()
        .find(|e| {
            (e.location.latitude - lat).abs() < 1e-6 && (e.location.longitude - lon).abs() < 1e-6
        })
        .expect("event stored")
}

/// The ten nearest sequence numbers for each probe vector.
fn neighbour_ids(index: &dyn VectorIndexRead, probes: &[Vec<f32>]) -> Vec<Vec<u64>> {
    probes
        .iter()
        .map(|q| {
            index
                .search(q, 10)
                .expect("search")
                .iter()
                .map(|n| n.seq)
                .collect()
        })
        .collect()
}

#[test]
fn the_whole_archive_is_stored_and_indexed() {
    let service = &loaded().service;
    assert_eq!(service.store.event_count(), ARCHIVE_ROWS);
    assert_eq!(service.index.len() as u64, ARCHIVE_ROWS);
}

#[test]
fn known_detections_join_the_expected_station_and_day() {
    // Expected pairs come from the independent Python join in models/train_event_encoder.py.
    // (lat, lon, UTC date, time, station, local day, distance km)
    let cases = [
        (
            -32.9315,
            151.5561,
            "2019-08-21",
            "2342",
            66_062,
            "2019-08-22",
            108.341,
        ),
        (
            -12.5966,
            131.1589,
            "2019-09-15",
            "1419",
            14_015,
            "2019-09-15",
            34.714,
        ),
        (
            -32.4224,
            116.1356,
            "2019-09-13",
            "0222",
            9_225,
            "2019-09-13",
            61.177,
        ),
        (
            -11.4235,
            130.4807,
            "2019-08-01",
            "1615",
            14_015,
            "2019-08-02",
            119.923,
        ),
    ];
    for (lat, lon, date, time, station, day, km) in cases {
        let event = event_at(lat, lon, date, time);
        let w = event.weather_conditions.expect("weather joined");
        assert_eq!(
            (w.station_id, w.observation_date.as_str()),
            (station, day),
            "{lat},{lon}"
        );
        assert!(
            (w.distance_km - km).abs() < 0.01,
            "{} vs {km}",
            w.distance_km
        );
        assert_eq!(event.weather_status, Some(WeatherStatus::Matched));
    }
    let far = event_at(-16.0861, 136.9023, "2019-08-28", "0505");
    assert_eq!(
        (far.weather_status, far.weather_conditions),
        (Some(WeatherStatus::NoStationInRange), None)
    );
}

#[test]
fn join_count_equals_the_independent_implementation() {
    let store = &loaded().service.store;
    let page = store
        .list_events(i64::MIN, i64::MAX, None, ARCHIVE_ROWS as usize)
        .expect("list");
    let matched = page
        .events
        .iter()
        .filter(|e| e.weather_status == Some(WeatherStatus::Matched))
        .count();
    // 5,779 of 36,011 detections have a reporting station within 150 km (Python reference).
    assert_eq!(matched, 5_779);
}

#[test]
fn recall_at_10_against_brute_force_on_the_loaded_vectors() {
    let service = &loaded().service;
    let vectors: Vec<_> = service
        .store
        .vectors()
        .expect("vectors")
        .map(|v| v.expect("vector"))
        .collect();
    let exact = FlatIndex::new(service.index.dim());
    let points: Vec<IndexPoint<'_>> = vectors
        .iter()
        .map(|v| IndexPoint {
            seq: v.seq,
            vector: &v.vector,
            attrs: PointAttrs::default(),
        })
        .collect();
    exact.insert(&points).expect("exact index");
    let (mut hits, mut wanted) = (0usize, 0usize);
    for query in vectors.iter().step_by(36) {
        let truth = exact.search(&query.vector, 10).expect("exact");
        // Count by distance, so ties among identical vectors are not misread as misses.
        let cutoff = truth.last().expect("ten").distance + 1e-6;
        let got = service.index.search(&query.vector, 10).expect("hnsw");
        hits += got.iter().filter(|n| n.distance <= cutoff).count().min(10);
        wanted += 10;
    }
    let recall = hits as f64 / wanted as f64;
    assert!(
        recall >= 0.99,
        "recall@10 = {recall:.4} over {} queries",
        wanted / 10
    );
}

#[test]
fn ingesting_the_files_again_changes_nothing() {
    let service = &loaded().service;
    let before = (
        service.store.event_count(),
        service.index.len(),
        service.store.dead_letter_count(),
    );
    let results = firesight::stream::load_files(&service.pipeline, &sample_files(), 4096, false)
        .expect("reload");
    let firms = &results
        .iter()
        .find(|(p, _)| p.ends_with("fire_archive_M6_96619.csv"))
        .expect("firms")
        .1;
    assert_eq!(
        (firms.accepted, firms.duplicates, firms.rejected_total),
        (0, ARCHIVE_ROWS, 0)
    );
    let weather = &results
        .iter()
        .find(|(p, _)| p.to_string_lossy().contains("daily_weather"))
        .expect("weather")
        .1;
    assert_eq!(weather.accepted, 0, "weather re-ingest stores nothing new");
    // The weather file's refused rows are refused again, but not stored a second time.
    assert!(weather.rejected_total > 0);
    assert_eq!(
        before,
        (
            service.store.event_count(),
            service.index.len(),
            service.store.dead_letter_count()
        )
    );
}

#[test]
fn weather_rejections_name_line_field_and_reason() {
    let service = &loaded().service;
    let dead = service.store.dead_letters(5000).expect("dead letters");
    let weather: Vec<_> = dead
        .iter()
        .filter(|d| d.source.contains("daily_weather"))
        .collect();
    // Hobart reports two different observations for 2020-06-01 and 06-02: the later rows are refused.
    assert!(weather.iter().any(|d| d.error.line == 9724
        && d.error.field == "Date"
        && d.error.reason.contains("line 9299")));
    // Albany, Melbourne (Olympic Park) and Newcastle University are not in the station list.
    assert!(
        weather
            .iter()
            .any(|d| d.error.field == "Station" && d.error.reason.contains("009500"))
    );
    // The autofilled Ballarat numbers resolve by name and are not refused.
    assert!(!weather.iter().any(|d| d.error.reason.contains("Ballarat")));
}

#[test]
fn a_restart_keeps_every_event_and_gives_the_same_neighbours() {
    let dir = tempfile::TempDir::new().expect("tempdir");
    let probe: Vec<Vec<f32>>;
    let before: Vec<Vec<u64>>;
    {
        let service = open(dir.path(), &sample_files());
        let vectors: Vec<_> = service
            .store
            .vectors()
            .expect("vectors")
            .map(|v| v.expect("vector"))
            .collect();
        probe = vectors
            .iter()
            .step_by(700)
            .map(|v| v.vector.clone())
            .collect();
        before = neighbour_ids(service.index.as_ref(), &probe);
        assert_eq!(service.store.event_count(), ARCHIVE_ROWS);
    }
    let service = open(dir.path(), &[]);
    assert_eq!(
        (service.store.event_count(), service.index.len() as u64),
        (ARCHIVE_ROWS, ARCHIVE_ROWS)
    );
    let after: Vec<Vec<u64>> = neighbour_ids(service.index.as_ref(), &probe);
    assert_eq!(before, after);
}

#[test]
fn a_malformed_line_is_rejected_and_the_rest_accepted() {
    let dir = tempfile::TempDir::new().expect("tempdir");
    let service = open(dir.path(), &[]);
    let text = std::fs::read_to_string(sample("fire_archive_M6_96619.csv")).expect("archive");
    let mut lines: Vec<String> = text.lines().take(200).map(str::to_owned).collect();
    lines[56] = lines[56].replace(",D,", ",X,"); // line 57: daynight is neither D nor N
    let rest = lines[120].split_once(',').expect("row").1.to_owned();
    lines[120] = format!("-123.5,{rest}"); // line 121: latitude out of range
    let body = lines.join("\r\n");
    let mut session = IngestSession::new(
        Arc::clone(&service.pipeline),
        CsvStream::<FirmsDecoder>::new(),
        "test",
        64,
    );
    for chunk in body.as_bytes().chunks(1000) {
        session.push(chunk).expect("push");
    }
    let outcome = session.finish().expect("finish");
    assert_eq!((outcome.accepted, outcome.duplicates), (197, 0));
    let got: HashSet<_> = outcome
        .rejected
        .iter()
        .map(|r| (r.line, r.field.as_str()))
        .collect();
    assert_eq!(got, HashSet::from([(57, "daynight"), (121, "latitude")]));
    let dead = service.store.dead_letters(10).expect("dead letters");
    assert_eq!(dead.len(), 2);
    assert!(
        dead.iter()
            .any(|d| d.raw.contains(",X,") && d.error.reason.contains("neither D nor N"))
    );
}

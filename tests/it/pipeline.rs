//! The pipeline slice on the real sample: correlation, recall, restart, idempotence, rejections.

use std::collections::HashSet;
use std::sync::Arc;

use firesight::event::WeatherStatus;
use firesight::index::{
    BBox, FlatIndex, IndexPoint, NativeHnsw, NativeParams, PointAttrs, SearchFilter, VectorIndex,
    VectorIndexRead,
};
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
    assert_eq!(service.index().len() as u64, ARCHIVE_ROWS);
}

#[test]
fn a_two_thread_replay_of_a_new_region_leaves_every_point_findable() {
    // The archive indexed and snapshotted, then 2,575 US detections (a region the graph has
    // never seen) replayed on two threads. Without the engine's check after a parallel insert,
    // 9-40 of them were left where no search could find them.
    let dir = tempfile::TempDir::new().expect("tempdir");
    {
        let service = open(dir.path(), &sample_files());
        assert!(service.save_index().expect("snapshot"));
        let us =
            super::support::shared("firms/MODIS_C6_USA_contiguous_and_Hawaii_24h.2020-10-01.csv");
        service.load(&[us], false).expect("US detections");
    }
    let mut settings = super::support::settings(dir.path());
    settings.index.build_threads = 2;
    let service = firesight::app::Service::open(settings, &[], false).expect("reopen");
    let lost = service
        .store
        .vectors_from(ARCHIVE_ROWS)
        .expect("replayed")
        .map(|v| v.expect("vector"))
        .filter(|v| service.index().search(&v.vector, 1).expect("search")[0].distance > 0.0)
        .count();
    assert_eq!(lost, 0, "replayed points no search finds");
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
    // Listed stations lie within 150 km of this one, but none of them is in the weather file.
    let silent = event_at(-16.0861, 136.9023, "2019-08-28", "0505");
    assert_eq!(
        (silent.weather_status, silent.weather_conditions),
        (Some(WeatherStatus::NoReportingStation), None)
    );
}

#[test]
fn join_count_equals_the_independent_implementation() {
    let store = &loaded().service.store;
    let page = store
        .list_events(i64::MIN, i64::MAX, None, ARCHIVE_ROWS as usize)
        .expect("list");
    let count = |status| {
        page.events
            .iter()
            .filter(|e| e.weather_status == Some(status))
            .count()
    };
    // `python3 scripts/weather_coverage.py`, plain Python over the same CSVs: 5,779 of 36,011
    // detections have a reporting station within 150 km with a summary for their local day;
    // 1,500 have no listed station within 150 km; the other 28,732 are near listed stations
    // that never appear in the weather file. None is stale or waiting: the file reports every
    // day for the stations it has.
    assert_eq!(count(WeatherStatus::Matched), 5_779);
    assert_eq!(count(WeatherStatus::NoStationInRange), 1_500);
    assert_eq!(count(WeatherStatus::NoReportingStation), 28_732);
    assert_eq!(count(WeatherStatus::StaleObservation), 0);
    assert_eq!(count(WeatherStatus::NoRecentObservation), 0);
}

/// Recall@10 of the service's index against brute force over the same vectors and attributes,
/// counted by distance so ties among identical vectors are not misread as misses.
fn recall_on_loaded(filter: Option<&SearchFilter>) -> (f64, usize) {
    let service = &loaded().service;
    let stored: Vec<_> = service
        .store
        .vectors()
        .expect("vectors")
        .map(|v| v.expect("vector"))
        .collect();
    let attrs: Vec<PointAttrs> = stored
        .iter()
        .map(|v| {
            PointAttrs::of(
                &service
                    .store
                    .event(&v.event_id)
                    .expect("read")
                    .expect("event"),
            )
        })
        .collect();
    let exact = FlatIndex::new(service.index().dim());
    let points: Vec<IndexPoint<'_>> = stored
        .iter()
        .zip(&attrs)
        .map(|(v, a)| IndexPoint {
            seq: v.seq,
            vector: &v.vector,
            attrs: *a,
        })
        .collect();
    exact.insert(&points).expect("exact index");
    let (mut hits, mut wanted) = (0usize, 0usize);
    for query in stored.iter().step_by(36) {
        let truth = exact
            .search_filtered(&query.vector, 10, filter)
            .expect("exact");
        let Some(last) = truth.last() else { continue };
        let cutoff = last.distance + 1e-6;
        let got = service
            .index()
            .search_filtered(&query.vector, 10, filter)
            .expect("index");
        assert!(got.len() <= truth.len());
        hits += got
            .iter()
            .filter(|n| n.distance <= cutoff)
            .count()
            .min(truth.len());
        wanted += truth.len();
    }
    (hits as f64 / wanted as f64, wanted)
}

#[test]
fn recall_at_10_against_brute_force_on_the_loaded_vectors() {
    let (recall, wanted) = recall_on_loaded(None);
    assert!(
        recall >= 0.995,
        "recall@10 = {recall:.4} over {} queries",
        wanted / 10
    );
}

#[test]
fn filtered_recall_at_10_on_the_loaded_vectors() {
    // Nominal or high confidence (most of the archive: the graph walk, far above the
    // exact-scan cut-off) and New South Wales in September 2019 (a few thousand: scanned exactly).
    let high = SearchFilter {
        min_confidence: Some(1),
        ..SearchFilter::default()
    };
    let nsw_september = SearchFilter {
        bbox: Some(BBox {
            min_lon: 141.0,
            min_lat: -37.5,
            max_lon: 154.0,
            max_lat: -28.0,
        }),
        time: Some((1_567_296_000, 1_569_887_999)), // 2019-09-01 to 2019-09-30, UTC
        ..SearchFilter::default()
    };
    for filter in [high, nsw_september] {
        let (recall, wanted) = recall_on_loaded(Some(&filter));
        assert!(wanted > 1000, "{filter:?} leaves too little to measure");
        assert!(recall >= 0.995, "{filter:?}: recall@10 = {recall:.4}");
    }
}

#[test]
fn ingesting_the_files_again_changes_nothing() {
    let service = &loaded().service;
    let before = (
        service.store.event_count(),
        service.index().len(),
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
            service.index().len(),
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
    let (model, total);
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
        before = neighbour_ids(service.index().as_ref(), &probe);
        assert_eq!(service.store.event_count(), ARCHIVE_ROWS);
        assert!(
            service.save_index().expect("snapshot"),
            "the native engine writes one"
        );
    }
    // The snapshot holds the very graph: the same neighbours, in the same order.
    {
        let service = open(dir.path(), &[]);
        assert_eq!(
            (service.store.event_count(), service.index().len() as u64),
            (ARCHIVE_ROWS, ARCHIVE_ROWS)
        );
        assert_eq!(before, neighbour_ids(service.index().as_ref(), &probe));
        // Events stored after the snapshot, then a stop without writing a new one (a crash).
        let us = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/data/firms/MODIS_C6_USA_contiguous_and_Hawaii_24h.2020-10-01.csv");
        service.load(&[us], false).expect("extra detections");
        model = service.embedder().model_version().to_owned();
        total = service.store.event_count();
        assert!(
            total > ARCHIVE_ROWS + 2000,
            "{total} events after the US file"
        );
    }
    // The old snapshot plus a replay of what came after it.
    let service = open(dir.path(), &[]);
    assert_eq!(service.index().len() as u64, total);
    let extra: Vec<_> = service
        .store
        .vectors_from(ARCHIVE_ROWS)
        .expect("replayed")
        .map(|v| v.expect("vector"))
        .collect();
    let missed: Vec<&str> = extra
        .iter()
        .filter(|v| service.index().search(&v.vector, 1).expect("search")[0].distance > 0.0)
        .map(|v| v.event_id.as_str())
        .collect();
    let native = service
        .pipeline
        .space()
        .native
        .clone()
        .expect("native engine");
    let missed_256 = extra
        .iter()
        .filter(|v| {
            native
                .search_with_ef(&v.vector, 1, 256, None)
                .expect("search")[0]
                .distance
                > 0.0
        })
        .count();
    eprintln!(
        "replayed {} events; {} not found by their own vector, {missed_256} at ef 256",
        extra.len(),
        missed.len()
    );
    // Serial builds (the default) leave none; parallel ones left 16-40 of these 2,575 unreachable.
    assert!(
        missed.is_empty(),
        "{} of {} replayed events not found, e.g. {:?}",
        missed.len(),
        extra.len(),
        &missed[..missed.len().min(5)]
    );
    // A damaged snapshot is refused and the index rebuilt from the store.
    drop(service);
    let snap = firesight::lifecycle::snapshot_path(&super::support::settings(dir.path()), &model);
    let mut bytes = std::fs::read(&snap).expect("snapshot file");
    let at = bytes.len() / 3;
    bytes[at] ^= 1;
    std::fs::write(&snap, bytes).expect("damage");
    let service = open(dir.path(), &[]);
    assert_eq!(service.index().len() as u64, total);
    for p in &probe {
        assert_eq!(
            service.index().search(p, 1).expect("search")[0].distance,
            0.0
        );
    }
}

#[test]
fn a_snapshot_left_beside_a_wiped_and_refilled_store_is_not_used() {
    let dir = tempfile::TempDir::new().expect("tempdir");
    let text = std::fs::read_to_string(sample("fire_archive_M6_96619.csv")).expect("archive");
    let lines: Vec<&str> = text.lines().collect();
    let part = |name: &str, rows: std::ops::Range<usize>| {
        let path = dir.path().join(name);
        let mut body = vec![lines[0]];
        body.extend(&lines[rows]);
        std::fs::write(&path, body.join("\n")).expect("part");
        path
    };
    let (first, second) = (part("first.csv", 1..201), part("second.csv", 5001..5301));
    // Without the search index's builder thread, which keeps the store open a while after a
    // service is dropped.
    let open = |files: &[std::path::PathBuf]| {
        let mut settings = super::support::settings(dir.path());
        settings.search.enabled = false;
        firesight::app::Service::open(settings, files, false).expect("service opens")
    };
    {
        let service = open(&[first]);
        assert_eq!(service.store.event_count(), 200);
        assert!(service.save_index().expect("snapshot"));
    }
    // The store is wiped and refilled with other, more detections; the old snapshot stays
    // beside it and covers fewer sequence numbers than the new store holds.
    // (While the new store is filling, the snapshot is newer than it and refused; the next
    // start finds a store longer than the snapshot.)
    std::fs::remove_dir_all(dir.path().join("db")).expect("wipe");
    drop(open(&[second]));
    let service = open(&[]);
    assert_eq!(service.store.event_count(), 300);
    assert_eq!(
        service.index().len(),
        300,
        "the index holds the new store's events only, not the old snapshot's"
    );
    for stored in service.store.vectors().expect("vectors") {
        let stored = stored.expect("vector");
        let hit = &service.index().search(&stored.vector, 1).expect("search")[0];
        assert_eq!(hit.distance, 0.0, "{} finds itself", stored.event_id);
    }
}

/// `firesight load` writes the snapshot of the index it built while loading, so the next start
/// loads the graph instead of building it all again from the store (at a million detections,
/// minutes).
#[test]
fn the_load_command_leaves_its_index_snapshot_for_the_next_start() {
    let dir = tempfile::TempDir::new().expect("tempdir");
    let text = std::fs::read_to_string(sample("fire_archive_M6_96619.csv")).expect("archive");
    let part = dir.path().join("part.csv");
    std::fs::write(&part, text.lines().take(301).collect::<Vec<_>>().join("\n")).expect("part");
    let mut settings = super::support::settings(dir.path());
    settings.search.enabled = false;
    let config = dir.path().join("firesight.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\npath = {:?}\n[embed]\nmanifest = {:?}\n[index]\nbuild_threads = 1\n[search]\nenabled = false\n",
            settings.store.path, settings.embed.manifest
        ),
    )
    .expect("config");
    let loaded = std::process::Command::new(env!("CARGO_BIN_EXE_firesight"))
        .args(["--config", config.to_str().expect("utf-8"), "load"])
        .arg(&part)
        .output()
        .expect("run firesight load");
    assert!(
        loaded.status.success(),
        "firesight load failed: {}",
        String::from_utf8_lossy(&loaded.stderr)
    );
    let service = firesight::app::Service::open(settings.clone(), &[], false).expect("opens");
    let model = service.embedder().model_version().to_owned();
    let snap = firesight::lifecycle::snapshot_path(&settings, &model);
    assert!(
        snap.is_file(),
        "no snapshot at {} after the load",
        snap.display()
    );
    assert_eq!(
        (service.store.event_count(), service.index().len()),
        (300, 300)
    );
    // The snapshot is accepted and covers every stored event: nothing to replay. (A refused one
    // is only logged and the index rebuilt, which would also give 300 points.)
    let (_, covered) =
        firesight::lifecycle::open_space(&settings, &service.store, service.embedder())
            .expect("space");
    assert_eq!(covered.seq, service.store.next_seq().checked_sub(1));
    assert!(covered.seq.is_some(), "the snapshot covers the load");
    for stored in service.store.vectors().expect("vectors") {
        let stored = stored.expect("vector");
        let hit = &service.index().search(&stored.vector, 1).expect("search")[0];
        assert_eq!(hit.distance, 0.0, "{} finds itself", stored.event_id);
    }
}

/// `index.ef_construction = 0` (the default) takes the value measured for the serving encoder's
/// space from its manifest entry; a configured value wins; the snapshot records what the graph
/// was built with.
#[test]
fn the_event_space_is_built_with_its_encoders_measured_ef_construction() {
    let dir = tempfile::TempDir::new().expect("tempdir");
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(super::support::repo().join("models/manifest.json")).expect("manifest"),
    )
    .expect("manifest JSON");
    let open = |ef_construction: usize| {
        let mut settings = super::support::settings(dir.path());
        settings.search.enabled = false;
        settings.index.ef_construction = ef_construction;
        firesight::app::Service::open(settings, &[], false).expect("service opens")
    };
    let service = open(0);
    let model = service.embedder().model_version().to_owned();
    let (name, version) = model.split_once('@').expect("name@version");
    let measured = manifest["models"]
        .as_array()
        .expect("models")
        .iter()
        .find(|m| m["name"] == name && m["version"] == version)
        .and_then(|m| m["index"]["ef_construction"].as_u64())
        .expect("the default encoder's manifest entry gives its index setting");
    let native = service.pipeline.space().native.clone().expect("native");
    assert_eq!(native.params().ef_construction as u64, measured);
    assert_ne!(
        measured,
        firesight::config::DEFAULT_EF_CONSTRUCTION as u64,
        "the measured value is not just the default"
    );
    assert!(service.save_index().expect("snapshot"));
    drop((native, service));
    let snap = firesight::lifecycle::snapshot_path(&super::support::settings(dir.path()), &model);
    let read_meta = || {
        let (_, meta) = NativeHnsw::load(&snap, NativeParams::new(16)).expect("snapshot loads");
        serde_json::from_slice::<serde_json::Value>(&meta).expect("metadata JSON")
    };
    assert_eq!(read_meta()["ef_construction"].as_u64(), Some(measured));

    let service = open(150);
    let native = service.pipeline.space().native.clone().expect("native");
    assert_eq!(
        native.params().ef_construction,
        150,
        "a configured value wins"
    );
    assert!(service.save_index().expect("snapshot"));
    drop((native, service));
    assert_eq!(read_meta()["ef_construction"].as_u64(), Some(150));
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
    // Each stored record is timed once from its chunk's arrival; the refused two are not.
    let timed = service
        .pipeline
        .metrics()
        .ingest_latency
        .with_label_values(&["firms", "file"])
        .get_sample_count();
    assert_eq!(timed, 197);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_batches_queued_behind_a_busy_writer_are_written_together_each_with_its_own_tally() {
    use firesight::event::FireDetection;
    use firesight::stream::Lane;

    let dir = tempfile::TempDir::new().expect("tempdir");
    let service =
        super::support::open_async(super::support::settings(dir.path()), Vec::new()).await;
    // Batch `b` holds four detections of its own, 20 km apart, in one granule per batch.
    let detection = |b: u32, i: u32| FireDetection {
        brightness_k: 330.0 + f64::from(i),
        ..super::support::terra_detection(
            -33.0 - f64::from(b) * 0.2,
            150.0 + f64::from(i) * 0.2,
            &format!("2019-11-08T03:{b:02}:00Z"),
        )
    };
    let mut batches: Vec<Vec<(u64, FireDetection)>> = (0..8)
        .map(|b| {
            (0..4)
                .map(|i| (u64::from(i) + 2, detection(b, i)))
                .collect()
        })
        .collect();
    // Batch 3 repeats one of batch 2's detections and one of its own: two duplicates, as if
    // the batches had been written one after another.
    batches[3].push((6, detection(2, 1)));
    batches[3].push((7, detection(3, 0)));
    let unique = 8 * 4;

    let pipeline = Arc::clone(&service.pipeline);
    let tallies = tokio::task::spawn_blocking(move || {
        // While a bulk writer holds the lock, eight live batches queue behind it.
        let writers = pipeline
            .quiesce(|| {
                // One at a time, each queued before the next starts: the group writes them in
                // the order they queued, so the tallies below are those of this order.
                batches
                    .into_iter()
                    .enumerate()
                    .map(|(queued, batch)| {
                        let writer = {
                            let pipeline = Arc::clone(&pipeline);
                            std::thread::spawn(move || {
                                pipeline.ingest_detections_in(Lane::Live, batch)
                            })
                        };
                        let deadline =
                            std::time::Instant::now() + std::time::Duration::from_secs(30);
                        while pipeline.live_batches_waiting() <= queued
                            && std::time::Instant::now() < deadline
                        {
                            std::thread::sleep(std::time::Duration::from_millis(1));
                        }
                        writer
                    })
                    .collect::<Vec<_>>()
            })
            .expect("quiesce");
        writers
            .into_iter()
            .map(|w| {
                let tally = w.join().expect("writer").expect("ingest");
                (tally.accepted, tally.duplicates)
            })
            .collect::<Vec<_>>()
    })
    .await
    .expect("join");

    let mut expected = vec![(4, 0); 8];
    expected[3] = (4, 2);
    assert_eq!(tallies, expected);
    assert_eq!(service.store.event_count(), unique);
    assert_eq!(service.index().len() as u64, unique);
    let groups = &service.pipeline.metrics().live_group_batches;
    assert_eq!(groups.get_sample_sum(), 8.0, "every batch written once");
    assert_eq!(
        groups.get_sample_count(),
        1,
        "the eight queued batches went in one write"
    );
    assert_eq!(service.pipeline.live_batches_waiting(), 0);
}

#[test]
fn a_detection_summarises_the_sensor_readings_within_its_radius_and_window_across_cells() {
    use firesight::event::SensorReading;

    let dir = tempfile::TempDir::new().expect("tempdir");
    let service = open(dir.path(), &[]);
    let settings = &service.settings.correlate;
    assert_eq!(
        (settings.sensor_radius_km, settings.sensor_window_minutes),
        (10.0, 60),
        "the defaults this test is laid out for"
    );
    let at = "2019-11-08T03:30:00Z";
    let detection = super::support::terra_detection(-33.45, 150.25, at);
    let time = |minutes: i64| detection.acquired_at + chrono::Duration::minutes(minutes);
    let reading =
        |id: &str, lat: f64, lon: f64, minutes: i64, t: f64, rh: f64, pm: f64| SensorReading {
            sensor_id: id.into(),
            latitude: lat,
            longitude: lon,
            observed_at: time(minutes),
            temperature_c: Some(t),
            humidity_pct: Some(rh),
            pm25_ugm3: Some(pm),
            wind_kmh: None,
        };
    // The detection's 0.1° cell is (-335, 1502); the two that count lie in the cells north of
    // it (7.8 km) and east of it (7.4 km). Left out: 13.9 km east, and 90 minutes early.
    let readings = vec![
        reading("north", -33.38, 150.25, -30, 30.0, 20.0, 50.0),
        reading("east", -33.45, 150.33, 20, 34.0, 12.0, 80.0),
        reading("far", -33.45, 150.40, 0, 90.0, 1.0, 900.0),
        reading("early", -33.45, 150.26, -90, 90.0, 1.0, 900.0),
    ];
    let outcome = service
        .pipeline
        .ingest_sensors((1..).zip(readings).collect())
        .expect("sensors");
    assert_eq!(outcome.accepted, 4);
    let id = detection.event_id();
    service
        .pipeline
        .ingest_detections(vec![(1, detection)])
        .expect("detection");
    let event = service.store.event(&id).expect("read").expect("stored");
    let summary = event.sensor_summary.expect("a sensor summary");
    assert_eq!(summary.reading_count, 2, "{summary:?}");
    assert_eq!(summary.mean_temperature_c, Some(32.0));
    assert_eq!(summary.min_humidity_pct, Some(12.0));
    assert_eq!(summary.max_pm25_ugm3, Some(80.0));
}

//! Shared fixtures: paths to the real data, services in temporary directories, one loaded sample.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use firesight::app::Service;
use firesight::config::Settings;
use firesight::store::Store;
use firesight::stream::decode::{CsvStream, Decoded, RecordDecoder, StreamDecoder};
use firesight::tracker::{Incident, IncidentStatus, Member, Tracker};
use tempfile::TempDir;

/// Detections in the bundled Australian MODIS archive.
pub const ARCHIVE_ROWS: u64 = 36_011;

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A file of the sample bundled in `data/sample`.
pub fn sample(name: &str) -> PathBuf {
    repo().join("data/sample").join(name)
}

/// A file under `../shared/data`; fails loudly when the shared data is not beside the clone.
pub fn shared(relative: &str) -> PathBuf {
    let path = repo().join("../shared/data").join(relative);
    assert!(
        path.is_file(),
        "{} is missing: these tests read the shared data set beside the repository",
        path.display()
    );
    path
}

/// The three bundled sample files, stations first.
pub fn sample_files() -> Vec<PathBuf> {
    vec![
        sample("australia_bom_weather_stations.csv"),
        sample("australia_bom_daily_weather_2019-05_2020-06.csv"),
        sample("fire_archive_M6_96619.csv"),
    ]
}

/// Default settings with the store in `dir` and the repository's model manifest.
pub fn settings(dir: &Path) -> Settings {
    assert!(
        std::env::var_os("ORT_DYLIB_PATH").is_some(),
        "ORT_DYLIB_PATH is not set: run the tests through scripts/test.sh, which installs ONNX Runtime"
    );
    let mut settings = Settings::defaults().expect("defaults");
    settings.store.path = dir.join("db");
    settings.embed.manifest = repo().join("models/manifest.json");
    // Serial builds give the same graph every run, so counts the tests report are repeatable.
    settings.index.build_threads = 1;
    // Tests that search events switch this on over a small set; embedding every event's text
    // in every test service would only slow the suite.
    settings.search.index_events = false;
    settings
}

/// Opens a service on `dir`, bulk-loading `files` first.
pub fn open(dir: &Path, files: &[PathBuf]) -> Service {
    Service::open(settings(dir), files, false).expect("service opens")
}

/// Opens a service from an async test: on a blocking thread, bulk-loading `files` first.
pub async fn open_async(settings: Settings, files: Vec<PathBuf>) -> Arc<Service> {
    let service = tokio::task::spawn_blocking(move || Service::open(settings, &files, false))
        .await
        .expect("join")
        .expect("service opens");
    Arc::new(service)
}

/// A service with the whole bundled sample loaded, shared by read-only tests.
pub struct Loaded {
    /// Keeps the directory alive.
    pub _dir: TempDir,
    /// The service.
    pub service: Arc<Service>,
}

/// The shared loaded service (built once per test binary).
pub fn loaded() -> &'static Loaded {
    static LOADED: OnceLock<Loaded> = OnceLock::new();
    LOADED.get_or_init(|| {
        let dir = TempDir::new().expect("tempdir");
        let service = open(dir.path(), &sample_files());
        Loaded {
            _dir: dir,
            service: Arc::new(service),
        }
    })
}

/// The live (not merged) incidents of a store with their members, in id order.
pub fn live_incidents(store: &Store, tracker: &Tracker) -> Vec<(Incident, Vec<Member>)> {
    tracker
        .incidents(store)
        .expect("incidents")
        .into_iter()
        .filter(|i| i.status != IncidentStatus::Merged)
        .map(|i| {
            let members = tracker.members(store, &i).expect("members");
            (i, members)
        })
        .collect()
}

/// The live incidents of a store as incident id → its members' event ids.
pub fn incident_partition(
    store: &Store,
    tracker: &Tracker,
) -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
    live_incidents(store, tracker)
        .into_iter()
        .map(|(i, members)| (i.id, members.into_iter().map(|m| m.event_id).collect()))
        .collect()
}

/// The ids of every alert a store logged.
pub fn alert_ids(store: &Store, tracker: &Tracker) -> std::collections::BTreeSet<String> {
    tracker
        .alerts_from(store, 0, usize::MAX)
        .expect("alerts")
        .into_iter()
        .map(|a| a.id)
        .collect()
}

/// Decodes a whole file with a CSV format.
pub fn decode_file<D: RecordDecoder>(path: &Path) -> Vec<Decoded<D::Item>> {
    let bytes = std::fs::read(path).expect("read");
    let mut stream = CsvStream::<D>::new();
    let mut out = Vec::new();
    for chunk in bytes.chunks(64 * 1024) {
        stream.push(chunk, &mut out).expect("header recognised");
    }
    stream.finish(&mut out).expect("finish");
    out
}

/// Serves a router on an ephemeral loopback port; returns the base URL.
pub async fn serve_router(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    format!("http://{addr}")
}

/// Serves every route of `service`, the admin routes included.
pub async fn serve_all(service: &Arc<Service>) -> String {
    let app = firesight::api::router(service.api_state()).merge(firesight::api::admin::routes(
        Arc::clone(&service.lifecycle),
    ));
    serve_router(app).await
}

/// GET `url`: the status and the JSON body.
pub async fn get_json(url: &str) -> (reqwest::StatusCode, serde_json::Value) {
    let response = reqwest::get(url).await.expect("request");
    let status = response.status();
    (status, response.json().await.expect("json body"))
}

/// An event's predictions: its own, and its incident's growth outlook.
pub fn split_outlook(
    event: &firesight::event::FireEventV2,
) -> (
    Vec<&firesight::event::MlPrediction>,
    Vec<&firesight::event::MlPrediction>,
) {
    event
        .ml_predictions
        .iter()
        .flatten()
        .partition(|p| p.name != firesight::tracker::outlook::PREDICTION)
}

/// A Terra MODIS detection at a place and minute (RFC 3339), 80 % confidence, 20 MW.
pub fn terra_detection(
    latitude: f64,
    longitude: f64,
    acquired_at: &str,
) -> firesight::event::FireDetection {
    firesight::event::FireDetection {
        latitude,
        longitude,
        acquired_at: chrono::DateTime::parse_from_rfc3339(acquired_at)
            .expect("time")
            .to_utc(),
        satellite: "Terra".into(),
        instrument: firesight::event::Instrument::Modis,
        brightness_k: 330.0,
        brightness_background_k: 290.0,
        scan_km: 1.0,
        track_km: 1.0,
        confidence_percent: Some(80.0),
        confidence: firesight::event::ConfidenceClass::High,
        frp_mw: 20.0,
        daytime: true,
        version: "6.3".into(),
        detection_type: Some(0),
    }
}

//! What the incident tracker costs: the live ingest path (decode → correlate → predict → embed
//! → track → store → index) over the same detections with the tracker on and off, in one run,
//! and the tracker's own time per detection (its histogram).
//!
//! Run: `cargo bench --bench tracker` (release build; `scripts/bench.sh tracker`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use firesight::app::Service;
use firesight::config::Settings;
use firesight::tracker::IncidentStatus;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn settings(dir: &Path, tracker: bool) -> anyhow::Result<Settings> {
    let mut settings = Settings::defaults()?;
    settings.store.path = dir.join("db");
    settings.embed.manifest = repo().join("models/manifest.json");
    // Search indexing runs on its own thread; it would share the cores with what is measured.
    settings.search.enabled = false;
    settings.incidents.enabled = tracker;
    Ok(settings)
}

/// What one live load measured.
struct Run {
    detections: f64,
    per_second: f64,
    tracker_secs: f64,
    alerts: u64,
    incidents: usize,
}

/// One live load of `file` into a fresh store that holds `before`.
fn run(before: &[PathBuf], file: &Path, tracker: bool) -> anyhow::Result<Run> {
    let dir = tempfile::TempDir::new()?;
    let service = Service::open(settings(dir.path(), tracker)?, before, false)?;
    let stored = service.store.event_count();
    let started = Instant::now();
    service.load(&[file.to_path_buf()], false)?;
    let secs = started.elapsed().as_secs_f64();
    let events = (service.store.event_count() - stored) as f64;
    let incidents = match service.pipeline.tracker() {
        Some(t) => t
            .incidents(&service.store)?
            .iter()
            .filter(|i| i.status != IncidentStatus::Merged)
            .count(),
        None => 0,
    };
    Ok(Run {
        detections: events,
        per_second: events / secs,
        tracker_secs: service.metrics.tracker_seconds.get_sample_sum(),
        alerts: service.metrics.tracker_alerts.get(),
        incidents,
    })
}

fn main() -> anyhow::Result<()> {
    let sample = |name: &str| repo().join("data/sample").join(name);
    let weather = vec![
        sample("australia_bom_weather_stations.csv"),
        sample("australia_bom_daily_weather_2019-05_2020-06.csv"),
    ];
    let shared = repo().join("../shared/data/firms");
    let files: Vec<(&str, Vec<PathBuf>, PathBuf)> = vec![
        (
            "Australian MODIS archive (36,011)",
            weather,
            sample("fire_archive_M6_96619.csv"),
        ),
        (
            "VIIRS USA 7 days (shared data)",
            Vec::new(),
            shared.join("SUOMI_VIIRS_C2_USA_contiguous_and_Hawaii_7d.2025-11-05.csv"),
        ),
    ];
    println!("incident tracker cost, live ingest path (each row: a fresh store, one run)");
    for (name, before, file) in files {
        if !file.is_file() {
            println!("  {name}: {} is missing, skipped", file.display());
            continue;
        }
        let off = run(&before, &file, false)?;
        let on = run(&before, &file, true)?;
        println!("  {name}: {} detections", on.detections);
        println!(
            "    tracker off (baseline)   {:>9.0} detections/s",
            off.per_second
        );
        println!(
            "    tracker on               {:>9.0} detections/s  ({:.2}x the baseline)",
            on.per_second,
            on.per_second / off.per_second
        );
        println!(
            "    tracker alone            {:>9.1} µs/detection  ({} incidents, {} alerts)",
            on.tracker_secs * 1e6 / on.detections,
            on.incidents,
            on.alerts
        );
    }
    Ok(())
}

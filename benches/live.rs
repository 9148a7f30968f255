//! Live detections while a backfill runs: single-detection POSTs to the HTTP API, answered
//! once stored, indexed and their alerts emitted, timed alone and while a whole FIRMS file is
//! POSTed beside them; and the file's throughput alone and with the singles beside it.
//!
//! Run: `cargo bench --locked --profile test --bench live` (this machine has no release build of
//! RocksDB; the test profile is optimised). Each phase starts from a fresh store holding the
//! station list and the BOM weather, so the phases differ only in what runs at the same time.
//! The baseline in the same run is `ingest.live_batch` so large that every batch is one lane
//! and a file is written in whole batches: the writer lock as it was before lanes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use firesight::app::Service;
use firesight::config::Settings;
use firesight::event::FireDetection;
use firesight::stream::decode::{CsvStream, FirmsDecoder, StreamDecoder};

/// Single detections POSTed per phase.
const SINGLES: usize = 200;
/// Pause between two single POSTs: a live feed, not a flood.
const SINGLE_GAP: Duration = Duration::from_millis(40);

fn sample(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("data/sample")
        .join(name)
}

/// `ingest.live_batch` of the baseline: no lanes, no pieces.
const NO_LANES: usize = 1 << 30;

fn settings(dir: &Path, live_batch: usize) -> anyhow::Result<Settings> {
    let mut settings = Settings::defaults()?;
    settings.ingest.live_batch = live_batch;
    settings.store.path = dir.join("db");
    settings.embed.manifest =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/manifest.json");
    // Search indexing runs on its own thread; it would share the cores with what is measured.
    settings.search.enabled = false;
    Ok(settings)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

/// A service with the stations and weather loaded, served on a free port.
async fn serve(dir: &Path, live_batch: usize) -> anyhow::Result<(Arc<Service>, String)> {
    let settings = settings(dir, live_batch)?;
    let files = vec![
        sample("australia_bom_weather_stations.csv"),
        sample("australia_bom_daily_weather_2019-05_2020-06.csv"),
    ];
    let service = Arc::new(
        tokio::task::spawn_blocking(move || Service::open(settings, &files, false)).await??,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let app = firesight::api::router(service.api_state());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((service, base))
}

/// POSTs the singles one at a time, `SINGLE_GAP` apart; returns each answer's latency.
async fn singles(base: &str, lines: &[String]) -> anyhow::Result<Vec<Duration>> {
    let client = reqwest::Client::new();
    let mut took = Vec::with_capacity(lines.len());
    for line in lines {
        let started = Instant::now();
        let response = client
            .post(format!("{base}/v1/events/firms"))
            .header("content-type", "application/x-ndjson")
            .body(line.clone())
            .send()
            .await?;
        anyhow::ensure!(response.status() == 200, "single: {}", response.status());
        response.bytes().await?;
        took.push(started.elapsed());
        tokio::time::sleep(SINGLE_GAP).await;
    }
    took.sort();
    Ok(took)
}

/// POSTs the whole file; returns rows per second.
async fn bulk(base: &str, body: Vec<u8>, rows: usize) -> anyhow::Result<f64> {
    let started = Instant::now();
    let response = reqwest::Client::new()
        .post(format!("{base}/v1/events/firms"))
        .header("content-type", "text/csv")
        .body(body)
        .send()
        .await?;
    anyhow::ensure!(response.status() == 200, "bulk: {}", response.status());
    response.bytes().await?;
    Ok(rows as f64 / started.elapsed().as_secs_f64())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let archive = std::fs::read(sample("fire_archive_M6_96619.csv"))?;
    let mut decoder = CsvStream::<FirmsDecoder>::new();
    let mut decoded = Vec::new();
    decoder
        .push(&archive, &mut decoded)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    decoder
        .finish(&mut decoded)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let rows = decoded.len();
    // The singles: real detections three years later (new ids, no weather to join then), each
    // its own granule, as a live feed's pixels seen one at a time.
    let lines: Vec<String> = decoded
        .iter()
        .filter_map(|d| d.as_ref().ok())
        .step_by(rows / SINGLES)
        .take(SINGLES)
        .map(|(_, d)| {
            let mut live: FireDetection = d.clone();
            live.acquired_at += chrono::Duration::days(3 * 365);
            serde_json::to_string(&live).map(|json| json + "\n")
        })
        .collect::<Result<_, _>>()?;
    println!(
        "file: {rows} rows (the bundled MODIS archive); {} single POSTs, {} ms apart",
        lines.len(),
        SINGLE_GAP.as_millis()
    );

    let alone = {
        let dir = tempfile::TempDir::new()?;
        let (_service, base) = serve(dir.path(), NO_LANES).await?;
        singles(&base, &lines).await?
    };
    println!(
        "single POSTs alone (baseline): p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&alone, 0.5),
        percentile(&alone, 0.95),
        percentile(&alone, 0.99),
        percentile(&alone, 1.0)
    );
    println!(
        "\n| `ingest.live_batch` | single POST during the file: p50 ms | p95 ms | p99 ms | max ms | file alone rows/s | file beside the singles rows/s |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let mut reference = None;
    for live_batch in [NO_LANES, 128, 64, 32] {
        let bulk_alone = {
            let dir = tempfile::TempDir::new()?;
            let (_service, base) = serve(dir.path(), live_batch).await?;
            bulk(&base, archive.clone(), rows).await?
        };
        let (during, bulk_beside) = {
            let dir = tempfile::TempDir::new()?;
            let (_service, base) = serve(dir.path(), live_batch).await?;
            let file = tokio::spawn({
                let base = base.clone();
                let archive = archive.clone();
                async move { bulk(&base, archive, rows).await }
            });
            // Let the file get going first.
            tokio::time::sleep(Duration::from_millis(500)).await;
            let during = singles(&base, &lines).await?;
            (during, file.await??)
        };
        let base_rate = *reference.get_or_insert(bulk_alone);
        let name = if live_batch == NO_LANES {
            "no lanes (baseline)".to_owned()
        } else {
            live_batch.to_string()
        };
        println!(
            "| {name} | {:.1} | {:.1} | {:.1} | {:.1} | {bulk_alone:.0} ({:.2}x) | {bulk_beside:.0} ({:.2}x) |",
            percentile(&during, 0.5),
            percentile(&during, 0.95),
            percentile(&during, 0.99),
            percentile(&during, 1.0),
            bulk_alone / base_rate,
            bulk_beside / base_rate
        );
    }
    Ok(())
}

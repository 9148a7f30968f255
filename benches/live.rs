//! Live detections while a backfill runs: single-detection POSTs to the HTTP API, answered
//! once stored, indexed and their alerts emitted, timed alone and while a whole FIRMS file is
//! POSTed beside them; and the file's throughput alone and with the singles beside it. Then an
//! offered load: detections POSTed at a fixed rate (1,000 and 5,000 a second, in a small body
//! every 10 ms, each sent on time whether or not the ones before were answered), with each
//! body's latency, beside the service's own `firesight_ingest_latency_seconds` count; at 5,000
//! a second once with group commit (the default) and once with every body written alone.
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

/// How long each offered rate runs.
const OFFERED_FOR: Duration = Duration::from_secs(15);
/// One body is sent every tick at an offered rate.
const TICK: Duration = Duration::from_millis(10);

/// `ingest.live_batch` of the baseline: no lanes, no pieces.
const NO_LANES: usize = 1 << 30;

fn settings(dir: &Path, live_batch: usize, group_records: usize) -> anyhow::Result<Settings> {
    let mut settings = Settings::defaults()?;
    settings.ingest.live_batch = live_batch;
    settings.ingest.live_group_records = group_records;
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
async fn serve(
    dir: &Path,
    live_batch: usize,
    group_records: usize,
) -> anyhow::Result<(Arc<Service>, String)> {
    let settings = settings(dir, live_batch, group_records)?;
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

/// Offers `rate` detections a second for `OFFERED_FOR`: `rate / 100` of `pool` (NDJSON lines, each
/// a new detection) in one body every `TICK`, each body sent at its time in its own task (open
/// loop: a slow answer does not slow the offer). Returns the sorted latencies and the rate the
/// service kept up with (detections answered over the time from the first send to the last answer).
async fn offered(base: &str, pool: &[String], rate: usize) -> anyhow::Result<(Vec<Duration>, f64)> {
    let per_tick = (rate as u128 * TICK.as_millis() / 1000) as usize;
    let ticks = (OFFERED_FOR.as_millis() / TICK.as_millis()) as usize;
    anyhow::ensure!(
        pool.len() >= per_tick * ticks,
        "{} detections for {} needed",
        pool.len(),
        per_tick * ticks
    );
    let client = reqwest::Client::new();
    let started = Instant::now();
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut sent = Vec::with_capacity(ticks);
    for body in pool.chunks(per_tick).take(ticks) {
        interval.tick().await;
        let (client, url, body) = (
            client.clone(),
            format!("{base}/v1/events/firms"),
            body.concat(),
        );
        sent.push(tokio::spawn(async move {
            let at = Instant::now();
            let response = client
                .post(url)
                .header("content-type", "application/x-ndjson")
                .body(body)
                .send()
                .await?;
            anyhow::ensure!(response.status() == 200, "offered: {}", response.status());
            response.bytes().await?;
            Ok(at.elapsed())
        }));
    }
    let mut took = Vec::with_capacity(sent.len());
    for task in sent {
        took.push(task.await??);
    }
    let kept = (per_tick * ticks) as f64 / started.elapsed().as_secs_f64();
    took.sort();
    Ok((took, kept))
}

/// A sample's value from the service's `/metrics`.
async fn metric(base: &str, series: &str) -> anyhow::Result<f64> {
    let text = reqwest::get(format!("{base}/metrics"))
        .await?
        .text()
        .await?;
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0))
}

/// The writer-lock waits of `lane` so far: the mean in ms and the upper bound of the highest
/// bucket any wait reached (`firesight_writer_wait_seconds`), as text.
fn lock_wait(service: &Service, lane: &str) -> (f64, String) {
    let histogram = service.metrics.writer_wait.with_label_values(&[lane]);
    let count = histogram.get_sample_count();
    let mean = histogram.get_sample_sum() * 1e3 / count.max(1) as f64;
    let proto = prometheus::core::Metric::metric(&histogram);
    let mut below = 0;
    let mut top = "-".to_owned();
    for bucket in proto.get_histogram().get_bucket() {
        if bucket.cumulative_count() > below {
            top = format!("≤ {:.1}", bucket.upper_bound() * 1e3);
            below = bucket.cumulative_count();
        }
    }
    if below < count {
        top = "over the last bucket".to_owned();
    }
    (mean, top)
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
    let defaults = Settings::defaults()?;
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
        let (_service, base) =
            serve(dir.path(), NO_LANES, defaults.ingest.live_group_records).await?;
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
        "\n| `ingest.live_batch` | single POST during the file: p50 ms | p95 ms | p99 ms | max ms | its wait for the writer lock: mean ms | max bucket ms | file alone rows/s | file beside the singles rows/s |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut reference = None;
    for live_batch in [NO_LANES, 128, 64, 32] {
        let bulk_alone = {
            let dir = tempfile::TempDir::new()?;
            let (_service, base) =
                serve(dir.path(), live_batch, defaults.ingest.live_group_records).await?;
            bulk(&base, archive.clone(), rows).await?
        };
        let (during, waited, bulk_beside) = {
            let dir = tempfile::TempDir::new()?;
            let (service, base) =
                serve(dir.path(), live_batch, defaults.ingest.live_group_records).await?;
            let file = tokio::spawn({
                let base = base.clone();
                let archive = archive.clone();
                async move { bulk(&base, archive, rows).await }
            });
            // Let the file get going first.
            tokio::time::sleep(Duration::from_millis(500)).await;
            let during = singles(&base, &lines).await?;
            // Where a single's time goes: waiting for the lock, or its own work beside the
            // file's (the file's pieces wait in the bulk lane, so the live lane is the singles').
            let waited = lock_wait(
                &service,
                if live_batch == NO_LANES {
                    "bulk"
                } else {
                    "live"
                },
            );
            (during, waited, file.await??)
        };
        let base_rate = *reference.get_or_insert(bulk_alone);
        let name = if live_batch == NO_LANES {
            "no lanes (baseline)".to_owned()
        } else {
            live_batch.to_string()
        };
        println!(
            "| {name} | {:.1} | {:.1} | {:.1} | {:.1} | {:.2} | {} | {bulk_alone:.0} ({:.2}x) | {bulk_beside:.0} ({:.2}x) |",
            percentile(&during, 0.5),
            percentile(&during, 0.95),
            percentile(&during, 0.99),
            percentile(&during, 1.0),
            waited.0,
            waited.1,
            bulk_alone / base_rate,
            bulk_beside / base_rate
        );
    }

    // The offered load: new detections (the archive moved on by whole years, one copy per pass).
    let pool: Vec<String> = (1..=3)
        .flat_map(|years| {
            decoded
                .iter()
                .filter_map(|d| d.as_ref().ok())
                .map(move |(_, d)| {
                    let mut live: FireDetection = d.clone();
                    live.acquired_at += chrono::Duration::days(years * 365 + 1);
                    serde_json::to_string(&live).map(|json| json + "\n")
                })
        })
        .collect::<Result<_, _>>()?;
    println!(
        "\n| offered detections/s | `ingest.live_group_records` | bodies | body p50 ms | p95 ms | p99 ms | max ms | kept up with, detections/s | timed by the service | bodies per live write (mean) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    // Each rate with group commit (the default) and, as the baseline in the same run, without
    // (every body written alone, as before group commit).
    let grouped = defaults.ingest.live_group_records;
    for (rate, group_records) in [(1_000usize, grouped), (5_000, 0), (5_000, grouped)] {
        let dir = tempfile::TempDir::new()?;
        let (_service, base) = serve(dir.path(), defaults.ingest.live_batch, group_records).await?;
        let (took, kept) = offered(&base, &pool, rate).await?;
        let timed = metric(
            &base,
            "firesight_ingest_latency_seconds_count{kind=\"firms\",path=\"http\"}",
        )
        .await?;
        let writes = metric(&base, "firesight_writer_live_group_batches_count").await?;
        let bodies = metric(&base, "firesight_writer_live_group_batches_sum").await?;
        println!(
            "| {rate} | {group_records} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {kept:.0} | {timed:.0} | {:.2} |",
            took.len(),
            percentile(&took, 0.5),
            percentile(&took, 0.95),
            percentile(&took, 0.99),
            percentile(&took, 1.0),
            bodies / writes.max(1.0)
        );
    }
    Ok(())
}

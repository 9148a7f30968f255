//! Ingest throughput, index recall and similar-query latency on the bundled Australian sample.
//!
//! Run: `scripts/bench.sh` (release build). Each figure is printed beside a baseline measured in
//! the same run: decode-only throughput for ingest, exact search for recall and query latency.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use firesight::app::Service;
use firesight::config::Settings;
use firesight::event::FireDetection;
use firesight::index::{FlatIndex, IndexPoint, PointAttrs, VectorIndex, VectorIndexRead};
use firesight::store::StoredVector;
use firesight::stream::decode::{CsvStream, FirmsDecoder, StreamDecoder};

/// Similar queries sent over HTTP.
const HTTP_QUERIES: usize = 2_000;
/// Neighbours asked for.
const K: usize = 10;
/// Every `QUERY_STRIDE`-th stored event is a query.
const QUERY_STRIDE: usize = 36;
/// Detections ingested one per batch in the durability figures.
const SINGLES: usize = 300;

fn sample(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("data/sample")
        .join(name)
}

fn settings(dir: &Path) -> anyhow::Result<Settings> {
    let mut settings = Settings::defaults()?;
    settings.store.path = dir.join("db");
    settings.embed.manifest =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/manifest.json");
    // Search indexing runs on its own thread; it would share the cores with what is measured.
    settings.search.enabled = false;
    Ok(settings)
}

fn weather_files() -> Vec<PathBuf> {
    vec![
        sample("australia_bom_weather_stations.csv"),
        sample("australia_bom_daily_weather_2019-05_2020-06.csv"),
    ]
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

fn main() -> anyhow::Result<()> {
    let archive = sample("fire_archive_M6_96619.csv");
    let bytes = std::fs::read(&archive)?;
    let started = Instant::now();
    let mut decoder = CsvStream::<FirmsDecoder>::new();
    let mut decoded = Vec::new();
    decoder
        .push(&bytes, &mut decoded)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    decoder
        .finish(&mut decoded)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let decode_rate = decoded.len() as f64 / started.elapsed().as_secs_f64();
    let events = decoded.len() as f64;
    let singles: Vec<FireDetection> = decoded
        .iter()
        .filter_map(|d| d.as_ref().ok().map(|(_, d)| d.clone()))
        .take(SINGLES)
        .collect();

    // `serve --load` / `firesight load`: the service opens (an empty index) and loads the file
    // through the live pipeline, a piece stored while the one before goes into the graph.
    let bulk_dir = tempfile::TempDir::new()?;
    drop(Service::open(
        settings(bulk_dir.path())?,
        &weather_files(),
        false,
    )?);
    let started = Instant::now();
    let bulk = Service::open(
        settings(bulk_dir.path())?,
        std::slice::from_ref(&archive),
        false,
    )?;
    let bulk_secs = started.elapsed().as_secs_f64();
    let embed_secs = bulk.metrics.embed_seconds.get_sample_sum();
    let embed_rows = bulk.metrics.embed_rows.get() as f64;
    drop(bulk);
    // A restart: open the same store and rebuild the graph from its vectors (recall below is
    // this rebuilt graph's, saved and loaded again).
    let started = Instant::now();
    let bulk = Service::open(settings(bulk_dir.path())?, &[], false)?;
    let restart_secs = started.elapsed().as_secs_f64();
    // A restart after a clean shutdown: the snapshot is loaded, nothing is replayed.
    bulk.save_index()?;
    drop(bulk);
    let started = Instant::now();
    let bulk = Service::open(settings(bulk_dir.path())?, &[], false)?;
    let snapshot_restart_secs = started.elapsed().as_secs_f64();

    // Live path (HTTP ingest): every batch is indexed as it is stored.
    let live_dir = tempfile::TempDir::new()?;
    let live = Service::open(settings(live_dir.path())?, &weather_files(), false)?;
    let started = Instant::now();
    live.load(std::slice::from_ref(&archive), false)?;
    let live_secs = started.elapsed().as_secs_f64();

    let vectors: Vec<StoredVector> = bulk.store.vectors()?.collect::<Result<_, _>>()?;
    let exact = FlatIndex::new(bulk.index().dim());
    let points: Vec<IndexPoint<'_>> = vectors
        .iter()
        .map(|v| IndexPoint {
            seq: v.seq,
            vector: &v.vector,
            attrs: PointAttrs::default(),
        })
        .collect();
    exact.insert(&points)?;
    let queries: Vec<&StoredVector> = vectors.iter().step_by(QUERY_STRIDE).collect();

    println!("ingest, Australian MODIS archive ({events} detections; weather loaded beforehand)");
    println!("  decode only (baseline)                         {decode_rate:>9.0} events/s");
    for (name, secs, service) in [
        ("--load: open, then decode→…→store→insert", bulk_secs, &bulk),
        (
            "live: decode→correlate→embed→store→insert",
            live_secs,
            &live,
        ),
    ] {
        let recall = recall(service.index().as_ref(), &exact, &queries)?;
        println!(
            "  {name:<46} {:>9.0} events/s  ({:>4.1}% of decode-only)  recall@10 {recall:.4}",
            events / secs,
            100.0 * events / secs / decode_rate
        );
    }
    println!(
        "  of which the ONNX encoder                      {:>9.0} events/s  ({embed_rows} rows in {embed_secs:.2} s)",
        embed_rows / embed_secs
    );
    println!(
        "  restart: open the store, rebuild HNSW from it  {restart_secs:>9.2} s for {} vectors",
        bulk.index().len()
    );
    println!(
        "  restart: load the snapshot, replay nothing     {snapshot_restart_secs:>9.2} s  ({:.1}x faster than the rebuild)",
        restart_secs / snapshot_restart_secs
    );
    query_latency(&bulk, &exact, &queries)?;
    durability(&archive, &singles)
}

/// What `store.sync_writes` costs, against the same run with it off: single detections, each
/// its own acknowledged batch (a live POST), then the archive through the live path.
fn durability(archive: &Path, singles: &[FireDetection]) -> anyhow::Result<()> {
    println!("\ndurability: store.sync_writes (each write waits for RocksDB's log on disk)");
    for sync in [false, true] {
        let dir = tempfile::TempDir::new()?;
        let mut settings = settings(dir.path())?;
        settings.store.sync_writes = sync;
        let service = Service::open(settings, &weather_files(), false)?;
        let mut each = Vec::with_capacity(singles.len());
        for (i, detection) in singles.iter().enumerate() {
            let started = Instant::now();
            service
                .pipeline
                .ingest_detections(vec![(i as u64, detection.clone())])?;
            each.push(started.elapsed());
        }
        let mean = each.iter().sum::<Duration>().as_secs_f64() * 1e3 / each.len() as f64;
        each.sort();
        let started = Instant::now();
        service.load(&[archive.to_path_buf()], false)?;
        let rate = service.store.event_count() as f64 / started.elapsed().as_secs_f64();
        println!(
            "  sync_writes = {sync:<5}  one detection per batch: mean {mean:>6.2} ms, p99 {:>6.2} ms ({} batches); archive, live path: {rate:>6.0} events/s",
            percentile(&each, 0.99),
            each.len()
        );
    }
    Ok(())
}

/// Recall@10 against exact search, counted by distance so ties are not misread as misses.
fn recall(
    index: &dyn VectorIndexRead,
    exact: &FlatIndex,
    queries: &[&StoredVector],
) -> anyhow::Result<f64> {
    let mut hits = 0usize;
    for q in queries {
        let cutoff = exact
            .search(&q.vector, K)?
            .last()
            .map_or(0.0, |n| n.distance)
            + 1e-6;
        hits += index
            .search(&q.vector, K)?
            .iter()
            .filter(|n| n.distance <= cutoff)
            .count();
    }
    Ok(hits as f64 / (queries.len() * K) as f64)
}

fn time_queries(
    index: &dyn VectorIndexRead,
    queries: &[&StoredVector],
) -> anyhow::Result<Vec<Duration>> {
    let mut samples = Vec::with_capacity(queries.len());
    for q in queries {
        let started = Instant::now();
        index.search(&q.vector, K + 1)?;
        samples.push(started.elapsed());
    }
    samples.sort();
    Ok(samples)
}

fn query_latency(
    service: &Service,
    exact: &FlatIndex,
    queries: &[&StoredVector],
) -> anyhow::Result<()> {
    let flat = time_queries(exact, queries)?;
    let hnsw = time_queries(service.index().as_ref(), queries)?;
    println!(
        "\nsimilar query in process (k={K}, {} queries, {} vectors)",
        queries.len(),
        service.index().len()
    );
    println!(
        "  exact scan (baseline)    p50 {:>7.3} ms   p99 {:>7.3} ms",
        percentile(&flat, 0.5),
        percentile(&flat, 0.99)
    );
    println!(
        "  {:<8} M=64 ef=64      p50 {:>7.3} ms   p99 {:>7.3} ms   ({:.1}x the exact scan's speed at p50)",
        service.index().engine(),
        percentile(&hnsw, 0.5),
        percentile(&hnsw, 0.99),
        percentile(&flat, 0.5) / percentile(&hnsw, 0.5)
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let ids: Vec<String> = queries.iter().map(|q| q.event_id.clone()).collect();
    let app = firesight::api::router(service.api_state());
    let http = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        tokio::spawn(async move { axum::serve(listener, app).await });
        let client = reqwest::Client::new();
        let mut samples = Vec::with_capacity(HTTP_QUERIES);
        for id in ids.iter().cycle().take(HTTP_QUERIES) {
            let started = Instant::now();
            let response = client
                .get(format!("{base}/v1/fires/{id}/similar?k={K}"))
                .send()
                .await?;
            anyhow::ensure!(
                response.status().is_success(),
                "status {}",
                response.status()
            );
            response.bytes().await?;
            samples.push(started.elapsed());
        }
        samples.sort();
        anyhow::Ok(samples)
    })?;
    println!(
        "\nGET /v1/fires/{{id}}/similar?k={K} over loopback HTTP, one client, {HTTP_QUERIES} requests"
    );
    println!(
        "  p50 {:>7.3} ms   p99 {:>7.3} ms   max {:>7.3} ms",
        percentile(&http, 0.5),
        percentile(&http, 0.99),
        percentile(&http, 1.0)
    );
    Ok(())
}

//! How long clusters and outliers take as the window grows, on the bundled Australian archive.
//!
//! Run: `scripts/bench-patterns.sh` (release build). For each window the neighbour graph is
//! built both ways: exactly (the baseline: every pair) and from the vector index (what windows
//! over `patterns.exact_below` use), with the clusters each gives compared by adjusted Rand
//! index. Then HDBSCAN* and the outlier ranking are timed on the index graph.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use firesight::app::Service;
use firesight::config::Settings;
use firesight::index::SearchFilter;
use firesight::patterns::{self, hdbscan};

fn sample(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("data/sample")
        .join(name)
}

fn day_ms(day: &str) -> anyhow::Result<i64> {
    Ok(chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d")?
        .and_hms_opt(0, 0, 0)
        .unwrap_or_default()
        .and_utc()
        .timestamp_millis())
}

fn ari(a: &[Option<u32>], b: &[Option<u32>]) -> f64 {
    // Noise points are singletons.
    let label = |l: Option<u32>, i: usize| l.map_or(u64::MAX - i as u64, u64::from);
    let c2 = |n: f64| n * (n - 1.0) / 2.0;
    let (mut table, mut rows, mut cols) = (HashMap::new(), HashMap::new(), HashMap::new());
    for i in 0..a.len() {
        let (x, y) = (label(a[i], i), label(b[i], i));
        *table.entry((x, y)).or_insert(0.0) += 1.0;
        *rows.entry(x).or_insert(0.0) += 1.0;
        *cols.entry(y).or_insert(0.0) += 1.0;
    }
    let index: f64 = table.values().map(|&n| c2(n)).sum();
    let (sr, sc): (f64, f64) = (
        rows.values().map(|&n| c2(n)).sum(),
        cols.values().map(|&n| c2(n)).sum(),
    );
    let expected = sr * sc / c2(a.len() as f64);
    (index - expected) / ((sr + sc) / 2.0 - expected)
}

fn main() -> anyhow::Result<()> {
    let dir = tempfile::TempDir::new()?;
    let mut settings = Settings::defaults()?;
    settings.store.path = dir.path().join("db");
    settings.embed.manifest =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/manifest.json");
    // Search indexing runs on its own thread; it would share the cores with what is measured.
    settings.search.enabled = false;
    let files = [
        sample("australia_bom_weather_stations.csv"),
        sample("australia_bom_daily_weather_2019-05_2020-06.csv"),
        sample("fire_archive_M6_96619.csv"),
    ];
    let service = Service::open(settings.clone(), &files, false)?;
    let space = service.pipeline.space();
    let model = space.embedder.model_version().to_owned();
    let k = settings.patterns.neighbours;
    println!(
        "window                         events  load ms  exact-graph ms  index-graph ms  ratio  ARI(exact,index)  hdbscan ms  outliers ms  clusters"
    );
    for (name, from, to) in [
        ("one day (2019-09-10)", "2019-09-10", "2019-09-10"),
        ("one week (2019-09-04..10)", "2019-09-04", "2019-09-10"),
        ("four weeks (2019-09-03..30)", "2019-09-03", "2019-09-30"),
        (
            "the archive (2019-08-01..09-30)",
            "2019-08-01",
            "2019-09-30",
        ),
    ] {
        let (from_ms, to_ms) = (day_ms(from)?, day_ms(to)? + 86_399_999);
        let filter = SearchFilter {
            time: Some((from_ms / 1000, to_ms / 1000)),
            ..SearchFilter::default()
        };
        let started = Instant::now();
        let window = patterns::load_window(
            &service.store,
            &model,
            &filter,
            (from_ms, to_ms),
            settings.patterns.max_window_events,
            &firesight::cancel::Token::never(),
        )?;
        let load = started.elapsed().as_secs_f64() * 1e3;
        let started = Instant::now();
        let exact = hdbscan::exact_knn(&window.vectors, window.dim, k);
        let exact_ms = started.elapsed().as_secs_f64() * 1e3;
        let started = Instant::now();
        let graph = patterns::window_neighbours(
            &window,
            space.index.as_ref(),
            &filter,
            k,
            0,
            &firesight::cancel::Token::never(),
        )?;
        let index_ms = started.elapsed().as_secs_f64() * 1e3;
        let started = Instant::now();
        let found = patterns::clusters(&window, &graph, 5, 5, 3);
        let hdbscan_ms = started.elapsed().as_secs_f64() * 1e3;
        let from_exact = patterns::clusters(&window, &exact, 5, 5, 3);
        let started = Instant::now();
        let ranked = patterns::outliers(&window, &graph, 20);
        let outliers_ms = started.elapsed().as_secs_f64() * 1e3;
        std::hint::black_box(ranked);
        println!(
            "{name:<31}{:>7}{load:>9.0}{exact_ms:>16.0}{index_ms:>16.0}{:>7.1}{:>18.3}{hdbscan_ms:>12.0}{outliers_ms:>13.0}{:>10}",
            window.len(),
            exact_ms / index_ms,
            ari(&from_exact.labels, &found.labels),
            found.clusters.len(),
        );
    }
    Ok(())
}

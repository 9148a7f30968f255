//! The `events108k` vector set of the index benchmark (`scripts/bench-ann.sh`): the Australian
//! archive through the real pipeline and event encoder, plus two noisy copies of each vector
//! (σ = 5 % of each dimension's spread) to pass 100K, as repeated passes over the same fires
//! would give; and 1,000 queries, real vectors with fresh noise, held out of the base.
//!
//! ```sh
//! cargo run --locked --profile test --example ann_event_vectors -- OUT_DIR
//! ```
//!
//! Writes `OUT_DIR/events_base.fvecs` and `OUT_DIR/events_query.fvecs`. It runs in the test
//! profile, which CI has already built, so the benchmark itself (`firesight-index`'s `ann`
//! bench, release) never compiles RocksDB or ONNX Runtime's bindings.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use firesight::app::Service;
use firesight::config::Settings;

const QUERIES: usize = 1000;

fn write_fvecs(path: &Path, rows: &[Vec<f32>]) -> anyhow::Result<()> {
    let mut w = BufWriter::new(File::create(path)?);
    for row in rows {
        w.write_all(&u32::try_from(row.len())?.to_le_bytes())?;
        for x in row {
            w.write_all(&x.to_le_bytes())?;
        }
    }
    w.flush()?;
    Ok(())
}

/// Every stored event's vector, after the sample's stations, weather and detections went in.
fn real_vectors(root: &Path) -> anyhow::Result<Vec<Vec<f32>>> {
    let dir = tempfile::TempDir::new()?;
    let mut settings = Settings::defaults()?;
    settings.store.path = dir.path().join("db");
    settings.index.snapshot = false;
    settings.embed.manifest = root.join("models/manifest.json");
    settings.search.enabled = false;
    let files: Vec<PathBuf> = [
        "australia_bom_weather_stations.csv",
        "australia_bom_daily_weather_2019-05_2020-06.csv",
        "fire_archive_M6_96619.csv",
    ]
    .iter()
    .map(|f| root.join("data/sample").join(f))
    .collect();
    let service = Service::open(settings, &files, false)?;
    Ok(service
        .store
        .vectors()?
        .map(|v| v.map(|v| v.vector))
        .collect::<Result<_, _>>()?)
}

/// A reproducible standard normal stream: Box–Muller over xorshift, no RNG crate.
fn gaussian(mut state: u64) -> impl FnMut() -> f32 {
    move || {
        let mut uniform = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        let (u, v) = (uniform(), uniform());
        ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
    }
}

fn main() -> anyhow::Result<()> {
    let out = PathBuf::from(
        std::env::args_os()
            .nth(1)
            .ok_or_else(|| anyhow::anyhow!("usage: ann_event_vectors OUT_DIR"))?,
    );
    std::fs::create_dir_all(&out)?;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let real = real_vectors(&root)?;
    let dim = real
        .first()
        .ok_or_else(|| anyhow::anyhow!("no vectors stored"))?
        .len();
    let n = real.len() as f32;
    let spread: Vec<f32> = (0..dim)
        .map(|d| {
            let mean = real.iter().map(|v| v[d]).sum::<f32>() / n;
            (real.iter().map(|v| (v[d] - mean).powi(2)).sum::<f32>() / n).sqrt()
        })
        .collect();
    let mut gauss = gaussian(0x0005_DEEC_E66D);
    let mut noisy = |v: &Vec<f32>| -> Vec<f32> {
        v.iter()
            .zip(&spread)
            .map(|(x, s)| x + 0.05 * s * gauss())
            .collect()
    };
    let mut base = real.clone();
    for _ in 0..2 {
        base.extend(real.iter().map(&mut noisy));
    }
    let queries: Vec<Vec<f32>> = real
        .iter()
        .step_by((real.len() / QUERIES).max(1))
        .take(QUERIES)
        .map(&mut noisy)
        .collect();
    write_fvecs(&out.join("events_base.fvecs"), &base)?;
    write_fvecs(&out.join("events_query.fvecs"), &queries)?;
    println!(
        "{} base and {} query vectors of {dim} in {}",
        base.len(),
        queries.len(),
        out.display()
    );
    Ok(())
}

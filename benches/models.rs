//! Model throughput: the event encoder (v1 and v2) at batch 1, 64 and 1024, the predictors, and
//! the MiniLM sentence encoder in process against Python onnxruntime running the same model file
//! with the same tokenizer on the same texts, in the same run.
//!
//! Run: `scripts/bench-models.sh` (release build; installs the Python side).

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use firesight::app::Service;
use firesight::config::Settings;
use firesight::embed::{
    Embedder, FEATURE_COUNT, OnnxEmbedder, Predictors, SentenceEncoder, event_features,
};
use firesight::search::incident_text;
use firesight::stream::decode::decode_calfire;

/// Texts per sentence-encoder call, both sides.
const TEXT_BATCH: usize = 32;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn main() -> anyhow::Result<()> {
    let dir = tempfile::TempDir::new()?;
    let mut settings = Settings::defaults()?;
    settings.store.path = dir.path().join("db");
    settings.embed.manifest = root().join("models/manifest.json");
    settings.search.enabled = false;
    let threads = settings.embed.intra_threads;
    let sample = |n: &str| root().join("data/sample").join(n);
    let service = Service::open(
        settings.clone(),
        &[
            sample("australia_bom_weather_stations.csv"),
            sample("australia_bom_daily_weather_2019-05_2020-06.csv"),
            sample("fire_archive_M6_96619.csv"),
        ],
        false,
    )?;
    let events: Vec<firesight::event::FireEventV2> = service
        .store
        .events_between(i64::MIN, i64::MAX)?
        .collect::<Result<_, _>>()?;
    let rows: Vec<[f32; FEATURE_COUNT]> = events.iter().map(event_features).collect();
    println!(
        "event rows: {} (the bundled archive, correlated); ONNX Runtime intra-op threads: {threads}",
        rows.len()
    );
    let manifest = &settings.embed.manifest;

    println!("\n| model | batch | rows/s |");
    println!("|---|---|---|");
    for model in ["event-encoder@1", "event-encoder@2"] {
        let encoder = OnnxEmbedder::load(manifest, model, "", threads)?;
        for batch in [1usize, 64, 1024] {
            let take = if batch == 1 { 5_000 } else { rows.len() };
            let started = Instant::now();
            for chunk in rows[..take].chunks(batch) {
                encoder.embed(chunk)?;
            }
            let rate = take as f64 / started.elapsed().as_secs_f64();
            println!("| {model} | {batch} | {rate:.0} |");
        }
    }
    let predictors = Predictors::load(manifest, &settings.embed.predictors, "", threads)?;
    let started = Instant::now();
    for (events, rows) in events.chunks(1024).zip(rows.chunks(1024)) {
        predictors.predict(events, rows)?;
    }
    println!(
        "| all three predictors ({}) | 1024 | {:.0} |",
        predictors.versions().join(", "),
        rows.len() as f64 / started.elapsed().as_secs_f64()
    );

    // Sentence encoder: the CAL FIRE incident renderings the search index embeds.
    let mut texts = Vec::new();
    for file in ["California_Fire_Incidents.csv", "calfire_mapdataall.csv"] {
        let bytes = std::fs::read(root().join("../shared/data/incidents").join(file))?;
        texts.extend(decode_calfire(&bytes).0.iter().map(incident_text));
    }
    let encoder = SentenceEncoder::load(manifest, &settings.search.sentence_model, "", threads)?;
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    encoder.encode(&refs[..TEXT_BATCH])?; // warm-up, as the Python side's first call
    let started = Instant::now();
    let mut checksum = 0.0f64;
    for chunk in refs.chunks(TEXT_BATCH) {
        for e in encoder.encode(chunk)? {
            checksum += f64::from(e.vector[0]);
        }
    }
    let rust_rate = texts.len() as f64 / started.elapsed().as_secs_f64();
    println!(
        "\nMiniLM (int8), {} CAL FIRE incident texts, batch {TEXT_BATCH}, {threads} thread(s):",
        texts.len()
    );
    println!("| runtime | sentences/s |");
    println!("|---|---|");
    println!("| FireSight (Rust: tokenizers + ort) | {rust_rate:.0} |");
    let Some(python) = std::env::var_os("FIRESIGHT_BENCH_PYTHON") else {
        println!(
            "| Python onnxruntime | not run: FIRESIGHT_BENCH_PYTHON is unset (scripts/bench-models.sh sets it) |"
        );
        return Ok(());
    };
    let texts_path = dir.path().join("texts.json");
    std::fs::write(&texts_path, serde_json::to_vec(&texts)?)?;
    let vendor = root().join("models/vendor/all-minilm-l6-v2");
    let out = Command::new(python)
        .arg(root().join("benches/minilm_python.py"))
        .arg(vendor.join("model.onnx"))
        .arg(vendor.join("tokenizer.json"))
        .arg(&texts_path)
        .arg(TEXT_BATCH.to_string())
        .arg(threads.to_string())
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "the Python side failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let py_rate = report["sentences_per_s"].as_f64().unwrap_or(f64::NAN);
    let py_sum = report["checksum"].as_f64().unwrap_or(f64::NAN);
    println!("| Python onnxruntime 1.31.1 (same model file, same tokenizer.json) | {py_rate:.0} |");
    println!(
        "ratio Rust / Python: {:.2}; checksum of first components Rust {checksum:.4} vs Python {py_sum:.4}",
        rust_rate / py_rate
    );
    Ok(())
}

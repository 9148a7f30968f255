//! Vector-index benchmark: FireSight's native HNSW and `hnsw_rs`, on siftsmall and on 108K
//! event-encoder vectors (written beforehand by the main crate's `ann_event_vectors` example).
//! Writes the ground truth and results to `$CARGO_TARGET_DIR/ann/` so that
//! `benches/ann_peers.py` runs hnswlib and FAISS on the very same files; `scripts/bench-ann.sh`
//! runs all three and prints one table. Nothing here needs the store or the models, so the
//! release build compiles this crate and `hnsw_rs` only.

#[path = "support/fvecs.rs"]
mod fvecs;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use fvecs::read_fvecs;

use firesight_index::{
    FlatIndex, HnswIndex, IndexPoint, NativeHnsw, NativeParams, PointAttrs, VectorIndex,
    VectorIndexRead, native,
};

const K: usize = 10;
const EFS: [usize; 12] = [10, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512];

/// `.ivecs` holds i32s in the same framing; read them as f32 bit patterns, then convert.
fn read_ivecs(path: &Path) -> anyhow::Result<Vec<Vec<u64>>> {
    Ok(read_fvecs(path)?
        .into_iter()
        .map(|row| row.iter().map(|x| x.to_bits() as u64).collect())
        .collect())
}

fn write_ivecs(path: &Path, rows: &[Vec<u64>]) -> anyhow::Result<()> {
    let mut w = BufWriter::new(File::create(path)?);
    for row in rows {
        w.write_all(&(row.len() as i32).to_le_bytes())?;
        for x in row {
            w.write_all(&(*x as i32).to_le_bytes())?;
        }
    }
    Ok(())
}

/// Resident memory, bytes (Linux).
fn rss() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<usize>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// A base set and its queries.
type VectorSet = (Vec<Vec<f32>>, Vec<Vec<f32>>);

/// A search over one engine: query and ef in, ids nearest first out.
type SearchFn<'a> = Box<dyn Fn(&[f32], usize) -> Vec<u64> + Sync + 'a>;

/// The event set `ann_event_vectors` (the main crate's example) wrote to `out`.
fn event_vectors(out: &Path) -> anyhow::Result<VectorSet> {
    let base = out.join("events_base.fvecs");
    if !base.exists() {
        anyhow::bail!(
            "{} is missing: `cargo run --locked --profile test --example ann_event_vectors -- {}` writes it (scripts/bench-ann.sh runs both)",
            base.display(),
            out.display()
        );
    }
    Ok((
        read_fvecs(&base)?,
        read_fvecs(&out.join("events_query.fvecs"))?,
    ))
}

/// The vectors as index points numbered from 0, with no attributes.
fn numbered(base: &[Vec<f32>]) -> Vec<IndexPoint<'_>> {
    base.iter()
        .enumerate()
        .map(|(i, v)| IndexPoint {
            seq: i as u64,
            vector: v,
            attrs: PointAttrs::default(),
        })
        .collect()
}

fn exact_truth(base: &[Vec<f32>], queries: &[Vec<f32>]) -> anyhow::Result<Vec<Vec<u64>>> {
    let flat = FlatIndex::new(base[0].len());
    let points = numbered(base);
    flat.insert(&points)?;
    queries
        .iter()
        .map(|q| Ok(flat.search(q, 100)?.iter().map(|n| n.seq).collect()))
        .collect()
}

struct Engine<'a> {
    name: &'static str,
    search: SearchFn<'a>,
}

/// Recall@10 and queries/s for one ef, with `threads` threads splitting the queries.
fn measure(
    engine: &Engine<'_>,
    queries: &[Vec<f32>],
    truth: &[Vec<u64>],
    ef: usize,
    threads: usize,
) -> (f64, f64) {
    let started = Instant::now();
    let results: Vec<Vec<u64>> = if threads == 1 {
        queries.iter().map(|q| (engine.search)(q, ef)).collect()
    } else {
        let chunk = queries.len().div_ceil(threads);
        std::thread::scope(|s| {
            let parts: Vec<_> = queries
                .chunks(chunk)
                .map(|part| {
                    s.spawn(move || {
                        part.iter()
                            .map(|q| (engine.search)(q, ef))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            parts
                .into_iter()
                .flat_map(|p| p.join().unwrap_or_default())
                .collect()
        })
    };
    let qps = queries.len() as f64 / started.elapsed().as_secs_f64();
    let hits: usize = results
        .iter()
        .zip(truth)
        .map(|(got, want)| got.iter().filter(|id| want[..K].contains(id)).count())
        .sum();
    (hits as f64 / (queries.len() * K) as f64, qps)
}

fn run_set(
    name: &str,
    base: &[Vec<f32>],
    queries: &[Vec<f32>],
    truth: &[Vec<u64>],
    report: &mut Vec<serde_json::Value>,
) -> anyhow::Result<()> {
    let dim = base[0].len();
    let points = numbered(base);
    // Repeat the query set so each timing covers enough work.
    let reps = (20_000 / queries.len()).max(1);
    let many: Vec<Vec<f32>> = (0..reps).flat_map(|_| queries.iter().cloned()).collect();
    let many_truth: Vec<Vec<u64>> = (0..reps).flat_map(|_| truth.iter().cloned()).collect();

    // FIRESIGHT_ANN_ALPHA overrides the pruning slack, for trying settings; the output says which ran.
    let prune_alpha = std::env::var("FIRESIGHT_ANN_ALPHA")
        .ok()
        .and_then(|a| a.parse().ok())
        .unwrap_or(NativeParams::new(dim).prune_alpha);
    for build_threads in [1usize, 2] {
        let before = rss();
        let started = Instant::now();
        let index = NativeHnsw::new(NativeParams {
            build_threads,
            prune_alpha,
            ..NativeParams::new(dim)
        });
        index.insert(&points)?;
        let build = base.len() as f64 / started.elapsed().as_secs_f64();
        let memory = (rss().saturating_sub(before)) as f64 / base.len() as f64;
        println!(
            "{name}: native build (alpha {prune_alpha}), {build_threads} thread(s): {build:.0} vectors/s, {memory:.0} B/vector (RSS), kernel {}",
            native::kernel_name()
        );
        report.push(serde_json::json!({"set": name, "engine": "firesight-native", "kind": "build", "threads": build_threads, "vectors_per_s": build, "bytes_per_vector": memory}));
        if build_threads == 2 {
            continue;
        }
        let engine = Engine {
            name: "firesight-native",
            search: Box::new(|q, ef| {
                index
                    .search_with_ef(q, K, ef, None)
                    .map(|r| r.iter().map(|n| n.seq).collect())
                    .unwrap_or_default()
            }),
        };
        sweep(name, &engine, &many, &many_truth, report);
        // The same points scanned exactly (recall 1 by definition, no ef): at 16 dimensions a
        // real competitor to any graph.
        let scan = Engine {
            name: "firesight-exact",
            search: Box::new(|q, _| {
                index
                    .search_exact(q, K, None)
                    .map(|r| r.iter().map(|n| n.seq).collect())
                    .unwrap_or_default()
            }),
        };
        // A fifth of the repeated queries: a scan of 108k points costs what 100 graph searches do.
        let some = many.len().div_ceil(5).max(queries.len());
        for threads in [1usize, 2] {
            let (recall, qps) = measure(&scan, &many[..some], &many_truth[..some], 0, threads);
            println!(
                "{name}: firesight-exact threads {threads}: recall@10 {recall:.4}  {qps:>8.0} QPS"
            );
            report.push(serde_json::json!({"set": name, "engine": "firesight-exact", "kind": "query", "threads": threads, "ef": 0, "recall": recall, "qps": qps}));
        }
    }
    {
        let before = rss();
        let started = Instant::now();
        let index = HnswIndex::new(dim, 64, 200, 64, base.len());
        index.insert(&points)?;
        let build = base.len() as f64 / started.elapsed().as_secs_f64();
        let memory = (rss().saturating_sub(before)) as f64 / base.len() as f64;
        println!(
            "{name}: hnsw_rs build, 1 thread: {build:.0} vectors/s, {memory:.0} B/vector (RSS)"
        );
        report.push(serde_json::json!({"set": name, "engine": "hnsw_rs", "kind": "build", "threads": 1, "vectors_per_s": build, "bytes_per_vector": memory}));
        let engine = Engine {
            name: "hnsw_rs",
            search: Box::new(|q, ef| {
                index
                    .search_with_ef(q, K, ef, None)
                    .map(|r| r.iter().map(|n| n.seq).collect())
                    .unwrap_or_default()
            }),
        };
        sweep(name, &engine, &many, &many_truth, report);
    }
    Ok(())
}

fn sweep(
    set: &str,
    engine: &Engine<'_>,
    queries: &[Vec<f32>],
    truth: &[Vec<u64>],
    report: &mut Vec<serde_json::Value>,
) {
    for threads in [1usize, 2] {
        for ef in EFS {
            let (recall, qps) = measure(engine, queries, truth, ef, threads);
            println!(
                "{set}: {} ef {ef:>3} threads {threads}: recall@10 {recall:.4}  {qps:>8.0} QPS",
                engine.name
            );
            report.push(serde_json::json!({"set": set, "engine": engine.name, "kind": "query", "threads": threads, "ef": ef, "recall": recall, "qps": qps}));
        }
    }
}

/// Start-up from a snapshot at 1M vectors: build once, save, then time the load against the
/// build it replaces. Vectors: the event set's, each with fresh noise, repeated to 1M.
fn snapshot_stage(
    events: &[Vec<f32>],
    out: &Path,
    report: &mut Vec<serde_json::Value>,
) -> anyhow::Result<()> {
    let n: usize = std::env::var("FIRESIGHT_SNAPSHOT_POINTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dim = events[0].len();
    let mut state = 0x0009_E377_9B97_u64;
    let mut jitter = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.02
    };
    let base: Vec<Vec<f32>> = (0..n)
        .map(|i| {
            events[i % events.len()]
                .iter()
                .map(|x| x + jitter())
                .collect()
        })
        .collect();
    let points = numbered(&base);
    let params = NativeParams::new(dim);
    let started = Instant::now();
    let index = NativeHnsw::new(params);
    index.insert(&points)?;
    let build = started.elapsed().as_secs_f64();
    let path = out.join("snapshot_1m.hnsw");
    let started = Instant::now();
    index.save(&path, b"{}")?;
    let save = started.elapsed().as_secs_f64();
    let bytes = std::fs::metadata(&path)?.len();
    drop(index);
    let started = Instant::now();
    let (loaded, _) = NativeHnsw::load(&path, params)?;
    let load = started.elapsed().as_secs_f64();
    let hits = (0..1000)
        .filter(|i| {
            let q = &base[i * (n / 1000)];
            loaded
                .search(q, 1)
                .map(|r| r[0].distance == 0.0)
                .unwrap_or(false)
        })
        .count();
    println!(
        "snapshot: {n} vectors of {dim}: build {build:.1} s, save {save:.2} s, load {load:.2} s ({:.0} MB), {hits}/1000 probes find themselves after the load",
        bytes as f64 / 1e6
    );
    report.push(serde_json::json!({"set": "snapshot", "kind": "snapshot", "points": n, "build_s": build, "save_s": save, "load_s": load, "bytes": bytes, "self_hits_per_1000": hits}));
    std::fs::remove_file(&path)?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    // The workspace root: this crate sits in crates/firesight-index.
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    // Cargo runs a bench from its own package's folder: a relative CARGO_TARGET_DIR (as
    // scripts/bench-ann.sh, run from the root, means it) is taken from the root.
    let out = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| root.join("target"), |dir| root.join(dir))
        .join("ann");
    std::fs::create_dir_all(&out)?;
    let sift = root.join("../shared/data/ann/siftsmall");
    let mut report = Vec::new();
    // FIRESIGHT_ANN_SETS=siftsmall (or events108k) runs one set only, for quick comparisons.
    let only = std::env::var("FIRESIGHT_ANN_SETS").unwrap_or_default();
    let wanted = |set: &str| only.is_empty() || only.split(',').any(|s| s == set);

    if wanted("siftsmall") {
        let base = read_fvecs(&sift.join("siftsmall_base.fvecs"))?;
        let queries = read_fvecs(&sift.join("siftsmall_query.fvecs"))?;
        let truth = read_ivecs(&sift.join("siftsmall_groundtruth.ivecs"))?;
        run_set("siftsmall", &base, &queries, &truth, &mut report)?;
    }

    if wanted("events108k") {
        let (base, queries) = event_vectors(&out)?;
        let truth = exact_truth(&base, &queries)?;
        write_ivecs(&out.join("events_groundtruth.ivecs"), &truth)?;
        run_set("events108k", &base, &queries, &truth, &mut report)?;
        if std::env::var("FIRESIGHT_SNAPSHOT_POINTS").as_deref() != Ok("0") {
            snapshot_stage(&base, &out, &mut report)?;
        }
    }

    let path = out.join("ours.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&report)?)?;
    println!("results: {}", path.display());
    Ok(())
}

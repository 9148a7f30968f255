//! The native engine alone on an `.fvecs` file: build rate, then recall@10 and queries/s at a few
//! `ef`, against an exact search of the same file. No store, models or service, so it builds in
//! a minute in release and runs under `perf record` without anything else in the profile.
//!
//! ```sh
//! cargo run --release -p firesight-index --example engine -- BASE.fvecs QUERY.fvecs [ef ...]
//! ```
//!
//! `FIRESIGHT_ANN_ALPHA`, `FIRESIGHT_ANN_EFC` and `FIRESIGHT_ANN_THREADS` change the prune
//! slack, efConstruction and build threads; `FIRESIGHT_ANN_BASE_LIMIT` keeps the first N vectors.
//! `FIRESIGHT_ANN_SIZES=1000,10000,...` instead measures, for the first N vectors of each size,
//! the exact scan against the graph at the smallest `ef` reaching recall@10 0.99: where the graph
//! starts to win.

use std::path::Path;
use std::time::Instant;

#[path = "../benches/support/fvecs.rs"]
mod fvecs;
use fvecs::read_fvecs;

use firesight_index::{IndexPoint, NativeHnsw, NativeParams, PointAttrs, VectorIndex};

fn setting<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok()?.parse().ok()
}

/// Recall@10 of `search` against `truth`, and its queries per second, over `reps` passes of
/// `queries`.
fn timed(
    queries: &[Vec<f32>],
    truth: &[Vec<u64>],
    reps: usize,
    mut search: impl FnMut(&[f32]) -> Result<Vec<u64>, firesight_index::IndexError>,
) -> Result<(f64, f64), firesight_index::IndexError> {
    let started = Instant::now();
    let mut hits = 0;
    for _ in 0..reps {
        for (q, want) in queries.iter().zip(truth) {
            hits += search(q)?.iter().filter(|s| want.contains(s)).count();
        }
    }
    let n = (reps * queries.len()) as f64;
    Ok((
        hits as f64 / (n * 10.0),
        n / started.elapsed().as_secs_f64(),
    ))
}

/// The graph over `base`, built with `params`, with the build rate.
fn build(
    base: &[Vec<f32>],
    params: NativeParams,
) -> Result<(NativeHnsw, f64), firesight_index::IndexError> {
    let points: Vec<IndexPoint<'_>> = base
        .iter()
        .enumerate()
        .map(|(i, v)| IndexPoint {
            seq: i as u64,
            vector: v,
            attrs: PointAttrs::default(),
        })
        .collect();
    let started = Instant::now();
    let index = NativeHnsw::new(params);
    index.insert(&points)?;
    Ok((index, base.len() as f64 / started.elapsed().as_secs_f64()))
}

/// The ids of the 10 nearest to `q`: by the graph at `ef`, or by the exact scan for `None`.
fn nearest(
    index: &NativeHnsw,
    q: &[f32],
    ef: Option<usize>,
) -> Result<Vec<u64>, firesight_index::IndexError> {
    let found = match ef {
        Some(ef) => index.search_with_ef(q, 10, ef, None)?,
        None => index.search_exact(q, 10, None)?,
    };
    Ok(found.iter().map(|h| h.seq).collect())
}

/// The ids of each query's exact 10 nearest, by the engine's scan.
fn exact_truth(
    index: &NativeHnsw,
    queries: &[Vec<f32>],
) -> Result<Vec<Vec<u64>>, firesight_index::IndexError> {
    queries.iter().map(|q| nearest(index, q, None)).collect()
}

/// Repetitions of the query set so the exact scan does about 10^9 distances.
fn scan_reps(points: usize, queries: usize) -> usize {
    (1_000_000_000 / (points * queries).max(1)).clamp(1, 50)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [base_path, query_path, efs @ ..] = args.as_slice() else {
        return Err("usage: engine BASE.fvecs QUERY.fvecs [ef ...]".into());
    };
    let mut base = read_fvecs(Path::new(base_path))?;
    if let Some(limit) = setting::<usize>("FIRESIGHT_ANN_BASE_LIMIT") {
        base.truncate(limit);
    }
    let queries = read_fvecs(Path::new(query_path))?;
    let efs: Vec<usize> = if efs.is_empty() {
        vec![10, 16, 32, 64, 128]
    } else {
        efs.iter().map(|e| e.parse()).collect::<Result<_, _>>()?
    };
    let dim = base.first().ok_or("no base vectors")?.len();
    let defaults = NativeParams::new(dim);
    let params = NativeParams {
        prune_alpha: setting("FIRESIGHT_ANN_ALPHA").unwrap_or(defaults.prune_alpha),
        ef_construction: setting("FIRESIGHT_ANN_EFC").unwrap_or(defaults.ef_construction),
        build_threads: setting("FIRESIGHT_ANN_THREADS").unwrap_or(defaults.build_threads),
        ..defaults
    };
    let graph_reps = (20_000 / queries.len()).max(1);

    if let Ok(sizes) = std::env::var("FIRESIGHT_ANN_SIZES") {
        println!(
            "| points | exact scan QPS | graph: smallest ef at recall 0.99 | recall | QPS | graph / scan |"
        );
        println!("|---:|---:|---:|---:|---:|---:|");
        for size in sizes.split(',') {
            let n: usize = size.trim().parse()?;
            let part = &base[..n.min(base.len())];
            let (index, _) = build(part, params)?;
            let truth = exact_truth(&index, &queries)?;
            let (_, scan) = timed(
                &queries,
                &truth,
                scan_reps(part.len(), queries.len()),
                |q| nearest(&index, q, None),
            )?;
            let mut row = None;
            for &ef in &efs {
                let (recall, qps) = timed(&queries, &truth, graph_reps, |q| {
                    nearest(&index, q, Some(ef))
                })?;
                if recall >= 0.99 {
                    row = Some((ef, recall, qps));
                    break;
                }
            }
            match row {
                Some((ef, recall, qps)) => println!(
                    "| {} | {scan:.0} | {ef} | {recall:.4} | {qps:.0} | {:.2}x |",
                    part.len(),
                    qps / scan
                ),
                None => println!("| {} | {scan:.0} | not reached | | | |", part.len()),
            }
        }
        return Ok(());
    }

    let (index, rate) = build(&base, params)?;
    println!(
        "build: {} vectors of {dim}, {rate:.0} vectors/s (efC {}, alpha {}, {} thread(s))",
        base.len(),
        params.ef_construction,
        params.prune_alpha,
        params.build_threads
    );
    let started = Instant::now();
    let truth = exact_truth(&index, &queries)?;
    println!(
        "exact scan: {:.0} QPS (the ground truth)",
        queries.len() as f64 / started.elapsed().as_secs_f64()
    );
    for ef in efs {
        let (recall, qps) = timed(&queries, &truth, graph_reps, |q| {
            nearest(&index, q, Some(ef))
        })?;
        println!("ef {ef:>4}: recall@10 {recall:.4}  {qps:>9.0} QPS");
    }
    Ok(())
}

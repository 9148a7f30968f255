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

use std::time::Instant;

use firesight_index::{
    FlatIndex, IndexPoint, NativeHnsw, NativeParams, PointAttrs, VectorIndex, VectorIndexRead,
};

fn read_fvecs(path: &str) -> Result<Vec<Vec<f32>>, Box<dyn std::error::Error>> {
    let bytes = std::fs::read(path)?;
    let mut out = Vec::new();
    let mut at = 0;
    while at + 4 <= bytes.len() {
        let dim = u32::from_le_bytes(bytes[at..at + 4].try_into()?) as usize;
        at += 4;
        let row = bytes
            .get(at..at + dim * 4)
            .ok_or("truncated .fvecs row")?
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        out.push(row);
        at += dim * 4;
    }
    Ok(out)
}

fn setting<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok()?.parse().ok()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [base_path, query_path, efs @ ..] = args.as_slice() else {
        return Err("usage: engine BASE.fvecs QUERY.fvecs [ef ...]".into());
    };
    let mut base = read_fvecs(base_path)?;
    if let Some(limit) = setting::<usize>("FIRESIGHT_ANN_BASE_LIMIT") {
        base.truncate(limit);
    }
    let queries = read_fvecs(query_path)?;
    let efs: Vec<usize> = if efs.is_empty() {
        vec![10, 16, 32, 64, 128]
    } else {
        efs.iter().map(|e| e.parse()).collect::<Result<_, _>>()?
    };
    let dim = base[0].len();
    let points: Vec<IndexPoint<'_>> = base
        .iter()
        .enumerate()
        .map(|(i, v)| IndexPoint {
            seq: i as u64,
            vector: v,
            attrs: PointAttrs::default(),
        })
        .collect();

    let exact = FlatIndex::new(dim);
    exact.insert(&points)?;
    let truth: Vec<Vec<u64>> = queries
        .iter()
        .map(|q| Ok(exact.search(q, 10)?.iter().map(|n| n.seq).collect()))
        .collect::<Result<_, firesight_index::IndexError>>()?;

    let defaults = NativeParams::new(dim);
    let params = NativeParams {
        prune_alpha: setting("FIRESIGHT_ANN_ALPHA").unwrap_or(defaults.prune_alpha),
        ef_construction: setting("FIRESIGHT_ANN_EFC").unwrap_or(defaults.ef_construction),
        build_threads: setting("FIRESIGHT_ANN_THREADS").unwrap_or(defaults.build_threads),
        ..defaults
    };
    let started = Instant::now();
    let index = NativeHnsw::new(params);
    index.insert(&points)?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "build: {} vectors of {dim} in {seconds:.2} s, {:.0} vectors/s (efC {}, alpha {}, {} thread(s))",
        base.len(),
        base.len() as f64 / seconds,
        params.ef_construction,
        params.prune_alpha,
        params.build_threads
    );

    // Enough repetitions of the query set for each timing to cover about 20,000 queries.
    let reps = (20_000 / queries.len()).max(1);
    for ef in efs {
        let started = Instant::now();
        let mut hits = 0;
        for _ in 0..reps {
            for (q, want) in queries.iter().zip(&truth) {
                let got = index.search_with_ef(q, 10, ef, None)?;
                hits += got.iter().filter(|n| want.contains(&n.seq)).count();
            }
        }
        let n = (reps * queries.len()) as f64;
        println!(
            "ef {ef:>4}: recall@10 {:.4}  {:>9.0} QPS",
            hits as f64 / (n * 10.0),
            n / started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

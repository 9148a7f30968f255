//! The native engine on the TEXMEX siftsmall benchmark, scored with its official ground truth.

use firesight::index::{
    HnswIndex, IndexPoint, NativeHnsw, NativeParams, PointAttrs, VectorIndex, VectorIndexRead,
};

use super::support::shared;

/// Rows of an `.fvecs`/`.ivecs` file: a little-endian i32 width, then that many 4-byte values.
fn rows(path: &str) -> Vec<Vec<[u8; 4]>> {
    let bytes = std::fs::read(shared(path)).expect("read");
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let dim = i32::from_le_bytes(bytes[at..at + 4].try_into().expect("width")) as usize;
        at += 4;
        out.push(
            bytes[at..at + 4 * dim]
                .chunks_exact(4)
                .map(|c| [c[0], c[1], c[2], c[3]])
                .collect(),
        );
        at += 4 * dim;
    }
    out
}

fn floats(path: &str) -> Vec<Vec<f32>> {
    rows(path)
        .into_iter()
        .map(|r| r.into_iter().map(f32::from_le_bytes).collect())
        .collect()
}

#[test]
fn siftsmall_recall_at_10_at_the_default_ef() {
    let base = floats("ann/siftsmall/siftsmall_base.fvecs");
    let queries = floats("ann/siftsmall/siftsmall_query.fvecs");
    let truth: Vec<Vec<u64>> = rows("ann/siftsmall/siftsmall_groundtruth.ivecs")
        .into_iter()
        .map(|r| {
            r.into_iter()
                .map(|b| i32::from_le_bytes(b) as u64)
                .collect()
        })
        .collect();
    assert_eq!((base.len(), queries.len(), truth.len()), (10_000, 100, 100));
    let points: Vec<IndexPoint<'_>> = base
        .iter()
        .enumerate()
        .map(|(i, v)| IndexPoint {
            seq: i as u64,
            vector: v,
            attrs: PointAttrs::default(),
        })
        .collect();
    let native = NativeHnsw::new(NativeParams::new(128));
    native.insert(&points).expect("build");
    let crate_engine = HnswIndex::new(128, 64, 200, 64, base.len());
    crate_engine.insert(&points).expect("build");
    for (name, index) in [
        ("native", &native as &dyn VectorIndexRead),
        ("hnsw_rs", &crate_engine),
    ] {
        let found: usize = queries
            .iter()
            .zip(&truth)
            .map(|(q, t)| {
                index
                    .search(q, 10)
                    .expect("search")
                    .iter()
                    .filter(|n| t[..10].contains(&n.seq))
                    .count()
            })
            .sum();
        let recall = found as f64 / 1000.0;
        assert!(recall >= 0.995, "{name}: recall@10 {recall} at ef 64");
    }
    // Every vector finds itself.
    let lost = base
        .iter()
        .enumerate()
        .filter(|(i, v)| native.search(v, 1).expect("search")[0].seq != *i as u64)
        .count();
    assert_eq!(lost, 0, "{lost} base vectors do not find themselves");
}

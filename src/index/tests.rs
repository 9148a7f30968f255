//! Conformance suite run against every index implementation, and recall of HNSW against exact search.

use super::*;

/// Deterministic pseudo-random vectors (xorshift), so the suite needs no RNG crate.
fn vectors(n: usize, dim: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut state = seed.max(1);
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    (0..n).map(|_| (0..dim).map(|_| next()).collect()).collect()
}

fn fill(index: &dyn VectorIndex, data: &[Vec<f32>]) {
    let points: Vec<(u64, &[f32])> = data
        .iter()
        .enumerate()
        .map(|(i, v)| (i as u64, v.as_slice()))
        .collect();
    index.insert(&points).expect("insert");
}

fn conformance(index: &dyn VectorIndex) {
    assert!(index.search(&[0.0; 8], 5).expect("empty search").is_empty());
    let data = vectors(500, 8, 7);
    fill(index, &data);
    assert_eq!(index.len(), 500);
    let hits = index.search(&data[42], 3).expect("search");
    assert_eq!(
        hits[0].seq, 42,
        "a stored vector is its own nearest neighbour"
    );
    assert!(hits[0].distance.abs() < 1e-5);
    assert!(
        hits.windows(2).all(|w| w[0].distance <= w[1].distance),
        "nearest first"
    );
    assert!(matches!(
        index.search(&[0.0; 3], 1),
        Err(IndexError::Dimension {
            expected: 8,
            found: 3
        })
    ));
    let mut bad = vec![0.0; 8];
    bad[2] = f32::NAN;
    assert!(matches!(
        index.insert(&[(999, &bad)]),
        Err(IndexError::NonFinite { position: 2 })
    ));
    assert!(matches!(
        index.search(&bad, 1),
        Err(IndexError::NonFinite { position: 2 })
    ));
}

#[test]
fn flat_conforms() {
    conformance(&FlatIndex::new(8));
}

#[test]
fn hnsw_conforms() {
    conformance(&HnswIndex::new(8, 64, 200, 64, 500));
}

#[test]
fn hnsw_recall_at_10_against_exact() {
    let data = vectors(5000, 16, 11);
    let (hnsw, flat) = (HnswIndex::new(16, 64, 200, 64, 5000), FlatIndex::new(16));
    fill(&hnsw, &data);
    fill(&flat, &data);
    let queries = vectors(200, 16, 99);
    let mut found = 0;
    for q in &queries {
        let truth: Vec<u64> = flat
            .search(q, 10)
            .expect("exact")
            .iter()
            .map(|n| n.seq)
            .collect();
        found += hnsw
            .search(q, 10)
            .expect("hnsw")
            .iter()
            .filter(|n| truth.contains(&n.seq))
            .count();
    }
    let recall = found as f64 / (queries.len() * 10) as f64;
    assert!(recall >= 0.99, "recall@10 = {recall}");
}

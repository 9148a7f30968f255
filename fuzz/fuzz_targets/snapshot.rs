//! The HNSW snapshot loader on arbitrary bytes. The input is a snapshot without its trailing
//! checksum and the target appends the right one, so mutations get past the checksum to the
//! structure behind it: what a damaged file whose sum happens to match, or a broken writer,
//! would present. Loading answers a graph or a refusal; a graph that loads must then search
//! (plain, filtered, and by exact scan, which finds min(k, live) points whatever the links),
//! insert and delete without panicking.
#![no_main]

use firesight_index::{
    BBox, IndexPoint, NativeHnsw, NativeParams, PointAttrs, SearchFilter, VectorIndex,
    VectorIndexRead,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut bytes = data.to_vec();
    bytes.extend(crc32fast::hash(data).to_le_bytes());
    // The settings the seed was written with (width 4, M 4): a snapshot of other settings is
    // refused before its body is read.
    let params = NativeParams {
        m: 4,
        ef_construction: 16,
        ef_search: 16,
        flat_search_cutoff: 8,
        ..NativeParams::new(4)
    };
    let Ok((engine, _meta)) = NativeHnsw::from_bytes(&bytes, params) else {
        return;
    };
    let query = [0.1, -0.2, 0.3, 0.0];
    let held = engine.len();
    let found = engine.search(&query, 5).expect("a loaded graph searches");
    assert!(found.len() <= held.min(5));
    let near = SearchFilter {
        bbox: Some(BBox {
            min_lon: -10.0,
            min_lat: -10.0,
            max_lon: 10.0,
            max_lat: 10.0,
        }),
        ..SearchFilter::default()
    };
    let _ = engine.search_filtered(&query, 5, Some(&near));
    let exact = engine
        .search_exact(&query, 5, None)
        .expect("a loaded graph scans");
    // The scan sees every live point, however the graph is linked.
    assert_eq!(exact.len(), held.min(5));
    let fresh = IndexPoint {
        seq: u64::MAX,
        vector: &query,
        attrs: PointAttrs::default(),
    };
    engine
        .insert(&[fresh])
        .expect("a loaded graph takes a point");
    let _ = engine.search(&query, 5);
    let ids: Vec<u64> = found.iter().map(|n| n.seq).chain([u64::MAX]).collect();
    engine.delete(&ids).expect("a loaded graph lets points go");
    let _ = engine.search(&query, 5);
});

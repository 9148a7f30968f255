//! HNSW through the `hnsw_rs` crate (M = 64 by default).

use std::collections::HashMap;
use std::sync::RwLock;

use hnsw_rs::prelude::{DistL2, Hnsw};

use super::{
    IndexError, IndexPoint, Neighbour, PointAttrs, SearchFilter, VectorIndex, VectorIndexRead,
    check_vector, insertion_key,
};

/// Layers in the graph; 16 is ample for M = 64 up to billions of points.
const MAX_LAYERS: usize = 16;

/// HNSW graph over L2. `hnsw_rs` is not safe to insert into while searching, so writes take
/// the lock exclusively, and it can neither delete nor replace a point: those calls fail with
/// [`IndexError::Unsupported`]. Kept as a second engine and a cross-check for our own.
pub struct HnswIndex {
    dim: usize,
    ef_search: usize,
    graph: RwLock<Graph>,
}

struct Graph {
    hnsw: Hnsw<'static, f32, DistL2>,
    attrs: HashMap<u64, PointAttrs>,
}

impl HnswIndex {
    /// An empty graph sized for about `capacity` points.
    pub fn new(
        dim: usize,
        m: usize,
        ef_construction: usize,
        ef_search: usize,
        capacity: usize,
    ) -> Self {
        let graph = Hnsw::new(
            m,
            capacity.max(1024),
            MAX_LAYERS,
            ef_construction,
            DistL2 {},
        );
        Self {
            dim,
            ef_search,
            graph: RwLock::new(Graph {
                hnsw: graph,
                attrs: HashMap::new(),
            }),
        }
    }
}

impl HnswIndex {
    /// Search with an explicit `ef`, for benchmarks that sweep it.
    pub fn search_with_ef(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        filter: Option<&SearchFilter>,
    ) -> Result<Vec<Neighbour>, IndexError> {
        check_vector(self.dim, query)?;
        if k == 0 {
            return Ok(Vec::new());
        }
        let graph = self.graph.read().map_err(|_| IndexError::Poisoned)?;
        if graph.hnsw.get_nb_point() == 0 {
            return Ok(Vec::new());
        }
        let ef = ef.max(k);
        let found = match filter.filter(|f| !f.is_empty()) {
            None => graph.hnsw.search(query, k, ef),
            Some(f) => {
                let pass =
                    |id: &usize| graph.attrs.get(&(*id as u64)).is_some_and(|a| f.matches(a));
                graph.hnsw.search_filter(query, k, ef, Some(&pass))
            }
        };
        Ok(found
            .into_iter()
            .map(|n| Neighbour {
                seq: n.d_id as u64,
                distance: n.distance,
            })
            .collect())
    }
}

impl VectorIndexRead for HnswIndex {
    fn search_filtered(
        &self,
        query: &[f32],
        k: usize,
        filter: Option<&SearchFilter>,
    ) -> Result<Vec<Neighbour>, IndexError> {
        self.search_with_ef(query, k, self.ef_search, filter)
    }

    fn len(&self) -> usize {
        self.graph.read().map_or(0, |g| g.hnsw.get_nb_point())
    }

    fn dim(&self) -> usize {
        self.dim
    }
}

impl VectorIndex for HnswIndex {
    fn insert(&self, points: &[IndexPoint<'_>]) -> Result<(), IndexError> {
        for p in points {
            check_vector(self.dim, p.vector)?;
        }
        let mut ordered: Vec<&IndexPoint<'_>> = points.iter().collect();
        ordered.sort_by_key(|p| insertion_key(p.seq));
        let mut graph = self.graph.write().map_err(|_| IndexError::Poisoned)?;
        if ordered.iter().any(|p| graph.attrs.contains_key(&p.seq)) {
            return Err(IndexError::Unsupported {
                engine: "hnsw_rs",
                operation: "replace a point",
            });
        }
        // Serial inserts: hnsw_rs draws levels from a seeded RNG, so the same points in the same
        // order give the same graph (rayon's parallel insert would not).
        for p in ordered {
            graph.hnsw.insert_slice((p.vector, p.seq as usize));
            graph.attrs.insert(p.seq, p.attrs);
        }
        Ok(())
    }

    fn delete(&self, _seqs: &[u64]) -> Result<usize, IndexError> {
        Err(IndexError::Unsupported {
            engine: "hnsw_rs",
            operation: "delete a point",
        })
    }

    fn engine(&self) -> &'static str {
        "hnsw_rs"
    }
}

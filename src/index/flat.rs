//! Exact search by scanning every vector: the ground truth for recall checks.

use std::sync::RwLock;

use super::{IndexError, Neighbour, VectorIndex, VectorIndexRead, check_vector};

/// Brute-force index.
pub struct FlatIndex {
    dim: usize,
    points: RwLock<(Vec<u64>, Vec<f32>)>,
}

impl FlatIndex {
    /// An empty index of width `dim`.
    pub fn new(dim: usize) -> Self {
        Self {
            dim,
            points: RwLock::new((Vec::new(), Vec::new())),
        }
    }
}

/// Squared Euclidean distance.
pub(crate) fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

impl VectorIndexRead for FlatIndex {
    fn search(&self, query: &[f32], k: usize) -> Result<Vec<Neighbour>, IndexError> {
        check_vector(self.dim, query)?;
        let points = self.points.read().map_err(|_| IndexError::Poisoned)?;
        let (ids, data) = &*points;
        let mut all: Vec<Neighbour> = ids
            .iter()
            .zip(data.chunks_exact(self.dim))
            .map(|(&seq, v)| Neighbour {
                seq,
                distance: l2_squared(query, v).sqrt(),
            })
            .collect();
        let k = k.min(all.len());
        if k == 0 {
            return Ok(Vec::new());
        }
        all.select_nth_unstable_by(k - 1, |a, b| a.distance.total_cmp(&b.distance));
        all.truncate(k);
        all.sort_by(|a, b| a.distance.total_cmp(&b.distance).then(a.seq.cmp(&b.seq)));
        Ok(all)
    }

    fn len(&self) -> usize {
        self.points.read().map_or(0, |p| p.0.len())
    }

    fn dim(&self) -> usize {
        self.dim
    }
}

impl VectorIndex for FlatIndex {
    fn insert(&self, points: &[(u64, &[f32])]) -> Result<(), IndexError> {
        for (_, v) in points {
            check_vector(self.dim, v)?;
        }
        let mut guard = self.points.write().map_err(|_| IndexError::Poisoned)?;
        for (seq, v) in points {
            guard.0.push(*seq);
            guard.1.extend_from_slice(v);
        }
        Ok(())
    }
}

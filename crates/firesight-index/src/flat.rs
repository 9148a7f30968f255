//! Exact search by scanning every vector: the ground truth for recall checks and the model the
//! graph engines are tested against.

use std::collections::BTreeMap;
use std::sync::RwLock;

use super::{
    IndexError, IndexPoint, Neighbour, PointAttrs, SearchFilter, VectorIndex, VectorIndexRead,
    check_vector,
};

/// Brute-force index (L2).
pub struct FlatIndex {
    dim: usize,
    points: RwLock<BTreeMap<u64, (Vec<f32>, PointAttrs)>>,
}

impl FlatIndex {
    /// An empty index of width `dim`.
    pub fn new(dim: usize) -> Self {
        Self {
            dim,
            points: RwLock::new(BTreeMap::new()),
        }
    }
}

/// Squared Euclidean distance.
pub(crate) fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

impl VectorIndexRead for FlatIndex {
    fn search_filtered(
        &self,
        query: &[f32],
        k: usize,
        filter: Option<&SearchFilter>,
    ) -> Result<Vec<Neighbour>, IndexError> {
        check_vector(self.dim, query)?;
        let points = self.points.read().map_err(|_| IndexError::Poisoned)?;
        let mut all: Vec<Neighbour> = points
            .iter()
            .filter(|(_, (_, attrs))| filter.is_none_or(|f| f.matches(attrs)))
            .map(|(&seq, (v, _))| Neighbour {
                seq,
                distance: l2_squared(query, v).sqrt(),
            })
            .collect();
        let k = k.min(all.len());
        if k == 0 {
            return Ok(Vec::new());
        }
        let order = |a: &Neighbour, b: &Neighbour| {
            a.distance.total_cmp(&b.distance).then(a.seq.cmp(&b.seq))
        };
        all.select_nth_unstable_by(k - 1, order);
        all.truncate(k);
        all.sort_by(order);
        Ok(all)
    }

    fn len(&self) -> usize {
        self.points.read().map_or(0, |p| p.len())
    }

    fn dim(&self) -> usize {
        self.dim
    }
}

impl VectorIndex for FlatIndex {
    fn insert(&self, points: &[IndexPoint<'_>]) -> Result<(), IndexError> {
        for p in points {
            check_vector(self.dim, p.vector)?;
        }
        let mut guard = self.points.write().map_err(|_| IndexError::Poisoned)?;
        for p in points {
            guard.insert(p.seq, (p.vector.to_vec(), p.attrs));
        }
        Ok(())
    }

    fn delete(&self, seqs: &[u64]) -> Result<usize, IndexError> {
        let mut guard = self.points.write().map_err(|_| IndexError::Poisoned)?;
        Ok(seqs.iter().filter(|s| guard.remove(s).is_some()).count())
    }

    fn engine(&self) -> &'static str {
        "flat"
    }
}

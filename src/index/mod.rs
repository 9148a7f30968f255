//! Vector index behind a read/write trait pair, so the engine under it can change.

mod flat;
mod hnsw;
#[cfg(test)]
mod tests;

pub use flat::FlatIndex;
pub use hnsw::{HnswIndex, insertion_key};

/// A neighbour: the point id (the store's vector sequence number) and its L2 distance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Neighbour {
    /// Point id.
    pub seq: u64,
    /// Euclidean distance to the query.
    pub distance: f32,
}

/// An index failure.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// A vector of the wrong width.
    #[error("vector has {found} dimensions, the index holds {expected}")]
    Dimension {
        /// Index width.
        expected: usize,
        /// Vector width.
        found: usize,
    },
    /// NaN or infinity in a vector.
    #[error("vector component {position} is not finite")]
    NonFinite {
        /// Index of the first bad component.
        position: usize,
    },
    /// The engine's lock was poisoned by a panic elsewhere.
    #[error("index lock poisoned")]
    Poisoned,
}

/// Read side: what queries need.
pub trait VectorIndexRead: Send + Sync {
    /// The `k` nearest points to `query`, nearest first.
    fn search(&self, query: &[f32], k: usize) -> Result<Vec<Neighbour>, IndexError>;
    /// Points held.
    fn len(&self) -> usize;
    /// True when empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Vector width.
    fn dim(&self) -> usize;
}

/// Write side: what the pipeline needs.
pub trait VectorIndex: VectorIndexRead {
    /// Adds points; ids must be new.
    fn insert(&self, points: &[(u64, &[f32])]) -> Result<(), IndexError>;
}

/// Refuses vectors of the wrong width or with non-finite components.
pub fn check_vector(dim: usize, vector: &[f32]) -> Result<(), IndexError> {
    if vector.len() != dim {
        return Err(IndexError::Dimension {
            expected: dim,
            found: vector.len(),
        });
    }
    match vector.iter().position(|x| !x.is_finite()) {
        Some(position) => Err(IndexError::NonFinite { position }),
        None => Ok(()),
    }
}

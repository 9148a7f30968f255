//! Patterns across events: density clusters, outliers, and why two events are alike.
//!
//! Everything works on a *window*: the stored events inside a time range, a box and other
//! filters, with their vectors in the serving model's space and their encoder features. The
//! neighbour graph of the window comes from an exact scan when it is small and from the vector
//! index (a filtered search per event) when it is not; clusters are HDBSCAN* over that graph,
//! outliers rank by how far an event sits from its neighbours against the window's typical
//! spacing, by local outlier factor, by the model's anomaly score when the encoder provides one,
//! and by the rule anomalies of the pipeline.

pub mod active_fires;
pub mod clustering;
pub mod explain;
pub mod features;
pub mod hdbscan;
pub mod outliers;
pub mod scope;

use crate::embed::EmbedError;
use crate::index::IndexError;
use crate::store::StoreError;

pub use clustering::{ClusterReport, Clusters, clusters};
pub use explain::{Contribution, Explanation, FEATURE_GROUPS, explain};
pub use features::{FeatureDeviation, FeatureStats};
pub use hdbscan::NeighbourList;
pub use outliers::{OutlierReport, outliers};
pub use scope::{Window, load_window, window_neighbours};

/// Why a pattern query could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum PatternError {
    /// The window holds more events than one request may analyse.
    #[error(
        "the window holds more than {limit} events (patterns.max_window_events); narrow `from`/`to` or `bbox`"
    )]
    TooLarge {
        /// The configured ceiling.
        limit: usize,
    },
    /// The time range alone holds far more events than the ceiling, so even filtering it by
    /// box would take too long.
    #[error(
        "the time range holds more than {scanned} events, too many to filter by box in one request; narrow `from`/`to`"
    )]
    ScanTooLong {
        /// Events read before giving up.
        scanned: usize,
    },
    /// The request it served went away.
    #[error(transparent)]
    Cancelled(#[from] crate::cancel::Cancelled),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The index failed.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// The encoder failed.
    #[error(transparent)]
    Embed(#[from] EmbedError),
}

fn round(x: f64, places: i32) -> f64 {
    let p = 10f64.powi(places);
    (x * p).round() / p
}

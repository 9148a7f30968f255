//! Density clusters of a window: HDBSCAN* over its neighbour graph, each cluster described by
//! a stable id, its extent in space and time, the features that set it apart and the events
//! nearest its mean vector.

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::features::{FeatureDeviation, FeatureStats};
use super::hdbscan::{self, NeighbourList};
use super::round;
use super::scope::Window;

/// One density cluster of a window.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ClusterReport {
    /// Stable id: derived from the cluster's earliest event, so the same data gives the same id.
    pub id: String,
    /// Events in it.
    pub size: usize,
    /// Mean position of its events (averaged on the sphere).
    pub centroid: crate::event::Location,
    /// Earliest detection, ms since the epoch.
    pub first_detection: i64,
    /// Latest detection, ms since the epoch.
    pub last_detection: i64,
    /// Farthest event from the centroid, km.
    pub radius_km: f64,
    /// HDBSCAN excess of mass: how long the group persists as the density threshold drops.
    pub stability: f64,
    /// The readable features whose cluster mean sits farthest from the window's, with |z| ≥ 0.5.
    pub distinguishing_features: Vec<FeatureDeviation>,
    /// Indices (into the window) of the events nearest the cluster's mean vector.
    #[serde(skip)]
    pub representatives: Vec<usize>,
    /// Index (into the window) of one member, to map the report to its label.
    #[serde(skip)]
    pub any_member: usize,
}

/// Clusters of a window, largest first, and how many events were noise.
pub struct Clusters {
    /// The clusters.
    pub clusters: Vec<ClusterReport>,
    /// Events in no cluster.
    pub noise: usize,
    /// Cluster number of each window event.
    pub labels: Vec<Option<u32>>,
}

/// HDBSCAN* clusters of `window` from its neighbour graph.
pub fn clusters(
    window: &Window,
    knn: &[NeighbourList],
    min_samples: usize,
    min_size: usize,
    representatives: usize,
) -> Clusters {
    let result = hdbscan::cluster(knn, min_samples, min_size);
    let stats = FeatureStats::of(&window.features);
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); result.stability.len()];
    for (i, label) in result.labels.iter().enumerate() {
        if let Some(c) = label {
            members[*c as usize].push(i);
        }
    }
    let noise = result.labels.iter().filter(|l| l.is_none()).count();
    let mut reports: Vec<ClusterReport> = members
        .iter()
        .zip(&result.stability)
        .filter(|(m, _)| !m.is_empty())
        .map(|(m, &stability)| describe_cluster(window, &stats, m, stability, representatives))
        .collect();
    reports.sort_by(|a, b| b.size.cmp(&a.size).then(a.id.cmp(&b.id)));
    Clusters {
        clusters: reports,
        noise,
        labels: result.labels,
    }
}

fn describe_cluster(
    window: &Window,
    stats: &FeatureStats,
    members: &[usize],
    stability: f64,
    representatives: usize,
) -> ClusterReport {
    let events = || members.iter().map(|&i| &window.events[i]);
    let founder = events()
        .min_by(|a, b| {
            a.detection_time
                .cmp(&b.detection_time)
                .then(a.event_id.cmp(&b.event_id))
        })
        .map_or("", |e| e.event_id.as_str());
    let digest = Sha256::digest(founder.as_bytes());
    let centroid: crate::event::Location =
        crate::geo::centroid(events().map(|e| (e.location.latitude, e.location.longitude))).into();
    let radius_km = events()
        .map(|e| {
            crate::geo::distance_km(
                centroid.latitude,
                centroid.longitude,
                e.location.latitude,
                e.location.longitude,
            )
        })
        .fold(0.0, f64::max);
    let mean = FeatureStats::of(members.iter().map(|&i| &window.features[i])).mean;
    let dim = window.dim;
    let mut centre = vec![0.0f32; dim];
    for &i in members {
        for (c, v) in centre.iter_mut().zip(window.vector(i)) {
            *c += v / members.len() as f32;
        }
    }
    let mut by_closeness: Vec<(f32, usize)> = members
        .iter()
        .map(|&i| {
            let d: f32 = window
                .vector(i)
                .iter()
                .zip(&centre)
                .map(|(a, b)| (a - b) * (a - b))
                .sum();
            (d, i)
        })
        .collect();
    by_closeness.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    ClusterReport {
        id: format!("cl_{}", hex::encode(&digest[..6])),
        size: members.len(),
        centroid,
        first_detection: events().map(|e| e.detection_time).min().unwrap_or_default(),
        last_detection: events().map(|e| e.detection_time).max().unwrap_or_default(),
        radius_km: round(radius_km, 2),
        stability: round(stability, 3),
        distinguishing_features: stats.deviations(&mean, 4, 0.5),
        representatives: by_closeness
            .iter()
            .take(representatives)
            .map(|&(_, i)| i)
            .collect(),
        any_member: members[0],
    }
}

//! Patterns across events: density clusters, outliers, and why two events are alike.
//!
//! Everything works on a *window*: the stored events inside a time range, a box and other
//! filters, with their vectors in the serving model's space and their encoder features. The
//! neighbour graph of the window comes from an exact scan when it is small and from the vector
//! index (a filtered search per event) when it is not; clusters are HDBSCAN* over that graph,
//! outliers rank by how far an event sits from its neighbours against the window's typical
//! spacing, by local outlier factor, by the model's anomaly score when the encoder provides one,
//! and by the rule anomalies of the pipeline.

pub mod hdbscan;
pub mod incidents;

use std::collections::HashMap;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::embed::{EmbedError, Embedder};
use crate::embed::{FEATURE_COUNT, FEATURE_NAMES, event_features};
use crate::event::FireEventV2;
use crate::index::{IndexError, PointAttrs, SearchFilter, VectorIndexRead};
use crate::store::{Store, StoreError};

pub use hdbscan::NeighbourList;

/// Features that mean something on their own to a reader; location and the cyclic time
/// encodings are reported as places and times instead.
const READABLE: [usize; 15] = [3, 4, 5, 6, 7, 8, 9, 14, 15, 16, 17, 18, 19, 20, 21];

/// Groups of encoder inputs that are one property to a reader (location is three coordinates).
pub const FEATURE_GROUPS: [(&str, &[usize]); 17] = [
    ("location", &[0, 1, 2]),
    ("brightness_k", &[3]),
    ("brightness_background_k", &[4]),
    ("frp", &[5]),
    ("pixel_size", &[6, 7]),
    ("confidence", &[8]),
    ("daytime", &[9]),
    ("time_of_day", &[10, 11]),
    ("season", &[12, 13]),
    ("instrument", &[14]),
    ("max_temp_c", &[15]),
    ("min_temp_c", &[16]),
    ("rain", &[17]),
    ("rh_3pm_pct", &[18]),
    ("wind_3pm_kmh", &[19]),
    ("max_gust_kmh", &[20]),
    ("weather_present", &[21]),
];

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

/// The events of a window, with what the analyses need of each.
pub struct Window {
    /// The events, newest first.
    pub events: Vec<FireEventV2>,
    /// Their vector sequence numbers (the index's point ids).
    pub seqs: Vec<u64>,
    /// Their vectors, `dim` floats each.
    pub vectors: Vec<f32>,
    /// Vector width.
    pub dim: usize,
    /// Their encoder features.
    pub features: Vec<[f32; FEATURE_COUNT]>,
    /// Bounds actually used, ms since the epoch.
    pub from_ms: i64,
    /// Upper bound, inclusive.
    pub to_ms: i64,
}

impl Window {
    /// Events in the window.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// True when the window holds no event.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    fn vector(&self, i: usize) -> &[f32] {
        &self.vectors[i * self.dim..(i + 1) * self.dim]
    }
}

/// Reads the window: the stored events between `from_ms` and `to_ms` that pass `filter` and
/// have a vector in `model`'s space. More than `limit` is [`PatternError::TooLarge`].
pub fn load_window(
    store: &Store,
    model: &str,
    filter: &SearchFilter,
    (from_ms, to_ms): (i64, i64),
    limit: usize,
) -> Result<Window, PatternError> {
    let mut window = Window {
        events: Vec::new(),
        seqs: Vec::new(),
        vectors: Vec::new(),
        dim: 0,
        features: Vec::new(),
        from_ms,
        to_ms,
    };
    let scan_limit = limit.saturating_mul(8).max(100_000);
    for (scanned, event) in store.events_between(from_ms, to_ms)?.enumerate() {
        if scanned >= scan_limit {
            return Err(PatternError::ScanTooLong { scanned });
        }
        let event = event?;
        if !filter.matches(&PointAttrs::of(&event)) {
            continue;
        }
        if window.events.len() == limit {
            return Err(PatternError::TooLarge { limit });
        }
        let Some(seq) = store.seq_of(&event.event_id)? else {
            continue;
        };
        let Some(stored) = store.vector(seq, model)? else {
            continue;
        };
        window.dim = stored.vector.len();
        window.vectors.extend_from_slice(&stored.vector);
        window.seqs.push(seq);
        window.features.push(event_features(&event));
        window.events.push(event);
    }
    Ok(window)
}

/// The `k` nearest window events of every window event: by exact scan below `exact_below`
/// events, otherwise by one filtered index search per event (on up to two threads).
pub fn window_neighbours(
    window: &Window,
    index: &dyn VectorIndexRead,
    filter: &SearchFilter,
    k: usize,
    exact_below: usize,
) -> Result<Vec<NeighbourList>, PatternError> {
    if window.len() <= exact_below {
        return Ok(hdbscan::exact_knn(&window.vectors, window.dim, k));
    }
    let position: HashMap<u64, u32> = window
        .seqs
        .iter()
        .enumerate()
        .map(|(i, &s)| (s, i as u32))
        .collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    let chunk = window.len().div_ceil(threads);
    let parts: Vec<Result<Vec<NeighbourList>, IndexError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..window.len())
            .step_by(chunk)
            .map(|start| {
                let position = &position;
                scope.spawn(move || {
                    (start..(start + chunk).min(window.len()))
                        .map(|i| {
                            let hits =
                                index.search_filtered(window.vector(i), k + 1, Some(filter))?;
                            Ok(hits
                                .into_iter()
                                .filter_map(|h| position.get(&h.seq).map(|&j| (j, h.distance)))
                                .filter(|&(j, _)| j as usize != i)
                                .take(k)
                                .collect())
                        })
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(Err(IndexError::Poisoned)))
            .collect()
    });
    let mut out = Vec::with_capacity(window.len());
    for part in parts {
        out.extend(part?);
    }
    Ok(out)
}

/// Mean and standard deviation of each encoder feature over a set of rows, NaN ignored.
#[derive(Debug, Clone)]
pub struct FeatureStats {
    mean: [f64; FEATURE_COUNT],
    std: [f64; FEATURE_COUNT],
}

impl FeatureStats {
    /// Over `rows`.
    pub fn of<'a>(rows: impl IntoIterator<Item = &'a [f32; FEATURE_COUNT]>) -> Self {
        let mut sum = [0.0f64; FEATURE_COUNT];
        let mut sq = [0.0f64; FEATURE_COUNT];
        let mut count = [0u64; FEATURE_COUNT];
        for row in rows {
            for (f, &x) in row.iter().enumerate() {
                if x.is_finite() {
                    sum[f] += f64::from(x);
                    sq[f] += f64::from(x) * f64::from(x);
                    count[f] += 1;
                }
            }
        }
        let mut mean = [f64::NAN; FEATURE_COUNT];
        let mut std = [f64::NAN; FEATURE_COUNT];
        for f in 0..FEATURE_COUNT {
            if count[f] > 0 {
                let n = count[f] as f64;
                mean[f] = sum[f] / n;
                std[f] = (sq[f] / n - mean[f] * mean[f]).max(0.0).sqrt();
            }
        }
        Self { mean, std }
    }

    /// How far a group's mean (or one event's value) sits from these rows' mean, in standard
    /// deviations, for the readable features; the largest first, at most `top`, only those at
    /// least `min_z` away.
    pub fn deviations(
        &self,
        values: &[f64; FEATURE_COUNT],
        top: usize,
        min_z: f64,
    ) -> Vec<FeatureDeviation> {
        let mut out: Vec<FeatureDeviation> = READABLE
            .iter()
            .filter_map(|&f| {
                let (v, m, s) = (values[f], self.mean[f], self.std[f]);
                if !(v.is_finite() && m.is_finite() && s > 1e-9) {
                    return None;
                }
                let z = (v - m) / s;
                (z.abs() >= min_z).then(|| FeatureDeviation {
                    feature: FEATURE_NAMES[f],
                    value: round(v, 3),
                    typical: round(m, 3),
                    z: round(z, 2),
                })
            })
            .collect();
        out.sort_by(|a, b| {
            b.z.abs()
                .total_cmp(&a.z.abs())
                .then(a.feature.cmp(b.feature))
        });
        out.truncate(top);
        out
    }
}

/// One feature that sets a group or an event apart.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct FeatureDeviation {
    /// Encoder feature name (`log1p_*` features are ln(1 + value)).
    pub feature: &'static str,
    /// The group's mean, or the event's value.
    pub value: f64,
    /// The window's mean.
    pub typical: f64,
    /// `(value - typical) / window standard deviation`.
    pub z: f64,
}

fn round(x: f64, places: i32) -> f64 {
    let p = 10f64.powi(places);
    (x * p).round() / p
}

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
    let centroid =
        crate::geo::centroid(events().map(|e| (e.location.latitude, e.location.longitude)));
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

/// One event's outlier assessment.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OutlierReport {
    /// Index into the window.
    #[serde(skip)]
    pub index: usize,
    /// The ranking score: `max(distance_ratio, lof, |z| of the most deviating feature / 3)
    /// × (1 + model_anomaly) + the number of rule anomalies`.
    pub score: f64,
    /// Mean distance to its neighbours over the window's median of the same (1 is typical).
    pub distance_ratio: f64,
    /// Local outlier factor over the same neighbours (1 is typical, above 1.5 stands out).
    pub lof: f64,
    /// The encoder's anomaly score in [0, 1], when the serving model release has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_anomaly: Option<f64>,
    /// Rule anomalies from the pipeline (e.g. `fire_under_high_humidity`).
    pub rule_anomalies: Vec<String>,
    /// Readable features at least 2 standard deviations from the window's mean.
    pub deviating_features: Vec<FeatureDeviation>,
    /// The reasons, in words.
    pub reasons: Vec<String>,
}

/// Ranks every window event as an outlier; the highest score first, `limit` of them.
pub fn outliers(window: &Window, knn: &[NeighbourList], limit: usize) -> Vec<OutlierReport> {
    let n = window.len();
    let mean_distance: Vec<f64> = knn
        .iter()
        .map(|list| {
            if list.is_empty() {
                f64::NAN
            } else {
                list.iter().map(|&(_, d)| f64::from(d)).sum::<f64>() / list.len() as f64
            }
        })
        .collect();
    let mut finite: Vec<f64> = mean_distance
        .iter()
        .copied()
        .filter(|d| d.is_finite())
        .collect();
    finite.sort_by(f64::total_cmp);
    let typical = finite
        .get(finite.len() / 2)
        .copied()
        .unwrap_or(0.0)
        .max(1e-9);
    // Local outlier factor: reachability via each neighbour's own k-distance.
    let k_distance: Vec<f64> = knn
        .iter()
        .map(|l| l.last().map_or(f64::NAN, |&(_, d)| f64::from(d)))
        .collect();
    let lrd: Vec<f64> = knn
        .iter()
        .map(|list| {
            let reach: f64 = list
                .iter()
                .map(|&(j, d)| k_distance[j as usize].max(f64::from(d)))
                .sum::<f64>()
                / list.len().max(1) as f64;
            1.0 / reach.max(1e-9)
        })
        .collect();
    let stats = FeatureStats::of(&window.features);
    let mut reports: Vec<OutlierReport> = (0..n)
        .map(|i| {
            let event = &window.events[i];
            let ratio = mean_distance[i] / typical;
            let lof = if knn[i].is_empty() {
                f64::NAN
            } else {
                knn[i].iter().map(|&(j, _)| lrd[j as usize]).sum::<f64>()
                    / knn[i].len() as f64
                    / lrd[i]
            };
            let model_anomaly = event.ml_predictions.as_ref().and_then(|p| {
                p.iter()
                    .find(|m| m.name == "anomaly_score")
                    .map(|m| m.value.clamp(0.0, 1.0))
            });
            let rules = event
                .impact_assessment
                .as_ref()
                .map(|a| a.anomalies.clone())
                .unwrap_or_default();
            let values: [f64; FEATURE_COUNT] =
                std::array::from_fn(|f| f64::from(window.features[i][f]));
            let deviating = stats.deviations(&values, 3, 2.0);
            // The encoder squashes values far outside its training range, so an extreme
            // feature counts on its own: three standard deviations weigh like neighbours
            // three times as far as is typical.
            let extremity = stats
                .deviations(&values, 1, 0.0)
                .first()
                .map_or(0.0, |d| d.z.abs() / 3.0);
            let vector = if ratio.is_finite() {
                ratio.max(lof.max(0.0))
            } else {
                0.0
            };
            let score =
                vector.max(extremity) * (1.0 + model_anomaly.unwrap_or(0.0)) + rules.len() as f64;
            let mut reasons = Vec::new();
            if ratio.is_finite() {
                reasons.push(format!(
                    "its {} nearest events are {:.1}× as far as is typical in this window",
                    knn[i].len(),
                    ratio
                ));
            } else {
                reasons.push("it has no neighbour in this window".to_owned());
            }
            if lof >= 1.5 {
                reasons.push(format!(
                    "local outlier factor {lof:.1}: sparser than its neighbours' surroundings"
                ));
            }
            if let Some(a) = model_anomaly {
                reasons.push(format!("the model's anomaly score is {a:.2}"));
            }
            for d in &deviating {
                let side = if d.z > 0.0 { "above" } else { "below" };
                reasons.push(format!(
                    "{} = {} is {:.1} standard deviations {side} the window's mean {}",
                    d.feature,
                    d.value,
                    d.z.abs(),
                    d.typical
                ));
            }
            for r in &rules {
                reasons.push(format!("rule anomaly: {r}"));
            }
            OutlierReport {
                index: i,
                score: round(score, 4),
                distance_ratio: round(ratio, 3),
                lof: round(lof, 3),
                model_anomaly,
                rule_anomalies: rules,
                deviating_features: deviating,
                reasons,
            }
        })
        .collect();
    reports.sort_by(|a, b| {
        b.score.total_cmp(&a.score).then_with(|| {
            window.events[a.index]
                .event_id
                .cmp(&window.events[b.index].event_id)
        })
    });
    reports.truncate(limit);
    reports
}

/// How much one feature group accounts for the distance between a query and a match.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Contribution {
    /// Feature group (see [`FEATURE_GROUPS`]).
    pub feature: &'static str,
    /// Fraction of the distance that goes away when the match takes the query's value for
    /// this group (the rest held); the groups' shares need not add up to 1.
    pub share: f64,
}

/// What made a match similar to the query, and what still sets it apart.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Explanation {
    /// Groups that do not separate the two (giving the match the query's values changes the
    /// distance by under 5 %): equal, or too weak in the model to matter.
    pub shared: Vec<&'static str>,
    /// Groups that account for the distance that remains, largest first.
    pub differs: Vec<Contribution>,
    /// Great-circle distance between the two detections, km.
    pub distance_km: f64,
    /// Match time minus query time, hours.
    pub hours_apart: f64,
}

/// Explains each match against the query by counterfactuals the encoder itself scores: for
/// each feature group, the match with the query's values for that group is embedded and the
/// distance to the query measured again. One batched encoder call for all matches.
pub fn explain(
    embedder: &dyn Embedder,
    query: &FireEventV2,
    matches: &[&FireEventV2],
) -> Result<Vec<Explanation>, PatternError> {
    let q = event_features(query);
    let q_vec = embedder
        .embed(std::slice::from_ref(&q))?
        .pop()
        .unwrap_or_default();
    let mut rows = Vec::with_capacity(matches.len() * (FEATURE_GROUPS.len() + 1));
    for m in matches {
        let base = event_features(m);
        rows.push(base);
        for (_, group) in FEATURE_GROUPS {
            let mut row = base;
            for &f in group {
                row[f] = q[f];
            }
            rows.push(row);
        }
    }
    let vectors = embedder.embed(&rows)?;
    let distance = |v: &[f32]| -> f64 {
        f64::from(
            v.iter()
                .zip(&q_vec)
                .map(|(a, b)| (a - b) * (a - b))
                .sum::<f32>()
                .sqrt(),
        )
    };
    let per = FEATURE_GROUPS.len() + 1;
    Ok(matches
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let base = distance(&vectors[i * per]);
            let mut shared = Vec::new();
            let mut differs = Vec::new();
            for (g, (name, _)) in FEATURE_GROUPS.iter().enumerate() {
                let swapped = distance(&vectors[i * per + 1 + g]);
                let share = if base > 1e-9 {
                    (base - swapped) / base
                } else {
                    0.0
                };
                if share.abs() < 0.05 {
                    shared.push(*name);
                } else if share > 0.0 {
                    differs.push(Contribution {
                        feature: name,
                        share: round(share, 3),
                    });
                }
            }
            differs.sort_by(|a, b| b.share.total_cmp(&a.share).then(a.feature.cmp(b.feature)));
            Explanation {
                shared,
                differs,
                distance_km: round(
                    crate::geo::distance_km(
                        query.location.latitude,
                        query.location.longitude,
                        m.location.latitude,
                        m.location.longitude,
                    ),
                    2,
                ),
                hours_apart: round(
                    (m.detection_time - query.detection_time) as f64 / 3_600_000.0,
                    2,
                ),
            }
        })
        .collect())
}

//! Outliers of a window: every event ranked by how far it sits from its neighbours against the
//! window's typical spacing, by local outlier factor, by its most extreme feature, by the model's
//! anomaly score when the encoder provides one, and by the pipeline's rule anomalies.

use serde::Serialize;

use super::features::{FeatureDeviation, FeatureStats};
use super::hdbscan::NeighbourList;
use super::round;
use super::scope::Window;
use crate::embed::FEATURE_COUNT;

/// One event's outlier assessment.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OutlierReport {
    /// Index into the window.
    #[serde(skip)]
    pub index: usize,
    /// The ranking score: `max(distance_ratio, lof, |z| of the most deviating feature / 3)
    /// × (1 + model_anomaly) + the number of rule anomalies`.
    pub score: f64,
    /// Mean distance to its neighbours over the window's median of the same (1 is typical);
    /// null when it has no neighbour in the window (a window of one event).
    pub distance_ratio: Option<f64>,
    /// Local outlier factor over the same neighbours (1 is typical, above 1.5 stands out); null
    /// when it has no neighbour in the window.
    pub lof: Option<f64>,
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
                distance_ratio: ratio.is_finite().then(|| round(ratio, 3)),
                lof: lof.is_finite().then(|| round(lof, 3)),
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

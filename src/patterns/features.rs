//! Encoder features as a reader sees them: their mean and spread over a set of events, and
//! which of the readable ones set a group or a single event apart from the window.

use serde::Serialize;

use super::round;
use crate::embed::{FEATURE_COUNT, FEATURE_NAMES};

/// Features that mean something on their own to a reader; location and the cyclic time
/// encodings are reported as places and times instead.
const READABLE: [usize; 15] = [3, 4, 5, 6, 7, 8, 9, 14, 15, 16, 17, 18, 19, 20, 21];

/// Mean and standard deviation of each encoder feature over a set of rows, NaN ignored.
#[derive(Debug, Clone)]
pub struct FeatureStats {
    pub(super) mean: [f64; FEATURE_COUNT],
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

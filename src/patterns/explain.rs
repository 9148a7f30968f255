//! Why a match is like its query: counterfactuals scored by the encoder itself, one per
//! feature group, telling which groups the two share and which account for the distance left.

use serde::Serialize;

use super::{PatternError, round};
use crate::embed::{Embedder, event_features};
use crate::event::FireEventV2;

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

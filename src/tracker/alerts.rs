//! Alerts on satellite cadence: what is raised about an incident after a batch, once per
//! incident and snapshot, and why, in numbers and in words.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::incident::{Incident, snapshot_label};
use crate::config::TrackerSettings;
use crate::event::Location;

/// What an alert is about.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// A new incident with at least one detection of nominal or high confidence.
    NewFire,
    /// Detections or area grew between two overpass snapshots by more than the threshold.
    Growth,
    /// The seed's rule anomalies: fire under high humidity, fire in rain.
    Rule,
    /// The fire-danger model's `p_fire` over its threshold.
    HighDanger,
}

impl AlertKind {
    /// The snake-case name, as in the JSON and the `kind` filter.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NewFire => "new_fire",
            Self::Growth => "growth",
            Self::Rule => "rule",
            Self::HighDanger => "high_danger",
        }
    }

    /// Every kind, for the filter's error message.
    pub const ALL: [AlertKind; 4] = [Self::NewFire, Self::Growth, Self::Rule, Self::HighDanger];

    /// The kind named `text`.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

/// One alert, as stored, served and published.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Alert {
    /// Position in the alert log: the SSE event id, and the cursor of `GET /v1/alerts`.
    pub seq: u64,
    /// Stable id: kind, incident and snapshot (and rule): a re-delivery carries the same id.
    pub id: String,
    /// What it is about.
    pub kind: AlertKind,
    /// The incident, as it was called when the alert was raised.
    pub incident_id: String,
    /// Time of the newest detection that raised it, ms (data time, not the wall clock).
    pub time_ms: i64,
    /// The overpass snapshot it is about (`YYYY-MM-DDTam`/`pm`, local solar).
    pub snapshot: String,
    /// Mean position of the incident's detections.
    pub centroid: Location,
    /// `[min_lon, min_lat, max_lon, max_lat]` of the incident.
    pub bbox: [f64; 4],
    /// The incident's perimeter at that snapshot (`[lon, lat]`, counter-clockwise, unclosed).
    pub perimeter: Vec<[f64; 2]>,
    /// The numbers that raised it.
    pub values: BTreeMap<String, f64>,
    /// Why, in words.
    pub reason: String,
}

/// What an alert is raised from: the incident after the batch, and what the batch added to it.
pub struct Raise<'a> {
    /// The incident.
    pub incident: &'a Incident,
    /// Snapshots the batch added detections to.
    pub touched: &'a [i64],
    /// Rule anomalies the batch's detections carry, with their snapshot.
    pub anomalies: &'a [(i64, String, i64)],
    /// Largest `p_fire` per snapshot among the batch's detections, with the detection time.
    pub danger: &'a [(i64, f64, i64)],
}

/// The alerts not yet raised about an incident (their keys are added to `alerted` by the caller).
pub fn evaluate(raise: &Raise<'_>, settings: &TrackerSettings) -> Vec<(String, Alert)> {
    let incident = raise.incident;
    let quiet = incident.is_static() && !settings.alert_static_sources;
    let mut out = Vec::new();
    let mut push = |key: String,
                    kind: AlertKind,
                    snapshot: i64,
                    time_ms: i64,
                    values: BTreeMap<String, f64>,
                    reason: String| {
        if incident.alerted.contains(&key) || out.iter().any(|(k, _)| k == &key) {
            return;
        }
        let id = format!(
            "alt_{}_{}",
            key.replace(':', "_"),
            incident.id.trim_start_matches("inc_")
        );
        out.push((
            key,
            Alert {
                seq: 0,
                id,
                kind,
                incident_id: incident.id.clone(),
                time_ms,
                snapshot: snapshot_label(snapshot),
                centroid: incident.centroid(),
                bbox: incident.bbox,
                perimeter: incident.perimeter(Some(snapshot)),
                values,
                reason,
            },
        ));
    };

    if !quiet
        && incident.best_confidence >= settings.new_fire_min_confidence.rank()
        && let Some(first) = incident.snapshots.first()
    {
        {
            let values = BTreeMap::from([
                ("detections".to_owned(), incident.detections as f64),
                ("frp_max_mw".to_owned(), incident.frp_max_mw),
                ("area_km2".to_owned(), round(incident.area_km2)),
            ]);
            let reason = format!(
                "New fire: {} detection(s) first seen {}, strongest {:.1} MW, about {:.2} km².",
                incident.detections, first.label, incident.frp_max_mw, incident.area_km2
            );
            push(
                "new_fire".to_owned(),
                AlertKind::NewFire,
                first.snapshot,
                incident.last_ms,
                values,
                reason,
            );
        }
    }

    for &number in raise.touched {
        let Some(at) = incident.snapshots.iter().position(|s| s.snapshot == number) else {
            continue;
        };
        let now = &incident.snapshots[at];
        if quiet || at == 0 || now.detections < u64::from(settings.growth_min_detections) {
            continue;
        }
        let before = &incident.snapshots[at - 1];
        if now.first_ms.saturating_sub(before.last_ms) > settings.max_inactive_ms() {
            continue;
        }
        let detection_growth = now.detections as f64 / before.detections.max(1) as f64;
        let area_before = incident.area_upto(before.snapshot);
        let area_after = incident.area_upto(number);
        let area_growth = if area_before > 0.0 {
            area_after / area_before
        } else {
            0.0
        };
        if area_after < settings.growth_min_area_km2
            || (detection_growth <= settings.growth_threshold
                && area_growth <= settings.growth_threshold)
        {
            continue;
        }
        let values = BTreeMap::from([
            ("detections".to_owned(), now.detections as f64),
            ("previous_detections".to_owned(), before.detections as f64),
            ("detection_growth".to_owned(), round(detection_growth)),
            ("area_km2".to_owned(), round(area_after)),
            ("previous_area_km2".to_owned(), round(area_before)),
            ("area_growth".to_owned(), round(area_growth)),
            ("threshold".to_owned(), settings.growth_threshold),
        ]);
        let reason = format!(
            "Growing: {} detections in {} against {} in {} (×{:.2}); area {:.2} → {:.2} km² (×{:.2}); threshold ×{}.",
            now.detections,
            now.label,
            before.detections,
            before.label,
            detection_growth,
            area_before,
            area_after,
            area_growth,
            settings.growth_threshold
        );
        push(
            format!("growth:{number}"),
            AlertKind::Growth,
            number,
            now.last_ms,
            values,
            reason,
        );
    }

    for (number, anomaly, time_ms) in raise.anomalies {
        let values = BTreeMap::from([("detections".to_owned(), incident.detections as f64)]);
        let words = match anomaly.as_str() {
            "fire_under_high_humidity" => {
                "burning while the joined station reports high humidity (3 pm RH ≥ 70 %)"
            }
            "fire_in_rain" => "burning while the joined station reports rain (≥ 1 mm)",
            other => other,
        };
        let reason = format!(
            "Rule `{anomaly}`: a detection in {} is {words}.",
            snapshot_label(*number)
        );
        push(
            format!("rule:{anomaly}:{number}"),
            AlertKind::Rule,
            *number,
            *time_ms,
            values,
            reason,
        );
    }

    for &(number, p_fire, time_ms) in raise.danger {
        if quiet || p_fire < settings.high_danger_p_fire {
            continue;
        }
        let values = BTreeMap::from([
            ("p_fire".to_owned(), round(p_fire)),
            ("threshold".to_owned(), settings.high_danger_p_fire),
        ]);
        let reason = format!(
            "High danger: the fire-danger model gives p_fire {:.2} (threshold {}) in {}.",
            p_fire,
            settings.high_danger_p_fire,
            snapshot_label(number)
        );
        push(
            format!("high_danger:{number}"),
            AlertKind::HighDanger,
            number,
            time_ms,
            values,
            reason,
        );
    }
    out
}

fn round(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

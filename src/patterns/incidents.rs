//! Incidents: detections grouped by space and time, and how each grows.
//!
//! Two detections belong to one incident when they lie within `link_km` of each other and
//! `link_hours` apart; an incident is a connected group under that rule. Neighbours are found on a
//! grid of `link_km` cells, so grouping a window is near-linear in its size. The API computes
//! them over the window it is asked about; the Kafka path's `correlation_id` comes from the
//! stream windows' spatial sessions instead (`stream::windows`), a different rule.

use std::collections::HashMap;

use serde::Serialize;

use crate::event::{FireEventV2, Location};

/// One incident of a window.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Incident {
    /// Its earliest detection's id with `inc_` for `fd_`: the same data gives the same id, and
    /// the id leads back to where the incident starts.
    pub id: String,
    /// Detections in it.
    pub detections: usize,
    /// Earliest detection, ms since the epoch.
    pub first_detection: i64,
    /// Latest detection, ms since the epoch.
    pub last_detection: i64,
    /// Mean position (on the sphere).
    pub centroid: Location,
    /// `[min_lon, min_lat, max_lon, max_lat]` of its detections.
    pub bbox: [f64; 4],
    /// Sum of fire radiative power over its detections, MW.
    pub total_frp_mw: f64,
    /// Largest single-pixel FRP, MW.
    pub max_frp_mw: f64,
    /// Detections in the last `growth_hours` before its latest detection, over those in the
    /// `growth_hours` before that; absent when the earlier period had none.
    pub growth_rate: Option<f64>,
    /// Detections and FRP per UTC day, oldest first.
    pub daily: Vec<DailyGrowth>,
    /// Its detections' ids, oldest first (with `members=true`, or on the single-incident route).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub members: Option<Vec<String>>,
}

/// One day of an incident.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DailyGrowth {
    /// UTC day, `YYYY-MM-DD`.
    pub day: String,
    /// Detections that day.
    pub detections: usize,
    /// Their FRP, MW.
    pub frp_mw: f64,
}

/// Groups `events` into incidents of at least `min_size` detections, most recent first.
pub fn group(
    events: &[FireEventV2],
    link_km: f64,
    link_hours: f64,
    growth_hours: f64,
    min_size: usize,
) -> Vec<Incident> {
    let n = events.len();
    let link_ms = (link_hours * 3_600_000.0) as i64;
    // Cells of `link_km` (latitude degrees; longitude widened by latitude), so linked detections
    // sit in the same or a neighbouring cell.
    let cell_deg = link_km / 111.0;
    let cell = |e: &FireEventV2| {
        let lat = e.location.latitude;
        let widen = lat.to_radians().cos().max(0.05);
        (
            (lat / cell_deg).floor() as i64,
            (e.location.longitude * widen / cell_deg).floor() as i64,
        )
    };
    let mut grid: HashMap<(i64, i64), Vec<usize>> = HashMap::new();
    for (i, e) in events.iter().enumerate() {
        grid.entry(cell(e)).or_default().push(i);
    }
    let mut parent: Vec<usize> = (0..n).collect();
    fn find(p: &mut [usize], mut x: usize) -> usize {
        while p[x] != x {
            p[x] = p[p[x]];
            x = p[x];
        }
        x
    }
    for (i, e) in events.iter().enumerate() {
        let (cy, cx) = cell(e);
        for dy in -1..=1 {
            // Longitude cells shrink towards the poles: look one further east and west.
            for dx in -2..=2 {
                let Some(others) = grid.get(&(cy + dy, cx + dx)) else {
                    continue;
                };
                for &j in others {
                    if j <= i {
                        continue;
                    }
                    let f = &events[j];
                    if (e.detection_time - f.detection_time).abs() <= link_ms
                        && crate::geo::distance_km(
                            e.location.latitude,
                            e.location.longitude,
                            f.location.latitude,
                            f.location.longitude,
                        ) <= link_km
                    {
                        let (a, b) = (find(&mut parent, i), find(&mut parent, j));
                        if a != b {
                            parent[a.max(b)] = a.min(b);
                        }
                    }
                }
            }
        }
    }
    let mut groups: HashMap<usize, Vec<usize>> = HashMap::new();
    for i in 0..n {
        let root = find(&mut parent, i);
        groups.entry(root).or_default().push(i);
    }
    let growth_ms = (growth_hours * 3_600_000.0) as i64;
    let mut incidents: Vec<Incident> = groups
        .into_values()
        .filter(|m| m.len() >= min_size.max(1))
        .map(|mut members| {
            members.sort_by(|&a, &b| {
                let (x, y) = (&events[a], &events[b]);
                x.detection_time
                    .cmp(&y.detection_time)
                    .then(x.event_id.cmp(&y.event_id))
            });
            describe(events, &members, growth_ms)
        })
        .collect();
    incidents.sort_by(|a, b| {
        b.last_detection
            .cmp(&a.last_detection)
            .then(a.id.cmp(&b.id))
    });
    incidents
}

fn describe(events: &[FireEventV2], members: &[usize], growth_ms: i64) -> Incident {
    let first = &events[members[0]];
    let last = &events[members[members.len() - 1]];
    let mut bbox = [f64::MAX, f64::MAX, f64::MIN, f64::MIN];
    let (mut total, mut max) = (0.0f64, 0.0f64);
    let mut daily: Vec<DailyGrowth> = Vec::new();
    let (mut recent, mut before) = (0usize, 0usize);
    for &i in members {
        let e = &events[i];
        let (lat, lon) = (e.location.latitude, e.location.longitude);
        bbox = [
            bbox[0].min(lon),
            bbox[1].min(lat),
            bbox[2].max(lon),
            bbox[3].max(lat),
        ];
        let frp = e.fire_characteristics.frp_mw;
        total += frp;
        max = max.max(frp);
        let day = chrono::DateTime::from_timestamp_millis(e.detection_time)
            .unwrap_or_default()
            .format("%Y-%m-%d")
            .to_string();
        match daily.last_mut() {
            Some(d) if d.day == day => {
                d.detections += 1;
                d.frp_mw += frp;
            }
            _ => daily.push(DailyGrowth {
                day,
                detections: 1,
                frp_mw: frp,
            }),
        }
        let age = last.detection_time - e.detection_time;
        if age < growth_ms {
            recent += 1;
        } else if age < 2 * growth_ms {
            before += 1;
        }
    }
    for d in &mut daily {
        d.frp_mw = (d.frp_mw * 10.0).round() / 10.0;
    }
    Incident {
        id: incident_id(&first.event_id),
        detections: members.len(),
        first_detection: first.detection_time,
        last_detection: last.detection_time,
        centroid: crate::geo::centroid(members.iter().map(|&i| {
            let l = events[i].location;
            (l.latitude, l.longitude)
        }))
        .into(),
        bbox,
        total_frp_mw: (total * 10.0).round() / 10.0,
        max_frp_mw: max,
        growth_rate: (before > 0)
            .then(|| ((recent as f64 / before as f64) * 100.0).round() / 100.0),
        daily,
        members: Some(
            members
                .iter()
                .map(|&i| events[i].event_id.clone())
                .collect(),
        ),
    }
}

/// The incident id of the incident that starts with `event_id`.
pub fn incident_id(event_id: &str) -> String {
    format!("inc_{}", event_id.strip_prefix("fd_").unwrap_or(event_id))
}

/// The event an incident id starts with, if the id is well-formed.
pub fn founder_of(incident_id: &str) -> Option<String> {
    let hex = incident_id.strip_prefix("inc_")?;
    (!hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit())).then(|| format!("fd_{hex}"))
}

/// Active fires per grid cell: detections, their strongest FRP and mean confidence.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ActiveCell {
    /// South-west corner of the cell, `[lon, lat]`.
    pub cell: [f64; 2],
    /// Cell size, degrees.
    pub size_deg: f64,
    /// Detections in the period.
    pub detections: usize,
    /// Strongest single-pixel FRP, MW.
    pub max_frp_mw: f64,
    /// Mean confidence, percent (VIIRS classes count as 20/55/90).
    pub mean_confidence_pct: f64,
    /// Latest detection, ms since the epoch.
    pub last_detection: i64,
}

/// Tumbling aggregate of `events` per `size_deg` cell, most detections first.
pub fn active_cells(events: &[FireEventV2], size_deg: f64) -> Vec<ActiveCell> {
    let mut cells: HashMap<(i64, i64), (usize, f64, f64, i64)> = HashMap::new();
    for e in events {
        let key = (
            (e.location.longitude / size_deg).floor() as i64,
            (e.location.latitude / size_deg).floor() as i64,
        );
        let confidence = f64::from(crate::embed::event_features(e)[8]);
        let c = cells.entry(key).or_insert((0, 0.0, 0.0, i64::MIN));
        c.0 += 1;
        c.1 = c.1.max(e.fire_characteristics.frp_mw);
        c.2 += confidence;
        c.3 = c.3.max(e.detection_time);
    }
    let mut out: Vec<ActiveCell> = cells
        .into_iter()
        .map(|((x, y), (n, max, conf, last))| ActiveCell {
            cell: [x as f64 * size_deg, y as f64 * size_deg],
            size_deg,
            detections: n,
            max_frp_mw: max,
            mean_confidence_pct: (conf / n as f64 * 10.0).round() / 10.0,
            last_detection: last,
        })
        .collect();
    out.sort_by(|a, b| {
        b.detections
            .cmp(&a.detections)
            .then(a.cell[0].total_cmp(&b.cell[0]))
            .then(a.cell[1].total_cmp(&b.cell[1]))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str, lat: f64, lon: f64, hours: f64, frp: f64) -> FireEventV2 {
        let mut e: FireEventV2 = serde_json::from_value(serde_json::json!({
            "event_id": id, "correlation_id": null,
            "source": {"provider": "NASA FIRMS", "satellite": "Terra", "instrument": "MODIS", "version": "6.3"},
            "detection_time": 0, "location": {"latitude": 0.0, "longitude": 0.0},
            "fire_characteristics": {"brightness_k": 320.0, "brightness_background_k": 300.0,
                "frp_mw": 0.0, "scan_km": 1.0, "track_km": 1.0, "confidence": "nominal",
                "confidence_percent": 60.0, "daytime": true, "detection_type": 0},
            "weather_status": null, "weather_conditions": null, "sensor_summary": null,
            "impact_assessment": null, "ml_predictions": null, "model_version": null, "ingested_at": null
        }))
        .expect("event");
        e.location = Location {
            latitude: lat,
            longitude: lon,
        };
        e.detection_time = (hours * 3_600_000.0) as i64;
        e.fire_characteristics.frp_mw = frp;
        e
    }

    #[test]
    fn chains_in_space_and_time_form_one_incident_and_gaps_split_them() {
        let events = vec![
            // A fire creeping east 2 km per pass, 12 h apart: one incident by chaining.
            event("fd_a1", -30.0, 150.00, 0.0, 10.0),
            event("fd_a2", -30.0, 150.02, 12.0, 20.0),
            event("fd_a3", -30.0, 150.04, 24.0, 40.0),
            event("fd_a4", -30.0, 150.06, 30.0, 80.0),
            event("fd_a5", -30.0, 150.06, 31.0, 80.0),
            // Same place three days later: a new incident (the time gap is too long).
            event("fd_b1", -30.0, 150.06, 120.0, 5.0),
            event("fd_b2", -30.0, 150.07, 121.0, 5.0),
            // 50 km away at the same time: its own incident.
            event("fd_c1", -30.45, 150.0, 0.0, 1.0),
            event("fd_c2", -30.45, 150.0, 1.0, 1.0),
        ];
        let incidents = group(&events, 3.0, 24.0, 24.0, 2);
        assert_eq!(incidents.len(), 3);
        let a = incidents.iter().find(|i| i.id == "inc_a1").expect("a");
        assert_eq!(a.detections, 5);
        assert_eq!(a.daily.len(), 2);
        // Last 24 h before hour 31: hours 12 (19 h before), 24, 30, 31 → 4; the 24 h before: hour 0 → 1.
        assert_eq!(a.growth_rate, Some(4.0));
        assert_eq!(a.total_frp_mw, 230.0);
        assert_eq!(founder_of(&a.id).as_deref(), Some("fd_a1"));
        assert_eq!(incidents[0].id, "inc_b1", "most recent first");
        assert!(
            incidents
                .iter()
                .any(|i| i.id == "inc_c1" && i.growth_rate.is_none())
        );
        // min_size drops the pairs.
        assert_eq!(group(&events, 3.0, 24.0, 24.0, 3).len(), 1);
    }

    #[test]
    fn active_cells_count_per_cell() {
        let events = vec![
            event("fd_1", -30.1, 150.1, 0.0, 10.0),
            event("fd_2", -30.2, 150.3, 0.0, 30.0),
            event("fd_3", -33.5, 151.5, 0.0, 5.0),
        ];
        let cells = active_cells(&events, 1.0);
        assert_eq!(cells.len(), 2);
        assert_eq!((cells[0].detections, cells[0].max_frp_mw), (2, 30.0));
        assert_eq!(cells[0].cell, [150.0, -31.0]);
    }
}

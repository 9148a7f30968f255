//! Event-time windows over one input partition's detections, as a deterministic state machine.
//!
//! - **Tumbling** windows per region (`region_deg` cells): detections, max FRP and mean
//!   confidence, the active-fires view.
//! - **Sessions** that are also spatial: a detection joins every open session it is within
//!   `session_gap` of in time and `session_km` of (any member) in space; joining two merges them.
//!   A session is an incident, and its id is the events' `correlation_id`.
//! - **Hopping** windows per incident (`hop_size`, advancing by `hop_advance`): the growth rate
//!   is a window's detections over those of the window one size earlier; the first window of a
//!   rise above the threshold raises an alert (the overlapping windows after it do not repeat it).
//!
//! Time is the partition's stream time: the largest event time seen. A window closes when
//! stream time reaches its end plus its grace (`end + grace <= stream_time`), and a record whose
//! window has closed is late for that operator: it is counted and reported, never silently
//! dropped, and the other operators still take it if they can. After a wall-clock idle timeout
//! the caller flushes the partition, closing everything, so a quiet partition still gets its
//! final results.
//!
//! The state is plain data (serialised as JSON into RocksDB with each batch), and the same
//! inputs in the same order always give the same state and outputs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::WindowSettings;
use crate::geo;

/// What the operators need of a detection.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Event id.
    pub event_id: String,
    /// Event time, ms since the epoch.
    pub time_ms: i64,
    /// Degrees north.
    pub latitude: f64,
    /// Degrees east.
    pub longitude: f64,
    /// Fire radiative power, MW.
    pub frp_mw: f64,
    /// Confidence, percent (VIIRS classes map to 20 / 60 / 90).
    pub confidence: f64,
}

/// A closed tumbling window of one region.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ActiveFires {
    /// Region cell (`lat:lon` of its south-west corner, in `region_deg` steps).
    pub region: String,
    /// Window start, ms since the epoch.
    pub start_ms: i64,
    /// Window end (exclusive), ms since the epoch.
    pub end_ms: i64,
    /// Detections in the window.
    pub detections: u32,
    /// Largest FRP, MW.
    pub max_frp_mw: f64,
    /// Mean confidence, percent.
    pub mean_confidence: f64,
}

/// How an incident changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum IncidentStatus {
    /// Its session closed: no detection within the gap (or the partition went idle).
    Closed,
    /// It was merged into `merged_into` by a detection that bridged the two.
    Merged,
}

/// An incident's final summary, or its merge into another.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IncidentUpdate {
    /// Incident id (the `correlation_id` its events carry).
    pub incident_id: String,
    /// What happened.
    pub status: IncidentStatus,
    /// The surviving incident, for a merge.
    pub merged_into: Option<String>,
    /// Detections.
    pub detections: u32,
    /// First detection time, ms.
    pub first_ms: i64,
    /// Last detection time, ms.
    pub last_ms: i64,
    /// Largest FRP, MW.
    pub max_frp_mw: f64,
}

/// A hopping window in which an incident grew faster than the threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GrowthAlert {
    /// Incident id.
    pub incident_id: String,
    /// Window start, ms.
    pub start_ms: i64,
    /// Window end (exclusive), ms.
    pub end_ms: i64,
    /// Detections in the window.
    pub detections: u32,
    /// Detections in the window one size earlier.
    pub previous: u32,
    /// `detections / previous`.
    pub growth_rate: f64,
}

/// Why a record was late: for which operators, and how late.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Lateness {
    /// Operators whose window for the record had closed (`tumbling`, `session`, `hopping`).
    pub operators: Vec<String>,
    /// Partition stream time when it arrived, ms.
    pub stream_time_ms: i64,
    /// The record's event time, ms.
    pub event_time_ms: i64,
}

/// Everything one step produced.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Emitted {
    /// The record's incident, when the session operator took it.
    pub correlation_id: Option<String>,
    /// Set when the record was late for at least one operator.
    pub late: Option<Lateness>,
    /// Tumbling windows closed by this step.
    pub active_fires: Vec<ActiveFires>,
    /// Incidents closed or merged by this step.
    pub incidents: Vec<IncidentUpdate>,
    /// Growth alerts raised by this step.
    pub alerts: Vec<GrowthAlert>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Aggregate {
    detections: u32,
    max_frp_mw: f64,
    confidence_sum: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Session {
    id: String,
    first_ms: i64,
    last_ms: i64,
    detections: u32,
    max_frp_mw: f64,
    points: Vec<(f64, f64)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
struct Growth {
    /// Detections per `hop_advance` bucket (bucket start ms → count).
    buckets: BTreeMap<i64, u32>,
    /// Start of the first hopping window not yet closed.
    next_start: Option<i64>,
    /// Whether the last closed window was above the threshold (one alert per rise).
    rising: bool,
}

/// One partition's operator state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct PartitionState {
    /// Largest event time seen, ms.
    pub stream_time_ms: Option<i64>,
    /// Open tumbling windows, keyed `start|region`.
    tumbling: BTreeMap<String, Aggregate>,
    /// Open sessions, oldest first.
    sessions: Vec<Session>,
    /// Growth per incident (outlives its session until its last hopping window closes).
    growth: BTreeMap<String, Growth>,
    /// Late records seen, per operator.
    pub late_counts: BTreeMap<String, u64>,
}

impl PartitionState {
    /// Whether nothing is open.
    pub fn is_quiet(&self) -> bool {
        self.tumbling.is_empty() && self.sessions.is_empty() && self.growth.is_empty()
    }

    /// Takes one detection, in partition order.
    pub fn on_detection(&mut self, point: &Point, settings: &WindowSettings) -> Emitted {
        let stream_time = self
            .stream_time_ms
            .map_or(point.time_ms, |t| t.max(point.time_ms));
        self.stream_time_ms = Some(stream_time);
        let mut out = Emitted::default();
        let mut late = Vec::new();

        let tumble = settings.tumble_ms();
        let start = point.time_ms.div_euclid(tumble) * tumble;
        if start + tumble + settings.tumble_grace_ms() <= stream_time {
            late.push("tumbling");
        } else {
            let region = region_of(point, settings.region_deg);
            let window = self
                .tumbling
                .entry(format!("{start:020}|{region}"))
                .or_insert(Aggregate {
                    detections: 0,
                    max_frp_mw: f64::NEG_INFINITY,
                    confidence_sum: 0.0,
                });
            window.detections += 1;
            window.max_frp_mw = window.max_frp_mw.max(point.frp_mw);
            window.confidence_sum += point.confidence;
        }

        // A session holding this record would close at `time + gap + grace` at the latest.
        let (gap, session_grace) = (settings.session_gap_ms(), settings.session_grace_ms());
        if point.time_ms + gap + session_grace <= stream_time {
            late.push("session");
        } else {
            let id = self.join_sessions(point, settings, &mut out.incidents);
            let (advance, size) = (settings.hop_advance_ms(), settings.hop_size_ms());
            let last_window_start = point.time_ms.div_euclid(advance) * advance;
            if last_window_start + size + settings.hop_grace_ms() <= stream_time {
                late.push("hopping");
            } else {
                let growth = self.growth.entry(id.clone()).or_default();
                *growth.buckets.entry(last_window_start).or_insert(0) += 1;
                let first = last_window_start - size + advance;
                growth.next_start = Some(growth.next_start.map_or(first, |n| n.min(first)));
            }
            out.correlation_id = Some(id);
        }

        if !late.is_empty() {
            for operator in &late {
                *self.late_counts.entry((*operator).to_owned()).or_insert(0) += 1;
            }
            out.late = Some(Lateness {
                operators: late.into_iter().map(str::to_owned).collect(),
                stream_time_ms: stream_time,
                event_time_ms: point.time_ms,
            });
        }
        self.close(stream_time, settings, &mut out);
        out
    }

    /// Closes everything open (after the idle timeout), as if stream time had run far ahead.
    pub fn flush(&mut self, settings: &WindowSettings) -> Emitted {
        let mut out = Emitted::default();
        self.close(i64::MAX, settings, &mut out);
        out
    }

    /// Puts the record into the sessions it reaches, merging them; returns its incident id.
    fn join_sessions(
        &mut self,
        point: &Point,
        settings: &WindowSettings,
        merges: &mut Vec<IncidentUpdate>,
    ) -> String {
        let gap = settings.session_gap_ms();
        let reached: Vec<usize> = self
            .sessions
            .iter()
            .enumerate()
            .filter(|(_, s)| point.time_ms >= s.first_ms - gap && point.time_ms <= s.last_ms + gap)
            .filter(|(_, s)| {
                s.points.iter().any(|&(lat, lon)| {
                    geo::distance_km(lat, lon, point.latitude, point.longitude)
                        <= settings.session_km
                })
            })
            .map(|(i, _)| i)
            .collect();
        let survivor = match reached.as_slice() {
            [] => {
                self.sessions.push(Session {
                    id: incident_id(&point.event_id),
                    first_ms: point.time_ms,
                    last_ms: point.time_ms,
                    detections: 0,
                    max_frp_mw: f64::NEG_INFINITY,
                    points: Vec::new(),
                });
                self.sessions.len() - 1
            }
            [only] => *only,
            many => {
                // The oldest session survives (ties: the smaller id), so replays agree.
                let survivor_id = many
                    .iter()
                    .map(|&i| &self.sessions[i])
                    .min_by(|a, b| (a.first_ms, &a.id).cmp(&(b.first_ms, &b.id)))
                    .map(|s| s.id.clone())
                    .unwrap_or_default();
                let mut absorbed: Vec<Session> = Vec::new();
                // `many` is ascending, so removing from the back keeps the other indices valid.
                for &i in many.iter().rev() {
                    if self.sessions[i].id != survivor_id {
                        absorbed.push(self.sessions.remove(i));
                    }
                }
                absorbed.sort_by(|a, b| (a.first_ms, &a.id).cmp(&(b.first_ms, &b.id)));
                let keep = self
                    .sessions
                    .iter()
                    .position(|s| s.id == survivor_id)
                    .unwrap_or(0);
                for gone in absorbed {
                    merges.push(IncidentUpdate {
                        incident_id: gone.id.clone(),
                        status: IncidentStatus::Merged,
                        merged_into: Some(survivor_id.clone()),
                        detections: gone.detections,
                        first_ms: gone.first_ms,
                        last_ms: gone.last_ms,
                        max_frp_mw: gone.max_frp_mw,
                    });
                    if let Some(growth) = self.growth.remove(&gone.id) {
                        let target = self.growth.entry(survivor_id.clone()).or_default();
                        for (bucket, count) in growth.buckets {
                            *target.buckets.entry(bucket).or_insert(0) += count;
                        }
                        target.next_start = match (target.next_start, growth.next_start) {
                            (Some(a), Some(b)) => Some(a.min(b)),
                            (a, b) => a.or(b),
                        };
                    }
                    let session = &mut self.sessions[keep];
                    session.first_ms = session.first_ms.min(gone.first_ms);
                    session.last_ms = session.last_ms.max(gone.last_ms);
                    session.detections += gone.detections;
                    session.max_frp_mw = session.max_frp_mw.max(gone.max_frp_mw);
                    session.points.extend(gone.points);
                }
                keep
            }
        };
        let session = &mut self.sessions[survivor];
        session.first_ms = session.first_ms.min(point.time_ms);
        session.last_ms = session.last_ms.max(point.time_ms);
        session.detections += 1;
        session.max_frp_mw = session.max_frp_mw.max(point.frp_mw);
        session.points.push((point.latitude, point.longitude));
        session.id.clone()
    }

    fn close(&mut self, stream_time: i64, settings: &WindowSettings, out: &mut Emitted) {
        let (tumble, grace) = (settings.tumble_ms(), settings.tumble_grace_ms());
        let closed: Vec<String> = self
            .tumbling
            .keys()
            .filter(|key| window_start(key).saturating_add(tumble + grace) <= stream_time)
            .cloned()
            .collect();
        for key in closed {
            if let Some(window) = self.tumbling.remove(&key) {
                let start = window_start(&key);
                out.active_fires.push(ActiveFires {
                    region: key.split_once('|').map_or("", |(_, r)| r).to_owned(),
                    start_ms: start,
                    end_ms: start + tumble,
                    detections: window.detections,
                    max_frp_mw: window.max_frp_mw,
                    mean_confidence: window.confidence_sum / f64::from(window.detections.max(1)),
                });
            }
        }

        let horizon = settings.session_gap_ms() + settings.session_grace_ms();
        let mut open = Vec::with_capacity(self.sessions.len());
        for session in std::mem::take(&mut self.sessions) {
            if session.last_ms.saturating_add(horizon) <= stream_time {
                out.incidents.push(IncidentUpdate {
                    incident_id: session.id,
                    status: IncidentStatus::Closed,
                    merged_into: None,
                    detections: session.detections,
                    first_ms: session.first_ms,
                    last_ms: session.last_ms,
                    max_frp_mw: session.max_frp_mw,
                });
            } else {
                open.push(session);
            }
        }
        self.sessions = open;

        let (size, advance) = (settings.hop_size_ms(), settings.hop_advance_ms());
        let hop_grace = settings.hop_grace_ms();
        let mut finished = Vec::new();
        for (incident, growth) in &mut self.growth {
            let Some(last_bucket) = growth.buckets.keys().next_back().copied() else {
                finished.push(incident.clone());
                continue;
            };
            while let Some(start) = growth.next_start {
                if start > last_bucket || start.saturating_add(size + hop_grace) > stream_time {
                    break;
                }
                let count = sum_between(&growth.buckets, start, start + size);
                let previous = sum_between(&growth.buckets, start - size, start);
                let rate = f64::from(count) / f64::from(previous.max(1));
                let above = previous > 0
                    && count >= settings.growth_min_detections
                    && rate > settings.growth_threshold;
                // Consecutive windows overlap, so one rise spans several: alert on the first.
                if above && !growth.rising {
                    out.alerts.push(GrowthAlert {
                        incident_id: incident.clone(),
                        start_ms: start,
                        end_ms: start + size,
                        detections: count,
                        previous,
                        growth_rate: rate,
                    });
                }
                growth.rising = above;
                growth.next_start = Some(start + advance);
                // Buckets older than any window still to close (and its predecessor) go.
                let keep_from = start + advance - size;
                growth.buckets.retain(|&b, _| b >= keep_from);
            }
            if growth.next_start.is_none_or(|n| n > last_bucket) {
                finished.push(incident.clone());
            }
        }
        for incident in finished {
            self.growth.remove(&incident);
        }
    }
}

fn window_start(key: &str) -> i64 {
    key.split_once('|')
        .and_then(|(start, _)| start.parse().ok())
        .unwrap_or(i64::MAX)
}

fn sum_between(buckets: &BTreeMap<i64, u32>, from: i64, to: i64) -> u32 {
    buckets.range(from..to).map(|(_, c)| *c).sum()
}

/// A region cell key at `deg` resolution.
fn region_of(point: &Point, deg: f64) -> String {
    let cell = |v: f64| ((v / deg).floor() * deg * 1e4).round() / 1e4;
    format!("{}:{}", cell(point.latitude), cell(point.longitude))
}

/// The incident id a session takes from its first detection.
fn incident_id(event_id: &str) -> String {
    format!("inc_{}", event_id.trim_start_matches("fd_"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> WindowSettings {
        crate::config::Settings::defaults()
            .expect("defaults")
            .windows
    }

    const MIN: i64 = 60_000;
    /// 2019-09-10T00:00Z, on a minute boundary.
    const T0: i64 = 1_568_073_600_000;

    fn at(id: &str, minutes: f64, lat: f64, lon: f64) -> Point {
        Point {
            event_id: format!("fd_{id}"),
            time_ms: T0 + (minutes * MIN as f64) as i64,
            latitude: lat,
            longitude: lon,
            frp_mw: 10.0,
            confidence: 80.0,
        }
    }

    #[test]
    fn the_grace_boundary_is_exact() {
        let s = settings(); // 60 s windows, 30 s grace
        let mut state = PartitionState::default();
        assert!(
            state
                .on_detection(&at("a", 0.5, -33.0, 150.0), &s)
                .late
                .is_none()
        );
        // Stream time 01:29.999: the [00:00, 01:00) window closes at 01:30, so it is still open.
        let edge = Point {
            time_ms: T0 + MIN + 29_999,
            ..at("b", 0.0, -33.0, 150.0)
        };
        let out = state.on_detection(&edge, &s);
        assert!(out.active_fires.is_empty(), "{out:?}");
        assert!(
            state
                .on_detection(&at("c", 0.9, -33.0, 150.0), &s)
                .late
                .is_none()
        );
        // Stream time reaches exactly 01:30: the window closes with both records.
        let closing = Point {
            time_ms: T0 + MIN + 30_000,
            ..at("d", 0.0, -33.0, 150.0)
        };
        let out = state.on_detection(&closing, &s);
        assert_eq!(out.active_fires.len(), 1);
        assert_eq!(out.active_fires[0].detections, 2);
        assert_eq!(out.active_fires[0].start_ms, T0);
        // The next record for it is late for the tumbling window, and only for it.
        let out = state.on_detection(&at("e", 0.99, -33.0, 150.0), &s);
        let late = out.late.expect("late");
        assert_eq!(late.operators, vec!["tumbling"]);
        assert_eq!(late.stream_time_ms, T0 + MIN + 30_000);
        assert!(out.correlation_id.is_some(), "the session still takes it");
        assert_eq!(state.late_counts.get("tumbling"), Some(&1));
    }

    #[test]
    fn a_late_detection_that_bridges_two_sessions_merges_them() {
        let s = settings(); // 5 min gap, 3 km
        let mut state = PartitionState::default();
        // Two fires 4 km apart: separate incidents.
        let west = state.on_detection(&at("w", 0.0, -33.0, 150.0), &s);
        let east = state.on_detection(&at("e", 1.0, -33.0, 150.043), &s);
        let (west, east) = (
            west.correlation_id.expect("w"),
            east.correlation_id.expect("e"),
        );
        assert_ne!(west, east);
        // Out of order (stream time is 1 min, this is 0.5), between the two: it reaches both.
        let out = state.on_detection(&at("m", 0.5, -33.0, 150.0215), &s);
        assert_eq!(
            out.correlation_id.as_deref(),
            Some(west.as_str()),
            "the older survives"
        );
        assert_eq!(out.incidents.len(), 1);
        let merge = &out.incidents[0];
        assert_eq!(merge.status, IncidentStatus::Merged);
        assert_eq!(merge.incident_id, east);
        assert_eq!(merge.merged_into.as_deref(), Some(west.as_str()));
        // Later records near the east fire now belong to the merged incident.
        let out = state.on_detection(&at("e2", 2.0, -33.0, 150.043), &s);
        assert_eq!(out.correlation_id.as_deref(), Some(west.as_str()));
        // After the gap plus grace of stream time the incident closes with all four.
        let out = state.on_detection(&at("far", 2.0 + 6.0 + 0.01, 10.0, 10.0), &s);
        let closed: Vec<_> = out
            .incidents
            .iter()
            .filter(|i| i.status == IncidentStatus::Closed)
            .collect();
        assert_eq!(closed.len(), 1);
        assert_eq!(
            (closed[0].incident_id.as_str(), closed[0].detections),
            (west.as_str(), 4)
        );
    }

    #[test]
    fn far_or_gapped_detections_start_new_incidents() {
        let s = settings();
        let mut state = PartitionState::default();
        let a = state
            .on_detection(&at("a", 0.0, -33.0, 150.0), &s)
            .correlation_id;
        // 3.3 km away: outside 3 km.
        let b = state
            .on_detection(&at("b", 0.0, -33.03, 150.0), &s)
            .correlation_id;
        // Same place, 5 min 1 s later: outside the gap.
        let c = state
            .on_detection(
                &Point {
                    time_ms: T0 + 5 * MIN + 1_000,
                    ..at("c", 0.0, -33.0, 150.0)
                },
                &s,
            )
            .correlation_id;
        assert_ne!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn growth_above_the_threshold_raises_one_alert_once_the_window_closes() {
        let s = settings(); // 10 min windows advancing 1 min, grace 60 s, threshold 2.0, at least 3
        let mut state = PartitionState::default();
        let mut n = 0;
        let mut alerts = Vec::new();
        // One detection at minutes 0, 4 and 8 (keeping the session open), then 8 at minute 10.
        let minutes = [0.0, 4.0, 8.0].into_iter().chain([10.0; 8]);
        for minute in minutes {
            n += 1;
            let lon = 150.0 + f64::from(n) * 0.001;
            alerts.extend(
                state
                    .on_detection(&at(&format!("p{n}"), minute, -33.0, lon), &s)
                    .alerts,
            );
        }
        assert!(
            alerts.is_empty(),
            "no window with a predecessor has closed: {alerts:?}"
        );
        // Stream time 21:00 closes every window starting at or before 10:00. [01:00, 11:00)
        // holds 10 against 1 in [-09:00, 01:00): the rise starts there, and the later windows
        // of the same rise (up to [10:00, 20:00), 8 against 3) do not repeat it.
        alerts.extend(
            state
                .on_detection(&at("late-far", 21.0, -20.0, 140.0), &s)
                .alerts,
        );
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        let alert = &alerts[0];
        assert_eq!(alert.start_ms, T0 + MIN);
        assert_eq!(alert.end_ms, T0 + 11 * MIN);
        assert_eq!((alert.detections, alert.previous), (10, 1));
        assert!((alert.growth_rate - 10.0).abs() < 1e-12);
    }

    #[test]
    fn flushing_an_idle_partition_closes_everything() {
        let s = settings();
        let mut state = PartitionState::default();
        state.on_detection(&at("a", 0.0, -33.0, 150.0), &s);
        state.on_detection(&at("b", 0.2, -33.0, 150.001), &s);
        assert!(!state.is_quiet());
        let out = state.flush(&s);
        assert_eq!(out.active_fires.len(), 1);
        assert_eq!(out.incidents.len(), 1);
        assert_eq!(out.incidents[0].detections, 2);
        assert!(state.is_quiet(), "{state:?}");
    }

    #[test]
    fn the_state_survives_its_json_form_and_replays_agree() {
        let s = settings();
        let points: Vec<Point> = (0..200)
            .map(|i| {
                let i = f64::from(i);
                at(
                    &format!("{i}"),
                    (i * 7.0) % 40.0,
                    -33.0 + (i % 5.0) * 0.01,
                    150.0 + (i % 3.0) * 0.02,
                )
            })
            .collect();
        let mut whole = PartitionState::default();
        let mut outputs = Vec::new();
        for p in &points {
            outputs.push(whole.on_detection(p, &s));
        }
        let mut resumed = PartitionState::default();
        let mut again = Vec::new();
        for (i, p) in points.iter().enumerate() {
            if i % 17 == 0 {
                let json = serde_json::to_vec(&resumed).expect("serialises");
                resumed = serde_json::from_slice(&json).expect("deserialises");
            }
            again.push(resumed.on_detection(p, &s));
        }
        assert_eq!(outputs, again);
        assert_eq!(whole, resumed);
    }
}

//! Event-time tumbling windows over one input partition's detections, as a deterministic state
//! machine: per region (`region_deg` cells), detections, max FRP and mean confidence — the
//! active-fires view of the seed's KSQL. Incidents and alerts are not windows: they come from
//! the incident tracker (`tracker`), which every source feeds alike.
//!
//! Time is the partition's stream time: the largest event time seen. A window closes when
//! stream time reaches its end plus its grace (`end + grace <= stream_time`), and a record whose
//! window has closed is late: it is counted and reported, never silently dropped (it is still
//! stored and tracked). After a wall-clock idle timeout the caller flushes the partition,
//! closing everything, so a quiet partition still gets its final results.
//!
//! The state is plain data (serialised as JSON into RocksDB with each batch), and the same
//! inputs in the same order always give the same state and outputs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The windows' settings (`[windows]` in the service's configuration).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowSettings {
    /// Tumbling window length (the active-fires view), seconds.
    pub tumble_seconds: u32,
    /// How long after its end a tumbling window still takes records, seconds.
    pub tumble_grace_seconds: u32,
    /// Region cell size for the tumbling windows, degrees.
    pub region_deg: f64,
    /// Wall-clock time without input after which a partition's windows all close, seconds.
    pub idle_close_seconds: u32,
}

impl WindowSettings {
    /// Tumbling length, ms.
    pub fn tumble_ms(&self) -> i64 {
        i64::from(self.tumble_seconds) * 1000
    }
    /// Tumbling grace, ms.
    pub fn tumble_grace_ms(&self) -> i64 {
        i64::from(self.tumble_grace_seconds) * 1000
    }
}

/// What the windows need of a detection.
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
    /// Confidence, percent (VIIRS classes count as their stand-in percentages).
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

/// Why a record was late: for which operators, and how late.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Lateness {
    /// Operators whose window for the record had closed (`tumbling`).
    pub operators: Vec<String>,
    /// Partition stream time when it arrived, ms.
    pub stream_time_ms: i64,
    /// The record's event time, ms.
    pub event_time_ms: i64,
}

/// Everything one step produced.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Emitted {
    /// Set when the record was late for its window.
    pub late: Option<Lateness>,
    /// Tumbling windows closed by this step.
    pub active_fires: Vec<ActiveFires>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Aggregate {
    detections: u32,
    max_frp_mw: f64,
    confidence_sum: f64,
}

/// One partition's window state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct PartitionState {
    /// Largest event time seen, ms.
    pub stream_time_ms: Option<i64>,
    /// Open tumbling windows, keyed `start|region`.
    tumbling: BTreeMap<String, Aggregate>,
    /// Late records seen, per operator.
    pub late_counts: BTreeMap<String, u64>,
}

impl PartitionState {
    /// Whether nothing is open.
    pub fn is_quiet(&self) -> bool {
        self.tumbling.is_empty()
    }

    /// Takes one detection, in partition order.
    pub fn on_detection(&mut self, point: &Point, settings: &WindowSettings) -> Emitted {
        let stream_time = self
            .stream_time_ms
            .map_or(point.time_ms, |t| t.max(point.time_ms));
        self.stream_time_ms = Some(stream_time);
        let mut out = Emitted::default();

        let tumble = settings.tumble_ms();
        let start = point.time_ms.div_euclid(tumble) * tumble;
        if start.saturating_add(tumble + settings.tumble_grace_ms()) <= stream_time {
            *self.late_counts.entry("tumbling".to_owned()).or_insert(0) += 1;
            out.late = Some(Lateness {
                operators: vec!["tumbling".to_owned()],
                stream_time_ms: stream_time,
                event_time_ms: point.time_ms,
            });
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
        self.close(stream_time, settings, &mut out);
        out
    }

    /// Closes everything open (after the idle timeout), as if stream time had run far ahead.
    pub fn flush(&mut self, settings: &WindowSettings) -> Emitted {
        let mut out = Emitted::default();
        self.close(i64::MAX, settings, &mut out);
        out
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
                    end_ms: start.saturating_add(tumble),
                    detections: window.detections,
                    max_frp_mw: window.max_frp_mw,
                    mean_confidence: window.confidence_sum / f64::from(window.detections.max(1)),
                });
            }
        }
    }
}

fn window_start(key: &str) -> i64 {
    key.split_once('|')
        .and_then(|(start, _)| start.parse().ok())
        .unwrap_or(i64::MAX)
}

/// A region cell key at `deg` resolution.
fn region_of(point: &Point, deg: f64) -> String {
    let cell = |v: f64| ((v / deg).floor() * deg * 1e4).round() / 1e4;
    format!("{}:{}", cell(point.latitude), cell(point.longitude))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shipped defaults (`config/default.toml`, `[windows]`).
    fn settings() -> WindowSettings {
        WindowSettings {
            tumble_seconds: 60,
            tumble_grace_seconds: 30,
            region_deg: 1.0,
            idle_close_seconds: 60,
        }
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
        assert_eq!(state.late_counts.get("tumbling"), Some(&1));
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
        assert_eq!(out.active_fires[0].detections, 2);
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

//! One tracked incident as stored: its totals, perimeter, overpass snapshots and days, and what
//! has been alerted about it. Plain data, merged and updated by the tracker.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::geometry;
use super::outlook::{GrowthOutlook, IncidentWeather};
use crate::event::Location;

/// Unburned ground at least this wide between an incident's overpass hulls stays outside its
/// perimeter, km: about two MODIS pixels at nadir, the scale at which detections link.
pub const OUTLINE_EDGE_KM: f64 = 2.0;

/// Twelve hours, ms: one overpass snapshot (a local solar morning or afternoon).
pub const SNAPSHOT_MS: i64 = 12 * 3_600_000;

/// The overpass snapshot of a detection: the local solar half-day it falls in, numbered from the
/// epoch. MODIS and VIIRS cross at about 10:30, 13:30, 22:30 and 01:30 local time, so each
/// half-day holds one day or one night set of passes, and no pass straddles two.
pub fn snapshot_of(time_ms: i64, longitude: f64) -> i64 {
    let solar = time_ms.saturating_add((longitude * 240_000.0) as i64);
    solar.div_euclid(SNAPSHOT_MS)
}

/// A snapshot number as `YYYY-MM-DDTam` / `pm` (local solar).
pub fn snapshot_label(snapshot: i64) -> String {
    let start = snapshot.saturating_mul(SNAPSHOT_MS);
    let day = chrono::DateTime::from_timestamp_millis(start).map_or_else(
        || "out-of-range".to_owned(),
        |t| t.format("%Y-%m-%d").to_string(),
    );
    let half = if snapshot.rem_euclid(2) == 0 {
        "am"
    } else {
        "pm"
    };
    format!("{day}T{half}")
}

/// Whether an incident is burning, quiet, or part of another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum IncidentStatus {
    /// Detected within `max_inactive_days` of the newest detection the tracker has seen.
    Active,
    /// No detection for longer than `max_inactive_days`; a new detection in reach revives it.
    Inactive,
    /// Joined to an older incident (`merged_into`) by a detection that linked them.
    Merged,
}

/// One overpass snapshot of an incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Snapshot {
    /// Snapshot number (local solar half-days since the epoch).
    pub snapshot: i64,
    /// Its label, `YYYY-MM-DDTam` or `…Tpm` (local solar).
    pub label: String,
    /// First and last detection in it, ms.
    pub first_ms: i64,
    /// Last detection in it, ms.
    pub last_ms: i64,
    /// Detections in it.
    pub detections: u64,
    /// Of them, pixels not burning before (their footprint adds area).
    pub new_pixels: u64,
    /// Area they add, km².
    pub new_area_km2: f64,
    /// Sum of FRP, MW.
    pub frp_sum_mw: f64,
    /// Largest FRP, MW.
    pub frp_max_mw: f64,
    /// Convex hull of this snapshot's footprints (`[lon, lat]`, counter-clockwise, unclosed).
    pub hull: Vec<[f64; 2]>,
    /// Mean position of this snapshot's detections (`[lon, lat]`).
    pub centre: [f64; 2],
}

/// Detections and FRP of one UTC day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DailyTotals {
    /// UTC day, `YYYY-MM-DD`.
    pub day: String,
    /// Detections that day.
    pub detections: u64,
    /// Their FRP, MW.
    pub frp_mw: f64,
}

/// The stored state of one incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    /// `inc_` and the hex of its earliest detection (`fd_…`): the same detections give the same id.
    pub id: String,
    /// The earliest detection (by time, then id).
    pub founder: String,
    /// `Active` or `Merged` as stored; `Inactive` is derived on read from the tracker's clock.
    pub status: IncidentStatus,
    /// The incident it was merged into.
    pub merged_into: Option<String>,
    /// Incidents merged into this one, directly or through them.
    pub absorbed: Vec<String>,
    /// First detection, ms.
    pub first_ms: i64,
    /// Last detection, ms.
    pub last_ms: i64,
    /// Detections.
    pub detections: u64,
    /// Detections of static sources (FIRMS type 1–3) or persistent hot spots.
    pub static_detections: u64,
    /// Sum of FRP, MW.
    pub frp_sum_mw: f64,
    /// Largest FRP, MW.
    pub frp_max_mw: f64,
    /// Estimated burned area: the union of pixel footprints, km².
    pub area_km2: f64,
    /// `[min_lon, min_lat, max_lon, max_lat]` of the detections.
    pub bbox: [f64; 4],
    /// Sum of the detections' unit vectors (for the spherical mean).
    pub centre_sum: [f64; 3],
    /// Overpass snapshots, oldest first.
    pub snapshots: Vec<Snapshot>,
    /// UTC days, oldest first.
    pub daily: Vec<DailyTotals>,
    /// Highest confidence seen (`ConfidenceClass::rank`).
    pub best_confidence: u8,
    /// Alerts raised about it (and what it absorbed), by alert key.
    pub alerted: BTreeSet<String>,
    /// The weather joined to its newest detection that had any.
    #[serde(default)]
    pub weather: Option<IncidentWeather>,
    /// Its growth outlook as of its newest detection (absent without an outlook model).
    #[serde(default)]
    pub outlook: Option<GrowthOutlook>,
}

/// A detection as the tracker keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    /// Event id.
    pub event_id: String,
    /// Detection time, ms.
    pub time_ms: i64,
    /// Degrees north.
    pub lat: f64,
    /// Degrees east.
    pub lon: f64,
    /// Along-scan pixel size, km.
    pub scan_km: f64,
    /// Along-track pixel size, km.
    pub track_km: f64,
    /// FRP, MW.
    pub frp_mw: f64,
}

impl Member {
    /// The pixel's footprint corners.
    pub fn footprint(&self) -> [[f64; 2]; 4] {
        geometry::footprint(self.lat, self.lon, self.scan_km, self.track_km)
    }

    /// Half the larger side of the pixel, km: how far its footprint reaches from its centre.
    pub fn reach_km(&self) -> f64 {
        self.scan_km.max(self.track_km).max(0.0) / 2.0
    }
}

impl Incident {
    /// A new incident founded by `member`.
    pub fn founded_by(member: &Member) -> Self {
        Self {
            id: incident_id(&member.event_id),
            founder: member.event_id.clone(),
            status: IncidentStatus::Active,
            merged_into: None,
            absorbed: Vec::new(),
            first_ms: member.time_ms,
            last_ms: member.time_ms,
            detections: 0,
            static_detections: 0,
            frp_sum_mw: 0.0,
            frp_max_mw: 0.0,
            area_km2: 0.0,
            bbox: [f64::MAX, f64::MAX, f64::MIN, f64::MIN],
            centre_sum: [0.0; 3],
            snapshots: Vec::new(),
            daily: Vec::new(),
            best_confidence: 0,
            alerted: BTreeSet::new(),
            weather: None,
            outlook: None,
        }
    }

    /// The order of incidents by age: the older one survives a merge.
    pub fn age_key(&self) -> (i64, &str) {
        (self.first_ms, self.founder.as_str())
    }

    /// Adds a detection; `new_area_km2` is what its footprint adds (0 for a pixel already burning).
    pub fn add(&mut self, member: &Member, new_area_km2: f64, confidence: u8, is_static: bool) {
        self.first_ms = self.first_ms.min(member.time_ms);
        self.last_ms = self.last_ms.max(member.time_ms);
        self.detections += 1;
        self.static_detections += u64::from(is_static);
        self.frp_sum_mw += member.frp_mw;
        self.frp_max_mw = self.frp_max_mw.max(member.frp_mw);
        self.area_km2 += new_area_km2;
        self.bbox = [
            self.bbox[0].min(member.lon),
            self.bbox[1].min(member.lat),
            self.bbox[2].max(member.lon),
            self.bbox[3].max(member.lat),
        ];
        let (p, l) = (member.lat.to_radians(), member.lon.to_radians());
        self.centre_sum[0] += p.cos() * l.cos();
        self.centre_sum[1] += p.cos() * l.sin();
        self.centre_sum[2] += p.sin();
        self.best_confidence = self.best_confidence.max(confidence);

        let number = snapshot_of(member.time_ms, member.lon);
        let at = self.snapshots.partition_point(|s| s.snapshot < number);
        if self.snapshots.get(at).is_none_or(|s| s.snapshot != number) {
            self.snapshots.insert(
                at,
                Snapshot {
                    snapshot: number,
                    label: snapshot_label(number),
                    first_ms: member.time_ms,
                    last_ms: member.time_ms,
                    detections: 0,
                    new_pixels: 0,
                    new_area_km2: 0.0,
                    frp_sum_mw: 0.0,
                    frp_max_mw: 0.0,
                    hull: Vec::new(),
                    centre: [member.lon, member.lat],
                },
            );
        }
        let s = &mut self.snapshots[at];
        let n = s.detections as f64;
        s.centre = [
            (s.centre[0] * n + member.lon) / (n + 1.0),
            (s.centre[1] * n + member.lat) / (n + 1.0),
        ];
        s.first_ms = s.first_ms.min(member.time_ms);
        s.last_ms = s.last_ms.max(member.time_ms);
        s.detections += 1;
        s.new_pixels += u64::from(new_area_km2 > 0.0);
        s.new_area_km2 += new_area_km2;
        s.frp_sum_mw += member.frp_mw;
        s.frp_max_mw = s.frp_max_mw.max(member.frp_mw);
        let mut points = std::mem::take(&mut s.hull);
        points.extend(member.footprint());
        s.hull = geometry::convex_hull(&points);

        let day = chrono::DateTime::from_timestamp_millis(member.time_ms).map_or_else(
            || "out-of-range".to_owned(),
            |t| t.format("%Y-%m-%d").to_string(),
        );
        let at = self.daily.partition_point(|d| d.day < day);
        match self.daily.get_mut(at) {
            Some(d) if d.day == day => {
                d.detections += 1;
                d.frp_mw += member.frp_mw;
            }
            _ => self.daily.insert(
                at,
                DailyTotals {
                    day,
                    detections: 1,
                    frp_mw: member.frp_mw,
                },
            ),
        }
    }

    /// Takes `other` in: its totals, snapshots, days and alerts; `other` becomes a redirect.
    pub fn absorb(&mut self, other: &mut Incident) {
        self.first_ms = self.first_ms.min(other.first_ms);
        self.last_ms = self.last_ms.max(other.last_ms);
        self.detections += other.detections;
        self.static_detections += other.static_detections;
        self.frp_sum_mw += other.frp_sum_mw;
        self.frp_max_mw = self.frp_max_mw.max(other.frp_max_mw);
        self.area_km2 += other.area_km2;
        self.bbox = [
            self.bbox[0].min(other.bbox[0]),
            self.bbox[1].min(other.bbox[1]),
            self.bbox[2].max(other.bbox[2]),
            self.bbox[3].max(other.bbox[3]),
        ];
        for k in 0..3 {
            self.centre_sum[k] += other.centre_sum[k];
        }
        self.best_confidence = self.best_confidence.max(other.best_confidence);
        for theirs in std::mem::take(&mut other.snapshots) {
            let at = self
                .snapshots
                .partition_point(|s| s.snapshot < theirs.snapshot);
            match self.snapshots.get_mut(at) {
                Some(ours) if ours.snapshot == theirs.snapshot => {
                    let (a, b) = (ours.detections as f64, theirs.detections as f64);
                    ours.centre = [
                        (ours.centre[0] * a + theirs.centre[0] * b) / (a + b).max(1.0),
                        (ours.centre[1] * a + theirs.centre[1] * b) / (a + b).max(1.0),
                    ];
                    ours.first_ms = ours.first_ms.min(theirs.first_ms);
                    ours.last_ms = ours.last_ms.max(theirs.last_ms);
                    ours.detections += theirs.detections;
                    ours.new_pixels += theirs.new_pixels;
                    ours.new_area_km2 += theirs.new_area_km2;
                    ours.frp_sum_mw += theirs.frp_sum_mw;
                    ours.frp_max_mw = ours.frp_max_mw.max(theirs.frp_max_mw);
                    let mut points = std::mem::take(&mut ours.hull);
                    points.extend(theirs.hull);
                    ours.hull = geometry::convex_hull(&points);
                }
                _ => self.snapshots.insert(at, theirs),
            }
        }
        for theirs in std::mem::take(&mut other.daily) {
            let at = self.daily.partition_point(|d| d.day < theirs.day);
            match self.daily.get_mut(at) {
                Some(ours) if ours.day == theirs.day => {
                    ours.detections += theirs.detections;
                    ours.frp_mw += theirs.frp_mw;
                }
                _ => self.daily.insert(at, theirs),
            }
        }
        self.alerted.append(&mut other.alerted);
        self.weather = IncidentWeather::newer(self.weather.take(), other.weather.take());
        other.outlook = None;
        self.absorbed.push(other.id.clone());
        self.absorbed.append(&mut other.absorbed);
        self.absorbed.sort();
        self.absorbed.dedup();
        other.status = IncidentStatus::Merged;
        other.merged_into = Some(self.id.clone());
    }

    /// Whether every detection is a static source or a persistent hot spot.
    pub fn is_static(&self) -> bool {
        self.detections > 0 && self.static_detections == self.detections
    }

    /// Mean position of the detections, on the sphere.
    pub fn centroid(&self) -> Location {
        let [x, y, z] = self.centre_sum;
        let round = |d: f64| (d * 1e5).round() / 1e5;
        Location {
            latitude: round(z.atan2(f64::hypot(x, y)).to_degrees()),
            longitude: round(y.atan2(x).to_degrees()),
        }
    }

    /// The perimeter after snapshot `upto` (every snapshot when `None`): the concave outline of
    /// the overpass hulls burning by then ([`geometry::concave_outline`], dug in where at least
    /// [`OUTLINE_EDGE_KM`] of ground between them never burned). Within one overpass the shape
    /// is its convex hull.
    pub fn perimeter(&self, upto: Option<i64>) -> Vec<[f64; 2]> {
        let parts: Vec<Vec<[f64; 2]>> = self
            .snapshots
            .iter()
            .filter(|s| upto.is_none_or(|u| s.snapshot <= u))
            .map(|s| s.hull.clone())
            .collect();
        geometry::concave_outline(&parts, OUTLINE_EDGE_KM)
    }

    /// Area burning by the end of snapshot `upto`, km².
    pub fn area_upto(&self, upto: i64) -> f64 {
        self.snapshots
            .iter()
            .filter(|s| s.snapshot <= upto)
            .map(|s| s.new_area_km2)
            .sum()
    }

    /// The status on the tracker's clock (the newest detection time it has seen).
    pub fn status_at(&self, clock_ms: i64, max_inactive_ms: i64) -> IncidentStatus {
        match self.status {
            IncidentStatus::Merged => IncidentStatus::Merged,
            _ if clock_ms.saturating_sub(self.last_ms) > max_inactive_ms => {
                IncidentStatus::Inactive
            }
            _ => IncidentStatus::Active,
        }
    }
}

/// The incident id founded by `event_id`.
pub fn incident_id(event_id: &str) -> String {
    format!("inc_{}", event_id.strip_prefix("fd_").unwrap_or(event_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, hours: f64, lat: f64, lon: f64) -> Member {
        Member {
            event_id: id.into(),
            time_ms: (hours * 3_600_000.0) as i64,
            lat,
            lon,
            scan_km: 1.0,
            track_km: 1.0,
            frp_mw: 10.0,
        }
    }

    #[test]
    fn snapshots_split_at_local_solar_midnight_and_noon() {
        // 01:30 and 13:30 local at 150°E are 15:30 and 03:30 UTC: two snapshots a day.
        let day = 18_000.0 * 24.0;
        let night = snapshot_of(((day + 15.5) * 3_600_000.0) as i64, 150.0);
        let afternoon = snapshot_of(((day + 24.0 + 3.5) * 3_600_000.0) as i64, 150.0);
        assert_eq!(afternoon - night, 1);
        assert!(snapshot_label(night).ends_with("Tam"));
        assert!(snapshot_label(afternoon).ends_with("Tpm"));
    }

    #[test]
    fn absorbing_adds_totals_and_leaves_a_redirect() {
        let a_member = member("fd_aa", 0.0, -30.0, 150.0);
        let mut a = Incident::founded_by(&a_member);
        a.add(&a_member, 1.0, 2, false);
        let b_member = member("fd_bb", 13.0, -30.0, 150.02);
        let mut b = Incident::founded_by(&b_member);
        b.add(&b_member, 1.0, 1, false);
        b.alerted.insert("new_fire".into());
        a.absorb(&mut b);
        assert_eq!((a.detections, a.snapshots.len()), (2, 2));
        assert_eq!(b.status, IncidentStatus::Merged);
        assert_eq!(b.merged_into.as_deref(), Some("inc_aa"));
        assert_eq!(a.absorbed, ["inc_bb"]);
        assert!(a.alerted.contains("new_fire"));
        assert!((a.area_km2 - 2.0).abs() < 1e-9);
        let perimeter = geometry::area_km2(&a.perimeter(None));
        assert!(perimeter > 2.0 && perimeter < 4.0, "{perimeter}");
    }
}

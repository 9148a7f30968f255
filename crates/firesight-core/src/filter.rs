//! What a filtered search can ask of a point, and the point attributes it is checked against.

use serde::{Deserialize, Serialize};

/// The filterable attributes of one indexed point, kept beside its vector.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct PointAttrs {
    /// Acquisition time, Unix seconds.
    pub time: i64,
    /// Latitude, degrees.
    pub lat: f32,
    /// Longitude, degrees.
    pub lon: f32,
    /// Source code (see [`PointAttrs::source_code`]).
    pub source: u8,
    /// Confidence class: 0 low, 1 nominal, 2 high.
    pub confidence: u8,
    /// Incident id; 0 when the point belongs to none.
    pub incident: u64,
}

/// Satellites FIRMS reports, in a fixed order: their position is the source code.
pub const SOURCES: [&str; 5] = ["Terra", "Aqua", "Suomi NPP", "NOAA-20", "NOAA-21"];

/// Code of a source that is none of [`SOURCES`].
pub const OTHER_SOURCE: u8 = 31;

impl PointAttrs {
    /// The attributes of a stored event.
    pub fn of(event: &crate::event::FireEventV2) -> Self {
        Self {
            time: event.detection_time.div_euclid(1000),
            lat: event.location.latitude as f32,
            lon: event.location.longitude as f32,
            source: Self::source_code(&event.source.satellite),
            confidence: event.fire_characteristics.confidence.rank(),
            incident: event
                .correlation_id
                .as_deref()
                .map_or(0, Self::incident_code),
        }
    }

    /// The code filters use for an incident id: FNV-1a of the text, never 0 (0 means none).
    pub fn incident_code(id: &str) -> u64 {
        let hash = id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        hash.max(1)
    }

    /// The code of a satellite name; unknown names share [`OTHER_SOURCE`].
    pub fn source_code(satellite: &str) -> u8 {
        SOURCES
            .iter()
            .position(|s| s.eq_ignore_ascii_case(satellite))
            .map_or(OTHER_SOURCE, |p| p as u8)
    }
}

/// A latitude/longitude box; `min_lon > max_lon` crosses the antimeridian.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BBox {
    /// West edge.
    pub min_lon: f32,
    /// South edge.
    pub min_lat: f32,
    /// East edge.
    pub max_lon: f32,
    /// North edge.
    pub max_lat: f32,
}

impl BBox {
    /// True when the point lies inside (edges included).
    pub fn contains(&self, lat: f32, lon: f32) -> bool {
        let in_lat = lat >= self.min_lat && lat <= self.max_lat;
        let in_lon = if self.min_lon <= self.max_lon {
            lon >= self.min_lon && lon <= self.max_lon
        } else {
            lon >= self.min_lon || lon <= self.max_lon
        };
        in_lat && in_lon
    }
}

/// Conditions a result must meet; every condition set must hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SearchFilter {
    /// Inclusive time range, Unix seconds.
    pub time: Option<(i64, i64)>,
    /// Area.
    pub bbox: Option<BBox>,
    /// Accepted source codes as a bit set (bit `code`).
    pub sources: Option<u32>,
    /// Only this incident.
    pub incident: Option<u64>,
    /// Lowest accepted confidence class.
    pub min_confidence: Option<u8>,
}

impl SearchFilter {
    /// True when `a` meets every condition.
    #[inline]
    pub fn matches(&self, a: &PointAttrs) -> bool {
        self.time
            .is_none_or(|(from, to)| a.time >= from && a.time <= to)
            && self.bbox.is_none_or(|b| b.contains(a.lat, a.lon))
            && self
                .sources
                .is_none_or(|set| a.source < 32 && set & (1 << a.source) != 0)
            && self.incident.is_none_or(|i| a.incident == i)
            && self.min_confidence.is_none_or(|c| a.confidence >= c)
    }

    /// True when no condition is set.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_condition_must_hold_and_bboxes_may_cross_the_antimeridian() {
        let a = PointAttrs {
            time: 100,
            lat: -33.0,
            lon: 179.5,
            source: PointAttrs::source_code("aqua"),
            confidence: 1,
            incident: 7,
        };
        assert_eq!(a.source, 1);
        assert!(SearchFilter::default().matches(&a));
        let across = BBox {
            min_lon: 170.0,
            min_lat: -40.0,
            max_lon: -170.0,
            max_lat: -30.0,
        };
        assert!(across.contains(-33.0, 179.5) && across.contains(-33.0, -175.0));
        assert!(!across.contains(-33.0, 0.0));
        let f = SearchFilter {
            time: Some((100, 200)),
            bbox: Some(across),
            sources: Some(1 << 1),
            incident: Some(7),
            min_confidence: Some(1),
        };
        assert!(f.matches(&a));
        for broken in [
            PointAttrs { time: 99, ..a },
            PointAttrs { lat: -29.0, ..a },
            PointAttrs { source: 0, ..a },
            PointAttrs {
                source: OTHER_SOURCE,
                ..a
            },
            PointAttrs { incident: 8, ..a },
            PointAttrs { confidence: 0, ..a },
        ] {
            assert!(!f.matches(&broken), "{broken:?}");
        }
    }
}

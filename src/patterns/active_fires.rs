//! The active-fires view: detections of a period aggregated per grid cell, the seed's tumbling
//! KSQL window as a query. (Incidents are the tracker's, `crate::tracker`.)

use std::collections::HashMap;

use serde::Serialize;

use crate::event::FireEventV2;

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
        e.location = crate::event::Location {
            latitude: lat,
            longitude: lon,
        };
        e.detection_time = (hours * 3_600_000.0) as i64;
        e.fire_characteristics.frp_mw = frp;
        e
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

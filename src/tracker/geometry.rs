//! Plane geometry of pixel footprints near an incident: corners, convex hulls, area, distances.
//!
//! Points are `[lon, lat]` in degrees (GeoJSON order). Hulls and areas are computed on a local
//! equirectangular plane around the points' first vertex, which is exact enough at the scale of
//! one fire (tens of km; the error grows with the square of the extent over the Earth's radius).

/// Kilometres per degree of latitude (mean).
const KM_PER_DEG_LAT: f64 = 110.574;
/// Kilometres per degree of longitude at the equator.
const KM_PER_DEG_LON: f64 = 111.320;

/// A local plane around `origin`: degrees to km and back.
#[derive(Debug, Clone, Copy)]
struct Plane {
    origin: [f64; 2],
    lon_km: f64,
}

impl Plane {
    fn around(origin: [f64; 2]) -> Self {
        Self {
            origin,
            lon_km: KM_PER_DEG_LON * origin[1].to_radians().cos().max(0.01),
        }
    }

    fn to_km(self, p: [f64; 2]) -> [f64; 2] {
        // Longitudes across the antimeridian stay close to the origin's.
        let dlon = (p[0] - self.origin[0] + 540.0).rem_euclid(360.0) - 180.0;
        [dlon * self.lon_km, (p[1] - self.origin[1]) * KM_PER_DEG_LAT]
    }

    fn to_deg(self, p: [f64; 2]) -> [f64; 2] {
        let lon = self.origin[0] + p[0] / self.lon_km;
        let lon = (lon + 540.0).rem_euclid(360.0) - 180.0;
        [lon, self.origin[1] + p[1] / KM_PER_DEG_LAT]
    }
}

/// The four corners of a `scan_km` × `track_km` pixel centred at (`lat`, `lon`), taken as
/// along-scan east–west and along-track north–south (FIRMS gives no orientation; polar orbits
/// run close to north–south, so the error is the orbit's inclination).
pub fn footprint(lat: f64, lon: f64, scan_km: f64, track_km: f64) -> [[f64; 2]; 4] {
    let plane = Plane::around([lon, lat]);
    let (hx, hy) = (scan_km.max(0.0) / 2.0, track_km.max(0.0) / 2.0);
    [[-hx, -hy], [hx, -hy], [hx, hy], [-hx, hy]].map(|p| plane.to_deg(p))
}

/// The convex hull of `points`, counter-clockwise (the RFC 7946 exterior-ring order), without
/// the closing vertex; coordinates rounded to 1e-5° (about a metre).
pub fn convex_hull(points: &[[f64; 2]]) -> Vec<[f64; 2]> {
    let Some(&first) = points.first() else {
        return Vec::new();
    };
    let plane = Plane::around(first);
    let mut local: Vec<[f64; 2]> = points.iter().map(|&p| plane.to_km(p)).collect();
    local.sort_by(|a, b| a[0].total_cmp(&b[0]).then(a[1].total_cmp(&b[1])));
    local.dedup();
    if local.len() < 3 {
        return local.into_iter().map(|p| round(plane.to_deg(p))).collect();
    }
    // Andrew's monotone chain: lower hull left to right, then upper hull right to left.
    let mut hull: Vec<[f64; 2]> = Vec::with_capacity(local.len() + 1);
    for pass in 0..2 {
        let start = hull.len();
        let ordered: Box<dyn Iterator<Item = &[f64; 2]>> = if pass == 0 {
            Box::new(local.iter())
        } else {
            Box::new(local.iter().rev())
        };
        for &p in ordered {
            while hull.len() >= start + 2
                && cross(hull[hull.len() - 2], hull[hull.len() - 1], p) <= 0.0
            {
                hull.pop();
            }
            hull.push(p);
        }
        hull.pop();
    }
    hull.into_iter().map(|p| round(plane.to_deg(p))).collect()
}

/// Area enclosed by a ring (either orientation, unclosed), km².
pub fn area_km2(ring: &[[f64; 2]]) -> f64 {
    let Some(&first) = ring.first() else {
        return 0.0;
    };
    let plane = Plane::around(first);
    let local: Vec<[f64; 2]> = ring.iter().map(|&p| plane.to_km(p)).collect();
    let twice: f64 = (0..local.len())
        .map(|i| {
            let (a, b) = (local[i], local[(i + 1) % local.len()]);
            a[0] * b[1] - b[0] * a[1]
        })
        .sum();
    twice.abs() / 2.0
}

/// Distance from `point` to the boundary of `ring` (unclosed), km; to the point itself for a
/// ring of one vertex.
pub fn distance_to_boundary_km(ring: &[[f64; 2]], point: [f64; 2]) -> f64 {
    let Some(&first) = ring.first() else {
        return f64::INFINITY;
    };
    let plane = Plane::around(first);
    let p = plane.to_km(point);
    let local: Vec<[f64; 2]> = ring.iter().map(|&v| plane.to_km(v)).collect();
    if local.len() == 1 {
        return (p[0] - local[0][0]).hypot(p[1] - local[0][1]);
    }
    (0..local.len())
        .map(|i| segment_distance(local[i], local[(i + 1) % local.len()], p))
        .fold(f64::INFINITY, f64::min)
}

/// Initial bearing from `from` to `to` (`[lon, lat]`), degrees clockwise from north.
pub fn bearing_deg(from: [f64; 2], to: [f64; 2]) -> f64 {
    let (p1, p2) = (from[1].to_radians(), to[1].to_radians());
    let dl = (to[0] - from[0]).to_radians();
    let y = dl.sin() * p2.cos();
    let x = p1.cos() * p2.sin() - p1.sin() * p2.cos() * dl.cos();
    (y.atan2(x).to_degrees() + 360.0) % 360.0
}

fn segment_distance(a: [f64; 2], b: [f64; 2], p: [f64; 2]) -> f64 {
    let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
    let length2 = dx * dx + dy * dy;
    let t = if length2 == 0.0 {
        0.0
    } else {
        (((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / length2).clamp(0.0, 1.0)
    };
    (p[0] - a[0] - t * dx).hypot(p[1] - a[1] - t * dy)
}

fn cross(o: [f64; 2], a: [f64; 2], b: [f64; 2]) -> f64 {
    (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])
}

fn round(p: [f64; 2]) -> [f64; 2] {
    p.map(|v| (v * 1e5).round() / 1e5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pixel_footprint_has_its_nominal_area() {
        let corners = footprint(-33.0, 150.0, 1.0, 1.0);
        let area = area_km2(&convex_hull(&corners));
        assert!((area - 1.0).abs() < 0.01, "{area}");
        let wide = area_km2(&convex_hull(&footprint(40.0, -120.0, 4.8, 2.0)));
        assert!((wide - 9.6).abs() < 0.05, "{wide}");
    }

    #[test]
    fn the_hull_drops_interior_points_and_runs_counter_clockwise() {
        let square = [
            [0.0, 0.0],
            [0.1, 0.0],
            [0.1, 0.1],
            [0.0, 0.1],
            [0.05, 0.05],
            [0.02, 0.07],
        ];
        let hull = convex_hull(&square);
        assert_eq!(hull.len(), 4, "{hull:?}");
        // Counter-clockwise: positive signed area.
        let signed: f64 = (0..hull.len())
            .map(|i| {
                let (a, b) = (hull[i], hull[(i + 1) % hull.len()]);
                a[0] * b[1] - b[0] * a[1]
            })
            .sum();
        assert!(signed > 0.0);
        assert!(convex_hull(&[]).is_empty());
        assert_eq!(convex_hull(&[[1.0, 1.0], [1.0, 1.0]]).len(), 1);
    }

    #[test]
    fn hulls_across_the_antimeridian_stay_small() {
        let hull = convex_hull(&[
            [179.99, 10.0],
            [-179.99, 10.0],
            [-179.99, 10.02],
            [179.99, 10.02],
        ]);
        let area = area_km2(&hull);
        assert!(area < 5.0, "{area} km² for a 2 km × 2 km box");
    }

    #[test]
    fn boundary_distance_is_zero_on_an_edge_and_grows_inside() {
        let ring = convex_hull(&[[0.0, 0.0], [0.2, 0.0], [0.2, 0.2], [0.0, 0.2]]);
        assert!(distance_to_boundary_km(&ring, [0.1, 0.0]) < 1e-6);
        let centre = distance_to_boundary_km(&ring, [0.1, 0.1]);
        assert!((centre - 11.05).abs() < 0.1, "{centre}");
    }

    #[test]
    fn bearings_point_the_right_way() {
        assert!((bearing_deg([0.0, 0.0], [0.0, 1.0]) - 0.0).abs() < 1e-9);
        assert!((bearing_deg([0.0, 0.0], [1.0, 0.0]) - 90.0).abs() < 1e-9);
        assert!((bearing_deg([0.0, 0.0], [0.0, -1.0]) - 180.0).abs() < 1e-9);
    }
}

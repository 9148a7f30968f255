//! Plane geometry of pixel footprints near an incident: corners, convex and concave hulls, area,
//! distances.
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
    let Some((plane, local)) = on_plane(points) else {
        return Vec::new();
    };
    let ring = if local.len() < 3 {
        (0..local.len()).collect()
    } else {
        hull_indices(&local)
    };
    ring.into_iter()
        .map(|i| round(plane.to_deg(local[i])))
        .collect()
}

/// Vertices closer than this are one vertex, km: neighbouring footprints' shared corners,
/// each placed on a plane around its own pixel, differ by about a metre.
const SAME_VERTEX_KM: f64 = 0.01;

/// `points` on the local plane around the first, sorted (by x, then y), each within
/// [`SAME_VERTEX_KM`] of an earlier one dropped.
fn on_plane(points: &[[f64; 2]]) -> Option<(Plane, Vec<[f64; 2]>)> {
    let plane = Plane::around(*points.first()?);
    let mut local: Vec<[f64; 2]> = points.iter().map(|&p| plane.to_km(p)).collect();
    local.sort_by(|a, b| a[0].total_cmp(&b[0]).then(a[1].total_cmp(&b[1])));
    let cell = |p: [f64; 2]| {
        (
            (p[0] / SAME_VERTEX_KM).floor() as i64,
            (p[1] / SAME_VERTEX_KM).floor() as i64,
        )
    };
    let mut kept: std::collections::HashMap<(i64, i64), Vec<[f64; 2]>> =
        std::collections::HashMap::new();
    local.retain(|&p| {
        let (cx, cy) = cell(p);
        let near = (-1..=1).any(|dx| {
            (-1..=1).any(|dy| {
                kept.get(&(cx + dx, cy + dy)).is_some_and(|q| {
                    q.iter()
                        .any(|q| (q[0] - p[0]).hypot(q[1] - p[1]) < SAME_VERTEX_KM)
                })
            })
        });
        if !near {
            kept.entry((cx, cy)).or_default().push(p);
        }
        !near
    });
    Some((plane, local))
}

/// A concave outline around convex `parts` (pixel footprints, or overpass hulls): their convex
/// hull, dug in along every edge longer than `max_edge_km` (after Park and Oh's edge digging),
/// counter-clockwise, unclosed, rounded as [`convex_hull`]. Such an edge is replaced by two
/// edges through the inner vertex nearest to it when that vertex is nearer to each end than the
/// ends are to each other, the triangle cut away overlaps no part, and the new edges cross no
/// edge of the outline. So ground at least `max_edge_km` across where nothing burned stays
/// outside (an L-shaped fire keeps its L), and every part stays whole inside. The result depends
/// only on the set of vertices, not their order. Below four vertices it is the convex hull.
pub fn concave_outline(parts: &[Vec<[f64; 2]>], max_edge_km: f64) -> Vec<[f64; 2]> {
    let points: Vec<[f64; 2]> = parts.iter().flatten().copied().collect();
    let Some((plane, local)) = on_plane(&points) else {
        return Vec::new();
    };
    if local.len() < 4 {
        return convex_hull(&points);
    }
    let shapes: Vec<Vec<[f64; 2]>> = parts
        .iter()
        .map(|part| part.iter().map(|&p| plane.to_km(p)).collect())
        .collect();
    let mut ring = hull_indices(&local);
    let mut on_ring = vec![false; local.len()];
    ring.iter().for_each(|&i| on_ring[i] = true);
    let length = |a: usize, b: usize| (local[a][0] - local[b][0]).hypot(local[a][1] - local[b][1]);
    let mut stuck: std::collections::HashSet<(usize, usize)> = std::collections::HashSet::new();
    loop {
        // The longest edge not yet found undiggable.
        let mut longest: Option<(f64, usize)> = None;
        for pos in 0..ring.len() {
            let (a, b) = (ring[pos], ring[(pos + 1) % ring.len()]);
            let len = length(a, b);
            if len > max_edge_km
                && !stuck.contains(&(a, b))
                && longest.is_none_or(|(best, _)| len > best)
            {
                longest = Some((len, pos));
            }
        }
        let Some((len, pos)) = longest else { break };
        let (a, b) = (ring[pos], ring[(pos + 1) % ring.len()]);
        let nearest = (0..local.len())
            .filter(|&c| !on_ring[c] && cross(local[a], local[b], local[c]) > 0.0)
            .map(|c| (segment_distance(local[a], local[b], local[c]), c))
            .min_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)));
        let diggable = nearest.filter(|&(_, c)| {
            let cut = [local[a], local[c], local[b]];
            length(a, c).max(length(c, b)) < len
                && !shapes.iter().any(|shape| interiors_overlap(&cut, shape))
                && !(0..ring.len()).any(|e| {
                    let (u, v) = (ring[e], ring[(e + 1) % ring.len()]);
                    e != pos
                        && (crosses(local[a], local[c], local[u], local[v])
                            || crosses(local[c], local[b], local[u], local[v]))
                })
        });
        match diggable {
            Some((_, c)) => {
                ring.insert(pos + 1, c);
                on_ring[c] = true;
            }
            None => {
                stuck.insert((a, b));
            }
        }
    }
    ring.into_iter()
        .map(|i| round(plane.to_deg(local[i])))
        .collect()
}

/// Whether two convex polygons (a point or a segment counts) share interior: no edge normal of
/// either separates them, allowing an overlap of 20 m as touching. Footprints are placed on
/// planes around their own centres, so neighbours' shared corners differ by metres, and the
/// footprint itself (its orientation is not in the data) is no truer than that.
fn interiors_overlap(a: &[[f64; 2]], b: &[[f64; 2]]) -> bool {
    const TOUCH_KM: f64 = 0.02;
    let project = |shape: &[[f64; 2]], axis: [f64; 2]| {
        shape
            .iter()
            .map(|p| p[0] * axis[0] + p[1] * axis[1])
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                (lo.min(v), hi.max(v))
            })
    };
    for shape in [a, b] {
        if shape.len() < 2 {
            continue;
        }
        for i in 0..shape.len() {
            let (p, q) = (shape[i], shape[(i + 1) % shape.len()]);
            let axis = [q[1] - p[1], p[0] - q[0]];
            let norm = axis[0].hypot(axis[1]);
            if norm == 0.0 {
                continue;
            }
            let axis = [axis[0] / norm, axis[1] / norm];
            let ((a_lo, a_hi), (b_lo, b_hi)) = (project(a, axis), project(b, axis));
            if a_hi <= b_lo + TOUCH_KM || b_hi <= a_lo + TOUCH_KM {
                return false;
            }
        }
    }
    true
}

/// Indices of the convex hull of sorted, distinct `points` (at least three), counter-clockwise:
/// Andrew's monotone chain, the lower hull left to right, then the upper hull right to left.
fn hull_indices(points: &[[f64; 2]]) -> Vec<usize> {
    let mut hull: Vec<usize> = Vec::with_capacity(points.len() + 1);
    for pass in 0..2 {
        let start = hull.len();
        let order: Vec<usize> = if pass == 0 {
            (0..points.len()).collect()
        } else {
            (0..points.len()).rev().collect()
        };
        for i in order {
            while hull.len() >= start + 2
                && cross(
                    points[hull[hull.len() - 2]],
                    points[hull[hull.len() - 1]],
                    points[i],
                ) <= 0.0
            {
                hull.pop();
            }
            hull.push(i);
        }
        hull.pop();
    }
    hull
}

/// Whether segments `p`–`q` and `r`–`s` cross at a point inside both (touching ends do not).
fn crosses(p: [f64; 2], q: [f64; 2], r: [f64; 2], s: [f64; 2]) -> bool {
    if p == r || p == s || q == r || q == s {
        return false;
    }
    let (d1, d2) = (cross(p, q, r), cross(p, q, s));
    let (d3, d4) = (cross(r, s, p), cross(r, s, q));
    d1 * d2 < 0.0 && d3 * d4 < 0.0
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

    /// Footprints of 1 km pixels on a grid of `cells` (column, row), 1 km apart.
    fn pixels(cells: &[(i32, i32)]) -> Vec<Vec<[f64; 2]>> {
        cells
            .iter()
            .map(|&(x, y)| {
                let lat = -33.0 + f64::from(y) / 110.574;
                let lon = 150.0 + f64::from(x) / (111.320 * lat.to_radians().cos());
                footprint(lat, lon, 1.0, 1.0).to_vec()
            })
            .collect()
    }

    #[test]
    fn an_l_shaped_fire_keeps_its_l_and_every_pixel_inside() {
        // Two arms 10 km long and 2 km wide meeting at a corner: 36 km² burning, the convex
        // hull 68 km²; the outline keeps the L, cutting only the 0.5 km² at its inner corner.
        let mut cells = Vec::new();
        for i in 0..10 {
            for w in 0..2 {
                cells.push((i, w));
                if i >= 2 {
                    cells.push((w, i));
                }
            }
        }
        let parts = pixels(&cells);
        let points: Vec<[f64; 2]> = parts.iter().flatten().copied().collect();
        let convex = area_km2(&convex_hull(&points));
        let concave = concave_outline(&parts, 2.0);
        let area = area_km2(&concave);
        assert!(convex > 65.0, "{convex}");
        assert!(
            (36.0..37.0).contains(&area),
            "concave {area} km², convex {convex} km²"
        );
        // Counter-clockwise, and every corner on or inside the outline.
        let signed: f64 = (0..concave.len())
            .map(|i| {
                let (a, b) = (concave[i], concave[(i + 1) % concave.len()]);
                a[0] * b[1] - b[0] * a[1]
            })
            .sum();
        assert!(signed > 0.0);
        for p in &points {
            assert!(inside_or_on(&concave, *p), "{p:?} left outside");
        }
    }

    #[test]
    fn a_compact_fire_and_small_inputs_keep_their_convex_hull() {
        let cells: Vec<(i32, i32)> = (0..4).flat_map(|x| (0..4).map(move |y| (x, y))).collect();
        let parts = pixels(&cells);
        let points: Vec<[f64; 2]> = parts.iter().flatten().copied().collect();
        let convex = area_km2(&convex_hull(&points));
        let concave = area_km2(&concave_outline(&parts, 2.0));
        assert!(
            (convex - concave).abs() < 1e-3 * convex,
            "{convex} {concave}"
        );
        assert_eq!(concave_outline(&pixels(&[(0, 0)]), 2.0).len(), 4);
        assert!(concave_outline(&[], 2.0).is_empty());
        let same = vec![vec![[150.0, -33.0], [150.0, -33.0], [150.01, -33.0]]];
        assert_eq!(concave_outline(&same, 2.0), convex_hull(&same[0]));
    }

    #[test]
    fn the_outline_does_not_depend_on_the_order_of_its_points() {
        let cells: Vec<(i32, i32)> = (0..12)
            .flat_map(|i| [(i, 0), (0, i), (i, 11 - i.min(11))])
            .collect();
        let parts = pixels(&cells);
        let mut reversed = parts.clone();
        reversed.reverse();
        assert_eq!(
            concave_outline(&parts, 2.0),
            concave_outline(&reversed, 2.0)
        );
    }

    /// Even-odd test, with points within [`SAME_VERTEX_KM`] of an edge counted inside.
    fn inside_or_on(ring: &[[f64; 2]], p: [f64; 2]) -> bool {
        if distance_to_boundary_km(ring, p) < 2.0 * SAME_VERTEX_KM {
            return true;
        }
        let mut inside = false;
        let mut previous = ring[ring.len() - 1];
        for &[x, y] in ring {
            let [px, py] = previous;
            if (y > p[1]) != (py > p[1]) && p[0] < (px - x) * (p[1] - y) / (py - y) + x {
                inside = !inside;
            }
            previous = [x, y];
        }
        inside
    }

    #[test]
    fn bearings_point_the_right_way() {
        assert!((bearing_deg([0.0, 0.0], [0.0, 1.0]) - 0.0).abs() < 1e-9);
        assert!((bearing_deg([0.0, 0.0], [1.0, 0.0]) - 90.0).abs() < 1e-9);
        assert!((bearing_deg([0.0, 0.0], [0.0, -1.0]) - 180.0).abs() < 1e-9);
    }
}

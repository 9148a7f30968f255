//! Great-circle distance and local solar time, the two pieces of geography the pipeline needs.

use chrono::{DateTime, Duration, NaiveDate, Utc};

/// Mean Earth radius (IUGG), km.
const EARTH_RADIUS_KM: f64 = 6371.0088;

/// Haversine distance between two points in degrees, km.
pub fn distance_km(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = p2 - p1;
    let dl = (lon2 - lon1).to_radians();
    let h = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * h.sqrt().min(1.0).asin()
}

/// The mean position of points `(lat, lon)` in degrees, averaged as unit vectors on the sphere
/// (so a group straddling the antimeridian centres on it, not on Greenwich), rounded to 1e-5°;
/// returned as `(lat, lon)`.
pub fn centroid(points: impl IntoIterator<Item = (f64, f64)>) -> (f64, f64) {
    let (mut x, mut y, mut z) = (0.0, 0.0, 0.0);
    for (lat, lon) in points {
        let (p, l) = (lat.to_radians(), lon.to_radians());
        x += p.cos() * l.cos();
        y += p.cos() * l.sin();
        z += p.sin();
    }
    let round = |d: f64| (d * 1e5).round() / 1e5;
    (
        round(z.atan2(f64::hypot(x, y)).to_degrees()),
        round(y.atan2(x).to_degrees()),
    )
}

/// Local mean solar time at `longitude`: UTC shifted by 4 minutes per degree.
///
/// Daily weather is reported per local day, and FIRMS times are UTC: an afternoon pass over
/// eastern Australia is already the next local day. Solar time needs no time-zone database and
/// is within an hour of civil time almost everywhere fires burn.
///
/// At the ends of chrono's range (years ±262,143), where the shift would overflow, the time is
/// returned unshifted: such instants are refused by every decoder, and a time function must not
/// panic on them anyway (it runs inside the pipeline's writer lock).
pub fn local_solar_time(at: DateTime<Utc>, longitude: f64) -> chrono::NaiveDateTime {
    at.checked_add_signed(solar_offset(longitude))
        .unwrap_or(at)
        .naive_utc()
}

/// The solar offset of `longitude`: 4 minutes per degree (longitudes outside ±180° are clamped).
fn solar_offset(longitude: f64) -> Duration {
    let longitude = if longitude.is_finite() {
        longitude.clamp(-180.0, 180.0)
    } else {
        0.0
    };
    Duration::seconds((longitude * 240.0).round() as i64)
}

/// The local solar day of `at` at `longitude`.
pub fn local_day(at: DateTime<Utc>, longitude: f64) -> NaiveDate {
    local_solar_time(at, longitude).date()
}

/// UTC instant of `hour`:00 local solar time on `day` at `longitude`.
/// Unshifted at the ends of chrono's range, as [`local_solar_time`].
pub fn utc_of_local(day: NaiveDate, hour: u32, longitude: f64) -> DateTime<Utc> {
    let local = day.and_hms_opt(hour.min(23), 0, 0).unwrap_or_default();
    let at = local.and_utc();
    at.checked_sub_signed(solar_offset(longitude)).unwrap_or(at)
}

/// The 0.1° cell (about 11 km) a point falls in, as integer steps: the sensor join's index.
pub fn sensor_cell(lat: f64, lon: f64) -> (i32, i32) {
    ((lat * 10.0).floor() as i32, (lon * 10.0).floor() as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solar_time_at_the_ends_of_the_time_range_does_not_panic() {
        for at in [DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC] {
            for lon in [-180.0, -0.1, 0.0, 151.2, 180.0, f64::NAN, 1e300] {
                let local = local_solar_time(at, lon);
                let day = local_day(at, lon);
                assert_eq!(local.date(), day);
                let back = utc_of_local(day, 12, lon);
                assert!((back - at).num_days().abs() <= 1, "{at} {lon} {back}");
            }
        }
        assert_eq!(
            utc_of_local(NaiveDate::MAX, 23, -180.0).date_naive(),
            NaiveDate::MAX
        );
    }

    #[test]
    fn sydney_to_melbourne_is_about_714_km() {
        let d = distance_km(-33.8688, 151.2093, -37.8136, 144.9631);
        assert!((d - 713.8).abs() < 2.0, "{d}");
    }

    #[test]
    fn afternoon_utc_pass_is_next_local_day_in_queensland() {
        let at: DateTime<Utc> = "2019-08-01T15:30:00Z".parse().expect("time");
        assert_eq!(local_day(at, 150.0).to_string(), "2019-08-02");
        assert_eq!(local_day(at, -120.0).to_string(), "2019-08-01");
        let three_pm = utc_of_local(local_day(at, 150.0), 15, 150.0);
        assert_eq!(three_pm.to_rfc3339(), "2019-08-02T05:00:00+00:00");
    }
}

//! The tracker on the US FIRMS files, checked against CAL FIRE's own incident records: which
//! CAL FIRE fires burning on the days of the MODIS file map to one tracker incident, which
//! Californian incidents CAL FIRE does not list, and how estimated area follows reported acres.

use std::collections::BTreeMap;

use firesight::config::TrackerSettings;
use firesight::event::FireEventV2;
use firesight::geo::distance_km;
use firesight::store::Store;
use firesight::tracker::{Incident, Member, Tracker};
use tempfile::TempDir;

use super::support::{live_incidents, open, shared};

const MODIS_USA: &str = "firms/MODIS_C6_USA_contiguous_and_Hawaii_24h.2020-10-01.csv";
const VIIRS_USA: &str = "firms/SUOMI_VIIRS_C2_USA_contiguous_and_Hawaii_7d.2025-11-05.csv";

/// California, coarsely (`[lon, lat]`): the state line with Oregon, Nevada's two edges, the
/// Colorado River and the Mexican border; the Pacific side runs out to sea, where no land fire is.
const CALIFORNIA: [[f64; 2]; 8] = [
    [-125.0, 42.0],
    [-120.0, 42.0],
    [-120.0, 39.0],
    [-114.63, 35.0],
    [-114.13, 34.3],
    [-114.72, 32.72],
    [-117.12, 32.53],
    [-125.0, 32.53],
];

fn in_california(lon: f64, lat: f64) -> bool {
    let mut inside = false;
    let mut previous = CALIFORNIA[CALIFORNIA.len() - 1];
    for [xi, yi] in CALIFORNIA {
        let [xj, yj] = previous;
        if (yi > lat) != (yj > lat) && lon < (xj - xi) * (lat - yi) / (yj - yi) + xi {
            inside = !inside;
        }
        previous = [xi, yi];
    }
    inside
}

/// One CAL FIRE record with a position.
struct Record {
    name: String,
    lat: f64,
    lon: f64,
    acres: Option<f64>,
    created: String,
    extinguished: Option<String>,
}

fn calfire_records() -> Vec<Record> {
    let mut reader =
        csv::Reader::from_path(shared("incidents/calfire_mapdataall.csv")).expect("csv");
    let headers = reader.headers().expect("header").clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h.trim_start_matches('\u{feff}') == name)
            .unwrap_or_else(|| panic!("CAL FIRE column {name}"))
    };
    let (name, lat, lon, acres, created, out) = (
        column("incident_name"),
        column("incident_latitude"),
        column("incident_longitude"),
        column("incident_acres_burned"),
        column("incident_date_created"),
        column("incident_date_extinguished"),
    );
    reader
        .records()
        .filter_map(|row| {
            let row = row.expect("a CAL FIRE row");
            let number = |i: usize| row.get(i)?.trim().parse::<f64>().ok();
            Some(Record {
                name: row.get(name)?.trim().to_owned(),
                lat: number(lat).filter(|v| *v != 0.0)?,
                lon: number(lon).filter(|v| *v != 0.0)?,
                acres: number(acres).filter(|a| *a > 0.0),
                created: row.get(created)?.get(..10)?.to_owned(),
                extinguished: row.get(out).and_then(|s| s.get(..10)).map(str::to_owned),
            })
        })
        .collect()
}

fn size_bucket(n: u64) -> &'static str {
    match n {
        1 => "1",
        2..=9 => "2-9",
        10..=99 => "10-99",
        100..=999 => "100-999",
        _ => "1000+",
    }
}

/// Ranks with ties averaged, for Spearman's coefficient.
fn ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut out = vec![0.0; values.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && values[order[j + 1]] == values[order[i]] {
            j += 1;
        }
        for &k in &order[i..=j] {
            out[k] = (i + j) as f64 / 2.0;
        }
        i = j + 1;
    }
    out
}

fn pearson(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let cov: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
    let vx: f64 = x.iter().map(|a| (a - mx).powi(2)).sum();
    let vy: f64 = y.iter().map(|b| (b - my).powi(2)).sum();
    cov / (vx * vy).sqrt()
}

#[test]
fn us_files_give_incidents_that_match_cal_fire_records() {
    let dir = TempDir::new().expect("tmp");
    let service = open(dir.path(), &[shared(MODIS_USA), shared(VIIRS_USA)]);
    let tracker = Tracker::new(service.settings.incidents.clone());
    let incidents = live_incidents(&service.store, &tracker);
    let alerts = tracker
        .alerts_from(&service.store, 0, usize::MAX)
        .expect("alerts");

    // The figures per file: the two files are five years apart, so no incident spans both.
    let split = chrono::DateTime::parse_from_rfc3339("2023-01-01T00:00:00Z")
        .expect("date")
        .timestamp_millis();
    for (file, of_file) in [
        ("MODIS USA 2020-09-30/10-01", true),
        ("VIIRS USA 2025-10-29/11-05", false),
    ] {
        let mine: Vec<&(Incident, Vec<Member>)> = incidents
            .iter()
            .filter(|(i, _)| (i.first_ms < split) == of_file)
            .collect();
        let detections: u64 = mine.iter().map(|(i, _)| i.detections).sum();
        let mut sizes: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, _) in &mine {
            *sizes.entry(size_bucket(i.detections)).or_default() += 1;
        }
        let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
        for a in alerts.iter().filter(|a| (a.time_ms < split) == of_file) {
            *kinds.entry(a.kind.as_str().to_owned()).or_default() += 1;
            assert!(
                a.centroid.latitude.is_finite() && !a.perimeter.is_empty(),
                "every alert has a place: {}",
                a.id
            );
        }
        println!(
            "{file}: {detections} detections, {} incidents; sizes {sizes:?}; alerts {kinds:?}",
            mine.len()
        );
        assert!(
            mine.len() > 10 && (mine.len() as u64) < detections,
            "{file}"
        );
        assert!(
            kinds.get("new_fire").is_some_and(|&n| n > 0),
            "{file}: {kinds:?}"
        );
    }

    let records = calfire_records();
    let modis_events: Vec<FireEventV2> = service
        .store
        .events_between(i64::MIN, split)
        .expect("events")
        .map(|e| e.expect("event"))
        .collect();
    let modis: Vec<(Incident, Vec<Member>)> = incidents
        .into_iter()
        .filter(|(i, _)| i.first_ms < split)
        .collect();
    let default = compare(&records, &modis, "2 x reach + 0.25 km (default)");
    // A narrower and a wider rule: a wider link can only merge incidents.
    for (pixels, buffer, wider) in [(1.0, 0.5, false), (3.0, 0.25, true)] {
        let mut settings = service.settings.incidents.clone();
        settings.link_pixels = pixels;
        settings.link_buffer_km = buffer;
        let retracked = retrack(&modis_events, settings);
        assert_eq!(
            retracked.len() <= modis.len(),
            wider,
            "{pixels} x reach + {buffer} km gives {} incidents, the default {}",
            retracked.len(),
            modis.len()
        );
        compare(
            &records,
            &retracked,
            &format!("{pixels} x reach + {buffer} km"),
        );
    }

    // No chaining across fires: no incident of these two days is wider than 50 km.
    for (i, _) in &modis {
        let [w, s, e, n] = i.bbox;
        let diagonal = distance_km(s, w, n, e);
        assert!(diagonal < 50.0, "{} spans {diagonal:.0} km", i.id);
    }
    for fire in [
        "Glass Fire",
        "Zogg Fire",
        "August Complex (includes Doe Fire)",
        "Creek Fire",
    ] {
        assert!(
            default.hits.get(fire).is_some_and(|&n| n >= 1),
            "{fire} burned hard on these days: {:?}",
            default.hits
        );
    }
    // Zogg burned as one front on these days; the Glass Fire's fronts were 5-8 km apart with
    // the ground between them burned before the file starts, so it may be several.
    assert_eq!(
        default.hits.get("Zogg Fire"),
        Some(&1),
        "{:?}",
        default.hits
    );
    assert!(
        default.spearman > 0.3,
        "larger fires are seen larger: {}",
        default.spearman
    );
}

/// The tracker's incidents for `events` under `settings`, fed one granule (minute) at a time.
fn retrack(events: &[FireEventV2], settings: TrackerSettings) -> Vec<(Incident, Vec<Member>)> {
    let dir = TempDir::new().expect("tmp");
    let store = Store::open(dir.path()).expect("store");
    let tracker = Tracker::new(settings);
    let mut granules: BTreeMap<i64, Vec<FireEventV2>> = BTreeMap::new();
    for e in events {
        granules
            .entry(e.detection_time / 60_000)
            .or_default()
            .push(e.clone());
    }
    for mut granule in granules.into_values() {
        let mut refs: Vec<&mut FireEventV2> = granule.iter_mut().collect();
        let done = tracker.track(&store, &mut refs).expect("tracked");
        store.apply(&done.ops).expect("committed");
    }
    live_incidents(&store, &tracker)
}

/// The comparison with CAL FIRE under one setting.
struct Comparison {
    /// Tracker incidents per burning CAL FIRE fire.
    hits: BTreeMap<String, usize>,
    ca_detections: u64,
    unlisted_detections: u64,
    /// The largest Californian incidents no CAL FIRE record of 2020 matches: centre, detections.
    unlisted_largest: Vec<([f64; 2], u64)>,
    spearman: f64,
}

/// How the MODIS incidents compare with CAL FIRE's records; prints the figures.
fn compare(records: &[Record], modis: &[(Incident, Vec<Member>)], setting: &str) -> Comparison {
    // CAL FIRE fires burning on the MODIS file's days: a known span that covers them, or no
    // end recorded and started within the 30 days before (the export leaves many 2020 ends
    // blank, the Creek Fire's among them).
    let (first, last) = ("2020-09-30", "2020-10-01");
    let of_2020 = |r: &&Record| r.created.as_str() <= last && r.created.as_str() >= "2020-01-01";
    let burning: Vec<&Record> = records
        .iter()
        .filter(of_2020)
        .filter(|r| match &r.extinguished {
            Some(end) => end.as_str() >= first,
            None => r.created.as_str() >= "2020-08-31",
        })
        .collect();
    // A record matches an incident when one of its pixels lies within the radius of a circle of
    // the reported acres, plus 10 km (the record's point is where the fire started), of it.
    let reach_km = |r: &Record| {
        r.acres
            .map_or(0.0, |a| (a * KM2_PER_ACRE / std::f64::consts::PI).sqrt())
            + 10.0
    };
    let matches = |r: &Record, members: &[Member]| {
        members
            .iter()
            .any(|m| distance_km(r.lat, r.lon, m.lat, m.lon) <= reach_km(r))
    };
    let mut hits = BTreeMap::new();
    let mut pairs: Vec<(f64, f64)> = Vec::new();
    for r in &burning {
        let matched: Vec<&Incident> = modis
            .iter()
            .filter(|(_, m)| matches(r, m))
            .map(|(i, _)| i)
            .collect();
        hits.insert(r.name.clone(), matched.len());
        if let (Some(acres), false) = (r.acres, matched.is_empty()) {
            let area: f64 = matched.iter().map(|i| i.area_km2).sum();
            pairs.push((area, acres * KM2_PER_ACRE));
        }
    }
    let californian: Vec<&(Incident, Vec<Member>)> = modis
        .iter()
        .filter(|(i, _)| {
            let c = i.centroid();
            in_california(c.longitude, c.latitude)
        })
        .collect();
    let mut unlisted: Vec<&(Incident, Vec<Member>)> = californian
        .iter()
        .copied()
        .filter(|(_, m)| !records.iter().filter(of_2020).any(|r| matches(r, m)))
        .collect();
    unlisted.sort_by_key(|(i, _)| std::cmp::Reverse(i.detections));
    let (area, acres): (Vec<f64>, Vec<f64>) = pairs.iter().copied().unzip();
    let log = |v: &[f64]| v.iter().map(|x| x.max(1e-3).ln()).collect::<Vec<_>>();
    let out = Comparison {
        ca_detections: californian.iter().map(|(i, _)| i.detections).sum(),
        unlisted_detections: unlisted.iter().map(|(i, _)| i.detections).sum(),
        unlisted_largest: unlisted
            .iter()
            .take(5)
            .map(|(i, _)| {
                let c = i.centroid();
                ([c.latitude, c.longitude], i.detections)
            })
            .collect(),
        spearman: pearson(&ranks(&area), &ranks(&acres)),
        hits,
    };
    let count = |f: fn(usize) -> bool| out.hits.values().filter(|&&n| f(n)).count();
    println!(
        "CAL FIRE, {setting}: {} fires burning {first}/{last}; one incident {}, several {}, none {}; \
         per fire {:?}",
        burning.len(),
        count(|n| n == 1),
        count(|n| n > 1),
        count(|n| n == 0),
        out.hits
    );
    println!(
        "  {} Californian incidents ({} detections), {} match no CAL FIRE record of 2020 ({} \
         detections; largest at {:?}); area against acres over {} fires: Spearman {:.2}, \
         Pearson of logs {:.2}; (km² seen, km² reported) {pairs:.1?}",
        californian.len(),
        out.ca_detections,
        unlisted.len(),
        out.unlisted_detections,
        out.unlisted_largest,
        pairs.len(),
        out.spearman,
        pearson(&log(&area), &log(&acres)),
    );
    out
}

const KM2_PER_ACRE: f64 = 0.004_046_856;

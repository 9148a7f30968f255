//! Incidents as the tracker keeps them, over real HTTP on the Australian archive: the groups
//! an independent implementation of the link rule finds, the same whatever the arrival order,
//! with perimeters, snapshots and alerts that have a place.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use reqwest::StatusCode;
use serde_json::Value;

use super::support::{get_json as get, incident_partition, loaded, serve_router};
use firesight::event::FireEventV2;
use firesight::tracker::Tracker;

async fn serve() -> String {
    serve_router(firesight::api::router(loaded().service.api_state())).await
}

fn partition(groups: impl IntoIterator<Item = Vec<String>>) -> BTreeSet<Vec<String>> {
    groups
        .into_iter()
        .map(|mut g| {
            g.sort();
            g
        })
        .collect()
}

fn all_events() -> Vec<FireEventV2> {
    loaded()
        .service
        .store
        .events_between(i64::MIN, i64::MAX)
        .expect("events")
        .map(|e| e.expect("event"))
        .collect()
}

/// Connected groups under the link rule, written independently of the tracker: within
/// `min(max_link, pixels * (larger side a + larger side b) / 2 + buffer)` km and `days` days.
fn link_groups(
    events: &[FireEventV2],
    pixels: f64,
    buffer: f64,
    max_link: f64,
    days: f64,
) -> Vec<Vec<String>> {
    let n = events.len();
    let mut parent: Vec<usize> = (0..n).collect();
    fn root(p: &mut [usize], mut x: usize) -> usize {
        while p[x] != x {
            p[x] = p[p[x]];
            x = p[x];
        }
        x
    }
    let cell = 0.1; // degrees: larger than any link at these latitudes
    let mut grid: HashMap<(i64, i64), Vec<usize>> = HashMap::new();
    let key = |e: &FireEventV2| {
        (
            (e.location.latitude / cell).floor() as i64,
            (e.location.longitude / cell).floor() as i64,
        )
    };
    for (i, e) in events.iter().enumerate() {
        grid.entry(key(e)).or_default().push(i);
    }
    let side = |e: &FireEventV2| {
        e.fire_characteristics
            .scan_km
            .max(e.fire_characteristics.track_km)
    };
    let span = (days * 86_400_000.0) as i64;
    for (i, a) in events.iter().enumerate() {
        let (y, x) = key(a);
        for dy in -1..=1 {
            for dx in -1..=1 {
                for &j in grid.get(&(y + dy, x + dx)).map_or(&[][..], Vec::as_slice) {
                    let b = &events[j];
                    if j <= i || (a.detection_time - b.detection_time).abs() > span {
                        continue;
                    }
                    let reach = (pixels * (side(a) + side(b)) / 2.0 + buffer).min(max_link);
                    let d = firesight::geo::distance_km(
                        a.location.latitude,
                        a.location.longitude,
                        b.location.latitude,
                        b.location.longitude,
                    );
                    if d <= reach {
                        let (ra, rb) = (root(&mut parent, i), root(&mut parent, j));
                        parent[ra.max(rb)] = ra.min(rb);
                    }
                }
            }
        }
    }
    let mut groups: HashMap<usize, Vec<String>> = HashMap::new();
    for (i, event) in events.iter().enumerate() {
        let r = root(&mut parent, i);
        groups.entry(r).or_default().push(event.event_id.clone());
    }
    groups.into_values().collect()
}

async fn every_incident(base: &str, query: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(c) => format!("{base}/v1/incidents?{query}&limit=1000&cursor={c}"),
            None => format!("{base}/v1/incidents?{query}&limit=1000"),
        };
        let (status, page) = get(&url).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        items.extend(page["items"].as_array().expect("items").iter().cloned());
        cursor = page["next_cursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            return items;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incidents_are_the_connected_groups_of_the_link_rule_with_stable_ids() {
    let base = serve().await;
    let items = every_incident(&base, "members=true").await;
    let ours = partition(items.iter().map(|i| {
        i["members"]
            .as_array()
            .expect("members")
            .iter()
            .map(|m| m.as_str().expect("id").to_owned())
            .collect()
    }));
    let events = all_events();
    let s = &loaded().service.settings.incidents;
    let theirs = partition(link_groups(
        &events,
        s.link_pixels,
        s.link_buffer_km,
        s.max_link_km,
        s.max_inactive_days,
    ));
    assert_eq!(ours.len(), theirs.len(), "as many incidents");
    assert!(ours == theirs, "the same grouping, detection for detection");

    // Each id is its earliest detection's; each event's correlation_id is its incident.
    let by_id: HashMap<&str, &FireEventV2> =
        events.iter().map(|e| (e.event_id.as_str(), e)).collect();
    for item in &items {
        let members: Vec<&FireEventV2> = item["members"]
            .as_array()
            .expect("m")
            .iter()
            .map(|m| by_id[m.as_str().expect("id")])
            .collect();
        let founder = members
            .iter()
            .min_by(|a, b| (a.detection_time, &a.event_id).cmp(&(b.detection_time, &b.event_id)))
            .expect("one");
        let id = item["id"].as_str().expect("id");
        assert_eq!(
            id,
            format!("inc_{}", founder.event_id.trim_start_matches("fd_"))
        );
        assert!(members.iter().all(|e| e.correlation_id.is_some()));
    }
    let mut sizes: BTreeMap<&str, usize> = BTreeMap::new();
    for item in &items {
        let n = item["detections"].as_u64().expect("n");
        let bucket = match n {
            1 => "1",
            2..=9 => "2-9",
            10..=99 => "10-99",
            100..=999 => "100-999",
            _ => "1000+",
        };
        *sizes.entry(bucket).or_default() += 1;
    }
    println!(
        "Australian archive: {} detections, {} incidents; sizes {sizes:?}",
        events.len(),
        items.len()
    );

    // The largest, by id: members, daily series, snapshots with perimeters, a fire line.
    let largest = items
        .iter()
        .max_by_key(|i| i["detections"].as_u64())
        .expect("one");
    let id = largest["id"].as_str().expect("id");
    let (status, one) = get(&format!("{base}/v1/incidents/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{one}");
    assert_eq!(one["members"], largest["members"]);
    let daily: u64 = one["daily"]
        .as_array()
        .expect("daily")
        .iter()
        .map(|d| d["detections"].as_u64().expect("n"))
        .sum();
    assert_eq!(daily, one["detections"].as_u64().expect("n"));
    let history = one["history"].as_array().expect("history");
    assert!(history.len() >= 2, "{one}");
    let per_snapshot: u64 = history
        .iter()
        .map(|s| s["detections"].as_u64().expect("n"))
        .sum();
    assert_eq!(per_snapshot, one["detections"].as_u64().expect("n"));
    let area = one["area_km2"].as_f64().expect("area");
    assert!(
        area > 0.0 && area <= one["perimeter_area_km2"].as_f64().expect("hull area") + 1e-6,
        "{area}"
    );
    // The fire line: pixels of the latest overpass on the perimeter (none when that pass saw
    // only the interior). Among the ten largest incidents most have one.
    let mut by_size: Vec<&Value> = items.iter().collect();
    by_size.sort_by_key(|i| std::cmp::Reverse(i["detections"].as_u64()));
    let mut with_line = 0;
    for item in by_size.iter().take(10) {
        let id = item["id"].as_str().expect("id");
        let (_, one) = get(&format!("{base}/v1/incidents/{id}")).await;
        let line = one["fire_line"].as_array().expect("fire line");
        let latest = one["history"]
            .as_array()
            .expect("history")
            .last()
            .expect("one")["snapshot"]
            .clone();
        let members: BTreeSet<&str> = item["members"]
            .as_array()
            .expect("m")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        for pixel in line {
            let pixel = pixel.as_str().expect("id");
            assert!(members.contains(pixel), "{pixel} is a member of {id}");
            let event = by_id[pixel];
            let snapshot = firesight::tracker::incident::snapshot_label(
                firesight::tracker::incident::snapshot_of(
                    event.detection_time,
                    event.location.longitude,
                ),
            );
            assert_eq!(
                snapshot,
                latest.as_str().expect("label"),
                "{pixel} is of the latest pass"
            );
        }
        with_line += usize::from(!line.is_empty());
    }
    assert!(
        with_line >= 5,
        "{with_line} of the ten largest have a fire line"
    );
    let (status, feature) = get(&format!("{base}/v1/incidents/{id}?f=geojson")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(feature["geometry"]["type"], "Polygon", "{feature}");
    let ring = feature["geometry"]["coordinates"][0]
        .as_array()
        .expect("ring");
    assert_eq!(ring.first(), ring.last(), "closed ring");
    for bad in ["inc_zz", "fd_123", "inc_0123456789abcdef01234567"] {
        let (status, body) = get(&format!("{base}/v1/incidents/{bad}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{bad}: {body}");
    }
    let (status, body) = get(&format!("{base}/v1/incidents?status=burning")).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("status"))
    );
}

/// Feeds `events` to a fresh tracker in `batches` and returns its live incidents with members.
fn track(events: &[FireEventV2], batches: &[Vec<usize>]) -> BTreeMap<String, BTreeSet<String>> {
    let dir = tempfile::TempDir::new().expect("tmp");
    let store = firesight::store::Store::open(dir.path()).expect("store");
    let tracker = Tracker::new(loaded().service.settings.incidents.clone());
    for batch in batches {
        let mut owned: Vec<FireEventV2> = batch.iter().map(|&i| events[i].clone()).collect();
        let mut refs: Vec<&mut FireEventV2> = owned.iter_mut().collect();
        let tracked = tracker.track(&store, &mut refs).expect("tracked");
        store.apply(&tracked.ops).expect("committed");
    }
    incident_partition(&store, &tracker)
}

#[test]
fn the_same_detections_in_shuffled_granule_order_give_the_same_incidents() {
    let mut events = all_events();
    events.retain(|e| e.detection_time < 1_568_505_600_000); // up to 2019-09-15: a fortnight
    events.sort_by(|a, b| (a.detection_time, &a.event_id).cmp(&(b.detection_time, &b.event_id)));
    // Granules: every pixel of one overpass shares the minute.
    let mut granules: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
    for (i, e) in events.iter().enumerate() {
        granules
            .entry(e.detection_time / 60_000)
            .or_default()
            .push(i);
    }
    let in_order: Vec<Vec<usize>> = granules.values().cloned().collect();
    let mut shuffled = in_order.clone();
    // A fixed-seed shuffle (xorshift), printed so a failure can be replayed.
    let seed = 0x5eed_u64;
    let mut x = seed;
    for i in (1..shuffled.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        shuffled.swap(i, (x % (i as u64 + 1)) as usize);
    }
    let a = track(&events, &in_order);
    let b = track(&events, &shuffled);
    // Batches of several granules far apart in time (a batch reads stored detections a stretch
    // at a time), and the whole fortnight, nearly three horizons long, as one batch.
    let mixed: Vec<Vec<usize>> = shuffled.chunks(7).map(|c| c.concat()).collect();
    let c = track(&events, &mixed);
    let d = track(&events, &[in_order.concat()]);
    println!(
        "{} detections in {} granules, seed {seed:#x}: {} incidents in time order, {} shuffled, \
         {} in shuffled batches of 7 granules, {} in one batch",
        events.len(),
        in_order.len(),
        a.len(),
        b.len(),
        c.len(),
        d.len()
    );
    assert!(a.len() > 10, "the fortnight has many fires");
    assert!(a == b, "the same ids and members whatever the order");
    assert!(a == c, "the same in batches of granules far apart");
    assert!(a == d, "the same in one batch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_have_a_place_page_and_stream() {
    let base = serve().await;
    let mut alerts: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(c) => format!("{base}/v1/alerts?limit=1000&cursor={c}"),
            None => format!("{base}/v1/alerts?limit=1000"),
        };
        let (status, page) = get(&url).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        alerts.extend(page["items"].as_array().expect("items").iter().cloned());
        cursor = page["next_cursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    let mut ids = BTreeSet::new();
    for alert in &alerts {
        *kinds
            .entry(alert["kind"].as_str().expect("kind").to_owned())
            .or_default() += 1;
        assert!(
            ids.insert(alert["id"].as_str().expect("id").to_owned()),
            "alert ids are unique: {alert}"
        );
        assert!(
            alert["centroid"]["latitude"].is_number()
                && alert["bbox"].as_array().is_some_and(|b| b.len() == 4),
            "{alert}"
        );
        assert!(
            !alert["perimeter"].as_array().expect("perimeter").is_empty(),
            "{alert}"
        );
        assert!(!alert["reason"].as_str().unwrap_or_default().is_empty());
    }
    println!(
        "Australian archive: {} alerts, by kind {kinds:?}",
        alerts.len()
    );
    assert!(kinds.get("new_fire").is_some_and(|&n| n > 100), "{kinds:?}");
    assert!(kinds.contains_key("growth"), "{kinds:?}");
    let seqs: Vec<u64> = alerts
        .iter()
        .map(|a| a["seq"].as_u64().expect("seq"))
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "log order");

    let (status, growth) = get(&format!("{base}/v1/alerts?kind=growth&limit=5&f=geojson")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(growth["type"], "FeatureCollection");
    assert!(
        growth["features"]
            .as_array()
            .expect("features")
            .iter()
            .all(|f| f["properties"]["kind"] == "growth")
    );
    let (status, body) = get(&format!("{base}/v1/alerts?kind=fire")).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("kind"))
    );

    // The live stream replays after a Last-Event-ID: the next alert comes with its seq as id.
    let mut response = reqwest::Client::new()
        .get(format!("{base}/v1/alerts/stream"))
        .header("Last-Event-ID", seqs[0].to_string())
        .send()
        .await
        .expect("stream");
    assert_eq!(response.status(), StatusCode::OK);
    let mut text = String::new();
    while !text.contains("\n\n") {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(10), response.chunk())
            .await
            .expect("an event within 10 s")
            .expect("chunk")
            .expect("not the end");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.contains("event: alert"), "{text}");
    assert!(text.contains(&format!("id: {}", seqs[1])), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_fires_and_growth_alerts_agree_with_the_records() {
    let base = serve().await;
    // Active fires in the two hours up to 05:00 UTC on 2019-09-10 (the Aqua afternoon pass).
    let (status, view) = get(&format!(
        "{base}/v1/views/active-fires?at=2019-09-10T05:00:00Z&minutes=120&cell_deg=1"
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    let in_cells: u64 = view["cells"]
        .as_array()
        .expect("cells")
        .iter()
        .map(|c| c["detections"].as_u64().expect("n"))
        .sum();
    let (_, listed) = get(&format!(
        "{base}/v1/fires?from=2019-09-10T03:00:00Z&to=2019-09-10T05:00:00Z&limit=1000"
    ))
    .await;
    let count = listed["items"].as_array().expect("items").len() as u64;
    assert!(count > 0);
    assert_eq!(in_cells, count, "every detection of the period in one cell");

    // Growth between overpass snapshots: every case names a tracked incident that has it.
    let (status, alerts) = get(&format!(
        "{base}/v1/views/growth-alerts?from=2019-09-01&to=2019-09-10"
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{alerts}");
    let cases = alerts["alerts"].as_array().expect("alerts");
    assert!(!cases.is_empty(), "a fire season has growing incidents");
    for case in cases.iter().take(20) {
        assert!(case["growth_rate"].as_f64().expect("rate") > 2.0);
        let id = case["incident_id"].as_str().expect("id");
        let (status, one) = get(&format!("{base}/v1/incidents/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{one}");
        let snapshot = one["history"]
            .as_array()
            .expect("history")
            .iter()
            .find(|s| s["snapshot"] == case["snapshot"])
            .expect("the snapshot is in the incident's history");
        assert_eq!(snapshot["detections"], case["detections"]);
    }
    let (status, body) = get(&format!("{base}/v1/views/active-fires?minutes=0")).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("minutes"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_live_incident_carries_the_growth_outlook_of_its_stored_state() {
    use firesight::tracker::outlook::outlook_features;
    let service = &loaded().service;
    let tracker = service.pipeline.tracker().expect("tracker");
    let model = tracker
        .outlook()
        .expect("the default names an outlook model");
    let incidents = tracker.incidents(&service.store).expect("incidents");
    let live: Vec<_> = incidents
        .iter()
        .filter(|i| i.merged_into.is_none())
        .collect();
    let rows: Vec<_> = live
        .iter()
        .map(|i| outlook_features(i, i.last_ms))
        .collect();
    let again = model.predict(&rows).expect("predict");
    let mut with_weather = 0;
    for (incident, p) in live.iter().zip(&again) {
        let outlook = incident
            .outlook
            .as_ref()
            .unwrap_or_else(|| panic!("{} has no outlook", incident.id));
        assert_eq!(outlook.as_of_ms, incident.last_ms, "{}", incident.id);
        assert!(
            (outlook.p_growth_24h - f64::from(*p)).abs() < 1e-6,
            "{}: stored {} but its state gives {p}",
            incident.id,
            outlook.p_growth_24h
        );
        with_weather += usize::from(incident.weather.is_some());
    }
    assert!(
        live.len() > 1000 && with_weather > 100,
        "{} live, {with_weather} with weather",
        live.len()
    );
    // A merged incident keeps no outlook of its own.
    assert!(
        incidents
            .iter()
            .filter(|i| i.merged_into.is_some())
            .all(|i| i.outlook.is_none())
    );
    // Served beside the incident, rounded.
    let base = serve().await;
    let biggest = live
        .iter()
        .max_by_key(|i| i.detections)
        .expect("an incident");
    let (status, body) = get(&format!("{base}/v1/incidents/{}", biggest.id)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["outlook_model"], "growth-outlook@2");
    let served = body["p_growth_24h"].as_f64().expect("p_growth_24h");
    let stored = biggest.outlook.as_ref().expect("outlook").p_growth_24h;
    assert!((served - stored).abs() <= 5e-5, "{served} vs {stored}");
}

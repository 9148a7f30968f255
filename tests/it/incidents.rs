//! Incidents and the views over them, over real HTTP on the Australian archive.

use std::collections::{BTreeSet, HashMap};

use reqwest::StatusCode;
use serde_json::Value;

use super::patterns::space_time_incidents;
use super::support::{get_json as get, loaded, serve_router};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incidents_are_the_space_time_groups_an_independent_grouping_finds() {
    let base = serve().await;
    let service = &loaded().service;
    // Three days, so incidents chain across overpasses and days.
    let (from_ms, to_ms) = (1_567_900_800_000, 1_568_159_999_999); // 2019-09-08 .. 2019-09-10
    let (status, first) = get(&format!(
        "{base}/v1/incidents?from=2019-09-08&to=2019-09-10&min_size=1&limit=200&members=true"
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let mut items: Vec<Value> = first["items"].as_array().expect("items").clone();
    let mut cursor = first["next_cursor"].as_str().map(str::to_owned);
    while let Some(c) = cursor {
        let (_, page) = get(&format!(
            "{base}/v1/incidents?from=2019-09-08&to=2019-09-10&min_size=1&limit=200&members=true&cursor={c}"
        ))
        .await;
        items.extend(page["items"].as_array().expect("items").iter().cloned());
        cursor = page["next_cursor"].as_str().map(str::to_owned);
    }
    assert_eq!(items.len() as u64, first["total"].as_u64().expect("total"));
    let ours = partition(items.iter().map(|i| {
        i["members"]
            .as_array()
            .expect("members")
            .iter()
            .map(|m| m.as_str().expect("id").to_owned())
            .collect()
    }));

    let events = service
        .store
        .list_events(from_ms, to_ms, None, 100_000)
        .expect("events")
        .events;
    assert_eq!(
        first["window"]["events"].as_u64(),
        Some(events.len() as u64)
    );
    let points: Vec<(f64, f64, i64)> = events
        .iter()
        .map(|e| (e.location.latitude, e.location.longitude, e.detection_time))
        .collect();
    let labels = space_time_incidents(&points, 3.0, 24.0);
    let mut groups: HashMap<usize, Vec<String>> = HashMap::new();
    for (e, l) in events.iter().zip(labels) {
        groups.entry(l).or_default().push(e.event_id.clone());
    }
    let theirs = partition(groups.into_values());
    assert_eq!(ours.len(), theirs.len(), "as many incidents");
    assert!(ours == theirs, "the same grouping, detection for detection");
    let multi = ours.iter().filter(|g| g.len() > 1).count();
    println!(
        "2019-09-08..10: {} detections, {} incidents ({multi} with more than one detection)",
        events.len(),
        ours.len()
    );

    // The largest incident, fetched by id, is the same group with its growth.
    let largest = items
        .iter()
        .max_by_key(|i| i["detections"].as_u64())
        .expect("one");
    let id = largest["id"].as_str().expect("id");
    let (status, one) = get(&format!("{base}/v1/incidents/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{one}");
    assert_eq!(one["members"], largest["members"]);
    assert!(one["daily"].as_array().expect("daily").len() >= 2, "{one}");
    let daily: u64 = one["daily"]
        .as_array()
        .expect("daily")
        .iter()
        .map(|d| d["detections"].as_u64().expect("n"))
        .sum();
    assert_eq!(daily, one["detections"].as_u64().expect("n"));
    for bad in ["inc_zz", "fd_123", "inc_0123456789abcdef01234567"] {
        let (status, body) = get(&format!("{base}/v1/incidents/{bad}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{bad}: {body}");
    }
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

    // Growth alerts are exactly the incidents of the window growing faster than 2.0.
    let window = "from=2019-09-01&to=2019-09-10";
    let (status, alerts) = get(&format!("{base}/v1/views/growth-alerts?{window}")).await;
    assert_eq!(status, StatusCode::OK, "{alerts}");
    let (_, all) = get(&format!("{base}/v1/incidents?{window}&limit=1000")).await;
    assert!(all["next_cursor"].is_null(), "one page holds them");
    let expected: BTreeSet<String> = all["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|i| i["growth_rate"].as_f64().is_some_and(|g| g > 2.0))
        .map(|i| i["id"].as_str().expect("id").to_owned())
        .collect();
    let got: BTreeSet<String> = alerts["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .map(|i| i["id"].as_str().expect("id").to_owned())
        .collect();
    assert!(!expected.is_empty(), "a fire season has growing incidents");
    assert_eq!(got, expected);
    let (status, body) = get(&format!("{base}/v1/views/active-fires?minutes=0")).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("minutes"))
    );
}

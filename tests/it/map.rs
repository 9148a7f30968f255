//! The operations map in a real browser (Debian's headless Chromium through chromedriver), over
//! the bundled sample: detections render, an incident shows its perimeter, a clicked detection
//! lists and draws its similar past fires, a search lists its answers. Screenshots are written
//! to `$CARGO_TARGET_TMPDIR/map/` (with `FIRESIGHT_BLESS_SCREENSHOTS=1`, also to `docs/img/`,
//! which the README shows); page weight and time to first render are printed
//! (`cargo test --test it map -- --nocapture`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use firesight::app::Service;
use serde_json::{Value, json};
use tempfile::TempDir;

use super::support::{open_async, repo, sample, sample_files, serve_router, settings};
use super::webdriver::Browser;

const HOUR_MS: i64 = 3_600_000;
/// The page's default window: three days up to the newest detection.
const WINDOW_HOURS: i64 = 72;

/// The sample with both CAL FIRE exports, so search has historical incidents to answer from.
async fn service(dir: &TempDir) -> Arc<Service> {
    let mut files = sample_files();
    files.push(sample("California_Fire_Incidents.csv"));
    files.push(sample("calfire_mapdataall.csv"));
    let service = open_async(settings(dir.path()), files).await;
    let search = service.search.as_ref().expect("search on");
    let started = Instant::now();
    while !search.ready.load(std::sync::atomic::Ordering::Acquire) {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "search index not ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    service
}

fn save(name: &str, png: &[u8]) {
    assert!(png.starts_with(b"\x89PNG"), "{name} is not a PNG");
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("map");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    std::fs::write(dir.join(name), png).expect("write screenshot");
    if std::env::var_os("FIRESIGHT_BLESS_SCREENSHOTS").is_some() {
        let docs = repo().join("docs/img");
        std::fs::create_dir_all(&docs).expect("docs/img");
        std::fs::write(docs.join(name), png).expect("write screenshot");
    }
    println!("screenshot: {}", dir.join(name).display());
}

async fn get(url: &str) -> Value {
    reqwest::get(url)
        .await
        .expect("request")
        .json()
        .await
        .expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_map_shows_detections_incidents_similar_fires_and_search_results() {
    let dir = TempDir::new().expect("tempdir");
    let service = service(&dir).await;
    let base = serve_router(firesight::api::router(service.api_state())).await;

    // What the page should show: the detections of the three days up to the newest one.
    let (_, newest) = service
        .store
        .event_time_span()
        .expect("span")
        .expect("events stored");
    let from = newest - WINDOW_HOURS * HOUR_MS;
    let expected = service
        .store
        .events_between(from, newest)
        .expect("scan")
        .count();
    assert!(expected > 1_000, "{expected} detections in the window");

    let browser = Browser::start(1400, 900).await;
    browser.goto(&format!("{base}/")).await;
    browser
        .wait_for(
            "the first window rendered",
            "return window.firesight && window.firesight.ready",
            Duration::from_secs(120),
        )
        .await;
    let shown = browser
        .run("return window.firesight.state.detections", json!([]))
        .await;
    assert_eq!(shown, expected, "detections put into the map's source");
    let rendered = browser
        .run(
            "return firesight.map.queryRenderedFeatures({layers: ['detection-groups', 'detection-points']}).length",
            json!([]),
        )
        .await;
    assert!(rendered.as_u64().unwrap_or(0) > 0, "no detection drawn");
    let errors = browser.run("return firesight.errors", json!([])).await;
    assert_eq!(errors, json!([]), "the page reported errors");
    let land = browser
        .run(
            "return firesight.map.querySourceFeatures('countries').length",
            json!([]),
        )
        .await;
    assert!(
        land.as_u64().unwrap_or(0) > 0,
        "the Natural Earth background is missing"
    );

    // Page weight and time to first render, as the browser measured them.
    let timing = browser
        .run(
            "const nav = performance.getEntriesByType('navigation')[0];
             const res = performance.getEntriesByType('resource');
             const fcp = performance.getEntriesByName('first-contentful-paint')[0];
             const done = performance.getEntriesByName('firesight-detections-rendered')[0];
             const lib = res.find(r => r.name.endsWith('maplibre-gl.js'));
             return {
               transferred: nav.transferSize + res.reduce((s, r) => s + r.transferSize, 0),
               decoded: nav.decodedBodySize + res.reduce((s, r) => s + r.decodedBodySize, 0),
               requests: res.length + 1,
               first_contentful_paint_ms: fcp ? fcp.startTime : null,
               detections_rendered_ms: done ? done.startTime : null,
               maplibre_transferred: lib.transferSize, maplibre_decoded: lib.decodedBodySize,
             };",
            json!([]),
        )
        .await;
    println!("map first load over the sample ({expected} detections in the window): {timing}");
    assert!(
        timing["maplibre_transferred"].as_f64()
            < timing["maplibre_decoded"].as_f64().map(|d| d / 2.0),
        "the map library went uncompressed: {timing}"
    );
    assert!(timing["detections_rendered_ms"].is_number(), "{timing}");
    save("map-overview.png", &browser.screenshot().await);

    // The alert list starts with the window's newest alert (the log is oldest first).
    let mut newest_alert = Value::Null;
    let mut cursor = String::new();
    loop {
        let page = get(&format!(
            "{base}/v1/alerts?limit=1000&from={}&to={}{cursor}",
            rfc3339(from),
            rfc3339(newest)
        ))
        .await;
        if let Some(last) = page["items"].as_array().and_then(|items| items.last()) {
            newest_alert = last["id"].clone();
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    let first_listed = browser
        .run(
            "const li = document.querySelector('#alerts li'); return li && li.dataset.id",
            json!([]),
        )
        .await;
    assert_eq!(
        first_listed, newest_alert,
        "the newest alert of the window first"
    );

    // The largest incident of the window, framed: its perimeter is drawn.
    let incidents = get(&format!(
        "{base}/v1/incidents?limit=1000&from={}&to={}",
        rfc3339(from),
        rfc3339(newest)
    ))
    .await;
    let largest = incidents["items"]
        .as_array()
        .expect("items")
        .iter()
        .max_by(|a, b| {
            a["area_km2"]
                .as_f64()
                .partial_cmp(&b["area_km2"].as_f64())
                .expect("areas")
        })
        .expect("an incident")
        .clone();
    let shown = browser
        .run(
            "return document.getElementById('count-incidents').textContent",
            json!([]),
        )
        .await;
    assert_eq!(
        shown,
        incidents["total"].to_string(),
        "incidents counted on the page"
    );
    browser
        .run(
            "firesight.ready = false;
             firesight.map.fitBounds([[arguments[0][0], arguments[0][1]], [arguments[0][2], arguments[0][3]]], {padding: 120, duration: 0});
             firesight.map.once('idle', () => { firesight.ready = true; });",
            json!([largest["bbox"]]),
        )
        .await;
    browser
        .wait_for(
            "the incident framed",
            "return firesight.ready",
            Duration::from_secs(60),
        )
        .await;
    let perimeter = browser
        .run(
            "return firesight.map.queryRenderedFeatures({layers: ['incident-lines']}).map(f => f.properties.id)",
            json!([]),
        )
        .await;
    assert!(
        perimeter.as_array().expect("ids").contains(&largest["id"]),
        "{} not drawn: {perimeter}",
        largest["id"]
    );
    save("map-incident.png", &browser.screenshot().await);

    // Click a detection as a mouse does: its similar fires are listed and drawn.
    let target = browser
        .wait_for(
            "a single detection on screen",
            "const fs = firesight.map.queryRenderedFeatures({layers: ['detection-points']});
             if (!fs.length) return null;
             const p = firesight.map.project(fs[0].geometry.coordinates);
             const r = firesight.map.getContainer().getBoundingClientRect();
             return [p.x + r.left, p.y + r.top];",
            Duration::from_secs(30),
        )
        .await;
    browser
        .click_at(
            target[0].as_f64().expect("x"),
            target[1].as_f64().expect("y"),
        )
        .await;
    let listed = browser
        .wait_for(
            "similar fires listed",
            "const ids = [...document.querySelectorAll('#similar li')].map(li => li.dataset.id);
             return ids.length && firesight.similarShown === ids.length ? ids : null;",
            Duration::from_secs(60),
        )
        .await;
    let selected = browser
        .run("return firesight.state.selected", json!([]))
        .await;
    let selected = selected.as_str().expect("a selected event").to_owned();
    let similar = get(&format!("{base}/v1/fires/{selected}/similar?k=10")).await;
    let listed: Vec<&Value> = listed.as_array().expect("ids").iter().collect();
    assert_eq!(listed, ids(&similar["neighbours"], "event_id"));
    // Its record names its incident.
    let record = get(&format!("{base}/v1/fires/{selected}")).await;
    let incident = record["correlation_id"].as_str().expect("an incident");
    let shown = browser
        .run(
            "return document.getElementById('record').textContent",
            json!([]),
        )
        .await;
    assert!(
        shown.as_str().is_some_and(|t| t.contains(incident)),
        "{incident} not in {shown}"
    );
    redrawn(&browser, "similar fires drawn").await;
    let drawn = browser
        .run(
            "return firesight.map.queryRenderedFeatures({layers: ['similar-points']}).length",
            json!([]),
        )
        .await;
    assert!(drawn.as_u64().unwrap_or(0) > 0, "similar fires not drawn");
    save("map-similar.png", &browser.screenshot().await);

    // A natural-language search: the answers are listed (and drawn where they have a place).
    let question = "the big fire in Butte County in November 2018";
    browser
        .type_into("#search", &format!("{question}\u{E007}"))
        .await;
    let results = browser
        .wait_for(
            "search results listed",
            "const ids = [...document.querySelectorAll('#results li')].map(li => li.dataset.id);
             return ids.length && firesight.resultsShown === ids.length ? ids : null;",
            Duration::from_secs(60),
        )
        .await;
    let answer: Value = reqwest::Client::new()
        .post(format!("{base}/v1/search"))
        .json(&json!({"query": question, "k": 10}))
        .send()
        .await
        .expect("search")
        .json()
        .await
        .expect("json");
    let results: Vec<&Value> = results.as_array().expect("ids").iter().collect();
    assert_eq!(results, ids(&answer["hits"], "id"));
    redrawn(&browser, "search results drawn").await;
    save("map-search.png", &browser.screenshot().await);
}

/// Waits until the map has drawn everything it was given (its next `idle`).
async fn redrawn(browser: &Browser, what: &str) {
    browser
        .run(
            "firesight.ready = false; firesight.map.once('idle', () => { firesight.ready = true; }); firesight.map.triggerRepaint();",
            json!([]),
        )
        .await;
    browser
        .wait_for(what, "return firesight.ready", Duration::from_secs(60))
        .await;
}

/// The `id` field of each item of `list`, in order.
fn ids<'a>(list: &'a Value, id: &str) -> Vec<&'a Value> {
    list.as_array()
        .expect("a list")
        .iter()
        .map(|v| &v[id])
        .collect()
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .expect("time")
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

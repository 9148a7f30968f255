//! Places for GIS tools: GeoJSON from the query routes, and OGC API – Features at `/ogc` read by
//! a client nobody here wrote (GDAL's OGR `OAPIF` driver, Debian `gdal-bin`).

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::Value;

use super::support::{get_json as get, loaded, serve_router};

/// Northern New South Wales, where the 2019 season began: about 2,900 detections of the sample.
const NORTHERN_NSW: [f64; 4] = [152.0, -30.0, 154.0, -28.0];

async fn serve() -> String {
    serve_router(firesight::api::router(loaded().service.api_state())).await
}

fn bbox_text(b: [f64; 4]) -> String {
    b.map(|v| v.to_string()).join(",")
}

fn inside(b: [f64; 4], lon: f64, lat: f64) -> bool {
    lon >= b[0] && lon <= b[2] && lat >= b[1] && lat <= b[3]
}

/// The ids of the stored events inside `b`, read from the store directly.
fn stored_inside(b: [f64; 4]) -> BTreeSet<String> {
    loaded()
        .service
        .store
        .events_between(i64::MIN, i64::MAX)
        .expect("scan")
        .map(|e| e.expect("event"))
        .filter(|e| inside(b, e.location.longitude, e.location.latitude))
        .map(|e| e.event_id)
        .collect()
}

/// Runs a GDAL command line tool; panics with its output when it fails.
fn gdal(tool: &str, args: &[&str]) -> String {
    let output = Command::new(tool)
        .args(args)
        .env("GDAL_HTTP_TIMEOUT", "120")
        .output()
        .unwrap_or_else(|e| {
            panic!("{tool} does not run ({e}): scripts/test.sh installs Debian's gdal-bin")
        });
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{tool} {args:?} failed: {text}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    text
}

fn features(body: &Value) -> &Vec<Value> {
    assert_eq!(body["type"], "FeatureCollection", "{body}");
    body["features"].as_array().expect("features")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fires_come_as_geojson_points_filtered_by_bbox_across_pages() {
    let base = serve().await;
    let expected = stored_inside(NORTHERN_NSW);
    assert!(expected.len() > 1_000, "{} in the box", expected.len());
    let mut seen = BTreeSet::new();
    let mut url = format!(
        "{base}/v1/fires?f=geojson&limit=1000&bbox={}",
        bbox_text(NORTHERN_NSW)
    );
    loop {
        let response = reqwest::get(&url).await.expect("request");
        assert_eq!(
            response.headers()["content-type"],
            "application/geo+json",
            "{url}"
        );
        let page: Value = response.json().await.expect("json");
        for f in features(&page) {
            assert_eq!(f["geometry"]["type"], "Point");
            let [lon, lat] = [0, 1].map(|i| {
                f["geometry"]["coordinates"][i]
                    .as_f64()
                    .expect("coordinate")
            });
            assert!(inside(NORTHERN_NSW, lon, lat), "{f}");
            assert_eq!(f["id"], f["properties"]["event_id"]);
            assert!(f["properties"]["frp_mw"].is_number(), "{f}");
            assert!(
                seen.insert(f["id"].as_str().expect("id").to_owned()),
                "a repeat: {f}"
            );
        }
        match page["next_cursor"].as_str() {
            Some(c) => {
                url = format!(
                    "{base}/v1/fires?f=geojson&limit=1000&bbox={}&cursor={c}",
                    bbox_text(NORTHERN_NSW)
                )
            }
            None => break,
        }
    }
    assert_eq!(seen, expected);

    // The plain JSON form stays the default, and `Accept` chooses GeoJSON too.
    let (_, plain) = get(&format!("{base}/v1/fires?limit=1")).await;
    assert!(plain["items"].is_array(), "{plain}");
    let one = reqwest::Client::new()
        .get(format!("{base}/v1/fires?limit=1"))
        .header("accept", "application/geo+json")
        .send()
        .await
        .expect("request");
    let one: Value = one.json().await.expect("json");
    assert_eq!(features(&one).len(), 1);
    let id = one["features"][0]["id"].as_str().expect("id").to_owned();
    let (_, feature) = get(&format!("{base}/v1/fires/{id}?f=geojson")).await;
    assert_eq!(feature["type"], "Feature");
    assert_eq!(feature["geometry"], one["features"][0]["geometry"]);

    // GeoJSON pages are streamed, so they may be as large as the whole sample.
    let all: Value = reqwest::get(format!("{base}/v1/fires?f=geojson&limit=50000"))
        .await
        .expect("request")
        .json()
        .await
        .expect("one GeoJSON document");
    assert_eq!(
        features(&all).len() as u64,
        loaded().service.store.event_count()
    );
    assert!(all["next_cursor"].is_null(), "the last page has no cursor");
    // The same through gzip, as browsers ask for it: one whole document.
    let zipped = reqwest::Client::new()
        .get(format!("{base}/v1/fires?f=geojson&limit=50000"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .expect("request");
    assert_eq!(zipped.headers()["content-encoding"], "gzip");
    let zipped = zipped.bytes().await.expect("body");
    let mut text = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&zipped[..]), &mut text)
        .expect("a whole gzip stream");
    let unzipped: Value = serde_json::from_slice(&text).expect("one GeoJSON document");
    assert_eq!(features(&unzipped).len(), features(&all).len());
    println!(
        "all {} detections as one streamed GeoJSON page: {} bytes, {} gzipped",
        features(&all).len(),
        text.len(),
        zipped.len()
    );
    assert!(
        zipped.len() * 4 < text.len(),
        "{} of {}",
        zipped.len(),
        text.len()
    );

    let (status, _) = get(&format!("{base}/v1/fires?f=geojson&limit=50001")).await;
    assert_eq!(status, 400);
    let (status, _) = get(&format!("{base}/v1/fires?limit=5000")).await;
    assert_eq!(
        status, 400,
        "plain JSON pages stay within api.max_page_size"
    );

    let (status, bad) = get(&format!("{base}/v1/fires?bbox=1,2,3")).await;
    assert_eq!(status, 400);
    assert_eq!(bad["error"]["field"], "bbox");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn similar_clusters_and_outliers_come_as_geojson() {
    let base = serve().await;
    let (_, page) = get(&format!("{base}/v1/fires?limit=1")).await;
    let id = page["items"][0]["event_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let (_, json) = get(&format!("{base}/v1/fires/{id}/similar?k=5")).await;
    let (_, geo) = get(&format!(
        "{base}/v1/fires/{id}/similar?k=5&f=geojson&explain=true"
    ))
    .await;
    let points = features(&geo);
    assert_eq!(
        points.len(),
        json["neighbours"].as_array().expect("list").len()
    );
    for (rank, (f, n)) in points
        .iter()
        .zip(json["neighbours"].as_array().expect("list"))
        .enumerate()
    {
        assert_eq!(f["id"], n["event_id"]);
        assert_eq!(f["properties"]["rank"], rank + 1);
        assert_eq!(f["geometry"]["coordinates"][0], n["summary"]["longitude"]);
        assert!(f["properties"]["explain"]["differs"].is_array(), "{f}");
    }

    let window = "from=2019-09-09&to=2019-09-09&bbox=152,-30,154,-28";
    let (status, clusters) = get(&format!("{base}/v1/clusters?{window}&f=geojson")).await;
    assert_eq!(status, 200, "{clusters}");
    let clusters = features(&clusters);
    assert!(!clusters.is_empty());
    for c in clusters {
        assert_eq!(c["geometry"]["type"], "MultiPoint");
        let points = c["geometry"]["coordinates"].as_array().expect("points");
        assert_eq!(
            points.len() as u64,
            c["properties"]["size"].as_u64().expect("size"),
            "{c}"
        );
    }
    let (status, outliers) = get(&format!("{base}/v1/outliers?{window}&limit=5&f=geojson")).await;
    assert_eq!(status, 200, "{outliers}");
    let outliers = features(&outliers);
    assert_eq!(outliers.len(), 5);
    assert!(
        outliers
            .iter()
            .all(|o| o["geometry"]["type"] == "Point" && o["properties"]["score"].is_number())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ogc_api_features_answers_its_core_documents() {
    let base = serve().await;
    let (status, landing) = get(&format!("{base}/ogc")).await;
    assert_eq!(status, 200);
    let rels: BTreeSet<&str> = landing["links"]
        .as_array()
        .expect("links")
        .iter()
        .filter_map(|l| l["rel"].as_str())
        .collect();
    for rel in ["self", "service-desc", "conformance", "data"] {
        assert!(rels.contains(rel), "{rel} missing: {landing}");
    }
    let (_, conformance) = get(&format!("{base}/ogc/conformance")).await;
    assert!(
        conformance["conformsTo"]
            .to_string()
            .contains("ogcapi-features-1/1.0/conf/core")
    );
    let (_, fires) = get(&format!("{base}/ogc/collections/fires")).await;
    let interval = &fires["extent"]["temporal"]["interval"][0];
    assert!(
        interval[0].as_str().expect("start").starts_with("2019-"),
        "{fires}"
    );
    let spatial = &fires["extent"]["spatial"]["bbox"][0];
    assert!(
        spatial[0].as_f64().expect("west") > 100.0,
        "Australia: {fires}"
    );

    // Paging: `limit` over the maximum is clamped, not refused; `next` goes on where it stopped.
    let (status, page) = get(&format!("{base}/ogc/collections/fires/items?limit=5000")).await;
    assert_eq!(status, 200);
    assert_eq!(page["numberReturned"], 1000);
    let (_, first) = get(&format!(
        "{base}/ogc/collections/fires/items?limit=3&datetime=2019-09-09"
    ))
    .await;
    let next = first["links"]
        .as_array()
        .expect("links")
        .iter()
        .find(|l| l["rel"] == "next")
        .and_then(|l| l["href"].as_str())
        .expect("a next link")
        .to_owned();
    let (_, second) = get(&next).await;
    let ids = |p: &Value| -> Vec<String> {
        features(p)
            .iter()
            .map(|f| f["id"].as_str().expect("id").to_owned())
            .collect()
    };
    let (a, b) = (ids(&first), ids(&second));
    assert_eq!((a.len(), b.len()), (3, 3));
    assert!(a.iter().all(|id| !b.contains(id)));
    for f in features(&second) {
        let t = f["properties"]["detection_time"].as_str().expect("time");
        assert!(t.starts_with("2019-09-09"), "{t}");
    }
    let (_, one) = get(&format!("{base}/ogc/collections/fires/items/{}", a[0])).await;
    assert_eq!(one["id"], a[0].as_str());

    // Alerts: identified by their place in the log, one fetched alone is the same alert.
    let (_, alerts) = get(&format!("{base}/ogc/collections/alerts/items?limit=2")).await;
    let alerts = features(&alerts);
    assert_eq!(alerts.len(), 2);
    let seq = alerts[1]["id"].as_u64().expect("a numeric id");
    assert_eq!(alerts[1]["properties"]["seq"], seq);
    let (_, alone) = get(&format!("{base}/ogc/collections/alerts/items/{seq}")).await;
    assert_eq!(alone["properties"]["id"], alerts[1]["properties"]["id"]);

    let (status, missing) = get(&format!("{base}/ogc/collections/rivers/items")).await;
    assert_eq!(status, 404, "{missing}");
    let (status, bad) = get(&format!("{base}/ogc/collections/fires/items?datetime=soon")).await;
    assert_eq!(
        (status.as_u16(), bad["error"]["field"].as_str()),
        (400, Some("datetime"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gdal_reads_fires_incidents_and_alerts_through_ogc_api_features() {
    let base = serve().await;
    let endpoint = format!("OAPIF:{base}/ogc");
    let expected = stored_inside(NORTHERN_NSW);
    let layers = {
        let endpoint = endpoint.clone();
        tokio::task::spawn_blocking(move || gdal("ogrinfo", &["-ro", "-q", &endpoint]))
            .await
            .expect("join")
    };
    assert!(
        ["fires", "incidents", "alerts"]
            .iter()
            .all(|l| layers.contains(l)),
        "{layers}"
    );

    // GDAL pages through the box with `bbox` and `next` links (500 a page) into a GeoJSON file.
    let dir = tempfile::TempDir::new().expect("tempdir");
    let out = dir.path().join("northern_nsw.geojson");
    let (west, south, east, north) = (
        NORTHERN_NSW[0].to_string(),
        NORTHERN_NSW[1].to_string(),
        NORTHERN_NSW[2].to_string(),
        NORTHERN_NSW[3].to_string(),
    );
    {
        let (endpoint, out) = (endpoint.clone(), out.clone());
        tokio::task::spawn_blocking(move || {
            gdal(
                "ogr2ogr",
                &[
                    "-f",
                    "GeoJSON",
                    out.to_str().expect("path"),
                    &endpoint,
                    "fires",
                    "-oo",
                    "PAGE_SIZE=500",
                    "-spat",
                    &west,
                    &south,
                    &east,
                    &north,
                ],
            )
        })
        .await
        .expect("join");
    }
    let written: Value =
        serde_json::from_slice(&std::fs::read(&out).expect("GDAL's output")).expect("GeoJSON");
    let got: BTreeSet<String> = features(&written)
        .iter()
        .map(|f| {
            f["properties"]["event_id"]
                .as_str()
                .expect("event_id")
                .to_owned()
        })
        .collect();
    assert_eq!(got, expected, "GDAL's features against the store's");
    let first = &features(&written)[0]["properties"];
    assert!(
        first["frp_mw"].is_number() && first["detection_time"].is_string(),
        "{first}"
    );

    // Incidents: GDAL reads every one with its polygon.
    let (_, listed) = get(&format!("{base}/v1/incidents?limit=1")).await;
    let total = listed["total"].as_u64().expect("total");
    let all_alerts = {
        let service = &loaded().service;
        let tracker = service.pipeline.tracker().expect("tracker on");
        super::support::alert_ids(&service.store, tracker).len()
    };
    let alert_summary = {
        let endpoint = endpoint.clone();
        tokio::task::spawn_blocking(move || {
            gdal(
                "ogrinfo",
                &["-ro", "-so", &endpoint, "alerts", "-oo", "PAGE_SIZE=1000"],
            )
        })
        .await
        .expect("join")
    };
    assert!(
        alert_summary.contains(&format!("Feature Count: {all_alerts}")),
        "{all_alerts} alerts: {alert_summary}"
    );
    let summary = tokio::task::spawn_blocking(move || {
        gdal(
            "ogrinfo",
            &[
                "-ro",
                "-so",
                &endpoint,
                "incidents",
                "-oo",
                "PAGE_SIZE=1000",
            ],
        )
    })
    .await
    .expect("join");
    assert!(
        summary.contains(&format!("Feature Count: {total}")),
        "{total} incidents: {summary}"
    );
}

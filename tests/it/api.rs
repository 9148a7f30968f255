//! The HTTP API over a real socket.

use std::sync::{Arc, OnceLock};

use firesight::app::Service;
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::support::{loaded, sample, serve_router, settings};

/// Serves `service` on an ephemeral loopback port; returns the base URL.
async fn serve(service: &Service) -> String {
    serve_router(firesight::api::router(service.api_state())).await
}

/// Writes `request` as is and returns the status code of the answer.
async fn raw_status(base: &str, request: &[u8]) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(base.trim_start_matches("http://"))
        .await
        .expect("connect");
    socket.write_all(request).await.expect("write");
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(std::time::Duration::from_secs(30), socket.read(&mut buf))
            .await
            .expect("an answer within 30 s")
            .expect("read");
        assert!(n > 0, "closed before answering: {answer:?}");
        answer.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&answer);
    line.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status line")
}

use super::support::get_json as get;

/// The id of the newest stored event.
async fn newest_id(base: &str) -> String {
    let (_, page) = get(&format!("{base}/v1/fires?limit=1")).await;
    page["items"][0]["event_id"]
        .as_str()
        .expect("id")
        .to_owned()
}

/// Archive line 29430 (near Darwin, joined with station 014015) in the JSON form of a detection.
fn darwin_detection() -> Value {
    json!({
        "latitude": -12.5966, "longitude": 131.1589, "acquired_at": "2019-09-15T14:19:00Z",
        "satellite": "Terra", "instrument": "MODIS", "brightness_k": 375.9, "brightness_background_k": 296.9,
        "scan_km": 2.3, "track_km": 1.5, "confidence_percent": 100.0, "confidence": "high", "frp_mw": 452.0,
        "daytime": false, "version": "6.3", "detection_type": 0
    })
}

fn assert_field_error(body: &Value, field: &str) {
    assert_eq!(body["error"]["field"], field, "{body}");
    assert!(
        body["error"]["reason"]
            .as_str()
            .is_some_and(|r| !r.is_empty()),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_paginates_newest_first() {
    let base = serve(&loaded().service).await;
    let (status, first) = get(&format!("{base}/v1/fires?limit=5")).await;
    assert_eq!(status, StatusCode::OK);
    let cursor = first["next_cursor"].as_str().expect("cursor");
    let (_, second) = get(&format!("{base}/v1/fires?limit=5&cursor={cursor}")).await;
    let times: Vec<i64> = [&first, &second]
        .iter()
        .flat_map(|page| {
            page["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|e| e["detection_time"].as_i64().expect("t"))
        })
        .collect();
    assert_eq!(times.len(), 10);
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {times:?}"
    );
    let ids: std::collections::HashSet<_> = [&first, &second]
        .iter()
        .flat_map(|p| {
            p["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|e| e["event_id"].clone())
        })
        .collect();
    assert_eq!(ids.len(), 10, "pages do not overlap");

    let (_, day) = get(&format!(
        "{base}/v1/fires?from=2019-08-01&to=2019-08-01&limit=1000"
    ))
    .await;
    let items = day["items"].as_array().expect("items");
    assert!(
        !items.is_empty()
            && items
                .iter()
                .all(|e| e["detection_time"].as_i64().expect("t") < 1_564_704_000_000)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn similar_returns_ten_neighbours_with_summaries() {
    let base = serve(&loaded().service).await;
    let id = newest_id(&base).await;
    let (status, event) = get(&format!("{base}/v1/fires/{id}")).await;
    assert_eq!(
        (status, event["event_id"].as_str()),
        (StatusCode::OK, Some(id.as_str()))
    );

    let (status, similar) = get(&format!("{base}/v1/fires/{id}/similar?k=10")).await;
    assert_eq!(status, StatusCode::OK);
    let neighbours = similar["neighbours"].as_array().expect("neighbours");
    assert_eq!(neighbours.len(), 10);
    assert!(
        neighbours
            .iter()
            .all(|n| n["event_id"] != id.as_str() && n["summary"]["detection_time"].is_string())
    );
    let distances: Vec<f64> = neighbours
        .iter()
        .map(|n| n["distance"].as_f64().expect("distance"))
        .collect();
    assert!(distances.windows(2).all(|w| w[0] <= w[1]));

    let detection = darwin_detection();
    let client = reqwest::Client::new();
    let response = client
        .post(format!("{base}/v1/similar"))
        .json(&json!({"k": 10, "detection": detection}))
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["neighbours"].as_array().expect("n").len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn similar_with_filters_returns_only_matching_events() {
    let base = serve(&loaded().service).await;
    let id = newest_id(&base).await;
    // The north, September 2019, Aqua only, nominal or better.
    let url = format!(
        "{base}/v1/fires/{id}/similar?k=20&from=2019-09-01&to=2019-09-30\
         &bbox=120,-20,150,-10&source=aqua&min_confidence=nominal"
    );
    let (status, answer) = get(&url).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let neighbours = answer["neighbours"].as_array().expect("neighbours");
    assert_eq!(neighbours.len(), 20, "the filter matches thousands");
    for n in neighbours {
        let s = &n["summary"];
        let time = s["detection_time"].as_str().expect("time");
        assert!(("2019-09-01".."2019-10-01").contains(&time), "{time}");
        let (lat, lon) = (
            s["latitude"].as_f64().expect("lat"),
            s["longitude"].as_f64().expect("lon"),
        );
        assert!(
            (-20.0..=-10.0).contains(&lat) && (120.0..=150.0).contains(&lon),
            "{lat},{lon}"
        );
        assert_eq!(s["satellite"], "Aqua");
        assert!(
            ["nominal", "high"].contains(&s["confidence"].as_str().expect("c")),
            "{s}"
        );
    }
    // The same filters in the body of POST /v1/similar; a bad one names `filters.<name>`.
    let client = reqwest::Client::new();
    let vector: Vec<f32> = loaded()
        .service
        .store
        .vector(
            loaded()
                .service
                .store
                .seq_of(&id)
                .expect("seq")
                .expect("stored"),
            loaded().service.embedder().model_version(),
        )
        .expect("read")
        .expect("vector")
        .vector;
    let filters = json!({"from": "2019-09-01", "to": "2019-09-30", "bbox": "120,-20,150,-10",
        "source": "aqua", "min_confidence": "nominal"});
    let posted: Value = client
        .post(format!("{base}/v1/similar"))
        .json(&json!({"k": 21, "vector": vector, "filters": filters}))
        .send()
        .await
        .expect("post")
        .json()
        .await
        .expect("json");
    let posted_ids: Vec<&Value> = posted["neighbours"]
        .as_array()
        .expect("n")
        .iter()
        .map(|n| &n["event_id"])
        .filter(|e| *e != id.as_str())
        .collect();
    let got_ids: Vec<&Value> = neighbours.iter().map(|n| &n["event_id"]).collect();
    assert_eq!(posted_ids[..20], got_ids[..], "both routes filter alike");
    let response = client
        .post(format!("{base}/v1/similar"))
        .json(&json!({"vector": vector, "filters": {"bbox": "1,2"}}))
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_field_error(&response.json().await.expect("json"), "filters.bbox");
    // Without the filter the neighbours are not all of that kind.
    let (_, plain) = get(&format!("{base}/v1/fires/{id}/similar?k=20")).await;
    assert_ne!(plain["neighbours"], answer["neighbours"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_queries_get_json_errors_naming_the_field() {
    let base = serve(&loaded().service).await;
    let id = newest_id(&base).await;
    for (url, field) in [
        (format!("{base}/v1/fires/{id}/similar?k=0"), "k"),
        (format!("{base}/v1/fires/{id}/similar?k=5000"), "k"),
        (format!("{base}/v1/fires/{id}/similar?k=ten"), "k"),
        (format!("{base}/v1/fires/{id}/similar?kk=3"), "kk"),
        (format!("{base}/v1/fires/{id}/similar?bbox=1,2,3"), "bbox"),
        (
            format!("{base}/v1/fires/{id}/similar?bbox=0,95,10,96"),
            "bbox",
        ),
        (
            format!("{base}/v1/fires/{id}/similar?bbox=0,10,10,5"),
            "bbox",
        ),
        (
            format!("{base}/v1/fires/{id}/similar?source=Landsat"),
            "source",
        ),
        (
            format!("{base}/v1/fires/{id}/similar?min_confidence=medium"),
            "min_confidence",
        ),
        (
            format!("{base}/v1/fires/{id}/similar?from=2020-01-02&to=2020-01-01"),
            "from",
        ),
        (
            format!("{base}/v1/fires?from=2019-09-01&to=2019-08-01"),
            "from",
        ),
        (format!("{base}/v1/fires?from=yesterday"), "from"),
        (format!("{base}/v1/fires?cursor=zz"), "cursor"),
        (format!("{base}/v1/fires?limit=5&limit=500000"), "limit"),
    ] {
        let (status, body) = get(&url).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{url}");
        assert_field_error(&body, field);
    }
    // A blank value is refused, naming it, not read as absent.
    let (status, body) = get(&format!("{base}/v1/fires/{id}/similar?incident=")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_field_error(&body, "incident");
    let (status, _) = get(&format!("{base}/v1/fires/fd_nope/similar")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let client = reqwest::Client::new();
    for (body, field) in [
        (json!({"vector": [1.0, 2.0]}), "vector"),
        (json!({"k": 3}), "vector"),
        (
            json!({"detection": {"latitude": 123.0}}),
            "detection.longitude",
        ),
        (json!({"vectr": []}), "vectr"),
    ] {
        let response = client
            .post(format!("{base}/v1/similar"))
            .json(&body)
            .send()
            .await
            .expect("post");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
        assert_field_error(&response.json().await.expect("json"), field);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_metrics() {
    let service = &loaded().service;
    let base = serve(service).await;
    let (status, ready) = get(&format!("{base}/readyz")).await;
    assert_eq!(
        (status, ready["indexed"].as_u64()),
        (StatusCode::OK, Some(36_011))
    );
    let id = newest_id(&base).await;
    get(&format!("{base}/v1/fires/{id}/similar")).await;
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for needle in [
        "firesight_ingest_records_total{kind=\"firms\",outcome=\"accepted\"}",
        "firesight_correlate_joins_total{status=\"matched\"}",
        "firesight_correlate_joins_total{status=\"no_reporting_station\"}",
        "firesight_embed_batch_duration_seconds_bucket",
        "firesight_index_vectors 36011",
        "route=\"/v1/fires/{id}/similar\"",
        // No Kafka and no Weaviate here: both outboxes are reported, and empty.
        "firesight_outbox_depth{outbox=\"kafka\"} 0",
        "firesight_outbox_depth{outbox=\"mirror\"} 0",
    ] {
        assert!(text.contains(needle), "metrics lack {needle}");
    }
    // The state's size, per column family: the sample's events are somewhere, on disk or in a
    // memtable, and every family is reported.
    let size = |family: &str, kind: &str| -> f64 {
        let prefix = format!("firesight_store_size_bytes{{family=\"{family}\",kind=\"{kind}\"}} ");
        text.lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {prefix}in /metrics"))
    };
    let events = size("events", "sst") + size("events", "memtable");
    assert!(events > 1e6, "the events family holds {events} bytes");
    for family in firesight::store::Family::ALL {
        size(family.name(), "sst");
        size(family.name(), "memtable");
    }
    assert!(!text.contains(&id), "ids never become labels");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_over_http_reports_lines_and_refuses_oversize_bodies() {
    let dir = tempfile::TempDir::new().expect("tempdir");
    let mut config = settings(dir.path());
    config.api.max_body_bytes = 64 * 1024;
    let service = Service::open(config, &[], false).expect("service");
    let base = serve(&service).await;
    let client = reqwest::Client::new();
    let text = std::fs::read_to_string(sample("fire_archive_M6_96619.csv")).expect("archive");
    let mut lines: Vec<&str> = text.lines().take(101).collect();
    lines[9] = "-11.8,142.0,313,1,1,2019-08-01,0056,Terra,MODIS,48,6.3,297.3,NaN,D,0";
    let body = lines.join("\n");
    let post = |body: String| {
        client
            .post(format!("{base}/v1/events/firms"))
            .header("content-type", "text/csv")
            .body(body)
            .send()
    };

    let first: Value = post(body.clone())
        .await
        .expect("post")
        .json()
        .await
        .expect("json");
    assert_eq!(
        (first["accepted"].as_u64(), first["duplicates"].as_u64()),
        (Some(99), Some(0)),
        "{first}"
    );
    assert_eq!(
        first["rejected"],
        json!([{"line": 10, "field": "frp", "reason": "must be a finite number, got NaN"}])
    );
    let again: Value = post(body).await.expect("post").json().await.expect("json");
    assert_eq!(
        (again["accepted"].as_u64(), again["duplicates"].as_u64()),
        (Some(0), Some(99))
    );

    // Oversize bodies go over a raw socket: the server answers 413 and closes without reading
    // the rest, and an HTTP client still writing that rest may see a broken pipe instead of the
    // answer. A declared length over the limit is refused before any body byte is sent.
    let head = "POST /v1/events/firms HTTP/1.1\r\nhost: x\r\ncontent-type: text/csv\r\n";
    let declared = format!("{head}content-length: {}\r\n\r\n", 200 * 1024);
    assert_eq!(raw_status(&base, declared.as_bytes()).await, 413);
    // Without a declared length (chunked), the limit is enforced while streaming: one chunk
    // just over it, never terminated, so the server has read all there is when it answers.
    let over = text.as_bytes()[..64 * 1024 + 100].to_vec();
    let mut chunked = format!(
        "{head}transfer-encoding: chunked\r\n\r\n{:x}\r\n",
        over.len()
    )
    .into_bytes();
    chunked.extend_from_slice(&over);
    assert_eq!(raw_status(&base, &chunked).await, 413);

    let wrong = client
        .post(format!("{base}/v1/events/firms"))
        .header("content-type", "image/png")
        .body("x")
        .send()
        .await
        .expect("post");
    assert_eq!(wrong.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let not_firms = post("a,b,c\n1,2,3\n".into()).await.expect("post");
    assert_eq!(not_firms.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_field_error(&not_firms.json().await.expect("json"), "brightness");

    // The refused line is kept with its reason; pages of one walk every letter once.
    let (_, all) = get(&format!("{base}/v1/dead-letters")).await;
    let total = all["items"].as_array().expect("items").len();
    assert!(total >= 1, "{all}");
    assert!(
        all["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|l| l["error"]["field"] == "frp")
    );
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let (status, page) = get(&format!("{base}/v1/dead-letters?limit=1{cursor}")).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        seen.extend(page["items"].as_array().expect("items").iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(seen, all["items"].as_array().expect("items").clone());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stations_weather_and_ndjson_detections_over_http_join() {
    let dir = tempfile::TempDir::new().expect("tempdir");
    let service = Service::open(settings(dir.path()), &[], false).expect("service");
    let base = serve(&service).await;
    let client = reqwest::Client::new();
    let upload = |route: &str, file: &str| {
        let body = std::fs::read(sample(file)).expect("sample");
        client
            .post(format!("{base}{route}"))
            .header("content-type", "text/csv")
            .body(body)
            .send()
    };
    let stations: Value = upload("/v1/stations", "australia_bom_weather_stations.csv")
        .await
        .expect("post")
        .json()
        .await
        .expect("json");
    assert_eq!(
        (
            stations["accepted"].as_u64(),
            stations["duplicates"].as_u64()
        ),
        (Some(714), Some(2)),
        "{stations}"
    );
    let weather: Value = upload(
        "/v1/events/weather",
        "australia_bom_daily_weather_2019-05_2020-06.csv",
    )
    .await
    .expect("post")
    .json()
    .await
    .expect("json");
    let total = weather["accepted"].as_u64().expect("accepted")
        + weather["rejected_total"].as_u64().expect("rejected");
    assert_eq!(
        total, 11_848,
        "every row is accepted or rejected: {}",
        weather["rejected_total"]
    );

    let detection = darwin_detection();
    let ndjson = format!("{detection}\n{{\"latitude\": 1}}\n");
    let response = client
        .post(format!("{base}/v1/events/firms"))
        .header("content-type", "application/x-ndjson")
        .body(ndjson)
        .send()
        .await
        .expect("post");
    let outcome: Value = response.json().await.expect("json");
    assert_eq!(outcome["accepted"], 1, "{outcome}");
    assert_eq!(
        (
            outcome["rejected"][0]["line"].as_u64(),
            outcome["rejected"][0]["field"].as_str()
        ),
        (Some(2), Some("longitude"))
    );

    let (_, page) = get(&format!("{base}/v1/fires?limit=1")).await;
    let event = &page["items"][0];
    assert_eq!(event["weather_status"], "matched");
    assert_eq!(event["weather_conditions"]["station_id"], 14_015);
    assert_eq!(
        event["weather_conditions"]["observation_date"],
        "2019-09-15"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_starting_liveness_answers_and_the_api_says_503() {
    let slot = Arc::new(OnceLock::new());
    let base = serve_router(firesight::api::starting_router(Arc::clone(&slot))).await;
    let (status, _) = get(&format!("{base}/healthz")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = get(&format!("{base}/readyz")).await;
    assert_eq!(
        (status, body["ready"].as_bool()),
        (StatusCode::SERVICE_UNAVAILABLE, Some(false))
    );
    let (status, body) = get(&format!("{base}/v1/fires?limit=1")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("starting"))
    );

    assert!(
        slot.set(firesight::api::router(loaded().service.api_state()))
            .is_ok()
    );
    let (status, body) = get(&format!("{base}/readyz")).await;
    assert_eq!(
        (status, body["indexed"].as_u64()),
        (StatusCode::OK, Some(36_011))
    );
    assert_eq!(
        newest_id(&base).await.len(),
        27,
        "the full API answers through the same listener"
    );
}

#[test]
fn the_checked_in_openapi_document_matches_the_code() {
    let generated = firesight::api::openapi::document();
    let path = super::support::repo().join("schemas/openapi.json");
    if std::env::var_os("FIRESIGHT_BLESS_OPENAPI").is_some() {
        std::fs::write(&path, &generated).expect("write schemas/openapi.json");
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        generated == checked_in,
        "schemas/openapi.json differs from the API the code serves; regenerate it with \
         `FIRESIGHT_BLESS_OPENAPI=1 cargo test --test it openapi` (or `firesight openapi`) \
         and review the diff"
    );
    let doc: Value = serde_json::from_str(&generated).expect("valid JSON");
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
    // Every routed path is documented.
    for path in [
        "/v1/events/firms",
        "/v1/fires/{id}/similar",
        "/v1/similar",
        "/v1/clusters",
        "/v1/outliers",
        "/v1/admin/reindex",
        "/readyz",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is not documented");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_and_its_docs_page_are_served() {
    let dir = tempfile::TempDir::new().expect("tempdir");
    let service = Service::open(settings(dir.path()), &[], false).expect("service");
    let base = serve(&service).await;
    let (status, doc) = get(&format!("{base}/openapi.json")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["info"]["title"], "FireSight");
    let page = reqwest::get(format!("{base}/docs")).await.expect("docs");
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.expect("html").contains("/openapi.json"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_answers_configured_origins_only_and_slow_queries_time_out() {
    let service = &loaded().service;
    let mut state = service.api_state();
    state.settings.cors_allowed_origins = vec!["https://ops.example.org".into()];
    state.settings.request_timeout_ms = 1;
    let base = serve_router(firesight::api::router(state)).await;
    let client = reqwest::Client::new();
    let preflight = client
        .request(reqwest::Method::OPTIONS, format!("{base}/v1/similar"))
        .header("origin", "https://ops.example.org")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "x-api-key, content-type")
        .send()
        .await
        .expect("preflight");
    assert!(preflight.status().is_success(), "{}", preflight.status());
    let allowed = preflight.headers()["access-control-allow-origin"].clone();
    assert_eq!(allowed, "https://ops.example.org");
    let foreign = client
        .get(format!("{base}/healthz"))
        .header("origin", "https://elsewhere.example")
        .send()
        .await
        .expect("get");
    assert!(
        !foreign
            .headers()
            .contains_key("access-control-allow-origin")
    );

    // A window's clusters take far longer than 1 ms: 503 with the reason, as JSON.
    let (status, body) = get(&format!("{base}/v1/clusters?from=2019-09-01&to=2019-09-30")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "timeout");
    // Probes are not subject to it.
    let (status, _) = get(&format!("{base}/healthz")).await;
    assert_eq!(status, StatusCode::OK);
}

//! Hostile and odd input against the real server: the findings of the reliability review, each
//! reproduced here first. A date at the edge of the calendar or far in the future is refused
//! naming `acq_date`, and ingest goes on; a batch that panics fails alone; a client trickling its
//! request head is cut off; a body that stalls is answered 408; and FIRMS' VIIRS archive shape
//! (MODIS column names, `instrument` = VIIRS) is accepted as VIIRS.

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use firesight::stream::PipelineError;
use serde_json::Value;
use tempfile::TempDir;

use super::support::{open_async, settings, shared, terra_detection};

const HEADER: &str = "latitude,longitude,brightness,scan,track,acq_date,acq_time,satellite,instrument,confidence,version,bright_t31,frp,daynight,type";

fn row(date: &str) -> String {
    format!("-33.40123,150.2178,330.5,1.0,1.0,{date},0318,Terra,MODIS,80,6.3,290.1,25.5,D,0")
}

async fn post_csv(base: &str, body: String) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{base}/v1/events/firms"))
        .header("content-type", "text/csv")
        .body(body)
        .send()
        .await
        .expect("post");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

/// Serves `service` through the server loop `serve` runs (timeouts and connection limits
/// included), with `limits`; returns the base URL.
async fn serve_limited(
    service: &Arc<firesight::app::Service>,
    limits: firesight::api::server::ServerLimits,
) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = firesight::api::router(service.api_state());
    tokio::spawn(firesight::api::server::serve(
        listener,
        app,
        limits,
        std::future::pending(),
    ));
    format!("http://{addr}")
}

fn limits(header_ms: u64) -> firesight::api::server::ServerLimits {
    firesight::api::server::ServerLimits {
        header_read_timeout: Duration::from_millis(header_ms),
        max_connections: 64,
        shutdown_grace: Duration::from_secs(1),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calendar_edge_and_future_dates_are_refused_and_ingest_goes_on() {
    let dir = TempDir::new().expect("tmp");
    let service = open_async(settings(dir.path()), Vec::new()).await;
    let base = serve_limited(&service, limits(10_000)).await;
    let tomorrow = (chrono::Utc::now() + chrono::Duration::days(1))
        .format("%Y-%m-%d")
        .to_string();
    let body = [
        HEADER.to_owned(),
        row("+262142-12-31"),
        row("-262143-01-01"),
        row("2099-01-01"),
        row(&tomorrow),
        row("1999-12-31"),
        row("2019-11-08"),
    ]
    .join("\n");
    let (status, outcome) = post_csv(&base, body).await;
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(outcome["accepted"], 1, "{outcome}");
    let rejected = outcome["rejected"].as_array().expect("rejected");
    assert_eq!(rejected.len(), 5, "{outcome}");
    assert!(
        rejected.iter().all(|r| r["field"] == "acq_date"),
        "{outcome}"
    );
    // The next batch goes in, and the service says it is ready.
    let (status, outcome) =
        post_csv(&base, [HEADER.to_owned(), row("2019-11-09")].join("\n")).await;
    assert_eq!((status, outcome["accepted"].as_u64()), (200, Some(1)));
    let ready = reqwest::get(format!("{base}/readyz"))
        .await
        .expect("readyz");
    assert_eq!(ready.status(), 200);
    // The tracker's clock is the real detection's, not 2099's.
    let clock = service
        .pipeline
        .tracker()
        .expect("tracker")
        .clock(&service.store)
        .expect("clock")
        .expect("set");
    assert!(clock < chrono::Utc::now().timestamp_millis(), "{clock}");
}

/// `f64::from_str` reads `NaN`, which compares false with any bound: a fractional parameter
/// must still be refused naming itself (found while writing the `query_params` fuzz target).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_a_number_is_refused_where_a_fractional_parameter_is_bounded() {
    let dir = TempDir::new().expect("tmp");
    let service = open_async(settings(dir.path()), Vec::new()).await;
    let base = serve_limited(&service, limits(10_000)).await;
    for (route, name) in [
        ("/v1/views/active-fires", "cell_deg"),
        ("/v1/views/growth-alerts", "threshold"),
    ] {
        for value in ["NaN", "inf"] {
            let answer = reqwest::get(format!("{base}{route}?{name}={value}"))
                .await
                .expect("answer");
            assert_eq!(answer.status(), 400, "{route}?{name}={value}");
            let body: Value = answer.json().await.expect("json");
            assert_eq!(body["error"]["field"], name, "{body}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_that_panics_fails_alone_and_the_next_batch_is_stored() {
    let dir = TempDir::new().expect("tmp");
    let service = open_async(settings(dir.path()), Vec::new()).await;
    let detection =
        |minute: u32| terra_detection(-33.4, 150.2, &format!("2019-11-08T03:{minute:02}:00Z"));
    let pipeline = Arc::clone(&service.pipeline);
    let failed = tokio::task::spawn_blocking(move || {
        pipeline.ingest_detections_with(
            firesight::stream::Lane::Live,
            vec![(2, detection(18))],
            |_, _, _| panic!("a bug in a later stage"),
        )
    })
    .await
    .expect("join");
    assert!(
        matches!(failed, Err(PipelineError::Panicked { stage: "detections", ref message }) if message == "a bug in a later stage"),
        "{failed:?}"
    );
    assert_eq!(service.store.event_count(), 0, "nothing of it was stored");
    let failure = service
        .pipeline
        .last_failure()
        .expect("the failure is kept for /readyz");
    assert_eq!(failure.stage, "detections");
    let pipeline = Arc::clone(&service.pipeline);
    let stored = tokio::task::spawn_blocking(move || {
        pipeline.ingest_detections(vec![(2, detection(18)), (3, detection(19))])
    })
    .await
    .expect("join")
    .expect("the next batch is stored: no poisoned lock");
    assert_eq!(stored.accepted, 2);
    assert!(
        service
            .metrics
            .render()
            .contains("kind=\"detections\",outcome=\"failed_batch\"} 1")
            || service
                .metrics
                .render()
                .contains("outcome=\"failed_batch\",kind=\"detections\"} 1"),
        "the failed batch is counted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_trickling_its_request_head_is_cut_off() {
    let dir = TempDir::new().expect("tmp");
    let service = open_async(settings(dir.path()), Vec::new()).await;
    let base = serve_limited(&service, limits(1_500)).await;
    let addr = base.trim_start_matches("http://").to_owned();
    let outcome = tokio::task::spawn_blocking(move || {
        let mut socket = std::net::TcpStream::connect(&addr).expect("connect");
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        socket
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .expect("request line");
        let started = Instant::now();
        let mut buffer = [0u8; 512];
        // One more header line every 300 ms, never the blank line that ends the head.
        while started.elapsed() < Duration::from_secs(20) {
            if socket.write_all(b"X-Slow: 1\r\n").is_err() {
                return Some(started.elapsed());
            }
            match socket.read(&mut buffer) {
                Ok(0) => return Some(started.elapsed()),
                Ok(_) => return Some(started.elapsed()), // an error answer, then close
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => return Some(started.elapsed()),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    })
    .await
    .expect("join");
    let cut =
        outcome.expect("the server closed the connection of a client that never ends its head");
    println!("slow-header client cut off after {cut:?} (header_read_timeout 1.5 s)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ingest_body_that_stalls_is_answered_408_after_the_idle_limit() {
    let dir = TempDir::new().expect("tmp");
    let mut s = settings(dir.path());
    s.api.body_idle_timeout_ms = 500;
    let service = open_async(s, Vec::new()).await;
    let base = serve_limited(&service, limits(10_000)).await;
    let addr = base.trim_start_matches("http://").to_owned();
    let answer = tokio::task::spawn_blocking(move || {
        let mut socket = std::net::TcpStream::connect(&addr).expect("connect");
        socket
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        // A body announced as 100,000 bytes, of which one line arrives; then nothing.
        let first = format!("{HEADER}\n{}\n", row("2019-11-08"));
        socket
            .write_all(
                format!(
                    "POST /v1/events/firms HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nContent-Length: 100000\r\n\r\n{first}"
                )
                .as_bytes(),
            )
            .expect("head and first chunk");
        let mut answer = Vec::new();
        let mut buffer = [0u8; 4096];
        while let Ok(n) = socket.read(&mut buffer) {
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buffer[..n]);
            if answer.windows(4).any(|w| w == b"\r\n\r\n") && answer.ends_with(b"}") {
                break;
            }
        }
        String::from_utf8_lossy(&answer).into_owned()
    })
    .await
    .expect("join");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"field\":\"body\""), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viirs_in_the_firms_archive_shape_is_accepted_as_viirs() {
    // The shared VIIRS NRT file rewritten in the shape of FIRMS' VIIRS archive downloads
    // (`fire_archive_SV-C2_*.csv`): MODIS column names, `instrument` = VIIRS, a `type` column.
    let nrt = std::fs::read_to_string(shared(
        "firms/SUOMI_VIIRS_C2_USA_contiguous_and_Hawaii_7d.2025-11-05.csv",
    ))
    .expect("VIIRS file");
    let mut lines = nrt.lines();
    let columns: Vec<&str> = lines.next().expect("header").split(',').collect();
    let at = |name: &str| columns.iter().position(|c| *c == name).expect(name);
    let order = [
        "latitude",
        "longitude",
        "bright_ti4",
        "scan",
        "track",
        "acq_date",
        "acq_time",
        "satellite",
    ];
    let mut archive = vec![HEADER.to_owned()];
    let rows: Vec<&str> = lines.take(2_000).collect();
    for line in &rows {
        let cells: Vec<&str> = line.split(',').collect();
        let mut out: Vec<String> = order.iter().map(|c| cells[at(c)].to_owned()).collect();
        out.push("VIIRS".into());
        out.push(
            cells[at("confidence")]
                .chars()
                .next()
                .expect("class")
                .to_string(),
        );
        out.push("2".into());
        out.push(cells[at("bright_ti5")].to_owned());
        out.push(cells[at("frp")].to_owned());
        out.push(cells[at("daynight")].to_owned());
        out.push("0".into());
        archive.push(out.join(","));
    }
    let dir = TempDir::new().expect("tmp");
    let service = open_async(settings(dir.path()), Vec::new()).await;
    let base = serve_limited(&service, limits(10_000)).await;
    let (status, outcome) = post_csv(&base, archive.join("\r\n")).await;
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(
        outcome["accepted"].as_u64(),
        Some(rows.len() as u64),
        "{}",
        outcome["rejected"]
    );
    let page: Value = reqwest::get(format!("{base}/v1/fires?limit=5"))
        .await
        .expect("fires")
        .json()
        .await
        .expect("json");
    for item in page["items"].as_array().expect("items") {
        assert_eq!(item["source"]["instrument"], "VIIRS", "{item}");
    }
}

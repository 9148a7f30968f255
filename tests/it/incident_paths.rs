//! The same incidents whichever way the detections came in: the bundled archive through
//! `--load` and through HTTP gives the same incidents, ids and members, and the same alerts; and
//! the real binary killed with SIGKILL in the middle of an HTTP ingest, restarted and sent
//! everything again, ends with the same incidents and alerts, having lost no alert it had logged.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

use super::support::{
    alert_ids, incident_partition as partition, loaded, repo, sample, serve_all, settings,
};
use firesight::store::Store;
use firesight::tracker::{Alert, Tracker};

async fn post(client: &reqwest::Client, url: &str, body: Vec<u8>) -> Value {
    let response = client
        .post(url)
        .header("content-type", "text/csv")
        .body(body)
        .send()
        .await
        .expect("post");
    assert!(
        response.status().is_success(),
        "{url}: {}",
        response.status()
    );
    response.json().await.expect("outcome")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_ingest_gives_the_incidents_and_alerts_of_a_file_load() {
    let reference = &loaded().service;
    let tracker = Tracker::new(reference.settings.incidents.clone());
    let by_load = partition(&reference.store, &tracker);
    let load_alerts = alert_ids(&reference.store, &tracker);

    let dir = TempDir::new().expect("tmp");
    let service = super::support::open_async(settings(dir.path()), Vec::new()).await;
    let base = serve_all(&service).await;
    let client = reqwest::Client::new();
    post(
        &client,
        &format!("{base}/v1/stations"),
        std::fs::read(sample("australia_bom_weather_stations.csv")).expect("stations"),
    )
    .await;
    post(
        &client,
        &format!("{base}/v1/events/weather"),
        std::fs::read(sample("australia_bom_daily_weather_2019-05_2020-06.csv")).expect("weather"),
    )
    .await;
    let outcome = post(
        &client,
        &format!("{base}/v1/events/firms"),
        std::fs::read(sample("fire_archive_M6_96619.csv")).expect("archive"),
    )
    .await;
    assert_eq!(outcome["accepted"], super::support::ARCHIVE_ROWS);
    let by_http = partition(&service.store, &tracker);
    let http_alerts = alert_ids(&service.store, &tracker);
    println!(
        "--load: {} incidents, {} alerts; HTTP: {} incidents, {} alerts",
        by_load.len(),
        load_alerts.len(),
        by_http.len(),
        http_alerts.len()
    );
    assert!(by_load == by_http, "the same incidents, ids and members");
    let only_load: Vec<&String> = load_alerts.difference(&http_alerts).take(5).collect();
    let only_http: Vec<&String> = http_alerts.difference(&load_alerts).take(5).collect();
    assert!(
        only_load.is_empty() && only_http.is_empty(),
        "the same alerts: only --load {only_load:?}, only HTTP {only_http:?}"
    );
}

/// The real binary on `dir`, serving on `port`, with no files given.
pub(super) fn start(dir: &TempDir, port: u16) -> Child {
    start_on(dir.path(), &dir.path().join("db"), port)
}

/// The real binary with its configuration in `dir` and its store at `store`.
pub(super) fn start_on(dir: &std::path::Path, store: &std::path::Path, port: u16) -> Child {
    let config = dir.join("firesight.toml");
    std::fs::write(
        &config,
        format!(
            "[api]\nlisten = \"127.0.0.1:{port}\"\n[store]\npath = \"{}\"\n[embed]\nmanifest = \"{}\"\n[search]\nenabled = false\n",
            store.display(),
            repo().join("models/manifest.json").display()
        ),
    )
    .expect("config");
    Command::new(env!("CARGO_BIN_EXE_firesight"))
        .args(["--config", config.to_str().expect("utf-8"), "serve"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start firesight serve")
}

pub(super) async fn ready(base: &str, child: &mut Child) {
    let started = Instant::now();
    loop {
        if reqwest::get(format!("{base}/readyz"))
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "not ready in time"
        );
        assert!(child.try_wait().expect("wait").is_none(), "it exited");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn logged_alerts(base: &str) -> Vec<Alert> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(c) => format!("{base}/v1/alerts?limit=1000&cursor={c}"),
            None => format!("{base}/v1/alerts?limit=1000"),
        };
        let page: Value = reqwest::get(url)
            .await
            .expect("alerts")
            .json()
            .await
            .expect("json");
        for item in page["items"].as_array().expect("items") {
            out.push(serde_json::from_value(item.clone()).expect("alert"));
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return out,
        }
    }
}

pub(super) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_mid_ingest_changes_no_incident_and_loses_no_alert() {
    let reference = &loaded().service;
    let tracker = Tracker::new(reference.settings.incidents.clone());
    let expected = partition(&reference.store, &tracker);

    let dir = TempDir::new().expect("tmp");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut child = start(&dir, port);
    ready(&base, &mut child).await;
    for (route, file) in [
        ("stations", "australia_bom_weather_stations.csv"),
        (
            "events/weather",
            "australia_bom_daily_weather_2019-05_2020-06.csv",
        ),
    ] {
        post(
            &client,
            &format!("{base}/v1/{route}"),
            std::fs::read(sample(file)).expect("file"),
        )
        .await;
    }
    // The archive in four files of whole granules (as FIRMS cuts its files); the kill lands
    // while the third is being ingested.
    let text = std::fs::read_to_string(sample("fire_archive_M6_96619.csv")).expect("archive");
    let mut lines = text.lines();
    let header = lines.next().expect("header").to_owned();
    let rows: Vec<&str> = lines.collect();
    let granule = |row: &str| row.split(',').skip(5).take(2).collect::<Vec<_>>().join(" ");
    let mut parts: Vec<Vec<u8>> = Vec::new();
    let mut from = 0;
    while from < rows.len() {
        let mut end = (from + rows.len().div_ceil(4)).min(rows.len());
        while end < rows.len() && granule(rows[end]) == granule(rows[end - 1]) {
            end += 1;
        }
        parts.push(format!("{header}\n{}\n", rows[from..end].join("\n")).into_bytes());
        from = end;
    }
    assert_eq!(parts.len(), 4);
    for part in &parts[..2] {
        post(&client, &format!("{base}/v1/events/firms"), part.clone()).await;
    }
    let before_kill = logged_alerts(&base).await;
    assert!(!before_kill.is_empty(), "half the archive raises alerts");
    let url = format!("{base}/v1/events/firms");
    let third = parts[2].clone();
    let in_flight = tokio::spawn({
        let client = client.clone();
        async move {
            client
                .post(url)
                .header("content-type", "text/csv")
                .body(third)
                .send()
                .await
        }
    });
    // Wait until the third part is being stored, then kill -9.
    let started = Instant::now();
    loop {
        let metrics = reqwest::get(format!("{base}/metrics"))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        let accepted: f64 = metrics
            .lines()
            .find(|l| {
                l.starts_with("firesight_ingest_records_total")
                    && l.contains("kind=\"firms\"")
                    && l.contains("outcome=\"accepted\"")
            })
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0.0);
        if accepted > (rows.len() / 2) as f64 || started.elapsed() > Duration::from_secs(60) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let killed = Command::new("sh")
        .args(["-c", &format!("kill -KILL {}", child.id())])
        .status()
        .expect("kill -KILL");
    assert!(killed.success());
    let _ = child.wait();
    // The in-flight request dies with the process (or had just been answered): either is fine.
    let _ = in_flight.await;

    // Restart on the same store; every alert logged before the kill is still there, unchanged.
    let mut child = start(&dir, port);
    ready(&base, &mut child).await;
    let after_restart = logged_alerts(&base).await;
    let kept: BTreeMap<u64, &Alert> = after_restart.iter().map(|a| (a.seq, a)).collect();
    for alert in &before_kill {
        assert_eq!(
            kept.get(&alert.seq),
            Some(&alert),
            "alert {} kept as it was",
            alert.seq
        );
    }
    // Send everything again (ids come from content: what was stored is a duplicate).
    for part in &parts {
        post(&client, &format!("{base}/v1/events/firms"), part.clone()).await;
    }
    let terminated = Command::new("sh")
        .args(["-c", &format!("kill -TERM {}", child.id())])
        .status()
        .expect("kill -TERM");
    assert!(terminated.success());
    let _ = child.wait();

    let store = Store::open(&dir.path().join("db")).expect("store");
    let got = partition(&store, &tracker);
    assert!(
        got == expected,
        "the same incidents, ids and members, after a kill -9"
    );
    let alerts = alert_ids(&store, &tracker);
    let reference_alerts = alert_ids(&reference.store, &tracker);
    println!(
        "SIGKILL drill: {} alerts before the kill, {} after the restart, {} at the end ({} in the uncrashed load)",
        before_kill.len(),
        after_restart.len(),
        alerts.len(),
        reference_alerts.len()
    );
    assert_eq!(store.event_count(), super::support::ARCHIVE_ROWS);
    // Batches never split a granule and alerts are evaluated per granule, so the crashed and
    // re-sent run raised exactly the alerts of the uncrashed one.
    let only_crashed: Vec<&String> = alerts.difference(&reference_alerts).take(5).collect();
    let only_reference: Vec<&String> = reference_alerts.difference(&alerts).take(5).collect();
    assert!(
        only_crashed.is_empty() && only_reference.is_empty(),
        "the same alerts as the uncrashed load: only after the crash {only_crashed:?}, only uncrashed {only_reference:?}"
    );
}

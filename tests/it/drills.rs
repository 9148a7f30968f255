//! Crash drills against the real binary, with the seed printed so a failure can be replayed.
//! CI runs a short version; a long one is the same test with more iterations:
//!
//! ```sh
//! FIRESIGHT_DRILL_ITERATIONS=100 FIRESIGHT_DRILL_SEED=$RANDOM cargo test --test it drills:: -- --nocapture
//! ```

use std::collections::{BTreeSet, HashSet};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use firesight::event::FireDetection;
use firesight::stream::decode::FirmsDecoder;
use serde_json::Value;
use tempfile::TempDir;

use super::incident_paths::{free_port, ready, start};
use super::support::{decode_file, get_json, sample};

/// Rows per POST: a small batch, so a kill lands between acknowledgements as well as inside one.
const ROWS_PER_POST: usize = 150;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The bundled archive: its header line, its rows, and each row's detection.
struct Archive {
    header: String,
    rows: Vec<String>,
    detections: Vec<FireDetection>,
}

impl Archive {
    fn load() -> Self {
        let path = sample("fire_archive_M6_96619.csv");
        let text = std::fs::read_to_string(&path).expect("archive");
        let mut lines = text.lines().map(str::to_owned);
        let header = lines.next().expect("header");
        let rows: Vec<String> = lines.collect();
        let detections: Vec<FireDetection> = decode_file::<FirmsDecoder>(&path)
            .into_iter()
            .map(|d| d.expect("the archive decodes").1)
            .collect();
        assert_eq!(rows.len(), detections.len());
        Self {
            header,
            rows,
            detections,
        }
    }
}

/// A fixed-seed generator (the same moments for the same seed).
struct Moments(u64);

impl Moments {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

/// Every stored event id, through the API's pages.
async fn stored_ids(client: &reqwest::Client, base: &str) -> HashSet<String> {
    let mut out = HashSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(c) => format!("{base}/v1/fires?limit=1000&cursor={c}"),
            None => format!("{base}/v1/fires?limit=1000"),
        };
        let page: Value = client
            .get(url)
            .send()
            .await
            .expect("fires")
            .json()
            .await
            .expect("json");
        for item in page["items"].as_array().expect("items") {
            out.insert(item["event_id"].as_str().expect("event_id").to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return out,
        }
    }
}

/// A gauge from `/metrics`.
async fn gauge(client: &reqwest::Client, base: &str, name: &str) -> u64 {
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    text.lines()
        .find(|l| l.split(' ').next() == Some(name))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("{name} is not in /metrics")) as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_moments_during_http_ingest_loses_no_acknowledged_detection() {
    let iterations: usize = env_or("FIRESIGHT_DRILL_ITERATIONS", 4);
    let seed: u64 = env_or("FIRESIGHT_DRILL_SEED", 0x5eed_d811);
    eprintln!("HTTP kill -9 drill: {iterations} iterations, FIRESIGHT_DRILL_SEED={seed}");
    let mut moments = Moments(seed);

    // The archive in posts of ROWS_PER_POST rows, each with the ids of its detections.
    let Archive {
        header,
        rows,
        detections,
    } = Archive::load();
    let posts: Vec<(Vec<u8>, Vec<String>)> = rows
        .chunks(ROWS_PER_POST)
        .zip(detections.chunks(ROWS_PER_POST))
        .map(|(rows, detections)| {
            (
                format!("{header}\n{}\n", rows.join("\n")).into_bytes(),
                detections.iter().map(FireDetection::event_id).collect(),
            )
        })
        .collect();

    let dir = TempDir::new().expect("tmp");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client");
    // Acknowledged ids, and the next post to send.
    let acked = Arc::new(Mutex::new((BTreeSet::<String>::new(), 0usize)));
    let mut recoveries = Vec::new();
    for iteration in 0..=iterations {
        let started = Instant::now();
        let mut child = start(&dir, port);
        ready(&base, &mut child).await;
        recoveries.push(started.elapsed());
        // Everything acknowledged before the kill is there, and indexed.
        let stored = stored_ids(&client, &base).await;
        let (wanted, next) = {
            let acked = acked.lock().expect("acked");
            (acked.0.clone(), acked.1)
        };
        let lost: Vec<&String> = wanted.iter().filter(|id| !stored.contains(*id)).collect();
        assert!(
            lost.is_empty(),
            "iteration {iteration} (seed {seed}): {} acknowledged detections lost, e.g. {:?}",
            lost.len(),
            &lost[..lost.len().min(3)]
        );
        let (events, vectors) = (
            gauge(&client, &base, "firesight_store_events").await,
            gauge(&client, &base, "firesight_index_vectors").await,
        );
        assert_eq!(events, stored.len() as u64, "the event count is the events");
        assert_eq!(
            vectors, events,
            "iteration {iteration} (seed {seed}): index size equals store size"
        );
        if iteration == iterations {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
            eprintln!(
                "{iterations} kills: {} acknowledged detections, {} stored, none lost; \
                 {next} of {} posts acknowledged; restart to ready {:?} (slowest)",
                wanted.len(),
                stored.len(),
                posts.len(),
                recoveries.iter().max().expect("recoveries")
            );
            break;
        }
        // Post from the first unacknowledged batch on, then kill -9 at a random moment.
        let poster = tokio::spawn({
            let (client, acked, base, posts) = (
                client.clone(),
                Arc::clone(&acked),
                base.clone(),
                posts.clone(),
            );
            async move {
                for (i, (body, ids)) in posts.iter().enumerate().skip(next) {
                    let Ok(response) = client
                        .post(format!("{base}/v1/events/firms"))
                        .header("content-type", "text/csv")
                        .body(body.clone())
                        .send()
                        .await
                    else {
                        return;
                    };
                    if !response.status().is_success() {
                        return;
                    }
                    let Ok(outcome) = response.json::<Value>().await else {
                        return;
                    };
                    let counted = outcome["accepted"].as_u64().unwrap_or(0)
                        + outcome["duplicates"].as_u64().unwrap_or(0);
                    assert_eq!(counted, ids.len() as u64, "post {i}: {outcome}");
                    let mut acked = acked.lock().expect("acked");
                    acked.0.extend(ids.iter().cloned());
                    acked.1 = i + 1;
                }
            }
        });
        tokio::time::sleep(Duration::from_millis(50 + moments.below(1_500))).await;
        let killed = Command::new("kill")
            .args(["-KILL", &child.id().to_string()])
            .status()
            .expect("kill -KILL");
        assert!(killed.success());
        let _ = child.wait();
        poster.await.expect("the poster does not panic");
    }
}

/// A tmpfs of `size` mounted at `at` for the test's life (root, or sudo without a password).
struct Volume(std::path::PathBuf);

fn privileged(args: &[&str]) -> std::process::ExitStatus {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    let mut command = if root {
        Command::new(args[0])
    } else {
        let mut sudo = Command::new("sudo");
        sudo.args(["-n", args[0]]);
        sudo
    };
    command
        .args(&args[1..])
        .status()
        .expect("run a mount command")
}

impl Volume {
    fn mount(at: &std::path::Path, size: &str) -> Self {
        std::fs::create_dir_all(at).expect("mount point");
        let status = privileged(&[
            "mount",
            "-t",
            "tmpfs",
            "-o",
            &format!("size={size}"),
            "tmpfs",
            at.to_str().expect("utf-8"),
        ]);
        assert!(
            status.success(),
            "mounting a tmpfs needs root or password-less sudo (the disk-full drill's volume)"
        );
        Self(at.to_path_buf())
    }

    fn resize(&self, size: &str) {
        let status = privileged(&[
            "mount",
            "-o",
            &format!("remount,size={size}"),
            self.0.to_str().expect("utf-8"),
        ]);
        assert!(status.success(), "remount");
    }
}

impl Drop for Volume {
    fn drop(&mut self) {
        let _ = privileged(&["umount", "-l", self.0.to_str().unwrap_or_default()]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_ingest_clearly_loses_nothing_acknowledged_and_recovers() {
    let dir = TempDir::new().expect("tmp");
    let volume = Volume::mount(&dir.path().join("volume"), "24m");
    let store = volume.0.join("db");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client");
    let mut child = super::incident_paths::start_on(dir.path(), &store, port);
    ready(&base, &mut child).await;

    let Archive {
        header,
        rows,
        detections,
    } = Archive::load();
    let post = |i: usize| {
        let (client, base) = (client.clone(), base.clone());
        let body = format!(
            "{header}\n{}\n",
            rows[i * 500..((i + 1) * 500).min(rows.len())].join("\n")
        );
        async move {
            client
                .post(format!("{base}/v1/events/firms"))
                .header("content-type", "text/csv")
                .body(body)
                .send()
                .await
                .expect("an answer, not a dropped connection")
        }
    };
    // Fill the volume: post until the store refuses.
    let mut acked = 0;
    let refusal = loop {
        assert!(acked * 500 < rows.len(), "the volume never filled");
        let response = post(acked).await;
        if response.status().is_success() {
            acked += 1;
            continue;
        }
        break response;
    };
    assert_eq!(refusal.status().as_u16(), 507, "Insufficient Storage");
    let body: Value = refusal.json().await.expect("json");
    assert_eq!(body["error"]["field"], "store", "{body}");
    assert!(
        body["error"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("volume is full")),
        "{body}"
    );
    let (_, readyz) = get_json(&format!("{base}/readyz")).await;
    assert!(readyz["store_write_failure"].is_string(), "{readyz}");
    // Reads go on while writes are refused.
    let wanted: HashSet<String> = detections[..acked * 500]
        .iter()
        .map(FireDetection::event_id)
        .collect();
    let stored = stored_ids(&client, &base).await;
    assert!(
        wanted.is_subset(&stored),
        "every acknowledged detection readable"
    );

    // Space returns: ingest works again without a restart.
    volume.resize("512m");
    let returned = Instant::now();
    let mut next = acked;
    while next * 500 < rows.len() {
        let response = post(next).await;
        if response.status().is_success() {
            next += 1;
            continue;
        }
        assert!(
            returned.elapsed() < Duration::from_secs(60),
            "still refused a minute after space returned: {}",
            response.text().await.unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let recovered = returned.elapsed();
    let stored = stored_ids(&client, &base).await;
    assert_eq!(stored.len(), detections.len(), "the whole archive, once");
    let (events, vectors) = (
        gauge(&client, &base, "firesight_store_events").await,
        gauge(&client, &base, "firesight_index_vectors").await,
    );
    assert_eq!(
        (events, vectors),
        (stored.len() as u64, stored.len() as u64)
    );
    let (_, readyz) = get_json(&format!("{base}/readyz")).await;
    assert!(readyz.get("store_write_failure").is_none(), "{readyz}");
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    eprintln!(
        "disk-full drill: {} detections acknowledged before the 24 MiB volume filled, refused \
         with 507, ingest again {recovered:?} after it grew",
        acked * 500
    );
}

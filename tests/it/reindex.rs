//! The re-index job: a switch of spaces under live queries and ingest, and a run killed with
//! SIGKILL that resumes and completes.
//!
//! There is one trained event encoder so far, so the "new" model is the same file registered
//! again under version `1b`: the job's mechanics (re-embedding, the new space, the switch, the
//! checkpoints) are what these tests exercise, not a change of vectors.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use firesight::app::Service;
use firesight::config::Settings;
use firesight::lifecycle::META_ACTIVE_MODEL;
use firesight::reindex::{checkpoint, reindex};
use firesight::store::Store;

use super::support::{ARCHIVE_ROWS, repo, sample_files, settings, shared};

pub(super) const OLD: &str = "event-encoder@1";
pub(super) const NEW: &str = "event-encoder@1b";

/// A manifest beside a copy of the encoder that lists it twice: versions `1` and `1b`.
fn two_version_manifest(dir: &Path) -> PathBuf {
    let models = repo().join("models");
    std::fs::copy(
        models.join("event_encoder.onnx"),
        dir.join("event_encoder.onnx"),
    )
    .expect("copy model");
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(models.join("manifest.json")).expect("manifest"))
            .expect("json");
    let entries = manifest["models"].as_array_mut().expect("models");
    // Only the encoder is copied here: the other models stay out of this manifest.
    entries.retain(|e| e["name"] == "event-encoder" && e["version"] == "1");
    let mut again = entries[0].clone();
    again["version"] = "1b".into();
    entries.push(again);
    let path = dir.join("manifest.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&manifest).expect("encode")).expect("write");
    path
}

pub(super) fn two_model_settings(dir: &Path) -> Settings {
    let mut s = settings(dir);
    s.embed.manifest = two_version_manifest(dir);
    s.embed.model = OLD.to_owned();
    s.embed.predictors = Vec::new();
    // Only the encoder is in this manifest.
    s.incidents.outlook_model.clear();
    s.search.enabled = false;
    s
}

#[test]
fn reindex_switches_spaces_while_queries_and_ingest_go_on() {
    let dir = tempfile::TempDir::new().expect("tempdir");
    let service = Arc::new(
        Service::open(two_model_settings(dir.path()), &sample_files(), false).expect("open"),
    );
    let probes: Vec<Vec<f32>> = service
        .store
        .vectors()
        .expect("vectors")
        .step_by(997)
        .map(|v| v.expect("vector").vector)
        .collect();
    let done = Arc::new(AtomicBool::new(false));
    let report = std::thread::scope(|s| {
        let queries = {
            let (service, done, probes) = (Arc::clone(&service), Arc::clone(&done), &probes);
            s.spawn(move || {
                let (mut asked, mut models) = (0usize, std::collections::BTreeSet::new());
                while !done.load(Ordering::Acquire) || asked == 0 {
                    let space = service.pipeline.space();
                    let hits = space
                        .index
                        .search(&probes[asked % probes.len()], 10)
                        .expect("a query during the re-index");
                    assert_eq!(hits.len(), 10, "a full answer during the re-index");
                    models.insert(space.embedder.model_version().to_owned());
                    asked += 1;
                }
                (asked, models)
            })
        };
        let ingest = {
            let service = Arc::clone(&service);
            s.spawn(move || {
                service
                    .load(
                        &[shared(
                            "firms/MODIS_C6_USA_contiguous_and_Hawaii_24h.2020-10-01.csv",
                        )],
                        false,
                    )
                    .expect("ingest during the re-index")
            })
        };
        let report = reindex(&service.lifecycle, NEW, false).expect("re-index");
        ingest.join().expect("ingest thread");
        done.store(true, Ordering::Release);
        let (asked, models) = queries.join().expect("query thread");
        assert!(asked > 10, "only {asked} queries ran");
        assert!(
            models.contains(NEW),
            "queries saw the new space: {models:?}"
        );
        report
    });
    assert_eq!(report.model, NEW);
    assert_eq!(report.resumed_from, 0);
    let events = service.store.event_count();
    assert!(
        events > ARCHIVE_ROWS + 2000,
        "the US file was ingested: {events}"
    );
    // Events ingested during the job were embedded by it (caught up at the switch) or, after
    // the switch, by the new encoder; either way the new space holds every event.
    assert_eq!(service.index().len() as u64, events);
    assert_eq!(service.embedder().model_version(), NEW);
    for seq in [0, ARCHIVE_ROWS - 1, events - 1] {
        let v = service
            .store
            .vector(seq, NEW)
            .expect("read")
            .expect("a vector of the new model");
        assert_eq!(v.model_version, NEW);
    }
    assert_eq!(
        service
            .store
            .meta(META_ACTIVE_MODEL)
            .expect("meta")
            .as_deref(),
        Some(NEW.as_bytes())
    );
    assert!(
        checkpoint(&service.store, NEW)
            .expect("checkpoint")
            .is_none(),
        "cleared when done"
    );
    // The choice outlives a restart, whatever the configuration names.
    drop(service);
    let reopened = Service::open(two_model_settings(dir.path()), &[], false).expect("reopen");
    assert_eq!(reopened.embedder().model_version(), NEW);
    assert_eq!(reopened.index().len() as u64, events);
}

#[test]
fn a_reindex_killed_mid_way_resumes_and_completes() {
    let dir = tempfile::TempDir::new().expect("tempdir");
    let settings = two_model_settings(dir.path());
    drop(Service::open(settings.clone(), &sample_files(), false).expect("load the sample"));
    let config = dir.path().join("firesight.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\npath = {:?}\n[embed]\nmanifest = {:?}\nmodel = {OLD:?}\npredictors = []\n\
             [index]\nbuild_threads = 1\n[search]\nenabled = false\n\
             [incidents]\noutlook_model = \"\"\n",
            settings.store.path, settings.embed.manifest
        ),
    )
    .expect("config");
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_firesight"))
            .args([
                "--config",
                config.to_str().expect("utf-8"),
                "reindex",
                "--model",
                NEW,
            ])
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start firesight reindex")
    };
    let mut first = run();
    let stderr = BufReader::new(first.stderr.take().expect("stderr"));
    let mut progress = 0;
    for line in stderr.lines() {
        if line.expect("log line").contains("Re-index progress.") {
            progress += 1;
            if progress == 3 {
                first.kill().expect("SIGKILL");
                break;
            }
        }
    }
    first.wait().expect("reaped");
    assert_eq!(
        progress, 3,
        "the first run got three chunks in before the kill"
    );
    let stopped_at = {
        let store = Store::open(&settings.store.path).expect("store after the kill");
        assert!(
            store.meta(META_ACTIVE_MODEL).expect("meta").is_none(),
            "killed before the switch"
        );
        checkpoint(&store, NEW)
            .expect("checkpoint")
            .expect("a checkpoint survives the kill")
    };
    assert!(
        (3 * 2048..ARCHIVE_ROWS).contains(&stopped_at),
        "stopped at {stopped_at}"
    );
    let second = run().wait_with_output().expect("second run");
    let stdout = String::from_utf8_lossy(&second.stdout);
    assert!(
        second.status.success(),
        "second run failed: {}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert!(
        stdout.contains(&format!("resumed from {stopped_at}")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("re-indexed {} events", ARCHIVE_ROWS - stopped_at)),
        "{stdout}"
    );
    let service = Service::open(settings, &[], false).expect("reopen");
    assert_eq!(service.embedder().model_version(), NEW);
    assert_eq!(service.index().len() as u64, ARCHIVE_ROWS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_route_reindexes_a_running_service() {
    let dir = tempfile::TempDir::new().expect("tempdir");
    let settings = two_model_settings(dir.path());
    let service = super::support::open_async(settings, sample_files()).await;
    let base = super::support::serve_all(&service).await;
    let client = reqwest::Client::new();
    let post = |body: serde_json::Value| {
        client
            .post(format!("{base}/v1/admin/reindex"))
            .json(&body)
            .send()
    };

    let unknown = post(serde_json::json!({"model": "event-encoder@9"}))
        .await
        .expect("post");
    assert_eq!(unknown.status(), 404);
    let body: serde_json::Value = unknown.json().await.expect("json");
    assert_eq!(body["error"]["code"], "not_found");
    assert_eq!(
        post(serde_json::json!({"model": OLD}))
            .await
            .expect("post")
            .status(),
        409,
        "already serving"
    );

    let started = post(serde_json::json!({"model": NEW})).await.expect("post");
    assert_eq!(started.status(), 202);
    let second = post(serde_json::json!({"model": NEW})).await.expect("post");
    let second_status = second.status();
    let state = loop {
        let status: serde_json::Value = client
            .get(format!("{base}/v1/admin/reindex"))
            .send()
            .await
            .expect("status")
            .json()
            .await
            .expect("json");
        // Queries answer throughout.
        let similar = client
            .get(format!("{base}/v1/fires?limit=1"))
            .send()
            .await
            .expect("list");
        assert_eq!(similar.status(), 200);
        if status["state"] != "running" {
            break status;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    // A second start while the first ran is refused; if the first had already finished, the
    // second was refused as "already serving".
    assert!(
        second_status == 409 || second_status == 400,
        "{second_status}"
    );
    assert_eq!(state["state"], "done", "{state}");
    assert_eq!(state["model"], NEW);
    let ready: serde_json::Value = client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .expect("readyz")
        .json()
        .await
        .expect("json");
    assert_eq!(ready["model_version"], NEW);
    assert_eq!(ready["indexed"], ARCHIVE_ROWS);
}

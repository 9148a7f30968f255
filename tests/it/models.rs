//! The model registry, the predictors, the event encoder v2 and `POST /v1/predict`.

use std::collections::HashMap;

use firesight::embed::{
    Embedder, FEATURE_COUNT, IncidentOutlook, Manifest, OnnxEmbedder, Predictors, event_features,
};
use firesight::event::FireEventV2;
use firesight::tracker::outlook::{OUTLOOK_FEATURE_NAMES, OUTLOOK_FEATURES};
use serde_json::{Value, json};

use super::golden::event_from;
use super::support::{loaded, repo, serve_all};

fn manifest_path() -> std::path::PathBuf {
    repo().join("models/manifest.json")
}

/// The registered predictors, both versions of fire danger.
fn predictors() -> Predictors {
    let names = [
        "fire-danger@1",
        "fire-danger@2",
        "growth-outlook",
        "anomaly",
    ]
    .map(str::to_owned);
    Predictors::load(&manifest_path(), &names, "", 1).expect("predictors load")
}

#[test]
fn every_registered_model_matches_its_digest_and_declares_its_contract() {
    let manifest = Manifest::load(&manifest_path()).expect("manifest");
    let kinds: Vec<&str> = manifest.models.iter().map(|m| m.kind.as_str()).collect();
    for kind in ["event-encoder", "predictor", "sentence-encoder"] {
        assert!(kinds.contains(&kind), "no {kind} registered: {kinds:?}");
    }
    for entry in &manifest.models {
        manifest
            .verified_bytes(entry)
            .unwrap_or_else(|e| panic!("{}@{}: {e}", entry.name, entry.version));
        assert!(entry.output_dim > 0 && !entry.normalisation.is_empty());
        if entry.kind == "predictor" {
            assert!(
                entry.prediction.is_some(),
                "{} names no prediction",
                entry.name
            );
        }
    }
}

#[test]
fn predictions_match_the_training_script() {
    let text = std::fs::read_to_string(repo().join("models/fixtures/predictions_golden.json"))
        .expect("fixture");
    let golden: Value = serde_json::from_str(&text).expect("json");
    let events: Vec<FireEventV2> = golden["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(event_from)
        .collect();
    let rows: Vec<[f32; FEATURE_COUNT]> = events.iter().map(event_features).collect();
    let predictors = predictors();
    let got = predictors.predict(&events, &rows).expect("predicts");
    let by_model = |row: usize, model: &str, version: &str| {
        got[row]
            .iter()
            .find(|p| p.model == model && p.version == version)
            .map(|p| p.value)
    };
    let mut compared = 0;
    for (version, rows_want) in golden["models"].as_object().expect("models") {
        let (model, number) = version.split_once('@').expect("name@version");
        if model == "event-encoder" {
            let encoder = OnnxEmbedder::load(&manifest_path(), version, "", 1).expect("v2 loads");
            let vectors = encoder.embed(&rows).expect("embeds");
            for (v, want) in vectors.iter().zip(rows_want.as_array().expect("rows")) {
                let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                assert!(
                    (norm - 1.0).abs() < 1e-4,
                    "v2 vectors are unit length: {norm}"
                );
                for (a, b) in v.iter().zip(want.as_array().expect("row")) {
                    assert!((f64::from(*a) - b.as_f64().expect("f64")).abs() < 1e-4);
                }
            }
            continue;
        }
        for (row, want) in rows_want.as_array().expect("rows").iter().enumerate() {
            let want = want[0].as_f64();
            let have = by_model(row, model, number);
            match (want, have) {
                (Some(w), Some(h)) => {
                    assert!((w - h).abs() < 1e-4, "{model} row {row}: {h} vs {w}")
                }
                (None, None) => {}
                other => {
                    panic!("{model} row {row}: python and rust disagree on presence: {other:?}")
                }
            }
            compared += 1;
        }
    }
    assert_eq!(compared, 4 * events.len());
    // Fire danger needs weather: absent (not guessed) for the events that have none. Version 2
    // reads the Fire Weather Index codes where the event has them (the first), and is version
    // 1 where it has weather without them (the second).
    for (event, row) in events.iter().zip(0..) {
        for version in ["1", "2"] {
            assert_eq!(
                by_model(row, "fire-danger", version).is_some(),
                event.weather_conditions.is_some()
            );
        }
    }
    let coded = |e: &FireEventV2| {
        e.weather_conditions
            .as_ref()
            .is_some_and(|w| w.fire_weather.is_some())
    };
    assert!(coded(&events[0]) && !coded(&events[1]) && events[1].weather_conditions.is_some());
    assert_ne!(
        by_model(0, "fire-danger", "2"),
        by_model(0, "fire-danger", "1")
    );
    assert_eq!(
        by_model(1, "fire-danger", "2"),
        by_model(1, "fire-danger", "1")
    );
}

/// Every event of the shared loaded sample, with its feature row.
fn stored_events_and_rows() -> (Vec<FireEventV2>, Vec<[f32; FEATURE_COUNT]>) {
    let events: Vec<FireEventV2> = loaded()
        .service
        .store
        .events_between(i64::MIN, i64::MAX)
        .expect("events")
        .collect::<Result<_, _>>()
        .expect("read");
    let rows = events.iter().map(event_features).collect();
    (events, rows)
}

/// A stream consumer restarted after a crash batches the same events differently; each event's
/// predictions must not change with it, down to the bit (the crash test compares stores).
#[test]
fn each_prediction_is_the_same_whatever_batch_the_event_is_in() {
    let (events, rows) = stored_events_and_rows();
    let predictors = predictors();
    let bits = |size: usize| -> Vec<Vec<(String, String, u64)>> {
        events
            .chunks(size)
            .zip(rows.chunks(size))
            .flat_map(|(events, rows)| predictors.predict(events, rows).expect("predicts"))
            .map(|row| {
                row.into_iter()
                    .map(|p| (p.model, p.version, p.value.to_bits()))
                    .collect()
            })
            .collect()
    };
    let alone = bits(1);
    for size in [7, 256, rows.len()] {
        let batched = bits(size);
        let differing = (0..rows.len()).filter(|&i| alone[i] != batched[i]).count();
        assert_eq!(
            differing,
            0,
            "{differing} of {} events predicted differently in batches of {size} than alone",
            rows.len()
        );
    }
}

/// Same-incident precision@10 on the held-out period, as the model card reports it: v2 must
/// beat standardised raw features by a wide margin there.
#[test]
fn encoder_v2_groups_detections_of_one_incident() {
    let service = &loaded().service;
    let held_out_from = chrono::NaiveDate::from_ymd_opt(2019, 9, 21)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .expect("date")
        .and_utc()
        .timestamp_millis();
    let events: Vec<FireEventV2> = service
        .store
        .events_between(held_out_from, i64::MAX)
        .expect("events")
        .collect::<Result<_, _>>()
        .expect("read");
    assert!(events.len() > 4_000, "{} held-out events", events.len());
    let labels = incident_labels(&events);
    let rows: Vec<[f32; FEATURE_COUNT]> = events.iter().map(event_features).collect();
    let encoder = OnnxEmbedder::load(&manifest_path(), "event-encoder@2", "", 1).expect("v2");
    let v2 = encoder.embed(&rows).expect("embeds");
    let raw = standardised(&rows);
    let (p_v2, queries) = precision_at_10(&v2, &labels);
    let (p_raw, _) = precision_at_10(&raw, &labels);
    println!(
        "held-out same-incident P@10 over {queries} queries: v2 {p_v2:.3}, raw features {p_raw:.3}"
    );
    assert!(queries > 1_000);
    assert!(p_v2 > p_raw + 0.3, "v2 {p_v2:.3} vs raw {p_raw:.3}");
}

/// 3 km / 24 h chains, as the training script and `/v1/incidents` define them.
fn incident_labels(events: &[FireEventV2]) -> Vec<usize> {
    let n = events.len();
    let mut parent: Vec<usize> = (0..n).collect();
    fn find(p: &mut [usize], mut i: usize) -> usize {
        while p[i] != i {
            p[i] = p[p[i]];
            i = p[i];
        }
        i
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| events[i].detection_time);
    let mut start = 0;
    for a_pos in 0..n {
        let a = order[a_pos];
        while events[order[start]].detection_time < events[a].detection_time - 24 * 3_600_000 {
            start += 1;
        }
        for &b in &order[start..a_pos] {
            let (ea, eb) = (&events[a].location, &events[b].location);
            if firesight::geo::distance_km(ea.latitude, ea.longitude, eb.latitude, eb.longitude)
                <= 3.0
            {
                let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
                if ra != rb {
                    parent[ra.max(rb)] = ra.min(rb);
                }
            }
        }
    }
    (0..n).map(|i| find(&mut parent, i)).collect()
}

fn standardised(rows: &[[f32; FEATURE_COUNT]]) -> Vec<Vec<f32>> {
    let mut mean = [0f64; FEATURE_COUNT];
    let mut sq = [0f64; FEATURE_COUNT];
    let mut count = [0f64; FEATURE_COUNT];
    for r in rows {
        for (j, v) in r.iter().enumerate() {
            if v.is_finite() {
                mean[j] += f64::from(*v);
                sq[j] += f64::from(*v) * f64::from(*v);
                count[j] += 1.0;
            }
        }
    }
    let stats: Vec<(f64, f64)> = (0..FEATURE_COUNT)
        .map(|j| {
            let m = mean[j] / count[j].max(1.0);
            let sd = (sq[j] / count[j].max(1.0) - m * m).max(0.0).sqrt();
            (m, if sd < 1e-6 { 1.0 } else { sd })
        })
        .collect();
    rows.iter()
        .map(|r| {
            r.iter()
                .zip(&stats)
                .map(|(v, (m, sd))| {
                    if v.is_finite() {
                        ((f64::from(*v) - m) / sd) as f32
                    } else {
                        0.0
                    }
                })
                .collect()
        })
        .collect()
}

fn precision_at_10(vectors: &[Vec<f32>], labels: &[usize]) -> (f64, usize) {
    let mut sizes: HashMap<usize, usize> = HashMap::new();
    labels
        .iter()
        .for_each(|l| *sizes.entry(*l).or_default() += 1);
    let mut total = 0.0;
    let mut queries = 0;
    for (q, v) in vectors.iter().enumerate() {
        if sizes[&labels[q]] < 11 {
            continue;
        }
        let mut d: Vec<(f32, usize)> = vectors
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != q)
            .map(|(i, w)| (v.iter().zip(w).map(|(a, b)| (a - b) * (a - b)).sum(), i))
            .collect();
        d.select_nth_unstable_by(9, |a, b| a.0.total_cmp(&b.0));
        total += d[..10]
            .iter()
            .filter(|(_, i)| labels[*i] == labels[q])
            .count() as f64
            / 10.0;
        queries += 1;
    }
    (total / queries.max(1) as f64, queries)
}

#[test]
fn the_growth_outlook_matches_the_training_script_and_refuses_a_predictor() {
    let text = std::fs::read_to_string(repo().join("models/fixtures/outlook_golden.json"))
        .expect("fixture");
    let golden: Value = serde_json::from_str(&text).expect("json");
    let names: Vec<&str> = golden["feature_names"]
        .as_array()
        .expect("names")
        .iter()
        .map(|v| v.as_str().expect("name"))
        .collect();
    assert_eq!(
        names, OUTLOOK_FEATURE_NAMES,
        "the rows the model was trained on"
    );
    let rows: Vec<[f32; OUTLOOK_FEATURES]> = golden["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|row| {
            let mut out = [f32::NAN; OUTLOOK_FEATURES];
            for (slot, v) in out.iter_mut().zip(row.as_array().expect("row")) {
                if let Some(v) = v.as_f64() {
                    *slot = v as f32;
                }
            }
            out
        })
        .collect();
    assert!(rows.len() >= 4 && rows.iter().any(|r| r.iter().any(|v| v.is_nan())));
    let model =
        IncidentOutlook::load::<OUTLOOK_FEATURES>(&manifest_path(), "growth-outlook", "", 1)
            .expect("outlook loads");
    assert_eq!((model.name(), model.version()), ("growth-outlook", "2"));
    let got = model.predict(&rows).expect("predict");
    let want = golden["predictions"].as_array().expect("predictions");
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        let w = w.as_f64().expect("number");
        assert!((f64::from(*g) - w).abs() < 1e-5, "rust {g} python {w}");
    }
    // A bare name resolves within its kind: the per-detection predictor stays loadable by name,
    // and a predictor cannot be loaded as the incident model.
    let v1 = Predictors::load(&manifest_path(), &["growth-outlook".to_owned()], "", 1)
        .expect("the per-detection growth-outlook still loads by its bare name");
    assert_eq!(v1.versions(), ["growth-outlook@1"]);
    let err =
        IncidentOutlook::load::<OUTLOOK_FEATURES>(&manifest_path(), "growth-outlook@1", "", 1)
            .err()
            .expect("a predictor is not an incident model")
            .to_string();
    assert!(err.contains("not a incident-predictor"), "{err}");
}

#[test]
fn every_stored_event_carries_the_predictions_of_the_registered_models() {
    let service = &loaded().service;
    let mut seen = 0;
    let mut with_weather = 0;
    for event in service
        .store
        .events_between(i64::MIN, i64::MAX)
        .expect("events")
        .step_by(101)
    {
        let event = event.expect("event");
        let predictions = event
            .ml_predictions
            .as_ref()
            .expect("ml_predictions present");
        let value = |name: &str| predictions.iter().find(|p| p.name == name).map(|p| p.value);
        for name in ["p_growth_24h", "anomaly_score"] {
            let v = value(name).unwrap_or_else(|| panic!("{} lacks {name}", event.event_id));
            assert!((0.0..=1.0).contains(&v), "{name} = {v}");
        }
        // The growth outlook is its incident's, from the incident model.
        let growth = predictions
            .iter()
            .find(|p| p.name == "p_growth_24h")
            .expect("p_growth_24h");
        assert_eq!(
            (growth.model.as_str(), growth.version.as_str()),
            ("growth-outlook", "2")
        );
        assert!(event.correlation_id.is_some());
        assert_eq!(
            value("p_fire").is_some(),
            event.weather_conditions.is_some()
        );
        assert!(
            predictions
                .iter()
                .all(|p| !p.model.is_empty() && !p.version.is_empty())
        );
        with_weather += usize::from(event.weather_conditions.is_some());
        seen += 1;
    }
    assert!(
        seen > 300 && with_weather > 20,
        "{seen} events, {with_weather} with weather"
    );
}

#[tokio::test]
async fn predict_answers_for_an_ad_hoc_event_and_names_bad_fields() {
    let base = serve_all(&loaded().service).await;
    let client = reqwest::Client::new();
    let detection = json!({
        "latitude": -37.6, "longitude": 149.3, "acquired_at": "2019-09-10T03:40:00Z",
        "brightness_k": 340.2, "brightness_background_k": 301.5, "frp_mw": 85.0,
        "scan_km": 1.1, "track_km": 1.0, "satellite": "Aqua", "instrument": "MODIS",
        "confidence": "high", "confidence_percent": 92.0, "version": "6.3", "daytime": true
    });
    let post = |body: Value| {
        let client = client.clone();
        let url = format!("{base}/v1/predict");
        async move {
            let r = client.post(url).json(&body).send().await.expect("send");
            let status = r.status();
            (status, r.json::<Value>().await.expect("json"))
        }
    };
    let dry = json!({"max_temp_c": 36.0, "rh_3pm_pct": 8.0, "wind_3pm_kmh": 45.0, "rain_mm": 0.0});
    let wet = json!({"max_temp_c": 14.0, "rh_3pm_pct": 95.0, "wind_3pm_kmh": 5.0, "rain_mm": 20.0});
    let (status, hot) = post(json!({"detection": detection, "weather": dry})).await;
    assert_eq!(status, 200, "{hot}");
    let names: Vec<&str> = hot["predictions"]
        .as_array()
        .expect("predictions")
        .iter()
        .map(|p| p["name"].as_str().expect("name"))
        .collect();
    // `p_growth_24h` is an incident's (the tracker's outlook); an ad-hoc detection has none.
    assert_eq!(names, ["p_fire", "anomaly_score"]);
    let (_, cold) = post(json!({"detection": detection, "weather": wet})).await;
    let p_fire = |v: &Value| v["predictions"][0]["value"].as_f64().expect("p_fire");
    assert!(
        p_fire(&hot) > 0.8 && p_fire(&cold) < 0.2,
        "hot, dry and windy {} vs cold and wet {}",
        p_fire(&hot),
        p_fire(&cold)
    );
    // Without weather given, and far from every station: no fire danger, and it says so.
    let mut far = detection.clone();
    far["latitude"] = json!(-25.0);
    far["longitude"] = json!(125.0);
    let (status, lone) = post(json!({"detection": far})).await;
    assert_eq!(status, 200, "{lone}");
    assert_eq!(lone["predictions"].as_array().expect("array").len(), 1);
    assert!(
        lone["not_predicted"][0]
            .as_str()
            .expect("named")
            .starts_with("fire-danger@1")
    );
    // Bad input names the field.
    let mut bad = detection.clone();
    bad["latitude"] = json!(123.0);
    let (status, err) = post(json!({"detection": bad})).await;
    assert_eq!(status, 400);
    assert_eq!(err["error"]["field"], "detection.latitude", "{err}");
    let (status, err) =
        post(json!({"detection": detection, "weather": {"rh_3pm_pct": 140.0}})).await;
    assert_eq!(status, 400);
    assert_eq!(err["error"]["field"], "weather.rh_3pm_pct", "{err}");
    let status = client
        .get(format!("{base}/v1/predict"))
        .send()
        .await
        .expect("send")
        .status();
    assert_eq!(status, 405);
}

/// Runs `firesight serve` on an empty store without `ORT_DYLIB_PATH`, with `FIRESIGHT_CACHE` and
/// `HOME` as given; returns the child and its base URL.
fn serve_without_runtime_variable(
    dir: &std::path::Path,
    cache: &std::path::Path,
) -> (std::process::Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_firesight"))
        .arg("serve")
        .env_remove("ORT_DYLIB_PATH")
        .env("FIRESIGHT_CACHE", cache)
        .env("HOME", dir)
        .env("FIRESIGHT__STORE__PATH", dir.join("db"))
        .env("FIRESIGHT__API__LISTEN", format!("127.0.0.1:{port}"))
        .env("FIRESIGHT__EMBED__MANIFEST", manifest_path())
        .env("FIRESIGHT__SEARCH__ENABLED", "false")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start firesight serve");
    (child, format!("http://127.0.0.1:{port}"))
}

#[tokio::test]
async fn the_binary_finds_the_runtime_setup_installed_and_says_where_it_looked_when_it_cannot() {
    use std::time::{Duration, Instant};
    let installed = std::env::var("ORT_DYLIB_PATH").expect("scripts/test.sh sets ORT_DYLIB_PATH");
    // scripts/setup.sh's layout: <cache>/venv-onnxruntime-1.31.1/lib/python3.*/site-packages/…
    let cache = std::path::Path::new(&installed)
        .ancestors()
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n == "venv-onnxruntime-1.31.1")
        })
        .and_then(std::path::Path::parent)
        .expect("the library sits where scripts/setup.sh puts it")
        .to_path_buf();
    let dir = tempfile::TempDir::new().expect("tempdir");
    let (mut child, base) = serve_without_runtime_variable(dir.path(), &cache);
    let started = Instant::now();
    loop {
        let ready = reqwest::get(format!("{base}/readyz"))
            .await
            .is_ok_and(|r| r.status().is_success());
        if ready {
            break;
        }
        assert!(child.try_wait().expect("wait").is_none(), "it exited");
        assert!(started.elapsed() < Duration::from_secs(120), "not ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    child.kill().expect("kill");
    child.wait().expect("reap");

    // Nowhere to find it: the service stops at start, naming each place it looked.
    let empty = tempfile::TempDir::new().expect("tempdir");
    let (child, _) = serve_without_runtime_variable(empty.path(), &empty.path().join("cache"));
    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("join")
        .expect("output");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    for needle in [
        "ORT_DYLIB_PATH",
        "scripts/setup.sh",
        "cache/venv-onnxruntime-1.31.1/lib/python3*",
        "/usr/lib/libonnxruntime.so",
    ] {
        assert!(stderr.contains(needle), "stderr lacks {needle}: {stderr}");
    }
}

/// On the sample, fire danger v2 reads the codes wherever a spun-up series gives them and is
/// version 1 elsewhere; the figures the model card reports are printed.
#[test]
fn fire_danger_v2_reads_the_codes_where_the_sample_has_them() {
    let (events, rows) = stored_events_and_rows();
    let predicted = predictors().predict(&events, &rows).expect("predicts");
    let p = |row: &[firesight::event::MlPrediction], version: &str| {
        row.iter()
            .find(|p| p.model == "fire-danger" && p.version == version)
            .map(|p| p.value)
    };
    let (mut coded, mut weather_only, mut high) = (0, 0, [0usize; 2]);
    for (event, row) in events.iter().zip(&predicted) {
        let Some(weather) = &event.weather_conditions else {
            assert_eq!((p(row, "1"), p(row, "2")), (None, None));
            continue;
        };
        // Version 1 needs all four weather readings; a day missing one has no value from it.
        let (v1, v2) = (p(row, "1"), p(row, "2"));
        let spun_up = weather
            .fire_weather
            .as_ref()
            .is_some_and(|c| c.days_in_series >= firesight::embed::SPUN_UP_DAYS);
        if spun_up {
            coded += 1;
            assert!(v2.is_some(), "{}: codes, so a value", event.event_id);
        } else {
            weather_only += 1;
            assert_eq!(v1, v2, "{}: no codes, so version 1", event.event_id);
        }
        high[0] += usize::from(v1.is_some_and(|v| v >= 0.9));
        high[1] += usize::from(v2.is_some_and(|v| v >= 0.9));
    }
    println!(
        "fire danger on the sample: {coded} events with spun-up codes, {weather_only} with weather only; p_fire >= 0.9: v1 {}, v2 {}",
        high[0], high[1]
    );
    assert!(coded > 5_000, "{coded}");
}

/// With `fire-danger@2` configured, `POST /v1/predict` reads the Fire Weather Index codes given
/// with the weather: a dry, windy afternoon after a wet spell (low FFMC and BUI) rates far lower
/// than the same afternoon after weeks of drought, which version 1 cannot tell apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fire_danger_v2_reads_the_codes_given_to_predict() {
    let dir = tempfile::TempDir::new().expect("tempdir");
    let mut settings = super::support::settings(dir.path());
    settings.embed.predictors = vec!["fire-danger@1".into(), "fire-danger@2".into()];
    let service = super::support::open_async(settings, Vec::new()).await;
    let base = serve_all(&service).await;
    let detection = json!({
        "latitude": -37.6, "longitude": 149.3, "acquired_at": "2019-09-10T03:40:00Z",
        "brightness_k": 340.2, "brightness_background_k": 301.5, "frp_mw": 85.0,
        "scan_km": 1.1, "track_km": 1.0, "satellite": "Aqua", "instrument": "MODIS",
        "confidence": "high", "confidence_percent": 92.0, "version": "6.3", "daytime": true
    });
    let predict = |ffmc: f64, bui: f64| {
        let body = json!({"detection": detection, "weather": {
            "max_temp_c": 30.0, "rh_3pm_pct": 20.0, "wind_3pm_kmh": 30.0, "rain_mm": 0.0,
            "fire_weather": {"ffmc": ffmc, "dmc": bui * 0.8, "dc": bui * 4.0, "isi": 2.0,
                             "bui": bui, "fwi": 5.0}}});
        let url = format!("{base}/v1/predict");
        async move {
            let r = reqwest::Client::new()
                .post(url)
                .json(&body)
                .send()
                .await
                .expect("send");
            let status = r.status();
            (status, r.json::<Value>().await.expect("json"))
        }
    };
    let p_fire = |answer: &Value, version: &str| {
        answer["predictions"]
            .as_array()
            .expect("predictions")
            .iter()
            .find(|p| p["model"] == "fire-danger" && p["version"] == version)
            .and_then(|p| p["value"].as_f64())
            .expect("p_fire")
    };
    let (status, after_rain) = predict(60.0, 5.0).await;
    assert_eq!(status, 200, "{after_rain}");
    let (_, drought) = predict(94.0, 120.0).await;
    assert!(
        p_fire(&after_rain, "2") < 0.5 && p_fire(&drought, "2") > 0.9,
        "after rain {} vs drought {}",
        p_fire(&after_rain, "2"),
        p_fire(&drought, "2")
    );
    assert_eq!(p_fire(&after_rain, "1"), p_fire(&drought, "1"));
    let (status, err) = predict(140.0, 5.0).await;
    assert_eq!(status, 400);
    assert_eq!(err["error"]["field"], "weather.fire_weather.ffmc", "{err}");
}

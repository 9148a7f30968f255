//! The Weaviate mirror against a stand-in that holds Weaviate's published contract: every
//! request is checked against `../shared/weaviate/openapi-v1.39.0.json` (path, method, body
//! schema) and answered the way that document describes, with the answers checked too.
//!
//! Weaviate itself cannot run on this machine (no image registry, no binary in any package
//! registry); `docker-compose.yml` brings the real 1.39 for users.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use firesight::store::Store;
use serde_json::{Value, json};

use super::support::{settings, shared};

/// What the stand-in saw and holds.
#[derive(Default)]
pub(super) struct Seen {
    /// Requests that broke the contract, with the reason.
    pub(super) violations: Vec<String>,
    /// Times each object id was posted.
    pub(super) posted: HashMap<String, usize>,
    /// Objects by id (latest).
    pub(super) objects: HashMap<String, Value>,
    /// Collections by name.
    pub(super) classes: HashMap<String, Value>,
    /// Requests by "METHOD /template".
    pub(super) calls: Vec<String>,
}

/// Faults the stand-in plays on `POST /batch/objects`, each answer used up in this order.
#[derive(Default)]
pub(super) struct Faults {
    /// Answers of 429 with `Retry-After: 1`.
    pub(super) busy: usize,
    /// Answers of 500.
    pub(super) errors: usize,
    /// Answers applied and then cut short (a 200 whose JSON ends mid-array).
    pub(super) truncated: usize,
    /// Answers applied with a 100 MiB body.
    pub(super) huge: usize,
    /// Answers applied, then held back for `slow_for` (past the client's timeout): the client
    /// cannot tell a slow Weaviate from one that did nothing, and sends the batch again.
    pub(super) slow: usize,
    /// How long a slow answer is held back.
    pub(super) slow_for: Duration,
    /// Per-object refusals left, by object id (a transient error: it passes when used up).
    pub(super) refuse: HashMap<String, usize>,
}

#[derive(Clone)]
pub(super) struct StandIn {
    spec: Arc<Value>,
    pub(super) seen: Arc<Mutex<Seen>>,
    pub(super) api_key: Option<String>,
    pub(super) faults: Arc<Mutex<Faults>>,
}

impl StandIn {
    pub(super) fn new(api_key: Option<&str>) -> Self {
        let text =
            std::fs::read_to_string(shared("../weaviate/openapi-v1.39.0.json")).expect("spec");
        let mut spec: Value = serde_json::from_str(&text).expect("spec json");
        // One relaxation, found by this test: the document types a named vector (`Vector`) as
        // `object`, but Weaviate is built with go-swagger, where a schema-less `object` is Go's
        // `interface{}`, and its own clients send named vectors as arrays of numbers (which
        // `C11yVector`, the unnamed vector, spells out). Checked strictly, the contract would
        // refuse every named vector Weaviate accepts.
        assert_eq!(
            spec["definitions"]["Vector"]["type"], "object",
            "the quirk is still there"
        );
        spec["definitions"]["Vector"] = json!({"description": "any JSON: go-swagger interface{}"});
        Self {
            spec: Arc::new(spec),
            seen: Arc::new(Mutex::new(Seen::default())),
            api_key: api_key.map(str::to_owned),
            faults: Arc::new(Mutex::new(Faults::default())),
        }
    }

    /// The spec's path template matching `path` (literal segments preferred over parameters).
    fn template(&self, path: &str) -> Option<String> {
        let want: Vec<&str> = path.trim_matches('/').split('/').collect();
        let paths = self.spec["paths"].as_object()?;
        paths
            .keys()
            .filter(|t| {
                let got: Vec<&str> = t.trim_matches('/').split('/').collect();
                got.len() == want.len()
                    && got
                        .iter()
                        .zip(&want)
                        .all(|(g, w)| g.starts_with('{') || g == w)
            })
            .min_by_key(|t| t.matches('{').count())
            .cloned()
    }

    /// Checks `body` against a schema of the spec (which may `$ref` its definitions).
    fn check(&self, schema: &Value, body: &Value, what: &str) -> Result<(), String> {
        let root = json!({"allOf": [schema], "definitions": self.spec["definitions"]});
        let validator = jsonschema::draft4::new(&root)
            .map_err(|e| format!("{what}: schema does not compile: {e}"))?;
        let errors: Vec<String> = validator
            .iter_errors(body)
            .take(3)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(format!("{what}: {}", errors.join("; ")))
        }
    }
}

fn reply(status: StatusCode, body: Option<Value>) -> Response {
    match body {
        Some(b) => (status, axum::Json(b)).into_response(),
        None => status.into_response(),
    }
}

async fn handle(
    State(s): State<StandIn>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri
        .path()
        .strip_prefix(s.spec["basePath"].as_str().unwrap_or("/v1"))
        .unwrap_or("");
    let violation = |seen: &mut Seen, reason: String| {
        seen.violations.push(reason.clone());
        reply(
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(json!({"error": [{"message": reason}]})),
        )
    };
    let mut seen = s.seen.lock().expect("seen");
    let Some(template) = s.template(path) else {
        return violation(
            &mut seen,
            format!("{method} {path}: no such path in the contract"),
        );
    };
    let op = &s.spec["paths"][&template][method.as_str().to_lowercase()];
    if op.is_null() {
        return violation(
            &mut seen,
            format!("{method} {template}: method not in the contract"),
        );
    }
    seen.calls.push(format!("{method} {template}"));
    if let Some(key) = &s.api_key {
        let sent = headers.get("authorization").and_then(|v| v.to_str().ok());
        if sent != Some(&format!("Bearer {key}")) {
            return reply(StatusCode::UNAUTHORIZED, None);
        }
    }
    let body_param = op["parameters"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["in"] == "body"));
    let value: Value = if body.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                return violation(
                    &mut seen,
                    format!("{method} {template}: body is not JSON: {e}"),
                );
            }
        }
    };
    match body_param {
        Some(p) => {
            if value.is_null() && p["required"] == true {
                return violation(
                    &mut seen,
                    format!("{method} {template}: required body missing"),
                );
            }
            if let Err(e) = s.check(&p["schema"], &value, &format!("{method} {template} body")) {
                return violation(&mut seen, e);
            }
        }
        None if !value.is_null() => {
            return violation(
                &mut seen,
                format!("{method} {template}: the contract takes no body"),
            );
        }
        None => {}
    }
    let segment = |i: usize| {
        path.trim_matches('/')
            .split('/')
            .nth(i)
            .unwrap_or("")
            .to_owned()
    };
    let (status, answer) = match (method.as_str(), template.as_str()) {
        ("GET", "/schema/{className}") => match seen.classes.get(&segment(1)) {
            Some(c) => (StatusCode::OK, Some(c.clone())),
            None => (StatusCode::NOT_FOUND, None),
        },
        ("POST", "/schema") | ("PUT", "/schema/{className}") => {
            let name = value["class"].as_str().unwrap_or_default().to_owned();
            seen.classes.insert(name, value.clone());
            (StatusCode::OK, Some(value.clone()))
        }
        ("POST", "/batch/objects") => {
            let mut faults = s.faults.lock().expect("faults");
            if faults.busy > 0 {
                faults.busy -= 1;
                return ([("retry-after", "1")], StatusCode::TOO_MANY_REQUESTS).into_response();
            }
            if faults.errors > 0 {
                faults.errors -= 1;
                return reply(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Some(json!({"error": [{"message": "stand-in fault"}]})),
                );
            }
            let mut results = Vec::new();
            for o in value["objects"].as_array().cloned().unwrap_or_default() {
                let id = o["id"].as_str().unwrap_or_default().to_owned();
                let mut r = o.clone();
                if let Some(left) = faults.refuse.get_mut(&id).filter(|left| **left > 0) {
                    *left -= 1;
                    r["result"] = json!({"status": "FAILED", "errors": {"error": [
                        {"message": "cannot achieve consistency level QUORUM: 1 of 3 replicas answered"}
                    ]}});
                    results.push(r);
                    continue;
                }
                *seen.posted.entry(id.clone()).or_default() += 1;
                // A batch upsert replaces the object whole (the contract: "overwritten,
                // similar to a PUT"), named vectors included.
                seen.objects.insert(id, o.clone());
                r["result"] = json!({"status": "SUCCESS"});
                results.push(r);
            }
            if faults.truncated > 0 {
                faults.truncated -= 1;
                let text = Value::Array(results).to_string();
                return (StatusCode::OK, text[..text.len() / 2].to_owned()).into_response();
            }
            if faults.huge > 0 {
                faults.huge -= 1;
                return (StatusCode::OK, vec![b' '; 100 << 20]).into_response();
            }
            if faults.slow > 0 {
                faults.slow -= 1;
                let (held, text) = (faults.slow_for, Value::Array(results).to_string());
                let late = futures_util::stream::once(async move {
                    tokio::time::sleep(held).await;
                    Ok::<_, std::convert::Infallible>(Bytes::from(text))
                });
                return (StatusCode::OK, axum::body::Body::from_stream(late)).into_response();
            }
            (StatusCode::OK, Some(Value::Array(results)))
        }
        ("GET", "/objects/{className}/{id}") => match seen.objects.get(&segment(2)) {
            Some(o) => {
                let mut o = o.clone();
                // Vectors come back only when asked for (`include=vector`).
                if !uri.query().unwrap_or("").contains("include=vector")
                    && let Some(map) = o.as_object_mut()
                {
                    map.remove("vectors");
                }
                (StatusCode::OK, Some(o))
            }
            None => (StatusCode::NOT_FOUND, None),
        },
        ("DELETE", "/objects/{className}/{id}") => match seen.objects.remove(&segment(2)) {
            Some(_) => (StatusCode::NO_CONTENT, None),
            None => (StatusCode::NOT_FOUND, None),
        },
        _ => {
            return violation(
                &mut seen,
                format!("{method} {template}: the stand-in does not serve it"),
            );
        }
    };
    // The answer must be one the contract lists, in the shape it gives.
    let listed = &op["responses"][status.as_str()];
    if listed.is_null() {
        seen.violations.push(format!(
            "stand-in answered {status} to {method} {template}, not in the contract"
        ));
    } else if let (Some(schema), Some(a)) = (listed.get("schema"), &answer)
        && let Err(e) = s.check(schema, a, &format!("{method} {template} answer"))
    {
        seen.violations.push(e);
    }
    reply(status, answer)
}

/// The stand-in as a router, for serving it some other way (over TLS: `tls.rs`).
pub(super) fn router(stand_in: StandIn) -> Router {
    Router::new().fallback(handle).with_state(stand_in)
}

pub(super) async fn serve_on(listener: tokio::net::TcpListener, stand_in: StandIn) {
    let app = router(stand_in);
    tokio::spawn(async move { axum::serve(listener, app).await.expect("stand-in") });
}

fn outbox_len(store: &Store) -> usize {
    store.outbox_batch(usize::MAX).expect("outbox").len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_loses_nothing_and_every_event_arrives_once() {
    // A port with nothing listening: Weaviate is down when ingest starts.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("probe")
        .local_addr()
        .expect("addr")
        .port();
    let dir = tempfile::TempDir::new().expect("tempdir");
    let mut s = settings(dir.path());
    s.weaviate.url = format!("http://127.0.0.1:{port}");
    s.weaviate.api_key = "k-123".to_owned();
    s.weaviate.max_backoff_ms = 400;
    let file = shared("firms/MODIS_C6_USA_contiguous_and_Hawaii_24h.2020-10-01.csv");
    let service = super::support::open_async(s, vec![file]).await;
    let events = service.store.event_count() as usize;
    assert!(events > 2000, "{events}");
    assert_eq!(
        outbox_len(&service.store),
        events,
        "every stored event is queued"
    );

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mirror = service.mirror().expect("mirror").expect("configured");
    let mut rx = stopped.clone();
    let drainer = tokio::spawn(mirror.run(async move {
        let _ = rx.changed().await;
    }));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        service.metrics.mirror_failures.get() >= 2,
        "retries while down"
    );
    assert_eq!(
        outbox_len(&service.store),
        events,
        "nothing is dropped while Weaviate is down"
    );

    // Weaviate comes back on the same port.
    let stand_in = StandIn::new(Some("k-123"));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("rebind");
    serve_on(listener, stand_in.clone()).await;
    let started = Instant::now();
    while outbox_len(&service.store) > 0 {
        if started.elapsed() > Duration::from_secs(30) {
            let seen = stand_in.seen.lock().expect("seen");
            panic!(
                "the outbox did not drain: {} left, {} sent, {} failures, violations {:?}",
                outbox_len(&service.store),
                service.metrics.mirror_sent.get(),
                service.metrics.mirror_failures.get(),
                &seen.violations[..seen.violations.len().min(3)]
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = stop.send(true);
    drainer.await.expect("drainer");

    let seen = stand_in.seen.lock().expect("seen");
    assert!(
        seen.violations.is_empty(),
        "contract violations: {:?}",
        &seen.violations[..seen.violations.len().min(5)]
    );
    assert_eq!(seen.posted.len(), events, "every event arrived");
    assert!(
        seen.posted.values().all(|&n| n == 1),
        "and each exactly once"
    );
    assert_eq!(service.metrics.mirror_sent.get() as usize, events);
    let class = &seen.classes["FireEvent"];
    let vector = firesight::weaviate::vector_name(service.embedder().model_version());
    assert!(class["vectorConfig"][&vector].is_object(), "{class}");
    // Objects carry the event's id and the named vector of its model.
    let any = seen.objects.values().next().expect("an object");
    let event_id = any["properties"]["eventId"].as_str().expect("eventId");
    assert_eq!(
        any["id"],
        firesight::weaviate::object_id(event_id).to_string()
    );
    assert_eq!(
        any["vectors"][&vector].as_array().expect("vector").len(),
        16
    );
}

#[tokio::test]
async fn the_client_speaks_the_contract_for_schema_updates_and_deletes() {
    let stand_in = StandIn::new(None);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    serve_on(listener, stand_in.clone()).await;
    let client = firesight::weaviate::WeaviateClient::new(
        &url,
        "FireEvent",
        None,
        Duration::from_secs(5),
        &firesight::tls::Trust::default(),
    )
    .expect("client");
    client
        .ensure_schema(&["event-encoder@1".to_owned()])
        .await
        .expect("create");
    client
        .ensure_schema(&["event-encoder@1".to_owned()])
        .await
        .expect("already there");
    client
        .ensure_schema(&["event-encoder@2".to_owned()])
        .await
        .expect("add a named vector");
    client
        .delete("fd_never_sent")
        .await
        .expect("deleting an absent object is not an error");
    let seen = stand_in.seen.lock().expect("seen");
    assert!(seen.violations.is_empty(), "{:?}", seen.violations);
    let vectors = seen.classes["FireEvent"]["vectorConfig"]
        .as_object()
        .expect("vectors")
        .clone();
    assert!(
        vectors.contains_key("event_encoder_1") && vectors.contains_key("event_encoder_2"),
        "{vectors:?}"
    );
    assert_eq!(
        seen.calls,
        [
            "GET /schema/{className}",
            "POST /schema",
            "GET /schema/{className}",
            "GET /schema/{className}",
            "PUT /schema/{className}",
            "DELETE /objects/{className}/{id}",
        ]
    );
}

/// Weaviate faults while a re-index runs: 429 with Retry-After, 500, a truncated answer, a
/// 100 MiB answer, answers held back past the client's timeout after the batch was applied,
/// per-object transient refusals, and one object it never accepts. Every event
/// must end up one object holding both models' vectors, and only the never-accepted object a
/// dead letter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_and_a_reindex_leave_every_event_with_every_vector_and_only_real_refusals_dead() {
    let stand_in = StandIn::new(None);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    serve_on(listener, stand_in.clone()).await;
    let dir = tempfile::TempDir::new().expect("tempdir");
    let mut s = super::reindex::two_model_settings(dir.path());
    s.weaviate.url = url;
    s.weaviate.batch_size = 50;
    s.weaviate.max_backoff_ms = 400;
    s.weaviate.max_object_attempts = 3;
    s.weaviate.timeout_ms = 2_000;
    let s_timeout_ms = s.weaviate.timeout_ms;
    let file = shared("firms/MODIS_C6_USA_contiguous_and_Hawaii_24h.2020-10-01.csv");
    let service = super::support::open_async(s, vec![file]).await;
    let ids: Vec<String> = service
        .store
        .vectors()
        .expect("vectors")
        .map(|v| v.expect("vector").event_id)
        .collect();
    let events = ids.len();
    assert!(events > 2000, "{events}");
    let object = |id: &str| firesight::weaviate::object_id(id).to_string();
    let never = object(&ids[events / 2]);
    {
        let mut faults = stand_in.faults.lock().expect("faults");
        faults.busy = 2;
        faults.errors = 1;
        faults.truncated = 1;
        faults.huge = 1;
        faults.slow = 2;
        faults.slow_for = Duration::from_millis(s_timeout_ms + 1_000);
        // Every 40th object refused twice (it passes on its third attempt, the last allowed).
        for id in ids.iter().step_by(40) {
            faults.refuse.insert(object(id), 2);
        }
        faults.refuse.insert(never.clone(), usize::MAX);
    }

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mirror = service.mirror().expect("mirror").expect("configured");
    let mut rx = stopped.clone();
    let drainer = tokio::spawn(mirror.run(async move {
        let _ = rx.changed().await;
    }));
    // The re-index starts once part of the outbox is delivered.
    let started = Instant::now();
    while service.metrics.mirror_sent.get() < 500 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "nothing delivered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let lifecycle = Arc::clone(&service.lifecycle);
    tokio::task::spawn_blocking(move || {
        firesight::reindex::reindex(&lifecycle, super::reindex::NEW, false)
    })
    .await
    .expect("join")
    .expect("re-index");
    while outbox_len(&service.store) > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the outbox did not drain: {} left",
            outbox_len(&service.store)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = stop.send(true);
    drainer.await.expect("drainer");

    let seen = stand_in.seen.lock().expect("seen");
    assert!(
        seen.violations.is_empty(),
        "{:?}",
        &seen.violations[..seen.violations.len().min(5)]
    );
    let faults = stand_in.faults.lock().expect("faults");
    assert_eq!(
        (
            faults.busy,
            faults.errors,
            faults.truncated,
            faults.huge,
            faults.slow
        ),
        (0, 0, 0, 0, 0),
        "every fault was played"
    );
    let names = [
        firesight::weaviate::vector_name(super::reindex::OLD),
        firesight::weaviate::vector_name(super::reindex::NEW),
    ];
    let mut lacking = Vec::new();
    for id in &ids {
        let key = object(id);
        if key == never {
            assert!(
                !seen.objects.contains_key(&key),
                "Weaviate never accepted it"
            );
            continue;
        }
        let vectors = seen.objects.get(&key).map(|o| &o["vectors"]);
        if names
            .iter()
            .any(|n| vectors.is_none_or(|v| v[n].as_array().is_none_or(|a| a.len() != 16)))
        {
            lacking.push(id.clone());
        }
    }
    assert!(
        lacking.is_empty(),
        "{} of {events} objects lack a model's vector, e.g. {:?}",
        lacking.len(),
        &lacking[..lacking.len().min(3)]
    );
    let letters = service.store.dead_letters(100).expect("dead letters");
    let mirror_letters: Vec<_> = letters
        .iter()
        .filter(|l| l.source == "weaviate-mirror")
        .collect();
    assert_eq!(
        mirror_letters.len(),
        1,
        "only the never-accepted object: {mirror_letters:?}"
    );
    assert!(
        mirror_letters[0].error.reason.contains("3 times")
            && mirror_letters[0].error.reason.contains("consistency level"),
        "{:?}",
        mirror_letters[0].error
    );
    assert!(service.metrics.mirror_object_retries.get() >= 2 * (events / 40) as u64);
    eprintln!(
        "{events} events, {} batch failures retried, {} object retries, {} dead letter",
        service.metrics.mirror_failures.get(),
        service.metrics.mirror_object_retries.get(),
        service.metrics.mirror_dead_letters.get()
    );
}

/// An entry the mirror read and then settles stays queued when the same vector was queued
/// again meanwhile (a revision, as a late weather join or a source row's update writes): the
/// newer state is sent next, instead of the older one's delivery settling it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_queued_again_while_its_earlier_copy_was_sent_stays_queued() {
    let dir = tempfile::TempDir::new().expect("tempdir");
    let mut s = settings(dir.path());
    s.weaviate.url = "http://127.0.0.1:9".to_owned();
    let file = shared("firms/MODIS_C6_USA_contiguous_and_Hawaii_24h.2020-10-01.csv");
    let service = super::support::open_async(s, vec![file]).await;
    let store = &service.store;
    let first = store.outbox_batch(1).expect("outbox");
    let seq = first[0].seq;
    let stored = store.vectors_of(seq).expect("vectors").remove(0);
    let mut event = store.event(&stored.event_id).expect("read").expect("event");
    event.revision = Some(1);
    store
        .revise_events_with(
            &[seq],
            &[firesight::store::NewEvent {
                event,
                vector: stored.vector,
            }],
            &[],
        )
        .expect("revised");
    assert_eq!(
        store.outbox_remove(&first).expect("settle"),
        1,
        "queued again"
    );
    let again = store.outbox_batch(1).expect("outbox");
    assert_eq!(again[0].seq, seq, "still first in the queue");
    assert_ne!(again, first, "with a new mark");
    assert_eq!(store.outbox_remove(&again).expect("settle"), 0);
    assert_ne!(
        store.outbox_batch(1).expect("outbox")[0].seq,
        seq,
        "settled"
    );
}

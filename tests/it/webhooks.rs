//! Alert webhooks over real HTTP, against receivers that fail the ways real ones do: every
//! logged alert reaches a flaky receiver exactly once as accepted (signed, same bytes on every
//! try), a receiver that always fails gets `max_attempts` tries and then a dead letter with the
//! reason, a refusing one a dead letter at once; the queue survives a restart while the receiver
//! is down; a target added later starts at the end of the log.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use firesight::app::Service;
use firesight::config::{Settings, WebhookTarget};
use firesight::store::StoreOp;
use firesight::tracker::{Alert, AlertKind};
use firesight::webhooks::{ALERT_ID_HEADER, sign};
use tempfile::TempDir;

use super::support::{sample, settings};

const SECRET: &str = "correct horse battery staple";

/// How a stand-in receiver answers.
#[derive(Clone, Copy)]
enum Behaviour {
    /// 503 with `Retry-After: 0` on the first try of every third alert (by sequence), else 200.
    Flaky,
    /// Always 500.
    Broken,
    /// Always 400.
    Refusing,
    /// Always 200.
    Healthy,
}

/// One request a receiver got.
#[derive(Debug, Clone)]
struct Got {
    alert_id: String,
    body: Vec<u8>,
    signed: bool,
    status: u16,
}

#[derive(Clone)]
struct Receiver {
    behaviour: Behaviour,
    got: Arc<Mutex<Vec<Got>>>,
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let timestamp: i64 = header(sign::TIMESTAMP_HEADER).parse().unwrap_or(0);
    let signed = sign::verify(
        SECRET.as_bytes(),
        timestamp,
        &body,
        &header(sign::SIGNATURE_HEADER),
    );
    let alert_id = header(ALERT_ID_HEADER);
    let seq = serde_json::from_slice::<Alert>(&body).map_or(0, |a| a.seq);
    let mut got = r.got.lock().expect("receiver lock");
    let tried_before = got.iter().any(|g| g.alert_id == alert_id);
    let status = match r.behaviour {
        Behaviour::Flaky if seq.is_multiple_of(3) && !tried_before => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        Behaviour::Flaky | Behaviour::Healthy => StatusCode::OK,
        Behaviour::Broken => StatusCode::INTERNAL_SERVER_ERROR,
        Behaviour::Refusing => StatusCode::BAD_REQUEST,
    };
    got.push(Got {
        alert_id,
        body: body.to_vec(),
        signed,
        status: status.as_u16(),
    });
    status
}

/// Serves a receiver on `listener`; returns what it will record.
fn serve_receiver(listener: tokio::net::TcpListener, behaviour: Behaviour) -> Arc<Mutex<Vec<Got>>> {
    let got: Arc<Mutex<Vec<Got>>> = Arc::default();
    let app = axum::Router::new()
        .route(
            "/hook",
            axum::routing::post(receive).layer(axum::middleware::from_fn(
                |request: axum::extract::Request, next: axum::middleware::Next| async move {
                    // Retry-After: 0 on every 503, as a real load balancer would send.
                    let mut response = next.run(request).await;
                    if response.status() == StatusCode::SERVICE_UNAVAILABLE {
                        response
                            .headers_mut()
                            .insert("retry-after", axum::http::HeaderValue::from_static("0"));
                    }
                    response
                },
            )),
        )
        .with_state(Receiver {
            behaviour,
            got: Arc::clone(&got),
        });
    tokio::spawn(async move { axum::serve(listener, app).await.expect("receiver") });
    got
}

async fn bind() -> (tokio::net::TcpListener, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    (listener, url)
}

fn target(name: &str, url: &str, kinds: &[&str]) -> WebhookTarget {
    WebhookTarget {
        name: name.to_owned(),
        url: url.to_owned(),
        secret: SECRET.to_owned(),
        secret_env: String::new(),
        kinds: kinds.iter().map(|k| (*k).to_owned()).collect(),
    }
}

fn quick(dir: &Path, targets: Vec<WebhookTarget>) -> Settings {
    let mut s = settings(dir);
    s.search.enabled = false;
    s.webhooks.targets = targets;
    s.webhooks.max_attempts = 3;
    s.webhooks.initial_backoff_ms = 20;
    s.webhooks.max_backoff_ms = 100;
    s.webhooks.timeout_ms = 2_000;
    s
}

/// The archive's first `rows` detections (a fortnight of August 2019) as a file of their own.
fn first_rows(dir: &Path, rows: usize) -> PathBuf {
    let text = std::fs::read_to_string(sample("fire_archive_M6_96619.csv")).expect("archive");
    let head: Vec<&str> = text.lines().take(rows + 1).collect();
    let path = dir.join("head.csv");
    std::fs::write(&path, head.join("\n") + "\n").expect("write");
    path
}

async fn open(settings: Settings, files: Vec<PathBuf>) -> Service {
    tokio::task::spawn_blocking(move || Service::open(settings, &files, false))
        .await
        .expect("join")
        .expect("service opens")
}

/// Runs the service's dispatcher until every target's queue is empty (or `limit` passes).
async fn deliver_all(service: &Service, limit: Duration) {
    let dispatcher = service
        .webhooks()
        .expect("dispatcher")
        .expect("targets configured");
    let names: Vec<String> = dispatcher
        .targets()
        .iter()
        .map(|t| t.name.clone())
        .collect();
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(dispatcher.run(service.pipeline.alerts_seen(), async move {
        let _ = stopped.changed().await;
    }));
    let started = Instant::now();
    // Queues fill on the first round, so wait for that before calling them empty.
    tokio::time::sleep(Duration::from_millis(200)).await;
    loop {
        let queued: usize = names
            .iter()
            .map(|n| service.store.webhook_queue_len(n).expect("queue"))
            .sum();
        if queued == 0 || started.elapsed() > limit {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop.send(true);
    task.await.expect("dispatcher stops");
}

/// A service over the archive's first 1,500 detections with one target, `ops`, whose receiver
/// is down: its port refuses connections until something binds it (the address returned).
async fn receiver_down(dir: &Path) -> (std::net::SocketAddr, String, Service) {
    let (listener, url) = bind().await;
    let address = listener.local_addr().expect("addr");
    drop(listener);
    let file = first_rows(dir, 1_500);
    let service = open(quick(dir, vec![target("ops", &url, &[])]), vec![file]).await;
    (address, url, service)
}

fn logged(service: &Service) -> Vec<(u64, Vec<u8>)> {
    service.store.alerts_from(0, usize::MAX).expect("alert log")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_alert_reaches_each_receiver_once_signed_and_failures_end_as_dead_letters() {
    let dir = TempDir::new().expect("tmp");
    let (flaky_listener, flaky_url) = bind().await;
    let (broken_listener, broken_url) = bind().await;
    let (refusing_listener, refusing_url) = bind().await;
    let flaky = serve_receiver(flaky_listener, Behaviour::Flaky);
    let broken = serve_receiver(broken_listener, Behaviour::Broken);
    let refusing = serve_receiver(refusing_listener, Behaviour::Refusing);
    let settings = quick(
        dir.path(),
        vec![
            target("pager", &flaky_url, &[]),
            target("growth-only", &broken_url, &["growth"]),
            target("refusing", &refusing_url, &["new_fire"]),
        ],
    );
    let file = first_rows(dir.path(), 3_000);
    let service = open(settings, vec![file]).await;
    let log = logged(&service);
    let alerts: Vec<Alert> = log
        .iter()
        .map(|(_, b)| serde_json::from_slice(b).expect("alert"))
        .collect();
    let growth = alerts
        .iter()
        .filter(|a| a.kind == AlertKind::Growth)
        .count();
    let new_fire = alerts
        .iter()
        .filter(|a| a.kind == AlertKind::NewFire)
        .count();
    assert!(
        new_fire > 20 && growth > 0,
        "the fortnight raises alerts: {new_fire} new_fire, {growth} growth of {}",
        alerts.len()
    );

    deliver_all(&service, Duration::from_secs(120)).await;

    // The flaky receiver: every logged alert accepted exactly once, each request signed and
    // carrying the alert exactly as logged; every third alert was refused once, then resent
    // with the same bytes.
    let got = flaky.lock().expect("lock").clone();
    assert!(got.iter().all(|g| g.signed), "every request is signed");
    let mut accepted: BTreeMap<&str, usize> = BTreeMap::new();
    for g in got.iter().filter(|g| g.status == 200) {
        *accepted.entry(g.alert_id.as_str()).or_default() += 1;
    }
    let ids: BTreeSet<&str> = alerts.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids.len(), alerts.len(), "alert ids are unique in the log");
    assert_eq!(
        accepted.keys().copied().collect::<BTreeSet<_>>(),
        ids,
        "every alert accepted"
    );
    assert!(accepted.values().all(|&n| n == 1), "each accepted once");
    for (seq, bytes) in &log {
        let tries: Vec<&Got> = got
            .iter()
            .filter(|g| serde_json::from_slice::<Alert>(&g.body).is_ok_and(|a| a.seq == *seq))
            .collect();
        assert!(
            tries.iter().all(|g| &g.body == bytes),
            "the logged bytes, on every try"
        );
        assert_eq!(
            tries.len(),
            if seq.is_multiple_of(3) { 2 } else { 1 },
            "alert {seq}"
        );
    }

    // The broken receiver: only growth alerts, each tried max_attempts times, then dead-lettered
    // with the receiver's answer.
    let got = broken.lock().expect("lock").clone();
    let growth_ids: BTreeSet<&str> = alerts
        .iter()
        .filter(|a| a.kind == AlertKind::Growth)
        .map(|a| a.id.as_str())
        .collect();
    assert_eq!(got.len(), 3 * growth, "three tries per growth alert");
    assert_eq!(
        got.iter()
            .map(|g| g.alert_id.as_str())
            .collect::<BTreeSet<_>>(),
        growth_ids
    );
    let letters = service
        .store
        .dead_letters(usize::MAX)
        .expect("dead letters");
    let of = |source: &str| -> Vec<_> { letters.iter().filter(|l| l.source == source).collect() };
    let broken_letters = of("webhook:growth-only");
    assert_eq!(broken_letters.len(), growth);
    assert!(broken_letters.iter().all(|l| {
        l.error.field == "delivery"
            && l.error
                .reason
                .starts_with("gave up after 3 attempts; last: the receiver answered 500")
    }));
    // The refusing receiver: one try per new_fire alert, then a dead letter naming the status.
    let got = refusing.lock().expect("lock").clone();
    assert_eq!(got.len(), new_fire);
    let refused = of("webhook:refusing");
    assert_eq!(refused.len(), new_fire);
    assert!(
        refused
            .iter()
            .all(|l| l.error.reason.contains("400 Bad Request"))
    );
    for name in ["pager", "growth-only", "refusing"] {
        assert_eq!(
            service.store.webhook_queue_len(name).expect("queue"),
            0,
            "{name}"
        );
    }
    let metrics = service.metrics.render();
    let delivered = metrics.lines().find(|l| {
        l.starts_with("firesight_webhook_deliveries_total{")
            && l.contains("target=\"pager\"")
            && l.contains("outcome=\"delivered\"")
    });
    assert_eq!(
        delivered.and_then(|l| l.rsplit(' ').next()),
        Some(alerts.len().to_string().as_str()),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_alerts_survive_a_restart_while_the_receiver_is_down() {
    let dir = TempDir::new().expect("tmp");
    let (address, url, service) = receiver_down(dir.path()).await;
    let total = logged(&service).len();
    assert!(total > 10, "{total} alerts");
    // Receiver down: each round tries one alert and leaves everything queued; past
    // max_attempts (3) nothing is dead-lettered, since the receiver is away, not refusing.
    let dispatcher = service.webhooks().expect("dispatcher").expect("target");
    for _ in 0..6 {
        dispatcher.round(0).await.expect("round");
        tokio::time::sleep(Duration::from_millis(120)).await;
    }
    assert_eq!(
        service.store.webhook_queue_len("ops").expect("queue"),
        total
    );
    let letters = service
        .store
        .dead_letters(usize::MAX)
        .expect("dead letters");
    assert!(
        letters.iter().all(|l| !l.source.starts_with("webhook:")),
        "an unreachable receiver's alerts wait, they are not dead-lettered"
    );
    drop(dispatcher);
    drop(service);

    // Restart with the receiver up: everything queued arrives, once each.
    let service = open(quick(dir.path(), vec![target("ops", &url, &[])]), vec![]).await;
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .expect("rebind");
    let got = serve_receiver(listener, Behaviour::Healthy);
    deliver_all(&service, Duration::from_secs(60)).await;
    let got = got.lock().expect("lock").clone();
    let ids: BTreeSet<&str> = got.iter().map(|g| g.alert_id.as_str()).collect();
    assert_eq!(got.len(), total, "each once");
    assert_eq!(ids.len(), total);

    // A target added now starts at the end of the log: no history is sent to it.
    drop(service);
    let service = open(
        quick(
            dir.path(),
            vec![target("ops", &url, &[]), target("newcomer", &url, &[])],
        ),
        vec![],
    )
    .await;
    assert_eq!(
        service.store.webhook_cursor("newcomer").expect("cursor"),
        Some(service.store.peek_alert_seq())
    );
    let dispatcher = service.webhooks().expect("dispatcher").expect("targets");
    dispatcher.round(1).await.expect("round");
    assert_eq!(
        service.store.webhook_queue_len("newcomer").expect("queue"),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_queue_entries_and_log_entries_do_not_stall_a_target() {
    let dir = TempDir::new().expect("tmp");
    // The receiver is down at first, so a round queues everything and sends nothing.
    let (address, _, service) = receiver_down(dir.path()).await;
    let genuine = logged(&service).len();
    assert!(genuine > 10, "{genuine} alerts");
    // A log entry that is no alert, after the genuine ones.
    let bad_seq = service.store.peek_alert_seq();
    service
        .store
        .apply(&[StoreOp::alert(bad_seq, b"{\"not\": \"an alert\"".to_vec())])
        .expect("write");
    let dispatcher = service.webhooks().expect("dispatcher").expect("target");
    dispatcher.round(0).await.expect("round");
    drop(dispatcher);
    // Tear the last queued entry's state.
    let queue = service
        .store
        .webhook_queue("ops", usize::MAX)
        .expect("queue");
    assert_eq!(
        queue.len(),
        genuine,
        "every genuine alert queued, the unreadable one not"
    );
    let (torn, _) = queue.last().expect("queued");
    service
        .store
        .apply(&[StoreOp::webhook_queued(
            "ops",
            *torn,
            vec![0xff, 0x00, 0x7b],
        )])
        .expect("write");

    let listener = tokio::net::TcpListener::bind(address)
        .await
        .expect("rebind");
    let got = serve_receiver(listener, Behaviour::Healthy);
    deliver_all(&service, Duration::from_secs(60)).await;
    let got = got.lock().expect("lock").clone();
    let ids: BTreeSet<&str> = got.iter().map(|g| g.alert_id.as_str()).collect();
    assert_eq!(
        ids.len(),
        genuine,
        "every genuine alert delivered, the torn one too"
    );
    assert!(
        ids.iter().all(|id| !id.is_empty()),
        "nothing unreadable was sent"
    );
    assert_eq!(service.store.webhook_queue_len("ops").expect("queue"), 0);
    let letters = service
        .store
        .dead_letters(usize::MAX)
        .expect("dead letters");
    let refused: Vec<_> = letters
        .iter()
        .filter(|l| l.source == "webhook:ops")
        .collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].error.line, bad_seq);
    assert!(
        refused[0].error.reason.contains("not an alert"),
        "{refused:?}"
    );
}

/// A receiver over HTTPS with a certificate from a private CA: with `tls.ca_file` naming the
/// CA, every alert arrives signed; without it, none does (the certificate is refused) and they
/// stay queued rather than being dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_reach_an_https_receiver_through_a_private_ca_and_only_through_it() {
    let pki = super::tls::pki();
    let got: Arc<Mutex<Vec<Got>>> = Arc::default();
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(Receiver {
            behaviour: Behaviour::Healthy,
            got: Arc::clone(&got),
        });
    let url = format!("{}/hook", super::tls::serve_tls(app, pki.server).await);
    for trusted in [false, true] {
        let dir = TempDir::new().expect("tmp");
        let mut settings = quick(dir.path(), vec![target("ops", &url, &[])]);
        if trusted {
            let ca = dir.path().join("ca.pem");
            std::fs::write(&ca, &pki.ca_pem).expect("CA file");
            settings.tls.ca_file = ca.display().to_string();
        }
        let file = first_rows(dir.path(), 1_500);
        let service = open(settings, vec![file]).await;
        let alerts = logged(&service).len();
        assert!(alerts > 10, "{alerts} alerts");
        got.lock().expect("lock").clear();
        deliver_all(&service, Duration::from_secs(if trusted { 60 } else { 3 })).await;
        let received = got.lock().expect("lock").clone();
        let queued = service.store.webhook_queue_len("ops").expect("queue");
        if trusted {
            assert_eq!(received.len(), alerts, "every alert over HTTPS");
            assert!(received.iter().all(|g| g.signed));
            assert_eq!(queued, 0);
        } else {
            assert!(received.is_empty(), "nothing reaches an untrusted receiver");
            assert_eq!(queued, alerts, "every alert still queued");
        }
    }
}

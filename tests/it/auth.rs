//! API keys over real HTTP: every write and admin route refuses no key (401) and a key whose
//! role is too low (403), and no key ever reaches a log line.

use std::io::Write;
use std::sync::{Arc, Mutex};

use firesight::config::{ApiKeySetting, Role};
use reqwest::StatusCode;
use serde_json::Value;

use super::support::{open_async, sample, serve_all, settings};

/// Everything the service logs, at every level down to trace, for the whole test process.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn key(name: &str, role: Role) -> (String, ApiKeySetting) {
    let (key, sha256) = firesight::api::auth::new_key().expect("key");
    let setting = ApiKeySetting {
        name: name.into(),
        role,
        sha256,
    };
    (key, setting)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_and_admin_routes_refuse_no_key_and_a_lower_role() {
    let logs = Captured::default();
    let sink = logs.clone();
    tracing_subscriber::fmt()
        .with_env_filter("firesight=trace,tower_http=trace,axum=trace,hyper=trace")
        .with_writer(move || sink.clone())
        .try_init()
        .expect("this is the only test that installs a global subscriber");

    let dir = tempfile::TempDir::new().expect("tempdir");
    let mut config = settings(dir.path());
    let (reader, reader_entry) = key("dashboard", Role::Read);
    let (writer, writer_entry) = key("ingest-bot", Role::Write);
    let (admin, admin_entry) = key("operator", Role::Admin);
    config.auth.keys = vec![reader_entry, writer_entry, admin_entry];
    config.auth.read_open = false;
    let service = open_async(config, vec![]).await;
    let base = serve_all(&service).await;
    let client = reqwest::Client::new();
    let call = |method: &str, path: &str, key: Option<&str>| {
        let mut request = client
            .request(method.parse().expect("method"), format!("{base}{path}"))
            .header("content-type", "text/csv");
        if let Some(key) = key {
            request = request.header("x-api-key", key);
        }
        request.body("").send()
    };

    let writes = [
        "/v1/events/firms",
        "/v1/events/weather",
        "/v1/events/sensors",
        "/v1/stations",
    ];
    let admin_routes = [("GET", "/v1/admin/reindex"), ("POST", "/v1/admin/reindex")];
    let reads = [("GET", "/v1/fires"), ("GET", "/v1/dead-letters")];
    let mut routes: Vec<(&str, &str, Option<&str>)> = Vec::new();
    routes.extend(writes.iter().map(|p| ("POST", *p, Some(reader.as_str()))));
    routes.extend(
        admin_routes
            .iter()
            .map(|(m, p)| (*m, *p, Some(writer.as_str()))),
    );
    routes.extend(reads.iter().map(|(m, p)| (*m, *p, None)));
    for (method, path, too_low) in routes {
        let none = call(method, path, None).await.expect("call");
        assert_eq!(none.status(), StatusCode::UNAUTHORIZED, "{method} {path}");
        assert!(none.headers().contains_key("www-authenticate"));
        let body: Value = none.json().await.expect("json");
        assert_eq!(body["error"]["code"], "unauthorized", "{body}");
        let unknown = call(method, path, Some("fsk_not-a-key"))
            .await
            .expect("call");
        assert_eq!(
            unknown.status(),
            StatusCode::UNAUTHORIZED,
            "{method} {path}"
        );
        if let Some(low) = too_low {
            let refused = call(method, path, Some(low)).await.expect("call");
            assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{method} {path}");
            let body: Value = refused.json().await.expect("json");
            assert_eq!(body["error"]["code"], "forbidden", "{body}");
        }
    }

    // The right role gets in; a higher one does too.
    let csv = std::fs::read(sample("fire_archive_M6_96619.csv")).expect("archive");
    let head: Vec<u8> = String::from_utf8_lossy(&csv)
        .lines()
        .take(21)
        .collect::<Vec<_>>()
        .join("\n")
        .into_bytes();
    for key in [&writer, &admin] {
        let ingested = client
            .post(format!("{base}/v1/events/firms"))
            .header("content-type", "text/csv")
            .header("authorization", format!("Bearer {key}"))
            .body(head.clone())
            .send()
            .await
            .expect("ingest");
        assert_eq!(ingested.status(), StatusCode::OK);
    }
    for key in [&reader, &writer] {
        let listed = call("GET", "/v1/fires", Some(key)).await.expect("list");
        assert_eq!(listed.status(), StatusCode::OK);
        let body: Value = listed.json().await.expect("json");
        assert_eq!(body["items"].as_array().map(Vec::len), Some(20));
    }
    let status = call("GET", "/v1/admin/reindex", Some(&admin))
        .await
        .expect("status");
    assert_eq!(status.status(), StatusCode::OK);
    for probe in ["/healthz", "/readyz", "/metrics"] {
        let open = call("GET", probe, None).await.expect("probe");
        assert_eq!(open.status(), StatusCode::OK, "{probe} needs no key");
    }

    let text = String::from_utf8_lossy(&logs.0.lock().expect("log buffer")).into_owned();
    assert!(
        text.contains("ingest-bot"),
        "the capture works and names the caller"
    );
    for secret in [&reader, &writer, &admin] {
        assert!(!text.contains(secret.as_str()), "a key reached the log");
    }
}

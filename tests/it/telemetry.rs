//! The real binary: request spans reach an OTLP/HTTP collector, and SIGTERM shuts down cleanly
//! (in-flight work finished, batched spans flushed, exit status 0).

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::Uri;

use super::support::repo;

/// One request the collector received: its path and body.
type Export = (String, Vec<u8>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_spans_reach_an_otlp_collector_and_sigterm_flushes_them() {
    // A collector stand-in: records every POST, answers an empty (valid) export response.
    let received: Arc<Mutex<Vec<Export>>> = Arc::default();
    let sink = Arc::clone(&received);
    let collector = axum::Router::new().fallback(move |uri: Uri, body: Bytes| {
        let sink = Arc::clone(&sink);
        async move {
            sink.lock()
                .expect("collector lock")
                .push((uri.path().to_owned(), body.to_vec()));
            (
                [("content-type", "application/x-protobuf")],
                Vec::<u8>::new(),
            )
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let collector_url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, collector).await.expect("collector") });

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let dir = tempfile::TempDir::new().expect("tempdir");
    let config = dir.path().join("firesight.toml");
    std::fs::write(
        &config,
        format!(
            "[api]\nlisten = \"127.0.0.1:{port}\"\n[store]\npath = \"{}\"\n[embed]\nmanifest = \"{}\"\n[telemetry]\notlp_endpoint = \"{collector_url}\"\nservice_name = \"firesight-under-test\"\n",
            dir.path().join("db").display(),
            repo().join("models/manifest.json").display()
        ),
    )
    .expect("config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_firesight"))
        .args(["--config", config.to_str().expect("utf-8"), "serve"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start firesight serve");
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    loop {
        if reqwest::get(format!("{base}/readyz"))
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the service did not become ready"
        );
        assert!(
            child.try_wait().expect("wait").is_none(),
            "the service exited"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for path in ["/v1/fires?limit=1", "/v1/incidents", "/v1/fires/fd_nope"] {
        reqwest::get(format!("{base}{path}"))
            .await
            .expect("request");
    }

    // The shell's own `kill`: a bare Debian image may lack procps' /bin/kill.
    let terminated = Command::new("sh")
        .args(["-c", &format!("kill -TERM {}", child.id())])
        .status()
        .expect("kill -TERM");
    assert!(terminated.success());
    let exit = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("join")
        .expect("wait");
    assert!(exit.success(), "SIGTERM is a clean exit: {exit}");

    let received = received.lock().expect("collector lock");
    let traces: Vec<&Vec<u8>> = received
        .iter()
        .filter(|(path, _)| path == "/v1/traces")
        .map(|(_, body)| body)
        .collect();
    assert!(
        !traces.is_empty(),
        "no export reached /v1/traces: {:?}",
        received.iter().map(|r| &r.0).collect::<Vec<_>>()
    );
    let contains = |needle: &[u8]| {
        traces
            .iter()
            .any(|b| b.windows(needle.len()).any(|w| w == needle))
    };
    assert!(
        contains(b"firesight-under-test"),
        "the service name is on the resource"
    );
    assert!(
        contains(b"/v1/incidents"),
        "the request span names its route"
    );
    assert!(
        contains(b"/v1/fires/{id}"),
        "routes are templates, never raw ids"
    );
    assert!(
        !contains(b"fd_nope"),
        "raw ids stay out of span names and attributes"
    );
}

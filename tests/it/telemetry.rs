//! The real binary: request spans reach an OTLP/HTTP collector (plain, and over HTTPS with a
//! private CA), and SIGTERM shuts down cleanly (in-flight work finished, batched spans flushed,
//! exit status 0).

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::Uri;

use super::support::repo;

/// One request the collector received: its path and body.
pub(super) type Export = (String, Vec<u8>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_spans_reach_an_otlp_collector_and_sigterm_flushes_them() {
    spans_reach_a_collector(false).await;
}

/// The same through a collector served over HTTPS with a private CA's certificate, trusted
/// through `tls.ca_file`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_spans_reach_an_https_collector_through_a_private_ca() {
    spans_reach_a_collector(true).await;
}

async fn spans_reach_a_collector(https: bool) {
    let received: Arc<Mutex<Vec<Export>>> = Arc::default();
    let collector = collector_app(Arc::clone(&received));
    let dir = tempfile::TempDir::new().expect("tempdir");
    let mut tls = String::new();
    let collector_url = if https {
        let pki = super::tls::pki();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, &pki.ca_pem).expect("CA file");
        tls = format!("[tls]\nca_file = \"{}\"\n", ca.display());
        super::tls::serve_tls(collector, pki.server).await
    } else {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, collector).await.expect("collector") });
        url
    };

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let config = dir.path().join("firesight.toml");
    std::fs::write(
        &config,
        format!(
            "[api]\nlisten = \"127.0.0.1:{port}\"\n[store]\npath = \"{}\"\n[embed]\nmanifest = \"{}\"\n[telemetry]\notlp_endpoint = \"{collector_url}\"\nservice_name = \"firesight-under-test\"\n{tls}",
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

/// A collector stand-in: records every POST into `sink`, answers an empty (valid) export
/// response.
fn collector_app(sink: Arc<Mutex<Vec<Export>>>) -> axum::Router {
    axum::Router::new().fallback(move |uri: Uri, body: Bytes| {
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
    })
}

/// A collector stand-in on its own runtime: its base URL, and every export's path and body.
pub(super) fn collector() -> (String, Arc<Mutex<Vec<Export>>>, tokio::runtime::Runtime) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let received: Arc<Mutex<Vec<Export>>> = Arc::default();
    let app = collector_app(Arc::clone(&received));
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    runtime.spawn(async move { axum::serve(listener, app).await });
    (url, received, runtime)
}

/// Enough of OTLP's `ExportTraceServiceRequest` (opentelemetry-proto, trace/v1) to rebuild span
/// trees: the ids, the parent, the name and the links of each span; prost skips the rest.
pub(super) mod otlp {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Export {
        #[prost(message, repeated, tag = "1")]
        pub resource_spans: Vec<ResourceSpans>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ResourceSpans {
        #[prost(message, repeated, tag = "2")]
        pub scope_spans: Vec<ScopeSpans>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ScopeSpans {
        #[prost(message, repeated, tag = "2")]
        pub spans: Vec<Span>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Span {
        #[prost(bytes = "vec", tag = "1")]
        pub trace_id: Vec<u8>,
        #[prost(bytes = "vec", tag = "2")]
        pub span_id: Vec<u8>,
        #[prost(bytes = "vec", tag = "4")]
        pub parent_span_id: Vec<u8>,
        #[prost(string, tag = "5")]
        pub name: String,
        #[prost(fixed64, tag = "7")]
        pub start_time_unix_nano: u64,
        #[prost(fixed64, tag = "8")]
        pub end_time_unix_nano: u64,
        #[prost(message, repeated, tag = "13")]
        pub links: Vec<Link>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Link {
        #[prost(bytes = "vec", tag = "1")]
        pub trace_id: Vec<u8>,
        #[prost(bytes = "vec", tag = "2")]
        pub span_id: Vec<u8>,
    }

    /// Every span of every trace export received.
    pub fn spans(exports: &[super::Export]) -> Vec<Span> {
        use prost::Message as _;
        exports
            .iter()
            .filter(|(path, _)| path == "/v1/traces")
            .flat_map(|(_, body)| {
                Export::decode(body.as_slice())
                    .expect("an OTLP trace export")
                    .resource_spans
            })
            .flat_map(|r| r.scope_spans)
            .flat_map(|s| s.spans)
            .collect()
    }
}

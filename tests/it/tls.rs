//! TLS to HTTP peers, with a certificate from a private CA the tests make:
//! - the Weaviate mirror over HTTPS: with `tls.ca_file` naming that CA every event arrives, and
//!   without it none does, because the certificate is checked;
//! - the schema registry over HTTPS with basic auth from the URL's userinfo, as Confluent Cloud
//!   asks; the secret appears in no error;
//! - a CA file that cannot be used stops the start with its path and the reason.
//!
//! Kafka over TLS is in `kafka.rs` (`over_tls_…`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use firesight::stream::kafka::codec::WithRegistry as _;

use super::support::{settings, shared};
use super::weaviate::{StandIn, router};

/// A private CA (its PEM) and a server configuration with a certificate it signed for
/// 127.0.0.1 and localhost.
pub(super) struct Pki {
    pub(super) ca_pem: String,
    pub(super) server: rustls::ServerConfig,
}

pub(super) fn pki() -> Pki {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "FireSight test CA");
    let ca = ca_params.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca_params, ca_key);
    let server_key = KeyPair::generate().expect("server key");
    let server_params =
        CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("server params");
    let server_cert = server_params
        .signed_by(&server_key, &issuer)
        .expect("server certificate");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocols")
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(server_cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
        )
        .expect("server config");
    Pki {
        ca_pem: ca.pem(),
        server,
    }
}

/// Serves `app` over TLS on a free loopback port; its `https://` base URL.
pub(super) async fn serve_tls(app: axum::Router, server: rustls::ServerConfig) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("https://{}", listener.local_addr().expect("addr"));
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, app) = (acceptor.clone(), app.clone());
            tokio::spawn(async move {
                // A client that refuses the certificate ends its handshake here.
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), TowerToHyperService::new(app))
                    .await;
            });
        }
    });
    url
}

/// Loads a day of FIRMS detections with the mirror pointed at an HTTPS stand-in, runs the
/// mirror for at most `run_for`, and answers (events stored, objects the stand-in received,
/// failed mirror batches).
async fn mirror_over_https(
    ca_file: Option<&std::path::Path>,
    run_for: Duration,
) -> (usize, usize, u64) {
    let pki = pki();
    let stand_in = StandIn::new(Some("k-tls"));
    let url = serve_tls(router(stand_in.clone()), pki.server).await;
    let dir = tempfile::TempDir::new().expect("tempdir");
    let mut s = settings(dir.path());
    s.weaviate.url = url;
    s.weaviate.api_key = "k-tls".to_owned();
    s.weaviate.max_backoff_ms = 300;
    if let Some(path) = ca_file {
        std::fs::write(path, &pki.ca_pem).expect("CA file");
        s.tls.ca_file = path.display().to_string();
    }
    let file = shared("firms/MODIS_C6_USA_contiguous_and_Hawaii_24h.2020-10-01.csv");
    let service = super::support::open_async(s, vec![file]).await;
    let events = service.store.event_count() as usize;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mirror = service.mirror().expect("mirror").expect("configured");
    let mut rx = stopped.clone();
    let drainer = tokio::spawn(mirror.run(async move {
        let _ = rx.changed().await;
    }));
    let started = Instant::now();
    while started.elapsed() < run_for && stand_in.seen.lock().expect("seen").posted.len() < events {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = stop.send(true);
    drainer.await.expect("drainer");
    let seen = stand_in.seen.lock().expect("seen");
    assert!(
        seen.violations.is_empty(),
        "contract violations: {:?}",
        &seen.violations[..seen.violations.len().min(3)]
    );
    (
        events,
        seen.posted.len(),
        service.metrics.mirror_failures.get(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mirror_reaches_weaviate_over_https_through_a_private_ca_and_only_through_it() {
    let dir = tempfile::TempDir::new().expect("tempdir");
    let ca = dir.path().join("ca.pem");
    let (events, posted, _) = mirror_over_https(Some(&ca), Duration::from_secs(60)).await;
    assert!(events > 2000, "{events}");
    assert_eq!(
        posted, events,
        "every event reached Weaviate over HTTPS with its API key"
    );

    // The same stand-in and certificate without the CA: the certificate is not trusted, so
    // nothing is sent and every batch fails (and stays queued).
    let (events, posted, failures) = mirror_over_https(None, Duration::from_secs(3)).await;
    assert!(events > 2000);
    assert_eq!(
        posted, 0,
        "an untrusted certificate must stop every request"
    );
    assert!(
        failures >= 2,
        "failed batches are counted and retried: {failures}"
    );
}

#[test]
fn a_ca_file_that_cannot_be_used_is_refused_with_its_path_and_reason() {
    let dir = tempfile::TempDir::new().expect("tempdir");
    let missing = dir.path().join("missing.pem");
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").expect("write");
    for (path, reason) in [(&missing, "No such file"), (&empty, "no PEM certificate")] {
        let settings = firesight::config::TlsSettings {
            ca_file: path.display().to_string(),
        };
        let Err(error) = firesight::tls::Trust::load(&settings) else {
            panic!("{} was accepted", path.display());
        };
        let text = error.to_string();
        assert!(
            text.contains("tls.ca_file") && text.contains(&path.display().to_string()),
            "{text}"
        );
        assert!(text.contains(reason), "{text}");
    }
}

#[test]
fn the_schema_registry_is_reached_over_https_with_basic_auth_and_the_secret_is_never_shown() {
    let pki = pki();
    let registry = super::registry::Registry::start_with(Some(pki.server), Some(("KEY", "s3cret")));
    let dir = tempfile::TempDir::new().expect("tempdir");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).expect("CA file");
    let trust = firesight::tls::Trust::load(&firesight::config::TlsSettings {
        ca_file: ca.display().to_string(),
    })
    .expect("trust");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let with_userinfo = |userinfo: &str| {
        registry
            .url
            .replacen("https://", &format!("https://{userinfo}@"), 1)
    };
    let schemas = || firesight::stream::kafka::codec::Schemas::bundled().expect("schemas");

    let mut right = schemas()
        .with_registry(
            &with_userinfo("KEY:s3cret"),
            &trust,
            runtime.handle().clone(),
        )
        .expect("client");
    let id = right
        .register_output("fires-value")
        .expect("registered with basic auth over TLS");
    assert!(
        id >= 100,
        "the id is the registry's (from 100), not a bundled one: {id}"
    );

    let mut wrong = schemas()
        .with_registry(
            &with_userinfo("KEY:wr0ng-s3cret"),
            &trust,
            runtime.handle().clone(),
        )
        .expect("client");
    let error = wrong
        .register_output("fires-value")
        .expect_err("a wrong secret is refused")
        .to_string();
    assert!(error.contains("401"), "{error}");
    assert!(
        !error.contains("wr0ng"),
        "the secret leaked into the error: {error}"
    );

    let mut untrusted = schemas()
        .with_registry(
            &with_userinfo("KEY:s3cret"),
            &firesight::tls::Trust::default(),
            runtime.handle().clone(),
        )
        .expect("client");
    let error = untrusted
        .register_output("fires-value")
        .expect_err("an untrusted certificate")
        .to_string();
    assert!(
        !error.contains("s3cret"),
        "the secret leaked into the error: {error}"
    );
}

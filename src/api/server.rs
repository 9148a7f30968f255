//! The HTTP server loop: hyper, with the limits `axum::serve` leaves unset. A client must finish
//! its request head within `api.header_read_timeout_ms` (a client that trickles header lines is
//! cut off, not held for ever), at most `api.max_connections` connections are open at once (the
//! next waits in the kernel's backlog), and shutdown stops accepting, lets in-flight requests
//! finish for up to `api.shutdown_grace_ms`, then closes what is left.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::ServiceExt as _;

/// What the server loop enforces.
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    /// Longest a client may take to send its request head.
    pub header_read_timeout: Duration,
    /// Most connections open at once.
    pub max_connections: usize,
    /// Longest shutdown waits for in-flight requests.
    pub shutdown_grace: Duration,
}

impl ServerLimits {
    /// The limits of `settings`.
    pub fn of(settings: &crate::config::ApiSettings) -> Self {
        Self {
            header_read_timeout: Duration::from_millis(settings.header_read_timeout_ms),
            max_connections: settings.max_connections,
            shutdown_grace: Duration::from_millis(settings.shutdown_grace_ms),
        }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains as [`ServerLimits`] says.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()>,
) {
    let permits = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    let service = app.map_request(|request: hyper::Request<Incoming>| request.map(Body::new));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break, // the semaphore is never closed
            },
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of file descriptors, or a connection reset before it was taken:
                    // wait a little instead of spinning on the error.
                    tracing::warn!(%error, "Accepting a connection failed; retrying shortly.");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let connection = builder
            .serve_connection(
                TokioIo::new(stream),
                TowerToHyperService::new(service.clone()),
            )
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _ = connection.await;
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.shutdown_grace) => {
            tracing::warn!(grace_ms = limits.shutdown_grace.as_millis() as u64, "Connections still open after the shutdown grace; closing them.");
        }
    }
}

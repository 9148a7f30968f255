//! Liveness, readiness and the Prometheus endpoint.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde_json::json;

use super::AppState;
use crate::metrics::Metrics;
use crate::store::Store;

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The process is up: `{\"status\": \"ok\"}`", body = Object)))]
pub async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

/// Start-up is done: the index is rebuilt and requested files are loaded. (Before that,
/// `starting_router` answers this route with 503.)
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, description = "Ready: events, indexed, model_version, engine; `last_failed_batch` (stage, message, at_ms) when a batch has failed on a bug since start; `store_write_failure` while the store refuses writes (a full volume)", body = Object), (status = 503, description = "Still loading: `{\"ready\": false}`", body = Object)))]
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let space = state.pipeline.space();
    let mut body = json!({
        "ready": true,
        "events": state.store.event_count(),
        "indexed": space.index.len(),
        "model_version": space.embedder.model_version(),
        "engine": space.index.engine(),
    });
    // Still ready (the next batch is taken), but what broke is said.
    if let Some(failure) = state.pipeline.last_failure() {
        body["last_failed_batch"] = json!(failure);
    }
    // Reads still work; writes do not until a write succeeds again (e.g. space was freed).
    if let Some(error) = state.store.write_failure() {
        body["store_write_failure"] = json!(error);
    }
    Json(body)
}

/// Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition", body = String, content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let indexed = state.pipeline.space().index.len();
    state.metrics.index_vectors.set(indexed as i64);
    state
        .metrics
        .store_events
        .set(state.store.event_count() as i64);
    let (store, metrics) = (state.store.clone(), state.metrics.clone());
    // RocksDB reads (properties, the outboxes' ends): off the async workers.
    if let Err(error) = tokio::task::spawn_blocking(move || state_gauges(&store, &metrics)).await {
        tracing::warn!(%error, "Refreshing the store gauges failed.");
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

/// Sets the gauges read from the store at scrape time: outbox depths and state size.
fn state_gauges(store: &Store, metrics: &Metrics) {
    let depths = [
        ("kafka", store.kafka_outbox_depth()),
        ("mirror", store.mirror_outbox_depth(100_000)),
    ];
    for (outbox, depth) in depths {
        match depth {
            Ok(depth) => metrics
                .outbox_depth
                .with_label_values(&[outbox])
                .set(i64::try_from(depth).unwrap_or(i64::MAX)),
            Err(error) => tracing::warn!(outbox, %error, "Reading the outbox depth failed."),
        }
    }
    match store.sizes() {
        Ok(sizes) => {
            for (family, sst, memtable) in sizes {
                for (kind, bytes) in [("sst", sst), ("memtable", memtable)] {
                    metrics
                        .store_size
                        .with_label_values(&[family, kind])
                        .set(i64::try_from(bytes).unwrap_or(i64::MAX));
                }
            }
        }
        Err(error) => tracing::warn!(%error, "Reading the store's size failed."),
    }
}

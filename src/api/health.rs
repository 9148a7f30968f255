//! Liveness, readiness and the Prometheus endpoint.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde_json::json;

use super::AppState;

/// The process is up.
pub async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

/// Start-up is done: the index is rebuilt and requested files are loaded. (Before that,
/// `starting_router` answers this route with 503.)
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let space = state.pipeline.space();
    Json(json!({
        "ready": true,
        "events": state.store.event_count(),
        "indexed": space.index.len(),
        "model_version": space.embedder.model_version(),
        "engine": space.index.engine(),
    }))
}

/// Prometheus text exposition.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let indexed = state.pipeline.space().index.len();
    state.metrics.index_vectors.set(indexed as i64);
    state
        .metrics
        .store_events
        .set(state.store.event_count() as i64);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

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
    Json(json!({
        "ready": true,
        "events": state.store.event_count(),
        "indexed": state.index.len(),
        "model_version": state.embedder.model_version(),
    }))
}

/// Prometheus text exposition.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    state.metrics.index_vectors.set(state.index.len() as i64);
    state
        .metrics
        .store_events
        .set(state.store.event_count() as i64);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

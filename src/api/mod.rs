//! The HTTP API (axum): ingest, listing, similarity, health and metrics.

pub mod admin;
mod alerts;
pub mod auth;
mod error;
mod fires;
mod geojson;
mod health;
mod incidents;
mod ingest;
mod map;
mod ogc;
pub mod openapi;
mod patterns;
mod search;
pub mod server;
mod stations;

pub use error::ApiError;

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use tower::ServiceExt;
use tower_http::trace::TraceLayer;

use crate::config::{ApiSettings, Role};
use crate::metrics::Metrics;
use crate::store::Store;
use crate::stream::Pipeline;

/// Body limit for the small JSON routes (ingest routes enforce `api.max_body_bytes` themselves).
const QUERY_BODY_LIMIT: usize = 1024 * 1024;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// Pipeline for ingest.
    pub pipeline: Arc<Pipeline>,
    /// Store for reads.
    pub store: Arc<Store>,
    /// Metrics.
    pub metrics: Metrics,
    /// API limits.
    pub settings: ApiSettings,
    /// Records per pipeline batch for ingest routes.
    pub ingest_batch: usize,
    /// Weaviate, when it answers similarity queries instead of the local index.
    pub remote: Option<crate::weaviate::WeaviateSearch>,
    /// API keys.
    pub keys: Arc<auth::KeyRing>,
    /// Clustering and outlier limits.
    pub patterns: crate::config::PatternSettings,
    /// Natural-language search, when switched on.
    pub search: Option<Arc<crate::search::SearchState>>,
}

/// The router with every route, the request span and the HTTP metrics.
pub fn router(state: AppState) -> Router {
    let ingest_routes = Router::new()
        .route("/v1/events/firms", post(ingest::firms))
        .route("/v1/events/weather", post(ingest::weather))
        .route("/v1/events/sensors", post(ingest::sensors))
        .route("/v1/stations", post(ingest::stations))
        .layer(DefaultBodyLimit::disable())
        .merge(
            Router::new()
                .route(
                    "/v1/historical-incidents",
                    post(search::historical_incidents),
                )
                .layer(DefaultBodyLimit::max(state.settings.max_body_bytes)),
        );
    let query_routes = Router::new()
        .route("/v1/fires", get(fires::list))
        .route("/v1/fires/{id}", get(fires::get_one))
        .route("/v1/fires/{id}/similar", get(fires::similar_to_event))
        .route("/v1/similar", post(fires::similar))
        .route("/v1/dead-letters", get(fires::dead_letters))
        .route("/v1/stations", get(stations::list))
        .route(
            "/v1/stations/{id}/fire-weather",
            get(stations::fire_weather),
        )
        .route("/v1/clusters", get(patterns::clusters))
        .route("/v1/outliers", get(patterns::outliers))
        .route("/v1/incidents", get(incidents::list))
        .route("/v1/incidents/{id}", get(incidents::get_one))
        .route("/v1/views/active-fires", get(incidents::active_fires))
        .route("/v1/views/growth-alerts", get(incidents::growth_alerts))
        .route("/v1/alerts", get(alerts::list))
        .route("/v1/alerts/stream", get(alerts::stream))
        .route("/v1/search", post(search::search))
        .route("/v1/predict", post(search::predict))
        .route("/ogc", get(ogc::landing))
        .route("/ogc/conformance", get(ogc::conformance))
        .route("/ogc/collections", get(ogc::collections))
        .route("/ogc/collections/{collection}", get(ogc::collection))
        .route("/ogc/collections/{collection}/items", get(ogc::items))
        .route("/ogc/collections/{collection}/items/{id}", get(ogc::item))
        .layer(DefaultBodyLimit::max(QUERY_BODY_LIMIT))
        .layer(middleware::from_fn_with_state(
            Duration::from_millis(state.settings.request_timeout_ms),
            time_limit,
        ));
    // Probes and metrics stay open: orchestrators and scrapers carry no keys.
    let open_routes = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/openapi.json", get(openapi_json))
        .route("/docs", get(docs_page))
        .route("/", get(map::root))
        .route("/map", get(map::page))
        .route("/map/{*path}", get(map::asset));
    let keys = Arc::clone(&state.keys);
    let cors = cors(&state.settings.cors_allowed_origins);
    Router::new()
        .merge(auth::require(ingest_routes, Arc::clone(&keys), Role::Write))
        .merge(auth::require(query_routes, keys, Role::Read))
        .merge(open_routes)
        .fallback(no_route)
        // gzip for clients that ask: the map's script and GeoJSON pages shrink about 4x.
        // Server-Sent Events, gRPC and images are left alone (tower-http's default predicate).
        .layer(tower_http::compression::CompressionLayer::new().gzip(true))
        .layer(cors)
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let route = req
                .extensions()
                .get::<MatchedPath>()
                .map_or("unmatched", |p| p.as_str())
                .to_owned();
            tracing::info_span!("request", method = %req.method(), route)
        }))
        .with_state(state)
}

/// The router served from the moment the port is bound: liveness at once, `/readyz` 503 and every
/// other route 503 `starting` until `slot` holds the full router, which then answers everything.
///
/// Start-up (loading files, rebuilding the index) can take minutes at scale; answering liveness
/// meanwhile keeps an orchestrator from killing a healthy instance that is still loading.
pub fn starting_router(slot: Arc<OnceLock<Router>>) -> Router {
    Router::new().fallback(move |request: Request| {
        let slot = Arc::clone(&slot);
        async move {
            let Some(app) = slot.get() else {
                return while_starting(request.uri().path());
            };
            match app.clone().oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            }
        }
    })
}

fn while_starting(path: &str) -> Response {
    match path {
        "/healthz" => Json(json!({"status": "ok"})).into_response(),
        "/readyz" => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"ready": false})),
        )
            .into_response(),
        _ => ApiError::Starting.into_response(),
    }
}

/// Answers 503 `timeout` when the handler runs past `limit`. Work already handed to a blocking
/// thread finishes there (it cannot be interrupted) but its result is dropped.
async fn time_limit(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::Timeout(limit.as_millis() as u64).into_response(),
    }
}

/// CORS for the configured origins; none configured sends no CORS headers at all.
fn cors(origins: &[String]) -> tower_http::cors::CorsLayer {
    use axum::http::{HeaderName, HeaderValue, Method, header};
    let allowed: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    tower_http::cors::CorsLayer::new()
        .allow_origin(allowed)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            HeaderName::from_static("x-api-key"),
        ])
        .max_age(Duration::from_secs(600))
}

/// The OpenAPI document, generated once.
async fn openapi_json() -> Response {
    static DOC: OnceLock<String> = OnceLock::new();
    let doc = DOC.get_or_init(openapi::document).clone();
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        doc,
    )
        .into_response()
}

/// A browsable page over `/openapi.json`, self-contained (no CDN), so it works offline.
async fn docs_page() -> axum::response::Html<&'static str> {
    axum::response::Html(include_str!("assets/docs.html"))
}

/// Unknown paths get the same JSON error shape as everything else.
async fn no_route(uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound {
        what: "route",
        id: uri.path().to_owned(),
    }
}

/// Counts requests by route template (never the raw path: ids would make labels unbounded).
async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    state
        .metrics
        .http_requests
        .with_label_values(&[&route, &method, &status])
        .inc();
    state
        .metrics
        .http_seconds
        .with_label_values(&[&route])
        .observe(started.elapsed().as_secs_f64());
    response
}

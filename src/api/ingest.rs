//! Ingest routes: CSV or NDJSON bodies, streamed through the pipeline in batches.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use futures_util::StreamExt;

use super::{ApiError, AppState};
use crate::event::{FireDetection, SensorReading, Station, WeatherObservation};
use crate::stream::decode::{
    CsvStream, FirmsDecoder, JsonDecoder, JsonEvent, RecordDecoder, StationDecoder, StreamDecoder,
    WeatherDecoder,
};
use crate::stream::{IngestOutcome, IngestSession, Ingestible};

/// How a body is encoded.
enum BodyFormat {
    Csv,
    NdJson,
}

fn body_format(headers: &HeaderMap, csv_allowed: bool) -> Result<BodyFormat, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/x-ndjson" | "application/json" => Ok(BodyFormat::NdJson),
        "" | "text/csv" | "text/plain" | "application/csv" if csv_allowed => Ok(BodyFormat::Csv),
        _ => Err(ApiError::UnsupportedMediaType {
            content_type: content_type.to_owned(),
            accepted: if csv_allowed {
                "text/csv or application/x-ndjson"
            } else {
                "application/x-ndjson"
            },
        }),
    }
}

/// `POST /v1/events/firms`: FIRMS CSV (MODIS or VIIRS columns) or detection NDJSON.
#[utoipa::path(post, path = "/v1/events/firms", tag = "ingest",
    request_body(description = "FIRMS CSV (MODIS or VIIRS columns, archive or NRT) or detection NDJSON", content((String = "text/csv"), (String = "application/x-ndjson"))),
    responses((status = 200, description = "What was stored and what was refused", body = crate::stream::IngestOutcome), (status = 408, description = "The body paused longer than `api.body_idle_timeout_ms`", body = crate::api::error::ErrorBody), (status = 413, description = "Body over `api.max_body_bytes`", body = crate::api::error::ErrorBody), (status = 415, description = "Content type not accepted", body = crate::api::error::ErrorBody), (status = 422, description = "Well-formed but not processable; `field` names what", body = crate::api::error::ErrorBody), (status = 507, description = "The store's volume is full: the batch that failed was not stored (those answered before it were); send it again once space is freed", body = crate::api::error::ErrorBody), crate::api::openapi::CommonErrors),
    security(("api_key" = [])))]
pub async fn firms(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<IngestOutcome>, ApiError> {
    csv_or_ndjson::<FirmsDecoder, FireDetection>(state, headers, body, "http:/v1/events/firms")
        .await
}

/// `POST /v1/events/weather`: BOM daily-observation CSV or observation NDJSON.
#[utoipa::path(post, path = "/v1/events/weather", tag = "ingest",
    request_body(description = "BOM daily-observation CSV or observation NDJSON", content((String = "text/csv"), (String = "application/x-ndjson"))),
    responses((status = 200, description = "What was stored and what was refused", body = crate::stream::IngestOutcome), (status = 408, description = "The body paused longer than `api.body_idle_timeout_ms`", body = crate::api::error::ErrorBody), (status = 413, description = "Body over `api.max_body_bytes`", body = crate::api::error::ErrorBody), (status = 415, description = "Content type not accepted", body = crate::api::error::ErrorBody), (status = 422, description = "Well-formed but not processable; `field` names what", body = crate::api::error::ErrorBody), (status = 507, description = "The store's volume is full: the batch that failed was not stored (those answered before it were); send it again once space is freed", body = crate::api::error::ErrorBody), crate::api::openapi::CommonErrors),
    security(("api_key" = [])))]
pub async fn weather(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<IngestOutcome>, ApiError> {
    csv_or_ndjson::<WeatherDecoder, WeatherObservation>(
        state,
        headers,
        body,
        "http:/v1/events/weather",
    )
    .await
}

/// `POST /v1/stations`: the BOM station list CSV or station NDJSON.
#[utoipa::path(post, path = "/v1/stations", tag = "ingest",
    request_body(description = "The BOM station list CSV or station NDJSON", content((String = "text/csv"), (String = "application/x-ndjson"))),
    responses((status = 200, description = "What was stored and what was refused", body = crate::stream::IngestOutcome), (status = 408, description = "The body paused longer than `api.body_idle_timeout_ms`", body = crate::api::error::ErrorBody), (status = 413, description = "Body over `api.max_body_bytes`", body = crate::api::error::ErrorBody), (status = 415, description = "Content type not accepted", body = crate::api::error::ErrorBody), (status = 422, description = "Well-formed but not processable; `field` names what", body = crate::api::error::ErrorBody), (status = 507, description = "The store's volume is full: the batch that failed was not stored (those answered before it were); send it again once space is freed", body = crate::api::error::ErrorBody), crate::api::openapi::CommonErrors),
    security(("api_key" = [])))]
pub async fn stations(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<IngestOutcome>, ApiError> {
    csv_or_ndjson::<StationDecoder, Station>(state, headers, body, "http:/v1/stations").await
}

/// `POST /v1/events/sensors`: sensor-reading NDJSON.
#[utoipa::path(post, path = "/v1/events/sensors", tag = "ingest",
    request_body(description = "Sensor-reading NDJSON", content((String = "application/x-ndjson"))),
    responses((status = 200, description = "What was stored and what was refused", body = crate::stream::IngestOutcome), (status = 408, description = "The body paused longer than `api.body_idle_timeout_ms`", body = crate::api::error::ErrorBody), (status = 413, description = "Body over `api.max_body_bytes`", body = crate::api::error::ErrorBody), (status = 415, description = "Content type not accepted", body = crate::api::error::ErrorBody), (status = 422, description = "Well-formed but not processable; `field` names what", body = crate::api::error::ErrorBody), (status = 507, description = "The store's volume is full: the batch that failed was not stored (those answered before it were); send it again once space is freed", body = crate::api::error::ErrorBody), crate::api::openapi::CommonErrors),
    security(("api_key" = [])))]
pub async fn sensors(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<IngestOutcome>, ApiError> {
    body_format(&headers, false)?;
    run(
        state,
        &headers,
        body,
        JsonDecoder::<SensorReading>::new(),
        "http:/v1/events/sensors",
    )
    .await
}

/// Picks the CSV format `C` or the NDJSON form of `J` from the content type.
async fn csv_or_ndjson<C, J>(
    state: AppState,
    headers: HeaderMap,
    body: Body,
    source: &str,
) -> Result<Json<IngestOutcome>, ApiError>
where
    C: RecordDecoder + Send + 'static,
    C::Item: Ingestible,
    J: JsonEvent + Ingestible,
{
    match body_format(&headers, true)? {
        BodyFormat::Csv => run(state, &headers, body, CsvStream::<C>::new(), source).await,
        BodyFormat::NdJson => run(state, &headers, body, JsonDecoder::<J>::new(), source).await,
    }
}

/// Streams the body through a session; CPU work runs on the blocking pool one chunk at a time.
async fn run<D>(
    state: AppState,
    headers: &HeaderMap,
    body: Body,
    decoder: D,
    source: &str,
) -> Result<Json<IngestOutcome>, ApiError>
where
    D: StreamDecoder + Send + 'static,
    D::Item: Ingestible,
{
    let limit = state.settings.max_body_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::PayloadTooLarge {
            limit,
            detail: String::new(),
        });
    }
    let mut session = IngestSession::new(
        Arc::clone(&state.pipeline),
        decoder,
        source,
        state.ingest_batch,
    );
    let mut stream = body.into_data_stream();
    let mut received = 0usize;
    let idle_ms = state.settings.body_idle_timeout_ms;
    let idle = std::time::Duration::from_millis(idle_ms);
    loop {
        let Ok(next) = tokio::time::timeout(idle, stream.next()).await else {
            return Err(ApiError::BodyTimeout {
                idle_ms,
                detail: format!(
                    "; the first {} lines were read and complete batches among them were stored. Re-sending is safe: ids are derived from content",
                    session.lines_seen()
                ),
            });
        };
        let Some(chunk) = next else { break };
        let chunk = chunk.map_err(|e| ApiError::bad("body", format!("could not be read: {e}")))?;
        received += chunk.len();
        if received > limit {
            return Err(ApiError::PayloadTooLarge {
                limit,
                detail: format!(
                    "; the first {} lines were read and complete batches among them were stored. Re-sending is safe: ids are derived from content",
                    session.lines_seen()
                ),
            });
        }
        session =
            tokio::task::spawn_blocking(move || session.push(&chunk).map(|()| session)).await??;
    }
    let outcome = tokio::task::spawn_blocking(move || session.finish()).await??;
    Ok(Json(outcome))
}

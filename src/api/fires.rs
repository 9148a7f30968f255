//! Reading events and querying by similarity.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{ApiError, AppState, geojson};
use crate::event::{FireDetection, FireEventV2};
use crate::index::{Neighbour, SearchFilter};
use crate::patterns::Explanation;
use crate::store::DeadLetter;
use crate::stream::decode::{JsonDecoder, json_error};
use crate::weaviate::{RemoteHit, WeaviateSearch};
use firesight_core::params::Params;

const DEFAULT_PAGE: usize = 50;
const DEFAULT_K: usize = 10;

/// A page of events, newest first.
#[derive(Serialize, utoipa::ToSchema)]
pub struct FirePage {
    /// Events on this page.
    pub items: Vec<FireEventV2>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Events one page may look at when a `bbox` filters them out: a page that matches little ends
/// early with a cursor to go on from, so no request scans the whole store.
const MAX_SCANNED_PER_PAGE: usize = 50_000;

/// Largest GeoJSON page of `/v1/fires`: it is written while it is read, so its size costs no
/// memory.
const MAX_STREAMED_PAGE: usize = 50_000;

/// `GET /v1/fires?limit=&from=&to=&bbox=&cursor=&f=`.
#[utoipa::path(get, path = "/v1/fires", tag = "fires",
    params(
        ("limit" = Option<usize>, Query, description = "Page size (default 50): 1 to api.max_page_size (1000) for JSON; up to 50,000 with f=geojson, which is streamed as it is read", minimum = 1, maximum = 50000),
        ("from" = Option<crate::api::openapi::TimeBound>, Query, description = "Earliest detection: RFC 3339 or YYYY-MM-DD"),
        ("to" = Option<crate::api::openapi::TimeBound>, Query, description = "Latest detection: RFC 3339 or YYYY-MM-DD"),
        ("bbox" = Option<String>, Query, description = "Only detections inside `min_lon,min_lat,max_lon,max_lat` (west > east crosses the antimeridian). A page looks at no more than 50,000 events, so a bbox that matches little can give a short page with a `next_cursor`"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page", pattern = "^([0-9a-fA-F]{2}){8,}$"),
        ("f" = Option<String>, Query, description = "`geojson` for a FeatureCollection of points (also by `Accept: application/geo+json`), `json` (default)"),
    ),
    responses((status = 200, description = "Events, newest first (JSON, or GeoJSON points)", body = FirePage), crate::api::openapi::CommonErrors),
    security((), ("api_key" = [])))]
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(raw): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let params = Params::new(raw, &["limit", "from", "to", "bbox", "cursor", "f"])?;
    let as_geojson = geojson::wanted(&params, &headers)?;
    let most = if as_geojson {
        MAX_STREAMED_PAGE
    } else {
        state.settings.max_page_size
    };
    let limit = params.bounded("limit", DEFAULT_PAGE, 1, most)?;
    let from = params
        .time("from", false)?
        .map_or(i64::MIN, |t| t.timestamp_millis());
    let to = params
        .time("to", true)?
        .map_or(i64::MAX, |t| t.timestamp_millis());
    if from > to {
        return Err(ApiError::bad("from", "must not be after `to`"));
    }
    let bbox = params.bbox()?;
    let cursor = params.event_cursor()?;
    let store = state.store.clone();
    let inside = move |e: &FireEventV2| {
        bbox.as_ref()
            .is_none_or(|b| b.contains(e.location.latitude as f32, e.location.longitude as f32))
    };
    let max_scanned = if bbox.is_some() {
        MAX_SCANNED_PER_PAGE
    } else {
        usize::MAX
    };
    if as_geojson {
        return Ok(geojson::streamed(move |sink| {
            let next = store.visit_events_where(
                from,
                to,
                cursor.as_deref(),
                limit,
                max_scanned,
                inside,
                |event| sink(geojson::fire_feature(&event)),
            )?;
            Ok(json!({ "next_cursor": next }))
        }));
    }
    let page = tokio::task::spawn_blocking(move || {
        store.list_events_where(from, to, cursor.as_deref(), limit, max_scanned, inside)
    })
    .await??;
    Ok(Json(FirePage {
        items: page.events,
        next_cursor: page.next_cursor,
    })
    .into_response())
}

/// `GET /v1/fires/{id}`: the stored `FireEventV2`.
#[utoipa::path(get, path = "/v1/fires/{id}", tag = "fires",
    params(("id" = String, Path, description = "Event id (`fd_...`)"),
        ("f" = Option<String>, Query, description = "`geojson` for a Point Feature with flat properties (also by `Accept: application/geo+json`)")),
    responses((status = 200, description = "The stored FireEventV2 (or a GeoJSON Feature)", body = FireEventV2), (status = 400, description = "A parameter is invalid (e.g. an empty or unknown `f`); `field` names it", body = crate::api::error::ErrorBody), (status = 401, description = "No API key, or an unknown one", body = crate::api::error::ErrorBody), (status = 403, description = "The key's role is too low", body = crate::api::error::ErrorBody), (status = 404, description = "Not found", body = crate::api::error::ErrorBody), (status = 503, description = "Still starting", body = crate::api::error::ErrorBody)),
    security((), ("api_key" = [])))]
pub async fn get_one(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(raw): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let params = Params::new(raw, &["f"])?;
    let as_geojson = geojson::wanted(&params, &headers)?;
    let store = state.store.clone();
    let lookup = id.clone();
    let event = tokio::task::spawn_blocking(move || store.event(&lookup))
        .await??
        .ok_or(ApiError::NotFound {
            what: "fire event",
            id,
        })?;
    if as_geojson {
        return Ok(geojson::response(&geojson::fire_feature(&event)));
    }
    Ok(Json(event).into_response())
}

/// The answer to a similarity query.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SimilarResponse {
    /// Encoder of the vectors compared.
    pub model_version: String,
    /// The query event, when the query was an event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query_event_id: Option<String>,
    /// Nearest first.
    pub neighbours: Vec<SimilarFire>,
}

/// One neighbour with a summary of its event.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SimilarFire {
    /// Event id.
    pub event_id: String,
    /// L2 distance in embedding space.
    pub distance: f32,
    /// What the event is, in brief.
    pub summary: FireSummary,
    /// With `explain=true`: which features separate it from the query and which do not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explain: Option<Explanation>,
}

/// A short description of an event.
#[derive(Serialize, utoipa::ToSchema)]
pub struct FireSummary {
    /// Detection time, RFC 3339.
    pub detection_time: String,
    /// Latitude.
    pub latitude: f64,
    /// Longitude.
    pub longitude: f64,
    /// Satellite.
    pub satellite: String,
    /// Fire radiative power, MW.
    pub frp_mw: f64,
    /// Confidence class.
    pub confidence: crate::event::ConfidenceClass,
    /// Weather station joined, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weather_station: Option<String>,
    /// Max temperature that day, °C.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_temp_c: Option<f64>,
}

impl From<&FireEventV2> for FireSummary {
    fn from(e: &FireEventV2) -> Self {
        let time = chrono::DateTime::from_timestamp_millis(e.detection_time).unwrap_or_default();
        Self {
            detection_time: time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            latitude: e.location.latitude,
            longitude: e.location.longitude,
            satellite: e.source.satellite.clone(),
            frp_mw: e.fire_characteristics.frp_mw,
            confidence: e.fire_characteristics.confidence,
            weather_station: e
                .weather_conditions
                .as_ref()
                .map(|w| w.station_name.clone()),
            max_temp_c: e.weather_conditions.as_ref().and_then(|w| w.max_temp_c),
        }
    }
}

/// `GET /v1/fires/{id}/similar?k=10`: the events nearest to a stored event, itself excluded,
/// optionally only those passing `from`, `to`, `bbox`, `source`, `min_confidence`, `incident`.
#[utoipa::path(get, path = "/v1/fires/{id}/similar", tag = "similarity",
    params(
        ("id" = String, Path, description = "Event id (`fd_...`)"),
        ("k" = Option<usize>, Query, description = "Neighbours, 1 to api.max_k (default 10)", minimum = 1, maximum = 1000),
        ("explain" = Option<bool>, Query, description = "Say which features separate each match from the query"),
        crate::api::openapi::WindowFilters,
        ("incident" = Option<String>, Query, description = "Only events of this incident", min_length = 1),
        ("f" = Option<String>, Query, description = "`geojson` for a FeatureCollection of the neighbours as points (also by `Accept: application/geo+json`), `json` (default)"),
    ),
    responses((status = 200, description = "Nearest first, the event itself excluded (JSON, or GeoJSON points)", body = SimilarResponse), (status = 404, description = "Not found", body = crate::api::error::ErrorBody), (status = 502, description = "The query backend (Weaviate) failed", body = crate::api::error::ErrorBody), crate::api::openapi::CommonErrors),
    security((), ("api_key" = [])))]
pub async fn similar_to_event(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(raw): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let known: Vec<&str> = ["k", "explain", "f"]
        .into_iter()
        .chain(FILTER_PARAMS)
        .collect();
    let params = Params::new(raw, &known)?;
    let as_geojson = geojson::wanted(&params, &headers)?;
    let k = params.bounded("k", DEFAULT_K, 1, state.settings.max_k)?;
    let explain = params.flag("explain")?;
    let filter = params.filter()?;
    if let Some(remote) = state.remote.clone() {
        let mut response =
            similar_to_event_remote(state.clone(), &remote, id.clone(), k, &filter).await?;
        if explain {
            let query = lookup_event(&state, &id).await?;
            response.neighbours = explained(&state, query, response.neighbours).await?;
        }
        return Ok(similar_answer(response, as_geojson));
    }
    let response = tokio::task::spawn_blocking(move || {
        let seq = state.store.seq_of(&id)?.ok_or_else(|| ApiError::NotFound {
            what: "fire event",
            id: id.clone(),
        })?;
        let space = state.pipeline.space();
        let model = space.embedder.model_version();
        let stored = state
            .store
            .vector(seq, model)?
            .ok_or_else(|| ApiError::Internal(format!("no {model} vector for {id} (seq {seq})")))?;
        let hits = space
            .index
            .search_filtered(&stored.vector, k + 1, Some(&filter))?;
        let hits: Vec<Neighbour> = hits.into_iter().filter(|n| n.seq != seq).take(k).collect();
        let mut neighbours = describe(&state, model, &hits)?;
        if explain && let Some(query) = state.store.event(&id)? {
            neighbours = explain_all(&state, &query, neighbours)?;
        }
        Ok::<_, ApiError>(SimilarResponse {
            model_version: stored.model_version,
            query_event_id: Some(id),
            neighbours,
        })
    })
    .await??;
    Ok(similar_answer(response, as_geojson))
}

/// A similarity answer as JSON, or as GeoJSON: one Point per neighbour, nearest first, with its
/// rank, distance, summary and (when asked) the explanation as properties.
fn similar_answer(response: SimilarResponse, as_geojson: bool) -> Response {
    if !as_geojson {
        return Json(response).into_response();
    }
    let features = response
        .neighbours
        .iter()
        .enumerate()
        .map(|(rank, n)| {
            let s = &n.summary;
            let point = json!({"type": "Point", "coordinates": [s.longitude, s.latitude]});
            let mut properties = json!({
                "rank": rank + 1,
                "event_id": n.event_id,
                "distance": n.distance,
                "detection_time": s.detection_time,
                "satellite": s.satellite,
                "frp_mw": s.frp_mw,
                "confidence": s.confidence,
                "weather_station": s.weather_station,
                "max_temp_c": s.max_temp_c,
            });
            if let (Some(explain), Some(map)) = (&n.explain, properties.as_object_mut()) {
                map.insert("explain".into(), json!(explain));
            }
            geojson::feature(&n.event_id, point, properties, &[])
        })
        .collect();
    geojson::response(&geojson::collection(
        features,
        json!({"model_version": response.model_version, "query_event_id": response.query_event_id}),
    ))
}

/// Body of `POST /v1/similar`: exactly one of `vector` and `detection`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SimilarRequest {
    /// Neighbours wanted (default 10).
    #[schema(minimum = 1, maximum = 1000)]
    pub k: Option<usize>,
    /// A vector in the current model's space.
    pub vector: Option<Vec<f32>>,
    /// A detection's fields (the JSON form of a FIRMS row); it is correlated and embedded.
    pub detection: Option<serde_json::Value>,
    /// The filters of `GET /v1/fires/{id}/similar`, as strings: `{"bbox": "140,-39,154,-28"}`.
    #[serde(default)]
    pub filters: HashMap<String, String>,
    /// Explain each match (needs `detection`: a bare vector has no features to compare).
    #[serde(default)]
    pub explain: bool,
}

/// The filter parameters both similarity routes take.
const FILTER_PARAMS: [&str; 6] = ["from", "to", "bbox", "source", "min_confidence", "incident"];

/// `POST /v1/similar`.
#[utoipa::path(post, path = "/v1/similar", tag = "similarity",
    request_body = SimilarRequest,
    responses((status = 200, description = "Nearest first", body = SimilarResponse), (status = 413, description = "Body over `api.max_body_bytes`", body = crate::api::error::ErrorBody), (status = 502, description = "The query backend (Weaviate) failed", body = crate::api::error::ErrorBody), crate::api::openapi::CommonErrors),
    security((), ("api_key" = [])))]
pub async fn similar(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<SimilarResponse>, ApiError> {
    let request: SimilarRequest =
        serde_json::from_slice(&body).map_err(|e| ApiError::from(json_error(0, &e)))?;
    let k = request.k.unwrap_or(DEFAULT_K);
    if k == 0 || k > state.settings.max_k {
        return Err(ApiError::bad(
            "k",
            format!("{k} is outside [1, {}]", state.settings.max_k),
        ));
    }
    let filter = Params::new(request.filters, &FILTER_PARAMS)
        .and_then(|p| p.filter())
        .map_err(|e| ApiError::bad(format!("filters.{}", e.field), e.reason))?;
    if request.explain && request.detection.is_none() {
        return Err(ApiError::bad(
            "explain",
            "needs `detection`: a bare vector has no features to compare",
        ));
    }
    let remote = state.remote.clone();
    let query_state = state.clone();
    let local_filter = filter.clone();
    let (vector, hits, model, query) = tokio::task::spawn_blocking(move || {
        let state = query_state;
        let space = state.pipeline.space();
        let (vector, query) = match (request.vector, request.detection) {
            (Some(v), None) => (v, None),
            (None, Some(d)) => {
                let (v, event) = embed_detection(&state, &d)?;
                (v, Some(event))
            }
            _ => {
                return Err(ApiError::bad(
                    "vector",
                    "give exactly one of `vector` and `detection`",
                ));
            }
        };
        let model = space.embedder.model_version();
        crate::index::check_vector(space.index.dim(), &vector)?;
        // With Weaviate as the backend, the local index is not asked.
        let hits = match remote {
            Some(_) => Vec::new(),
            None => space
                .index
                .search_filtered(&vector, k, Some(&local_filter))?,
        };
        Ok::<_, ApiError>((vector, hits, model.to_owned(), query))
    })
    .await??;
    let mut neighbours = match &state.remote {
        Some(remote) => {
            let hits = remote.near_vector(&model, &vector, k, &filter).await?;
            describe_remote(&state, hits).await?
        }
        None => {
            let (state, model) = (state.clone(), model.clone());
            tokio::task::spawn_blocking(move || describe(&state, &model, &hits)).await??
        }
    };
    if let Some(query) = query.filter(|_| request.explain) {
        neighbours = explained(&state, query, neighbours).await?;
    }
    Ok(Json(SimilarResponse {
        model_version: model,
        query_event_id: None,
        neighbours,
    }))
}

/// `similar_to_event` answered by Weaviate. The query vector comes from the local store, or
/// from Weaviate when this instance does not hold the event (another instance ingested it).
async fn similar_to_event_remote(
    state: AppState,
    remote: &WeaviateSearch,
    id: String,
    k: usize,
    filter: &SearchFilter,
) -> Result<SimilarResponse, ApiError> {
    let model = state.pipeline.space().embedder.model_version().to_owned();
    let (store, lookup, space) = (state.store.clone(), id.clone(), model.clone());
    let local = tokio::task::spawn_blocking(move || {
        let Some(seq) = store.seq_of(&lookup)? else {
            return Ok::<_, ApiError>(None);
        };
        Ok(store.vector(seq, &space)?.map(|v| v.vector))
    })
    .await??;
    let vector = match local {
        Some(v) => v,
        None => remote
            .vector_of(&id, &model)
            .await?
            .ok_or_else(|| ApiError::NotFound {
                what: "fire event",
                id: id.clone(),
            })?,
    };
    let hits = remote.near_vector(&model, &vector, k + 1, filter).await?;
    let hits: Vec<RemoteHit> = hits
        .into_iter()
        .filter(|h| h.event_id != id)
        .take(k)
        .collect();
    Ok(SimilarResponse {
        model_version: model,
        query_event_id: Some(id),
        neighbours: describe_remote(&state, hits).await?,
    })
}

/// Summaries for Weaviate's hits: from the local store when it holds the event (with its
/// weather), else from the properties Weaviate returned.
async fn describe_remote(
    state: &AppState,
    hits: Vec<RemoteHit>,
) -> Result<Vec<SimilarFire>, ApiError> {
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || {
        hits.into_iter()
            .map(|hit| {
                let summary = match store.event(&hit.event_id)? {
                    Some(event) => FireSummary::from(&event),
                    None => remote_summary(&hit)?,
                };
                Ok(SimilarFire {
                    event_id: hit.event_id,
                    distance: hit.distance,
                    summary,
                    explain: None,
                })
            })
            .collect()
    })
    .await?
}

fn remote_summary(hit: &RemoteHit) -> Result<FireSummary, ApiError> {
    let missing = |property: &str| {
        ApiError::Upstream(format!(
            "Weaviate object for {} lacks `{property}`",
            hit.event_id
        ))
    };
    Ok(FireSummary {
        detection_time: hit
            .detection_time
            .clone()
            .ok_or_else(|| missing("detectionTime"))?,
        latitude: hit.latitude.ok_or_else(|| missing("latitude"))?,
        longitude: hit.longitude.ok_or_else(|| missing("longitude"))?,
        satellite: hit.satellite.clone().ok_or_else(|| missing("satellite"))?,
        frp_mw: hit.frp_mw.ok_or_else(|| missing("frpMw"))?,
        confidence: hit
            .confidence
            .as_deref()
            .and_then(crate::event::ConfidenceClass::parse)
            .ok_or_else(|| missing("confidence"))?,
        weather_station: None,
        max_temp_c: None,
    })
}

/// A detection given in a request body (the JSON form of a FIRMS row); errors name
/// `detection.<field>`.
pub(super) fn decode_detection(value: &serde_json::Value) -> Result<FireDetection, ApiError> {
    JsonDecoder::<FireDetection>::decode_line(0, &value.to_string())
        .map_err(|e| ApiError::bad(format!("detection.{}", e.field), e.reason))
}

fn embed_detection(
    state: &AppState,
    value: &serde_json::Value,
) -> Result<(Vec<f32>, FireEventV2), ApiError> {
    let event = state.pipeline.enrich(&decode_detection(value)?)?;
    let mut vectors = state.pipeline.embed(std::slice::from_ref(&event))?;
    let vector = vectors
        .pop()
        .ok_or_else(|| ApiError::Internal("encoder returned no vector".into()))?;
    Ok((vector, event))
}

async fn lookup_event(state: &AppState, id: &str) -> Result<FireEventV2, ApiError> {
    let (store, lookup) = (state.store.clone(), id.to_owned());
    tokio::task::spawn_blocking(move || store.event(&lookup))
        .await??
        .ok_or_else(|| ApiError::BadRequest {
            field: "explain".into(),
            reason: format!(
                "the event `{id}` is not stored on this instance, so its features are unknown here"
            ),
        })
}

async fn explained(
    state: &AppState,
    query: FireEventV2,
    neighbours: Vec<SimilarFire>,
) -> Result<Vec<SimilarFire>, ApiError> {
    let state = state.clone();
    tokio::task::spawn_blocking(move || explain_all(&state, &query, neighbours)).await?
}

/// Adds an explanation to every neighbour whose event this instance stores.
fn explain_all(
    state: &AppState,
    query: &FireEventV2,
    mut neighbours: Vec<SimilarFire>,
) -> Result<Vec<SimilarFire>, ApiError> {
    let mut events = Vec::new();
    let mut positions = Vec::new();
    for (i, n) in neighbours.iter().enumerate() {
        if let Some(event) = state.store.event(&n.event_id)? {
            events.push(event);
            positions.push(i);
        }
    }
    let space = state.pipeline.space();
    let matches: Vec<&FireEventV2> = events.iter().collect();
    let explanations = crate::patterns::explain(space.embedder.as_ref(), query, &matches)?;
    for (i, explanation) in positions.into_iter().zip(explanations) {
        neighbours[i].explain = Some(explanation);
    }
    Ok(neighbours)
}

fn describe(
    state: &AppState,
    model: &str,
    hits: &[Neighbour],
) -> Result<Vec<SimilarFire>, ApiError> {
    let mut out = Vec::with_capacity(hits.len());
    for hit in hits {
        let Some(stored) = state.store.vector(hit.seq, model)? else {
            continue;
        };
        let Some(event) = state.store.event(&stored.event_id)? else {
            continue;
        };
        out.push(SimilarFire {
            event_id: stored.event_id,
            distance: hit.distance,
            summary: FireSummary::from(&event),
            explain: None,
        });
    }
    Ok(out)
}

/// A page of dead letters, newest first.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DeadLetterPage {
    /// Refused records with their reasons.
    pub items: Vec<DeadLetter>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// `GET /v1/dead-letters?limit=&cursor=`: refused records with their reasons, newest first.
#[utoipa::path(get, path = "/v1/dead-letters", tag = "operations",
    params(
        ("limit" = Option<usize>, Query, description = "How many, newest first (default 50)", minimum = 1, maximum = 1000),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page", pattern = "^[0-9]{1,19}$"),
    ),
    responses((status = 200, description = "Refused records with their reasons", body = DeadLetterPage), crate::api::openapi::CommonErrors),
    security((), ("api_key" = [])))]
pub async fn dead_letters(
    State(state): State<AppState>,
    Query(raw): Query<Vec<(String, String)>>,
) -> Result<Json<DeadLetterPage>, ApiError> {
    let params = Params::new(raw, &["limit", "cursor"])?;
    let limit = params.bounded("limit", DEFAULT_PAGE, 1, state.settings.max_page_size)?;
    let before = params.bounded("cursor", u64::MAX, 0, u64::MAX)?;
    let store = state.store.clone();
    let page = tokio::task::spawn_blocking(move || {
        // One more than asked says whether another page follows.
        store.dead_letters_before(Some(before), limit + 1)
    })
    .await??;
    let next_cursor = (page.len() > limit).then(|| page[limit - 1].0.to_string());
    Ok(Json(DeadLetterPage {
        items: page.into_iter().take(limit).map(|(_, l)| l).collect(),
        next_cursor,
    }))
}

//! `GET /v1/clusters` and `GET /v1/outliers`: patterns in a window of events.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

use super::fires::FireSummary;
use super::{ApiError, AppState, geojson};
use crate::cancel::{self, Token};
use crate::index::SearchFilter;
use crate::patterns::{self, ClusterReport, OutlierReport, PatternError, Window};
use firesight_core::params::Params;

/// The window parameters both routes take.
pub(super) const WINDOW_PARAMS: [&str; 5] = ["from", "to", "bbox", "source", "min_confidence"];

/// The window a pattern answer covers.
#[derive(Serialize, utoipa::ToSchema)]
pub struct WindowInfo {
    /// Start, RFC 3339.
    pub from: String,
    /// End (inclusive), RFC 3339.
    pub to: String,
    /// Events analysed.
    pub events: usize,
}

/// `GET /v1/clusters`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ClustersResponse {
    /// Encoder whose space was clustered.
    pub model_version: String,
    /// What was analysed.
    pub window: WindowInfo,
    /// Events in no cluster.
    pub noise: usize,
    /// Clusters found (before `limit`).
    pub total_clusters: usize,
    /// Largest first.
    pub clusters: Vec<ClusterOut>,
}

/// One cluster with its representative events.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ClusterOut {
    /// The cluster.
    #[serde(flatten)]
    pub cluster: ClusterReport,
    /// Events nearest the cluster's mean vector.
    pub representatives: Vec<EventRef>,
    /// With `members=true`: the id of every event in the cluster.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub members: Option<Vec<String>>,
}

/// An event id with its summary.
#[derive(Serialize, utoipa::ToSchema)]
pub struct EventRef {
    /// Event id.
    pub event_id: String,
    /// What it is.
    pub summary: FireSummary,
}

/// `GET /v1/outliers`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct OutliersResponse {
    /// Encoder whose space was used.
    pub model_version: String,
    /// What was analysed.
    pub window: WindowInfo,
    /// Highest score first.
    pub outliers: Vec<OutlierOut>,
}

/// One outlier.
#[derive(Serialize, utoipa::ToSchema)]
pub struct OutlierOut {
    /// Event id.
    pub event_id: String,
    /// The assessment.
    #[serde(flatten)]
    pub report: OutlierReport,
    /// What the event is.
    pub summary: FireSummary,
}

/// `GET /v1/clusters?from&to&bbox&source&min_confidence&min_size&min_samples&limit&representatives`.
#[utoipa::path(get, path = "/v1/clusters", tag = "patterns",
    params(
        crate::api::openapi::WindowFilters,
        ("min_size" = Option<usize>, Query, description = "Smallest cluster (default 5)", minimum = 2, maximum = 10000),
        ("min_samples" = Option<usize>, Query, description = "Neighbours that define density (default min(min_size, patterns.neighbours))", minimum = 1, maximum = 100),
        ("limit" = Option<usize>, Query, description = "Clusters returned, largest first (default 50)", minimum = 1, maximum = 1000),
        ("representatives" = Option<usize>, Query, description = "Representative events per cluster (default 3)", minimum = 0, maximum = 20),
        ("members" = Option<bool>, Query, description = "List every member's event id"),
        ("f" = Option<String>, Query, description = "`geojson` for a FeatureCollection with each cluster's members as a MultiPoint (also by `Accept: application/geo+json`), `json` (default)"),
    ),
    responses((status = 200, description = "Density clusters of the window (JSON, or GeoJSON)", body = ClustersResponse), (status = 422, description = "Well-formed but not processable; `field` names what", body = crate::api::error::ErrorBody), crate::api::openapi::CommonErrors),
    security((), ("api_key" = [])))]
pub async fn clusters(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(raw): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let extra = [
        "min_size",
        "min_samples",
        "limit",
        "representatives",
        "members",
        "f",
    ];
    let known: Vec<&str> = WINDOW_PARAMS.iter().chain(&extra).copied().collect();
    let params = Params::new(raw, &known)?;
    let min_size = params.bounded("min_size", 5usize, 2, 10_000)?;
    let k = state.patterns.neighbours;
    let min_samples = params.bounded("min_samples", min_size.min(k), 1, 100)?;
    let limit = params.bounded("limit", 50usize, 1, state.settings.max_page_size)?;
    let representatives = params.bounded("representatives", 3usize, 0, 20)?;
    let with_members = params.flag("members")?;
    let as_geojson = geojson::wanted(&params, &headers)?;
    let scope = Scope::of(&params)?;
    cancel::blocking(move |cancel| {
        let (window, knn, model) = analyse(&state, &scope, min_samples, cancel)?;
        let found = patterns::clusters(&window, &knn, min_samples, min_size, representatives);
        let total_clusters = found.clusters.len();
        let mut members: HashMap<&str, Vec<String>> = HashMap::new();
        let mut places: HashMap<&str, Vec<[f64; 2]>> = HashMap::new();
        if as_geojson {
            let ids: Vec<&str> = found.clusters.iter().map(|c| c.id.as_str()).collect();
            let by_label = cluster_ids_by_label(&found, &ids);
            for (i, label) in found.labels.iter().enumerate() {
                if let Some(id) = label.and_then(|l| by_label.get(&l)) {
                    let at = &window.events[i].location;
                    places
                        .entry(id)
                        .or_default()
                        .push([at.longitude, at.latitude]);
                }
            }
        }
        if with_members {
            let ids: Vec<&str> = found.clusters.iter().map(|c| c.id.as_str()).collect();
            let by_label = cluster_ids_by_label(&found, &ids);
            for (i, label) in found.labels.iter().enumerate() {
                if let Some(id) = label.and_then(|l| by_label.get(&l)) {
                    members
                        .entry(id)
                        .or_default()
                        .push(window.events[i].event_id.clone());
                }
            }
        }
        let clusters = found
            .clusters
            .iter()
            .take(limit)
            .map(|cluster| ClusterOut {
                members: members.remove(cluster.id.as_str()),
                representatives: cluster
                    .representatives
                    .iter()
                    .map(|&i| event_ref(&window, i))
                    .collect(),
                cluster: cluster.clone(),
            })
            .collect::<Vec<ClusterOut>>();
        let window = window_info(&window);
        if as_geojson {
            let features = clusters
                .iter()
                .map(|c| {
                    let points = places.remove(c.cluster.id.as_str()).unwrap_or_default();
                    let geometry = json!({"type": "MultiPoint", "coordinates": points});
                    geojson::feature(&c.cluster.id, geometry, json!(c), &[])
                })
                .collect();
            return Ok(geojson::response(&geojson::collection(
                features,
                json!({"model_version": model, "window": window, "noise": found.noise,
                       "total_clusters": total_clusters}),
            )));
        }
        Ok(Json(ClustersResponse {
            model_version: model,
            window,
            noise: found.noise,
            total_clusters,
            clusters,
        })
        .into_response())
    })
    .await?
}

/// `GET /v1/outliers?from&to&bbox&source&min_confidence&limit`.
#[utoipa::path(get, path = "/v1/outliers", tag = "patterns",
    params(
        crate::api::openapi::WindowFilters,
        ("limit" = Option<usize>, Query, description = "How many, highest score first (default 20)", minimum = 1, maximum = 1000),
        ("f" = Option<String>, Query, description = "`geojson` for a FeatureCollection of the outliers as points (also by `Accept: application/geo+json`), `json` (default)"),
    ),
    responses((status = 200, description = "The window's events ranked as outliers (JSON, or GeoJSON points)", body = OutliersResponse), (status = 422, description = "Well-formed but not processable; `field` names what", body = crate::api::error::ErrorBody), crate::api::openapi::CommonErrors),
    security((), ("api_key" = [])))]
pub async fn outliers(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(raw): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let known: Vec<&str> = WINDOW_PARAMS
        .iter()
        .chain(&["limit", "f"])
        .copied()
        .collect();
    let params = Params::new(raw, &known)?;
    let limit = params.bounded("limit", 20usize, 1, state.settings.max_page_size)?;
    let as_geojson = geojson::wanted(&params, &headers)?;
    let scope = Scope::of(&params)?;
    cancel::blocking(move |cancel| {
        let (window, knn, model) = analyse(&state, &scope, 0, cancel)?;
        let outliers = patterns::outliers(&window, &knn, limit)
            .into_iter()
            .map(|report| OutlierOut {
                event_id: window.events[report.index].event_id.clone(),
                summary: FireSummary::from(&window.events[report.index]),
                report,
            })
            .collect::<Vec<OutlierOut>>();
        let window = window_info(&window);
        if as_geojson {
            let features = outliers.iter().map(outlier_feature).collect();
            return Ok(geojson::response(&geojson::collection(
                features,
                json!({"model_version": model, "window": window}),
            )));
        }
        Ok(Json(OutliersResponse {
            model_version: model,
            window,
            outliers,
        })
        .into_response())
    })
    .await?
}

/// An outlier as a Point with its assessment and summary as properties.
fn outlier_feature(o: &OutlierOut) -> Value {
    let at = &o.summary;
    let point = json!({"type": "Point", "coordinates": [at.longitude, at.latitude]});
    geojson::feature(&o.event_id, point, json!(o), &[])
}

/// The window asked for: explicit bounds, or defaults resolved against the store.
pub(super) struct Scope {
    /// The non-time filters.
    pub(super) filter: SearchFilter,
    /// Start, ms; absent: `default_hours` before the end.
    pub(super) from_ms: Option<i64>,
    /// End, ms; absent: the newest stored detection (or now, with none).
    pub(super) to_ms: Option<i64>,
}

impl Scope {
    /// The `from`, `to` and filter parameters.
    pub(super) fn of(params: &Params) -> Result<Self, ApiError> {
        let mut filter = params.filter()?;
        filter.time = None;
        Ok(Self {
            filter,
            from_ms: params.time("from", false)?.map(|t| t.timestamp_millis()),
            to_ms: params.time("to", true)?.map(|t| t.timestamp_millis()),
        })
    }

    /// `(from, to)` in ms, the defaults resolved.
    pub(super) fn bounds(
        &self,
        state: &AppState,
        default_hours: i64,
    ) -> Result<(i64, i64), ApiError> {
        let to = match self.to_ms {
            Some(t) => t,
            None => match state.store.events_between(i64::MIN, i64::MAX)?.next() {
                Some(newest) => newest?.detection_time,
                None => chrono::Utc::now().timestamp_millis(),
            },
        };
        let from = self
            .from_ms
            .unwrap_or(to.saturating_sub(default_hours.saturating_mul(3_600_000)));
        Ok((from, to))
    }
}

/// The window and its neighbour graph, with at least `patterns.neighbours` neighbours per event
/// (more when `min_neighbours` asks for more).
fn analyse(
    state: &AppState,
    scope: &Scope,
    min_neighbours: usize,
    cancel: &Token,
) -> Result<(Window, Vec<patterns::NeighbourList>, String), ApiError> {
    let settings = &state.patterns;
    let (from_ms, to_ms) = scope.bounds(state, i64::from(settings.default_window_hours))?;
    let mut filter = scope.filter.clone();
    filter.time = Some((from_ms.div_euclid(1000), to_ms.div_euclid(1000)));
    let space = state.pipeline.space();
    let model = space.embedder.model_version().to_owned();
    let window = patterns::load_window(
        &state.store,
        &model,
        &filter,
        (from_ms, to_ms),
        settings.max_window_events,
        cancel,
    )?;
    let knn = patterns::window_neighbours(
        &window,
        space.index.as_ref(),
        &filter,
        settings.neighbours.max(min_neighbours),
        settings.exact_below,
        cancel,
    )?;
    Ok((window, knn, model))
}

/// The report id of each HDBSCAN label, found through one member of each report.
fn cluster_ids_by_label<'a>(found: &patterns::Clusters, ids: &[&'a str]) -> HashMap<u32, &'a str> {
    found
        .clusters
        .iter()
        .zip(ids)
        .filter_map(|(c, id)| Some((found.labels[c.any_member]?, *id)))
        .collect()
}

fn event_ref(window: &Window, i: usize) -> EventRef {
    EventRef {
        event_id: window.events[i].event_id.clone(),
        summary: FireSummary::from(&window.events[i]),
    }
}

fn window_info(window: &Window) -> WindowInfo {
    window_info_of(window.from_ms, window.to_ms, window.len())
}

/// The window description for bounds in ms and a count.
pub(super) fn window_info_of(from_ms: i64, to_ms: i64, events: usize) -> WindowInfo {
    let time = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .unwrap_or_default()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    };
    WindowInfo {
        from: time(from_ms),
        to: time(to_ms),
        events,
    }
}

impl From<PatternError> for ApiError {
    fn from(e: PatternError) -> Self {
        match e {
            PatternError::TooLarge { .. } | PatternError::ScanTooLong { .. } => {
                Self::Unprocessable {
                    field: "window".into(),
                    reason: e.to_string(),
                }
            }
            PatternError::Store(s) => s.into(),
            PatternError::Index(i) => i.into(),
            PatternError::Embed(x) => Self::Internal(x.to_string()),
            // Nobody reads this answer: the request already timed out or closed.
            PatternError::Cancelled(c) => Self::Unavailable(c.to_string()),
        }
    }
}

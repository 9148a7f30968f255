//! Incidents and the views over them: active fires per region, growth alerts.

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Serialize;

use super::params::Params;
use super::patterns::Scope;

/// Without `from`, incident routes look back this many hours from `to`.
const DEFAULT_HOURS: i64 = 7 * 24;
use super::{ApiError, AppState};
use crate::event::FireEventV2;
use crate::index::{PointAttrs, SearchFilter};
use crate::patterns::incidents::{self, ActiveCell, Incident};

/// A page of incidents.
#[derive(Serialize, utoipa::ToSchema)]
pub struct IncidentPage {
    /// The window grouped, RFC 3339 bounds and its detections.
    pub window: super::patterns::WindowInfo,
    /// Incidents found in it (before paging).
    pub total: usize,
    /// Most recent first.
    pub items: Vec<Incident>,
    /// Pass as `cursor` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// `GET /v1/views/active-fires`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ActiveFires {
    /// The period aggregated.
    pub window: super::patterns::WindowInfo,
    /// Cells with detections, most first.
    pub cells: Vec<ActiveCell>,
}

/// `GET /v1/views/growth-alerts`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct GrowthAlerts {
    /// The window grouped.
    pub window: super::patterns::WindowInfo,
    /// The threshold applied.
    pub threshold: f64,
    /// Incidents growing faster than it, fastest first.
    pub alerts: Vec<Incident>,
}

/// `GET /v1/incidents?from&to&bbox&source&min_confidence&min_size&limit&cursor&members`.
#[utoipa::path(get, path = "/v1/incidents", tag = "incidents",
    params(
        crate::api::openapi::WindowFilters,
        ("min_size" = Option<usize>, Query, description = "Fewest detections (default 2)", minimum = 1, maximum = 100000),
        ("limit" = Option<usize>, Query, description = "Page size (default 50)", minimum = 1, maximum = 1000),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page", pattern = "^[0-9]{1,9}$"),
        ("members" = Option<bool>, Query, description = "List each incident's detection ids"),
    ),
    responses((status = 200, description = "Incidents in the window, most recent first", body = IncidentPage),
        (status = 422, description = "The window is too large", body = crate::api::error::ErrorBody), crate::api::openapi::CommonErrors),
    security((), ("api_key" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Query(raw): Query<Vec<(String, String)>>,
) -> Result<Json<IncidentPage>, ApiError> {
    let extra = ["min_size", "limit", "cursor", "members"];
    let known: Vec<&str> = super::patterns::WINDOW_PARAMS
        .iter()
        .chain(&extra)
        .copied()
        .collect();
    let params = Params::new(raw, &known)?;
    let min_size = params.bounded("min_size", 2usize, 1, 100_000)?;
    let limit = params.bounded("limit", 50usize, 1, state.settings.max_page_size)?;
    let offset = params.bounded("cursor", 0usize, 0, 999_999_999)?;
    let members = params.flag("members")?;
    let scope = Scope::of(&params)?;
    tokio::task::spawn_blocking(move || {
        let (events, info) = load(&state, &scope, DEFAULT_HOURS)?;
        let mut found = group(&state, &events, min_size);
        let total = found.len();
        let items: Vec<Incident> = found
            .drain(offset.min(total)..(offset + limit).min(total))
            .map(|i| without_members(i, members))
            .collect();
        Ok(Json(IncidentPage {
            window: info,
            total,
            next_cursor: (offset + limit < total).then(|| (offset + limit).to_string()),
            items,
        }))
    })
    .await?
}

/// `GET /v1/incidents/{id}`.
#[utoipa::path(get, path = "/v1/incidents/{id}", tag = "incidents",
    params(("id" = String, Path, description = "Incident id (`inc_...`)")),
    responses((status = 200, description = "The incident with its members and daily growth", body = Incident),
        (status = 401, description = "No API key, or an unknown one", body = crate::api::error::ErrorBody),
        (status = 403, description = "The key's role is too low", body = crate::api::error::ErrorBody),
        (status = 404, description = "No such incident", body = crate::api::error::ErrorBody),
        (status = 422, description = "The incident's span holds too many detections", body = crate::api::error::ErrorBody),
        (status = 503, description = "Still starting, or timed out", body = crate::api::error::ErrorBody)),
    security((), ("api_key" = [])))]
pub async fn get_one(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Incident>, ApiError> {
    let not_found = || ApiError::NotFound {
        what: "incident",
        id: id.clone(),
    };
    let founder_id = incidents::founder_of(&id).ok_or_else(not_found)?;
    let found = tokio::task::spawn_blocking(move || {
        let Some(founder) = state.store.event(&founder_id)? else {
            return Ok::<_, ApiError>(None);
        };
        // The incident starts with its founder, so the window starts there too.
        let span = i64::from(state.incidents.max_span_days) * 86_400_000;
        let scope = Scope {
            filter: SearchFilter::default(),
            from_ms: Some(founder.detection_time),
            to_ms: Some(founder.detection_time.saturating_add(span)),
        };
        let (events, _) = load(&state, &scope, 0)?;
        Ok(group(&state, &events, 1)
            .into_iter()
            .find(|i| i.members.as_ref().and_then(|m| m.first()) == Some(&founder_id)))
    })
    .await??;
    found.map(Json).ok_or_else(not_found)
}

/// `GET /v1/views/active-fires?minutes&at&cell_deg&bbox&source&min_confidence`.
#[utoipa::path(get, path = "/v1/views/active-fires", tag = "incidents",
    params(
        ("minutes" = Option<u32>, Query, description = "Length of the period, minutes (default 60)", minimum = 1, maximum = 10080),
        ("at" = Option<crate::api::openapi::TimeBound>, Query, description = "End of the period (default: the newest stored detection)"),
        ("cell_deg" = Option<f64>, Query, description = "Region cell size, degrees (default 1.0)", minimum = 0.01, maximum = 10.0),
        ("bbox" = Option<String>, Query, description = "min_lon,min_lat,max_lon,max_lat", pattern = r"^ *-?[0-9]+(\.[0-9]+)? *(, *-?[0-9]+(\.[0-9]+)? *){3}$"),
    ),
    responses((status = 200, description = "Detections per region cell in the period", body = ActiveFires),
        (status = 422, description = "The period holds too many detections", body = crate::api::error::ErrorBody), crate::api::openapi::CommonErrors),
    security((), ("api_key" = [])))]
pub async fn active_fires(
    State(state): State<AppState>,
    Query(raw): Query<Vec<(String, String)>>,
) -> Result<Json<ActiveFires>, ApiError> {
    let params = Params::new(raw, &["minutes", "at", "cell_deg", "bbox"])?;
    let minutes = params.bounded("minutes", 60u32, 1, 10_080)?;
    let cell_deg = params.bounded("cell_deg", 1.0f64, 0.01, 10.0)?;
    let at = params.time("at", true)?.map(|t| t.timestamp_millis());
    let mut scope = Scope::of(&params)?;
    scope.to_ms = at;
    let span_ms = i64::from(minutes) * 60_000;
    tokio::task::spawn_blocking(move || {
        let (_, to) = scope.bounds(&state, 0)?;
        scope.from_ms = Some(to - span_ms);
        scope.to_ms = Some(to);
        let (events, info) = load(&state, &scope, 0)?;
        Ok(Json(ActiveFires {
            window: info,
            cells: incidents::active_cells(&events, cell_deg),
        }))
    })
    .await?
}

/// `GET /v1/views/growth-alerts?from&to&bbox&threshold`.
#[utoipa::path(get, path = "/v1/views/growth-alerts", tag = "incidents",
    params(
        ("from" = Option<crate::api::openapi::TimeBound>, Query, description = "Earliest detection (default: 7 days before `to`)"),
        ("to" = Option<crate::api::openapi::TimeBound>, Query, description = "Latest detection (default: the newest stored)"),
        ("bbox" = Option<String>, Query, description = "min_lon,min_lat,max_lon,max_lat", pattern = r"^ *-?[0-9]+(\.[0-9]+)? *(, *-?[0-9]+(\.[0-9]+)? *){3}$"),
        ("threshold" = Option<f64>, Query, description = "Growth rate to exceed (default 2.0, the seed's rule)", minimum = 0.0, maximum = 1000.0),
    ),
    responses((status = 200, description = "Incidents growing faster than the threshold", body = GrowthAlerts),
        (status = 422, description = "The window is too large", body = crate::api::error::ErrorBody), crate::api::openapi::CommonErrors),
    security((), ("api_key" = [])))]
pub async fn growth_alerts(
    State(state): State<AppState>,
    Query(raw): Query<Vec<(String, String)>>,
) -> Result<Json<GrowthAlerts>, ApiError> {
    let params = Params::new(raw, &["from", "to", "bbox", "threshold"])?;
    let threshold = params.bounded("threshold", 2.0f64, 0.0, 1000.0)?;
    let scope = Scope::of(&params)?;
    tokio::task::spawn_blocking(move || {
        let (events, info) = load(&state, &scope, DEFAULT_HOURS)?;
        let mut alerts: Vec<Incident> = group(&state, &events, 2)
            .into_iter()
            .filter(|i| i.growth_rate.is_some_and(|g| g > threshold))
            .map(|i| without_members(i, false))
            .collect();
        alerts.sort_by(|a, b| {
            b.growth_rate
                .unwrap_or(0.0)
                .total_cmp(&a.growth_rate.unwrap_or(0.0))
                .then(a.id.cmp(&b.id))
        });
        Ok(Json(GrowthAlerts {
            window: info,
            threshold,
            alerts,
        }))
    })
    .await?
}

fn group(state: &AppState, events: &[FireEventV2], min_size: usize) -> Vec<Incident> {
    let s = &state.incidents;
    incidents::group(events, s.link_km, s.link_hours, s.growth_hours, min_size)
}

fn without_members(mut incident: Incident, keep: bool) -> Incident {
    if !keep {
        incident.members = None;
    }
    incident
}

/// The window's events that pass the scope's filters, oldest first, within
/// `patterns.max_window_events`.
fn load(
    state: &AppState,
    scope: &Scope,
    default_hours: i64,
) -> Result<(Vec<FireEventV2>, super::patterns::WindowInfo), ApiError> {
    let (from, to) = scope.bounds(state, default_hours)?;
    let limit = state.patterns.max_window_events;
    let mut events = Vec::new();
    for event in state.store.events_between(from, to)? {
        let event = event?;
        if !scope.filter.matches(&PointAttrs::of(&event)) {
            continue;
        }
        if events.len() == limit {
            return Err(crate::patterns::PatternError::TooLarge { limit }.into());
        }
        events.push(event);
    }
    events.reverse();
    let info = super::patterns::window_info_of(from, to, events.len());
    Ok((events, info))
}

//! Incidents as the tracker keeps them, and the views over them: active fires per region,
//! growth between overpasses. Nothing is regrouped per request: every route reads the tracker.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;

use super::patterns::Scope;
use super::{ApiError, AppState, geojson};
use crate::event::{FireEventV2, Location};
use crate::index::{BBox, PointAttrs};
use crate::patterns::active_fires::{self, ActiveCell};
use crate::tracker::geometry;
use crate::tracker::{DailyTotals, Incident, IncidentStatus, Tracker};
use firesight_core::params::Params;

/// An incident as the list and the alerts describe it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct IncidentView {
    /// `inc_` + the hex of its earliest detection; stable for ever.
    pub id: String,
    /// `active`, `inactive` (no detection for `incidents.max_inactive_days` of data time) or `merged`.
    pub status: IncidentStatus,
    /// For a merged incident: the incident it is part of now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merged_into: Option<String>,
    /// Detections.
    pub detections: u64,
    /// Earliest detection, ms since the epoch.
    pub first_detection: i64,
    /// Latest detection, ms since the epoch.
    pub last_detection: i64,
    /// Mean position (on the sphere).
    pub centroid: Location,
    /// `[min_lon, min_lat, max_lon, max_lat]` of its detections.
    pub bbox: [f64; 4],
    /// Estimated burned area: the union of its pixel footprints, km².
    pub area_km2: f64,
    /// Area inside the perimeter, km².
    pub perimeter_area_km2: f64,
    /// Convex hull of every footprint (`[lon, lat]`, counter-clockwise, unclosed).
    pub perimeter: Vec<[f64; 2]>,
    /// Sum of fire radiative power, MW.
    pub total_frp_mw: f64,
    /// Largest single-pixel FRP, MW.
    pub max_frp_mw: f64,
    /// Every detection is a static source (FIRMS type 1–3) or a persistent hot spot.
    pub static_source: bool,
    /// Overpass snapshots with detections.
    pub snapshots: usize,
    /// Latest snapshot's detections over the one before (absent with one snapshot).
    pub growth_rate: Option<f64>,
    /// Growth of the equivalent radius from the previous snapshot to the latest, km/h.
    pub spread_km_per_h: Option<f64>,
    /// Bearing from the previous snapshot's detections to the latest's, degrees from north.
    pub spread_direction_deg: Option<f64>,
    /// Probability that it adds at least 1 km² of burned area within 24 h of its latest
    /// detection (`outlook_model`; absent without one, or for a merged incident).
    pub p_growth_24h: Option<f64>,
    /// The model that gave `p_growth_24h`, `name@version`.
    pub outlook_model: Option<String>,
    /// The detection time `p_growth_24h` looks 24 h ahead from (the incident's latest detection
    /// when it was given), RFC 3339.
    pub outlook_as_of: Option<String>,
    /// Detections and FRP per UTC day, oldest first.
    pub daily: Vec<DailyTotals>,
    /// Its detection ids, oldest first (with `members=true`, and on the single-incident route).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub members: Option<Vec<String>>,
}

/// One overpass snapshot of an incident, as served.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SnapshotView {
    /// `YYYY-MM-DDTam` / `pm`, local solar.
    pub snapshot: String,
    /// First detection in it, ms.
    pub first_detection: i64,
    /// Last detection in it, ms.
    pub last_detection: i64,
    /// Detections in it.
    pub detections: u64,
    /// Pixels first burning in it.
    pub new_pixels: u64,
    /// Area burning by its end, km².
    pub area_km2: f64,
    /// Sum of FRP, MW.
    pub frp_sum_mw: f64,
    /// Largest FRP, MW.
    pub frp_max_mw: f64,
    /// Detections over the previous snapshot's.
    pub growth_rate: Option<f64>,
    /// Equivalent-radius growth since the previous snapshot, km/h.
    pub spread_km_per_h: Option<f64>,
    /// Bearing from the previous snapshot's detections to these, degrees from north.
    pub spread_direction_deg: Option<f64>,
    /// Perimeter by its end (`[lon, lat]`, counter-clockwise, unclosed).
    pub perimeter: Vec<[f64; 2]>,
}

/// `GET /v1/incidents/{id}`: the incident, its snapshots and its active fire line.
#[derive(Serialize, utoipa::ToSchema)]
pub struct IncidentDetail {
    /// The incident.
    #[serde(flatten)]
    pub incident: IncidentView,
    /// Incidents merged into it.
    pub absorbed: Vec<String>,
    /// Its overpass snapshots, oldest first.
    pub history: Vec<SnapshotView>,
    /// Detections of the latest snapshot on the perimeter: the active fire line.
    pub fire_line: Vec<String>,
}

/// A page of incidents.
#[derive(Serialize, utoipa::ToSchema)]
pub struct IncidentPage {
    /// The tracker's clock (its newest detection), RFC 3339: statuses are on this time.
    pub clock: Option<String>,
    /// Incidents that pass the filters (before paging).
    pub total: usize,
    /// Most recently detected first.
    pub items: Vec<IncidentView>,
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

/// One snapshot in which an incident grew faster than the threshold.
#[derive(Serialize, utoipa::ToSchema)]
pub struct GrowthCase {
    /// The incident.
    pub incident_id: String,
    /// The snapshot that grew.
    pub snapshot: String,
    /// Its detections.
    pub detections: u64,
    /// The previous snapshot's.
    pub previous: u64,
    /// `detections / previous`.
    pub growth_rate: f64,
    /// Area burning by its end, km².
    pub area_km2: f64,
    /// Mean position of the incident.
    pub centroid: Location,
}

/// `GET /v1/views/growth-alerts`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct GrowthAlerts {
    /// The threshold applied.
    pub threshold: f64,
    /// Snapshots in the period growing faster than it, fastest first.
    pub alerts: Vec<GrowthCase>,
}

const LIST_PARAMS: [&str; 10] = [
    "from", "to", "bbox", "status", "min_size", "limit", "cursor", "members", "f", "static",
];

/// `GET /v1/incidents?from&to&bbox&status&min_size&static&limit&cursor&members&f`.
#[utoipa::path(get, path = "/v1/incidents", tag = "incidents",
    params(
        ("from" = Option<crate::api::openapi::TimeBound>, Query, description = "Incidents burning at or after this time (their last detection)"),
        ("to" = Option<crate::api::openapi::TimeBound>, Query, description = "Incidents burning at or before this time (their first detection)"),
        ("bbox" = Option<String>, Query, description = "min_lon,min_lat,max_lon,max_lat: incidents whose extent meets it", pattern = r"^ *-?[0-9]+(\.[0-9]+)? *(, *-?[0-9]+(\.[0-9]+)? *){3}$"),
        ("status" = Option<String>, Query, description = "Comma-separated `active`, `inactive`, `merged` (default `active,inactive`)"),
        ("min_size" = Option<u64>, Query, description = "Fewest detections (default 1)", minimum = 1, maximum = 100000000),
        ("static" = Option<bool>, Query, description = "Include static sources and persistent hot spots (default true)"),
        ("limit" = Option<usize>, Query, description = "Page size (default 50)", minimum = 1, maximum = 1000),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page", pattern = "^[0-9]{1,9}$"),
        ("members" = Option<bool>, Query, description = "List each incident's detection ids"),
        ("f" = Option<String>, Query, description = "`geojson` for a FeatureCollection of perimeters (also by `Accept: application/geo+json`), `json` (default)"),
    ),
    responses((status = 200, description = "Incidents, most recently detected first (JSON, or GeoJSON with perimeters)", body = IncidentPage),
        crate::api::openapi::CommonErrors),
    security((), ("api_key" = [])))]
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(raw): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let params = Params::new(raw, &LIST_PARAMS)?;
    let from = params.time("from", false)?.map(|t| t.timestamp_millis());
    let to = params.time("to", true)?.map(|t| t.timestamp_millis());
    if let (Some(f), Some(t)) = (from, to)
        && f > t
    {
        return Err(ApiError::bad("from", "must not be after `to`"));
    }
    let query = IncidentQuery {
        statuses: statuses(&params)?,
        min_size: params.bounded("min_size", 1u64, 1, 100_000_000)?,
        with_static: params.text("static").is_none() || params.flag("static")?,
        bbox: params.bbox()?,
        from,
        to,
        offset: params.bounded("cursor", 0usize, 0, 999_999_999)?,
        limit: params.bounded("limit", 50usize, 1, state.settings.max_page_size)?,
        members: params.flag("members")?,
    };
    let as_geojson = geojson::wanted(&params, &headers)?;
    tokio::task::spawn_blocking(move || {
        let found = select(&state, &query)?;
        let next_cursor = found.next_offset.map(|o| o.to_string());
        if as_geojson {
            let features = found.items.iter().map(incident_feature).collect();
            return Ok(geojson::response(&geojson::collection(
                features,
                json!({"total": found.total, "next_cursor": next_cursor,
                       "clock": found.clock.map(rfc3339)}),
            )));
        }
        Ok(Json(IncidentPage {
            clock: found.clock.map(rfc3339),
            total: found.total,
            items: found.items,
            next_cursor,
        })
        .into_response())
    })
    .await?
}

/// Which incidents a listing wants (the `/v1/incidents` parameters, also used by `/ogc`).
pub(super) struct IncidentQuery {
    /// Statuses at the tracker's clock.
    pub statuses: Vec<IncidentStatus>,
    /// Fewest detections.
    pub min_size: u64,
    /// Include static sources.
    pub with_static: bool,
    /// Extent meets this box.
    pub bbox: Option<BBox>,
    /// Burning at or after (its last detection), ms.
    pub from: Option<i64>,
    /// Burning at or before (its first detection), ms.
    pub to: Option<i64>,
    /// Incidents to skip (the cursor).
    pub offset: usize,
    /// Page size.
    pub limit: usize,
    /// List each incident's detection ids.
    pub members: bool,
}

/// One page of a listing.
pub(super) struct IncidentSelection {
    /// The tracker's clock, ms.
    pub clock: Option<i64>,
    /// Incidents that pass the filters (before paging).
    pub total: usize,
    /// This page, most recently detected first.
    pub items: Vec<IncidentView>,
    /// Offset of the next page, when there is one.
    pub next_offset: Option<usize>,
}

/// The incidents that pass `query`, most recently detected first (ties by id), paged.
pub(super) fn select(
    state: &AppState,
    query: &IncidentQuery,
) -> Result<IncidentSelection, ApiError> {
    let tracker = tracker_of(state)?;
    let clock = tracker.clock(&state.store)?;
    let at = clock.unwrap_or(0);
    let horizon = tracker.settings().max_inactive_ms();
    let mut found: Vec<Incident> = tracker
        .incidents(&state.store)?
        .into_iter()
        .filter(|i| query.statuses.contains(&i.status_at(at, horizon)))
        .filter(|i| i.detections >= query.min_size && (query.with_static || !i.is_static()))
        .filter(|i| {
            query.from.is_none_or(|f| i.last_ms >= f) && query.to.is_none_or(|t| i.first_ms <= t)
        })
        .filter(|i| query.bbox.as_ref().is_none_or(|b| meets(b, &i.bbox)))
        .collect();
    found.sort_by(|a, b| b.last_ms.cmp(&a.last_ms).then(a.id.cmp(&b.id)));
    let total = found.len();
    let (offset, limit) = (query.offset, query.limit);
    let page = &found[offset.min(total)..offset.saturating_add(limit).min(total)];
    let mut items = Vec::with_capacity(page.len());
    for incident in page {
        let ids = if query.members {
            Some(
                tracker
                    .members(&state.store, incident)?
                    .into_iter()
                    .map(|m| m.event_id)
                    .collect(),
            )
        } else {
            None
        };
        items.push(view(incident, at, horizon, ids));
    }
    Ok(IncidentSelection {
        clock,
        total,
        items,
        next_offset: (offset.saturating_add(limit) < total).then(|| offset + limit),
    })
}

/// One incident as the list shows it (`None`: no such incident).
pub(super) fn one(state: &AppState, id: &str) -> Result<Option<IncidentView>, ApiError> {
    let tracker = tracker_of(state)?;
    let Some(incident) = tracker.incident(&state.store, id, false)? else {
        return Ok(None);
    };
    let clock = tracker.clock(&state.store)?.unwrap_or(0);
    Ok(Some(view(
        &incident,
        clock,
        tracker.settings().max_inactive_ms(),
        None,
    )))
}

/// `GET /v1/incidents/{id}`.
#[utoipa::path(get, path = "/v1/incidents/{id}", tag = "incidents",
    params(("id" = String, Path, description = "Incident id (`inc_...`); a merged incident's id answers with its record and `merged_into`"),
        ("f" = Option<String>, Query, description = "`geojson` for a Feature with the perimeter (also by `Accept: application/geo+json`)")),
    responses((status = 200, description = "The incident with its members, snapshots and fire line", body = IncidentDetail),
        (status = 400, description = "A parameter is invalid (e.g. an empty or unknown `f`); `field` names it", body = crate::api::error::ErrorBody),
        (status = 401, description = "No API key, or an unknown one", body = crate::api::error::ErrorBody),
        (status = 403, description = "The key's role is too low", body = crate::api::error::ErrorBody),
        (status = 404, description = "No such incident", body = crate::api::error::ErrorBody),
        (status = 503, description = "Still starting, or timed out", body = crate::api::error::ErrorBody)),
    security((), ("api_key" = [])))]
pub async fn get_one(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(raw): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let params = Params::new(raw, &["f"])?;
    let as_geojson = geojson::wanted(&params, &headers)?;
    let not_found = || ApiError::NotFound {
        what: "incident",
        id: id.clone(),
    };
    if !id.starts_with("inc_") || id.len() > 80 {
        return Err(not_found());
    }
    let lookup = id.clone();
    let found = tokio::task::spawn_blocking(move || {
        let tracker = tracker_of(&state)?;
        let Some(incident) = tracker.incident(&state.store, &lookup, false)? else {
            return Ok::<_, ApiError>(None);
        };
        let clock = tracker.clock(&state.store)?.unwrap_or(0);
        let horizon = tracker.settings().max_inactive_ms();
        let members = if incident.status == IncidentStatus::Merged {
            Vec::new()
        } else {
            tracker.members(&state.store, &incident)?
        };
        let fire_line = crate::tracker::fire_line(&incident, &members)
            .into_iter()
            .map(|m| m.event_id.clone())
            .collect();
        let ids = members.iter().map(|m| m.event_id.clone()).collect();
        Ok(Some(IncidentDetail {
            absorbed: incident.absorbed.clone(),
            history: history(&incident),
            fire_line,
            incident: view(&incident, clock, horizon, Some(ids)),
        }))
    })
    .await??;
    let detail = found.ok_or_else(not_found)?;
    if as_geojson {
        let geometry = geojson::ring_geometry(&detail.incident.perimeter);
        let properties =
            serde_json::to_value(&detail).map_err(|e| ApiError::Internal(e.to_string()))?;
        return Ok(geojson::response(&geojson::feature(
            &detail.incident.id,
            geometry,
            properties,
            &["perimeter"],
        )));
    }
    Ok(Json(detail).into_response())
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
            cells: active_fires::active_cells(&events, cell_deg),
        }))
    })
    .await?
}

/// `GET /v1/views/growth-alerts?from&to&bbox&threshold`.
#[utoipa::path(get, path = "/v1/views/growth-alerts", tag = "incidents",
    params(
        ("from" = Option<crate::api::openapi::TimeBound>, Query, description = "Earliest snapshot detection (default: 7 days before `to`)"),
        ("to" = Option<crate::api::openapi::TimeBound>, Query, description = "Latest snapshot detection (default: the tracker's clock)"),
        ("bbox" = Option<String>, Query, description = "min_lon,min_lat,max_lon,max_lat", pattern = r"^ *-?[0-9]+(\.[0-9]+)? *(, *-?[0-9]+(\.[0-9]+)? *){3}$"),
        ("threshold" = Option<f64>, Query, description = "Growth rate between consecutive overpass snapshots to exceed (default 2.0, the seed's rule)", minimum = 0.0, maximum = 1000.0),
    ),
    responses((status = 200, description = "Snapshots growing faster than the threshold", body = GrowthAlerts),
        crate::api::openapi::CommonErrors),
    security((), ("api_key" = [])))]
pub async fn growth_alerts(
    State(state): State<AppState>,
    Query(raw): Query<Vec<(String, String)>>,
) -> Result<Json<GrowthAlerts>, ApiError> {
    let params = Params::new(raw, &["from", "to", "bbox", "threshold"])?;
    let threshold = params.bounded("threshold", 2.0f64, 0.0, 1000.0)?;
    let bbox = params.bbox()?;
    let from = params.time("from", false)?.map(|t| t.timestamp_millis());
    let to = params.time("to", true)?.map(|t| t.timestamp_millis());
    tokio::task::spawn_blocking(move || {
        let tracker = tracker_of(&state)?;
        let to = match to {
            Some(t) => t,
            None => tracker.clock(&state.store)?.unwrap_or(0),
        };
        let from = from.unwrap_or(to.saturating_sub(7 * 86_400_000));
        let mut alerts = Vec::new();
        for incident in tracker.incidents(&state.store)? {
            if incident.status == IncidentStatus::Merged
                || bbox.as_ref().is_some_and(|b| !meets(b, &incident.bbox))
            {
                continue;
            }
            for pair in incident.snapshots.windows(2) {
                let (before, now) = (&pair[0], &pair[1]);
                if now.last_ms < from || now.first_ms > to {
                    continue;
                }
                let rate = now.detections as f64 / before.detections.max(1) as f64;
                if rate > threshold && now.detections >= 2 {
                    alerts.push(GrowthCase {
                        incident_id: incident.id.clone(),
                        snapshot: now.label.clone(),
                        detections: now.detections,
                        previous: before.detections,
                        growth_rate: round(rate),
                        area_km2: round(incident.area_upto(now.snapshot)),
                        centroid: incident.centroid(),
                    });
                }
            }
        }
        alerts.sort_by(|a, b| {
            b.growth_rate
                .total_cmp(&a.growth_rate)
                .then(a.incident_id.cmp(&b.incident_id))
        });
        Ok(Json(GrowthAlerts { threshold, alerts }))
    })
    .await?
}

/// The tracker, or a 503 naming the setting that switched it off.
pub(super) fn tracker_of(state: &AppState) -> Result<&Tracker, ApiError> {
    state.pipeline.tracker().ok_or_else(|| {
        ApiError::bad(
            "incidents",
            "incident tracking is off (incidents.enabled = false)",
        )
    })
}

pub(super) fn statuses(params: &Params) -> Result<Vec<IncidentStatus>, ApiError> {
    let Some(list) = params.text("status") else {
        return Ok(vec![IncidentStatus::Active, IncidentStatus::Inactive]);
    };
    list.split(',')
        .map(|s| match s.trim() {
            "active" => Ok(IncidentStatus::Active),
            "inactive" => Ok(IncidentStatus::Inactive),
            "merged" => Ok(IncidentStatus::Merged),
            other => Err(ApiError::bad(
                "status",
                format!("`{other}` is not one of active, inactive, merged"),
            )),
        })
        .collect()
}

/// Whether an extent `[min_lon, min_lat, max_lon, max_lat]` meets `bbox` (which may cross the
/// antimeridian: west > east).
pub(super) fn meets(bbox: &BBox, extent: &[f64; 4]) -> bool {
    let (w, s, e, n) = (
        f64::from(bbox.min_lon),
        f64::from(bbox.min_lat),
        f64::from(bbox.max_lon),
        f64::from(bbox.max_lat),
    );
    if extent[1] > n || extent[3] < s {
        return false;
    }
    let overlaps = |lo: f64, hi: f64| extent[0] <= hi && extent[2] >= lo;
    if w <= e {
        overlaps(w, e)
    } else {
        overlaps(w, 180.0) || overlaps(-180.0, e)
    }
}

fn view(
    incident: &Incident,
    clock: i64,
    horizon: i64,
    members: Option<Vec<String>>,
) -> IncidentView {
    let perimeter = incident.perimeter(None);
    let latest = history(incident).pop();
    IncidentView {
        id: incident.id.clone(),
        status: incident.status_at(clock, horizon),
        merged_into: incident.merged_into.clone(),
        detections: incident.detections,
        first_detection: incident.first_ms,
        last_detection: incident.last_ms,
        centroid: incident.centroid(),
        bbox: incident.bbox,
        area_km2: round(incident.area_km2),
        perimeter_area_km2: round(geometry::area_km2(&perimeter)),
        perimeter,
        total_frp_mw: round(incident.frp_sum_mw),
        max_frp_mw: incident.frp_max_mw,
        static_source: incident.is_static(),
        snapshots: incident.snapshots.len(),
        growth_rate: latest.as_ref().and_then(|s| s.growth_rate),
        p_growth_24h: incident
            .outlook
            .as_ref()
            .map(|o| (o.p_growth_24h * 1e4).round() / 1e4),
        outlook_model: incident
            .outlook
            .as_ref()
            .map(|o| format!("{}@{}", o.model, o.version)),
        outlook_as_of: incident.outlook.as_ref().map(|o| rfc3339(o.as_of_ms)),
        spread_km_per_h: latest.as_ref().and_then(|s| s.spread_km_per_h),
        spread_direction_deg: latest.as_ref().and_then(|s| s.spread_direction_deg),
        daily: incident
            .daily
            .iter()
            .map(|d| DailyTotals {
                frp_mw: round(d.frp_mw),
                ..d.clone()
            })
            .collect(),
        members,
    }
}

/// The snapshots with their cumulative area and perimeter and the change from the one before.
fn history(incident: &Incident) -> Vec<SnapshotView> {
    let mut out: Vec<SnapshotView> = Vec::with_capacity(incident.snapshots.len());
    let mut area = 0.0;
    let mut footprints: Vec<[f64; 2]> = Vec::new();
    for (i, s) in incident.snapshots.iter().enumerate() {
        area += s.new_area_km2;
        footprints.extend(s.hull.iter().copied());
        footprints = geometry::convex_hull(&footprints);
        let previous = i.checked_sub(1).map(|j| &incident.snapshots[j]);
        let (growth, spread, direction) = match (previous, out.last()) {
            (Some(p), Some(pv)) => {
                let hours = ((s.last_ms - p.last_ms) as f64 / 3_600_000.0).max(1.0 / 60.0);
                let radius = |a: f64| (a / std::f64::consts::PI).sqrt();
                let moved =
                    crate::geo::distance_km(p.centre[1], p.centre[0], s.centre[1], s.centre[0]);
                (
                    Some(round(s.detections as f64 / p.detections.max(1) as f64)),
                    Some(round((radius(area) - radius(pv.area_km2)) / hours)),
                    (moved > 0.05).then(|| round(geometry::bearing_deg(p.centre, s.centre))),
                )
            }
            _ => (None, None, None),
        };
        out.push(SnapshotView {
            snapshot: s.label.clone(),
            first_detection: s.first_ms,
            last_detection: s.last_ms,
            detections: s.detections,
            new_pixels: s.new_pixels,
            area_km2: round(area),
            frp_sum_mw: round(s.frp_sum_mw),
            frp_max_mw: s.frp_max_mw,
            growth_rate: growth,
            spread_km_per_h: spread,
            spread_direction_deg: direction,
            perimeter: footprints.clone(),
        });
    }
    out
}

pub(super) fn incident_feature(view: &IncidentView) -> serde_json::Value {
    let geometry = geojson::ring_geometry(&view.perimeter);
    let properties = serde_json::to_value(view).unwrap_or_default();
    geojson::feature(&view.id, geometry, properties, &["perimeter"])
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn round(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
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

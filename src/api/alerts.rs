//! The alert log: `GET /v1/alerts` pages through it, `GET /v1/alerts/stream` follows it live as
//! Server-Sent Events (resumable with `Last-Event-ID`, the alert's `seq`).

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use serde::Serialize;
use serde_json::json;

use super::incidents::{meets, tracker_of};
use super::{ApiError, AppState, geojson};
use crate::index::BBox;
use crate::tracker::{Alert, AlertKind};
use firesight_core::params::Params;

/// Alerts read from the log per step while filtering.
const SCAN_STEP: usize = 1000;
/// Most log entries one page request reads (so a filter that matches nothing costs a bounded amount).
const MAX_SCAN: usize = 200_000;

/// A page of alerts.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AlertPage {
    /// Oldest first.
    pub items: Vec<Alert>,
    /// Pass as `cursor` for the next page (the `seq` after the last one read); absent at the
    /// end of the log.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// What a request filters alerts by.
#[derive(Clone, Default)]
pub(super) struct AlertFilter {
    kinds: Option<Vec<AlertKind>>,
    bbox: Option<BBox>,
    from: Option<i64>,
    to: Option<i64>,
    incident: Option<String>,
}

impl AlertFilter {
    fn of(params: &Params) -> Result<Self, ApiError> {
        let kinds = match params.text("kind") {
            None => None,
            Some(list) => Some(
                list.split(',')
                    .map(|k| {
                        AlertKind::parse(k.trim()).ok_or_else(|| {
                            let all: Vec<&str> =
                                AlertKind::ALL.iter().map(|k| k.as_str()).collect();
                            ApiError::bad("kind", format!("`{k}` is not one of {}", all.join(", ")))
                        })
                    })
                    .collect::<Result<_, _>>()?,
            ),
        };
        let from = params.time("from", false)?.map(|t| t.timestamp_millis());
        let to = params.time("to", true)?.map(|t| t.timestamp_millis());
        if let (Some(f), Some(t)) = (from, to)
            && f > t
        {
            return Err(ApiError::bad("from", "must not be after `to`"));
        }
        Ok(Self {
            kinds,
            bbox: params.bbox()?,
            from,
            to,
            incident: params.text("incident").map(str::to_owned),
        })
    }

    /// Alerts whose incident extent meets `bbox` at a time within `[from, to]` (ms).
    pub(super) fn area_and_time(bbox: Option<BBox>, from: Option<i64>, to: Option<i64>) -> Self {
        Self {
            bbox,
            from,
            to,
            ..Self::default()
        }
    }

    fn matches(&self, alert: &Alert) -> bool {
        self.kinds.as_ref().is_none_or(|k| k.contains(&alert.kind))
            && self.bbox.as_ref().is_none_or(|b| meets(b, &alert.bbox))
            && self.from.is_none_or(|f| alert.time_ms >= f)
            && self.to.is_none_or(|t| alert.time_ms <= t)
            && self
                .incident
                .as_ref()
                .is_none_or(|i| &alert.incident_id == i)
    }
}

/// `GET /v1/alerts?kind&bbox&from&to&incident&limit&cursor&f`.
#[utoipa::path(get, path = "/v1/alerts", tag = "incidents",
    params(
        ("kind" = Option<String>, Query, description = "Comma-separated kinds: new_fire, growth, rule, high_danger"),
        ("bbox" = Option<String>, Query, description = "min_lon,min_lat,max_lon,max_lat: alerts whose incident extent meets it", pattern = r"^ *-?[0-9]+(\.[0-9]+)? *(, *-?[0-9]+(\.[0-9]+)? *){3}$"),
        ("from" = Option<crate::api::openapi::TimeBound>, Query, description = "Alerts at or after this (data) time"),
        ("to" = Option<crate::api::openapi::TimeBound>, Query, description = "Alerts at or before this (data) time"),
        ("incident" = Option<String>, Query, description = "Only this incident's alerts (`inc_…`)"),
        ("limit" = Option<usize>, Query, description = "Page size (default 100)", minimum = 1, maximum = 1000),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page", pattern = "^[0-9]{1,19}$"),
        ("f" = Option<String>, Query, description = "`geojson` for a FeatureCollection of perimeters (also by `Accept: application/geo+json`), `json` (default)"),
    ),
    responses((status = 200, description = "Alerts in log order, oldest first", body = AlertPage),
        crate::api::openapi::CommonErrors),
    security((), ("api_key" = [])))]
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(raw): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let params = Params::new(
        raw,
        &[
            "kind", "bbox", "from", "to", "incident", "limit", "cursor", "f",
        ],
    )?;
    let filter = AlertFilter::of(&params)?;
    let limit = params.bounded("limit", 100usize, 1, state.settings.max_page_size)?;
    let cursor = params.bounded("cursor", 0u64, 0, u64::MAX / 2)?;
    let as_geojson = geojson::wanted(&params, &headers)?;
    tokio::task::spawn_blocking(move || {
        let (items, next_cursor) = page(&state, &filter, cursor, limit)?;
        if as_geojson {
            let features = items.iter().map(alert_feature).collect();
            return Ok(geojson::response(&geojson::collection(
                features,
                json!({"next_cursor": next_cursor}),
            )));
        }
        Ok(Json(AlertPage { items, next_cursor }).into_response())
    })
    .await?
}

/// Alerts from log position `cursor` on that pass `filter`, oldest first, at most `limit`, and
/// the cursor of the next page. At most `MAX_SCAN` log entries are read per page.
pub(super) fn page(
    state: &AppState,
    filter: &AlertFilter,
    cursor: u64,
    limit: usize,
) -> Result<(Vec<Alert>, Option<String>), ApiError> {
    let tracker = tracker_of(state)?;
    let (mut items, mut next, mut scanned) = (Vec::new(), cursor, 0usize);
    let mut at_end = false;
    while items.len() < limit && scanned < MAX_SCAN {
        let step = tracker.alerts_from(&state.store, next, SCAN_STEP)?;
        if step.is_empty() {
            at_end = true;
            break;
        }
        for alert in step {
            scanned += 1;
            next = alert.seq + 1;
            if filter.matches(&alert) {
                items.push(alert);
                if items.len() == limit {
                    break;
                }
            }
        }
    }
    let more = !at_end && !tracker.alerts_from(&state.store, next, 1)?.is_empty();
    Ok((items, more.then(|| next.to_string())))
}

/// The alert at log position `seq`, if there is one.
pub(super) fn at(state: &AppState, seq: u64) -> Result<Option<Alert>, ApiError> {
    let tracker = tracker_of(state)?;
    Ok(tracker
        .alerts_from(&state.store, seq, 1)?
        .into_iter()
        .find(|a| a.seq == seq))
}

/// An alert as a Feature: its incident's perimeter then, with the rest as properties.
pub(super) fn alert_feature(alert: &Alert) -> serde_json::Value {
    let properties = serde_json::to_value(alert).unwrap_or_default();
    geojson::feature(
        &alert.id,
        geojson::ring_geometry(&alert.perimeter),
        properties,
        &["perimeter"],
    )
}

/// `GET /v1/alerts/stream?kind&bbox&incident&after`: Server-Sent Events, one `alert` event per
/// alert (its `id` is the alert's `seq`). Without `Last-Event-ID` or `after`, it starts with
/// alerts raised from now on; with either, it first replays the log after that sequence.
#[utoipa::path(get, path = "/v1/alerts/stream", tag = "incidents",
    params(
        ("kind" = Option<String>, Query, description = "Comma-separated kinds: new_fire, growth, rule, high_danger"),
        ("bbox" = Option<String>, Query, description = "min_lon,min_lat,max_lon,max_lat", pattern = r"^ *-?[0-9]+(\.[0-9]+)? *(, *-?[0-9]+(\.[0-9]+)? *){3}$"),
        ("incident" = Option<String>, Query, description = "Only this incident's alerts"),
        ("after" = Option<u64>, Query, description = "Replay from the alert after this `seq` (as the `Last-Event-ID` header does)", minimum = 0),
    ),
    responses((status = 200, description = "`text/event-stream` of `alert` events (JSON `Alert` data)", content_type = "text/event-stream", body = String),
        crate::api::openapi::CommonErrors),
    security((), ("api_key" = [])))]
pub async fn stream(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(raw): Query<Vec<(String, String)>>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let params = Params::new(raw, &["kind", "bbox", "incident", "after"])?;
    let filter = AlertFilter::of(&params)?;
    tracker_of(&state)?;
    let resume = match headers.get("last-event-id") {
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    ApiError::bad("Last-Event-ID", "must be an alert `seq` (a whole number)")
                })?,
        ),
        None if params.text("after").is_some() => {
            Some(params.bounded("after", 0u64, 0, u64::MAX / 2)?)
        }
        None => None,
    };
    let seen = state.pipeline.alerts_seen();
    let start = match resume {
        Some(seq) => seq + 1,
        None => state.store.peek_alert_seq(),
    };
    let events = futures_util::stream::unfold(
        (
            state,
            filter,
            seen,
            start,
            std::collections::VecDeque::<Alert>::new(),
        ),
        |(state, filter, mut seen, mut next, mut pending)| async move {
            loop {
                if let Some(alert) = pending.pop_front() {
                    let event = Event::default()
                        .event("alert")
                        .id(alert.seq.to_string())
                        .data(serde_json::to_string(&alert).unwrap_or_default());
                    return Some((Ok(event), (state, filter, seen, next, pending)));
                }
                let read = {
                    let state = state.clone();
                    tokio::task::spawn_blocking(move || match state.pipeline.tracker() {
                        Some(t) => t.alerts_from(&state.store, next, 100).ok(),
                        None => None,
                    })
                    .await
                };
                match read {
                    Ok(Some(batch)) if !batch.is_empty() => {
                        for alert in batch {
                            next = alert.seq + 1;
                            if filter.matches(&alert) {
                                pending.push_back(alert);
                            }
                        }
                    }
                    Ok(Some(_)) => {
                        // Nothing new: wait for a commit with alerts (or re-check now and then).
                        let _ = tokio::time::timeout(Duration::from_secs(5), seen.changed()).await;
                    }
                    _ => return None,
                }
            }
        },
    );
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

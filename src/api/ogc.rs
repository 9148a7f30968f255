//! OGC API – Features, Part 1: Core, at `/ogc`, so GIS clients (QGIS, ArcGIS, GDAL's `OAPIF`
//! driver) open FireSight's detections and incidents as layers with no adapter.
//!
//! Collections: `fires` (detections, points), `incidents` (perimeters, polygons) and `alerts`
//! (the alert log, each with its incident's perimeter then). Items take
//! `bbox` (4 numbers, or 6 with heights, which are ignored), `datetime` (an instant, a day or an
//! interval with `..` for an open end), `limit` (clamped to `api.max_page_size`, as the standard
//! asks) and follow `next` links. Coordinates are CRS84 (longitude, latitude), the only CRS
//! served.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::alerts::{self, AlertFilter};
use super::incidents::{self, IncidentQuery};
use super::{ApiError, AppState, geojson};
use crate::api::openapi::CommonErrors;
use crate::index::BBox;
use crate::tracker::{Alert, IncidentStatus};
use firesight_core::params::{Params, ogc_bbox, ogc_datetime};

const CRS84: &str = "http://www.opengis.net/def/crs/OGC/1.3/CRS84";
const GREGORIAN: &str = "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian";
const CONFORMANCE: [&str; 2] = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
];
const DEFAULT_LIMIT: usize = 100;
/// Events one `fires` page may look at before it answers, empty or not, with a `next` link.
const MAX_SCANNED_PER_PAGE: usize = 500_000;
const ITEM_PARAMS: [&str; 5] = ["bbox", "datetime", "limit", "cursor", "f"];

/// The collections served.
#[derive(Clone, Copy, PartialEq)]
enum Collection {
    Fires,
    Incidents,
    Alerts,
}

impl Collection {
    fn parse(id: &str) -> Result<Self, ApiError> {
        match id {
            "fires" => Ok(Self::Fires),
            "incidents" => Ok(Self::Incidents),
            "alerts" => Ok(Self::Alerts),
            other => Err(ApiError::NotFound {
                what: "collection",
                id: other.to_owned(),
            }),
        }
    }

    fn id(self) -> &'static str {
        match self {
            Self::Fires => "fires",
            Self::Incidents => "incidents",
            Self::Alerts => "alerts",
        }
    }
}

/// `GET /ogc`: the landing page.
#[utoipa::path(get, path = "/ogc", tag = "ogc",
    responses((status = 200, description = "Links to the API definition, the conformance classes and the collections", content_type = "application/json", body = Object), CommonErrors),
    security((), ("api_key" = [])))]
pub async fn landing(headers: HeaderMap) -> Response {
    let base = base_url(&headers);
    json_response(&json!({
        "title": "FireSight",
        "description": "Satellite fire detections and the fire incidents tracked from them",
        "links": [
            link(&format!("{base}/ogc"), "self", "application/json", "This document"),
            link(&format!("{base}/openapi.json"), "service-desc", "application/vnd.oai.openapi+json;version=3.1", "The API definition"),
            link(&format!("{base}/docs"), "service-doc", "text/html", "The API documentation"),
            link(&format!("{base}/ogc/conformance"), "conformance", "application/json", "Conformance classes implemented"),
            link(&format!("{base}/ogc/collections"), "data", "application/json", "The collections"),
        ],
    }))
}

/// `GET /ogc/conformance`.
#[utoipa::path(get, path = "/ogc/conformance", tag = "ogc",
    responses((status = 200, description = "`conformsTo`: Core and GeoJSON", content_type = "application/json", body = Object), CommonErrors),
    security((), ("api_key" = [])))]
pub async fn conformance() -> Response {
    json_response(&json!({ "conformsTo": CONFORMANCE }))
}

/// `GET /ogc/collections`.
#[utoipa::path(get, path = "/ogc/collections", tag = "ogc",
    responses((status = 200, description = "`fires`, `incidents` and `alerts` with their extents", content_type = "application/json", body = Object), CommonErrors),
    security((), ("api_key" = [])))]
pub async fn collections(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let base = base_url(&headers);
    let extent = tokio::task::spawn_blocking(move || Extent::of(&state)).await??;
    let described: Vec<Value> = [Collection::Fires, Collection::Incidents, Collection::Alerts]
        .into_iter()
        .map(|c| describe(c, &base, &extent))
        .collect();
    Ok(json_response(&json!({
        "links": [link(&format!("{base}/ogc/collections"), "self", "application/json", "The collections")],
        "collections": described,
    })))
}

/// `GET /ogc/collections/{collection}`.
#[utoipa::path(get, path = "/ogc/collections/{collection}", tag = "ogc",
    params(("collection" = String, Path, description = "`fires`, `incidents` or `alerts`")),
    responses((status = 200, description = "The collection with its extent and links", content_type = "application/json", body = Object), (status = 404, description = "No such collection", body = crate::api::error::ErrorBody), CommonErrors),
    security((), ("api_key" = [])))]
pub async fn collection(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let which = Collection::parse(&id)?;
    let base = base_url(&headers);
    let extent = tokio::task::spawn_blocking(move || Extent::of(&state)).await??;
    Ok(json_response(&describe(which, &base, &extent)))
}

/// `GET /ogc/collections/{collection}/items?bbox&datetime&limit&cursor`.
#[utoipa::path(get, path = "/ogc/collections/{collection}/items", tag = "ogc",
    params(
        ("collection" = String, Path, description = "`fires`, `incidents` or `alerts`"),
        ("bbox" = Option<String>, Query, description = "min_lon,min_lat,max_lon,max_lat (CRS84), or 6 numbers with heights (ignored); west > east crosses the antimeridian"),
        ("datetime" = Option<String>, Query, description = "An instant, a day (YYYY-MM-DD), or an interval `start/end` with `..` for an open end"),
        ("limit" = Option<usize>, Query, description = "Features per page (default 100); more than api.max_page_size (1000) gives that many", minimum = 1, maximum = 1000),
        ("cursor" = Option<String>, Query, description = "Where the `next` link goes on"),
        ("f" = Option<String>, Query, description = "`json` or `geojson` (the same)"),
    ),
    responses((status = 200, description = "A GeoJSON FeatureCollection with `links` (self, next, collection), `numberReturned` and, for incidents, `numberMatched`", content_type = "application/geo+json", body = Object), (status = 404, description = "No such collection", body = crate::api::error::ErrorBody), CommonErrors),
    security((), ("api_key" = [])))]
pub async fn items(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(raw): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let which = Collection::parse(&id)?;
    let params = Params::new(raw, &ITEM_PARAMS)?;
    geojson_format(&params)?;
    // Larger than the maximum is not an error in OGC API – Features: the maximum is used.
    let limit = params
        .bounded("limit", DEFAULT_LIMIT, 1, usize::MAX)?
        .min(state.settings.max_page_size);
    let bbox = params.text("bbox").map(ogc_bbox).transpose()?;
    let (from, to) = match params.text("datetime") {
        Some(text) => ogc_datetime(text)?,
        None => (None, None),
    };
    // Each collection pages its own way: a store key, an offset, a place in the alert log.
    let start = match which {
        Collection::Fires => Start::Event(params.event_cursor()?),
        Collection::Incidents => Start::Offset(params.bounded("cursor", 0usize, 0, 999_999_999)?),
        Collection::Alerts => Start::Seq(params.bounded("cursor", 0u64, 0, u64::MAX / 2)?),
    };
    let scope = Scope {
        bbox,
        from,
        to,
        limit,
    };
    let base = base_url(&headers);
    let items_url = format!("{base}/ogc/collections/{}/items", which.id());
    let mut kept: Vec<(&str, String)> = Vec::new();
    for name in ["bbox", "datetime", "f"] {
        if let Some(v) = params.text(name) {
            kept.push((name, v.to_owned()));
        }
    }
    kept.push(("limit", limit.to_string()));
    let page = tokio::task::spawn_blocking(move || match start {
        Start::Event(cursor) => fire_page(&state, &scope, cursor),
        Start::Offset(offset) => incident_page(&state, &scope, offset),
        Start::Seq(seq) => alert_page(&state, &scope, seq),
    })
    .await??;
    let with = |cursor: Option<&str>| {
        let mut pairs = kept.clone();
        if let Some(c) = cursor {
            pairs.push(("cursor", c.to_owned()));
        }
        format!("{items_url}?{}", query_string(&pairs))
    };
    let mut links = vec![
        link(
            &with(params.text("cursor")),
            "self",
            geojson::MEDIA_TYPE,
            "This page",
        ),
        link(
            &format!("{base}/ogc/collections/{}", which.id()),
            "collection",
            "application/json",
            "The collection",
        ),
    ];
    if let Some(next) = &page.next {
        links.push(link(
            &with(Some(next)),
            "next",
            geojson::MEDIA_TYPE,
            "The next page",
        ));
    }
    let mut extra = json!({
        "timeStamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "numberReturned": page.features.len(),
        "links": links,
    });
    if let (Some(total), Some(map)) = (page.matched, extra.as_object_mut()) {
        map.insert("numberMatched".into(), json!(total));
    }
    Ok(geojson::response(&geojson::collection(
        page.features,
        extra,
    )))
}

/// `GET /ogc/collections/{collection}/items/{id}`.
#[utoipa::path(get, path = "/ogc/collections/{collection}/items/{id}", tag = "ogc",
    params(("collection" = String, Path, description = "`fires`, `incidents` or `alerts`"), ("id" = String, Path, description = "Event id (`fd_...`), incident id (`inc_...`) or alert `seq`"),
        ("f" = Option<String>, Query, description = "`json` or `geojson` (the same)")),
    responses((status = 200, description = "A GeoJSON Feature with `links`", content_type = "application/geo+json", body = Object), (status = 404, description = "No such collection or feature", body = crate::api::error::ErrorBody), CommonErrors),
    security((), ("api_key" = [])))]
pub async fn item(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((collection, id)): Path<(String, String)>,
    Query(raw): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let which = Collection::parse(&collection)?;
    let params = Params::new(raw, &["f"])?;
    geojson_format(&params)?;
    let lookup = id.clone();
    let found = tokio::task::spawn_blocking(move || match which {
        Collection::Fires => Ok::<_, ApiError>(
            state
                .store
                .event(&lookup)?
                .map(|e| geojson::fire_feature(&e)),
        ),
        Collection::Incidents if lookup.starts_with("inc_") && lookup.len() <= 80 => {
            Ok(incidents::one(&state, &lookup)?.map(|v| incidents::incident_feature(&v)))
        }
        Collection::Incidents => Ok(None),
        Collection::Alerts => match lookup.parse::<u64>() {
            Ok(seq) => Ok(alerts::at(&state, seq)?.map(|a| ogc_alert(&a))),
            Err(_) => Ok(None),
        },
    })
    .await??;
    let mut feature = found.ok_or_else(|| ApiError::NotFound {
        what: match which {
            Collection::Fires => "fire event",
            Collection::Incidents => "incident",
            Collection::Alerts => "alert",
        },
        id: id.clone(),
    })?;
    let base = base_url(&headers);
    let here = format!("{base}/ogc/collections/{}", which.id());
    if let Some(map) = feature.as_object_mut() {
        map.insert(
            "links".into(),
            json!([
                link(
                    &format!("{here}/items/{}", encode(&id)),
                    "self",
                    geojson::MEDIA_TYPE,
                    "This feature"
                ),
                link(&here, "collection", "application/json", "The collection"),
            ]),
        );
    }
    Ok(geojson::response(&feature))
}

/// One page of features and where the next one starts.
struct Page {
    features: Vec<Value>,
    next: Option<String>,
    matched: Option<usize>,
}

/// What an items request asks for, whatever the collection.
struct Scope {
    bbox: Option<BBox>,
    from: Option<i64>,
    to: Option<i64>,
    limit: usize,
}

/// Where a page starts.
enum Start {
    /// `fires`: after this store key (hex).
    Event(Option<String>),
    /// `incidents`: this many incidents in.
    Offset(usize),
    /// `alerts`: at this place in the log.
    Seq(u64),
}

fn fire_page(state: &AppState, scope: &Scope, cursor: Option<String>) -> Result<Page, ApiError> {
    let page = state.store.list_events_where(
        scope.from.unwrap_or(i64::MIN),
        scope.to.unwrap_or(i64::MAX),
        cursor.as_deref(),
        scope.limit,
        MAX_SCANNED_PER_PAGE,
        |e| {
            scope
                .bbox
                .as_ref()
                .is_none_or(|b| b.contains(e.location.latitude as f32, e.location.longitude as f32))
        },
    )?;
    Ok(Page {
        features: page.events.iter().map(geojson::fire_feature).collect(),
        next: page.next_cursor,
        matched: None,
    })
}

fn incident_page(state: &AppState, scope: &Scope, offset: usize) -> Result<Page, ApiError> {
    let found = incidents::select(
        state,
        &IncidentQuery {
            statuses: vec![IncidentStatus::Active, IncidentStatus::Inactive],
            min_size: 1,
            with_static: true,
            bbox: scope.bbox,
            from: scope.from,
            to: scope.to,
            offset,
            limit: scope.limit,
            members: false,
        },
    )?;
    Ok(Page {
        features: found
            .items
            .iter()
            .map(incidents::incident_feature)
            .collect(),
        next: found.next_offset.map(|o| o.to_string()),
        matched: Some(found.total),
    })
}

fn alert_page(state: &AppState, scope: &Scope, seq: u64) -> Result<Page, ApiError> {
    let filter = AlertFilter::area_and_time(scope.bbox, scope.from, scope.to);
    let (items, next) = alerts::page(state, &filter, seq, scope.limit)?;
    Ok(Page {
        features: items.iter().map(ogc_alert).collect(),
        next,
        matched: None,
    })
}

/// An alert as an OGC feature: identified by its place in the log (`seq`), which is how a
/// single one is fetched; its `id` stays among the properties.
fn ogc_alert(alert: &Alert) -> Value {
    let mut feature = alerts::alert_feature(alert);
    feature["id"] = json!(alert.seq);
    feature
}

/// The extent every collection shares: the stored detections' time span, and the union of the
/// incidents' extents in space (the whole world when no incident is tracked).
struct Extent {
    interval: Value,
    bbox: [f64; 4],
}

impl Extent {
    fn of(state: &AppState) -> Result<Self, ApiError> {
        let interval = match state.store.event_time_span()? {
            Some((oldest, newest)) => json!([[rfc3339(oldest), rfc3339(newest)]]),
            None => json!([[null, null]]),
        };
        let mut bbox = [180.0f64, 90.0, -180.0, -90.0];
        if let Some(tracker) = state.pipeline.tracker() {
            for incident in tracker.incidents(&state.store)? {
                if incident.status == IncidentStatus::Merged {
                    continue;
                }
                let b = incident.bbox;
                bbox = [
                    bbox[0].min(b[0]),
                    bbox[1].min(b[1]),
                    bbox[2].max(b[2]),
                    bbox[3].max(b[3]),
                ];
            }
        }
        if bbox[0] > bbox[2] {
            bbox = [-180.0, -90.0, 180.0, 90.0];
        }
        Ok(Self { interval, bbox })
    }
}

/// A collection's description with its extent and links.
fn describe(which: Collection, base: &str, extent: &Extent) -> Value {
    let (title, description) = match which {
        Collection::Fires => (
            "Fire detections",
            "Satellite active-fire detections (NASA FIRMS, MODIS and VIIRS) with the weather joined to them and the models' predictions, newest first",
        ),
        Collection::Alerts => (
            "Alerts",
            "The alert log, oldest first: new fires, growth between overpasses, rule anomalies and high fire danger, each with its incident's perimeter then; a feature's id is its place in the log",
        ),
        Collection::Incidents => (
            "Fire incidents",
            "Fires tracked from the detections, with their perimeters (active and inactive; merged ones are left out), most recently detected first",
        ),
    };
    let here = format!("{base}/ogc/collections/{}", which.id());
    json!({
        "id": which.id(),
        "title": title,
        "description": description,
        "itemType": "feature",
        "crs": [CRS84],
        "extent": {
            "spatial": {"bbox": [extent.bbox], "crs": CRS84},
            "temporal": {"interval": extent.interval, "trs": GREGORIAN},
        },
        "links": [
            link(&here, "self", "application/json", title),
            link(&format!("{here}/items"), "items", geojson::MEDIA_TYPE, "The features"),
        ],
    })
}

/// `f` may ask for JSON or GeoJSON, which are the same here; anything else is refused.
fn geojson_format(params: &Params) -> Result<(), ApiError> {
    match params.text("f") {
        None | Some("json" | "geojson") => Ok(()),
        Some(other) => Err(ApiError::bad(
            "f",
            format!("`{other}` is not one of json, geojson"),
        )),
    }
}

/// `scheme://host` the client used, for absolute links (GIS clients resolve them as given). A
/// `Host` with characters no host name has gives relative links instead.
fn base_url(headers: &HeaderMap) -> String {
    let header_text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let host = header_text("x-forwarded-host").or_else(|| header_text(header::HOST.as_str()));
    let plausible = |h: &&str| {
        h.len() <= 255
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b))
    };
    let scheme = match header_text("x-forwarded-proto") {
        Some("https") => "https",
        _ => "http",
    };
    match host.filter(plausible) {
        Some(h) => format!("{scheme}://{h}"),
        None => String::new(),
    }
}

fn link(href: &str, rel: &str, media_type: &str, title: &str) -> Value {
    json!({"href": href, "rel": rel, "type": media_type, "title": title})
}

fn json_response(body: &Value) -> Response {
    Json(body).into_response()
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn query_string(pairs: &[(&str, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_use_the_host_asked_for_and_only_a_plausible_one() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(base_url(&headers), "http://127.0.0.1:8080");
        headers.insert(header::HOST, "evil.example/<script>".parse().unwrap());
        assert_eq!(base_url(&headers), "");
        assert_eq!(encode("140,-39 x/y"), "140%2C-39%20x%2Fy");
    }
}

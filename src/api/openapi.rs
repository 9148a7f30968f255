//! The OpenAPI 3 document, generated from the handlers' and types' annotations.
//!
//! `schemas/openapi.json` is this document, checked in; a test fails when they drift
//! (`firesight openapi > schemas/openapi.json` rewrites it). The service serves it at
//! `/openapi.json` and a browsable page at `/docs`.

use utoipa::Modify;
use utoipa::OpenApi;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{
    KnownFormat, ObjectBuilder, OneOfBuilder, Schema, SchemaFormat, Type,
};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};

use super::error::ErrorBody;
use super::{admin, alerts, fires, health, incidents, ingest, ogc, patterns, search, stations};

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "FireSight",
        description = "Wildfire intelligence: correlated fire detections, similarity, clusters and outliers, predictions and natural-language search. Errors are `{\"error\": {\"code\", \"field\", \"reason\"}}`. With API keys configured, send one as `X-API-Key` (or `Authorization: Bearer`); read routes may be open (auth.read_open)."
    ),
    paths(
        ingest::firms,
        ingest::weather,
        ingest::stations,
        ingest::sensors,
        stations::list,
        stations::fire_weather,
        fires::list,
        fires::get_one,
        fires::similar_to_event,
        fires::similar,
        patterns::clusters,
        patterns::outliers,
        incidents::list,
        incidents::get_one,
        incidents::active_fires,
        incidents::growth_alerts,
        alerts::list,
        alerts::stream,
        ogc::landing,
        ogc::conformance,
        ogc::collections,
        ogc::collection,
        ogc::items,
        ogc::item,
        search::search,
        search::predict,
        search::historical_incidents,
        fires::dead_letters,
        admin::status,
        admin::start,
        health::healthz,
        health::readyz,
        health::metrics,
    ),
    components(schemas(TimeBound, crate::event::ConfidenceClass)),
    modifiers(&KeyScheme),
    tags(
        (name = "ingest", description = "Detections, weather, stations and sensor readings in"),
        (name = "fires", description = "Stored FireEventV2 records"),
        (name = "weather", description = "Stations, which of them report, and each station's Canadian Fire Weather Index System series"),
        (name = "similarity", description = "Nearest events in the encoder's space"),
        (name = "patterns", description = "Clusters and outliers of a window of events"),
        (name = "incidents", description = "Incidents from the tracker (perimeters, overpass snapshots), their alerts (log and live stream), active fires and growth between overpasses"),
        (name = "ogc", description = "OGC API – Features, Part 1 Core: `fires`, `incidents` and `alerts` as collections for GIS clients (QGIS, ArcGIS, GDAL `OAPIF:`)"),
        (name = "search", description = "Natural-language search over historical incidents and fire events"),
        (name = "models", description = "Predictions of the registered models for an ad-hoc event"),
        (name = "operations", description = "Health, metrics, dead letters, re-index"),
    )
)]
pub struct ApiDoc;

struct KeyScheme;

impl Modify for KeyScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
    }
}

/// The document as pretty JSON, as checked in at `schemas/openapi.json`.
pub fn document() -> String {
    let mut doc = ApiDoc::openapi();
    // The version follows the crate, so a release bump shows up as drift to re-generate.
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc.to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
        + "\n"
}

/// A time bound in a query: an RFC 3339 instant, or a `YYYY-MM-DD` day (UTC; `from` takes its
/// first millisecond, `to` its last). Documentation only: the handlers parse the text.
pub struct TimeBound;

impl utoipa::PartialSchema for TimeBound {
    fn schema() -> RefOr<Schema> {
        let string = |format| {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::KnownFormat(format)))
        };
        OneOfBuilder::new()
            .item(string(KnownFormat::Date))
            .item(string(KnownFormat::DateTime))
            .description(Some(
                "RFC 3339 instant or YYYY-MM-DD day (UTC); `from` must not be after `to`",
            ))
            .into()
    }
}

impl utoipa::ToSchema for TimeBound {}

/// What any keyed route may answer besides its own errors: a bad parameter, no or an unknown
/// key, a key whose role is too low, and "still starting" (or, for queries, "timed out").
#[derive(utoipa::IntoResponses)]
pub enum CommonErrors {
    /// 400.
    #[response(
        status = 400,
        description = "A parameter or field is invalid; `field` names it"
    )]
    BadRequest(ErrorBody),
    /// 401.
    #[response(status = 401, description = "No API key, or an unknown one")]
    Unauthorized(ErrorBody),
    /// 403.
    #[response(status = 403, description = "The key's role is too low for the route")]
    Forbidden(ErrorBody),
    /// 503.
    #[response(
        status = 503,
        description = "Still starting, or (queries) ran past api.request_timeout_ms"
    )]
    Unavailable(ErrorBody),
}

/// The filters every window and similarity query takes.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[expect(
    dead_code,
    reason = "describes parameters the handlers parse themselves"
)]
pub struct WindowFilters {
    /// Earliest detection: RFC 3339, or YYYY-MM-DD (start of day, UTC).
    from: Option<TimeBound>,
    /// Latest detection: RFC 3339, or YYYY-MM-DD (end of day, UTC).
    to: Option<TimeBound>,
    /// `min_lon,min_lat,max_lon,max_lat` in degrees; west > east crosses the antimeridian;
    /// latitudes within [-90, 90], min_lat <= max_lat.
    #[param(
        example = "140,-39,154,-28",
        pattern = r"^ *-?[0-9]+(\.[0-9]+)? *(, *-?[0-9]+(\.[0-9]+)? *){3}$"
    )]
    bbox: Option<String>,
    /// Satellites, comma-separated: Terra, Aqua, Suomi NPP, NOAA-20, NOAA-21.
    #[param(
        pattern = "^(Terra|Aqua|Suomi NPP|NOAA-20|NOAA-21)(,(Terra|Aqua|Suomi NPP|NOAA-20|NOAA-21))*$"
    )]
    source: Option<String>,
    /// low, nominal or high.
    min_confidence: Option<crate::event::ConfidenceClass>,
}

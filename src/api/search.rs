//! Natural-language search, ad-hoc predictions, and historical-incident ingest.

use std::sync::atomic::Ordering;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::{ApiError, AppState};
use crate::event::{FireEventV2, MlPrediction};
use crate::search::{Constraints, Doc, Ranker, SearchAnswer, SearchFilters};
use crate::stream::IngestOutcome;
use crate::stream::decode::json_error;

/// Most hits one search returns.
const MAX_SEARCH_K: usize = 100;
const DEFAULT_SEARCH_K: usize = 10;

/// Body of `POST /v1/search`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    /// The question, in English: "the big November 2018 fire in Butte County".
    pub query: String,
    /// Hits wanted (default 10, at most 100).
    #[schema(minimum = 1, maximum = 100)]
    pub k: Option<usize>,
    /// Filters applied on top of those read from the query.
    #[serde(default)]
    pub filters: SearchFilters,
    /// `hybrid` (default: BM25 and vectors blended by `search.fusion`), `rrf` (fused by reciprocal
    /// rank), `bm25` or `vector`.
    #[serde(default)]
    pub ranker: Ranker,
    /// Read years, months, dates, counties, regions and sizes from the query as filters
    /// (default true).
    pub understand: Option<bool>,
}

/// `POST /v1/search`.
#[utoipa::path(post, path = "/v1/search", tag = "search",
    request_body = SearchRequest,
    responses((status = 200, description = "Best first, with what was understood", body = SearchAnswer), (status = 503, description = "Search is switched off or its index is still being built", body = crate::api::error::ErrorBody), crate::api::openapi::CommonErrors),
    security((), ("api_key" = [])))]
pub async fn search(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<SearchAnswer>, ApiError> {
    let search = state.search.clone().ok_or_else(|| {
        ApiError::Unavailable(
            "search is switched off on this instance (search.enabled = false)".into(),
        )
    })?;
    if let Some(failure) = search
        .failure
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
    {
        return Err(ApiError::Unavailable(format!(
            "the search index could not be built: {failure}"
        )));
    }
    if !search.ready.load(Ordering::Acquire) {
        return Err(ApiError::Unavailable(format!(
            "the search index is still being built ({} documents so far); retry shortly",
            search.index.len()
        )));
    }
    if let Err(e) = std::str::from_utf8(&body) {
        return Err(ApiError::bad(
            "body",
            format!("is not UTF-8 (invalid byte at offset {})", e.valid_up_to()),
        ));
    }
    let request: SearchRequest =
        serde_json::from_slice(&body).map_err(|e| ApiError::from(json_error(0, &e)))?;
    let query = request.query.trim();
    if query.is_empty() {
        return Err(ApiError::bad("query", "is empty; ask a question in words"));
    }
    if query.len() > search.max_query_bytes {
        return Err(ApiError::bad(
            "query",
            format!(
                "is {} bytes; the longest accepted is {} (search.max_query_bytes)",
                query.len(),
                search.max_query_bytes
            ),
        ));
    }
    if query.chars().any(|c| c.is_control() && !c.is_whitespace()) {
        return Err(ApiError::bad("query", "contains control characters"));
    }
    let k = request.k.unwrap_or(DEFAULT_SEARCH_K);
    if k == 0 || k > MAX_SEARCH_K {
        return Err(ApiError::bad(
            "k",
            format!("{k} is outside [1, {MAX_SEARCH_K}]"),
        ));
    }
    let constraints = constraints(request.filters)?;
    let query = query.to_owned();
    let answer = tokio::task::spawn_blocking(move || {
        search.index.search(
            &query,
            k,
            request.ranker,
            constraints,
            request.understand.unwrap_or(true),
        )
    })
    .await?
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Json(answer))
}

fn constraints(f: SearchFilters) -> Result<Constraints, ApiError> {
    let bound = |field: &str, value: Option<String>, end: bool| {
        value
            .map(|v| {
                firesight_core::params::parse_time(&format!("filters.{field}"), &v, end)
                    .map(|t| t.timestamp_millis())
            })
            .transpose()
    };
    let acres = |field: &str, value: Option<f64>| match value {
        Some(v) if !v.is_finite() || v < 0.0 => Err(ApiError::bad(
            format!("filters.{field}"),
            format!("{v} is not a non-negative number of acres"),
        )),
        other => Ok(other),
    };
    let c = Constraints {
        kind: f.kind,
        from_ms: bound("from", f.from, false)?,
        to_ms: bound("to", f.to, true)?,
        county: f.county.filter(|c| !c.trim().is_empty()),
        min_acres: acres("min_acres", f.min_acres)?,
        max_acres: acres("max_acres", f.max_acres)?,
        ..Constraints::default()
    };
    if let (Some(a), Some(b)) = (c.from_ms, c.to_ms)
        && a > b
    {
        return Err(ApiError::bad("filters.from", "is after filters.to"));
    }
    Ok(c)
}

/// Weather given with an ad-hoc prediction instead of the stored observations.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WeatherOverride {
    /// Maximum temperature, °C.
    pub max_temp_c: Option<f64>,
    /// Minimum temperature, °C.
    pub min_temp_c: Option<f64>,
    /// Rain, mm.
    pub rain_mm: Option<f64>,
    /// Relative humidity at 3 pm, %.
    pub rh_3pm_pct: Option<f64>,
    /// Wind at 3 pm, km/h.
    pub wind_3pm_kmh: Option<f64>,
    /// Strongest gust, km/h.
    pub max_gust_kmh: Option<f64>,
    /// The station's Fire Weather Index codes for the day, which `fire-danger@2` reads (without
    /// them it answers from the weather alone, as version 1).
    pub fire_weather: Option<CodesOverride>,
}

/// Fire Weather Index codes given with an ad-hoc prediction.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodesOverride {
    /// Fine Fuel Moisture Code, 0–101.
    pub ffmc: f64,
    /// Duff Moisture Code, ≥ 0.
    pub dmc: f64,
    /// Drought Code, ≥ 0.
    pub dc: f64,
    /// Initial Spread Index, ≥ 0.
    pub isi: f64,
    /// Buildup Index, ≥ 0.
    pub bui: f64,
    /// Fire Weather Index, ≥ 0.
    pub fwi: f64,
}

impl CodesOverride {
    /// The codes as a day of a spun-up series, or the field that is out of range.
    fn checked(&self) -> Result<crate::event::FireWeather, ApiError> {
        let codes = [
            ("ffmc", self.ffmc),
            ("dmc", self.dmc),
            ("dc", self.dc),
            ("isi", self.isi),
            ("bui", self.bui),
            ("fwi", self.fwi),
        ];
        for (field, value) in codes {
            if !value.is_finite() || value < 0.0 || (field == "ffmc" && value > 101.0) {
                let range = if field == "ffmc" {
                    "[0, 101]"
                } else {
                    "[0, ∞)"
                };
                return Err(ApiError::bad(
                    format!("weather.fire_weather.{field}"),
                    format!("is not a number in {range}"),
                ));
            }
        }
        Ok(crate::event::FireWeather {
            date: String::new(),
            ffmc: self.ffmc,
            dmc: self.dmc,
            dc: self.dc,
            isi: self.isi,
            bui: self.bui,
            fwi: self.fwi,
            dsr: 0.0,
            danger_class: String::new(),
            days_in_series: crate::embed::SPUN_UP_DAYS,
        })
    }
}

/// Body of `POST /v1/predict`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PredictRequest {
    /// A detection's fields (the JSON form of a FIRMS row), as for `POST /v1/similar`.
    pub detection: serde_json::Value,
    /// Weather to use instead of the stored observation ("what if it were 10 % humidity?").
    pub weather: Option<WeatherOverride>,
}

/// Answer of `POST /v1/predict`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PredictResponse {
    /// Each model's output; a model whose inputs are missing (fire danger without weather) is
    /// left out and named in `not_predicted`.
    pub predictions: Vec<MlPrediction>,
    /// `name@version` of models that could not predict for this event, with why.
    pub not_predicted: Vec<String>,
    /// The event as the pipeline would store it (correlated, with its predictions).
    #[schema(value_type = Object)]
    pub event: FireEventV2,
}

/// `POST /v1/predict`.
#[utoipa::path(post, path = "/v1/predict", tag = "models",
    request_body = PredictRequest,
    responses((status = 200, description = "Every predictor's output for the event", body = PredictResponse), crate::api::openapi::CommonErrors),
    security((), ("api_key" = [])))]
pub async fn predict(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<PredictResponse>, ApiError> {
    let request: PredictRequest =
        serde_json::from_slice(&body).map_err(|e| ApiError::from(json_error(0, &e)))?;
    let response = tokio::task::spawn_blocking(move || {
        let detection = super::fires::decode_detection(&request.detection)?;
        let mut event = state.pipeline.enrich(&detection)?;
        if let Some(w) = request.weather {
            for (field, value) in [
                ("max_temp_c", w.max_temp_c),
                ("min_temp_c", w.min_temp_c),
                ("rain_mm", w.rain_mm),
                ("rh_3pm_pct", w.rh_3pm_pct),
                ("wind_3pm_kmh", w.wind_3pm_kmh),
                ("max_gust_kmh", w.max_gust_kmh),
            ] {
                if value.is_some_and(|v| !v.is_finite()) {
                    return Err(ApiError::bad(
                        format!("weather.{field}"),
                        "is not a finite number",
                    ));
                }
            }
            if w.rh_3pm_pct.is_some_and(|v| !(0.0..=100.0).contains(&v)) {
                return Err(ApiError::bad("weather.rh_3pm_pct", "is outside [0, 100]"));
            }
            if w.rain_mm.is_some_and(|v| v < 0.0) || w.wind_3pm_kmh.is_some_and(|v| v < 0.0) {
                return Err(ApiError::bad("weather", "rain and wind cannot be negative"));
            }
            event.weather_status = Some(crate::event::WeatherStatus::Matched);
            event.weather_conditions = Some(crate::event::WeatherConditions {
                station_id: 0,
                station_name: "given with the request".into(),
                distance_km: 0.0,
                observation_date: String::new(),
                age_hours: 0.0,
                min_temp_c: w.min_temp_c,
                max_temp_c: w.max_temp_c,
                rain_mm: w.rain_mm,
                rh_3pm_pct: w.rh_3pm_pct,
                wind_3pm_kmh: w.wind_3pm_kmh,
                max_gust_kmh: w.max_gust_kmh,
                fire_weather: w
                    .fire_weather
                    .as_ref()
                    .map(CodesOverride::checked)
                    .transpose()?,
            });
        }
        state.pipeline.predict(std::slice::from_mut(&mut event))?;
        let predictions = event.ml_predictions.clone().unwrap_or_default();
        let not_predicted = state
            .pipeline
            .predictors()
            .versions()
            .into_iter()
            .filter(|v| {
                !predictions
                    .iter()
                    .any(|p| format!("{}@{}", p.model, p.version) == *v)
            })
            .map(|v| {
                format!("{v}: its inputs are missing for this event (no weather joined or given)")
            })
            .collect();
        Ok::<_, ApiError>(PredictResponse {
            predictions,
            not_predicted,
            event,
        })
    })
    .await??;
    Ok(Json(response))
}

/// `POST /v1/historical-incidents`.
#[utoipa::path(post, path = "/v1/historical-incidents", tag = "ingest",
    request_body(description = "A CAL FIRE incident export (CSV: California_Fire_Incidents or mapdataall columns)", content((String = "text/csv"))),
    responses((status = 200, description = "Incidents stored (new) and merged (duplicates), refusals with their reasons", body = IngestOutcome), (status = 413, description = "Body over `api.max_body_bytes`", body = crate::api::error::ErrorBody), (status = 422, description = "Not a CAL FIRE export (an empty body, or another header); `field` is `header`", body = crate::api::error::ErrorBody), (status = 507, description = "The store's volume is full: nothing was stored; send it again once space is freed", body = crate::api::error::ErrorBody), crate::api::openapi::CommonErrors),
    security(("api_key" = [])))]
pub async fn historical_incidents(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<IngestOutcome>, ApiError> {
    // The header decides, as for every other CSV route: an empty body or another file is
    // refused whole rather than answered "0 stored".
    let header = body.split(|&b| b == b'\n').next().unwrap_or_default();
    if !crate::stream::decode::is_calfire_header(&String::from_utf8_lossy(header)) {
        return Err(ApiError::Unprocessable {
            field: "header".into(),
            reason: if body.iter().all(u8::is_ascii_whitespace) {
                "the body is empty; send a CAL FIRE incident export".into()
            } else {
                "not a CAL FIRE incident export (California_Fire_Incidents or mapdataall columns)"
                    .into()
            },
        });
    }
    let outcome = tokio::task::spawn_blocking(move || {
        let (outcome, stored) = state
            .pipeline
            .ingest_historical(&body, "http:/v1/historical-incidents")?;
        if let Some(search) = &state.search {
            // Merged records are re-rendered only at the next build; new ones are added now.
            search
                .index
                .add(stored.iter().map(Doc::incident).collect())
                .map_err(|e| ApiError::Internal(e.to_string()))?;
        }
        Ok::<_, ApiError>(outcome)
    })
    .await??;
    Ok(Json(outcome))
}

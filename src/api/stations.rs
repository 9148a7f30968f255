//! The station list, with which stations report, and each station's Fire Weather Index series.

use axum::Json;
use axum::extract::{Path, Query, State};
use chrono::NaiveDate;
use serde::Serialize;

use super::{ApiError, AppState};
use crate::event::{FireWeather, Station};
use firesight_core::params::Params;

/// A listed station and what it has reported.
#[derive(Serialize, utoipa::ToSchema)]
pub struct StationView {
    /// Station number.
    pub id: u32,
    /// Name.
    pub name: String,
    /// State or region code.
    pub region: String,
    /// Latitude, degrees.
    pub latitude: f64,
    /// Longitude, degrees.
    pub longitude: f64,
    /// Height, metres.
    pub height_m: Option<f64>,
    /// Whether any observation of it is stored: a listed station that never reports cannot
    /// give a detection weather, however near it is.
    pub reporting: bool,
    /// Stored observations (daily summaries and point observations).
    pub observations: usize,
    /// Days of its Fire Weather Index series (daily summaries with a complete 3 pm reading).
    pub fire_weather_days: usize,
}

impl StationView {
    fn of(station: &Station, observations: usize, fire_weather_days: usize) -> Self {
        Self {
            id: station.id,
            name: station.name.clone(),
            region: station.region.clone(),
            latitude: station.latitude,
            longitude: station.longitude,
            height_m: station.height_m,
            reporting: observations > 0,
            observations,
            fire_weather_days,
        }
    }
}

/// The station list.
#[derive(Serialize, utoipa::ToSchema)]
pub struct StationList {
    /// Listed stations.
    pub stations: usize,
    /// Of them, stations with at least one stored observation.
    pub reporting: usize,
    /// Every station, by number (only reporting ones with `reporting=true`).
    pub items: Vec<StationView>,
}

/// `GET /v1/stations`.
#[utoipa::path(get, path = "/v1/stations", tag = "weather",
    params(("reporting" = Option<bool>, Query, description = "`true` lists only stations with a stored observation")),
    responses((status = 200, description = "Listed stations and what each has reported", body = StationList),
        (status = 400, description = "A parameter is invalid; `field` names it", body = crate::api::error::ErrorBody),
        crate::api::openapi::CommonErrors),
    security((), ("api_key" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Query(raw): Query<Vec<(String, String)>>,
) -> Result<Json<StationList>, ApiError> {
    let params = Params::new(raw, &["reporting"])?;
    let only_reporting = params.flag("reporting")?;
    // Off the async workers: a weather batch holds the correlator while it recomputes series.
    let all = tokio::task::spawn_blocking(move || {
        state.pipeline.read_correlator(|c| {
            c.station_list()
                .into_iter()
                .map(|(s, observations, days)| StationView::of(s, observations, days))
                .collect::<Vec<_>>()
        })
    })
    .await?;
    let stations = all.len();
    let reporting = all.iter().filter(|s| s.reporting).count();
    let items = all
        .into_iter()
        .filter(|s| s.reporting || !only_reporting)
        .collect();
    Ok(Json(StationList {
        stations,
        reporting,
        items,
    }))
}

/// One station's Fire Weather Index series.
#[derive(Serialize, utoipa::ToSchema)]
pub struct FireWeatherSeries {
    /// The station.
    pub station: StationView,
    /// Its days between `from` and `to`, oldest first. A day without a complete 3 pm reading
    /// or rain total is missing; the codes carry across gaps of up to five days, and a longer
    /// gap restarts the series from the standard start-up codes (`days_in_series` = 1).
    pub days: Vec<FireWeather>,
}

/// `GET /v1/stations/{id}/fire-weather`.
#[utoipa::path(get, path = "/v1/stations/{id}/fire-weather", tag = "weather",
    params(("id" = u32, Path, description = "Station number"),
        ("from" = Option<String>, Query, description = "First day, `YYYY-MM-DD` (default: the series' first)"),
        ("to" = Option<String>, Query, description = "Last day, `YYYY-MM-DD` (default: the series' last)")),
    responses((status = 200, description = "FFMC, DMC, DC, ISI, BUI, FWI and DSR per day", body = FireWeatherSeries),
        (status = 400, description = "A parameter is invalid; `field` names it", body = crate::api::error::ErrorBody),
        (status = 404, description = "No such station", body = crate::api::error::ErrorBody),
        crate::api::openapi::CommonErrors),
    security((), ("api_key" = [])))]
pub async fn fire_weather(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(raw): Query<Vec<(String, String)>>,
) -> Result<Json<FireWeatherSeries>, ApiError> {
    let params = Params::new(raw, &["from", "to"])?;
    let day = |name: &str, end: bool| -> Result<NaiveDate, ApiError> {
        Ok(params
            .time(name, end)?
            .map_or(if end { NaiveDate::MAX } else { NaiveDate::MIN }, |t| {
                t.date_naive()
            }))
    };
    let (from, to) = (day("from", false)?, day("to", true)?);
    if from > to {
        return Err(ApiError::BadRequest {
            field: "from".into(),
            reason: format!("{from} is after `to` ({to})"),
        });
    }
    let not_found = || ApiError::NotFound {
        what: "station",
        id: id.clone(),
    };
    let number: u32 = id.parse().map_err(|_| not_found())?;
    let found = tokio::task::spawn_blocking(move || {
        state.pipeline.read_correlator(|c| {
            let (station, observations, days) = c.station_report(number)?;
            Some(FireWeatherSeries {
                station: StationView::of(station, observations, days),
                days: c.fire_weather_between(number, from, to),
            })
        })
    })
    .await?;
    found.map(Json).ok_or_else(not_found)
}

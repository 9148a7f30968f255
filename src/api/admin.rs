//! Admin routes on a running service: start the re-index job and follow it.
//!
//! `POST /v1/admin/reindex {"model": "NAME@VERSION"}` starts the job in the background (202);
//! `GET /v1/admin/reindex` reports it. Queries go on answering from the old space until the
//! job switches to the new one. Both need a key with the `admin` role when keys are configured.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::auth::KeyRing;
use super::error::ApiError;
use crate::config::Role;
use crate::embed::Manifest;
use crate::lifecycle::IndexLifecycle;

/// The state of the re-index job, as `GET /v1/admin/reindex` shows it.
#[derive(Debug, Clone, Serialize, Default, utoipa::ToSchema)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ReindexStatus {
    /// No job has run since start.
    #[default]
    Idle,
    /// A job is running.
    Running {
        /// Target model.
        model: String,
    },
    /// The last job finished and its space serves.
    Done {
        /// The serving model.
        model: String,
        /// Events embedded.
        embedded: u64,
        /// Vectors indexed.
        indexed: usize,
        /// Wall time, seconds.
        seconds: f64,
    },
    /// The last job failed; the old space still serves. Running it again resumes.
    Failed {
        /// Target model.
        model: String,
        /// Why.
        reason: String,
    },
}

/// What the admin routes share.
#[derive(Clone)]
pub struct Admin {
    service: Arc<IndexLifecycle>,
    reindex: Arc<Mutex<ReindexStatus>>,
}

/// Body of `POST /v1/admin/reindex`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReindexRequest {
    /// `NAME@VERSION` from the model manifest.
    #[schema(pattern = "^[^@]+@[^@]+$")]
    pub model: String,
}

/// The admin routes for `service`.
pub fn routes(service: Arc<IndexLifecycle>) -> Router {
    let keys = Arc::new(KeyRing::new(&service.settings.auth));
    let admin = Admin {
        service,
        reindex: Arc::new(Mutex::new(ReindexStatus::Idle)),
    };
    let routes = Router::new().route("/v1/admin/reindex", get(status).post(start));
    super::auth::require(routes, keys, Role::Admin).with_state(admin)
}

#[utoipa::path(get, path = "/v1/admin/reindex", tag = "operations",
    responses((status = 200, description = "The re-index job", body = ReindexStatus), (status = 401, description = "No API key, or an unknown one", body = crate::api::error::ErrorBody), (status = 403, description = "The key's role is too low", body = crate::api::error::ErrorBody), (status = 503, description = "Still starting", body = crate::api::error::ErrorBody)),
    security(("api_key" = [])))]
async fn status(State(admin): State<Admin>) -> Result<Json<ReindexStatus>, ApiError> {
    let status = admin
        .reindex
        .lock()
        .map_err(|_| ApiError::Internal("re-index status lock poisoned".into()))?
        .clone();
    Ok(Json(status))
}

#[utoipa::path(post, path = "/v1/admin/reindex", tag = "operations",
    request_body = ReindexRequest,
    responses((status = 202, description = "Started", body = ReindexStatus), (status = 404, description = "No such model in the manifest", body = crate::api::error::ErrorBody), (status = 409, description = "A job is already running, or the model already serves", body = crate::api::error::ErrorBody), crate::api::openapi::CommonErrors),
    security(("api_key" = [])))]
async fn start(
    State(admin): State<Admin>,
    body: Result<Json<ReindexRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<ReindexStatus>), ApiError> {
    let Json(request) = body.map_err(|e| ApiError::bad("body", e.body_text()))?;
    let model = request.model;
    if !model.contains('@') {
        return Err(ApiError::bad(
            "model",
            "give NAME@VERSION as listed in the model manifest",
        ));
    }
    let manifest = Manifest::load(&admin.service.settings.embed.manifest)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    if manifest.model(&model).is_err() {
        return Err(ApiError::NotFound {
            what: "model in the manifest",
            id: model,
        });
    }
    if admin.service.embedder().model_version() == model {
        return Err(ApiError::Conflict(format!("{model} already serves")));
    }
    let running = ReindexStatus::Running {
        model: model.clone(),
    };
    {
        let mut current = admin
            .reindex
            .lock()
            .map_err(|_| ApiError::Internal("re-index status lock poisoned".into()))?;
        if let ReindexStatus::Running { model } = &*current {
            return Err(ApiError::Conflict(format!(
                "a re-index to {model} is running"
            )));
        }
        *current = running.clone();
    }
    tokio::task::spawn_blocking(move || {
        let outcome = crate::reindex::reindex(&admin.service, &model, false);
        let next = match outcome {
            Ok(r) => ReindexStatus::Done {
                model: r.model,
                embedded: r.embedded,
                indexed: r.indexed,
                seconds: r.seconds,
            },
            Err(e) => {
                tracing::error!(model, error = format!("{e:#}"), "Re-index failed.");
                ReindexStatus::Failed {
                    model,
                    reason: format!("{e:#}"),
                }
            }
        };
        if let Ok(mut current) = admin.reindex.lock() {
            *current = next;
        }
    });
    Ok((StatusCode::ACCEPTED, Json(running)))
}

//! One error type for every route; each variant maps to a status with no catch-all arm.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::event::FieldError;
use crate::index::IndexError;
use crate::store::StoreError;
use crate::stream::{IngestError, PipelineError};

/// An API failure. Client errors name the field and the reason.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A parameter or body field is invalid.
    #[error("{field}: {reason}")]
    BadRequest {
        /// Parameter or field.
        field: String,
        /// Why.
        reason: String,
    },
    /// The body is well-formed but not of the format the route takes (e.g. a CSV header).
    #[error("{field}: {reason}")]
    Unprocessable {
        /// Field.
        field: String,
        /// Why.
        reason: String,
    },
    /// No such resource.
    #[error("{what} `{id}` not found")]
    NotFound {
        /// Kind of resource.
        what: &'static str,
        /// Its id.
        id: String,
    },
    /// Body over the configured limit.
    #[error("body exceeds {limit} bytes{detail}")]
    PayloadTooLarge {
        /// Limit in bytes.
        limit: usize,
        /// What was done before the limit was hit.
        detail: String,
    },
    /// Content type the route cannot read.
    #[error("content type `{content_type}` is not accepted here; use {accepted}")]
    UnsupportedMediaType {
        /// What was sent.
        content_type: String,
        /// What is accepted.
        accepted: &'static str,
    },
    /// No API key, or one this service does not know.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// The key is known but its role is too low for the route.
    #[error("{0}")]
    Forbidden(String),
    /// The request clashes with work in progress (e.g. a second re-index).
    #[error("{0}")]
    Conflict(String),
    /// The request ran past `api.request_timeout_ms`.
    #[error(
        "the request took longer than {0} ms; narrow it (a smaller window, a smaller k) or retry"
    )]
    Timeout(u64),
    /// An ingest body paused longer than `api.body_idle_timeout_ms`.
    #[error("the body paused for more than {idle_ms} ms{detail}")]
    BodyTimeout {
        /// The limit, ms.
        idle_ms: u64,
        /// What was done before the pause.
        detail: String,
    },
    /// The store's volume is full: nothing of the request's failed batch was stored.
    #[error(
        "the store's volume is full, so this was not stored (batches answered before it were); free space and send it again: {0}"
    )]
    InsufficientStorage(String),
    /// The service is still loading files and rebuilding its index.
    #[error("FireSight is starting: loading files and rebuilding the index; retry shortly")]
    Starting,
    /// A part of the service is not available (search still building, or switched off).
    #[error("{0}")]
    Unavailable(String),
    /// A service this one depends on (Weaviate as the query backend) failed or is unreachable.
    #[error("the query backend failed: {0}")]
    Upstream(String),
    /// A server-side failure; details go to the log, not the client.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Every error answer: `{"error": {"code", "field", "reason"}}`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The error itself.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable kind: `bad_request`, `unauthorized`, `forbidden`, `not_found`,
    /// `request_timeout`, `payload_too_large`, `unsupported_media_type`, `unprocessable`,
    /// `conflict`, `starting`, `unavailable`,
    /// `upstream`, `internal`.
    pub code: String,
    /// The parameter or body field at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Why, in words.
    pub reason: String,
}

impl From<firesight_core::params::ParamError> for ApiError {
    fn from(e: firesight_core::params::ParamError) -> Self {
        Self::bad(e.field, e.reason)
    }
}

impl ApiError {
    /// A 400 for `field`.
    pub fn bad(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::BadRequest {
            field: field.into(),
            reason: reason.into(),
        }
    }

    fn parts(&self) -> (StatusCode, &'static str, Option<&str>) {
        match self {
            Self::BadRequest { field, .. } => (StatusCode::BAD_REQUEST, "bad_request", Some(field)),
            Self::Unprocessable { field, .. } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "unprocessable",
                Some(field),
            ),
            Self::NotFound { .. } => (StatusCode::NOT_FOUND, "not_found", None),
            Self::PayloadTooLarge { .. } => {
                (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", None)
            }
            Self::UnsupportedMediaType { .. } => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                Some("content-type"),
            ),
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized", None),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", None),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict", None),
            Self::Starting => (StatusCode::SERVICE_UNAVAILABLE, "starting", None),
            Self::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", None),
            Self::Timeout(_) => (StatusCode::SERVICE_UNAVAILABLE, "timeout", None),
            Self::BodyTimeout { .. } => {
                (StatusCode::REQUEST_TIMEOUT, "request_timeout", Some("body"))
            }
            Self::Upstream(_) => (StatusCode::BAD_GATEWAY, "upstream", None),
            Self::InsufficientStorage(_) => (
                StatusCode::INSUFFICIENT_STORAGE,
                "insufficient_storage",
                Some("store"),
            ),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal", None),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, field) = self.parts();
        let reason = match &self {
            Self::BadRequest { reason, .. } | Self::Unprocessable { reason, .. } => reason.clone(),
            Self::Internal(detail) => {
                tracing::error!(detail, "Request failed.");
                "the server could not complete the request; see its log".to_owned()
            }
            Self::Upstream(detail) => {
                tracing::warn!(detail, "Query backend failed.");
                "the query backend (Weaviate) did not answer; see the server's log".to_owned()
            }
            Self::NotFound { .. }
            | Self::Unauthorized(_)
            | Self::Forbidden(_)
            | Self::Conflict(_)
            | Self::Starting
            | Self::Unavailable(_)
            | Self::Timeout(_)
            | Self::BodyTimeout { .. }
            | Self::InsufficientStorage(_)
            | Self::PayloadTooLarge { .. }
            | Self::UnsupportedMediaType { .. } => self.to_string(),
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: code.to_owned(),
                field: field.map(str::to_owned),
                reason,
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        Self::BadRequest {
            field: e.field,
            reason: e.reason,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if e.is_out_of_space() {
            tracing::error!(error = %e, "The store's volume is full; writes are refused until space is freed.");
            return Self::InsufficientStorage(e.to_string());
        }
        Self::Internal(e.to_string())
    }
}

impl From<PipelineError> for ApiError {
    fn from(e: PipelineError) -> Self {
        match e {
            PipelineError::Store(store) => store.into(),
            PipelineError::Embed(_) | PipelineError::Index(_) | PipelineError::Panicked { .. } => {
                Self::Internal(e.to_string())
            }
        }
    }
}

impl From<IndexError> for ApiError {
    fn from(e: IndexError) -> Self {
        match e {
            IndexError::Dimension { .. } | IndexError::NonFinite { .. } => {
                Self::bad("vector", e.to_string())
            }
            IndexError::Poisoned | IndexError::Unsupported { .. } | IndexError::Snapshot { .. } => {
                Self::Internal(e.to_string())
            }
        }
    }
}

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> Self {
        match e {
            IngestError::Format(f) => Self::Unprocessable {
                field: f.field,
                reason: f.reason,
            },
            IngestError::Pipeline(p) => p.into(),
        }
    }
}

impl From<crate::weaviate::WeaviateError> for ApiError {
    fn from(e: crate::weaviate::WeaviateError) -> Self {
        Self::Upstream(e.to_string())
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> Self {
        Self::Internal(format!("worker task failed: {e}"))
    }
}

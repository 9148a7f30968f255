//! Event embedding: features from a `FireEventV2`, and the `Embedder` port with its ONNX Runtime implementation.

mod features;
mod manifest;
mod onnx;
mod outlook;
mod predict;
mod text;

pub use features::{
    FEATURE_COUNT, FEATURE_NAMES, FIRE_WEATHER_NAMES, SPUN_UP_DAYS, WIDE_FEATURE_COUNT,
    event_features, wide_features,
};
pub use manifest::{Manifest, ModelEntry};
pub use onnx::OnnxEmbedder;
pub use outlook::{INCIDENT_PREDICTOR, IncidentOutlook};
pub use predict::Predictors;
pub use text::{Encoded, SentenceEncoder};

/// An embedding failure.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// The manifest could not be read or parsed.
    #[error("model manifest {path}: {reason}")]
    Manifest {
        /// Manifest path.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The model file is absent.
    #[error("model file {path} is missing: {reason}")]
    ModelMissing {
        /// Model path.
        path: String,
        /// I/O error.
        reason: String,
    },
    /// The model file's digest differs from the manifest's.
    #[error("model file {path} has sha256 {found}, but the manifest pins {expected}")]
    ChecksumMismatch {
        /// Model path.
        path: String,
        /// Digest in the manifest.
        expected: String,
        /// Digest of the file.
        found: String,
    },
    /// The model's inputs or outputs differ from what the manifest and this build expect.
    #[error("model {model} does not match its contract: {reason}")]
    Contract {
        /// Model name.
        model: String,
        /// Mismatch.
        reason: String,
    },
    /// ONNX Runtime could not be loaded.
    #[error("ONNX Runtime could not be loaded from {path}: {reason}")]
    Runtime {
        /// Library path tried.
        path: String,
        /// Loader error.
        reason: String,
    },
    /// Inference failed.
    #[error("inference failed: {0}")]
    Inference(String),
    /// The model produced NaN or infinity.
    #[error("model output row {row} is not finite")]
    NonFinite {
        /// Offending row.
        row: usize,
    },
}

/// Turns feature rows into vectors; implementations must be deterministic for a given model version.
pub trait Embedder: Send + Sync {
    /// `name@version` of the model.
    fn model_version(&self) -> &str;
    /// Output dimension.
    fn dim(&self) -> usize;
    /// Embeds rows of `FEATURE_COUNT` features; NaN marks a missing feature.
    fn embed(&self, rows: &[[f32; FEATURE_COUNT]]) -> Result<Vec<Vec<f32>>, EmbedError>;
    /// The build-time candidate list size measured for this model's space, if its model card
    /// gives one (`index.ef_construction = 0` follows it).
    fn ef_construction(&self) -> Option<usize> {
        None
    }
}

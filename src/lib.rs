//! FireSight: fire detections correlated with weather, embedded by an ONNX encoder, indexed, and queried over HTTP.

pub mod api;
pub mod app;
pub mod cancel;
pub mod config;
pub mod credentials;
pub mod embed;
pub use firesight_core::{event, fwi, geo};
pub use firesight_index as index;
pub mod lifecycle;
pub mod metrics;
pub mod patterns;
pub mod reindex;
pub mod search;
pub mod store;
pub mod stream;
pub mod telemetry;
pub mod tls;
pub mod tracker;
pub mod weaviate;
pub mod webhooks;

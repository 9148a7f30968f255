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

/// mimalloc instead of glibc malloc, for every program built on this library (the binary, and
/// the benches and tests that run the service in process, so they measure what runs): ingest
/// allocates and frees many small buffers per record (decoded rows, JSON and Avro records,
/// RocksDB batches), often on one thread and freed on another, and glibc's bins cost a sixth of
/// the storing thread's time on a bulk load (benches/README.md, "A million detections").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

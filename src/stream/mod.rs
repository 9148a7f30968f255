//! Ingestion: decoders, the weather join, and the pipeline stages decode → correlate → features → embed → store + index.

mod correlate;
mod drill;
mod fire_weather;
mod group;
pub use firesight_core::decode;
mod ingest;
mod insert_thread;
pub mod kafka;
mod load;
mod pipeline;
mod source_rows;
mod writer;
pub use firesight_core::windows;

pub use correlate::{Correlation, Correlator};
pub use ingest::{IngestError, IngestOutcome, IngestSession, Ingestible, MAX_REPORTED_REJECTIONS};
pub use load::{FileKind, LoadError, load_files, sniff};
pub use pipeline::{
    BatchFailure, PendingInsert, Pipeline, PipelineError, Space, Written, delete_points,
    replace_points,
};
pub use source_rows::RowChanges;
pub use writer::Lane;

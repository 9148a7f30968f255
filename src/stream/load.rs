//! Loading files through the same stages as HTTP ingest, in dependency order, with a progress bar.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressStyle};

use super::decode::{
    CsvStream, FirmsDecoder, JsonDecoder, StationDecoder, StreamDecoder, WeatherDecoder,
};
use super::ingest::{IngestError, IngestOutcome, IngestSession, Ingestible};
use super::pipeline::Pipeline;
use crate::event::{FireDetection, SensorReading, WeatherObservation};

const CHUNK_BYTES: usize = 256 * 1024;

/// What a file holds; the order is the load order (detections join weather, weather needs stations).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FileKind {
    /// CAL FIRE incident export (CSV), for natural-language search.
    HistoricalIncidents,
    /// BOM station list (CSV).
    Stations,
    /// BOM daily observations (CSV) or weather NDJSON.
    Weather,
    /// IoT sensor readings (NDJSON).
    Sensors,
    /// FIRMS detections (CSV) or detection NDJSON.
    Firms,
}

/// A file that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Unreadable.
    #[error("{path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Not a format FireSight reads.
    #[error(
        "{path}: not a FIRMS, BOM weather, BOM station, CAL FIRE incident or NDJSON event file (first line: `{first_line}`)"
    )]
    UnknownFormat {
        /// File.
        path: PathBuf,
        /// What it starts with.
        first_line: String,
    },
    /// The pipeline stopped.
    #[error("{path}: {source}")]
    Ingest {
        /// File.
        path: PathBuf,
        /// Cause.
        source: IngestError,
    },
}

/// Recognises a file by its first line.
pub fn sniff(path: &Path) -> Result<(FileKind, bool), LoadError> {
    let io = |source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut first = String::new();
    BufReader::new(File::open(path).map_err(io)?)
        .read_line(&mut first)
        .map_err(io)?;
    let line = first
        .trim_start_matches('\u{feff}')
        .trim()
        .to_ascii_lowercase();
    let kind = if line.starts_with('{') {
        let json = |key: &str| line.contains(&format!("\"{key}\""));
        match () {
            () if json("acquired_at") => Some((FileKind::Firms, true)),
            () if json("sensor_id") => Some((FileKind::Sensors, true)),
            () if json("station_id") => Some((FileKind::Weather, true)),
            () => None,
        }
    } else if super::decode::is_calfire_header(&line) {
        Some((FileKind::HistoricalIncidents, false))
    } else if line.contains("bright_ti4") || line.contains("brightness") {
        Some((FileKind::Firms, false))
    } else if line.contains("stn_num") {
        Some((FileKind::Stations, false))
    } else if line.contains("station") && line.contains("year") {
        Some((FileKind::Weather, false))
    } else {
        None
    };
    kind.ok_or_else(|| LoadError::UnknownFormat {
        path: path.to_path_buf(),
        first_line: first.chars().take(80).collect(),
    })
}

/// Loads files in dependency order (stations, weather, sensors, detections); returns each file's tally.
pub fn load_files(
    pipeline: &Arc<Pipeline>,
    paths: &[PathBuf],
    batch_size: usize,
    progress: bool,
) -> Result<Vec<(PathBuf, IngestOutcome)>, LoadError> {
    let mut planned = paths
        .iter()
        .map(|p| sniff(p).map(|kind| (kind, p)))
        .collect::<Result<Vec<_>, _>>()?;
    planned.sort_by_key(|((kind, _), _)| *kind);
    let mut results = Vec::with_capacity(planned.len());
    for ((kind, json), path) in planned {
        let pipeline = Arc::clone(pipeline);
        let outcome = match (kind, json) {
            (FileKind::HistoricalIncidents, _) => {
                let bytes = std::fs::read(path).map_err(|source| LoadError::Io {
                    path: path.clone(),
                    source,
                })?;
                pipeline
                    .ingest_historical(&bytes, &path.display().to_string())
                    .map(|(outcome, _)| outcome)
                    .map_err(|e| LoadError::Ingest {
                        path: path.clone(),
                        source: IngestError::from(e),
                    })
            }
            (FileKind::Stations, _) => load_one(
                pipeline,
                path,
                CsvStream::<StationDecoder>::new(),
                batch_size,
                progress,
            ),
            (FileKind::Weather, false) => load_one(
                pipeline,
                path,
                CsvStream::<WeatherDecoder>::new(),
                batch_size,
                progress,
            ),
            (FileKind::Weather, true) => load_one(
                pipeline,
                path,
                JsonDecoder::<WeatherObservation>::new(),
                batch_size,
                progress,
            ),
            (FileKind::Sensors, _) => load_one(
                pipeline,
                path,
                JsonDecoder::<SensorReading>::new(),
                batch_size,
                progress,
            ),
            (FileKind::Firms, false) => load_one(
                pipeline,
                path,
                CsvStream::<FirmsDecoder>::new(),
                batch_size,
                progress,
            ),
            (FileKind::Firms, true) => load_one(
                pipeline,
                path,
                JsonDecoder::<FireDetection>::new(),
                batch_size,
                progress,
            ),
        }?;
        tracing::info!(path = %path.display(), accepted = outcome.accepted, duplicates = outcome.duplicates, rejected = outcome.rejected_total, "File loaded.");
        results.push((path.clone(), outcome));
    }
    Ok(results)
}

fn load_one<D>(
    pipeline: Arc<Pipeline>,
    path: &Path,
    decoder: D,
    batch_size: usize,
    progress: bool,
) -> Result<IngestOutcome, LoadError>
where
    D: StreamDecoder,
    D::Item: Ingestible,
{
    let io = |source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    let bar = if progress {
        ProgressBar::new(size)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:30!} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    );
    let mut session = IngestSession::new(pipeline, decoder, path.display().to_string(), batch_size);
    let mut buffer = vec![0u8; CHUNK_BYTES];
    let ingest = |source| LoadError::Ingest {
        path: path.to_path_buf(),
        source,
    };
    loop {
        let read = file.read(&mut buffer).map_err(io)?;
        if read == 0 {
            break;
        }
        session.push(&buffer[..read]).map_err(ingest)?;
        bar.inc(read as u64);
    }
    let outcome = session.finish().map_err(ingest)?;
    bar.finish_and_clear();
    Ok(outcome)
}

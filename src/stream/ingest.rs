//! An ingest session: bytes in (from a file or an HTTP body), batches through the pipeline, a tally out.

use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use super::decode::{Decoded, StreamDecoder};
use super::insert_thread::{self, Insert};
use super::pipeline::{PendingInsert, Pipeline, PipelineError};
use super::writer::Lane;
use crate::event::{FieldError, FireDetection, SensorReading, Station, WeatherObservation};

/// Rejections listed in a response; all of them are in the dead-letter store regardless.
pub const MAX_REPORTED_REJECTIONS: usize = 10_000;

/// What happened to an input.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct IngestOutcome {
    /// New records stored.
    pub accepted: u64,
    /// Records already stored (same content id), not stored again.
    pub duplicates: u64,
    /// Refused records with line, field and reason (the first `MAX_REPORTED_REJECTIONS`).
    pub rejected: Vec<FieldError>,
    /// All refused records, including any beyond the list above.
    pub rejected_total: u64,
}

impl IngestOutcome {
    /// Counts a refusal and lists it while the list has room.
    pub fn reject(&mut self, error: FieldError) {
        self.rejected_total += 1;
        if self.rejected.len() < MAX_REPORTED_REJECTIONS {
            self.rejected.push(error);
        }
    }

    /// Adds another tally.
    pub fn absorb(&mut self, other: IngestOutcome) {
        self.accepted += other.accepted;
        self.duplicates += other.duplicates;
        let unlisted = other.rejected_total - other.rejected.len() as u64;
        for error in other.rejected {
            self.reject(error);
        }
        self.rejected_total += unlisted;
    }
}

/// An event kind the pipeline knows how to take in.
pub trait Ingestible: Sized + Send + 'static {
    /// Label for metrics and dead letters.
    const KIND: &'static str;
    /// Sends decoded records through the pipeline, in `lane` where the kind has lanes.
    fn ingest(
        pipeline: &Pipeline,
        source: &str,
        lane: Lane,
        batch: Vec<(u64, Self)>,
    ) -> Result<IngestOutcome, PipelineError>;

    /// [`Ingestible::ingest`] for a piece of a bulk input, which may hand back its index insert
    /// to run while the next piece is written (see [`Pipeline::ingest_detections_pipelined`]).
    /// Kinds without an index insert of their own run [`Ingestible::ingest`].
    fn ingest_piece<'p>(
        pipeline: &'p Pipeline,
        source: &str,
        lane: Lane,
        batch: Vec<(u64, Self)>,
    ) -> Result<(IngestOutcome, Option<PendingInsert<'p>>), PipelineError> {
        Self::ingest(pipeline, source, lane, batch).map(|outcome| (outcome, None))
    }

    /// The group a record must not be split from across batches: a detection's granule (all
    /// pixels of one overpass minute), so the tracker sees each granule whole and its alerts do
    /// not depend on where an input's chunks happened to end. `None`: any split is fine.
    fn granule(&self) -> Option<i64> {
        None
    }
}

impl Ingestible for FireDetection {
    const KIND: &'static str = "firms";
    fn granule(&self) -> Option<i64> {
        Some(self.acquired_at.timestamp_millis())
    }
    fn ingest(
        pipeline: &Pipeline,
        _source: &str,
        lane: Lane,
        batch: Vec<(u64, Self)>,
    ) -> Result<IngestOutcome, PipelineError> {
        pipeline.ingest_detections_in(lane, batch)
    }
    fn ingest_piece<'p>(
        pipeline: &'p Pipeline,
        _source: &str,
        lane: Lane,
        batch: Vec<(u64, Self)>,
    ) -> Result<(IngestOutcome, Option<PendingInsert<'p>>), PipelineError> {
        match lane {
            // A live batch is answered searchable, and may be written in a group.
            Lane::Live => pipeline
                .ingest_detections_in(lane, batch)
                .map(|outcome| (outcome, None)),
            Lane::Bulk => pipeline.ingest_detections_pipelined(lane, batch),
        }
    }
}

impl Ingestible for WeatherObservation {
    const KIND: &'static str = "weather";
    fn ingest(
        pipeline: &Pipeline,
        source: &str,
        _lane: Lane,
        batch: Vec<(u64, Self)>,
    ) -> Result<IngestOutcome, PipelineError> {
        pipeline.ingest_weather(source, batch)
    }
}

impl Ingestible for Station {
    const KIND: &'static str = "stations";
    fn ingest(
        pipeline: &Pipeline,
        _source: &str,
        _lane: Lane,
        batch: Vec<(u64, Self)>,
    ) -> Result<IngestOutcome, PipelineError> {
        pipeline.ingest_stations(batch)
    }
}

impl Ingestible for SensorReading {
    const KIND: &'static str = "sensors";
    fn ingest(
        pipeline: &Pipeline,
        _source: &str,
        _lane: Lane,
        batch: Vec<(u64, Self)>,
    ) -> Result<IngestOutcome, PipelineError> {
        pipeline.ingest_sensors(batch)
    }
}

/// Why a session stopped before the end of its input.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The header (or the whole input) is not of the expected format.
    #[error("{0}")]
    Format(FieldError),
    /// The pipeline failed.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
}

/// A granule longer than this many batches is split after all (memory stays bounded).
const GRANULE_HOLD_BATCHES: usize = 4;

/// Feeds one input through a decoder and the pipeline in batches. Not async: callers on an
/// async runtime move it into `spawn_blocking` per chunk.
pub struct IngestSession<D: StreamDecoder> {
    pipeline: Arc<Pipeline>,
    decoder: D,
    source: String,
    batch_size: usize,
    pending: Vec<Decoded<D::Item>>,
    outcome: IngestOutcome,
    /// Whether a batch was written before: the input is then bulk, however small its last piece.
    flushed: bool,
    /// When the chunk that brought the oldest pending record arrived, for the latency metric.
    oldest: Option<Instant>,
}

impl<D> IngestSession<D>
where
    D: StreamDecoder,
    D::Item: Ingestible,
{
    /// A session reading from `source` (a file path or a route, for dead letters and logs).
    pub fn new(
        pipeline: Arc<Pipeline>,
        decoder: D,
        source: impl Into<String>,
        batch_size: usize,
    ) -> Self {
        Self {
            pipeline,
            decoder,
            source: source.into(),
            batch_size,
            pending: Vec::new(),
            outcome: IngestOutcome::default(),
            flushed: false,
            oldest: None,
        }
    }

    /// Decodes a chunk and runs full batches.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), IngestError> {
        let arrived = Instant::now();
        self.decoder
            .push(chunk, &mut self.pending)
            .map_err(IngestError::Format)?;
        if !self.pending.is_empty() {
            self.oldest.get_or_insert(arrived);
        }
        if self.pending.len() >= self.batch_size {
            // The trailing granule waits for the next chunk, which may hold more of it (unless
            // it is already several batches long).
            let keep = self.trailing_granule();
            let held = if keep <= GRANULE_HOLD_BATCHES * self.batch_size {
                self.pending.split_off(self.pending.len() - keep)
            } else {
                Vec::new()
            };
            let since = self.oldest;
            self.flush()?;
            if !held.is_empty() {
                self.oldest = since;
            }
            self.pending = held;
        }
        Ok(())
    }

    /// How many records at the end of `pending` belong to the last record's granule (0 when
    /// the kind has none). A refused record between them does not end the run.
    fn trailing_granule(&self) -> usize {
        let granule = |d: &Decoded<D::Item>| d.as_ref().ok().and_then(|(_, item)| item.granule());
        let Some(last) = self.pending.iter().rev().find_map(granule) else {
            return 0;
        };
        self.pending
            .iter()
            .rev()
            .take_while(|d| d.is_err() || granule(d) == Some(last))
            .count()
    }

    /// Runs the last batch and returns the tally.
    pub fn finish(mut self) -> Result<IngestOutcome, IngestError> {
        let arrived = Instant::now();
        self.decoder
            .finish(&mut self.pending)
            .map_err(IngestError::Format)?;
        if !self.pending.is_empty() {
            self.oldest.get_or_insert(arrived);
        }
        self.flush()?;
        Ok(self.outcome)
    }

    /// Lines read so far.
    pub fn lines_seen(&self) -> u64 {
        self.decoder.lines_seen()
    }

    /// Where the records come from, for the latency metric's `path` label.
    fn path(&self) -> &'static str {
        if self.source.starts_with("http:") {
            "http"
        } else {
            "file"
        }
    }

    fn flush(&mut self) -> Result<(), IngestError> {
        let since = self.oldest.take();
        let mut good = Vec::with_capacity(self.pending.len());
        let mut bad = Vec::new();
        for decoded in self.pending.drain(..) {
            match decoded {
                Ok(item) => good.push(item),
                Err(rejected) => bad.push(rejected),
            }
        }
        if !bad.is_empty() {
            self.pipeline
                .dead_letter(&self.source, D::Item::KIND, &bad)?;
            bad.into_iter().for_each(|r| self.outcome.reject(r.error));
        }
        if good.is_empty() {
            return Ok(());
        }
        // A small input said in one go is live; anything longer is bulk, written in pieces of
        // whole granules (see `Pipeline::bulk_piece`), so a live batch waits for one piece at
        // most, never for a whole batch of a backfill.
        let lane = if self.flushed || good.len() > self.pipeline.live_batch() {
            Lane::Bulk
        } else {
            Lane::Live
        };
        self.flushed = true;
        let mut runs = granule_runs(good).into_iter().peekable();
        let pipeline = Arc::clone(&self.pipeline);
        let latency = pipeline
            .metrics()
            .ingest_latency
            .with_label_values(&[D::Item::KIND, self.path()]);
        let timed = |records: usize| {
            if let Some(since) = since {
                let seconds = since.elapsed().as_secs_f64();
                (0..records).for_each(|_| latency.observe(seconds));
            }
        };
        // Pipelined: while one piece's points go into the index on a second thread, the next
        // piece is correlated, embedded, tracked and stored on this one. One insert at a time,
        // in order; the flush returns once every piece is searchable.
        std::thread::scope(|scope| -> Result<(), IngestError> {
            let mut inserting: Option<(usize, Insert<'_, Result<(), PipelineError>>)> = None;
            let finish = |inserting: Option<(usize, Insert<'_, _>)>| {
                let Some((records, insert)) = inserting else {
                    return Ok(());
                };
                insert.join().unwrap_or_else(|| {
                    Err(PipelineError::Panicked {
                        stage: "detections",
                        message: "the index insert's thread failed".to_owned(),
                    })
                })?;
                timed(records);
                Ok::<(), IngestError>(())
            };
            while runs.peek().is_some() {
                // Whole granules up to the piece size (one longer granule alone), the size read
                // again before each piece: a live writer arriving mid-file shortens the rest.
                let piece = pipeline.bulk_piece();
                let mut part = runs.next().unwrap_or_default();
                while let Some(run) = runs.next_if(|run| part.len() + run.len() <= piece) {
                    part.extend(run);
                }
                let records = part.len();
                let stored = D::Item::ingest_piece(&pipeline, &self.source, lane, part);
                // The piece before is indexed before this one's insert starts (or the session
                // stops): one at a time, in order.
                finish(inserting.take())?;
                let (done, insert) = stored?;
                self.outcome.absorb(done);
                match insert {
                    Some(insert) => {
                        let pipeline = &pipeline;
                        let started =
                            insert_thread::start(scope, move || pipeline.finish_insert(insert));
                        inserting = Some((records, started));
                    }
                    None => timed(records),
                }
            }
            finish(inserting.take())
        })
    }
}

/// Records in runs of one granule each, in order (kinds without granules: one run).
fn granule_runs<T: Ingestible>(records: Vec<(u64, T)>) -> Vec<Vec<(u64, T)>> {
    let mut runs: Vec<Vec<(u64, T)>> = Vec::new();
    for record in records {
        match runs.last_mut() {
            Some(run)
                if run
                    .last()
                    .is_some_and(|(_, last)| last.granule() == record.1.granule()) =>
            {
                run.push(record)
            }
            _ => runs.push(vec![record]),
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detection(acquired_at: &str, longitude: f64) -> FireDetection {
        serde_json::from_value(serde_json::json!({
            "latitude": -33.0, "longitude": longitude, "acquired_at": acquired_at,
            "satellite": "Terra", "instrument": "MODIS", "brightness_k": 330.5,
            "brightness_background_k": 295.1, "scan_km": 1.0, "track_km": 1.0,
            "confidence_percent": 80.0, "confidence": "high", "frp_mw": 25.3, "daytime": true,
            "version": "6.3", "detection_type": 0
        }))
        .expect("detection")
    }

    #[test]
    fn records_group_into_runs_of_one_granule_each_in_order() {
        let at = ["2019-09-10T01:46:00Z", "2019-09-10T04:35:00Z"];
        let records: Vec<(u64, FireDetection)> = [at[0], at[0], at[1], at[1], at[1], at[0]]
            .iter()
            .enumerate()
            .map(|(i, t)| (i as u64, detection(t, 150.0 + i as f64 * 0.01)))
            .collect();
        let lines = |runs: &[Vec<(u64, FireDetection)>]| -> Vec<Vec<u64>> {
            runs.iter()
                .map(|run| run.iter().map(|(line, _)| *line).collect())
                .collect()
        };
        assert_eq!(
            lines(&granule_runs(records)),
            [vec![0, 1], vec![2, 3, 4], vec![5]]
        );
        // A kind without granules is one run.
        let station: Station = serde_json::from_value(serde_json::json!({
            "id": 1, "name": "A", "region": "NSW", "latitude": -33.0, "longitude": 151.0
        }))
        .expect("station");
        assert_eq!(
            granule_runs(vec![(1, station.clone()), (2, station)]).len(),
            1
        );
    }
}

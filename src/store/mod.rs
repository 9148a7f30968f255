//! RocksDB, the source of truth: events, the time index, vectors, the id map, weather, stations, dead letters.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use rocksdb::{
    ColumnFamilyDescriptor, DB, DBCompressionType, Direction, IteratorMode, Options, WriteBatch,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::event::{FieldError, FireEventV2, SensorReading, Station, WeatherObservation};

/// Column family: event id → `FireEventV2` (JSON).
pub const CF_EVENTS: &str = "events";
/// Column family: (inverted detection time, event id) → nothing; newest-first listing.
pub const CF_EVENTS_BY_TIME: &str = "events_by_time";
/// Column family: event id → vector sequence number (u64 BE).
pub const CF_ID_MAP: &str = "id_map";
/// Column family: sequence number → (model version, event id, vector).
pub const CF_VECTORS: &str = "vectors";
/// Column family: station number → `Station`.
pub const CF_STATIONS: &str = "stations";
/// Column family: (station, valid-from time) → `WeatherObservation`: the versioned weather table.
pub const CF_WEATHER: &str = "weather";
/// Column family: (sensor, time) → `SensorReading`.
pub const CF_SENSORS: &str = "sensors";
/// Column family: sequence → refused record with its reason.
pub const CF_DEAD_LETTERS: &str = "dead_letters";
/// Column family: digest of a dead letter → its sequence number, so replays do not repeat it.
pub const CF_DEAD_LETTER_DIGESTS: &str = "dead_letter_digests";
/// Column family: counters.
pub const CF_META: &str = "meta";

/// Column family: events (and models) waiting to be mirrored to Weaviate; key = vector key.
pub const CF_MIRROR_OUTBOX: &str = "mirror_outbox";

/// Column family: CAL FIRE incident id → `HistoricalIncident` (JSON).
pub const CF_HISTORICAL_INCIDENTS: &str = "historical_incidents";
/// Column family: (sentence-encoder version, document id#text digest) → its text vector (f32 LE), so a
/// restart does not embed every text again.
pub const CF_TEXT_VECTORS: &str = "text_vectors";

const ALL_CFS: [&str; 17] = [
    CF_SENSOR_CELLS,
    CF_HISTORICAL_INCIDENTS,
    CF_TEXT_VECTORS,
    CF_STREAM_OFFSETS,
    CF_STREAM_OUTBOX,
    CF_STREAM_STATE,
    CF_MIRROR_OUTBOX,
    CF_EVENTS,
    CF_EVENTS_BY_TIME,
    CF_ID_MAP,
    CF_VECTORS,
    CF_STATIONS,
    CF_WEATHER,
    CF_SENSORS,
    CF_DEAD_LETTERS,
    CF_DEAD_LETTER_DIGESTS,
    CF_META,
];
const META_NEXT_SEQ: &[u8] = b"next_seq";
const META_EVENT_COUNT: &[u8] = b"event_count";

/// Column family: `topic \0 partition` → the next input offset to process (the streaming
/// consumer's own position, written in the same batch as the state and outputs it caused).
pub const CF_STREAM_OFFSETS: &str = "stream_offsets";
/// Column family: outbox sequence → an output record not yet acknowledged by the broker.
pub const CF_STREAM_OUTBOX: &str = "stream_outbox";
/// Column family: sensor readings by place and time: `0.1° cell (lat, lon) | time | sensor id` →
/// the reading (JSON), for the join with detections.
pub const CF_SENSOR_CELLS: &str = "sensor_cells";
/// Column family: the streaming operators' state (sessions, windows, stream time).
pub const CF_STREAM_STATE: &str = "stream_state";

/// A stored key and its value.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// A write to apply in the same batch as a stage's own (the streaming consumer's offsets,
/// outbox entries and operator state).
#[derive(Debug, Clone, PartialEq)]
pub struct StoreOp {
    /// Column family.
    pub cf: &'static str,
    /// Key.
    pub key: Vec<u8>,
    /// The new value; `None` deletes the key.
    pub value: Option<Vec<u8>>,
}

impl StoreOp {
    /// Sets `key` to `value`.
    pub fn put(cf: &'static str, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Self {
        Self {
            cf,
            key: key.into(),
            value: Some(value.into()),
        }
    }

    /// Deletes `key`.
    pub fn delete(cf: &'static str, key: impl Into<Vec<u8>>) -> Self {
        Self {
            cf,
            key: key.into(),
            value: None,
        }
    }
}

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// RocksDB refused an operation.
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    /// A stored value could not be decoded.
    #[error("corrupt value in column family `{cf}`: {reason}")]
    Corrupt {
        /// Column family.
        cf: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// A value could not be encoded.
    #[error("encoding a value failed: {0}")]
    Encode(#[from] serde_json::Error),
}

/// One stored vector.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredVector {
    /// Sequence number, the index's point id.
    pub seq: u64,
    /// Owning event.
    pub event_id: String,
    /// `name@version` of the encoder.
    pub model_version: String,
    /// The embedding.
    pub vector: Vec<f32>,
}

/// A new event with its vector, written in one batch.
pub struct NewEvent {
    /// The record.
    pub event: FireEventV2,
    /// Its embedding.
    pub vector: Vec<f32>,
}

/// A refused record kept with its reason (the embedded default's dead-letter place).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeadLetter {
    /// Where it came from, e.g. `http:/v1/events/firms` or a file path.
    pub source: String,
    /// Field and reason.
    pub error: FieldError,
    /// The original text.
    pub raw: String,
    /// When it was refused, ms since the epoch.
    pub at_ms: i64,
}

/// One page of events, newest first.
#[derive(Debug, Clone)]
pub struct EventPage {
    /// The events.
    pub events: Vec<FireEventV2>,
    /// Opaque cursor for the next page, if there is one.
    pub next_cursor: Option<String>,
}

/// The RocksDB store.
pub struct Store {
    db: DB,
    next_seq: AtomicU64,
    event_count: AtomicU64,
    next_dead_letter: AtomicU64,
    /// When set, every vector written is also queued in the mirror outbox, in the same batch.
    mirror: std::sync::atomic::AtomicBool,
}

impl Store {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        options.set_compression_type(DBCompressionType::Zstd);
        let cfs = ALL_CFS.iter().map(|name| {
            let mut cf = Options::default();
            cf.set_compression_type(DBCompressionType::Zstd);
            ColumnFamilyDescriptor::new(*name, cf)
        });
        let db = DB::open_cf_descriptors(&options, path, cfs)?;
        let read = |key| -> Result<u64, StoreError> {
            let cf = db.cf_handle(CF_META).ok_or_else(|| missing_cf(CF_META))?;
            db.get_cf(cf, key)?
                .map_or(Ok(0), |v| decode_u64(CF_META, &v))
        };
        let (next_seq, event_count) = (read(META_NEXT_SEQ)?, read(META_EVENT_COUNT)?);
        // Derived from the last key, not a stored counter: concurrent dead-letter batches may
        // commit out of order, and a counter written by the earlier one would run backwards.
        let letters = db
            .cf_handle(CF_DEAD_LETTERS)
            .ok_or_else(|| missing_cf(CF_DEAD_LETTERS))?;
        let next_dead_letter = match db.iterator_cf(letters, IteratorMode::End).next() {
            Some(item) => decode_u64(CF_DEAD_LETTERS, &item?.0)? + 1,
            None => 0,
        };
        let store = Self {
            db,
            next_seq: AtomicU64::new(next_seq),
            event_count: AtomicU64::new(event_count),
            next_dead_letter: AtomicU64::new(next_dead_letter),
            mirror: std::sync::atomic::AtomicBool::new(false),
        };
        let moved = store.migrate_weather_keys()?;
        if moved > 0 {
            tracing::info!(
                moved,
                "Weather observations re-keyed by the time they are valid from."
            );
        }
        Ok(store)
    }

    fn cf(&self, name: &'static str) -> Result<&rocksdb::ColumnFamily, StoreError> {
        self.db.cf_handle(name).ok_or_else(|| missing_cf(name))
    }

    /// Number of stored events.
    pub fn event_count(&self) -> u64 {
        self.event_count.load(Ordering::Acquire)
    }

    /// True when an event with this id is stored.
    pub fn contains_event(&self, event_id: &str) -> Result<bool, StoreError> {
        Ok(self
            .db
            .get_pinned_cf(self.cf(CF_ID_MAP)?, event_id.as_bytes())?
            .is_some())
    }

    /// The stored record.
    pub fn event(&self, event_id: &str) -> Result<Option<FireEventV2>, StoreError> {
        let Some(bytes) = self
            .db
            .get_pinned_cf(self.cf(CF_EVENTS)?, event_id.as_bytes())?
        else {
            return Ok(None);
        };
        decode_json(CF_EVENTS, &bytes).map(Some)
    }

    /// The vector sequence number of an event.
    pub fn seq_of(&self, event_id: &str) -> Result<Option<u64>, StoreError> {
        self.db
            .get_pinned_cf(self.cf(CF_ID_MAP)?, event_id.as_bytes())?
            .map(|v| decode_u64(CF_ID_MAP, &v))
            .transpose()
    }

    /// The stored vector for a sequence number.
    pub fn vector(&self, seq: u64, model: &str) -> Result<Option<StoredVector>, StoreError> {
        let cf = self.cf(CF_VECTORS)?;
        if let Some(v) = self.db.get_pinned_cf(cf, vector_key(seq, model))? {
            return decode_vector(seq, &v).map(Some);
        }
        // Stores written before vectors were keyed by model hold one vector under the bare seq.
        let legacy = self.db.get_pinned_cf(cf, seq.to_be_bytes())?;
        Ok(legacy
            .map(|v| decode_vector(seq, &v))
            .transpose()?
            .filter(|v| v.model_version == model))
    }

    /// Writes vectors of `model` for stored events and the meta entries that record the
    /// progress, in one atomic batch (the re-index job's unit of work). `None` deletes a key.
    pub fn write_vectors(
        &self,
        model: &str,
        rows: &[(u64, &str, &[f32])],
        meta: &[(&[u8], Option<&[u8]>)],
    ) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        let mirror = self.mirror.load(Ordering::Acquire);
        for (seq, event_id, vector) in rows {
            batch.put_cf(
                self.cf(CF_VECTORS)?,
                vector_key(*seq, model),
                encode_vector(model, event_id, vector),
            );
            if mirror {
                batch.put_cf(self.cf(CF_MIRROR_OUTBOX)?, vector_key(*seq, model), []);
            }
        }
        for (key, value) in meta {
            match value {
                Some(v) => batch.put_cf(self.cf(CF_META)?, key, v),
                None => batch.delete_cf(self.cf(CF_META)?, key),
            }
        }
        self.db.write(batch)?;
        Ok(())
    }

    /// From now on, queue every vector written for the Weaviate mirror (same write batch).
    pub fn enable_mirror_outbox(&self) {
        self.mirror.store(true, Ordering::Release);
    }

    /// Queues every stored vector of `model` for the mirror, once per store and model: a
    /// mirror switched on for a store that already holds events sends those too.
    pub fn backfill_outbox(&self, model: &str) -> Result<usize, StoreError> {
        let done = format!("mirror_backfilled:{model}").into_bytes();
        if self.meta(&done)?.is_some() {
            return Ok(0);
        }
        let mut queued = 0;
        let mut batch = WriteBatch::default();
        for stored in self.vectors()? {
            let stored = stored?;
            if stored.model_version == model {
                batch.put_cf(
                    self.cf(CF_MIRROR_OUTBOX)?,
                    vector_key(stored.seq, model),
                    [],
                );
                queued += 1;
            }
            if batch.len() >= 10_000 {
                self.db.write(std::mem::take(&mut batch))?;
            }
        }
        batch.put_cf(self.cf(CF_META)?, done, []);
        self.db.write(batch)?;
        Ok(queued)
    }

    /// Up to `limit` queued mirror entries, oldest sequence number first: `(seq, model)`.
    pub fn outbox_batch(&self, limit: usize) -> Result<Vec<(u64, String)>, StoreError> {
        let mut out = Vec::with_capacity(limit.min(4096));
        for item in self
            .db
            .iterator_cf(self.cf(CF_MIRROR_OUTBOX)?, IteratorMode::Start)
            .take(limit)
        {
            let (key, _) = item?;
            let (seq, model) = key.split_at_checked(8).ok_or_else(|| StoreError::Corrupt {
                cf: CF_MIRROR_OUTBOX,
                reason: format!("key of {} bytes", key.len()),
            })?;
            let model = String::from_utf8(model.to_vec()).map_err(|_| StoreError::Corrupt {
                cf: CF_MIRROR_OUTBOX,
                reason: "model name is not UTF-8".to_owned(),
            })?;
            out.push((decode_u64(CF_MIRROR_OUTBOX, seq)?, model));
        }
        Ok(out)
    }

    /// Removes delivered entries from the outbox.
    pub fn outbox_remove(&self, entries: &[(u64, String)]) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        for (seq, model) in entries {
            batch.delete_cf(self.cf(CF_MIRROR_OUTBOX)?, vector_key(*seq, model));
        }
        self.db.write(batch)?;
        Ok(())
    }

    /// A value from the meta column family.
    pub fn meta(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.db.get_cf(self.cf(CF_META)?, key)?)
    }

    /// Writes new events, their time-index entries, ids and vectors in one atomic batch.
    ///
    /// Callers serialise writers (the pipeline holds one lock), so sequence numbers are dense.
    /// Returns the sequence numbers given to the events, in order.
    pub fn write_events(&self, events: &[NewEvent]) -> Result<Vec<u64>, StoreError> {
        self.write_events_with(events, &[])
    }

    /// [`Store::write_events`] with `extra` writes in the same atomic batch.
    pub fn write_events_with(
        &self,
        events: &[NewEvent],
        extra: &[StoreOp],
    ) -> Result<Vec<u64>, StoreError> {
        let first = self.next_seq.load(Ordering::Acquire);
        let mut batch = self.batch_of(extra)?;
        let mut seqs = Vec::with_capacity(events.len());
        for (offset, new) in events.iter().enumerate() {
            let seq = first + offset as u64;
            let id = new.event.event_id.as_bytes();
            batch.put_cf(self.cf(CF_EVENTS)?, id, serde_json::to_vec(&new.event)?);
            batch.put_cf(
                self.cf(CF_EVENTS_BY_TIME)?,
                time_key(new.event.detection_time, &new.event.event_id),
                [],
            );
            batch.put_cf(self.cf(CF_ID_MAP)?, id, seq.to_be_bytes());
            let model = new.event.model_version.as_deref().unwrap_or_default();
            batch.put_cf(
                self.cf(CF_VECTORS)?,
                vector_key(seq, model),
                encode_vector(model, &new.event.event_id, &new.vector),
            );
            if self.mirror.load(Ordering::Acquire) {
                batch.put_cf(self.cf(CF_MIRROR_OUTBOX)?, vector_key(seq, model), []);
            }
            seqs.push(seq);
        }
        let next = first + events.len() as u64;
        let count = self.event_count() + events.len() as u64;
        batch.put_cf(self.cf(CF_META)?, META_NEXT_SEQ, next.to_be_bytes());
        batch.put_cf(self.cf(CF_META)?, META_EVENT_COUNT, count.to_be_bytes());
        self.db.write(batch)?;
        self.next_seq.store(next, Ordering::Release);
        self.event_count.store(count, Ordering::Release);
        Ok(seqs)
    }

    fn batch_of(&self, ops: &[StoreOp]) -> Result<WriteBatch, StoreError> {
        let mut batch = WriteBatch::default();
        for op in ops {
            let cf = self.cf(op.cf)?;
            match &op.value {
                Some(value) => batch.put_cf(cf, &op.key, value),
                None => batch.delete_cf(cf, &op.key),
            }
        }
        Ok(batch)
    }

    /// Applies writes in one atomic batch.
    pub fn apply(&self, ops: &[StoreOp]) -> Result<(), StoreError> {
        if ops.is_empty() {
            return Ok(());
        }
        Ok(self.db.write(self.batch_of(ops)?)?)
    }

    /// One value of a column family.
    pub fn get(&self, cf: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.db.get_cf(self.cf(cf)?, key)?)
    }

    /// Up to `limit` entries of a column family in key order, from `from` (inclusive) while the
    /// key starts with `prefix`.
    pub fn scan(
        &self,
        cf: &'static str,
        prefix: &[u8],
        from: &[u8],
        limit: usize,
    ) -> Result<Vec<KeyValue>, StoreError> {
        let start = if from < prefix { prefix } else { from };
        let mode = IteratorMode::From(start, Direction::Forward);
        let mut out = Vec::new();
        for item in self.db.iterator_cf(self.cf(cf)?, mode) {
            let (key, value) = item?;
            if !key.starts_with(prefix) || out.len() >= limit {
                break;
            }
            out.push((key.to_vec(), value.to_vec()));
        }
        Ok(out)
    }

    /// The last key of a column family.
    pub fn last_key(&self, cf: &'static str) -> Result<Option<Vec<u8>>, StoreError> {
        match self.db.iterator_cf(self.cf(cf)?, IteratorMode::End).next() {
            Some(item) => Ok(Some(item?.0.to_vec())),
            None => Ok(None),
        }
    }

    /// The sequence number the next stored event will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq.load(Ordering::Acquire)
    }

    /// Every stored vector in sequence order (all models), for rebuilding the index.
    pub fn vectors(
        &self,
    ) -> Result<impl Iterator<Item = Result<StoredVector, StoreError>> + '_, StoreError> {
        self.vectors_from(0)
    }

    /// Stored vectors from sequence number `first` on, in order (replay after a snapshot).
    pub fn vectors_from(
        &self,
        first: u64,
    ) -> Result<impl Iterator<Item = Result<StoredVector, StoreError>> + '_, StoreError> {
        let start = first.to_be_bytes();
        let iter = self.db.iterator_cf(
            self.cf(CF_VECTORS)?,
            IteratorMode::From(&start, rocksdb::Direction::Forward),
        );
        Ok(iter.map(|item| {
            let (key, value) = item?;
            let seq = key.get(..8).ok_or_else(|| StoreError::Corrupt {
                cf: CF_VECTORS,
                reason: format!("key of {} bytes, expected at least 8", key.len()),
            })?;
            decode_vector(decode_u64(CF_VECTORS, seq)?, &value)
        }))
    }

    /// Events with `from_ms <= detection_time <= to_ms`, newest first, `limit` per page.
    pub fn list_events(
        &self,
        from_ms: i64,
        to_ms: i64,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<EventPage, StoreError> {
        let start = match cursor {
            Some(c) => {
                let mut key = hex::decode(c).map_err(|_| StoreError::Corrupt {
                    cf: CF_EVENTS_BY_TIME,
                    reason: "bad cursor".into(),
                })?;
                key.push(0); // strictly after the last key returned
                key
            }
            None => time_key(to_ms, "").to_vec(),
        };
        let mode = IteratorMode::From(&start, Direction::Forward);
        let mut events = Vec::with_capacity(limit);
        let mut last_key = None;
        for item in self.db.iterator_cf(self.cf(CF_EVENTS_BY_TIME)?, mode) {
            let (key, _) = item?;
            if key.len() < 8 || decode_time(&key[..8]) < from_ms {
                break;
            }
            if events.len() == limit {
                return Ok(EventPage {
                    events,
                    next_cursor: last_key.map(hex::encode),
                });
            }
            let id = std::str::from_utf8(&key[8..]).map_err(|e| StoreError::Corrupt {
                cf: CF_EVENTS_BY_TIME,
                reason: e.to_string(),
            })?;
            if let Some(event) = self.event(id)? {
                events.push(event);
            }
            last_key = Some(key.to_vec());
        }
        Ok(EventPage {
            events,
            next_cursor: None,
        })
    }

    /// Events with `from_ms <= detection_time <= to_ms`, newest first, read as they are needed.
    pub fn events_between(
        &self,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<impl Iterator<Item = Result<FireEventV2, StoreError>> + '_, StoreError> {
        let start = time_key(to_ms, "");
        let mode = IteratorMode::From(&start, Direction::Forward);
        let keys = self.db.iterator_cf(self.cf(CF_EVENTS_BY_TIME)?, mode);
        Ok(keys
            .map_while(move |item| match item {
                Ok((key, _)) if key.len() < 8 || decode_time(&key[..8]) < from_ms => None,
                other => Some(other),
            })
            .filter_map(move |item| {
                let lookup = || {
                    let (key, _) = item?;
                    let id = std::str::from_utf8(&key[8..]).map_err(|e| StoreError::Corrupt {
                        cf: CF_EVENTS_BY_TIME,
                        reason: e.to_string(),
                    })?;
                    self.event(id)
                };
                lookup().transpose()
            }))
    }

    /// Stores or replaces stations.
    pub fn put_stations(&self, stations: &[Station]) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        for station in stations {
            batch.put_cf(
                self.cf(CF_STATIONS)?,
                station.id.to_be_bytes(),
                serde_json::to_vec(station)?,
            );
        }
        Ok(self.db.write(batch)?)
    }

    /// Every stored station.
    pub fn stations(&self) -> Result<Vec<Station>, StoreError> {
        self.db
            .iterator_cf(self.cf(CF_STATIONS)?, IteratorMode::Start)
            .map(|item| decode_json(CF_STATIONS, &item?.1))
            .collect()
    }

    /// Stores observations, each under its station and the instant it is valid from (epoch ms),
    /// with `extra` writes in the same atomic batch; callers have checked them against what is
    /// stored.
    pub fn put_weather_with(
        &self,
        observations: &[(i64, WeatherObservation)],
        extra: &[StoreOp],
    ) -> Result<(), StoreError> {
        let mut batch = self.batch_of(extra)?;
        for (valid_from, obs) in observations {
            batch.put_cf(
                self.cf(CF_WEATHER)?,
                weather_key(obs.station_id, *valid_from),
                serde_json::to_vec(obs)?,
            );
        }
        Ok(self.db.write(batch)?)
    }

    /// The observation of `station` valid from exactly `valid_from` (epoch ms).
    pub fn weather_at(
        &self,
        station: u32,
        valid_from: i64,
    ) -> Result<Option<WeatherObservation>, StoreError> {
        self.db
            .get_pinned_cf(self.cf(CF_WEATHER)?, weather_key(station, valid_from))?
            .map(|v| decode_json(CF_WEATHER, &v))
            .transpose()
    }

    /// `(station, valid from)` of every stored observation, in key order: the correlator's
    /// in-memory index of the versioned weather table.
    pub fn weather_versions(&self) -> Result<Vec<(u32, i64)>, StoreError> {
        self.db
            .iterator_cf(self.cf(CF_WEATHER)?, IteratorMode::Start)
            .map(|item| decode_weather_key(&item?.0))
            .collect()
    }

    /// Re-keys observations written by FireSight before the weather table was versioned by
    /// time (8-byte `(station, day)` keys) to `(station, valid from)`. Returns how many moved.
    fn migrate_weather_keys(&self) -> Result<usize, StoreError> {
        let cf = self.cf(CF_WEATHER)?;
        // The migration is one atomic batch, so a store has old keys only, new keys only, or
        // none: the first key tells, without a scan at every start.
        let first = self
            .db
            .iterator_cf(cf, IteratorMode::Start)
            .next()
            .transpose()?;
        if first.is_none_or(|(key, _)| key.len() != 8) {
            return Ok(0);
        }
        let mut batch = WriteBatch::default();
        let mut moved = 0;
        for item in self.db.iterator_cf(cf, IteratorMode::Start) {
            let (key, value) = item?;
            if key.len() != 8 {
                continue;
            }
            let obs: WeatherObservation = decode_json(CF_WEATHER, &value)?;
            let station: Station = self
                .db
                .get_pinned_cf(self.cf(CF_STATIONS)?, obs.station_id.to_be_bytes())?
                .map(|v| decode_json(CF_STATIONS, &v))
                .transpose()?
                .ok_or_else(|| StoreError::Corrupt {
                    cf: CF_WEATHER,
                    reason: format!("observation of unknown station {:06}", obs.station_id),
                })?;
            let valid_from = obs.valid_from(station.longitude).timestamp_millis();
            batch.delete_cf(cf, &key);
            batch.put_cf(cf, weather_key(obs.station_id, valid_from), &value);
            moved += 1;
        }
        if moved > 0 {
            self.db.write(batch)?;
        }
        Ok(moved)
    }

    /// Stores sensor readings keyed by sensor and time (a replay overwrites, never duplicates).
    pub fn put_sensor_readings(&self, readings: &[SensorReading]) -> Result<(), StoreError> {
        self.put_sensor_readings_with(readings, &[])
    }

    /// [`Store::put_sensor_readings`] with `extra` writes in the same atomic batch.
    pub fn put_sensor_readings_with(
        &self,
        readings: &[SensorReading],
        extra: &[StoreOp],
    ) -> Result<(), StoreError> {
        let mut batch = self.batch_of(extra)?;
        for r in readings {
            let mut key = r.sensor_id.as_bytes().to_vec();
            key.push(0);
            key.extend_from_slice(&r.observed_at.timestamp_millis().to_be_bytes());
            let json = serde_json::to_vec(r)?;
            batch.put_cf(
                self.cf(CF_SENSOR_CELLS)?,
                sensor_cell_key(
                    crate::geo::sensor_cell(r.latitude, r.longitude),
                    r.observed_at.timestamp_millis(),
                    &r.sensor_id,
                ),
                &json,
            );
            batch.put_cf(self.cf(CF_SENSORS)?, key, json);
        }
        Ok(self.db.write(batch)?)
    }

    /// Sensor readings in one 0.1° cell observed within `[from_ms, to_ms]`.
    pub fn sensor_readings_in(
        &self,
        cell: (i32, i32),
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<SensorReading>, StoreError> {
        let start = sensor_cell_key(cell, from_ms, "");
        let end = sensor_cell_key(cell, to_ms.saturating_add(1), "");
        let mode = IteratorMode::From(&start, Direction::Forward);
        let mut out = Vec::new();
        for item in self.db.iterator_cf(self.cf(CF_SENSOR_CELLS)?, mode) {
            let (key, value) = item?;
            if key.as_ref() >= end.as_slice() {
                break;
            }
            out.push(decode_json(CF_SENSOR_CELLS, &value)?);
        }
        Ok(out)
    }

    /// Stores historical incidents; one already stored is merged with the new record (the two
    /// CAL FIRE exports fill each other's gaps). Returns how many ids were new, and the records
    /// as stored.
    pub fn put_historical_incidents(
        &self,
        incidents: Vec<crate::search::HistoricalIncident>,
    ) -> Result<(usize, Vec<crate::search::HistoricalIncident>), StoreError> {
        let cf = self.cf(CF_HISTORICAL_INCIDENTS)?;
        let mut batch = WriteBatch::default();
        let mut merged: std::collections::HashMap<String, crate::search::HistoricalIncident> =
            std::collections::HashMap::new();
        let mut new = 0;
        for incident in incidents {
            if let Some(seen) = merged.get_mut(&incident.id) {
                seen.merge(incident);
                continue;
            }
            let stored = match self.db.get_pinned_cf(cf, incident.id.as_bytes())? {
                Some(bytes) => Some(serde_json::from_slice::<crate::search::HistoricalIncident>(
                    &bytes,
                )?),
                None => None,
            };
            let record = match stored {
                Some(mut s) => {
                    s.merge(incident);
                    s
                }
                None => {
                    new += 1;
                    incident
                }
            };
            merged.insert(record.id.clone(), record);
        }
        for (id, record) in &merged {
            batch.put_cf(cf, id.as_bytes(), serde_json::to_vec(record)?);
        }
        self.db.write(batch)?;
        Ok((new, merged.into_values().collect()))
    }

    /// Every stored historical incident, in id order.
    pub fn historical_incidents(
        &self,
    ) -> Result<Vec<crate::search::HistoricalIncident>, StoreError> {
        let mut out = Vec::new();
        for item in self
            .db
            .iterator_cf(self.cf(CF_HISTORICAL_INCIDENTS)?, IteratorMode::Start)
        {
            let (_, value) = item?;
            out.push(serde_json::from_slice(&value)?);
        }
        Ok(out)
    }

    /// The cached text vector of a document under a sentence-encoder version.
    pub fn text_vector(&self, model: &str, doc: &str) -> Result<Option<Vec<f32>>, StoreError> {
        let key = text_vector_key(model, doc);
        Ok(self
            .db
            .get_pinned_cf(self.cf(CF_TEXT_VECTORS)?, key)?
            .map(|v| {
                v.chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect()
            }))
    }

    /// Caches text vectors.
    pub fn put_text_vectors(
        &self,
        model: &str,
        vectors: &[(&str, &[f32])],
    ) -> Result<(), StoreError> {
        let cf = self.cf(CF_TEXT_VECTORS)?;
        let mut batch = WriteBatch::default();
        for (doc, v) in vectors {
            let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            batch.put_cf(cf, text_vector_key(model, doc), bytes);
        }
        Ok(self.db.write(batch)?)
    }

    /// Keeps refused records with their reasons, once: the same line of the same source refused
    /// on the same field (a file loaded again at every start) is not stored twice.
    /// Returns how many were new.
    pub fn put_dead_letters(&self, letters: &[DeadLetter]) -> Result<usize, StoreError> {
        let mut batch = WriteBatch::default();
        let mut in_batch = HashSet::new();
        for letter in letters {
            let digest = dead_letter_digest(letter);
            let known = self
                .db
                .get_pinned_cf(self.cf(CF_DEAD_LETTER_DIGESTS)?, digest)?
                .is_some();
            if known || !in_batch.insert(digest) {
                continue;
            }
            let seq = self.next_dead_letter.fetch_add(1, Ordering::AcqRel);
            batch.put_cf(
                self.cf(CF_DEAD_LETTERS)?,
                seq.to_be_bytes(),
                serde_json::to_vec(letter)?,
            );
            batch.put_cf(self.cf(CF_DEAD_LETTER_DIGESTS)?, digest, seq.to_be_bytes());
        }
        self.db.write(batch)?;
        Ok(in_batch.len())
    }

    /// Dead letters stored.
    pub fn dead_letter_count(&self) -> u64 {
        self.next_dead_letter.load(Ordering::Acquire)
    }

    /// The most recent `limit` dead letters, newest first.
    pub fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, StoreError> {
        Ok(self
            .dead_letters_before(None, limit)?
            .into_iter()
            .map(|(_, letter)| letter)
            .collect())
    }

    /// Up to `limit` dead letters with their sequence numbers, newest first, starting below
    /// `before` (all when `None`): a page, whose last number is the next page's `before`.
    pub fn dead_letters_before(
        &self,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, DeadLetter)>, StoreError> {
        let start = match before {
            Some(0) => return Ok(Vec::new()),
            Some(seq) => (seq - 1).to_be_bytes(),
            None => u64::MAX.to_be_bytes(),
        };
        self.db
            .iterator_cf(
                self.cf(CF_DEAD_LETTERS)?,
                IteratorMode::From(&start, Direction::Reverse),
            )
            .take(limit)
            .map(|item| {
                let (key, value) = item?;
                Ok((
                    decode_u64(CF_DEAD_LETTERS, &key)?,
                    decode_json(CF_DEAD_LETTERS, &value)?,
                ))
            })
            .collect()
    }
}

/// Identity of a refusal: where, which line and field, and the text — not when, and not the
/// reason's wording, which may name context that changed (an earlier line, now stored).
fn dead_letter_digest(letter: &DeadLetter) -> [u8; 32] {
    let mut hasher = Sha256::new();
    let line = letter.error.line.to_string();
    for part in [
        letter.source.as_str(),
        &line,
        &letter.error.field,
        &letter.raw,
    ] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    hasher.finalize().into()
}

/// `cell lat | cell lon | time | sensor id`, each number order-preserving big-endian.
fn sensor_cell_key(cell: (i32, i32), time_ms: i64, sensor_id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(16 + sensor_id.len());
    key.extend_from_slice(&((cell.0 as u32) ^ (1 << 31)).to_be_bytes());
    key.extend_from_slice(&((cell.1 as u32) ^ (1 << 31)).to_be_bytes());
    key.extend_from_slice(&((time_ms as u64) ^ (1 << 63)).to_be_bytes());
    key.extend_from_slice(sensor_id.as_bytes());
    key
}

fn missing_cf(name: &'static str) -> StoreError {
    StoreError::Corrupt {
        cf: name,
        reason: "column family missing".into(),
    }
}

/// Newest-first ordering: the key starts with `u64::MAX - (time + 2^63)` big-endian.
fn time_key(detection_ms: i64, event_id: &str) -> Vec<u8> {
    let shifted = (detection_ms as u64) ^ (1 << 63); // order-preserving i64 → u64
    let mut key = (u64::MAX - shifted).to_be_bytes().to_vec();
    key.extend_from_slice(event_id.as_bytes());
    key
}

fn decode_time(prefix: &[u8]) -> i64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(prefix);
    ((u64::MAX - u64::from_be_bytes(bytes)) ^ (1 << 63)) as i64
}

/// `(station BE, valid from as order-preserving i64 BE)`: one station's versions sort by time,
/// so "latest at or before t" is one step back from `(station, t)`.
fn weather_key(station: u32, valid_from: i64) -> [u8; 12] {
    let mut key = [0u8; 12];
    key[..4].copy_from_slice(&station.to_be_bytes());
    key[4..].copy_from_slice(&((valid_from as u64) ^ (1 << 63)).to_be_bytes());
    key
}

fn decode_weather_key(key: &[u8]) -> Result<(u32, i64), StoreError> {
    let key: [u8; 12] = key.try_into().map_err(|_| StoreError::Corrupt {
        cf: CF_WEATHER,
        reason: format!("key of {} bytes, expected 12", key.len()),
    })?;
    let station = u32::from_be_bytes([key[0], key[1], key[2], key[3]]);
    let mut time = [0u8; 8];
    time.copy_from_slice(&key[4..]);
    Ok((station, (u64::from_be_bytes(time) ^ (1 << 63)) as i64))
}

fn decode_u64(cf: &'static str, bytes: &[u8]) -> Result<u64, StoreError> {
    let array: [u8; 8] = bytes.try_into().map_err(|_| StoreError::Corrupt {
        cf,
        reason: format!("expected 8 bytes, found {}", bytes.len()),
    })?;
    Ok(u64::from_be_bytes(array))
}

fn decode_json<T: for<'de> Deserialize<'de>>(
    cf: &'static str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        cf,
        reason: e.to_string(),
    })
}

/// `[model len u16][model][id len u16][id][f32 LE …]`.
/// A vector's key: the event's sequence number, then the model version, so an event holds one
/// vector per model and a scan in key order visits events in sequence order.
fn vector_key(seq: u64, model: &str) -> Vec<u8> {
    let mut key = seq.to_be_bytes().to_vec();
    key.extend_from_slice(model.as_bytes());
    key
}

fn encode_vector(model: &str, event_id: &str, vector: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + model.len() + event_id.len() + vector.len() * 4);
    for text in [model, event_id] {
        out.extend_from_slice(&(text.len() as u16).to_le_bytes());
        out.extend_from_slice(text.as_bytes());
    }
    for x in vector {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

fn decode_vector(seq: u64, bytes: &[u8]) -> Result<StoredVector, StoreError> {
    let corrupt = |reason: &str| StoreError::Corrupt {
        cf: CF_VECTORS,
        reason: format!("seq {seq}: {reason}"),
    };
    let mut rest = bytes;
    let mut texts = [String::new(), String::new()];
    for text in &mut texts {
        let (len, tail) = rest
            .split_at_checked(2)
            .ok_or_else(|| corrupt("truncated length"))?;
        let len = usize::from(u16::from_le_bytes([len[0], len[1]]));
        let (body, tail) = tail
            .split_at_checked(len)
            .ok_or_else(|| corrupt("truncated text"))?;
        *text = String::from_utf8(body.to_vec()).map_err(|_| corrupt("text is not UTF-8"))?;
        rest = tail;
    }
    if !rest.len().is_multiple_of(4) {
        return Err(corrupt("vector length is not a multiple of 4"));
    }
    let vector = rest
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let [model_version, event_id] = texts;
    Ok(StoredVector {
        seq,
        event_id,
        model_version,
        vector,
    })
}

fn text_vector_key(model: &str, doc: &str) -> Vec<u8> {
    let mut key = model.as_bytes().to_vec();
    key.push(0);
    key.extend_from_slice(doc.as_bytes());
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_keys_sort_newest_first_and_round_trip() {
        let older = time_key(1_564_620_960_000, "a");
        let newer = time_key(1_564_620_960_001, "a");
        assert!(newer < older);
        assert_eq!(decode_time(&older[..8]), 1_564_620_960_000);
        assert_eq!(decode_time(&time_key(-5, "")[..8]), -5);
    }

    #[test]
    fn day_keyed_weather_from_before_versioning_is_rekeyed_when_the_store_opens() {
        let dir = tempfile::TempDir::new().expect("tempdir");
        let station: Station = serde_json::from_value(serde_json::json!({
            "id": 66062, "name": "SYDNEY (OBSERVATORY HILL)", "region": "NSW", "height_m": 39.0,
            "latitude": -33.8607, "longitude": 151.205
        }))
        .expect("station");
        let obs: WeatherObservation = serde_json::from_value(serde_json::json!({
            "station_id": 66062, "station_name": "SYDNEY (OBSERVATORY HILL)", "date": "2019-11-12",
            "min_temp_c": null, "max_temp_c": 26.5, "rain_mm": null, "max_gust_kmh": null,
            "temp_9am_c": null, "rh_9am_pct": null, "wind_9am_kmh": null, "temp_3pm_c": null,
            "rh_3pm_pct": null, "wind_3pm_kmh": null, "wind_dir_3pm": null, "mslp_3pm_hpa": null
        }))
        .expect("observation");
        {
            let store = Store::open(dir.path()).expect("open");
            store.put_stations(&[station]).expect("station");
            // The old key: station, then the day as days from the common era, both BE.
            let mut old = 66_062_u32.to_be_bytes().to_vec();
            old.extend_from_slice(&737_375_i32.to_be_bytes());
            let cf = store.cf(CF_WEATHER).expect("cf");
            let json = serde_json::to_vec(&obs).expect("json");
            store.db.put_cf(cf, old, json).expect("put");
        }
        let store = Store::open(dir.path()).expect("reopen");
        // Local solar midnight at 151.205° E starting 2019-11-12.
        let midnight = 1_573_480_511_000;
        assert_eq!(
            store.weather_versions().expect("versions"),
            vec![(66_062, midnight)]
        );
        assert_eq!(store.weather_at(66_062, midnight).expect("read"), Some(obs));
    }

    #[test]
    fn dead_letters_are_kept_once_and_counted_after_reopen() {
        let dir = tempfile::TempDir::new().expect("tempdir");
        let letter = |line, at_ms| DeadLetter {
            source: "a.csv".into(),
            error: FieldError::new(line, "frp", "is empty"),
            raw: "x".into(),
            at_ms,
        };
        {
            let store = Store::open(dir.path()).expect("open");
            assert_eq!(
                store
                    .put_dead_letters(&[letter(2, 1), letter(2, 1), letter(3, 1)])
                    .expect("put"),
                2
            );
            assert_eq!(
                store.put_dead_letters(&[letter(2, 99)]).expect("replay"),
                0,
                "a replay is not new"
            );
        }
        let store = Store::open(dir.path()).expect("reopen");
        assert_eq!(store.dead_letter_count(), 2);
        assert_eq!(store.put_dead_letters(&[letter(4, 5)]).expect("put"), 1);
        let lines: Vec<u64> = store
            .dead_letters(10)
            .expect("list")
            .iter()
            .map(|d| d.error.line)
            .collect();
        assert_eq!(lines, vec![4, 3, 2], "newest first, nothing overwritten");
    }

    #[test]
    fn vector_encoding_round_trips() {
        let bytes = encode_vector("event-encoder@1", "fd_x", &[1.5, -2.0]);
        let v = decode_vector(7, &bytes).expect("decodes");
        assert_eq!(
            (v.seq, v.model_version.as_str(), v.event_id.as_str()),
            (7, "event-encoder@1", "fd_x")
        );
        assert_eq!(v.vector, vec![1.5, -2.0]);
        assert!(decode_vector(7, &bytes[..bytes.len() - 1]).is_err());
    }
}

//! RocksDB, the source of truth. One file per table family, each with typed accessors only:
//! `keys.rs` holds every column family and key layout; callers never see either.
//!
//! - `events.rs`: events, the time index, the id map, vectors and the counters in `meta`;
//! - `weather.rs`: stations and the versioned weather table;
//! - `sensors.rs`: sensor readings, by sensor and by place;
//! - `dead_letters.rs`: refused records with their reasons;
//! - `deletions.rs`: events deleted at their source, and source rows → the events they are;
//! - `outbox.rs`: the two outboxes (Weaviate mirror, Kafka output);
//! - `stream_state.rs`: the streaming consumer's offsets and window state;
//! - `historical.rs`: agency incident records and cached text vectors for search;
//! - `incidents.rs`: the incident tracker's records, its spatial index, members and alert log;
//! - `webhooks.rs`: the alerts waiting for each webhook receiver, and each one's cursor.

mod dead_letters;
mod deletions;
mod events;
mod historical;
mod incidents;
mod keys;
mod outbox;
mod revisions;
mod sensors;
mod stream_state;
mod weather;
mod webhooks;

use std::path::Path;
use std::sync::atomic::AtomicU64;

use rocksdb::{
    ColumnFamilyDescriptor, DB, DBCompressionType, Direction, IteratorMode, Options, WriteBatch,
};
use serde::Deserialize;

pub use dead_letters::DeadLetter;
pub use deletions::Deletion;
pub use events::{EventPage, NewEvent, StoredVector};
pub use keys::{Family, window_state_key};
pub use outbox::Queued;

const META_NEXT_SEQ: &[u8] = b"next_seq";
const META_EVENT_COUNT: &[u8] = b"event_count";
/// A random name given to a store when it is created: files kept beside it (the index snapshot)
/// record it, so a store wiped and refilled is not mistaken for the one they were written from.
const META_STORE_ID: &[u8] = b"store_id";

/// A stored key and its value.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// A write to apply in the same atomic batch as a stage's own (the streaming consumer's offsets,
/// outbox entries and window state). Built only by the typed constructors of the table it
/// writes (`StoreOp::stream_offset`, `StoreOp::outbox_record`, …): no caller outside the store
/// names a column family or lays out a key.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreOp {
    family: Family,
    key: Vec<u8>,
    /// The new value; `None` deletes the key.
    value: Option<Vec<u8>>,
}

impl StoreOp {
    fn put(family: Family, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Self {
        Self {
            family,
            key: key.into(),
            value: Some(value.into()),
        }
    }

    fn delete(family: Family, key: impl Into<Vec<u8>>) -> Self {
        Self {
            family,
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

impl StoreError {
    /// Whether the store's volume is full (RocksDB's `NoSpace`, or the OS's `ENOSPC` in its
    /// message): nothing of the write was stored, and it works again once space is freed.
    pub fn is_out_of_space(&self) -> bool {
        match self {
            Self::Rocks(error) => {
                let text = error.to_string();
                text.contains("No space left on device") || text.contains("NoSpace")
            }
            Self::Corrupt { .. } | Self::Encode(_) => false,
        }
    }
}

/// The RocksDB store.
pub struct Store {
    db: DB,
    next_seq: AtomicU64,
    event_count: AtomicU64,
    next_dead_letter: AtomicU64,
    next_alert: AtomicU64,
    /// The next revision number (derived from the last key of `revisions`).
    next_revision: AtomicU64,
    /// When set, every vector written is also queued in the mirror outbox, in the same batch.
    mirror: std::sync::atomic::AtomicBool,
    /// Serialises queueing into the mirror outbox and settling it (see `outbox.rs`).
    mirror_queue: std::sync::Mutex<()>,
    /// See [`Store::identity`].
    identity: String,
    /// Whether a write returns only once RocksDB's log is on disk (`store.sync_writes`).
    sync: std::sync::atomic::AtomicBool,
    /// The last write's failure, cleared by the next write that succeeds (`/readyz` shows it).
    write_failure: std::sync::Mutex<Option<String>>,
}

impl Store {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        options.set_compression_type(DBCompressionType::Zstd);
        let cfs = Family::ALL.iter().map(|family| {
            let mut cf = Options::default();
            cf.set_compression_type(DBCompressionType::Zstd);
            ColumnFamilyDescriptor::new(family.name(), cf)
        });
        let db = DB::open_cf_descriptors(&options, path, cfs)?;
        let read = |key| -> Result<u64, StoreError> {
            let cf = db
                .cf_handle(Family::Meta.name())
                .ok_or_else(|| missing_cf(Family::Meta))?;
            db.get_cf(cf, key)?
                .map_or(Ok(0), |v| decode_u64(Family::Meta, &v))
        };
        let (next_seq, event_count) = (read(META_NEXT_SEQ)?, read(META_EVENT_COUNT)?);
        // Derived from the last key, not a stored counter: concurrent dead-letter batches may
        // commit out of order, and a counter written by the earlier one would run backwards.
        let letters = db
            .cf_handle(Family::DeadLetters.name())
            .ok_or_else(|| missing_cf(Family::DeadLetters))?;
        let next_dead_letter = match db.iterator_cf(letters, IteratorMode::End).next() {
            Some(item) => decode_u64(Family::DeadLetters, &item?.0)? + 1,
            None => 0,
        };
        let alerts = db
            .cf_handle(Family::Alerts.name())
            .ok_or_else(|| missing_cf(Family::Alerts))?;
        let next_alert = match db.iterator_cf(alerts, IteratorMode::End).next() {
            Some(item) => decode_u64(Family::Alerts, &item?.0)? + 1,
            None => 0,
        };
        let revisions = db
            .cf_handle(Family::Revisions.name())
            .ok_or_else(|| missing_cf(Family::Revisions))?;
        let next_revision = match db.iterator_cf(revisions, IteratorMode::End).next() {
            Some(item) => decode_u64(Family::Revisions, &item?.0)? + 1,
            None => 0,
        };
        let meta = db
            .cf_handle(Family::Meta.name())
            .ok_or_else(|| missing_cf(Family::Meta))?;
        let identity = match db.get_cf(meta, META_STORE_ID)? {
            Some(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            None => {
                let fresh = fresh_identity();
                db.put_cf(meta, META_STORE_ID, fresh.as_bytes())?;
                fresh
            }
        };
        let store = Self {
            db,
            next_seq: AtomicU64::new(next_seq),
            event_count: AtomicU64::new(event_count),
            next_dead_letter: AtomicU64::new(next_dead_letter),
            next_alert: AtomicU64::new(next_alert),
            next_revision: AtomicU64::new(next_revision),
            mirror: std::sync::atomic::AtomicBool::new(false),
            mirror_queue: std::sync::Mutex::new(()),
            identity,
            sync: std::sync::atomic::AtomicBool::new(true),
            write_failure: std::sync::Mutex::new(None),
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

    fn cf(&self, family: Family) -> Result<&rocksdb::ColumnFamily, StoreError> {
        self.db
            .cf_handle(family.name())
            .ok_or_else(|| missing_cf(family))
    }

    /// Whether every write returns only once it is in RocksDB's log on disk (`fsync`), so what
    /// was acknowledged survives a power loss, not only a process crash. On by default.
    pub fn set_sync_writes(&self, on: bool) {
        self.sync.store(on, std::sync::atomic::Ordering::Release);
    }

    /// Writes `batch` atomically; synced to disk when `set_sync_writes` is on. Every write of
    /// the store goes through here.
    fn commit(&self, batch: WriteBatch) -> Result<(), rocksdb::Error> {
        let mut options = rocksdb::WriteOptions::default();
        options.set_sync(self.sync.load(std::sync::atomic::Ordering::Acquire));
        let result = self.db.write_opt(batch, &options);
        let mut failure = self
            .write_failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match &result {
            Ok(()) => *failure = None,
            Err(error) => *failure = Some(error.to_string()),
        }
        result
    }

    /// Why the last write failed, while no later write has succeeded (a full volume, say).
    pub fn write_failure(&self) -> Option<String> {
        self.write_failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The store's random name, given when it was created and kept for its life.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// A value from the meta column family.
    pub fn meta(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.db.get_cf(self.cf(Family::Meta)?, key)?)
    }

    fn batch_of(&self, ops: &[StoreOp]) -> Result<WriteBatch, StoreError> {
        let mut batch = WriteBatch::default();
        for op in ops {
            let cf = self.cf(op.family)?;
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
        Ok(self.commit(self.batch_of(ops)?)?)
    }

    /// Every entry of a column family in key order, for tests and tools that compare whole
    /// stores (a crashed run against a clean one); never used on a serving path.
    pub fn dump(&self, family: Family) -> Result<Vec<KeyValue>, StoreError> {
        self.scan(family, &[], &[], usize::MAX)
    }

    /// One value of a column family.
    fn get(&self, family: Family, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.db.get_cf(self.cf(family)?, key)?)
    }

    /// Up to `limit` entries of a column family in key order, from `from` (inclusive) while the
    /// key starts with `prefix`.
    fn scan(
        &self,
        family: Family,
        prefix: &[u8],
        from: &[u8],
        limit: usize,
    ) -> Result<Vec<KeyValue>, StoreError> {
        let start = if from < prefix { prefix } else { from };
        let mode = IteratorMode::From(start, Direction::Forward);
        let mut out = Vec::new();
        for item in self.db.iterator_cf(self.cf(family)?, mode) {
            let (key, value) = item?;
            if !key.starts_with(prefix) || out.len() >= limit {
                break;
            }
            out.push((key.to_vec(), value.to_vec()));
        }
        Ok(out)
    }

    /// Values of a family keyed `cell | time | id` (`keys::cell_time_key`) with a time in
    /// `[from_ms, to_ms]`, for each of `cells` in the order given: one iterator for them all,
    /// seeking from cell to cell (creating an iterator costs more than such a short read).
    fn cells_between(
        &self,
        family: Family,
        cells: &[(i32, i32)],
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<Vec<Vec<u8>>>, StoreError> {
        let mut iter = self.db.raw_iterator_cf(self.cf(family)?);
        let mut out = Vec::with_capacity(cells.len());
        for &cell in cells {
            let end = keys::cell_time_key(cell, to_ms.saturating_add(1), "");
            iter.seek(keys::cell_time_key(cell, from_ms, ""));
            let mut values = Vec::new();
            while let Some((key, value)) = iter.item() {
                if key >= end.as_slice() {
                    break;
                }
                values.push(value.to_vec());
                iter.next();
            }
            iter.status()?;
            out.push(values);
        }
        Ok(out)
    }

    /// Each column family's live SST bytes and memtable bytes, from RocksDB's properties
    /// (`rocksdb.live-sst-files-size`, `rocksdb.cur-size-all-mem-tables`): the state's size.
    pub fn sizes(&self) -> Result<Vec<(&'static str, u64, u64)>, StoreError> {
        Family::ALL
            .iter()
            .map(|family| {
                let cf = self.cf(*family)?;
                let sst = self
                    .db
                    .property_int_value_cf(cf, "rocksdb.live-sst-files-size")?
                    .unwrap_or(0);
                let memtable = self
                    .db
                    .property_int_value_cf(cf, "rocksdb.cur-size-all-mem-tables")?
                    .unwrap_or(0);
                Ok((family.name(), sst, memtable))
            })
            .collect()
    }

    /// The first key of a column family.
    fn first_key(&self, family: Family) -> Result<Option<Vec<u8>>, StoreError> {
        self.end_key(family, IteratorMode::Start)
    }

    /// The last key of a column family.
    fn last_key(&self, family: Family) -> Result<Option<Vec<u8>>, StoreError> {
        self.end_key(family, IteratorMode::End)
    }

    /// The key at one end of a column family (`Start` or `End`).
    fn end_key(
        &self,
        family: Family,
        end: IteratorMode<'_>,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        match self.db.iterator_cf(self.cf(family)?, end).next() {
            Some(item) => Ok(Some(item?.0.to_vec())),
            None => Ok(None),
        }
    }
}

fn missing_cf(family: Family) -> StoreError {
    StoreError::Corrupt {
        cf: family.name(),
        reason: "column family missing".into(),
    }
}

fn decode_u64(family: Family, bytes: &[u8]) -> Result<u64, StoreError> {
    let array: [u8; 8] = bytes.try_into().map_err(|_| StoreError::Corrupt {
        cf: family.name(),
        reason: format!("expected 8 bytes, found {}", bytes.len()),
    })?;
    Ok(u64::from_be_bytes(array))
}

fn decode_json<T: for<'de> Deserialize<'de>>(
    family: Family,
    bytes: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        cf: family.name(),
        reason: e.to_string(),
    })
}

/// 128 random bits as hex, from the standard library's per-process random hash keys and the
/// clock (an identity, not a secret).
fn fresh_identity() -> String {
    use std::hash::{BuildHasher, Hasher};
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let word = |salt: u8| {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u128(nanos);
        hasher.write_u8(salt);
        hasher.write_u32(std::process::id());
        hasher.finish()
    };
    format!("{:016x}{:016x}", word(0), word(1))
}

//! Events, the newest-first time index, the id map, vectors (one per event and encoder) and
//! the event counters.

use std::sync::atomic::Ordering;

use rocksdb::{Direction, IteratorMode, WriteBatch};

use super::deletions::Deletion;
use super::keys::{decode_time, time_key, vector_key};
use super::{
    Family, META_EVENT_COUNT, META_NEXT_SEQ, Store, StoreError, StoreOp, decode_json, decode_u64,
};
use crate::event::FireEventV2;

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

/// One page of events, newest first.
#[derive(Debug, Clone)]
pub struct EventPage {
    /// The events.
    pub events: Vec<FireEventV2>,
    /// Opaque cursor for the next page, if there is one.
    pub next_cursor: Option<String>,
}

impl Store {
    /// Number of stored events.
    pub fn event_count(&self) -> u64 {
        self.event_count.load(Ordering::Acquire)
    }

    /// True when an event with this id is stored.
    pub fn contains_event(&self, event_id: &str) -> Result<bool, StoreError> {
        Ok(self
            .db
            .get_pinned_cf(self.cf(Family::IdMap)?, event_id.as_bytes())?
            .is_some())
    }

    /// The stored record.
    pub fn event(&self, event_id: &str) -> Result<Option<FireEventV2>, StoreError> {
        let Some(bytes) = self
            .db
            .get_pinned_cf(self.cf(Family::Events)?, event_id.as_bytes())?
        else {
            return Ok(None);
        };
        decode_json(Family::Events, &bytes).map(Some)
    }

    /// The vector sequence number of an event.
    pub fn seq_of(&self, event_id: &str) -> Result<Option<u64>, StoreError> {
        self.db
            .get_pinned_cf(self.cf(Family::IdMap)?, event_id.as_bytes())?
            .map(|v| decode_u64(Family::IdMap, &v))
            .transpose()
    }

    /// The stored vector for a sequence number.
    pub fn vector(&self, seq: u64, model: &str) -> Result<Option<StoredVector>, StoreError> {
        let cf = self.cf(Family::Vectors)?;
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

    /// Every model's stored vector for a sequence number (they share the key prefix `seq`).
    pub fn vectors_of(&self, seq: u64) -> Result<Vec<StoredVector>, StoreError> {
        let prefix = seq.to_be_bytes();
        let mut out = Vec::new();
        for item in self.db.iterator_cf(
            self.cf(Family::Vectors)?,
            IteratorMode::From(&prefix, rocksdb::Direction::Forward),
        ) {
            let (key, value) = item?;
            if !key.starts_with(&prefix) {
                break;
            }
            out.push(decode_vector(seq, &value)?);
        }
        Ok(out)
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
                self.cf(Family::Vectors)?,
                vector_key(*seq, model),
                encode_vector(model, event_id, vector),
            );
            if mirror {
                batch.put_cf(
                    self.cf(Family::MirrorOutbox)?,
                    vector_key(*seq, model),
                    super::outbox::queue_mark(),
                );
            }
        }
        for (key, value) in meta {
            match value {
                Some(v) => batch.put_cf(self.cf(Family::Meta)?, key, v),
                None => batch.delete_cf(self.cf(Family::Meta)?, key),
            }
        }
        let _queue = mirror.then(|| self.mirror_queue());
        self.commit(batch)?;
        Ok(())
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
        self.write_changes(events, (&[], &[]), &[], extra)
    }

    /// New events, events revised in place (`(seqs, records)`, see
    /// [`Store::revise_events_with`]) and events deleted (see [`Store::deletion`]), with
    /// `extra` writes, in one atomic batch: a source row's update or delete and the input
    /// offsets that carried it commit together.
    ///
    /// Callers serialise writers (the pipeline holds one lock), so sequence and revision
    /// numbers are dense. Returns the sequence numbers given to the new events, in order.
    pub fn write_changes(
        &self,
        events: &[NewEvent],
        revised: (&[u64], &[NewEvent]),
        deleted: &[Deletion],
        extra: &[StoreOp],
    ) -> Result<Vec<u64>, StoreError> {
        let first = self.next_seq.load(Ordering::Acquire);
        let first_revision = self.next_revision.load(Ordering::Acquire);
        let mirror = self.mirror.load(Ordering::Acquire);
        let mut batch = self.batch_of(extra)?;
        let mut seqs = Vec::with_capacity(events.len());
        for (offset, new) in events.iter().enumerate() {
            let seq = first + offset as u64;
            let id = new.event.event_id.as_bytes();
            batch.put_cf(
                self.cf(Family::Events)?,
                id,
                serde_json::to_vec(&new.event)?,
            );
            batch.put_cf(
                self.cf(Family::EventsByTime)?,
                time_key(new.event.detection_time, &new.event.event_id),
                [],
            );
            batch.put_cf(self.cf(Family::IdMap)?, id, seq.to_be_bytes());
            let model = new.event.model_version.as_deref().unwrap_or_default();
            batch.put_cf(
                self.cf(Family::Vectors)?,
                vector_key(seq, model),
                encode_vector(model, &new.event.event_id, &new.vector),
            );
            if mirror {
                batch.put_cf(
                    self.cf(Family::MirrorOutbox)?,
                    vector_key(seq, model),
                    super::outbox::queue_mark(),
                );
            }
            seqs.push(seq);
        }
        let revisions = self.put_revisions(&mut batch, first_revision, revised)?;
        self.put_deletions(&mut batch, first_revision + revisions, deleted)?;
        let next = first + events.len() as u64;
        let count = (self.event_count() + events.len() as u64).saturating_sub(deleted.len() as u64);
        if !events.is_empty() {
            batch.put_cf(self.cf(Family::Meta)?, META_NEXT_SEQ, next.to_be_bytes());
        }
        if !events.is_empty() || !deleted.is_empty() {
            batch.put_cf(
                self.cf(Family::Meta)?,
                META_EVENT_COUNT,
                count.to_be_bytes(),
            );
        }
        {
            let _queue = mirror.then(|| self.mirror_queue());
            self.commit(batch)?;
        }
        self.next_seq.store(next, Ordering::Release);
        self.event_count.store(count, Ordering::Release);
        self.next_revision.store(
            first_revision + revisions + deleted.len() as u64,
            Ordering::Release,
        );
        Ok(seqs)
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
            self.cf(Family::Vectors)?,
            IteratorMode::From(&start, rocksdb::Direction::Forward),
        );
        Ok(iter.map(|item| {
            let (key, value) = item?;
            let seq = key.get(..8).ok_or_else(|| StoreError::Corrupt {
                cf: Family::Vectors.name(),
                reason: format!("key of {} bytes, expected at least 8", key.len()),
            })?;
            decode_vector(decode_u64(Family::Vectors, seq)?, &value)
        }))
    }

    /// The earliest and the latest detection time stored, ms (`None` when no event is stored).
    pub fn event_time_span(&self) -> Result<Option<(i64, i64)>, StoreError> {
        let cf = self.cf(Family::EventsByTime)?;
        let time_of = |mode| -> Result<Option<i64>, StoreError> {
            match self.db.iterator_cf(cf, mode).next() {
                Some(item) => {
                    let (key, _) = item?;
                    Ok((key.len() >= 8).then(|| decode_time(&key[..8])))
                }
                None => Ok(None),
            }
        };
        // Keys sort newest first.
        let newest = time_of(IteratorMode::Start)?;
        let oldest = time_of(IteratorMode::End)?;
        Ok(oldest.zip(newest))
    }

    /// Events with `from_ms <= detection_time <= to_ms`, newest first, `limit` per page.
    pub fn list_events(
        &self,
        from_ms: i64,
        to_ms: i64,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<EventPage, StoreError> {
        self.list_events_where(from_ms, to_ms, cursor, limit, usize::MAX, |_| true)
    }

    /// As [`Store::list_events`], only events that `keep`, looking at no more than `max_scanned`
    /// events per page: a filter that matches little ends the page early (fewer than `limit`
    /// items) with a cursor to go on from, so no request scans the whole store.
    pub fn list_events_where(
        &self,
        from_ms: i64,
        to_ms: i64,
        cursor: Option<&str>,
        limit: usize,
        max_scanned: usize,
        keep: impl Fn(&FireEventV2) -> bool,
    ) -> Result<EventPage, StoreError> {
        let mut events = Vec::with_capacity(limit.min(1024));
        let next_cursor =
            self.visit_events_where(from_ms, to_ms, cursor, limit, max_scanned, keep, |event| {
                events.push(event);
                Ok::<_, StoreError>(())
            })?;
        Ok(EventPage {
            events,
            next_cursor,
        })
    }

    /// The page [`Store::list_events_where`] would give, handed to `visit` one event at a time
    /// instead of collected, so a caller can write a large page out as it is read. An error from
    /// `visit` (the reader went away) stops the scan. Returns the cursor of the next page.
    #[allow(clippy::too_many_arguments)]
    pub fn visit_events_where<E: From<StoreError>>(
        &self,
        from_ms: i64,
        to_ms: i64,
        cursor: Option<&str>,
        limit: usize,
        max_scanned: usize,
        keep: impl Fn(&FireEventV2) -> bool,
        mut visit: impl FnMut(FireEventV2) -> Result<(), E>,
    ) -> Result<Option<String>, E> {
        let start = match cursor {
            Some(c) => {
                let mut key = hex::decode(c).map_err(|_| StoreError::Corrupt {
                    cf: Family::EventsByTime.name(),
                    reason: "bad cursor".into(),
                })?;
                key.push(0); // strictly after the last key returned
                key
            }
            None => time_key(to_ms, "").to_vec(),
        };
        let mode = IteratorMode::From(&start, Direction::Forward);
        let mut visited = 0usize;
        let mut last_key = None;
        let keys = self.db.iterator_cf(self.cf(Family::EventsByTime)?, mode);
        for (scanned, item) in keys.enumerate() {
            let (key, _) = item.map_err(StoreError::from)?;
            if key.len() < 8 || decode_time(&key[..8]) < from_ms {
                break;
            }
            if visited == limit || scanned == max_scanned {
                return Ok(last_key.map(hex::encode));
            }
            let id = std::str::from_utf8(&key[8..]).map_err(|e| StoreError::Corrupt {
                cf: Family::EventsByTime.name(),
                reason: e.to_string(),
            })?;
            if let Some(event) = self.event(id)?
                && keep(&event)
            {
                visit(event)?;
                visited += 1;
            }
            last_key = Some(key.to_vec());
        }
        Ok(None)
    }

    /// Events with `from_ms <= detection_time <= to_ms`, newest first, read as they are needed.
    pub fn events_between(
        &self,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<impl Iterator<Item = Result<FireEventV2, StoreError>> + '_, StoreError> {
        let start = time_key(to_ms, "");
        let mode = IteratorMode::From(&start, Direction::Forward);
        let keys = self.db.iterator_cf(self.cf(Family::EventsByTime)?, mode);
        Ok(keys
            .map_while(move |item| match item {
                Ok((key, _)) if key.len() < 8 || decode_time(&key[..8]) < from_ms => None,
                other => Some(other),
            })
            .filter_map(move |item| {
                let lookup = || {
                    let (key, _) = item?;
                    let id = std::str::from_utf8(&key[8..]).map_err(|e| StoreError::Corrupt {
                        cf: Family::EventsByTime.name(),
                        reason: e.to_string(),
                    })?;
                    self.event(id)
                };
                lookup().transpose()
            }))
    }
}

pub(super) fn encode_vector(model: &str, event_id: &str, vector: &[f32]) -> Vec<u8> {
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
        cf: Family::Vectors.name(),
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

#[cfg(test)]
mod tests {
    use super::*;

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

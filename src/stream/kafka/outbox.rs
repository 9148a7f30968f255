//! The transactional outbox: output records written in the same RocksDB batch as the state and
//! input offsets that produced them (the store keeps them; this file says what a record is and
//! hands out their sequence numbers).
//!
//! An outbox entry is removed only after the broker acknowledged it, so a crash at any moment
//! either loses nothing (the entry is still there and is sent again, byte for byte) or never
//! happened (the whole batch, offsets included, is absent and the inputs are read again).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::store::{Store, StoreError, StoreOp};

/// One record to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct OutRecord {
    /// Destination topic.
    pub topic: String,
    /// Destination partition; `None` lets the producer's partitioner choose by key.
    pub partition: Option<i32>,
    /// Record key (an event id, or the refused record's own key).
    pub key: Option<Vec<u8>>,
    /// Record value.
    pub payload: Vec<u8>,
    /// Record headers, in order.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl OutRecord {
    /// Serialises the record for the outbox column family.
    pub fn encode(&self) -> Vec<u8> {
        let key_len = self.key.as_ref().map_or(0, Vec::len);
        let mut out = Vec::with_capacity(32 + self.topic.len() + key_len + self.payload.len());
        put_bytes(&mut out, self.topic.as_bytes());
        match self.partition {
            Some(partition) => {
                out.push(1);
                out.extend_from_slice(&partition.to_be_bytes());
            }
            None => out.push(0),
        }
        match &self.key {
            Some(key) => {
                out.push(1);
                put_bytes(&mut out, key);
            }
            None => out.push(0),
        }
        out.extend_from_slice(&(self.headers.len() as u32).to_be_bytes());
        for (name, value) in &self.headers {
            put_bytes(&mut out, name.as_bytes());
            put_bytes(&mut out, value);
        }
        put_bytes(&mut out, &self.payload);
        out
    }

    /// Reads a record written by [`OutRecord::encode`].
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        let mut rest = bytes;
        let topic = String::from_utf8(take_bytes(&mut rest)?.to_vec())
            .map_err(|_| "topic is not UTF-8".to_owned())?;
        let partition = match take(&mut rest, 1)?[0] {
            0 => None,
            _ => Some(i32::from_be_bytes(array(take(&mut rest, 4)?)?)),
        };
        let key = match take(&mut rest, 1)?[0] {
            0 => None,
            _ => Some(take_bytes(&mut rest)?.to_vec()),
        };
        let count = u32::from_be_bytes(array(take(&mut rest, 4)?)?);
        let mut headers = Vec::with_capacity(count.min(64) as usize);
        for _ in 0..count {
            let name = String::from_utf8(take_bytes(&mut rest)?.to_vec())
                .map_err(|_| "header name is not UTF-8".to_owned())?;
            headers.push((name, take_bytes(&mut rest)?.to_vec()));
        }
        let payload = take_bytes(&mut rest)?.to_vec();
        if !rest.is_empty() {
            return Err(format!("{} trailing bytes", rest.len()));
        }
        Ok(Self {
            topic,
            partition,
            key,
            payload,
            headers,
        })
    }
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

fn take<'a>(rest: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
    if rest.len() < n {
        return Err(format!("truncated: wanted {n} bytes, {} left", rest.len()));
    }
    let (head, tail) = rest.split_at(n);
    *rest = tail;
    Ok(head)
}

fn take_bytes<'a>(rest: &mut &'a [u8]) -> Result<&'a [u8], String> {
    let len = u32::from_be_bytes(array(take(rest, 4)?)?) as usize;
    take(rest, len)
}

fn array<const N: usize>(bytes: &[u8]) -> Result<[u8; N], String> {
    bytes.try_into().map_err(|_| format!("expected {N} bytes"))
}

/// Hands out outbox sequence numbers (continuing after the last entry at open) and reads the
/// consumer's stored offsets.
pub struct Outbox {
    next: AtomicU64,
    /// Entries below this sequence may be published: their events are in the index as well as
    /// in the store (the index is written just after the batch commits).
    visible: AtomicU64,
}

impl Outbox {
    /// Continues after the newest entry still in the store.
    pub fn open(store: &Store) -> Result<Self, StoreError> {
        let next = store.last_outbox_seq()?.map_or(0, |seq| seq + 1);
        // At open every entry is visible: the index was rebuilt from the store before streaming.
        Ok(Self {
            next: AtomicU64::new(next),
            visible: AtomicU64::new(next),
        })
    }

    /// Makes every entry queued so far publishable; called once a run's writes (store and
    /// index) are all done.
    pub fn release(&self) {
        self.visible
            .store(self.next.load(Ordering::Acquire), Ordering::Release);
    }

    /// The first sequence not yet publishable.
    pub fn visible(&self) -> u64 {
        self.visible.load(Ordering::Acquire)
    }

    /// The write that queues `record`.
    pub fn push(&self, record: &OutRecord) -> StoreOp {
        let seq = self.next.fetch_add(1, Ordering::AcqRel);
        StoreOp::outbox_record(seq, record.encode())
    }

    /// Up to `limit` queued records from sequence `from` on, oldest first.
    pub fn pending(
        store: &Store,
        from: u64,
        limit: usize,
    ) -> Result<Vec<(u64, OutRecord)>, StoreError> {
        store
            .outbox_records(from, limit)?
            .into_iter()
            .map(|(seq, value)| {
                let record = OutRecord::decode(&value).map_err(|reason| StoreError::Corrupt {
                    cf: "stream_outbox",
                    reason: format!("entry {seq}: {reason}"),
                })?;
                Ok((seq, record))
            })
            .collect()
    }

    /// The writes that remove acknowledged entries.
    pub fn acknowledge(seqs: &[u64]) -> Vec<StoreOp> {
        seqs.iter()
            .map(|&seq| StoreOp::outbox_delivered(seq))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_through_their_encoding() {
        let record = OutRecord {
            topic: "wildfire-dead-letters".into(),
            partition: Some(3),
            key: Some(b"k".to_vec()),
            payload: vec![0, 1, 2, 255],
            headers: vec![
                ("reason".into(), b"latitude".to_vec()),
                ("empty".into(), vec![]),
            ],
        };
        assert_eq!(OutRecord::decode(&record.encode()), Ok(record.clone()));
        let keyless = OutRecord {
            key: None,
            partition: None,
            ..record
        };
        assert_eq!(OutRecord::decode(&keyless.encode()), Ok(keyless.clone()));
        let bytes = keyless.encode();
        assert!(OutRecord::decode(&bytes[..bytes.len() - 1]).is_err());
    }
}

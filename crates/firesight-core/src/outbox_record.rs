//! One output record of the Kafka outbox and its byte encoding in the store. The encoding is
//! read back after a crash, so its decoder treats the bytes as untrusted: every length is
//! checked against what is left before anything is taken, and nothing is sized by a count.

/// One record to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct OutRecord {
    /// Destination topic.
    pub topic: String,
    /// Destination partition; `None` lets the producer's partitioner choose by key.
    pub partition: Option<i32>,
    /// Record key (an event id, or the refused record's own key).
    pub key: Option<Vec<u8>>,
    /// Record value; empty is sent as null, a tombstone (a deleted event under its key).
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

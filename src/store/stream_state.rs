//! The streaming consumer's own position and state: each input partition's next offset, and
//! each detections partition's window state, written in the batch of the records that moved them.

use super::keys::{partition_key, window_state_key};
use super::{Family, Store, StoreError, StoreOp};

impl Store {
    /// The next offset to process on an input partition, if this store has processed any of it.
    pub fn stream_offset(&self, topic: &str, partition: i32) -> Result<Option<i64>, StoreError> {
        self.get(Family::StreamOffsets, &partition_key(topic, partition))?
            .map(|value| {
                let array: [u8; 8] =
                    value
                        .as_slice()
                        .try_into()
                        .map_err(|_| StoreError::Corrupt {
                            cf: Family::StreamOffsets.name(),
                            reason: format!("expected 8 bytes, found {}", value.len()),
                        })?;
                Ok(i64::from_be_bytes(array))
            })
            .transpose()
    }

    /// A detections partition's window state as stored (JSON), if any.
    pub fn window_state(&self, topic: &str, partition: i32) -> Result<Option<Vec<u8>>, StoreError> {
        self.get(Family::StreamState, &window_state_key(topic, partition))
    }
}

impl StoreOp {
    /// The write that records `next` as an input partition's next offset to process.
    pub fn stream_offset(topic: &str, partition: i32, next: i64) -> Self {
        Self::put(
            Family::StreamOffsets,
            partition_key(topic, partition),
            next.to_be_bytes(),
        )
    }

    /// The write that stores a detections partition's window state (JSON).
    pub fn window_state(topic: &str, partition: i32, state: Vec<u8>) -> Self {
        Self::put(
            Family::StreamState,
            window_state_key(topic, partition),
            state,
        )
    }
}

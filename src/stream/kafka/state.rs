//! The window state of the detections partitions: held in memory, persisted in the store.

use std::collections::HashMap;
use std::sync::Arc;

use crate::store::{Store, StoreError, StoreOp};
use crate::stream::pipeline::PipelineError;
use crate::stream::windows::PartitionState;

/// The window state of the partitions this instance holds, loaded from the store on first use.
pub(super) type States = Arc<std::sync::Mutex<HashMap<(String, i32), PartitionState>>>;

/// The key of a partition's changelog record: the store's key for its window state, so a
/// restored record lands where the local state lives.
pub(super) fn state_key(key: &(String, i32)) -> Vec<u8> {
    crate::store::window_state_key(&key.0, key.1)
}

/// A partition's state, loaded from the store the first time it is needed.
pub(super) fn state_mut<'a>(
    states: &'a mut HashMap<(String, i32), PartitionState>,
    store: &Store,
    key: &(String, i32),
) -> Result<&'a mut PartitionState, PipelineError> {
    Ok(match states.entry(key.clone()) {
        std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
        std::collections::hash_map::Entry::Vacant(entry) => entry.insert(load_state(store, key)?),
    })
}

fn load_state(store: &Store, key: &(String, i32)) -> Result<PartitionState, PipelineError> {
    match store.window_state(&key.0, key.1)? {
        None => Ok(PartitionState::default()),
        Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            PipelineError::Store(StoreError::Corrupt {
                cf: "stream_state",
                reason: format!("window state of {}/{}: {e}", key.0, key.1),
            })
        }),
    }
}

pub(super) fn state_op(
    key: &(String, i32),
    state: &PartitionState,
) -> Result<StoreOp, PipelineError> {
    let value = serde_json::to_vec(state).map_err(StoreError::from)?;
    Ok(StoreOp::window_state(&key.0, key.1, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partition_of(topic: &str, partition: i32) -> (String, i32) {
        (topic.to_owned(), partition)
    }

    #[test]
    fn state_keys_are_the_partition_prefix_then_the_offsets_key() {
        // The form is persisted (the store's state and the changelog's keys), so it is pinned.
        assert_eq!(
            state_key(&partition_of("detections", 1)),
            b"partition\0detections\0\0\0\0\x01".to_vec()
        );
    }

    #[test]
    fn state_keys_differ_between_partitions_and_topics() {
        let keys = [
            state_key(&partition_of("detections", 0)),
            state_key(&partition_of("detections", 1)),
            state_key(&partition_of("detections", 256)),
            state_key(&partition_of("weather", 0)),
            state_key(&partition_of("detections-b", 0)),
        ];
        for key in &keys {
            assert!(key.starts_with(b"partition\0"), "{key:?}");
        }
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }
}

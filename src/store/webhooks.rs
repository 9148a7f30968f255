//! The webhook queue: per target, the alerts not yet accepted by its receiver, and the cursor in
//! the alert log up to which alerts have been queued for it. Values are the dispatcher's JSON;
//! the store lays out the keys.

use super::keys::{webhook_key, webhook_prefix};
use super::{Family, Store, StoreError, StoreOp, decode_u64};

/// `webhook_cursor \0 target` in `meta`: the next alert sequence to queue for the target.
fn cursor_key(target: &str) -> Vec<u8> {
    let mut key = b"webhook_cursor\0".to_vec();
    key.extend_from_slice(target.as_bytes());
    key
}

impl Store {
    /// The next alert sequence to queue for `target`; `None` for a target never seen.
    pub fn webhook_cursor(&self, target: &str) -> Result<Option<u64>, StoreError> {
        self.get(Family::Meta, &cursor_key(target))?
            .map(|v| decode_u64(Family::Meta, &v))
            .transpose()
    }

    /// Up to `limit` queued deliveries of `target` (alert sequence, JSON), oldest alert first.
    pub fn webhook_queue(
        &self,
        target: &str,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let prefix = webhook_prefix(target);
        self.scan(Family::WebhookQueue, &prefix, &prefix, limit)?
            .into_iter()
            .map(|(key, value)| {
                Ok((
                    decode_u64(Family::WebhookQueue, &key[prefix.len()..])?,
                    value,
                ))
            })
            .collect()
    }

    /// How many deliveries `target` has queued (counted, for the gauge and the tests).
    pub fn webhook_queue_len(&self, target: &str) -> Result<usize, StoreError> {
        Ok(self.webhook_queue(target, usize::MAX)?.len())
    }
}

impl StoreOp {
    /// The write that moves `target`'s cursor in the alert log.
    pub fn webhook_cursor(target: &str, next_seq: u64) -> Self {
        Self::put(Family::Meta, cursor_key(target), next_seq.to_be_bytes())
    }

    /// The write that queues (or re-schedules) the delivery of alert `seq` to `target`.
    pub fn webhook_queued(target: &str, seq: u64, state: Vec<u8>) -> Self {
        Self::put(Family::WebhookQueue, webhook_key(target, seq), state)
    }

    /// The write that removes a settled delivery (accepted, or dead-lettered).
    pub fn webhook_settled(target: &str, seq: u64) -> Self {
        Self::delete(Family::WebhookQueue, webhook_key(target, seq))
    }
}

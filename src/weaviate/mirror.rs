//! The mirror: drains the store's mirror outbox into Weaviate.
//!
//! Every stored vector is queued in the `mirror_outbox` column family in the same write batch
//! as the event (or the re-index's vector), so nothing can be stored without being queued. The
//! mirror sends the queue in batches to `POST /v1/batch/objects` and removes entries only once
//! Weaviate has accepted them; while Weaviate is down it retries with exponential backoff (at
//! least what a 429 or 503 `Retry-After` asks), and the queue waits on disk.
//!
//! - **One object per event, with every model's vector.** A batch upsert replaces an object
//!   whole ("overwritten, similar to a PUT", the contract says), so an object sent with only the
//!   vector that was queued would drop the others: a re-index's vector would erase the
//!   ingest-time one. Each object therefore carries every vector the store holds for its event,
//!   and settles every queued entry of that event.
//! - **A deleted event's object is deleted** (`DELETE /v1/objects/{class}/{id}`; absent
//!   counts as deleted): its source row was deleted, and the store's `deleted` table names it.
//! - **Refused objects are retried, then dead-lettered.** Weaviate's per-object errors mix
//!   transient causes (a replica unreachable, a shard moving, a timeout) with refusals no retry
//!   mends, and their messages do not tell them apart reliably. So a refused object stays queued
//!   and is tried again after a backoff of its own, up to `weaviate.max_object_attempts` times;
//!   only then is it a dead letter with Weaviate's last reason. The other objects of its batch
//!   go on meanwhile.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{WeaviateClient, WeaviateError, object_id, vector_name};
use crate::config::WeaviateSettings;
use crate::event::{FieldError, FireEventV2};
use crate::index::PointAttrs;
use crate::store::{DeadLetter, Queued, Store, StoredVector};

/// The Weaviate object of a stored event with its vectors (`(model, vector)`, one per space).
pub fn event_object(class: &str, event: &FireEventV2, vectors: &[(&str, &[f32])]) -> Value {
    let detection = chrono::DateTime::from_timestamp_millis(event.detection_time)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    let attrs = PointAttrs::of(event);
    let named: serde_json::Map<String, Value> = vectors
        .iter()
        .map(|(model, vector)| (vector_name(model), json!(vector)))
        .collect();
    json!({
        "class": class,
        "id": object_id(&event.event_id).to_string(),
        "properties": {
            "eventId": event.event_id,
            "correlationId": event.correlation_id,
            "satellite": event.source.satellite,
            "instrument": event.source.instrument,
            "confidence": event.fire_characteristics.confidence,
            // The encoder that embedded it at ingest; `vectors` says which spaces it is in.
            "modelVersion": event.model_version,
            "detectionTime": detection,
            "latitude": event.location.latitude,
            "longitude": event.location.longitude,
            "frpMw": event.fire_characteristics.frp_mw,
            "brightnessK": event.fire_characteristics.brightness_k,
            "sourceCode": attrs.source,
            "confidenceClass": attrs.confidence,
            "incidentCode": (attrs.incident != 0).then(|| format!("{:016x}", attrs.incident)),
        },
        "vectors": named,
    })
}

/// First wait after a failure; doubled on each further failure up to `max_backoff`.
const MIN_BACKOFF: Duration = Duration::from_millis(200);
/// How often an empty outbox is looked at again.
const IDLE_POLL: Duration = Duration::from_millis(250);
/// The longest `Retry-After` obeyed; a longer one is taken as this.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// A refused object's retry state.
#[derive(Clone, Copy)]
struct Retry {
    attempts: u32,
    not_before: Instant,
}

/// Drains the outbox into Weaviate until shut down.
pub struct Mirror {
    client: WeaviateClient,
    store: Arc<Store>,
    batch_size: usize,
    max_backoff: Duration,
    max_object_attempts: u32,
    metrics: crate::metrics::Metrics,
    /// Objects Weaviate refused, by event sequence number.
    refused: Mutex<HashMap<u64, Retry>>,
}

/// One event to send: its queued entries, and the object (or why there is none).
struct Pending {
    entries: Vec<Queued>,
    object: Result<Value, String>,
    models: Vec<String>,
}

/// One event deleted from the store (its source row was): its queued entries and its id.
struct Gone {
    entries: Vec<Queued>,
    event_id: String,
    /// Stored again under a later sequence number: settled without a delete.
    restored: bool,
}

impl Mirror {
    /// A mirror of `store` through `client`.
    pub fn new(
        client: WeaviateClient,
        store: Arc<Store>,
        settings: &WeaviateSettings,
        metrics: crate::metrics::Metrics,
    ) -> Self {
        Self {
            client,
            store,
            batch_size: settings.batch_size.max(1),
            max_backoff: Duration::from_millis(settings.max_backoff_ms),
            max_object_attempts: settings.max_object_attempts.max(1),
            metrics,
            refused: Mutex::new(HashMap::new()),
        }
    }

    /// Runs until `shutdown` resolves. Never gives up on an outage: the queue is on disk.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut backoff = MIN_BACKOFF;
        let mut schema_for: Vec<String> = Vec::new();
        loop {
            let pause = match self.step(&mut schema_for).await {
                Ok(0) => IDLE_POLL,
                Ok(_) => {
                    backoff = MIN_BACKOFF;
                    Duration::ZERO
                }
                Err(error) => {
                    self.metrics.mirror_failures.inc();
                    let asked = match error.downcast_ref::<WeaviateError>() {
                        Some(WeaviateError::Busy {
                            retry_after: Some(after),
                            ..
                        }) => (*after).min(MAX_RETRY_AFTER),
                        _ => Duration::ZERO,
                    };
                    let wait = backoff.max(asked);
                    tracing::warn!(%error, retry_in_ms = wait.as_millis() as u64, "Weaviate mirror: batch not delivered; will retry.");
                    backoff = (backoff * 2).min(self.max_backoff);
                    wait
                }
            };
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// Sends one batch; returns how many outbox entries it settled (delivered or dead-lettered).
    pub async fn step(&self, schema_for: &mut Vec<String>) -> anyhow::Result<usize> {
        let waiting: Vec<u64> = {
            let now = Instant::now();
            self.refused
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .filter(|(_, r)| r.not_before > now)
                .map(|(&seq, _)| seq)
                .collect()
        };
        let store = Arc::clone(&self.store);
        let limit = self.batch_size;
        let class = self.client.class.clone();
        let (pending, gone) =
            tokio::task::spawn_blocking(move || read_batch(&store, &class, limit, &waiting))
                .await??;
        if pending.is_empty() && gone.is_empty() {
            return Ok(0);
        }
        // Deletions first: an event deleted and stored again later (the same detection) has
        // the same object id, and its upsert comes after. A failed delete fails the batch, so
        // nothing after it is settled out of order.
        let mut deleted: Vec<Queued> = Vec::new();
        for g in &gone {
            if !g.restored {
                self.client.delete(&g.event_id).await?;
            }
            deleted.extend(g.entries.iter().cloned());
        }
        {
            let mut refused = self.refused.lock().unwrap_or_else(PoisonError::into_inner);
            for g in &gone {
                refused.remove(&g.entries[0].seq);
            }
        }
        let mut models: Vec<String> = pending.iter().flat_map(|p| p.models.clone()).collect();
        models.sort();
        models.dedup();
        if models.iter().any(|m| !schema_for.contains(m)) {
            self.client.ensure_schema(&models).await?;
            for model in models {
                if !schema_for.contains(&model) {
                    schema_for.push(model);
                }
            }
        }
        let sent: Vec<&Pending> = pending.iter().filter(|p| p.object.is_ok()).collect();
        let bodies: Vec<Value> = sent
            .iter()
            .filter_map(|p| p.object.as_ref().ok().cloned())
            .collect();
        let refusals: HashMap<usize, String> = if bodies.is_empty() {
            HashMap::new()
        } else {
            self.client
                .upsert(&bodies)
                .await?
                .refused
                .into_iter()
                .collect()
        };
        let now_ms = chrono::Utc::now().timestamp_millis();
        let mut settle: Vec<Queued> = deleted;
        let mut letters: Vec<DeadLetter> = Vec::new();
        let mut accepted = 0;
        {
            let mut refused = self.refused.lock().unwrap_or_else(PoisonError::into_inner);
            for p in pending.iter().filter(|p| p.object.is_err()) {
                let seq = p.entries[0].seq;
                let reason = p.object.as_ref().err().cloned().unwrap_or_default();
                letters.push(letter(
                    FieldError::new(seq, "seq", reason),
                    String::new(),
                    now_ms,
                ));
                settle.extend(p.entries.iter().cloned());
            }
            for (i, p) in sent.iter().enumerate() {
                let seq = p.entries[0].seq;
                let Some(reason) = refusals.get(&i) else {
                    refused.remove(&seq);
                    accepted += 1;
                    settle.extend(p.entries.iter().cloned());
                    continue;
                };
                let attempts = refused.get(&seq).map_or(0, |r| r.attempts) + 1;
                if attempts >= self.max_object_attempts {
                    refused.remove(&seq);
                    self.metrics.mirror_dead_letters.inc();
                    let raw = p.object.as_ref().map(Value::to_string).unwrap_or_default();
                    letters.push(letter(
                        FieldError::new(
                            seq,
                            "object",
                            format!(
                                "Weaviate refused it {attempts} times; the last reason: {reason}"
                            ),
                        ),
                        raw,
                        now_ms,
                    ));
                    settle.extend(p.entries.iter().cloned());
                } else {
                    self.metrics.mirror_object_retries.inc();
                    tracing::debug!(seq, attempts, %reason, "Weaviate refused an object; it stays queued.");
                    let wait = (MIN_BACKOFF * 2u32.saturating_pow(attempts)).min(self.max_backoff);
                    refused.insert(
                        seq,
                        Retry {
                            attempts,
                            not_before: Instant::now() + wait,
                        },
                    );
                }
            }
        }
        let store = Arc::clone(&self.store);
        let settled = settle.len();
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            if !letters.is_empty() {
                store.put_dead_letters(&letters)?;
            }
            store.outbox_remove(&settle)?;
            Ok(())
        })
        .await??;
        self.metrics
            .mirror_sent
            .inc_by(accepted as u64 + gone.len() as u64);
        Ok(settled)
    }
}

fn letter(error: FieldError, raw: String, at_ms: i64) -> DeadLetter {
    DeadLetter {
        source: "weaviate-mirror".to_owned(),
        error,
        raw,
        at_ms,
    }
}

/// Reads up to `limit` events' worth of queued entries (skipping `waiting` ones) and builds
/// their objects from every vector stored for each event; an event deleted since it was queued
/// is one to delete. A read error stops the batch (it is retried); only a missing event or
/// vector that was not deleted is a dead letter.
fn read_batch(
    store: &Store,
    class: &str,
    limit: usize,
    waiting: &[u64],
) -> anyhow::Result<(Vec<Pending>, Vec<Gone>)> {
    let mut by_seq: BTreeMap<u64, Vec<Queued>> = BTreeMap::new();
    for queued in store.outbox_batch(limit.saturating_add(waiting.len()))? {
        let seq = queued.seq;
        if waiting.contains(&seq) {
            continue;
        }
        if by_seq.len() == limit && !by_seq.contains_key(&seq) {
            break;
        }
        by_seq.entry(seq).or_default().push(queued);
    }
    let mut out = Vec::with_capacity(by_seq.len());
    let mut gone = Vec::new();
    for (seq, entries) in by_seq {
        let vectors: Vec<StoredVector> = store.vectors_of(seq)?;
        if vectors.is_empty()
            && let Some(event_id) = store.deleted_event(seq)?
        {
            // Stored again since (the same detection, a later sequence number): that entry
            // sends the object as it is now, and a delete here would remove it.
            let restored = store.seq_of(&event_id)?.is_some();
            gone.push(Gone {
                entries,
                event_id,
                restored,
            });
            continue;
        }
        let event = match vectors.first() {
            Some(v) => store.event(&v.event_id)?,
            None => None,
        };
        let models: Vec<String> = vectors.iter().map(|v| v.model_version.clone()).collect();
        let object = match event {
            Some(event) => {
                let named: Vec<(&str, &[f32])> = vectors
                    .iter()
                    .map(|v| (v.model_version.as_str(), v.vector.as_slice()))
                    .collect();
                Ok(event_object(class, &event, &named))
            }
            None => {
                let queued: Vec<&str> = entries.iter().map(|q| q.model.as_str()).collect();
                Err(format!(
                    "no stored event or vector to mirror (queued for {})",
                    queued.join(", ")
                ))
            }
        };
        out.push(Pending {
            entries,
            object,
            models,
        });
    }
    Ok((out, gone))
}

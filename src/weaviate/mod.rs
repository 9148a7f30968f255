//! The Weaviate mirror: a thin REST client of our own and the drainer of the RocksDB outbox.
//!
//! Every stored vector is queued in the `mirror_outbox` column family in the same write batch
//! as the event, so nothing can be stored without being queued. The drainer sends the queue in
//! batches to `POST /v1/batch/objects` and removes entries only once Weaviate has accepted
//! them; while Weaviate is down it retries with exponential backoff, and the queue waits on
//! disk. Object ids are UUIDv5 of the event id, so a batch sent twice (a lost response)
//! overwrites the same objects instead of duplicating them. Each encoder version is its own
//! named vector on the `FireEvent` collection.
//!
//! Written against Weaviate's published REST contract (OpenAPI document of v1.39.0 in
//! `../shared/weaviate/`); the tests run a stand-in that checks every request against it.

pub mod proto;
mod search;

pub use search::{RemoteHit, WeaviateSearch, filters};

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::event::{FieldError, FireEventV2};
use crate::index::PointAttrs;
use crate::store::{DeadLetter, Store};

/// Namespace of FireSight's object ids (a fixed, random UUID).
const NAMESPACE: Uuid = Uuid::from_u128(0x6c1f_41a3_9d2e_4b7a_8f05_32c9_e1d4_7a60);

/// The Weaviate object id of an event: the same event always maps to the same object.
pub fn object_id(event_id: &str) -> Uuid {
    Uuid::new_v5(&NAMESPACE, event_id.as_bytes())
}

/// The named vector that holds an encoder's vectors: `event-encoder@1` → `event_encoder_1`.
pub fn vector_name(model_version: &str) -> String {
    let mut name: String = model_version
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if name.starts_with(|c: char| c.is_ascii_digit()) || name.is_empty() {
        name.insert(0, '_');
    }
    name
}

/// A failure talking to Weaviate.
#[derive(Debug, thiserror::Error)]
pub enum WeaviateError {
    /// No answer (refused, timed out, reset).
    #[error("Weaviate unreachable: {0}")]
    Unreachable(String),
    /// An answer other than the one the contract promises for success.
    #[error("Weaviate answered {status} to {what}: {body}")]
    Status {
        /// Request.
        what: String,
        /// HTTP status.
        status: u16,
        /// Body, trimmed.
        body: String,
    },
    /// A body we could not read.
    #[error("Weaviate's answer to {what} is not what its contract describes: {reason}")]
    Contract {
        /// Request.
        what: String,
        /// Why.
        reason: String,
    },
}

/// The REST client: schema, batch upsert, delete.
#[derive(Clone)]
pub struct WeaviateClient {
    base: String,
    class: String,
    api_key: Option<String>,
    http: reqwest::Client,
}

/// The outcome of one batch.
#[derive(Debug, Default, PartialEq)]
pub struct BatchOutcome {
    /// Objects Weaviate stored.
    pub accepted: usize,
    /// Objects it refused, with its reason, by position in the batch.
    pub refused: Vec<(usize, String)>,
}

impl WeaviateClient {
    /// A client for the Weaviate at `url` (e.g. `http://127.0.0.1:8081`).
    pub fn new(
        url: &str,
        class: &str,
        api_key: Option<String>,
        timeout: Duration,
    ) -> Result<Self, WeaviateError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| WeaviateError::Unreachable(e.to_string()))?;
        Ok(Self {
            base: format!("{}/v1", url.trim_end_matches('/')),
            class: class.to_owned(),
            api_key: api_key.filter(|k| !k.is_empty()),
            http,
        })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let builder = self.http.request(method, format!("{}{path}", self.base));
        match &self.api_key {
            Some(key) => builder.bearer_auth(key),
            None => builder,
        }
    }

    async fn send(
        &self,
        what: &str,
        builder: reqwest::RequestBuilder,
    ) -> Result<(u16, String), WeaviateError> {
        let response = builder
            .send()
            .await
            .map_err(|e| WeaviateError::Unreachable(format!("{what}: {e}")))?;
        let status = response.status().as_u16();
        let body = response
            .text()
            .await
            .map_err(|e| WeaviateError::Unreachable(format!("{what}: {e}")))?;
        Ok((status, body))
    }

    fn unexpected(what: &str, status: u16, body: &str) -> WeaviateError {
        WeaviateError::Status {
            what: what.to_owned(),
            status,
            body: body.chars().take(500).collect(),
        }
    }

    /// The collection definition: event properties, and one named vector per model version.
    pub fn class_definition(&self, models: &[String]) -> Value {
        let text = |name: &str| json!({"name": name, "dataType": ["text"]});
        // Identifiers match whole: no word splitting, no lower-casing.
        let id = |name: &str| json!({"name": name, "dataType": ["text"], "tokenization": "field"});
        let number = |name: &str| json!({"name": name, "dataType": ["number"]});
        let int = |name: &str| json!({"name": name, "dataType": ["int"]});
        let vectors: serde_json::Map<String, Value> = models
            .iter()
            .map(|m| {
                (
                    vector_name(m),
                    json!({
                        "vectorizer": {"none": {}},
                        "vectorIndexType": "hnsw",
                        "vectorIndexConfig": {"distance": "l2-squared", "maxConnections": 64, "efConstruction": 200}
                    }),
                )
            })
            .collect();
        json!({
            "class": self.class,
            "description": "FireSight fire events (FireEventV2), mirrored with their embeddings.",
            "properties": [
                id("eventId"), id("correlationId"), text("satellite"), text("instrument"),
                text("confidence"), text("modelVersion"),
                // The local index's filter codes, so filters mean the same on both backends.
                int("sourceCode"), int("confidenceClass"), id("incidentCode"),
                {"name": "detectionTime", "dataType": ["date"]},
                number("latitude"), number("longitude"), number("frpMw"), number("brightnessK"),
            ],
            "vectorConfig": vectors,
        })
    }

    /// Creates the collection, or adds the named vectors it lacks.
    pub async fn ensure_schema(&self, models: &[String]) -> Result<(), WeaviateError> {
        let what = format!("GET /schema/{}", self.class);
        let (status, body) = self
            .send(
                &what,
                self.request(reqwest::Method::GET, &format!("/schema/{}", self.class)),
            )
            .await?;
        match status {
            404 => {
                let (status, body) = self
                    .send(
                        "POST /schema",
                        self.request(reqwest::Method::POST, "/schema")
                            .json(&self.class_definition(models)),
                    )
                    .await?;
                if status != 200 {
                    return Err(Self::unexpected("POST /schema", status, &body));
                }
                Ok(())
            }
            200 => {
                let class: Value =
                    serde_json::from_str(&body).map_err(|e| WeaviateError::Contract {
                        what: what.clone(),
                        reason: e.to_string(),
                    })?;
                let present = class.get("vectorConfig").and_then(Value::as_object);
                let missing = models
                    .iter()
                    .any(|m| present.is_none_or(|p| !p.contains_key(&vector_name(m))));
                if !missing {
                    return Ok(());
                }
                let mut all: Vec<String> = models.to_vec();
                if let Some(p) = present {
                    // Keep the vectors it has; their names are already sanitised.
                    all.extend(
                        p.keys()
                            .filter(|k| !models.iter().any(|m| vector_name(m) == **k))
                            .cloned(),
                    );
                }
                let mut update = self.class_definition(&all);
                update["properties"] = class.get("properties").cloned().unwrap_or(Value::Null);
                let put = format!("PUT /schema/{}", self.class);
                let (status, body) = self
                    .send(
                        &put,
                        self.request(reqwest::Method::PUT, &format!("/schema/{}", self.class))
                            .json(&update),
                    )
                    .await?;
                if status != 200 {
                    return Err(Self::unexpected(&put, status, &body));
                }
                Ok(())
            }
            _ => Err(Self::unexpected(&what, status, &body)),
        }
    }

    /// Upserts objects in one `POST /batch/objects`; per-object refusals come back in the outcome.
    pub async fn upsert(&self, objects: &[Value]) -> Result<BatchOutcome, WeaviateError> {
        let what = "POST /batch/objects";
        let (status, body) = self
            .send(
                what,
                self.request(reqwest::Method::POST, "/batch/objects")
                    .json(&json!({"objects": objects})),
            )
            .await?;
        if status != 200 {
            return Err(Self::unexpected(what, status, &body));
        }
        let results: Vec<Value> =
            serde_json::from_str(&body).map_err(|e| WeaviateError::Contract {
                what: what.to_owned(),
                reason: e.to_string(),
            })?;
        if results.len() != objects.len() {
            return Err(WeaviateError::Contract {
                what: what.to_owned(),
                reason: format!("{} results for {} objects", results.len(), objects.len()),
            });
        }
        let mut outcome = BatchOutcome::default();
        for (i, r) in results.iter().enumerate() {
            let errors: Vec<&str> = r["result"]["errors"]["error"]
                .as_array()
                .map(|e| e.iter().filter_map(|x| x["message"].as_str()).collect())
                .unwrap_or_default();
            if errors.is_empty() && r["result"]["status"] != "FAILED" {
                outcome.accepted += 1;
            } else {
                outcome.refused.push((i, errors.join("; ")));
            }
        }
        Ok(outcome)
    }

    /// An event's vector in `model`'s space (`GET /objects/{class}/{id}?include=vector`);
    /// `None` when there is no such object or it lacks that named vector.
    pub async fn vector(
        &self,
        event_id: &str,
        model: &str,
    ) -> Result<Option<Vec<f32>>, WeaviateError> {
        let path = format!("/objects/{}/{}", self.class, object_id(event_id));
        let what = format!("GET {path}");
        let (status, body) = self
            .send(
                &what,
                self.request(reqwest::Method::GET, &format!("{path}?include=vector")),
            )
            .await?;
        match status {
            404 => return Ok(None),
            200 => {}
            _ => return Err(Self::unexpected(&what, status, &body)),
        }
        let object: Value = serde_json::from_str(&body).map_err(|e| WeaviateError::Contract {
            what: what.clone(),
            reason: e.to_string(),
        })?;
        let Some(values) = object["vectors"][vector_name(model)].as_array() else {
            return Ok(None);
        };
        values
            .iter()
            .map(|x| x.as_f64().map(|x| x as f32))
            .collect::<Option<Vec<f32>>>()
            .map(Some)
            .ok_or_else(|| WeaviateError::Contract {
                what,
                reason: "a vector component that is not a number".to_owned(),
            })
    }

    /// Deletes an event's object; an object that is not there counts as deleted.
    pub async fn delete(&self, event_id: &str) -> Result<(), WeaviateError> {
        let path = format!("/objects/{}/{}", self.class, object_id(event_id));
        let what = format!("DELETE {path}");
        let (status, body) = self
            .send(&what, self.request(reqwest::Method::DELETE, &path))
            .await?;
        match status {
            204 | 404 => Ok(()),
            _ => Err(Self::unexpected(&what, status, &body)),
        }
    }
}

/// The Weaviate object for a stored event and one of its vectors.
pub fn event_object(class: &str, event: &FireEventV2, model: &str, vector: &[f32]) -> Value {
    let detection = chrono::DateTime::from_timestamp_millis(event.detection_time)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    let attrs = PointAttrs::of(event);
    json!({
        "class": class,
        "id": object_id(&event.event_id).to_string(),
        "properties": {
            "eventId": event.event_id,
            "correlationId": event.correlation_id,
            "satellite": event.source.satellite,
            "instrument": event.source.instrument,
            "confidence": event.fire_characteristics.confidence,
            "modelVersion": model,
            "detectionTime": detection,
            "latitude": event.location.latitude,
            "longitude": event.location.longitude,
            "frpMw": event.fire_characteristics.frp_mw,
            "brightnessK": event.fire_characteristics.brightness_k,
            "sourceCode": attrs.source,
            "confidenceClass": attrs.confidence,
            "incidentCode": (attrs.incident != 0).then(|| format!("{:016x}", attrs.incident)),
        },
        "vectors": { vector_name(model): vector },
    })
}

/// Drains the outbox into Weaviate until `shutdown` fires.
pub struct Mirror {
    /// The client.
    pub client: WeaviateClient,
    /// The store holding the outbox.
    pub store: Arc<Store>,
    /// Objects per batch.
    pub batch_size: usize,
    /// Longest wait between retries.
    pub max_backoff: Duration,
    /// Metrics.
    pub metrics: crate::metrics::Metrics,
}

/// First wait after a failure; doubled on each further failure up to `max_backoff`.
const MIN_BACKOFF: Duration = Duration::from_millis(200);
/// How often an empty outbox is looked at again.
const IDLE_POLL: Duration = Duration::from_millis(250);

impl Mirror {
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
                    tracing::warn!(%error, retry_in_ms = backoff.as_millis() as u64, "Weaviate mirror: batch not delivered; will retry.");
                    let wait = backoff;
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

    /// Sends one batch; returns how many outbox entries it settled.
    pub async fn step(&self, schema_for: &mut Vec<String>) -> anyhow::Result<usize> {
        let store = Arc::clone(&self.store);
        let limit = self.batch_size;
        let class = self.client.class.clone();
        let (entries, objects, missing) =
            tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
                let entries = store.outbox_batch(limit)?;
                let mut objects = Vec::with_capacity(entries.len());
                let mut missing = Vec::new();
                for (seq, model) in &entries {
                    // A read error stops the batch (retried); only a missing record is a dead letter.
                    let found = match store.vector(*seq, model)? {
                        Some(v) => store.event(&v.event_id)?.map(|e| (e, v)),
                        None => None,
                    };
                    match found {
                        Some((event, v)) => objects.push((
                            (*seq, model.clone()),
                            event_object(&class, &event, model, &v.vector),
                        )),
                        None => missing.push((*seq, model.clone())),
                    }
                }
                Ok((entries, objects, missing))
            })
            .await??;
        if entries.is_empty() {
            return Ok(0);
        }
        let mut models: Vec<String> = objects.iter().map(|((_, m), _)| m.clone()).collect();
        models.sort();
        models.dedup();
        if models.iter().any(|m| !schema_for.contains(m)) {
            self.client.ensure_schema(&models).await?;
            schema_for.extend(
                models
                    .into_iter()
                    .filter(|m| !schema_for.contains(m))
                    .collect::<Vec<_>>(),
            );
        }
        let bodies: Vec<Value> = objects.iter().map(|(_, o)| o.clone()).collect();
        let outcome = if bodies.is_empty() {
            BatchOutcome::default()
        } else {
            self.client.upsert(&bodies).await?
        };
        // Refused objects will not succeed on retry: they become dead letters with Weaviate's reason.
        let now = chrono::Utc::now().timestamp_millis();
        let mut letters: Vec<DeadLetter> = outcome
            .refused
            .iter()
            .map(|(i, reason)| DeadLetter {
                source: "weaviate-mirror".to_owned(),
                error: FieldError::new(
                    objects[*i].0.0,
                    "object",
                    format!("Weaviate refused it: {reason}"),
                ),
                raw: objects[*i].1.to_string(),
                at_ms: now,
            })
            .collect();
        letters.extend(missing.iter().map(|(seq, model)| DeadLetter {
            source: "weaviate-mirror".to_owned(),
            error: FieldError::new(
                *seq,
                "seq",
                format!("no stored {model} vector or event to mirror"),
            ),
            raw: String::new(),
            at_ms: now,
        }));
        let store = Arc::clone(&self.store);
        let settled = entries.len();
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            if !letters.is_empty() {
                store.put_dead_letters(&letters)?;
            }
            store.outbox_remove(&entries)?;
            Ok(())
        })
        .await??;
        self.metrics.mirror_sent.inc_by(outcome.accepted as u64);
        Ok(settled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_vector_names_are_valid_graphql_names() {
        assert_eq!(object_id("fd_1"), object_id("fd_1"));
        assert_ne!(object_id("fd_1"), object_id("fd_2"));
        assert_eq!(object_id("fd_1").get_version_num(), 5);
        assert_eq!(vector_name("event-encoder@1"), "event_encoder_1");
        assert_eq!(vector_name("1b@x"), "_1b_x");
    }
}

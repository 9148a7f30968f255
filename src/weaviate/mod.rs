//! Weaviate: a thin REST client of our own (this file), the mirror that drains the RocksDB
//! outbox into it (`mirror.rs`), and the gRPC query backend (`search.rs`).
//!
//! Object ids are UUIDv5 of the event id, so a batch sent twice (a lost response) overwrites
//! the same objects instead of duplicating them. Each encoder version is its own named vector
//! on the `FireEvent` collection.
//!
//! Written against Weaviate's published REST contract (OpenAPI document of v1.39.0 in
//! `../shared/weaviate/`); the tests run a stand-in that checks every request against it.

mod mirror;
pub mod proto;
mod search;

pub use mirror::{Mirror, event_object};
pub use search::{RemoteHit, WeaviateSearch, filters};

use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;

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
    /// Weaviate asked us to slow down (429) or is unavailable for now (503).
    #[error("Weaviate answered {status} to {what} (busy; retry after {retry_after:?})")]
    Busy {
        /// Request.
        what: String,
        /// HTTP status.
        status: u16,
        /// Its `Retry-After`, when it gave one in seconds.
        retry_after: Option<Duration>,
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

/// The largest answer read from Weaviate (a batch answer echoes its objects: 100 objects with
/// a few vectors each are well under 1 MiB).
const MAX_ANSWER_BYTES: usize = 16 << 20;

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
    /// A client for the Weaviate at `url` (e.g. `http://127.0.0.1:8081`, or `https://…` checked
    /// against `trust`).
    pub fn new(
        url: &str,
        class: &str,
        api_key: Option<String>,
        timeout: Duration,
        trust: &crate::tls::Trust,
    ) -> Result<Self, WeaviateError> {
        let http = trust
            .http()
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
        let mut response = builder
            .send()
            .await
            .map_err(|e| WeaviateError::Unreachable(format!("{what}: {e}")))?;
        let status = response.status().as_u16();
        if status == 429 || status == 503 {
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            return Err(WeaviateError::Busy {
                what: what.to_owned(),
                status,
                retry_after,
            });
        }
        // Read at most MAX_ANSWER_BYTES: a peer's answer does not size our allocations.
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| WeaviateError::Unreachable(format!("{what}: {e}")))?
        {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(WeaviateError::Contract {
                    what: what.to_owned(),
                    reason: format!("an answer over {MAX_ANSWER_BYTES} bytes"),
                });
            }
            body.extend_from_slice(&chunk);
        }
        let body = String::from_utf8(body).map_err(|_| WeaviateError::Contract {
            what: what.to_owned(),
            reason: "an answer that is not UTF-8".to_owned(),
        })?;
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

//! The schema registry client (Confluent REST): ids the bundle does not know resolve through it,
//! and the enriched schema is registered with it. The codec (`firesight_core::codec`) caches
//! what it answers.

use std::sync::Arc;

use apache_avro::Schema;
use serde::Deserialize;

use super::codec::{SchemaError, SchemaSource, Schemas};

/// A registry at a base URL, asked from the consumer thread by blocking on the runtime.
struct Registry {
    /// The base URL without credentials.
    url: String,
    /// Basic auth from the configured URL's userinfo (Confluent Cloud's API key and secret).
    auth: Option<crate::credentials::Basic>,
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

/// Resolving schema ids through a registry: `schemas.with_registry(url, trust, runtime)`.
pub trait WithRegistry: Sized {
    /// Resolves ids through a schema registry at `url` (`GET /schemas/ids/{id}`), caching each
    /// answer; FireSight's reader schemas stay the bundled ones.
    fn with_registry(
        self,
        url: &str,
        trust: &crate::tls::Trust,
        runtime: tokio::runtime::Handle,
    ) -> Result<Schemas, SchemaError>;
}

impl WithRegistry for Schemas {
    fn with_registry(
        self,
        url: &str,
        trust: &crate::tls::Trust,
        runtime: tokio::runtime::Handle,
    ) -> Result<Schemas, SchemaError> {
        let (url, auth) = crate::credentials::split(url)
            .map_err(|e| SchemaError::Unreachable(format!("kafka.schema_registry_url: {e}")))?;
        let client = trust
            .http()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| SchemaError::Unreachable(e.to_string()))?;
        Ok(self.with_source(Box::new(Registry {
            url,
            auth,
            client,
            runtime,
        })))
    }
}

impl SchemaSource for Registry {
    fn fetch(&self, id: u32) -> Result<Option<Arc<Schema>>, SchemaError> {
        self.runtime.block_on(self.fetch_async(id))
    }

    fn register(&self, subject: &str, schema: &str) -> Result<u32, SchemaError> {
        // The caller may be on the runtime's own thread, where blocking on it would panic.
        std::thread::scope(|scope| {
            scope
                .spawn(|| self.runtime.block_on(self.register_async(subject, schema)))
                .join()
                .unwrap_or_else(|_| {
                    Err(SchemaError::Unreachable(
                        "registration thread panicked".into(),
                    ))
                })
        })
    }
}

impl Registry {
    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.auth {
            Some(basic) => request.basic_auth(&basic.user, Some(&basic.password)),
            None => request,
        }
    }

    async fn register_async(&self, subject: &str, schema: &str) -> Result<u32, SchemaError> {
        #[derive(Deserialize)]
        struct Answer {
            id: u32,
        }
        let url = format!("{}/subjects/{subject}/versions", self.url);
        let unreachable = |e: reqwest::Error| SchemaError::Unreachable(format!("{url}: {e}"));
        let response = self
            .authorized(self.client.post(&url))
            .header("Content-Type", "application/vnd.schemaregistry.v1+json")
            .json(&serde_json::json!({ "schema": schema }))
            .send()
            .await
            .map_err(unreachable)?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(SchemaError::Unreachable(format!(
                "{url}: registering the enriched schema answered {status}: {body}"
            )));
        }
        let answer: Answer = response.json().await.map_err(unreachable)?;
        Ok(answer.id)
    }

    async fn fetch_async(&self, id: u32) -> Result<Option<Arc<Schema>>, SchemaError> {
        #[derive(Deserialize)]
        struct Answer {
            schema: String,
        }
        let url = format!("{}/schemas/ids/{id}", self.url);
        let unreachable = |e: reqwest::Error| SchemaError::Unreachable(format!("{url}: {e}"));
        let response = self
            .authorized(self.client.get(&url))
            .send()
            .await
            .map_err(unreachable)?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let response = response.error_for_status().map_err(unreachable)?;
        let answer: Answer = response.json().await.map_err(unreachable)?;
        Schema::parse_str(&answer.schema)
            .map(|s| Some(Arc::new(s)))
            .map_err(|e| SchemaError::Unreachable(format!("{url}: schema does not parse: {e}")))
    }
}

//! Typed settings: the embedded `config/default.toml`, an optional file, then `FIRESIGHT__*` env vars.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use firesight_core::windows::WindowSettings;

const DEFAULTS: &str = include_str!("../config/default.toml");

/// A setting that could not be read or does not make sense.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The layered sources could not be parsed into the settings tree.
    #[error("configuration could not be read: {0}")]
    Read(#[from] config::ConfigError),
    /// A value parsed but is out of its allowed range.
    #[error("configuration key `{key}` is invalid: {reason}")]
    Invalid {
        /// Dotted key, e.g. `index.m`.
        key: &'static str,
        /// Why the value was refused.
        reason: String,
    },
}

/// The whole settings tree.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// HTTP API.
    pub api: ApiSettings,
    /// RocksDB store.
    pub store: StoreSettings,
    /// Detection-to-weather correlation.
    pub correlate: CorrelateSettings,
    /// Event encoder.
    pub embed: EmbedSettings,
    /// Vector index.
    pub index: IndexSettings,
    /// Ingest batching.
    pub ingest: IngestSettings,
    /// Weaviate mirror.
    pub weaviate: WeaviateSettings,
    /// API keys.
    pub auth: AuthSettings,
    /// Clusters and outliers.
    pub patterns: PatternSettings,
    /// The incident tracker and its alerts.
    pub incidents: TrackerSettings,
    /// Alert delivery to HTTP receivers.
    pub webhooks: WebhookSettings,
    /// Trace export.
    pub telemetry: TelemetrySettings,
    /// Trust for HTTPS and gRPC-TLS peers.
    pub tls: TlsSettings,
    /// Natural-language search.
    pub search: SearchSettings,
    /// Kafka streaming (off while `brokers` is empty).
    pub kafka: KafkaSettings,
    /// The streaming consumer's event-time windows.
    pub windows: WindowSettings,
}

/// Kafka streaming: the input and output topics and the consumer's batching.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSettings {
    /// Bootstrap servers (`host:port,…`); empty keeps the embedded default (no Kafka).
    pub brokers: String,
    /// Consumer group; every instance of one deployment uses the same.
    pub group_id: String,
    /// Input: fire detections.
    pub detections_topic: String,
    /// Input: weather observations.
    pub weather_topic: String,
    /// Input: IoT sensor readings.
    pub sensors_topic: String,
    /// Output: one enriched `FireEventV2` per detection, keyed by event id.
    pub enriched_topic: String,
    /// Output: growth alerts.
    pub alerts_topic: String,
    /// Output: records that arrived after their window closed.
    pub late_topic: String,
    /// Output: refused records, original bytes, the reason and source in headers.
    pub dead_letter_topic: String,
    /// Output: incidents closed or merged by the session windows, keyed by incident id.
    pub incidents_topic: String,
    /// Output: closed tumbling windows per region (the active-fires view), keyed by region.
    pub active_fires_topic: String,
    /// Compacted changelog of each detections partition's window state and offset; partition
    /// `p` of it holds partition `p`'s. Needs as many partitions as the detections topic.
    /// Empty: `<group_id>-state-changelog`.
    pub changelog_topic: String,
    /// Schema registry base URL; empty resolves schema ids from `schemas/` (fixed ids).
    pub schema_registry_url: String,
    /// `avro` (Confluent-framed, schema id of `fire_event_v2`) or `json`, for the enriched topic.
    pub output_format: OutputFormat,
    /// Records larger than this are refused (to the dead-letter topic).
    pub max_record_bytes: usize,
    /// Most records processed and committed as one RocksDB batch.
    pub max_batch: usize,
    /// How long a batch waits to fill, milliseconds.
    pub linger_ms: u64,
    /// Nearest past events written into each enriched record (`similar_events`).
    pub similar_k: usize,
    /// Most seconds start-up waits for the weather and sensor tables to reach their ends
    /// before it processes detections.
    pub table_bootstrap_seconds: u64,
    /// How often the weather and sensor topics' metadata is read again, so partitions added to
    /// them (or the topics themselves, created after start) are read without a restart.
    pub table_refresh_seconds: u64,
    /// How many offsets before its stored position a partition is read again from on resume;
    /// what was applied is skipped by offset. A broker that answers a fetch from inside a
    /// producer batch with only the batches after it (tansu 0.6.0) would otherwise skip the rest
    /// of that batch. At least the producers' largest batch, in records.
    pub resume_rewind_records: u32,
    /// How long a detections partition at its end still holds back the granule it was last
    /// read in (a producer may be writing the rest of it), milliseconds. The consumer processes
    /// a granule once every partition has moved past it, so its alerts see it whole.
    pub granule_grace_ms: u64,
    /// Extra librdkafka properties for both the consumer and the producer (e.g. security).
    pub client: std::collections::BTreeMap<String, String>,
    /// Input topics that carry Debezium change events of a source database's tables.
    #[serde(default)]
    pub debezium: DebeziumSettings,
}

/// Which input topics carry Debezium change events (a source database's rows as they are
/// inserted, updated and deleted) instead of FireSight's own records, and how each table's
/// columns map onto the input it holds.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DebeziumSettings {
    /// `detections_topic` carries change events of a detections table.
    pub detections: bool,
    /// `weather_topic` carries change events of a weather table.
    pub weather: bool,
    /// `sensors_topic` carries change events of a sensor readings table.
    pub sensors: bool,
    /// The detections table: its key columns and the columns named otherwise than FIRMS does.
    pub detection_table: firesight_core::debezium::DebeziumMapping,
    /// The weather table: columns named otherwise than the weather JSON form's fields.
    pub weather_table: firesight_core::debezium::DebeziumMapping,
    /// The sensor readings table: columns named otherwise than the sensor JSON form's fields.
    pub sensor_table: firesight_core::debezium::DebeziumMapping,
}

impl KafkaSettings {
    /// Whether Kafka streaming is configured.
    pub fn enabled(&self) -> bool {
        !self.brokers.trim().is_empty()
    }

    /// Every topic FireSight reads or writes, with the setting that names it: the three inputs,
    /// the changelog, then the outputs. What a deployment must create (auto-create is off on
    /// managed clusters); docker-compose.yml's list is held to this one (tests/it/deploy.rs).
    pub fn topics(&self) -> [(&'static str, String); 10] {
        [
            ("kafka.detections_topic", self.detections_topic.clone()),
            ("kafka.weather_topic", self.weather_topic.clone()),
            ("kafka.sensors_topic", self.sensors_topic.clone()),
            ("kafka.changelog_topic", self.changelog()),
            ("kafka.enriched_topic", self.enriched_topic.clone()),
            ("kafka.alerts_topic", self.alerts_topic.clone()),
            ("kafka.incidents_topic", self.incidents_topic.clone()),
            ("kafka.active_fires_topic", self.active_fires_topic.clone()),
            ("kafka.late_topic", self.late_topic.clone()),
            ("kafka.dead_letter_topic", self.dead_letter_topic.clone()),
        ]
    }

    /// The changelog topic: `changelog_topic`, or one named after the group.
    pub fn changelog(&self) -> String {
        if self.changelog_topic.trim().is_empty() {
            format!("{}-state-changelog", self.group_id)
        } else {
            self.changelog_topic.clone()
        }
    }
}

/// Natural-language search.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchSettings {
    /// Build the search index and serve `POST /v1/search`.
    pub enabled: bool,
    /// The sentence encoder in the manifest.
    pub sentence_model: String,
    /// Longest query accepted, in bytes.
    pub max_query_bytes: usize,
    /// Index every fire event's text too (not only historical incidents).
    pub index_events: bool,
    /// How `hybrid` fuses BM25 and the vectors.
    pub fusion: FusionMethod,
    /// BM25's weight in the convex fusion, in [0, 1]; the vectors get the rest.
    pub bm25_weight: f32,
}

/// How `hybrid` search fuses its two rankers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FusionMethod {
    /// A weighted sum of min-max normalised scores (`search.bm25_weight`).
    Convex,
    /// Reciprocal rank fusion, k = 60.
    Rrf,
}

impl SearchSettings {
    /// The fusion `hybrid` uses.
    pub fn fusion(&self) -> crate::search::Fusion {
        match self.fusion {
            FusionMethod::Convex => crate::search::Fusion::Convex {
                bm25_weight: self.bm25_weight,
            },
            FusionMethod::Rrf => crate::search::Fusion::Rrf,
        }
    }
}

/// Trust for HTTPS and gRPC-TLS peers (see `tls`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// PEM file of CA certificates trusted beside the system's roots; empty: system roots only.
    pub ca_file: String,
}

/// Where traces go.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetrySettings {
    /// OTLP/HTTP collector (`http://collector:4318`); empty exports nothing.
    pub otlp_endpoint: String,
    /// `service.name` of the exported spans.
    pub service_name: String,
}

/// The incident tracker (see `tracker`): how detections link, when an incident goes quiet, and
/// when alerts are raised.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackerSettings {
    /// Track incidents at all (off only to measure what tracking costs).
    pub enabled: bool,
    /// Two detections link within this many times the sum of their pixels' half sides (their
    /// centre-to-edge reach), plus `link_buffer_km`: the rule scales with the sensor, as FIRED's
    /// is counted in pixels.
    pub link_pixels: f64,
    /// Added to the scaled pixel reach when linking two detections, km.
    pub link_buffer_km: f64,
    /// The link distance never exceeds this, km.
    pub max_link_km: f64,
    /// An incident with no detection for this long is inactive; detections further apart in
    /// time than this are not linked, days.
    pub max_inactive_days: f64,
    /// A pixel detected on this many separate UTC days (within reach in time) is a persistent
    /// hot spot, kept out of new-fire and growth alerts.
    pub persistent_min_days: u32,
    /// Growth between two overpass snapshots (detections, or area) above which a growth alert is raised.
    pub growth_threshold: f64,
    /// Fewest detections in a snapshot for it to raise a growth alert.
    pub growth_min_detections: u32,
    /// Smallest area after the snapshot for a growth alert, km².
    pub growth_min_area_km2: f64,
    /// An incident raises `new_fire` once it has a detection of at least this confidence.
    pub new_fire_min_confidence: crate::event::ConfidenceClass,
    /// `p_fire` of the fire-danger model at or above which `high_danger` is raised.
    pub high_danger_p_fire: f64,
    /// Alert on static sources (FIRMS type 1–3) and persistent hot spots too.
    pub alert_static_sources: bool,
    /// The incident model that gives each changed incident its growth outlook (a manifest name of
    /// kind `incident-predictor`, bare or `name@version`); empty for none.
    pub outlook_model: String,
}

impl TrackerSettings {
    /// `max_inactive_days` in ms.
    pub fn max_inactive_ms(&self) -> i64 {
        (self.max_inactive_days * 86_400_000.0) as i64
    }

    /// The distance within which two detections link, km, from each pixel's reach (half its
    /// larger side).
    pub fn link_km(&self, reach_a_km: f64, reach_b_km: f64) -> f64 {
        (self.link_pixels * (reach_a_km + reach_b_km) + self.link_buffer_km).min(self.max_link_km)
    }
}

/// Alert delivery to HTTP receivers: each alert the tracker logs is POSTed, signed, to every
/// target whose kinds include it, from a durable queue, with retries.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// The receivers; none by default.
    pub targets: Vec<WebhookTarget>,
    /// Attempts per alert and target before it is dead-lettered with the last error.
    pub max_attempts: u32,
    /// Wait after the first failed attempt, ms; doubled after each further failure.
    pub initial_backoff_ms: u64,
    /// Longest wait between two attempts (also caps a receiver's `Retry-After`), ms.
    pub max_backoff_ms: u64,
    /// Whole-request time limit (connect, send, answer), ms.
    pub timeout_ms: u64,
}

/// One webhook receiver.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookTarget {
    /// Unique name: the key of its queue and cursor in the store, and the metrics label.
    pub name: String,
    /// Where alerts are POSTed (`http://` or `https://`).
    pub url: String,
    /// The HMAC-SHA256 key of the `X-FireSight-Signature` header, given inline…
    #[serde(default)]
    pub secret: String,
    /// …or named as an environment variable to read it from (kept out of config files).
    #[serde(default)]
    pub secret_env: String,
    /// Alert kinds sent to it (`new_fire`, `growth`, `rule`, `high_danger`); empty: all.
    #[serde(default)]
    pub kinds: Vec<String>,
}

impl WebhookTarget {
    /// The signing key: `secret`, or the value of the variable `secret_env` names.
    pub fn signing_key(&self) -> Result<String, ConfigError> {
        let invalid = |reason: String| ConfigError::Invalid {
            key: "webhooks.targets",
            reason,
        };
        match (self.secret.is_empty(), self.secret_env.is_empty()) {
            (false, true) => Ok(self.secret.clone()),
            (true, false) => match std::env::var(&self.secret_env) {
                Ok(key) if !key.is_empty() => Ok(key),
                _ => Err(invalid(format!(
                    "target `{}`: secret_env names `{}`, which is not set or empty",
                    self.name, self.secret_env
                ))),
            },
            _ => Err(invalid(format!(
                "target `{}`: give exactly one of secret and secret_env (alerts are always signed)",
                self.name
            ))),
        }
    }
}

/// Limits and defaults of the clustering and outlier routes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatternSettings {
    /// Most events one request may analyse; a larger window is refused with the reason.
    pub max_window_events: usize,
    /// Windows up to this size get exact neighbours by a full scan; larger ones ask the index.
    pub exact_below: usize,
    /// Neighbours per event in the window's graph.
    pub neighbours: usize,
    /// Window length when `from` is not given, hours (ending at `to` or the newest detection).
    pub default_window_hours: u32,
}

/// What a key may do; each role includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Queries and listings.
    Read,
    /// Ingest.
    Write,
    /// Re-index and other operations on the running service.
    Admin,
}

impl Role {
    /// The name used in config and error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Admin => "admin",
        }
    }
}

/// API-key authentication. With no keys configured every route is open, which is only allowed
/// on a loopback address unless `allow_open` says it is meant.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// Read routes answer without a key (write and admin routes still need one).
    pub read_open: bool,
    /// Serve with no keys on a non-loopback address (a private network behind a gateway).
    pub allow_open: bool,
    /// The keys, stored as the SHA-256 of the key, never the key itself.
    pub keys: Vec<ApiKeySetting>,
}

/// One API key as configured: `firesight api-key` prints a fresh one in this shape.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeySetting {
    /// Who holds it; the only thing about a key that appears in logs.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// SHA-256 of the key, 64 hex digits.
    pub sha256: String,
}

/// Weaviate mirror settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeaviateSettings {
    /// Base URL (`http://host:8080`); empty turns the mirror off.
    pub url: String,
    /// Collection name.
    pub class: String,
    /// API key sent as a bearer token; empty sends none.
    pub api_key: String,
    /// Objects per batch request.
    pub batch_size: usize,
    /// Request timeout, milliseconds.
    pub timeout_ms: u64,
    /// Longest wait between retries while Weaviate is down, milliseconds.
    pub max_backoff_ms: u64,
    /// Times an object Weaviate refuses is sent before it becomes a dead letter.
    pub max_object_attempts: u32,
    /// gRPC endpoint for queries (`http://host:50051`); empty means `url`'s host on port 50051.
    pub grpc_url: String,
}

impl WeaviateSettings {
    /// The gRPC endpoint: `grpc_url`, or `url`'s host on Weaviate's default gRPC port, with
    /// `url`'s scheme (an `https://` Weaviate is asked over gRPC-TLS) and without its userinfo.
    pub fn grpc_endpoint(&self) -> String {
        if !self.grpc_url.is_empty() {
            return self.grpc_url.clone();
        }
        let rest = self.url.trim().trim_end_matches('/');
        let (scheme, after) = rest.split_once("://").unwrap_or(("http", rest));
        let authority = after.split('/').next().unwrap_or(after);
        let host = authority
            .rsplit_once('@')
            .map_or(authority, |(_, host)| host);
        let host = match host.rsplit_once(':') {
            Some((h, port))
                if !h.is_empty()
                    && !port.is_empty()
                    && port.bytes().all(|b| b.is_ascii_digit()) =>
            {
                h
            }
            _ => host,
        };
        let scheme = if scheme.eq_ignore_ascii_case("https") {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{host}:50051")
    }
}

/// HTTP API settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSettings {
    /// Bind address.
    pub listen: SocketAddr,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// Largest `k` for similarity queries.
    pub max_k: usize,
    /// Largest page for listings.
    pub max_page_size: usize,
    /// Longest a query may run before it is answered 503 `timeout`, milliseconds (ingest
    /// routes, bounded by their body size instead, are exempt).
    pub request_timeout_ms: u64,
    /// Origins browsers may call the API from (CORS); empty sends no CORS headers.
    pub cors_allowed_origins: Vec<String>,
    /// Longest a client may take to send a request's head (request line and headers), ms.
    pub header_read_timeout_ms: u64,
    /// Longest an ingest body may pause between two chunks, ms.
    pub body_idle_timeout_ms: u64,
    /// Most HTTP connections open at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// Longest shutdown waits for in-flight requests (SSE streams included), ms.
    pub shutdown_grace_ms: u64,
}

/// RocksDB settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSettings {
    /// Database directory.
    pub path: PathBuf,
    /// Every write returns only once it is in RocksDB's log on disk, so an acknowledged ingest
    /// (an HTTP 200, a stored Kafka offset) survives a power loss, not only a crash.
    pub sync_writes: bool,
}

/// Correlation settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorrelateSettings {
    /// Farthest station a detection may be joined with.
    pub max_station_distance_km: f64,
    /// Oldest observation a detection may be joined with, hours after it became valid (a daily
    /// summary is valid from the station's local midnight, so 24 joins the detection's own day).
    pub weather_max_age_hours: f64,
    /// Sensor readings within this distance of a detection are summarised in it (0: none).
    pub sensor_radius_km: f64,
    /// … and within this many minutes before or after it.
    pub sensor_window_minutes: u32,
}

/// Event-encoder settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbedSettings {
    /// Path of the model manifest.
    pub manifest: PathBuf,
    /// Model name inside the manifest.
    pub model: String,
    /// Path of `libonnxruntime.so`; empty means `ORT_DYLIB_PATH`, else where `scripts/setup.sh`
    /// installs it, else the system's.
    pub onnxruntime_lib: String,
    /// Rows per inference call.
    pub batch_size: usize,
    /// ONNX Runtime intra-op threads.
    pub intra_threads: usize,
    /// Predictors whose outputs go into every event's `ml_predictions` (manifest names).
    pub predictors: Vec<String>,
}

/// The build-time candidate list size of a space whose encoder's model card names none.
pub const DEFAULT_EF_CONSTRUCTION: usize = 200;

impl IndexSettings {
    /// The build-time candidate list size for a space of `embedder`: the configured one, or
    /// with 0 configured the one measured for the encoder, else the default; never below `m`.
    pub fn ef_construction_for(&self, embedder: &dyn crate::embed::Embedder) -> usize {
        let chosen = match self.ef_construction {
            0 => embedder
                .ef_construction()
                .unwrap_or(DEFAULT_EF_CONSTRUCTION),
            configured => configured,
        };
        chosen.max(self.m)
    }
}

/// Vector-index settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexSettings {
    /// Which engine holds the graph.
    pub engine: IndexEngine,
    /// Graph degree.
    pub m: usize,
    /// Build-time candidate list size; 0 takes the one measured for the encoder's space (its
    /// manifest entry's `index.ef_construction`), else [`DEFAULT_EF_CONSTRUCTION`].
    pub ef_construction: usize,
    /// Query-time candidate list size.
    pub ef_search: usize,
    /// Native engine: filtered searches expected to match at most this many points scan exactly.
    pub flat_search_cutoff: usize,
    /// Native engine: threads for bulk builds; 0 means one per core.
    pub build_threads: usize,
    /// Native engine: load the graph snapshot at start and write it at shutdown.
    pub snapshot: bool,
    /// Who answers similarity queries: `local` (this instance's index) or `weaviate`.
    pub query_backend: QueryBackend,
}

/// A setting that takes one of a few named values.
trait Choice: Sized + Copy + 'static {
    /// Each value's name in the configuration.
    const NAMES: &'static [(&'static str, Self)];
}

/// The value named `text`, or the reason it is none, listing the names.
fn choose<T: Choice>(text: &str) -> Result<T, String> {
    T::NAMES
        .iter()
        .find(|(name, _)| *name == text)
        .map(|(_, value)| *value)
        .ok_or_else(|| {
            let names: Vec<&str> = T::NAMES.iter().map(|(name, _)| *name).collect();
            format!("`{text}` is not one of {}", names.join(", "))
        })
}

/// `index.engine`: the vector-index engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum IndexEngine {
    /// FireSight's own HNSW engine (deletes, filtered search, snapshots).
    Native,
    /// The `hnsw_rs` crate, kept as a second engine and a cross-check.
    HnswRs,
}

impl Choice for IndexEngine {
    const NAMES: &'static [(&'static str, Self)] =
        &[("native", Self::Native), ("hnsw_rs", Self::HnswRs)];
}

impl TryFrom<String> for IndexEngine {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        choose(&text)
    }
}

/// `index.query_backend`: who answers similarity queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum QueryBackend {
    /// This instance's index.
    Local,
    /// Weaviate, which the mirror fills.
    Weaviate,
}

impl Choice for QueryBackend {
    const NAMES: &'static [(&'static str, Self)] =
        &[("local", Self::Local), ("weaviate", Self::Weaviate)];
}

impl TryFrom<String> for QueryBackend {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        choose(&text)
    }
}

/// `kafka.output_format`: how enriched records are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum OutputFormat {
    /// Confluent-framed Avro with the schema id of `fire_event_v2`.
    Avro,
    /// JSON.
    Json,
}

impl Choice for OutputFormat {
    const NAMES: &'static [(&'static str, Self)] = &[("avro", Self::Avro), ("json", Self::Json)];
}

impl TryFrom<String> for OutputFormat {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        choose(&text)
    }
}

/// Ingest settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestSettings {
    /// Records per pipeline batch.
    pub batch_size: usize,
    /// Detections batches of at most this many records go before bulk work at the writer lock,
    /// and bulk inputs are written in granule-aligned pieces of about this size.
    pub live_batch: usize,
    /// Live batches queued while the writer lock is busy are written together up to this many
    /// records a write (group commit); 0 writes each alone.
    pub live_group_records: usize,
}

impl Settings {
    /// Layers the defaults, an optional file and the environment, then validates.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut builder = config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml));
        if let Some(path) = file {
            builder = builder.add_source(config::File::from(path).required(true));
        }
        let env = config::Environment::with_prefix("FIRESIGHT")
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true);
        let settings: Settings = builder.add_source(env).build()?.try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    /// The defaults alone, validated; used by tests and tools.
    pub fn defaults() -> Result<Self, ConfigError> {
        let settings: Settings = config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml))
            .build()?
            .try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks ranges that the types alone cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: &str| ConfigError::Invalid {
            key,
            reason: reason.to_owned(),
        };
        if !(2..=256).contains(&self.index.m) {
            return Err(invalid("index.m", "must be between 2 and 256"));
        }
        if self.index.ef_construction != 0 && self.index.ef_construction < self.index.m {
            return Err(invalid(
                "index.ef_construction",
                "must be 0 (the encoder's own) or at least index.m",
            ));
        }
        if !(0.0..=1.0).contains(&self.search.bm25_weight) {
            return Err(invalid("search.bm25_weight", "must be within [0, 1]"));
        }
        if self.index.ef_search == 0 {
            return Err(invalid("index.ef_search", "must be positive"));
        }
        if self.index.query_backend == QueryBackend::Weaviate && self.weaviate.url.is_empty() {
            return Err(invalid(
                "index.query_backend",
                "\"weaviate\" needs weaviate.url (the mirror fills the index it queries)",
            ));
        }
        self.validate_kafka()?;
        self.validate_windows()?;
        self.validate_webhooks()?;
        let api = [
            (
                "api.header_read_timeout_ms",
                self.api.header_read_timeout_ms,
            ),
            ("api.body_idle_timeout_ms", self.api.body_idle_timeout_ms),
            ("api.max_connections", self.api.max_connections as u64),
            ("api.shutdown_grace_ms", self.api.shutdown_grace_ms),
        ];
        for (key, value) in api {
            if value == 0 {
                return Err(invalid(key, "must be positive"));
            }
        }
        let radius = self.correlate.max_station_distance_km;
        if !(radius.is_finite() && radius > 0.0) {
            return Err(invalid(
                "correlate.max_station_distance_km",
                "must be a positive number",
            ));
        }
        let age = self.correlate.weather_max_age_hours;
        if !(age.is_finite() && age > 0.0) {
            return Err(invalid(
                "correlate.weather_max_age_hours",
                "must be a positive number of hours",
            ));
        }
        let sensors = self.correlate.sensor_radius_km;
        if !(sensors.is_finite() && (0.0..=200.0).contains(&sensors)) {
            return Err(invalid(
                "correlate.sensor_radius_km",
                "must be between 0 and 200 km",
            ));
        }
        let w = &self.weaviate;
        if !(w.url.is_empty() || w.url.starts_with("http://") || w.url.starts_with("https://")) {
            return Err(invalid(
                "weaviate.url",
                "must start with http:// or https://, or be empty",
            ));
        }
        if !(w.grpc_url.is_empty() || w.grpc_url.starts_with("http://")) {
            return Err(invalid(
                "weaviate.grpc_url",
                "must start with http:// (plaintext gRPC on a private network), or be empty",
            ));
        }
        if w.url.starts_with("https://") {
            return Err(invalid(
                "weaviate.url",
                "https is not built in yet; reach Weaviate over http on a private network",
            ));
        }
        if w.batch_size == 0
            || w.timeout_ms == 0
            || w.max_backoff_ms == 0
            || w.max_object_attempts == 0
        {
            return Err(invalid(
                "weaviate",
                "batch_size, timeout_ms, max_backoff_ms and max_object_attempts must be positive",
            ));
        }
        if self.ingest.live_batch == 0 {
            return Err(invalid("ingest.live_batch", "must be positive"));
        }
        if self.embed.batch_size == 0 || self.ingest.batch_size == 0 {
            return Err(invalid("ingest.batch_size", "batch sizes must be positive"));
        }
        self.validate_auth()?;
        let t = &self.telemetry;
        if !(t.otlp_endpoint.is_empty()
            || t.otlp_endpoint.starts_with("http://")
            || t.otlp_endpoint.starts_with("https://"))
        {
            return Err(invalid(
                "telemetry.otlp_endpoint",
                "must start with http:// or https://, or be empty",
            ));
        }
        let i = &self.incidents;
        let distances = [i.link_buffer_km, i.max_link_km, i.growth_min_area_km2];
        if distances.iter().any(|d| !d.is_finite() || *d < 0.0)
            || i.max_link_km == 0.0
            || i.max_link_km > 50.0
            || !(i.link_pixels.is_finite() && i.link_pixels > 0.0 && i.link_pixels <= 10.0)
        {
            return Err(invalid(
                "incidents",
                "link_buffer_km and growth_min_area_km2 must be non-negative, max_link_km in (0, 50], \
                 link_pixels in (0, 10]",
            ));
        }
        if !(i.max_inactive_days.is_finite()
            && i.max_inactive_days > 0.0
            && i.max_inactive_days <= 365.0)
        {
            return Err(invalid(
                "incidents.max_inactive_days",
                "must be in (0, 365]",
            ));
        }
        if !(i.growth_threshold.is_finite() && i.growth_threshold > 0.0) {
            return Err(invalid("incidents.growth_threshold", "must be positive"));
        }
        if !(0.0..=1.0).contains(&i.high_danger_p_fire) {
            return Err(invalid(
                "incidents.high_danger_p_fire",
                "must be a probability in [0, 1]",
            ));
        }
        if i.persistent_min_days < 2 {
            return Err(invalid(
                "incidents.persistent_min_days",
                "must be at least 2",
            ));
        }
        let p = &self.patterns;
        if p.max_window_events == 0
            || !(2..=100).contains(&p.neighbours)
            || p.default_window_hours == 0
        {
            return Err(invalid(
                "patterns",
                "max_window_events and default_window_hours must be positive, neighbours within [2, 100]",
            ));
        }
        if self.api.request_timeout_ms == 0 {
            return Err(invalid("api.request_timeout_ms", "must be positive"));
        }
        if let Some(bad) = self.api.cors_allowed_origins.iter().find(|o| {
            !(o.starts_with("http://") || o.starts_with("https://"))
                || o.ends_with('/')
                || o.contains(char::is_whitespace)
        }) {
            return Err(ConfigError::Invalid {
                key: "api.cors_allowed_origins",
                reason: format!(
                    "`{bad}` is not an origin: give scheme://host[:port], no path, no wildcard"
                ),
            });
        }
        if self.api.max_k == 0 || self.api.max_page_size == 0 || self.api.max_body_bytes == 0 {
            return Err(invalid(
                "api",
                "max_k, max_page_size and max_body_bytes must be positive",
            ));
        }
        Ok(())
    }
}

impl Settings {
    fn validate_webhooks(&self) -> Result<(), ConfigError> {
        let w = &self.webhooks;
        let invalid = |key, reason: String| ConfigError::Invalid { key, reason };
        if w.max_attempts == 0 {
            return Err(invalid("webhooks.max_attempts", "must be positive".into()));
        }
        if w.initial_backoff_ms == 0 || w.initial_backoff_ms > w.max_backoff_ms {
            return Err(invalid(
                "webhooks.initial_backoff_ms",
                "must be positive and at most webhooks.max_backoff_ms".into(),
            ));
        }
        if w.timeout_ms == 0 {
            return Err(invalid("webhooks.timeout_ms", "must be positive".into()));
        }
        let mut names = std::collections::HashSet::new();
        for t in &w.targets {
            let name_ok = !t.name.is_empty()
                && t.name.len() <= 64
                && t.name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !name_ok {
                return Err(invalid(
                    "webhooks.targets",
                    format!("name `{}` must be 1-64 letters, digits, `-` or `_`", t.name),
                ));
            }
            if !names.insert(t.name.as_str()) {
                return Err(invalid(
                    "webhooks.targets",
                    format!("name `{}` is given twice", t.name),
                ));
            }
            if !(t.url.starts_with("http://") || t.url.starts_with("https://"))
                || reqwest::Url::parse(&t.url).is_err()
            {
                return Err(invalid(
                    "webhooks.targets",
                    format!(
                        "target `{}`: url must be an http:// or https:// URL",
                        t.name
                    ),
                ));
            }
            if t.url.starts_with("https://") {
                return Err(invalid(
                    "webhooks.targets",
                    format!(
                        "target `{}`: https is not built in yet (no TLS backend); use http on a private network",
                        t.name
                    ),
                ));
            }
            t.signing_key()?;
        }
        Ok(())
    }

    fn validate_windows(&self) -> Result<(), ConfigError> {
        let w = &self.windows;
        let invalid = |key, reason: &str| ConfigError::Invalid {
            key,
            reason: reason.to_owned(),
        };
        let positive = [
            ("windows.tumble_seconds", w.tumble_seconds),
            ("windows.idle_close_seconds", w.idle_close_seconds),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(invalid(key, "must be positive"));
            }
        }
        if !(w.region_deg.is_finite() && w.region_deg > 0.0 && w.region_deg <= 90.0) {
            return Err(invalid("windows.region_deg", "must be in (0, 90]"));
        }
        Ok(())
    }

    fn validate_kafka(&self) -> Result<(), ConfigError> {
        let kafka = &self.kafka;
        let invalid = |key, reason: &str| ConfigError::Invalid {
            key,
            reason: reason.to_owned(),
        };
        if kafka.max_batch == 0 {
            return Err(invalid("kafka.max_batch", "must be positive"));
        }
        if kafka.max_record_bytes < 1024 {
            return Err(invalid("kafka.max_record_bytes", "must be at least 1024"));
        }
        if kafka.table_refresh_seconds == 0 {
            return Err(invalid(
                "kafka.table_refresh_seconds",
                "must be at least 1 (metadata is read from the broker each time)",
            ));
        }
        if kafka.granule_grace_ms > 600_000 {
            return Err(invalid(
                "kafka.granule_grace_ms",
                "must be at most 600000 (alerts wait that long after the input stops)",
            ));
        }
        if kafka.resume_rewind_records > 1_000_000 {
            return Err(invalid(
                "kafka.resume_rewind_records",
                "must be at most 1000000 (each resume reads that many records again)",
            ));
        }
        if !kafka.enabled() {
            return Ok(());
        }
        let topics = [
            ("kafka.detections_topic", &kafka.detections_topic),
            ("kafka.weather_topic", &kafka.weather_topic),
            ("kafka.sensors_topic", &kafka.sensors_topic),
            ("kafka.enriched_topic", &kafka.enriched_topic),
            ("kafka.alerts_topic", &kafka.alerts_topic),
            ("kafka.late_topic", &kafka.late_topic),
            ("kafka.dead_letter_topic", &kafka.dead_letter_topic),
            ("kafka.incidents_topic", &kafka.incidents_topic),
            ("kafka.active_fires_topic", &kafka.active_fires_topic),
        ];
        let mut seen = std::collections::HashSet::new();
        for (key, topic) in topics {
            if topic.trim().is_empty() {
                return Err(invalid(key, "must name a topic"));
            }
            if !seen.insert(topic.as_str()) {
                return Err(invalid(
                    key,
                    "names a topic another kafka setting already uses",
                ));
            }
        }
        if kafka.group_id.trim().is_empty() {
            return Err(invalid("kafka.group_id", "must not be empty"));
        }
        if seen.contains(kafka.changelog().as_str()) {
            return Err(invalid(
                "kafka.changelog_topic",
                "names a topic another kafka setting already uses",
            ));
        }
        Ok(())
    }

    fn validate_auth(&self) -> Result<(), ConfigError> {
        let invalid = |reason: String| ConfigError::Invalid {
            key: "auth.keys",
            reason,
        };
        let mut names = std::collections::HashSet::new();
        let mut hashes = std::collections::HashSet::new();
        for (i, key) in self.auth.keys.iter().enumerate() {
            if key.name.trim().is_empty() {
                return Err(invalid(format!("key {i} has an empty name")));
            }
            if !names.insert(key.name.as_str()) {
                return Err(invalid(format!("the name `{}` is used twice", key.name)));
            }
            if key.sha256.len() != 64 || !key.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(invalid(format!(
                    "key `{}`: sha256 must be 64 hex digits (the hash of the key, never the key)",
                    key.name
                )));
            }
            if !hashes.insert(key.sha256.to_ascii_lowercase()) {
                return Err(invalid(format!(
                    "key `{}` has the same hash as another key",
                    key.name
                )));
            }
        }
        if self.auth.keys.is_empty() && !self.api.listen.ip().is_loopback() && !self.auth.allow_open
        {
            return Err(ConfigError::Invalid {
                key: "auth.keys",
                reason: format!(
                    "no API keys, and api.listen ({}) is not a loopback address: anyone who reaches it could ingest and re-index. Add keys (`firesight api-key`), or set auth.allow_open = true if a gateway in front authenticates",
                    self.api.listen
                ),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse_and_validate() {
        let settings = Settings::defaults().expect("embedded defaults are valid");
        assert_eq!(settings.index.m, 64);
        assert_eq!(settings.api.listen.to_string(), "127.0.0.1:8080");
    }

    #[test]
    fn librdkafka_properties_keep_their_dotted_names() {
        let dir = tempfile::TempDir::new().expect("tmp");
        let path = dir.path().join("kafka.toml");
        std::fs::write(
            &path,
            "[kafka]\nbrokers = \"127.0.0.1:9092\"\n[kafka.client]\n\"session.timeout.ms\" = \"6000\"\n",
        )
        .expect("write");
        let settings = Settings::load(Some(&path)).expect("loads");
        assert_eq!(
            settings
                .kafka
                .client
                .get("session.timeout.ms")
                .map(String::as_str),
            Some("6000")
        );
        assert_eq!(settings.kafka.changelog(), "firesight-state-changelog");
    }

    #[test]
    fn the_grpc_endpoint_defaults_to_the_rest_host_on_port_50051() {
        let mut settings = Settings::defaults().expect("defaults");
        settings.weaviate.url = "http://weaviate.internal:8080/".to_owned();
        assert_eq!(
            settings.weaviate.grpc_endpoint(),
            "http://weaviate.internal:50051"
        );
        settings.weaviate.url = "http://10.0.0.5".to_owned();
        assert_eq!(settings.weaviate.grpc_endpoint(), "http://10.0.0.5:50051");
        // An HTTPS Weaviate is asked over gRPC-TLS, and credentials stay out of the endpoint.
        settings.weaviate.url = "https://user:secret@w.example".to_owned();
        assert_eq!(settings.weaviate.grpc_endpoint(), "https://w.example:50051");
        settings.weaviate.url = "https://w.example:443/".to_owned();
        assert_eq!(settings.weaviate.grpc_endpoint(), "https://w.example:50051");
        settings.weaviate.grpc_url = "http://10.0.0.6:6000".to_owned();
        assert_eq!(settings.weaviate.grpc_endpoint(), "http://10.0.0.6:6000");
    }

    #[test]
    fn the_weaviate_backend_needs_a_weaviate() {
        let mut settings = Settings::defaults().expect("defaults");
        settings.index.query_backend = QueryBackend::Weaviate;
        let err = settings.validate().expect_err("no url");
        assert!(err.to_string().contains("index.query_backend"), "{err}");
        settings.weaviate.url = "http://127.0.0.1:8081".to_owned();
        settings.validate().expect("with a url");
    }

    #[test]
    fn an_unknown_choice_is_refused_with_its_key_and_the_choices() {
        for (key, value, choices) in [
            ("index", "query_backend = \"remote\"", "weaviate"),
            ("index", "engine = \"faiss\"", "hnsw_rs"),
            ("kafka", "output_format = \"protobuf\"", "avro"),
        ] {
            let dir = tempfile::TempDir::new().expect("tempdir");
            let path = dir.path().join("bad.toml");
            std::fs::write(&path, format!("[{key}]\n{value}\n")).expect("write");
            let err = Settings::load(Some(&path)).expect_err(value).to_string();
            let field = value.split(' ').next().unwrap_or_default();
            assert!(err.contains(field), "{value}: {err}");
            assert!(err.contains(choices), "{value}: {err}");
        }
    }

    #[test]
    fn an_open_api_on_a_public_address_is_refused_unless_meant() {
        let mut settings = Settings::defaults().expect("defaults");
        settings.api.listen = "0.0.0.0:8080".parse().expect("addr");
        let err = settings.validate().expect_err("open on 0.0.0.0");
        assert!(err.to_string().contains("auth.keys"), "{err}");
        settings.auth.allow_open = true;
        settings.validate().expect("allowed on purpose");
        settings.auth.allow_open = false;
        settings.auth.keys.push(ApiKeySetting {
            name: "bot".into(),
            role: Role::Write,
            sha256: "secret-key-pasted-by-mistake".into(),
        });
        let err = settings.validate().expect_err("a key in place of its hash");
        assert!(err.to_string().contains("64 hex digits"), "{err}");
        settings.auth.keys[0].sha256 = "ab".repeat(32);
        settings.validate().expect("keys protect it");
    }

    #[test]
    fn out_of_range_degree_names_the_key() {
        let mut settings = Settings::defaults().expect("defaults");
        settings.index.m = 1000;
        let err = settings.validate().expect_err("m=1000 is refused");
        assert!(err.to_string().contains("index.m"), "{err}");
    }
}

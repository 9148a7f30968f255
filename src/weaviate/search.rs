//! Queries answered by Weaviate instead of the local index (`index.query_backend = "weaviate"`).
//!
//! Nearest neighbours go over gRPC (`weaviate.v1.Weaviate/Search` with `near_vector` on the
//! model's named vector), the way Weaviate's own clients query it since 1.23; a stored event's
//! vector, when this instance does not hold the event, comes from REST
//! (`GET /v1/objects/{class}/{id}?include=vector`). Filters are translated into Weaviate's
//! `Filters` tree over the properties the mirror writes (see [`super::event_object`]).

use std::sync::Arc;
use std::time::Duration;

use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::{Channel, Endpoint};

use super::proto::{self, Filters, Operator, TestValue};
use super::{WeaviateClient, WeaviateError, vector_name};
use crate::index::SearchFilter;

/// One neighbour as Weaviate returns it: the event id, the distance and the mirrored fields.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteHit {
    /// Event id (property `eventId`).
    pub event_id: String,
    /// Euclidean distance (Weaviate reports `l2-squared`; this is its square root, as locally).
    pub distance: f32,
    /// Detection time as Weaviate holds it (RFC 3339), when returned.
    pub detection_time: Option<String>,
    /// Latitude.
    pub latitude: Option<f64>,
    /// Longitude.
    pub longitude: Option<f64>,
    /// Satellite.
    pub satellite: Option<String>,
    /// Fire radiative power, MW.
    pub frp_mw: Option<f64>,
    /// Confidence class.
    pub confidence: Option<String>,
}

/// Nearest-neighbour queries against Weaviate.
#[derive(Clone)]
pub struct WeaviateSearch {
    endpoint: Endpoint,
    /// Made on first use, inside the runtime (a channel spawns its worker task).
    channel: Arc<tokio::sync::OnceCell<Channel>>,
    rest: WeaviateClient,
    class: String,
    api_key: Option<String>,
}

impl WeaviateSearch {
    /// A client for the gRPC endpoint `grpc_url` (e.g. `http://127.0.0.1:50051`) beside the REST
    /// client `rest`. Connects lazily: a Weaviate that is down fails queries, not start-up.
    pub fn new(
        grpc_url: &str,
        rest: WeaviateClient,
        api_key: Option<String>,
        timeout: Duration,
        trust: &crate::tls::Trust,
    ) -> Result<Self, WeaviateError> {
        let endpoint = Endpoint::from_shared(grpc_url.to_owned())
            .map_err(|e| WeaviateError::Unreachable(format!("gRPC url {grpc_url}: {e}")))?
            .timeout(timeout)
            .connect_timeout(timeout);
        let endpoint = trust
            .grpc(endpoint)
            .map_err(|e| WeaviateError::Unreachable(format!("gRPC TLS for {grpc_url}: {e}")))?;
        Ok(Self {
            endpoint,
            channel: Arc::new(tokio::sync::OnceCell::new()),
            class: rest.class.clone(),
            rest,
            api_key: api_key.filter(|k| !k.is_empty()),
        })
    }

    /// The `k` objects nearest to `vector` in `model`'s named vector that pass `filter`.
    pub async fn near_vector(
        &self,
        model: &str,
        vector: &[f32],
        k: usize,
        filter: &SearchFilter,
    ) -> Result<Vec<RemoteHit>, WeaviateError> {
        let request = Self::request(&self.class, model, vector, k, filter);
        let reply = self.search(request).await?;
        Self::hits(&reply)
    }

    /// The `Search` request for the `k` objects of `class` nearest to `vector` in `model`'s
    /// named vector that pass `filter`.
    pub fn request(
        class: &str,
        model: &str,
        vector: &[f32],
        k: usize,
        filter: &SearchFilter,
    ) -> proto::SearchRequest {
        let target = vector_name(model);
        proto::SearchRequest {
            collection: class.to_owned(),
            limit: u32::try_from(k).unwrap_or(u32::MAX),
            metadata: Some(proto::MetadataRequest {
                uuid: true,
                distance: true,
                vectors: Vec::new(),
            }),
            properties: Some(proto::PropertiesRequest {
                non_ref_properties: RETURNED.iter().map(|p| (*p).to_owned()).collect(),
                return_all_nonref_properties: false,
            }),
            filters: filters(filter),
            near_vector: Some(proto::NearVector {
                distance: None,
                targets: Some(proto::Targets {
                    target_vectors: vec![target.clone()],
                }),
                vectors: vec![proto::Vectors {
                    name: target,
                    vector_bytes: proto::pack(vector),
                    r#type: proto::VectorType::SingleFp32 as i32,
                }],
            }),
            uses_127_api: true,
            ..Default::default()
        }
    }

    /// The neighbours in a `Search` reply, nearest first as Weaviate sent them.
    pub fn hits(reply: &proto::SearchReply) -> Result<Vec<RemoteHit>, WeaviateError> {
        reply.results.iter().map(hit).collect()
    }

    /// A stored event's vector in `model`'s space, read from Weaviate; `None` when Weaviate has
    /// no object for the event or the object lacks that vector.
    pub async fn vector_of(
        &self,
        event_id: &str,
        model: &str,
    ) -> Result<Option<Vec<f32>>, WeaviateError> {
        self.rest.vector(event_id, model).await
    }

    async fn search(
        &self,
        request: proto::SearchRequest,
    ) -> Result<proto::SearchReply, WeaviateError> {
        let channel = self
            .channel
            .get_or_init(|| async { self.endpoint.connect_lazy() })
            .await
            .clone();
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready()
            .await
            .map_err(|e| WeaviateError::Unreachable(format!("gRPC Search: {e}")))?;
        let mut request = tonic::Request::new(request);
        if let Some(key) = &self.api_key {
            let value = format!("Bearer {key}")
                .parse()
                .map_err(|_| WeaviateError::Contract {
                    what: "gRPC Search".to_owned(),
                    reason: "the API key is not a valid header value".to_owned(),
                })?;
            request.metadata_mut().insert("authorization", value);
        }
        let codec = tonic_prost::ProstCodec::<proto::SearchRequest, proto::SearchReply>::default();
        grpc.unary(
            request,
            PathAndQuery::from_static(proto::SEARCH_PATH),
            codec,
        )
        .await
        .map(tonic::Response::into_inner)
        .map_err(|status| match status.code() {
            tonic::Code::Unavailable | tonic::Code::DeadlineExceeded => {
                WeaviateError::Unreachable(format!("gRPC Search: {}", status.message()))
            }
            code => WeaviateError::Status {
                what: "gRPC Search".to_owned(),
                status: code as u16,
                body: status.message().chars().take(500).collect(),
            },
        })
    }
}

/// Properties asked back with each neighbour.
const RETURNED: [&str; 7] = [
    "eventId",
    "detectionTime",
    "latitude",
    "longitude",
    "satellite",
    "frpMw",
    "confidence",
];

fn hit(result: &proto::SearchResult) -> Result<RemoteHit, WeaviateError> {
    let contract = |reason: &str| WeaviateError::Contract {
        what: "gRPC Search".to_owned(),
        reason: reason.to_owned(),
    };
    let fields = result
        .properties
        .as_ref()
        .and_then(|p| p.non_ref_props.as_ref())
        .map(|p| &p.fields)
        .ok_or_else(|| contract("a result without properties"))?;
    let text = |name: &str| match fields.get(name).and_then(|v| v.kind.as_ref()) {
        Some(proto::Kind::TextValue(s) | proto::Kind::DateValue(s)) => Some(s.clone()),
        _ => None,
    };
    let number = |name: &str| match fields.get(name).and_then(|v| v.kind.as_ref()) {
        Some(proto::Kind::NumberValue(x)) => Some(*x),
        Some(proto::Kind::IntValue(x)) => Some(*x as f64),
        _ => None,
    };
    let metadata = result
        .metadata
        .as_ref()
        .filter(|m| m.distance_present)
        .ok_or_else(|| contract("a result without its distance"))?;
    Ok(RemoteHit {
        event_id: text("eventId").ok_or_else(|| contract("a result without eventId"))?,
        distance: metadata.distance.max(0.0).sqrt(),
        detection_time: text("detectionTime"),
        latitude: number("latitude"),
        longitude: number("longitude"),
        satellite: text("satellite"),
        frp_mw: number("frpMw"),
        confidence: text("confidence"),
    })
}

fn leaf(property: &str, operator: Operator, value: TestValue) -> Filters {
    Filters {
        operator: operator as i32,
        filters: Vec::new(),
        test_value: Some(value),
        target: Some(proto::FilterTarget {
            target: Some(proto::FilterTargetKind::Property(property.to_owned())),
        }),
    }
}

fn combine(operator: Operator, mut parts: Vec<Filters>) -> Filters {
    if parts.len() == 1 {
        return parts.remove(0);
    }
    Filters {
        operator: operator as i32,
        filters: parts,
        test_value: None,
        target: None,
    }
}

fn rfc3339(unix_seconds: i64) -> String {
    chrono::DateTime::from_timestamp(unix_seconds, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The Weaviate filter equivalent to `filter`, over the mirror's properties; `None` when empty.
pub fn filters(filter: &SearchFilter) -> Option<Filters> {
    use Operator::{And, Equal, GreaterThanEqual as Gte, LessThanEqual as Lte, Or};
    let mut all = Vec::new();
    if let Some((from, to)) = filter.time {
        all.push(leaf(
            "detectionTime",
            Gte,
            TestValue::ValueText(rfc3339(from)),
        ));
        all.push(leaf(
            "detectionTime",
            Lte,
            TestValue::ValueText(rfc3339(to)),
        ));
    }
    if let Some(b) = filter.bbox {
        let number = |x: f32| TestValue::ValueNumber(f64::from(x));
        all.push(leaf("latitude", Gte, number(b.min_lat)));
        all.push(leaf("latitude", Lte, number(b.max_lat)));
        let west = leaf("longitude", Gte, number(b.min_lon));
        let east = leaf("longitude", Lte, number(b.max_lon));
        if b.min_lon <= b.max_lon {
            all.extend([west, east]);
        } else {
            all.push(combine(Or, vec![west, east]));
        }
    }
    if let Some(set) = filter.sources {
        let codes: Vec<Filters> = (0..32)
            .filter(|bit| set & (1 << bit) != 0)
            .map(|bit| leaf("sourceCode", Equal, TestValue::ValueInt(i64::from(bit))))
            .collect();
        // An empty set matches nothing; code 99 is no source's.
        all.push(if codes.is_empty() {
            leaf("sourceCode", Equal, TestValue::ValueInt(99))
        } else {
            combine(Or, codes)
        });
    }
    if let Some(code) = filter.incident {
        all.push(leaf(
            "incidentCode",
            Equal,
            TestValue::ValueText(format!("{code:016x}")),
        ));
    }
    if let Some(c) = filter.min_confidence {
        all.push(leaf(
            "confidenceClass",
            Gte,
            TestValue::ValueInt(i64::from(c)),
        ));
    }
    (!all.is_empty()).then(|| combine(And, all))
}

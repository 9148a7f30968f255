//! Weaviate as the query backend: gRPC `Search` with `near_vector`, against a stand-in.
//!
//! The stand-in answers `weaviate.v1.Weaviate/Search` the way Weaviate documents it: exact
//! nearest neighbours (`l2-squared`) over the objects the mirror posted to the REST stand-in,
//! `Filters` evaluated with Weaviate's typing rules (a `number` property takes `value_number`,
//! an `int` one `value_int`, a `date` one an RFC 3339 `value_text`), and the properties asked
//! for, typed by the collection's schema. Anything else is recorded as a violation. The
//! messages' field numbers are checked separately, byte by byte, against Weaviate's published
//! `.proto` files by a wire reader that does not use `prost`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use firesight::app::Service;
use firesight::index::{BBox, PointAttrs, SearchFilter};
use firesight::weaviate::WeaviateSearch;
use firesight::weaviate::proto::{self, Filters, Kind, Operator, TestValue};
use prost::Message;
use serde_json::Value;
use tower::ServiceExt;

use super::support::{open_async, settings, shared};
use super::weaviate::{Seen, StandIn, serve_on};

// ---------------------------------------------------------------------------------------------
// The gRPC stand-in.

#[derive(Clone)]
struct GrpcStandIn {
    seen: Arc<Mutex<Seen>>,
    api_key: Option<String>,
    /// Search requests served.
    searches: Arc<Mutex<usize>>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl tonic::server::NamedService for GrpcStandIn {
    const NAME: &'static str = "weaviate.v1.Weaviate";
}

impl tower::Service<Request<tonic::body::Body>> for GrpcStandIn {
    type Response = axum::http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<tonic::body::Body>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            if request.uri().path() != proto::SEARCH_PATH {
                let what = format!("{} is not served by the stand-in", request.uri().path());
                return Ok(tonic::Status::unimplemented(what).into_http());
            }
            let codec =
                tonic_prost::ProstCodec::<proto::SearchReply, proto::SearchRequest>::default();
            let mut grpc = tonic::server::Grpc::new(codec);
            Ok(grpc.unary(SearchHandler(this), request).await)
        })
    }
}

struct SearchHandler(GrpcStandIn);

impl tonic::server::UnaryService<proto::SearchRequest> for SearchHandler {
    type Response = proto::SearchReply;
    type Future = BoxFuture<Result<tonic::Response<proto::SearchReply>, tonic::Status>>;

    fn call(&mut self, request: tonic::Request<proto::SearchRequest>) -> Self::Future {
        let stand_in = self.0.clone();
        Box::pin(async move {
            if let Some(key) = &stand_in.api_key {
                let sent = request
                    .metadata()
                    .get("authorization")
                    .and_then(|v| v.to_str().ok());
                if sent != Some(&format!("Bearer {key}")) {
                    return Err(tonic::Status::unauthenticated("bad or missing API key"));
                }
            }
            *stand_in.searches.lock().expect("count") += 1;
            let mut seen = stand_in.seen.lock().expect("seen");
            match search(&seen, request.get_ref()) {
                Ok(reply) => Ok(tonic::Response::new(reply)),
                Err(reason) => {
                    seen.violations.push(format!("gRPC Search: {reason}"));
                    Err(tonic::Status::invalid_argument(reason))
                }
            }
        })
    }
}

/// Weaviate's answer to a near-vector search, computed exactly.
fn search(seen: &Seen, r: &proto::SearchRequest) -> Result<proto::SearchReply, String> {
    let class = seen
        .classes
        .get(&r.collection)
        .ok_or_else(|| format!("no collection {:?}", r.collection))?;
    if !r.uses_127_api {
        return Err("uses_127_api unset: the reply layout would be the pre-1.27 one".into());
    }
    if r.limit == 0 {
        return Err("limit 0 asks for Weaviate's default page, not k results".into());
    }
    let near = r.near_vector.as_ref().ok_or("no near_vector")?;
    let targets = &near.targets.as_ref().ok_or("no targets")?.target_vectors;
    let [target] = targets.as_slice() else {
        return Err(format!("one target vector expected, got {targets:?}"));
    };
    if class["vectorConfig"][target].is_null() {
        return Err(format!("the collection has no named vector {target}"));
    }
    let [vectors] = near.vectors.as_slice() else {
        return Err("one query vector expected".into());
    };
    if vectors.name != *target || vectors.r#type != proto::VectorType::SingleFp32 as i32 {
        return Err(format!(
            "query vector named {:?} of type {}",
            vectors.name, vectors.r#type
        ));
    }
    let query = proto::unpack(&vectors.vector_bytes).ok_or("vector_bytes not a whole f32s")?;
    let types: HashMap<String, String> = class["properties"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            (
                p["name"].as_str().unwrap_or_default().to_owned(),
                p["dataType"][0].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let mut scored = Vec::new();
    for object in seen.objects.values() {
        let Some(stored) = object["vectors"][target].as_array() else {
            continue;
        };
        if stored.len() != query.len() {
            return Err(format!(
                "query has {} dimensions, the stored vectors {}",
                query.len(),
                stored.len()
            ));
        }
        if let Some(f) = &r.filters
            && !eval(f, &object["properties"], &types)?
        {
            continue;
        }
        let d: f64 = stored
            .iter()
            .zip(&query)
            .map(|(s, q)| (s.as_f64().unwrap_or(f64::NAN) - f64::from(*q)).powi(2))
            .sum();
        scored.push((d, object));
    }
    scored.sort_by(|a, b| a.0.total_cmp(&b.0));
    scored.truncate(r.limit as usize);
    let wanted = r
        .properties
        .as_ref()
        .map(|p| p.non_ref_properties.clone())
        .unwrap_or_default();
    let results = scored
        .into_iter()
        .map(|(d, object)| {
            let mut fields = HashMap::new();
            for name in &wanted {
                let value = &object["properties"][name];
                let kind = match types.get(name).map(String::as_str) {
                    _ if value.is_null() => continue,
                    Some("text") => Kind::TextValue(value.as_str().unwrap_or_default().into()),
                    Some("date") => Kind::DateValue(value.as_str().unwrap_or_default().into()),
                    Some("number") => Kind::NumberValue(value.as_f64().unwrap_or(f64::NAN)),
                    Some("int") => Kind::IntValue(value.as_i64().unwrap_or_default()),
                    other => return Err(format!("property {name} of type {other:?} asked for")),
                };
                fields.insert(name.clone(), proto::Value { kind: Some(kind) });
            }
            Ok(proto::SearchResult {
                properties: Some(proto::PropertiesResult {
                    non_ref_props: Some(proto::Properties { fields }),
                }),
                metadata: Some(proto::MetadataResult {
                    id: object["id"].as_str().unwrap_or_default().to_owned(),
                    distance: d as f32,
                    distance_present: true,
                    vectors: Vec::new(),
                }),
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(proto::SearchReply { took: 0.0, results })
}

/// Evaluates a `Filters` tree on an object's properties with Weaviate's typing rules.
fn eval(f: &Filters, props: &Value, types: &HashMap<String, String>) -> Result<bool, String> {
    let op = Operator::try_from(f.operator).map_err(|_| format!("operator {}", f.operator))?;
    let parts = || f.filters.iter().map(|g| eval(g, props, types));
    match op {
        Operator::And => return parts().try_fold(true, |all, x| Ok(all & x?)),
        Operator::Or => return parts().try_fold(false, |any, x| Ok(any | x?)),
        Operator::Not => {
            let [one] = f.filters.as_slice() else {
                return Err("NOT takes one operand".into());
            };
            return Ok(!eval(one, props, types)?);
        }
        _ => {}
    }
    let Some(proto::FilterTarget {
        target: Some(proto::FilterTargetKind::Property(name)),
    }) = &f.target
    else {
        return Err("a comparison without a target property".into());
    };
    let kind = types
        .get(name)
        .ok_or_else(|| format!("filter on {name}, which the collection does not have"))?;
    let value = &props[name];
    let ordering = match (kind.as_str(), &f.test_value) {
        ("number", Some(TestValue::ValueNumber(x))) => value.as_f64().map(|v| v.total_cmp(x)),
        ("int", Some(TestValue::ValueInt(x))) => value.as_i64().map(|v| v.cmp(x)),
        ("text", Some(TestValue::ValueText(x))) => value.as_str().map(|v| v.cmp(x.as_str())),
        ("date", Some(TestValue::ValueText(x))) => {
            let parse = |s: &str| chrono::DateTime::parse_from_rfc3339(s).ok();
            let bound = parse(x).ok_or_else(|| format!("{name}: {x:?} is not RFC 3339"))?;
            value.as_str().and_then(parse).map(|v| v.cmp(&bound))
        }
        (kind, v) => {
            return Err(format!(
                "{name} is {kind}; it cannot be compared with {v:?}"
            ));
        }
    };
    let Some(ordering) = ordering else {
        return Ok(false);
    };
    use std::cmp::Ordering::{Equal, Greater, Less};
    Ok(match op {
        Operator::Equal => ordering == Equal,
        Operator::NotEqual => ordering != Equal,
        Operator::GreaterThan => ordering == Greater,
        Operator::GreaterThanEqual => ordering != Less,
        Operator::LessThan => ordering == Less,
        Operator::LessThanEqual => ordering != Greater,
        other => return Err(format!("operator {other:?} not served by the stand-in")),
    })
}

/// Serves the gRPC stand-in on an ephemeral port; returns its URL.
async fn serve_grpc(stand_in: GrpcStandIn) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(stand_in)
            .serve_with_incoming(incoming)
            .await
            .expect("gRPC stand-in");
    });
    url
}

/// Serves the gRPC stand-in over TLS (HTTP/2 by ALPN) with `server`'s certificate; its URL.
async fn serve_grpc_tls(stand_in: GrpcStandIn, mut server: rustls::ServerConfig) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("https://{}", listener.local_addr().expect("addr"));
    server.alpn_protocols = vec![b"h2".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    // One handshake at a time is plenty for a test; a refused one is skipped, not fatal.
    let incoming =
        futures_util::stream::unfold((listener, acceptor), |(listener, acceptor)| async move {
            loop {
                let (tcp, _) = listener.accept().await.ok()?;
                if let Ok(tls) = acceptor.accept(tcp).await {
                    return Some((Ok::<_, std::io::Error>(tls), (listener, acceptor)));
                }
            }
        });
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(stand_in)
            .serve_with_incoming(incoming)
            .await
            .expect("gRPC stand-in over TLS");
    });
    url
}

// ---------------------------------------------------------------------------------------------
// A protobuf wire reader of its own, to hold the messages to the published field numbers.

#[derive(Debug)]
enum Wire {
    Varint(u64),
    /// Eight bytes, skipped.
    Fixed64,
    Bytes(Vec<u8>),
    /// Four bytes, skipped.
    Fixed32,
}

fn varint(bytes: &[u8], at: &mut usize) -> u64 {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let b = bytes[*at];
        *at += 1;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            break;
        }
    }
    value
}

/// Field number → values, in order.
fn fields(bytes: &[u8]) -> HashMap<u64, Vec<Wire>> {
    let mut out: HashMap<u64, Vec<Wire>> = HashMap::new();
    let mut at = 0;
    while at < bytes.len() {
        let key = varint(bytes, &mut at);
        let value = match key & 7 {
            0 => Wire::Varint(varint(bytes, &mut at)),
            1 => {
                at += 8;
                Wire::Fixed64
            }
            2 => {
                let len = varint(bytes, &mut at) as usize;
                at += len;
                Wire::Bytes(bytes[at - len..at].to_vec())
            }
            5 => {
                at += 4;
                Wire::Fixed32
            }
            t => panic!("wire type {t} is not proto3's"),
        };
        out.entry(key >> 3).or_default().push(value);
    }
    out
}

fn one(f: &HashMap<u64, Vec<Wire>>, n: u64) -> &Wire {
    match f.get(&n).map(Vec::as_slice) {
        Some([v]) => v,
        other => panic!("field {n}: expected once, got {other:?}"),
    }
}

fn bytes_of(w: &Wire) -> &[u8] {
    match w {
        Wire::Bytes(b) => b,
        other => panic!("length-delimited expected, got {other:?}"),
    }
}

fn text_of(w: &Wire) -> String {
    String::from_utf8(bytes_of(w).to_vec()).expect("utf-8")
}

#[test]
fn the_search_request_uses_weaviates_field_numbers() {
    let filter = SearchFilter {
        min_confidence: Some(1),
        ..SearchFilter::default()
    };
    let request = WeaviateSearch::request("FireEvent", "event-encoder@1", &[1.0, -2.0], 7, &filter);
    let top = fields(&request.encode_to_vec());
    // search_get.proto: collection = 1, limit = 30, uses_127_api = 102.
    assert_eq!(text_of(one(&top, 1)), "FireEvent");
    assert!(matches!(one(&top, 30), Wire::Varint(7)));
    assert!(matches!(one(&top, 102), Wire::Varint(1)));
    // metadata = 21: uuid = 1, distance = 5.
    let metadata = fields(bytes_of(one(&top, 21)));
    assert!(matches!(one(&metadata, 1), Wire::Varint(1)));
    assert!(matches!(one(&metadata, 5), Wire::Varint(1)));
    // properties = 20: non_ref_properties = 1 (repeated string).
    let properties = fields(bytes_of(one(&top, 20)));
    assert!(properties[&1].iter().any(|p| text_of(p) == "eventId"));
    // near_vector = 43 (base_search.proto): targets = 6 { target_vectors = 1 }, vectors = 9.
    let near = fields(bytes_of(one(&top, 43)));
    let targets = fields(bytes_of(one(&near, 6)));
    assert_eq!(text_of(one(&targets, 1)), "event_encoder_1");
    // base.proto Vectors: name = 1, vector_bytes = 3 (little-endian f32), type = 4 (1 = fp32).
    let vectors = fields(bytes_of(one(&near, 9)));
    assert_eq!(text_of(one(&vectors, 1)), "event_encoder_1");
    let packed: Vec<u8> = [1.0f32, -2.0]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    assert_eq!(bytes_of(one(&vectors, 3)), packed.as_slice());
    assert!(matches!(one(&vectors, 4), Wire::Varint(1)));
    // filters = 40 (base.proto Filters): operator = 1 (4 = GREATER_THAN_EQUAL), value_int = 5,
    // target = 20 { property = 1 }.
    let filters = fields(bytes_of(one(&top, 40)));
    assert!(matches!(one(&filters, 1), Wire::Varint(4)));
    assert!(matches!(one(&filters, 5), Wire::Varint(1)));
    let target = fields(bytes_of(one(&filters, 20)));
    assert_eq!(text_of(one(&target, 1)), "confidenceClass");
}

/// Appends a protobuf key and length-delimited payload.
fn put(out: &mut Vec<u8>, field: u32, payload: &[u8]) {
    out.extend(wire::key(field, 2));
    prost::encoding::encode_varint(payload.len() as u64, out);
    out.extend_from_slice(payload);
}

mod wire {
    /// A field's key: its number and wire type.
    pub fn key(field: u32, wire_type: u32) -> Vec<u8> {
        let mut out = Vec::new();
        prost::encoding::encode_varint(u64::from(field << 3 | wire_type), &mut out);
        out
    }
}

#[test]
fn a_reply_built_from_the_published_field_numbers_decodes() {
    // properties.proto Value: text_value = 13; number_value = 1 (fixed64).
    let mut event_id = Vec::new();
    put(&mut event_id, 13, b"fd_42");
    let mut frp = wire::key(1, 1);
    frp.extend(12.5f64.to_le_bytes());
    // Properties: map<string, Value> fields = 1, each entry { key = 1, value = 2 }.
    let mut props = Vec::new();
    for (name, value) in [("eventId", &event_id), ("frpMw", &frp)] {
        let mut entry = Vec::new();
        put(&mut entry, 1, name.as_bytes());
        put(&mut entry, 2, value);
        put(&mut props, 1, &entry);
    }
    // PropertiesResult: non_ref_props = 11. MetadataResult: id = 1, distance = 7 (float),
    // distance_present = 8. SearchResult: properties = 1, metadata = 2. SearchReply: results = 2.
    let mut properties_result = Vec::new();
    put(&mut properties_result, 11, &props);
    let mut metadata = Vec::new();
    put(&mut metadata, 1, b"0f0e0d0c-0000-5000-8000-000000000000");
    metadata.extend(wire::key(7, 5));
    metadata.extend(9.0f32.to_le_bytes());
    metadata.extend(wire::key(8, 0));
    metadata.push(1);
    let mut result = Vec::new();
    put(&mut result, 1, &properties_result);
    put(&mut result, 2, &metadata);
    let mut reply = Vec::new();
    put(&mut reply, 2, &result);

    let decoded = proto::SearchReply::decode(reply.as_slice()).expect("decodes");
    let hits = WeaviateSearch::hits(&decoded).expect("hits");
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].event_id, "fd_42");
    assert_eq!(hits[0].frp_mw, Some(12.5));
    assert!(
        (hits[0].distance - 3.0).abs() < 1e-6,
        "l2-squared 9 is distance 3"
    );
}

// ---------------------------------------------------------------------------------------------
// End to end: mirror to the stand-ins, then query through the API.

struct Fleet {
    _dir: tempfile::TempDir,
    service: Arc<Service>,
    rest: StandIn,
    grpc: GrpcStandIn,
}

/// A service with the US MODIS file, mirrored into the stand-ins, querying them.
async fn mirrored() -> Fleet {
    let rest = StandIn::new(Some("k-9"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let rest_url = format!("http://{}", listener.local_addr().expect("addr"));
    serve_on(listener, rest.clone()).await;
    let grpc = GrpcStandIn {
        seen: Arc::clone(&rest.seen),
        api_key: Some("k-9".to_owned()),
        searches: Arc::default(),
    };
    let grpc_url = serve_grpc(grpc.clone()).await;

    let dir = tempfile::TempDir::new().expect("tempdir");
    let mut s = settings(dir.path());
    s.weaviate.url = rest_url;
    s.weaviate.grpc_url = grpc_url;
    s.weaviate.api_key = "k-9".to_owned();
    s.index.query_backend = firesight::config::QueryBackend::Weaviate;
    let file = shared("firms/MODIS_C6_USA_contiguous_and_Hawaii_24h.2020-10-01.csv");
    let service = open_async(s, vec![file]).await;
    let mirror = service.mirror().expect("mirror").expect("configured");
    let mut schema_for = Vec::new();
    let started = Instant::now();
    while !service.store.outbox_batch(1).expect("outbox").is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "mirror stalled"
        );
        mirror.step(&mut schema_for).await.expect("mirror step");
    }
    Fleet {
        _dir: dir,
        service,
        rest,
        grpc,
    }
}

async fn get_json(app: &axum::Router, uri: &str) -> (u16, Value) {
    let response = app
        .clone()
        .oneshot(Request::get(uri).body(Body::empty()).expect("request"))
        .await
        .expect("infallible");
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    (status, serde_json::from_slice(&bytes).expect("json"))
}

fn ids(answer: &Value) -> Vec<String> {
    answer["neighbours"]
        .as_array()
        .expect("neighbours")
        .iter()
        .map(|n| n["event_id"].as_str().expect("id").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weaviate_answers_similar_queries_like_the_local_index_and_filters_mean_the_same() {
    let fleet = mirrored().await;
    let remote_app = firesight::api::router(fleet.service.api_state());
    let mut local_state = fleet.service.api_state();
    local_state.remote = None;
    let local_app = firesight::api::router(local_state);

    // The same queries through both backends: Weaviate's (exact, in the stand-in) answers and
    // the local HNSW's must agree on nearly every neighbour.
    let page = fleet
        .service
        .store
        .list_events(i64::MIN, i64::MAX, None, 400)
        .expect("page");
    let sample: Vec<String> = page
        .events
        .iter()
        .step_by(8)
        .map(|e| e.event_id.clone())
        .collect();
    assert!(sample.len() >= 50, "{}", sample.len());
    let (mut agree, mut total) = (0usize, 0usize);
    for id in &sample {
        let uri = format!("/v1/fires/{id}/similar?k=10");
        let (status, remote) = get_json(&remote_app, &uri).await;
        assert_eq!(status, 200, "{remote}");
        let (_, local) = get_json(&local_app, &uri).await;
        let (r, l) = (ids(&remote), ids(&local));
        assert_eq!(r.len(), 10);
        assert!(!r.contains(id), "the query event is left out");
        let distances: Vec<f64> = remote["neighbours"]
            .as_array()
            .expect("n")
            .iter()
            .map(|n| n["distance"].as_f64().expect("d"))
            .collect();
        assert!(distances.windows(2).all(|w| w[0] <= w[1]), "{distances:?}");
        assert!(
            remote["neighbours"][0]["summary"]["weather_station"].is_string()
                || remote["neighbours"][0]["summary"]["satellite"].is_string()
        );
        agree += r.iter().filter(|x| l.contains(x)).count();
        total += r.len();
    }
    let overlap = agree as f64 / total as f64;
    assert!(overlap >= 0.95, "local and Weaviate agree on {overlap:.3}");
    // The route's filter parameters reach Weaviate as the same filter.
    let (mut agree, mut total) = (0usize, 0usize);
    for id in sample.iter().take(10) {
        let uri = format!("/v1/fires/{id}/similar?k=10&source=terra&min_confidence=nominal");
        let (status, remote) = get_json(&remote_app, &uri).await;
        assert_eq!(status, 200, "{remote}");
        let (_, local) = get_json(&local_app, &uri).await;
        for n in remote["neighbours"].as_array().expect("n") {
            assert_eq!(n["summary"]["satellite"], "Terra", "{n}");
            assert_ne!(n["summary"]["confidence"], "low", "{n}");
        }
        let (r, l) = (ids(&remote), ids(&local));
        agree += r.iter().filter(|x| l.contains(x)).count();
        total += l.len();
    }
    assert!(
        total > 0 && agree as f64 >= 0.95 * total as f64,
        "{agree} of {total}"
    );
    assert!(*fleet.grpc.searches.lock().expect("n") >= sample.len());

    // A filtered query: every hit passes, and the local index finds the same events.
    let search = fleet.service.remote.clone().expect("remote backend");
    let model = fleet.service.embedder().model_version().to_owned();
    let times: Vec<i64> = page
        .events
        .iter()
        .map(|e| e.detection_time / 1000)
        .collect();
    let (t0, t1) = (
        *times.iter().min().expect("t"),
        *times.iter().max().expect("t"),
    );
    let filter = SearchFilter {
        time: Some((t0, t0 + (t1 - t0) / 2)),
        bbox: Some(BBox {
            min_lon: -125.0,
            min_lat: 32.0,
            max_lon: -100.0,
            max_lat: 49.0,
        }),
        sources: Some(1 << PointAttrs::source_code("Aqua")),
        incident: None,
        min_confidence: Some(1),
    };
    let index = fleet.service.index();
    let (mut found, mut expected) = (0usize, 0usize);
    for event in page.events.iter().step_by(40) {
        let seq = fleet
            .service
            .store
            .seq_of(&event.event_id)
            .expect("seq")
            .expect("stored");
        let vector = fleet
            .service
            .store
            .vector(seq, &model)
            .expect("v")
            .expect("v")
            .vector;
        let hits = search
            .near_vector(&model, &vector, 10, &filter)
            .await
            .expect("search");
        for hit in &hits {
            let stored = fleet
                .service
                .store
                .event(&hit.event_id)
                .expect("e")
                .expect("held");
            assert!(
                filter.matches(&PointAttrs::of(&stored)),
                "{} fails the filter",
                hit.event_id
            );
        }
        let local = index
            .search_filtered(&vector, 10, Some(&filter))
            .expect("local");
        let local_ids: Vec<String> = local
            .iter()
            .map(|n| {
                fleet
                    .service
                    .store
                    .vector(n.seq, &model)
                    .expect("v")
                    .expect("v")
                    .event_id
            })
            .collect();
        expected += local_ids.len();
        found += local_ids
            .iter()
            .filter(|x| hits.iter().any(|h| &&h.event_id == x))
            .count();
        assert_eq!(hits.len(), local_ids.len(), "both fill k, or both run out");
    }
    assert!(expected > 0, "the filter matches something");
    assert!(
        found as f64 >= 0.95 * expected as f64,
        "{found} of {expected}"
    );
    let seen = fleet.rest.seen.lock().expect("seen");
    assert!(
        seen.violations.is_empty(),
        "{:?}",
        &seen.violations[..seen.violations.len().min(3)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_without_the_event_asks_weaviate_for_its_vector_and_an_outage_is_a_502() {
    let fleet = mirrored().await;
    // Another instance of the fleet: its own (empty) store, the same Weaviate.
    let dir = tempfile::TempDir::new().expect("tempdir");
    let mut s = settings(dir.path());
    s.weaviate = fleet.service.settings.weaviate.clone();
    s.index.query_backend = firesight::config::QueryBackend::Weaviate;
    let other = open_async(s, Vec::new()).await;
    assert_eq!(other.store.event_count(), 0);
    let app = firesight::api::router(other.api_state());
    let page = fleet
        .service
        .store
        .list_events(i64::MIN, i64::MAX, None, 1)
        .expect("page");
    let id = &page.events[0].event_id;
    let (status, answer) = get_json(&app, &format!("/v1/fires/{id}/similar?k=5")).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(ids(&answer).len(), 5);
    let first = &answer["neighbours"][0]["summary"];
    assert!(
        first["satellite"].is_string() && first["latitude"].is_f64(),
        "{first}"
    );
    // The holder's answer is the same.
    let holder = firesight::api::router(fleet.service.api_state());
    let (_, theirs) = get_json(&holder, &format!("/v1/fires/{id}/similar?k=5")).await;
    assert_eq!(ids(&answer), ids(&theirs));

    let (status, answer) = get_json(&app, "/v1/fires/fd_nowhere/similar").await;
    assert_eq!(status, 404, "{answer}");

    // Weaviate down: a clear 502, not a hang and not a 500.
    let down_dir = tempfile::TempDir::new().expect("tempdir");
    let mut s = settings(down_dir.path());
    s.weaviate = fleet.service.settings.weaviate.clone();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("probe")
        .local_addr()
        .expect("addr")
        .port();
    s.weaviate.grpc_url = format!("http://127.0.0.1:{port}");
    s.weaviate.timeout_ms = 2000;
    s.index.query_backend = firesight::config::QueryBackend::Weaviate;
    drop(other);
    let down = open_async(s, Vec::new()).await;
    let app = firesight::api::router(down.api_state());
    let body = serde_json::json!({"k": 3, "vector": vec![0.0f32; 16]}).to_string();
    let response = app
        .oneshot(
            Request::post("/v1/similar")
                .header("content-type", "application/json")
                .body(Body::from(body))
                .expect("request"),
        )
        .await
        .expect("infallible");
    assert_eq!(response.status().as_u16(), 502);
    let seen = fleet.rest.seen.lock().expect("seen");
    assert!(seen.violations.is_empty(), "{:?}", seen.violations);
    assert!(
        seen.calls
            .iter()
            .any(|c| c == "GET /objects/{className}/{id}")
    );
}

/// gRPC-TLS to Weaviate: an instance whose `weaviate.grpc_url` is `https://` answers similarity
/// queries from the stand-in served over TLS with a private CA's certificate when `tls.ca_file`
/// names that CA, and answers 502 (the certificate refused) when it does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_reach_weaviate_over_grpc_tls_only_through_the_trusted_ca() {
    let fleet = mirrored().await;
    let pki = super::tls::pki();
    let tls_url = serve_grpc_tls(fleet.grpc.clone(), pki.server).await;
    let dir = tempfile::TempDir::new().expect("tempdir");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).expect("CA file");
    let page = fleet
        .service
        .store
        .list_events(i64::MIN, i64::MAX, None, 1)
        .expect("page");
    let id = page.events[0].event_id.clone();
    let holder = firesight::api::router(fleet.service.api_state());
    let (_, local) = get_json(&holder, &format!("/v1/fires/{id}/similar?k=5")).await;
    for trusted in [true, false] {
        let store = tempfile::TempDir::new().expect("tempdir");
        let mut s = settings(store.path());
        s.weaviate = fleet.service.settings.weaviate.clone();
        s.weaviate.grpc_url = tls_url.clone();
        s.weaviate.timeout_ms = 3000;
        s.index.query_backend = firesight::config::QueryBackend::Weaviate;
        if trusted {
            s.tls.ca_file = ca.display().to_string();
        }
        let other = open_async(s, Vec::new()).await;
        let app = firesight::api::router(other.api_state());
        let (status, answer) = get_json(&app, &format!("/v1/fires/{id}/similar?k=5")).await;
        if trusted {
            assert_eq!(status, 200, "{answer}");
            assert_eq!(ids(&answer), ids(&local), "over TLS, the same neighbours");
        } else {
            assert_eq!(
                status, 502,
                "an untrusted certificate is an unreachable peer: {answer}"
            );
        }
    }
}

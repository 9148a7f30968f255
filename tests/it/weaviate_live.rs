//! Against a real Weaviate, when the `weaviate-live` feature is on:
//! `docker compose up -d weaviate && cargo test --features weaviate-live --test it weaviate_live`.
//! gRPC queries go to `FIRESIGHT_WEAVIATE_GRPC_URL` (default `http://127.0.0.1:50051`).
//! An unreachable Weaviate fails the test with that reason rather than skipping it.

use std::time::Duration;

use firesight::index::SearchFilter;
use firesight::weaviate::{WeaviateClient, WeaviateSearch, event_object, object_id};

use super::support::{open, shared};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirror_objects_round_trip_through_a_real_weaviate() {
    let url = std::env::var("FIRESIGHT_WEAVIATE_URL")
        .unwrap_or_else(|_| "http://127.0.0.1:8081".to_owned());
    let http = reqwest::Client::new();
    let ready = http.get(format!("{url}/v1/.well-known/ready")).send().await;
    assert!(
        ready.as_ref().is_ok_and(|r| r.status().is_success()),
        "no Weaviate ready at {url} (set FIRESIGHT_WEAVIATE_URL): {ready:?}"
    );
    let class = format!("FireEventTest{}", std::process::id());
    let client = WeaviateClient::new(
        &url,
        &class,
        None,
        Duration::from_secs(10),
        &firesight::tls::Trust::default(),
    )
    .expect("client");
    let dir = tempfile::TempDir::new().expect("tempdir");
    let file = shared("firms/MODIS_C6_USA_contiguous_and_Hawaii_24h.2020-10-01.csv");
    let (objects, ids, vectors) = tokio::task::spawn_blocking(move || {
        let service = open(dir.path(), &[file]);
        let model = service.embedder().model_version().to_owned();
        let mut objects = Vec::new();
        let mut ids = Vec::new();
        let mut vectors = Vec::new();
        for v in service.store.vectors().expect("vectors").take(5) {
            let v = v.expect("vector");
            let event = service
                .store
                .event(&v.event_id)
                .expect("read")
                .expect("event");
            objects.push(event_object(&class_name(), &event, &[(&model, &v.vector)]));
            ids.push(v.event_id);
            vectors.push(v.vector);
        }
        (objects, ids, vectors)
    })
    .await
    .expect("join");
    fn class_name() -> String {
        format!("FireEventTest{}", std::process::id())
    }
    client
        .ensure_schema(&["event-encoder@1".to_owned()])
        .await
        .expect("schema");
    for _ in 0..2 {
        let outcome = client.upsert(&objects).await.expect("batch");
        assert_eq!(outcome.accepted, objects.len(), "{:?}", outcome.refused);
    }
    let count: serde_json::Value = http
        .get(format!("{url}/v1/objects?class={class}&limit=100"))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(
        count["objects"].as_array().map(Vec::len),
        Some(objects.len()),
        "a replay does not duplicate"
    );
    // The query backend: gRPC near_vector finds each object first with its own vector, and REST
    // returns the stored vector.
    let grpc = std::env::var("FIRESIGHT_WEAVIATE_GRPC_URL")
        .unwrap_or_else(|_| "http://127.0.0.1:50051".to_owned());
    let search = WeaviateSearch::new(
        &grpc,
        client.clone(),
        None,
        Duration::from_secs(10),
        &firesight::tls::Trust::default(),
    )
    .expect("search client");
    for (id, vector) in ids.iter().zip(&vectors) {
        let hits = search
            .near_vector("event-encoder@1", vector, 3, &SearchFilter::default())
            .await
            .expect("near_vector");
        assert_eq!(&hits[0].event_id, id, "{hits:?}");
        assert!(hits[0].distance < 1e-3, "{hits:?}");
    }
    let stored = search
        .vector_of(&ids[0], "event-encoder@1")
        .await
        .expect("vector")
        .expect("present");
    assert_eq!(stored.len(), vectors[0].len());
    client.delete(&ids[0]).await.expect("delete");
    let gone = http
        .get(format!("{url}/v1/objects/{class}/{}", object_id(&ids[0])))
        .send()
        .await
        .expect("get");
    assert_eq!(gone.status(), 404);
    let _ = http.delete(format!("{url}/v1/schema/{class}")).send().await;
}

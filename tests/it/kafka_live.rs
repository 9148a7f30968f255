//! Against a real Kafka and schema registry, when the `kafka-live` feature is on:
//! `docker compose up -d kafka kafka-init schema-registry &&
//! cargo test --features kafka-live --test it kafka_live`.
//! The broker is `FIRESIGHT_KAFKA_LIVE_BROKERS` (default `127.0.0.1:29092`, the compose file's
//! host listener); the registry `FIRESIGHT_SCHEMA_REGISTRY_URL` (default `http://127.0.0.1:8085`;
//! set it empty to use the fixed ids of `schemas/registry.json`). Each run makes its own topics,
//! named after the process, and deletes them at the end. An unreachable broker or registry fails
//! the test with that reason rather than skipping it.

use std::time::Duration;

use firesight::event::FireDetection;
use firesight::stream::kafka::codec::{FIRE_DETECTION_ID, Schemas, WithRegistry};

use super::broker::Broker;
use super::kafka::{Replay, replay_archive};
use super::support::repo;

#[test]
fn the_archive_replays_through_a_live_kafka_with_its_schema_registry() {
    let address = std::env::var("FIRESIGHT_KAFKA_LIVE_BROKERS")
        .unwrap_or_else(|_| "127.0.0.1:29092".to_owned());
    let reachable = address.split(',').any(|server| {
        use std::net::ToSocketAddrs;
        server
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .is_some_and(|a| {
                std::net::TcpStream::connect_timeout(&a, Duration::from_secs(5)).is_ok()
            })
    });
    assert!(
        reachable,
        "no Kafka at {address} (docker compose up -d kafka, or set FIRESIGHT_KAFKA_LIVE_BROKERS)"
    );
    let registry = std::env::var("FIRESIGHT_SCHEMA_REGISTRY_URL")
        .unwrap_or_else(|_| "http://127.0.0.1:8085".to_owned());
    let broker = Broker::external(&address);
    let run = format!("firesight-live-{}", std::process::id());
    let topic = |name: &str| format!("{run}-{name}");
    let replay = Replay {
        detections: topic("detections"),
        weather: topic("weather"),
        enriched: topic("enriched"),
        group: run.clone(),
        env: vec![
            ("FIRESIGHT__KAFKA__DETECTIONS_TOPIC", topic("detections")),
            ("FIRESIGHT__KAFKA__WEATHER_TOPIC", topic("weather")),
            ("FIRESIGHT__KAFKA__SENSORS_TOPIC", topic("sensors")),
            ("FIRESIGHT__KAFKA__ENRICHED_TOPIC", topic("enriched")),
            ("FIRESIGHT__KAFKA__ALERTS_TOPIC", topic("alerts")),
            ("FIRESIGHT__KAFKA__LATE_TOPIC", topic("late")),
            ("FIRESIGHT__KAFKA__DEAD_LETTER_TOPIC", topic("dead-letters")),
            ("FIRESIGHT__KAFKA__INCIDENTS_TOPIC", topic("incidents")),
            (
                "FIRESIGHT__KAFKA__ACTIVE_FIRES_TOPIC",
                topic("active-fires"),
            ),
            ("FIRESIGHT__KAFKA__CHANGELOG_TOPIC", topic("changelog")),
            ("FIRESIGHT__KAFKA__SCHEMA_REGISTRY_URL", registry.clone()),
        ],
    };
    let partitioned = ["detections", "weather", "sensors", "changelog"];
    let single = [
        "enriched",
        "alerts",
        "late",
        "dead-letters",
        "incidents",
        "active-fires",
    ];
    for name in partitioned {
        broker.create_topic(&topic(name), 4);
    }
    for name in single {
        broker.create_topic(&topic(name), 1);
    }

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let mut schemas = Schemas::bundled().expect("schemas");
    // Detections go in as Avro, framed with the id the registry gives their schema.
    let detection_id = if registry.is_empty() {
        FIRE_DETECTION_ID
    } else {
        schemas = schemas
            .with_registry(
                &registry,
                &firesight::tls::Trust::default(),
                runtime.handle().clone(),
            )
            .expect("registry client");
        let text = std::fs::read_to_string(repo().join("schemas/fire_detection_v1.avsc"))
            .expect("schema file");
        let subject = format!("{}-value", replay.detections);
        runtime.block_on(register(&registry, &subject, &text))
    };
    let schema = schemas.fixed(FIRE_DETECTION_ID).expect("detection schema");
    let encode = |d: &FireDetection| {
        let mut json = serde_json::to_value(d).expect("json");
        json["acquired_at"] = d.acquired_at.timestamp_millis().into();
        schemas
            .encode_framed(detection_id, &schema, &json)
            .expect("encodes")
    };
    // The enriched records are read back through the registry too, by the id they carry.
    replay_archive(&broker, &replay, &schemas, &encode);

    let names: Vec<String> = partitioned
        .iter()
        .chain(&single)
        .map(|n| topic(n))
        .collect();
    broker.delete_topics(&names.iter().map(String::as_str).collect::<Vec<_>>());
}

/// Registers `schema` under `subject` (Confluent REST) and returns its id.
async fn register(registry: &str, subject: &str, schema: &str) -> u32 {
    let url = format!("{registry}/subjects/{subject}/versions");
    let response = reqwest::Client::new()
        .post(&url)
        .header("Content-Type", "application/vnd.schemaregistry.v1+json")
        .json(&serde_json::json!({ "schema": schema }))
        .send()
        .await
        .unwrap_or_else(|e| panic!("no schema registry at {registry} ({e}); set FIRESIGHT_SCHEMA_REGISTRY_URL, empty for fixed ids"));
    let answer: serde_json::Value = response.json().await.expect("registry answer");
    answer["id"]
        .as_u64()
        .and_then(|id| u32::try_from(id).ok())
        .unwrap_or_else(|| panic!("registry answered {answer} to {url}"))
}

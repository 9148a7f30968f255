//! Integration tests on real components (RocksDB, ONNX Runtime, HTTP) and the real shared data.

mod api;
mod architecture;
mod auth;
mod avro;
mod broker;
mod calfire;
mod decode;
mod deploy;
mod drills;
mod geodata;
mod golden;
mod hostile;
mod incident_paths;
mod incidents;
mod index;
mod kafka;
#[cfg(feature = "kafka-live")]
mod kafka_live;
mod map;
mod models;
mod patterns;
mod pipeline;
mod registry;
mod reindex;
mod search;
mod support;
mod telemetry;
mod tls;
mod weather_join;
mod weaviate;
mod weaviate_grpc;
#[cfg(feature = "weaviate-live")]
mod weaviate_live;
mod webdriver;
mod webhooks;

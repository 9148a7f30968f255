//! FireSight's domain records (detections, weather, sensors, the enriched `FireEventV2`), the
//! time and place arithmetic they need, the decoders of every input format, and the record
//! formats on the Kafka topics (JSON and Confluent-framed Avro; a registry plugs in). Nothing here
//! stores, embeds or talks to a network: the service re-exports it, and the fuzz targets build
//! on it alone.

pub mod codec;
pub mod debezium;
pub mod decode;
pub mod event;
pub mod filter;
pub mod fwi;
pub mod geo;
pub mod outbox_record;
pub mod params;
pub mod query;
pub mod windows;

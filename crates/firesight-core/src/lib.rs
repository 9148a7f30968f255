//! FireSight's domain records (detections, weather, sensors, the enriched `FireEventV2`), the
//! time and place arithmetic they need, and the decoders of every input format. Nothing here
//! stores, embeds or talks to a network: the service re-exports it, and the fuzz targets build
//! on it alone.

pub mod decode;
pub mod event;
pub mod geo;

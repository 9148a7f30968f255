//! The Kafka record codec on arbitrary bytes, with every bundled schema id (the first byte picks
//! the input kind; the rest is the record: JSON, or Confluent-framed Avro). Never panics, never
//! allocates past the 256 MiB limit (a tiny record claiming a huge length), and every refusal
//! names a field and a reason.
#![no_main]

use std::sync::OnceLock;

use firesight_core::codec::{Input, Refusal, Schemas};
use firesight_core::event::{FireDetection, SensorReading, WeatherObservation};
use libfuzzer_sys::fuzz_target;

fn schemas() -> &'static Schemas {
    static SCHEMAS: OnceLock<Schemas> = OnceLock::new();
    SCHEMAS.get_or_init(|| Schemas::bundled().expect("the bundled schemas parse"))
}

fn refusal_is_explained(refusal: &Refusal) {
    assert!(!refusal.field().is_empty(), "a refusal without a field");
    assert!(!refusal.reason().is_empty(), "a refusal without a reason");
}

fn decode<T: Input>(record: &[u8]) {
    if let Err(refusal) = schemas().decode::<T>(record) {
        refusal_is_explained(&refusal);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((kind, record)) = data.split_first() else {
        return;
    };
    match kind % 4 {
        0 => decode::<FireDetection>(record),
        1 => decode::<WeatherObservation>(record),
        2 => decode::<SensorReading>(record),
        _ => {
            if let Err(refusal) = schemas().decode_fire_event(record) {
                refusal_is_explained(&refusal);
            }
        }
    }
});

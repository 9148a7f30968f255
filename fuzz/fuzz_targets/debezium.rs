//! Debezium change events on arbitrary bytes: the first byte picks the input kind and where the
//! key ends, the rest is the record's key and value. Never panics, and every refusal names a
//! field and a reason.
#![no_main]

use firesight_core::codec::Refusal;
use firesight_core::debezium::{CdcRow, DebeziumMapping, decode};
use firesight_core::event::{FireDetection, SensorReading, WeatherObservation};
use libfuzzer_sys::fuzz_target;

fn run<T: CdcRow>(key: Option<&[u8]>, value: &[u8]) {
    let mapping = DebeziumMapping::default();
    if let Err(refusal) = decode::<T>(key, value, &mapping) {
        explained(&refusal);
    }
}

fn explained(refusal: &Refusal) {
    assert!(!refusal.field().is_empty(), "a refusal without a field");
    assert!(!refusal.reason().is_empty(), "a refusal without a reason");
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    // The low two bits pick the kind; the others say how long the key is (0: no key).
    let key_len = usize::from(control >> 2).min(rest.len());
    let (key, value) = rest.split_at(key_len);
    let key = (key_len > 0).then_some(key);
    match control & 3 {
        1 => run::<WeatherObservation>(key, value),
        2 => run::<SensorReading>(key, value),
        _ => run::<FireDetection>(key, value),
    }
});

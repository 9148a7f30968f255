//! The NDJSON decoder of every event kind on arbitrary bytes (the first byte picks the kind):
//! never panics, chunking does not matter.
#![no_main]

use firesight_core::decode::JsonDecoder;
use firesight_core::event::{FireDetection, SensorReading, Station, WeatherObservation};
use firesight_fuzz::chunking_does_not_matter;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((kind, rest)) = data.split_first() else {
        return;
    };
    match kind % 4 {
        0 => chunking_does_not_matter::<JsonDecoder<FireDetection>>(rest),
        1 => chunking_does_not_matter::<JsonDecoder<WeatherObservation>>(rest),
        2 => chunking_does_not_matter::<JsonDecoder<SensorReading>>(rest),
        _ => chunking_does_not_matter::<JsonDecoder<Station>>(rest),
    }
});

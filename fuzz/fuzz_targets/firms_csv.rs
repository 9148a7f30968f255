//! The FirmsDecoder CSV decoder on arbitrary bytes: never panics, chunking does not matter.
#![no_main]

use firesight_core::decode::{CsvStream, FirmsDecoder};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    firesight_fuzz::chunking_does_not_matter::<CsvStream<FirmsDecoder>>(data);
});

//! The CAL FIRE incident export decoder on arbitrary bytes: never panics, and every refusal
//! names a field.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (_incidents, refused) = firesight_core::decode::decode_calfire(data);
    for (error, _raw) in &refused {
        assert!(
            !error.field.is_empty(),
            "a refusal without a field: {error:?}"
        );
    }
});

//! Query understanding on arbitrary text (a search question is untrusted input). Never panics,
//! and the same question is always understood the same way.
#![no_main]

use firesight_core::query::understand;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let first = understand(&text);
    assert_eq!(format!("{first:?}"), format!("{:?}", understand(&text)));
});

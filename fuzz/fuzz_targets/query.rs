//! Query understanding on arbitrary text (a search question is untrusted input). Never panics,
//! and the same question is always understood the same way, whatever the data's newest day
//! ("last summer" is counted back from it), the calendar's ends included.
#![no_main]

use chrono::NaiveDate;
use firesight_core::query::{understand, understand_at};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let first = understand(&text);
    assert_eq!(format!("{first:?}"), format!("{:?}", understand(&text)));
    for end in [
        NaiveDate::from_ymd_opt(2022, 6, 28),
        Some(NaiveDate::MIN),
        Some(NaiveDate::MAX),
    ] {
        let read = understand_at(&text, end);
        if let Some(p) = &read.period {
            assert!(p.from <= p.to, "{p:?}");
        }
    }
});

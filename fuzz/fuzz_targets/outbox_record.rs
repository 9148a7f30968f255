//! The outbox record decoder on arbitrary bytes (what a damaged store could hold). Never panics,
//! never allocates by a length it has not checked against the bytes left (a 256 MiB limit
//! catches that), and whatever it accepts encodes back to a record that decodes the same.
#![no_main]

use firesight_core::outbox_record::OutRecord;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(record) = OutRecord::decode(data) {
        assert_eq!(OutRecord::decode(&record.encode()).as_ref(), Ok(&record));
    }
});

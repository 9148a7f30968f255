//! The query parameters of every route on arbitrary query strings (split on `&` and `=` as the
//! router does): the routes' parameter sets are refused naming a parameter the client gave, or
//! parsed; every parser then answers a value or a refusal, and what it answers is consistent
//! (a time filter's start is not after its end, an OGC interval is ordered).
#![no_main]

use firesight_core::filter::PointAttrs;
use firesight_core::params::{Params, ogc_bbox, ogc_datetime};
use libfuzzer_sys::fuzz_target;

const KNOWN: [&str; 12] = [
    "limit",
    "from",
    "to",
    "bbox",
    "cursor",
    "source",
    "min_confidence",
    "incident",
    "f",
    "datetime",
    "k",
    "members",
];

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let pairs: Vec<(String, String)> = text
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, value)) => (name.to_owned(), value.to_owned()),
            None => (pair.to_owned(), String::new()),
        })
        .collect();
    let params = match Params::new(pairs.clone(), &KNOWN) {
        Ok(params) => params,
        Err(e) => {
            assert!(pairs.iter().any(|(name, _)| *name == e.field), "{e}");
            return;
        }
    };
    if let Ok(limit) = params.bounded("limit", 10u32, 1, 1000) {
        assert!((1..=1000).contains(&limit));
    }
    if let Ok(k) = params.bounded("k", 0.5f64, -1e9, 1e9) {
        assert!((-1e9..=1e9).contains(&k), "{k} passed as within bounds");
    }
    let _ = params.time("from", false);
    let _ = params.time("to", true);
    let _ = params.flag("members");
    let _ = params.event_cursor();
    let _ = params.bbox();
    if let Ok(filter) = params.filter() {
        if let Some((from, to)) = filter.time {
            assert!(from <= to);
        }
        let _ = filter.matches(&PointAttrs::default());
    }
    if let Some(t) = params.text("datetime")
        && let Ok((Some(from), Some(to))) = ogc_datetime(t)
    {
        assert!(from <= to);
    }
    if let Some(b) = params.text("bbox") {
        let _ = ogc_bbox(b);
    }
});

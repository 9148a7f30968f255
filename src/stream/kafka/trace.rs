//! W3C trace context through the stream: a producer's `traceparent` (and `tracestate`) header
//! makes FireSight's span for the batch part of the producer's trace, and the enriched records
//! carry the context of the span that made them, so a trace runs from the producer through
//! FireSight into whoever reads the enriched topic. Without a collector
//! (`telemetry.otlp_endpoint`) there is no trace, and no header is read into one or written.

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use rdkafka::message::{BorrowedMessage, Headers as _, Message as _};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The headers W3C trace context uses.
const TRACE_HEADERS: [&str; 2] = ["traceparent", "tracestate"];
/// Longest header value read: a `traceparent` is 55 characters, and W3C bounds `tracestate` at
/// 32 members; anything longer is not trace context.
const MAX_VALUE: usize = 1024;
/// At most this many producers' contexts are linked from one batch's span.
const MAX_LINKS: usize = 128;

/// A record's trace-context headers, as read (bounded, UTF-8 only).
pub(super) type TraceHeaders = Vec<(&'static str, String)>;

/// The trace-context headers of `message`, if it has any.
pub(super) fn headers_of(message: &BorrowedMessage<'_>) -> TraceHeaders {
    let Some(headers) = message.headers() else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for header in headers.iter() {
        let Some(name) = TRACE_HEADERS
            .iter()
            .find(|n| header.key.eq_ignore_ascii_case(n))
        else {
            continue;
        };
        if let Some(value) = header
            .value
            .filter(|v| v.len() <= MAX_VALUE)
            .and_then(|v| std::str::from_utf8(v).ok())
        {
            found.push((*name, value.to_owned()));
        }
    }
    found
}

struct Carrier<'a>(&'a TraceHeaders);

impl Extractor for Carrier<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(key))
            .map(|(_, value)| value.as_str())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(name, _)| *name).collect()
    }
}

/// The span for one run of records: named `name`, with the record count; the child of the
/// first traced record's producer span, and linked to every traced record's (up to
/// [`MAX_LINKS`]), as OpenTelemetry's messaging conventions have a batch do.
pub(super) fn run_span<'a>(
    name: &'static str,
    records: usize,
    traces: impl Iterator<Item = &'a TraceHeaders>,
) -> tracing::Span {
    let span = tracing::info_span!("stream.run", otel.name = name, records);
    if span.is_disabled() {
        return span;
    }
    let propagator = TraceContextPropagator::new();
    let mut parented = false;
    for headers in traces.filter(|h| !h.is_empty()).take(MAX_LINKS) {
        let context = propagator.extract(&Carrier(headers));
        let producer = context.span().span_context().clone();
        if !producer.is_valid() {
            continue;
        }
        if !parented {
            // Err only when the span has already started, which it has not.
            let _ = span.set_parent(context);
            parented = true;
        }
        span.add_link(producer);
    }
    span
}

/// The current span's context as headers for an output record (none when nothing is traced).
pub(super) fn current_headers() -> Vec<(String, Vec<u8>)> {
    let mut carrier = std::collections::HashMap::new();
    TraceContextPropagator::new().inject_context(&tracing::Span::current().context(), &mut carrier);
    let mut headers: Vec<(String, Vec<u8>)> = carrier
        .into_iter()
        .map(|(name, value)| (name, value.into_bytes()))
        .collect();
    headers.sort();
    headers
}

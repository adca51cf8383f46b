//! Spans for the analyzer's unit tests.

use std::time::{Duration, UNIX_EPOCH};

use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};

/// A span of `trace` (id `id`, parent `parent`, 0 for a local root) named `name`, lasting
/// `ms` milliseconds from an arbitrary start.
pub(crate) fn span(trace: u128, id: u64, parent: u64, name: &str, ms: u64) -> SpanData {
    let start = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let parent = match parent {
        0 => SpanId::INVALID,
        p => SpanId::from_bytes(p.to_be_bytes()),
    };
    SpanData {
        span_context: SpanContext::new(
            TraceId::from_bytes(trace.to_be_bytes()),
            SpanId::from_bytes(id.to_be_bytes()),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        ),
        parent_span_id: parent,
        parent_span_is_remote: false,
        span_kind: SpanKind::Internal,
        name: name.to_string().into(),
        start_time: start,
        end_time: start + Duration::from_millis(ms),
        attributes: Vec::new(),
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status: Status::Unset,
        instrumentation_scope: Default::default(),
    }
}

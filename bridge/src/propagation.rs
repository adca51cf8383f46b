//! W3C context propagation that works whichever stack records the spans.
//!
//! With `tracing-opentelemetry` in the stack this defers to its `OpenTelemetrySpanExt`. With
//! Granular recording spans itself (`GRANULAR_SAMPLE=violations`: [`GranularSubscriber`], or
//! the span-recording layer in a registry, no OTel layer) it reads and writes the ids Granular
//! gave the span. Use it for incoming `traceparent` headers
//! ([`SpanExt::set_remote_parent_from`] on the request's headers, or
//! [`SpanExt::set_remote_parent`] on a context you extracted; before creating child spans),
//! outgoing ones ([`SpanExt::otel_context`] into the global propagator) and the trace id for
//! logs or a response header ([`SpanExt::trace_id`]).
//!
//! On a span Granular records, [`SpanExt::set_remote_parent_from`] and [`SpanExt::trace_id`]
//! build no `opentelemetry::Context`: in the demo, the global propagator's extraction (a
//! lock, a `Context` allocation, hex parsing) and the trace id through a `Context` had cost
//! ~0.3 µs a request at saturation, a fifth of what Granular's recording of its four spans
//! costs.
//!
//! Outgoing contexts of recorded spans always carry the sampled flag: every service records,
//! the decision is taken at the tail (this process's [`SourceSampler`](crate::slo::SourceSampler)
//! for its spans, the Collector's `granular` processor for the whole trace).

use opentelemetry::propagation::Extractor;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::registry::LookupSpan;

use crate::capture::spans::{OwnSpan, SpanState};
use crate::capture::subscriber::GranularSubscriber;

/// Propagation helpers on `tracing::Span`.
pub trait SpanExt {
    /// Makes the span (a local root) a child of the remote span in `cx`, e.g. extracted from an
    /// incoming `traceparent`. Call it before the span's first child is created.
    fn set_remote_parent(&self, cx: &opentelemetry::Context);

    /// Makes the span (a local root) a child of the caller that `carrier` (an incoming
    /// request's headers) names. On a span Granular records, a valid W3C `traceparent` is
    /// read directly, without the global propagator (its `tracestate` is not kept: Granular's
    /// outgoing contexts carry none). Otherwise, or without a valid `traceparent`, the global
    /// propagator extracts the context, as for [`SpanExt::set_remote_parent`]. Call it before
    /// the span's first child is created.
    fn set_remote_parent_from(&self, carrier: &dyn Extractor);

    /// The span's OpenTelemetry context, to inject into outgoing requests.
    fn otel_context(&self) -> opentelemetry::Context;

    /// The span's trace id (invalid, all zeros, when no stack gives the span one), e.g. for a
    /// response header or a log line.
    fn trace_id(&self) -> TraceId;
}

/// The (trace id, parent span id) of a W3C `traceparent` value, or `None` when it is not one
/// this version of the spec accepts: `version-traceid-parentid-flags` in lowercase hex,
/// version `ff` refused, version `00` exactly 55 characters (later versions may append
/// `-…`), trace and parent ids not all zeros.
fn parse_traceparent(value: &str) -> Option<(u128, u64)> {
    let b = value.trim().as_bytes();
    let dashes_at_place = b.len() >= 55 && b[2] == b'-' && b[35] == b'-' && b[52] == b'-';
    if !dashes_at_place {
        return None;
    }
    let version = hex(&b[..2])?;
    let tail_ok = match version {
        0 => b.len() == 55,
        0xff => false,
        _ => b.len() == 55 || b[55] == b'-',
    };
    hex(&b[53..55])?;
    // In 64-bit halves: a 128-bit accumulator doubled the cost of the 32 digits.
    let trace = u128::from(hex(&b[3..19])?) << 64 | u128::from(hex(&b[19..35])?);
    let parent = hex(&b[36..52])?;
    (tail_ok && trace != 0 && parent != 0).then_some((trace, parent))
}

/// `digits` (at most 16 lowercase hex digits) as a number.
fn hex(digits: &[u8]) -> Option<u64> {
    digits.iter().try_fold(0u64, |n, d| {
        let v = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            _ => return None,
        };
        Some(n << 4 | u64::from(v))
    })
}

/// Runs `f` on the span's Granular state when Granular records the span itself (its
/// subscriber, or its span-recording layer in a registry); `None` otherwise.
fn with_own<R>(span: &tracing::Span, f: impl FnOnce(&SpanState, &OwnSpan) -> R) -> Option<R> {
    let apply = |state: &SpanState| state.own().map(|own| f(state, own));
    span.with_subscriber(|(id, dispatch)| {
        if let Some(subscriber) = dispatch.downcast_ref::<GranularSubscriber>() {
            return subscriber.with_state(id, apply).flatten();
        }
        let registry = dispatch.downcast_ref::<tracing_subscriber::Registry>()?;
        let data = registry.span_data(id)?;
        let ext = tracing_subscriber::registry::SpanData::extensions(&data);
        apply(ext.get::<SpanState>()?)
    })
    .flatten()
}

impl SpanExt for tracing::Span {
    fn set_remote_parent(&self, cx: &opentelemetry::Context) {
        let remote = cx.span().span_context().clone();
        let handled = with_own(self, |state, own| {
            if remote.is_valid() && state.local_root {
                own.set_remote_parent(
                    u128::from_be_bytes(remote.trace_id().to_bytes()),
                    u64::from_be_bytes(remote.span_id().to_bytes()),
                );
            }
        });
        if handled.is_none() {
            let _ = OpenTelemetrySpanExt::set_parent(self, cx.clone());
        }
    }

    fn set_remote_parent_from(&self, carrier: &dyn Extractor) {
        if self.is_disabled() {
            return; // no subscriber records it: nothing to parent, nothing to parse
        }
        // Parsed only on a span Granular records: other stacks take the propagator's context.
        let own = with_own(self, |state, own| {
            let Some((trace, parent)) = carrier.get("traceparent").and_then(parse_traceparent)
            else {
                return false;
            };
            if state.local_root {
                own.set_remote_parent(trace, parent);
            }
            true
        });
        if own != Some(true) {
            let cx = opentelemetry::global::get_text_map_propagator(|p| p.extract(carrier));
            match own {
                Some(_) => self.set_remote_parent(&cx),
                None => {
                    let _ = OpenTelemetrySpanExt::set_parent(self, cx);
                }
            }
        }
    }

    fn trace_id(&self) -> TraceId {
        if self.is_disabled() {
            return TraceId::INVALID;
        }
        match with_own(self, |_, o| o.trace_id()) {
            Some(trace) => TraceId::from_bytes(trace.to_be_bytes()),
            None => OpenTelemetrySpanExt::context(self)
                .span()
                .span_context()
                .trace_id(),
        }
    }

    fn otel_context(&self) -> opentelemetry::Context {
        let own = with_own(self, |_, o| (o.trace_id(), o.span_id));
        match own {
            Some((trace, span)) => {
                opentelemetry::Context::new().with_remote_span_context(SpanContext::new(
                    TraceId::from_bytes(trace.to_be_bytes()),
                    SpanId::from_bytes(span.to_be_bytes()),
                    TraceFlags::SAMPLED,
                    true,
                    TraceState::default(),
                ))
            }
            None => OpenTelemetrySpanExt::context(self),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_traceparent;

    const TRACE: u128 = 0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736;
    const PARENT: u64 = 0x00f0_67aa_0ba9_02b7;

    #[test]
    fn traceparent_values_the_spec_accepts() {
        let ok = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(parse_traceparent(ok), Some((TRACE, PARENT)));
        assert_eq!(parse_traceparent(&format!(" {ok} ")), Some((TRACE, PARENT)));
        let later = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-what-comes";
        assert_eq!(parse_traceparent(later), Some((TRACE, PARENT)));
    }

    #[test]
    fn traceparent_values_the_spec_refuses() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
        ] {
            assert_eq!(parse_traceparent(bad), None, "{bad:?}");
        }
    }

    /// The spec's rule, written plainly: fields split on `-`, for the property below.
    fn by_the_spec(value: &str) -> Option<(u128, u64)> {
        let v = value.trim();
        let fields: Vec<&str> = v.split('-').collect();
        let lower_hex = |f: &str, n: usize| {
            f.len() == n
                && f.bytes()
                    .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        };
        if fields.len() < 4 || !(0..4).all(|i| lower_hex(fields[i], [2, 32, 16, 2][i])) {
            return None;
        }
        match fields[0] {
            "ff" => return None,
            "00" if fields.len() != 4 => return None,
            _ => {}
        }
        let trace = u128::from_str_radix(fields[1], 16).ok()?;
        let parent = u64::from_str_radix(fields[2], 16).ok()?;
        (trace != 0 && parent != 0).then_some((trace, parent))
    }

    proptest::proptest! {
        /// Any header value: no panic, and the same answer as the plain reading of the spec,
        /// on arbitrary text and on valid values with one character changed, inserted or cut.
        #[test]
        fn traceparent_parsing_agrees_with_the_spec_on_any_input(
            text in proptest::prelude::any::<String>(),
            version in "[0-9a-f]{2}",
            trace in "[0-9a-f]{32}",
            parent in "[0-9a-f]{16}",
            flags in "[0-9a-f]{2}",
            tail in "(-[0-9a-zA-Z]{0,4})?",
            at in 0usize..64,
            edit in proptest::prelude::any::<(u8, char)>(),
        ) {
            proptest::prop_assert_eq!(parse_traceparent(&text), by_the_spec(&text));
            let valid = format!("{version}-{trace}-{parent}-{flags}{tail}");
            proptest::prop_assert_eq!(parse_traceparent(&valid), by_the_spec(&valid), "{}", valid);
            let mut chars: Vec<char> = valid.chars().collect();
            let at = at.min(chars.len());
            match edit.0 % 3 {
                0 if at < chars.len() => chars[at] = edit.1,
                1 => chars.insert(at, edit.1),
                _ => chars.truncate(at),
            }
            let edited: String = chars.into_iter().collect();
            proptest::prop_assert_eq!(parse_traceparent(&edited), by_the_spec(&edited), "{}", edited);
        }
    }
}

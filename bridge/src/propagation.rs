//! W3C context propagation that works whichever stack records the spans.
//!
//! With `tracing-opentelemetry` in the stack this defers to its `OpenTelemetrySpanExt`. With
//! Granular recording spans itself (`GRANULAR_SAMPLE=violations`: [`GranularSubscriber`], or
//! the span-recording layer in a registry, no OTel layer) it reads and writes the ids Granular
//! gave the span. Use it for incoming `traceparent` headers
//! ([`SpanExt::set_remote_parent`], before creating child spans) and outgoing ones
//! ([`SpanExt::otel_context`] into the global propagator).
//!
//! Outgoing contexts of recorded spans always carry the sampled flag: every service records,
//! the decision is taken at the tail (this process's [`SourceSampler`](crate::export::source_sampling::SourceSampler)
//! for its spans, the Collector's `granular` processor for the whole trace).

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

    /// The span's OpenTelemetry context, to inject into outgoing requests.
    fn otel_context(&self) -> opentelemetry::Context;
}

/// Runs `f` on the span's Granular state when Granular records the span itself (its
/// subscriber, or its span-recording layer in a registry); `None` otherwise.
fn with_own<R>(span: &tracing::Span, f: impl FnOnce(&SpanState, &mut OwnSpan) -> R) -> Option<R> {
    let apply = |state: &SpanState| state.own().map(|mut own| f(state, &mut own));
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
                own.trace_id = u128::from_be_bytes(remote.trace_id().to_bytes());
                own.remote_parent = Some(u64::from_be_bytes(remote.span_id().to_bytes()));
            }
        });
        if handled.is_none() {
            let _ = OpenTelemetrySpanExt::set_parent(self, cx.clone());
        }
    }

    fn otel_context(&self) -> opentelemetry::Context {
        let own = with_own(self, |_, o| (o.trace_id, o.span_id));
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

//! The `tracing` layer: span lifecycles into the recorder, keyed so the analyzer can rebuild
//! the span tree and find a span by its OpenTelemetry id.
//!
//! Per-span state lives in the registry's extensions ([`SpanState`]), not in a side table.
//! A span without a local parent is the local root: it opens an execution-trace task, and
//! every span, task and blocking job started beneath it joins that task.
//!
//! Two modes:
//! - [`RecorderLayer::new`], beside `tracing-opentelemetry` (which builds the OTel spans): the
//!   OTel span and trace ids are read once per span, at its first enter, through
//!   `tracing_opentelemetry::get_otel_context`. Place this layer above the OTel layer.
//! - [`RecorderLayer::recording_spans`], *instead of* `tracing-opentelemetry`: this layer gives
//!   spans their ids itself, records their fields and events into the recorder, judges each
//!   span at close and, when a local root closes, asks the [`SourceSampler`] to export the
//!   trace or not. No OpenTelemetry data is built for traces that are not exported.
//!   Propagation goes through [`crate::SpanExt`].
//!
//! With Granular off ([`switch`]) every callback returns at once: spans are left untouched.

use std::any::TypeId;
use std::sync::{Arc, OnceLock};

use opentelemetry::trace::TraceContextExt;
use tracing::dispatcher::WeakDispatch;
use tracing::span::{Attributes, Id, Record};
use tracing::{Dispatch, Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use super::otel_ext;
use super::spans::{SpanState, record_event};
use super::switch;
use crate::recorder;
use crate::recorder::codec::span_ids::{SpanIds, TraceRoot};
use crate::slo::SourceSampler;

/// Records span lifecycles into the flight recorder.
#[derive(Debug, Default)]
pub struct RecorderLayer {
    /// The subscriber this layer is part of, to look up OTel contexts.
    dispatch: OnceLock<WeakDispatch>,
    /// Set in span-recording mode.
    sampler: Option<Arc<SourceSampler>>,
}

impl RecorderLayer {
    /// The layer to use beside `tracing-opentelemetry`.
    pub fn new() -> Self {
        RecorderLayer::default()
    }

    /// The layer that records spans itself (no `tracing-opentelemetry` in the stack); `sampler`
    /// comes from [`GranularProcessor::source_sampler`](crate::GranularProcessor::source_sampler).
    pub fn recording_spans(sampler: Arc<SourceSampler>) -> Self {
        otel_ext::probe();
        RecorderLayer {
            dispatch: OnceLock::new(),
            sampler: Some(sampler),
        }
    }

    /// Records the span's OTel ids (the trace id only for local roots: descendants share it).
    fn record_otel_ids(&self, id: &Id, key: u64, local_root: bool) {
        let Some(dispatch) = self.dispatch.get().and_then(WeakDispatch::upgrade) else {
            return;
        };
        let Some(cx) = tracing_opentelemetry::get_otel_context(id, &dispatch) else {
            return;
        };
        let span = cx.span();
        let sc = span.span_context();
        if !sc.is_valid() {
            return;
        }
        let span_id = u64::from_be_bytes(sc.span_id().to_bytes());
        let root = local_root.then(|| TraceRoot {
            trace_id: u128::from_be_bytes(sc.trace_id().to_bytes()),
            remote_parent: None,
        });
        recorder::write(&SpanIds { key, span_id, root });
    }
}

impl<S> Layer<S> for RecorderLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_register_dispatch(&self, subscriber: &Dispatch) {
        let _ = self.dispatch.set(subscriber.downgrade());
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if switch::off() {
            return;
        }
        let Some(span) = ctx.span(id) else { return };
        let parent = span
            .parent()
            .and_then(|p| p.extensions().get::<SpanState>().map(SpanState::inherited));
        if let Some(state) = SpanState::open(attrs, parent, self.sampler.as_deref()) {
            span.extensions_mut().insert(state);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if switch::off() {
            return;
        }
        with_state(&ctx, id, |state, _| {
            state.record(values, self.sampler.as_deref())
        });
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if self.sampler.is_none() || switch::off() {
            return;
        }
        let key = ctx
            .event_span(event)
            .and_then(|span| span.extensions().get::<SpanState>().map(|s| s.key));
        if let Some(key) = key {
            record_event(key, event);
        }
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        if switch::off() {
            return;
        }
        let first = with_state(&ctx, id, |s, _| s.enter(0).then_some((s.key, s.local_root)));
        if let Some(Some((key, local_root))) = first {
            self.record_otel_ids(id, key, local_root);
        }
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        if switch::off() {
            return;
        }
        with_state(&ctx, id, |state, _| state.exit());
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        if switch::off() {
            return;
        }
        with_state(&ctx, &id, |state, _| state.close(self.sampler.as_deref()));
    }

    // SAFETY: a pointer to `self` is returned only for `Self`'s own type id, as the default
    // implementation does.
    unsafe fn downcast_raw(&self, id: TypeId) -> Option<*const ()> {
        if id == TypeId::of::<Self>() {
            return Some(self as *const Self as *const ());
        }
        // Recording spans, this layer stands in for tracing-opentelemetry's.
        if self.sampler.is_some() {
            otel_ext::noticed(id);
        }
        None
    }
}

/// Runs `f` on the span's state and its metadata name, if the span has Granular state.
fn with_state<S, R>(
    ctx: &Context<'_, S>,
    id: &Id,
    f: impl FnOnce(&SpanState, &'static str) -> R,
) -> Option<R>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let span = ctx.span(id)?;
    let ext = span.extensions();
    let state = ext.get::<SpanState>()?;
    Some(f(state, span.metadata().name()))
}

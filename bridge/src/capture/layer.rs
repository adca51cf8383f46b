//! The `tracing` layer: span lifecycles into the recorder, keyed so the analyzer can rebuild
//! the span tree and find a span by its OpenTelemetry id.
//!
//! Per-span state lives in the registry's extensions ([`SpanState`]), not in a side table.
//! A span without a local parent is the local root: it opens an execution-trace task, and
//! every span, task and blocking job started beneath it joins that task.
//!
//! The OpenTelemetry span and trace ids are read once per span, at its first enter, through
//! `tracing_opentelemetry::get_otel_context` (which builds the OTel context if needed). A
//! remote parent set with `set_parent` before the first enter is therefore honoured.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::trace::TraceContextExt;
use tracing::dispatcher::WeakDispatch;
use tracing::span::{Attributes, Id};
use tracing::{Dispatch, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use super::{alloc, context};
use crate::recorder::{self, Kind};

/// Records span lifecycles into the flight recorder.
#[derive(Debug, Default)]
pub struct RecorderLayer {
    /// The subscriber this layer is part of, to look up OTel contexts.
    dispatch: OnceLock<WeakDispatch>,
}

impl RecorderLayer {
    pub fn new() -> Self {
        RecorderLayer::default()
    }
}

/// This layer's per-span state.
#[derive(Debug)]
pub struct SpanState {
    /// The span's recorder key (see [`recorder::next_span_key`]).
    pub key: u64,
    /// Whether the span is a local root.
    pub local_root: bool,
    ids_recorded: AtomicBool,
}

impl RecorderLayer {
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
        if local_root {
            let t = u128::from_be_bytes(sc.trace_id().to_bytes());
            recorder::record_with(
                Kind::SpanIds,
                key,
                &[(span_id, 1), ((t >> 64) as u64, 0), (t as u64, 0)],
            );
        } else {
            recorder::record_with(Kind::SpanIds, key, &[(span_id, 0)]);
        }
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
        let Some(span) = ctx.span(id) else { return };
        let parent_key = span
            .parent()
            .and_then(|p| p.extensions().get::<SpanState>().map(|s| s.key))
            .unwrap_or(0);
        let key = recorder::next_span_key();
        if key == 0 {
            return;
        }
        let meta = attrs.metadata() as *const _ as u64;
        recorder::record_with(Kind::SpanNew, key, &[(meta, parent_key)]);
        span.extensions_mut().insert(SpanState {
            key,
            local_root: parent_key == 0,
            ids_recorded: AtomicBool::new(false),
        });
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let (key, local_root, first) = {
            let ext = span.extensions();
            let Some(state) = ext.get::<SpanState>() else {
                return;
            };
            let first = !state.ids_recorded.swap(true, Ordering::Relaxed);
            (state.key, state.local_root, first)
        };
        recorder::record(Kind::SpanEnter, key);
        alloc::record_counters();
        context::push_span(key);
        if first {
            self.record_otel_ids(id, key, local_root);
        }
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        if let Some(state) = span.extensions().get::<SpanState>() {
            alloc::record_counters();
            recorder::record(Kind::SpanExit, state.key);
            context::pop_span();
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        if let Some(state) = span.extensions().get::<SpanState>() {
            recorder::record(Kind::SpanClose, state.key);
        }
    }
}

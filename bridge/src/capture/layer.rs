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

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use opentelemetry::trace::TraceContextExt;
use tracing::dispatcher::WeakDispatch;
use tracing::span::{Attributes, Id, Record};
use tracing::{Dispatch, Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use super::fields::{FieldWriter, InlineStr};
use super::{alloc, context, ids};
use crate::export::source_sampling::{LocalTrace, SourceSampler};
use crate::recorder::{self, Kind};

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
        RecorderLayer {
            dispatch: OnceLock::new(),
            sampler: Some(sampler),
        }
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
    /// Span-recording mode only: the ids and judging state this layer keeps.
    pub(crate) own: Option<OwnSpan>,
}

/// A span recorded without `tracing-opentelemetry`.
#[derive(Debug)]
pub(crate) struct OwnSpan {
    pub trace_id: u128,
    pub span_id: u64,
    /// Set by [`crate::SpanExt::set_remote_parent`] on a local root.
    pub remote_parent: Option<u64>,
    /// Clock ticks at creation.
    pub start: u64,
    pub trace: Arc<LocalTrace>,
    pub error: bool,
    /// `http.route` and `otel.name`, kept inline (no allocation) for judging.
    pub route: Option<InlineStr>,
    pub name: Option<InlineStr>,
}

impl OwnSpan {
    pub fn route(&self) -> Option<&str> {
        self.route.as_ref().map(InlineStr::as_str)
    }

    /// The name the span is exported under: `otel.name` if recorded, else `default`.
    pub fn name<'a>(&'a self, default: &'a str) -> &'a str {
        self.name.as_ref().map_or(default, InlineStr::as_str)
    }

    fn absorb(&mut self, w: &FieldWriter) {
        self.error |= w.specials.error;
        self.route = w.specials.route.or(self.route);
        self.name = w.specials.name.or(self.name);
    }
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
        let trace = u128::from_be_bytes(sc.trace_id().to_bytes());
        record_ids(key, span_id, local_root.then_some((trace, None)));
    }
}

/// Writes a [`Kind::SpanIds`] record.
fn record_ids(key: u64, span_id: u64, root: Option<(u128, Option<u64>)>) {
    match root {
        None => recorder::record_with(Kind::SpanIds, key, &[(span_id, 0)]),
        Some((t, None)) => recorder::record_with(
            Kind::SpanIds,
            key,
            &[(span_id, 1), ((t >> 64) as u64, 0), (t as u64, 0)],
        ),
        Some((t, Some(parent))) => recorder::record_with(
            Kind::SpanIds,
            key,
            &[
                (span_id, 3),
                ((t >> 64) as u64, 0),
                (t as u64, 0),
                (parent, 0),
            ],
        ),
    }
}

fn record_own_ids(state: &SpanState) {
    if let Some(own) = &state.own {
        let root = state
            .local_root
            .then_some((own.trace_id, own.remote_parent));
        record_ids(state.key, own.span_id, root);
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
        let parent = span.parent().and_then(|p| {
            p.extensions().get::<SpanState>().map(|s| {
                let own = s.own.as_ref().map(|o| (o.trace_id, o.trace.clone()));
                (s.key, own)
            })
        });
        let parent_key = parent.as_ref().map_or(0, |p| p.0);
        let key = recorder::next_span_key();
        if key == 0 {
            return;
        }
        let meta = attrs.metadata() as *const _ as u64;
        recorder::record_with(Kind::SpanNew, key, &[(meta, parent_key)]);
        if self.sampler.is_none() {
            attrs.record(&mut FieldWriter::only(key, "otel.name"));
        }
        let own = self.sampler.as_ref().map(|_| {
            let (trace_id, trace) = match parent.and_then(|p| p.1) {
                Some(inherited) => inherited,
                None => (ids::trace_id(), Arc::new(LocalTrace::default())),
            };
            let mut w = FieldWriter::new(key);
            attrs.record(&mut w);
            let mut own = OwnSpan {
                trace_id,
                span_id: ids::span_id(),
                remote_parent: None,
                start: crate::clock::now(),
                trace,
                error: false,
                route: None,
                name: None,
            };
            own.absorb(&w);
            own
        });
        span.extensions_mut().insert(SpanState {
            key,
            local_root: parent_key == 0,
            ids_recorded: AtomicBool::new(false),
            own,
        });
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if self.sampler.is_none() {
            return;
        }
        let Some(span) = ctx.span(id) else { return };
        let mut ext = span.extensions_mut();
        if let Some(state) = ext.get_mut::<SpanState>() {
            let mut w = FieldWriter::new(state.key);
            values.record(&mut w);
            if let Some(own) = state.own.as_mut() {
                own.absorb(&w);
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if self.sampler.is_none() {
            return;
        }
        let Some(span) = ctx.event_span(event) else {
            return;
        };
        let Some(key) = span.extensions().get::<SpanState>().map(|s| s.key) else {
            return;
        };
        recorder::record_with(
            Kind::Event,
            key,
            &[(event.metadata() as *const _ as u64, 0)],
        );
        event.record(&mut FieldWriter::new(0));
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let (key, local_root, first) = {
            let ext = span.extensions();
            let Some(state) = ext.get::<SpanState>() else {
                return;
            };
            let first = !state.ids_recorded.swap(true, Ordering::Relaxed);
            if first && state.own.is_some() {
                record_own_ids(state);
            }
            (state.key, state.local_root, first && state.own.is_none())
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
        let ext = span.extensions();
        let Some(state) = ext.get::<SpanState>() else {
            return;
        };
        if state.own.is_some() && !state.ids_recorded.swap(true, Ordering::Relaxed) {
            record_own_ids(state);
        }
        recorder::record(Kind::SpanClose, state.key);
        if let (Some(sampler), Some(own)) = (&self.sampler, &state.own) {
            sampler.on_close(own.name(span.metadata().name()), state, own);
        }
    }
}

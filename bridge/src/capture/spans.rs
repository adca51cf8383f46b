//! Span lifecycles into the recorder: the part shared by [`RecorderLayer`](super::layer::RecorderLayer)
//! (inside a `tracing-subscriber` registry) and [`GranularSubscriber`](super::subscriber::GranularSubscriber)
//! (Granular's own subscriber), so both write the same records and the analyzer rebuilds the
//! same spans from either.
//!
//! Records per span: `SpanNew` (metadata by reference, parent key; in span-recording mode a
//! child's span id too), its fields (span-recording mode), `SpanIds` once for the others (at
//! the first enter, or at close if never entered: a local root's remote parent, or
//! `tracing-opentelemetry`'s ids, are known only then), `SpanEnter` /
//! `SpanExit` per entry with the allocation counters, `SpanClose`; and `Event` + fields for
//! events inside it.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};

use opentelemetry::trace::TraceContextExt;
use tracing::Event;
use tracing::span::{Attributes, Record};

use super::fields::FieldWriter;
use super::{alloc, context, ids};
use crate::recorder;
use crate::recorder::codec::fields::TracingEvent;
use crate::recorder::codec::span_ids::{SpanIds, TraceRoot};
use crate::recorder::codec::spans::{SpanClose, SpanEnter, SpanExit, SpanNew};
use crate::slo::SloRules;
use crate::slo::sampler::{ClosedSpan, LocalTrace, SourceSampler};

/// Granular's state of one span.
#[derive(Debug)]
pub(crate) struct SpanState {
    /// The span's recorder key (see [`recorder::next_span_key`]).
    pub key: u64,
    /// Whether the span is a local root.
    pub local_root: bool,
    ids_recorded: AtomicBool,
    /// Span-recording mode only: the ids and judging state Granular keeps.
    own: Option<OwnSpan>,
}

/// A span recorded without `tracing-opentelemetry`.
///
/// No lock: what changes after creation (the trace id and remote parent of a local root, the
/// error flag, the SLO rules matched) is held in atomics read and written with plain loads and
/// stores, so a span's lifecycle costs no locked instruction here (a mutex, locked at each
/// child's creation, the first entry, every `record` and the close, was two locked
/// instructions each time: ~10 % of a request's spans). The price: the trace id and remote
/// parent are two words apart, so a child created on another thread *while*
/// [`crate::SpanExt::set_remote_parent`] runs on its root may read half of each. That call
/// belongs before any child exists (see its docs); a child racing it joins an inconsistent
/// trace with a lock too.
#[derive(Debug)]
pub(crate) struct OwnSpan {
    trace_hi: AtomicU64,
    trace_lo: AtomicU64,
    /// The remote parent's span id (0: none; a valid span id is never 0). Set by
    /// [`crate::SpanExt::set_remote_parent`] on a local root.
    remote_parent: AtomicU64,
    pub span_id: u64,
    /// Clock ticks at creation.
    pub start: u64,
    trace: TraceHome,
    error: AtomicBool,
    /// The first SLO rules its exported name (`otel.name`, else the span's name) and its
    /// `http.route` match, by index ([`NO_RULE`]: none): matched when they are recorded, so the
    /// span keeps two small numbers rather than the strings (which made it ~130 bytes larger,
    /// moved several times a span).
    slo_on_name: AtomicU16,
    slo_on_route: AtomicU16,
}

/// No SLO rule matched (a rule list past 65,534 rules matches nothing beyond).
const NO_RULE: u16 = u16::MAX;

impl OwnSpan {
    fn new(trace_id: u128, span_id: u64, start: u64, trace: TraceHome) -> Self {
        OwnSpan {
            trace_hi: AtomicU64::new((trace_id >> 64) as u64),
            trace_lo: AtomicU64::new(trace_id as u64),
            remote_parent: AtomicU64::new(0),
            span_id,
            start,
            trace,
            error: AtomicBool::new(false),
            slo_on_name: AtomicU16::new(NO_RULE),
            slo_on_route: AtomicU16::new(NO_RULE),
        }
    }

    /// The judging state of the span's local trace.
    pub(crate) fn trace(&self) -> &LocalTrace {
        self.trace.get()
    }

    pub(crate) fn trace_id(&self) -> u128 {
        let hi = self.trace_hi.load(Ordering::Relaxed);
        u128::from(hi) << 64 | u128::from(self.trace_lo.load(Ordering::Relaxed))
    }

    /// The remote parent's span id, if [`Self::set_remote_parent`] gave one.
    pub(crate) fn remote_parent(&self) -> Option<u64> {
        Some(self.remote_parent.load(Ordering::Relaxed)).filter(|&p| p != 0)
    }

    /// Joins the remote trace `trace_id` under the span `parent` (a local root only).
    pub(crate) fn set_remote_parent(&self, trace_id: u128, parent: u64) {
        self.trace_hi
            .store((trace_id >> 64) as u64, Ordering::Relaxed);
        self.trace_lo.store(trace_id as u64, Ordering::Relaxed);
        self.remote_parent.store(parent, Ordering::Relaxed);
    }

    /// Whether `otel.status_code = "ERROR"` was recorded on it.
    pub(crate) fn error(&self) -> bool {
        self.error.load(Ordering::Relaxed)
    }

    /// The index of the SLO rule the span is judged by: the earlier of the first rules its
    /// name and its route matched.
    pub(crate) fn slo_rule(&self) -> Option<usize> {
        let index = |i: &AtomicU16| Some(i.load(Ordering::Relaxed)).filter(|&i| i != NO_RULE);
        let [name, route] = [&self.slo_on_name, &self.slo_on_route].map(index);
        name.into_iter().chain(route).min().map(usize::from)
    }

    fn absorb(&self, w: &FieldWriter, rules: &SloRules) {
        if w.specials.error {
            self.error.store(true, Ordering::Relaxed);
        }
        if let Some(name) = &w.specials.name {
            let rule = rule_index(rules.first_on_name(name.as_str()));
            self.slo_on_name.store(rule, Ordering::Relaxed);
        }
        if let Some(route) = &w.specials.route {
            let rule = rule_index(rules.first_on_route(route.as_str()));
            self.slo_on_route.store(rule, Ordering::Relaxed);
        }
    }
}

/// Where a span's [`LocalTrace`] lives: boxed in its local root's state, and pointed at by the
/// root's descendants. (An `Arc` cost two locked instructions per span, a clone and a drop.)
///
/// The pointer is valid for as long as the descendant lives: each span holds a reference on
/// its parent until it has closed, in [`GranularSubscriber`](super::subscriber::GranularSubscriber)'s
/// slab and in `tracing-subscriber`'s registry alike, so a root's state (and its box) is
/// dropped only after every descendant closed. The box does not move with the state.
#[derive(Debug)]
enum TraceHome {
    Root(Box<LocalTrace>),
    Descendant(NonNull<LocalTrace>),
}

// SAFETY: a `TraceHome` only hands out `&LocalTrace`, which is `Sync` (atomics); the pointer
// is valid while the span lives (see above), wherever the span is used.
unsafe impl Send for TraceHome {}
// SAFETY: as above.
unsafe impl Sync for TraceHome {}

impl TraceHome {
    fn get(&self) -> &LocalTrace {
        match self {
            TraceHome::Root(trace) => trace,
            // SAFETY: the root, and with it the boxed `LocalTrace`, outlives this span (see the
            // type's docs).
            TraceHome::Descendant(trace) => unsafe { trace.as_ref() },
        }
    }
}

/// The (trace id, span id) of the span in the current OpenTelemetry `Context`, if it holds a
/// valid one: the parent a contextual local root takes, as under `tracing-opentelemetry`
/// (middleware that extracted the caller's `traceparent` and attached it with
/// `Context::attach` or `FutureExt::with_context`). A thread-local read, no allocation. Never
/// panics: the context's thread-local may be gone (a span created while the thread exits) or
/// borrowed (a span created while a context is attached or detached); then there is no parent.
fn current_otel_parent() -> Option<(u128, u64)> {
    std::panic::catch_unwind(|| {
        opentelemetry::Context::map_current(|cx| {
            let span = cx.span();
            let sc = span.span_context();
            sc.is_valid().then(|| {
                (
                    u128::from_be_bytes(sc.trace_id().to_bytes()),
                    u64::from_be_bytes(sc.span_id().to_bytes()),
                )
            })
        })
    })
    .ok()
    .flatten()
}

/// A rule's index as kept in [`OwnSpan`], [`NO_RULE`] for none.
fn rule_index(i: Option<usize>) -> u16 {
    i.and_then(|i| u16::try_from(i).ok())
        .filter(|&i| i != NO_RULE)
        .unwrap_or(NO_RULE)
}

/// What a new span takes from its local parent.
#[derive(Debug)]
pub(crate) struct Inherited {
    key: u64,
    trace: Option<(u128, NonNull<LocalTrace>)>,
}

impl SpanState {
    /// What a child of this span inherits.
    pub(crate) fn inherited(&self) -> Inherited {
        Inherited {
            key: self.key,
            trace: self.own().map(|o| (o.trace_id(), NonNull::from(o.trace()))),
        }
    }

    /// The span-recording state; `None` beside `tracing-opentelemetry`.
    pub(crate) fn own(&self) -> Option<&OwnSpan> {
        self.own.as_ref()
    }

    /// Records a new span. With `sampler`, span-recording mode (all fields, own ids, judged
    /// by the sampler's SLO rules at close); beside `tracing-opentelemetry` only `otel.name`
    /// is kept. `None` when the recorder is not installed.
    pub(crate) fn open(
        attrs: &Attributes<'_>,
        parent: Option<Inherited>,
        sampler: Option<&SourceSampler>,
    ) -> Option<SpanState> {
        let recording = sampler.is_some();
        let key = recorder::next_span_key();
        if key == 0 {
            return None;
        }
        let parent_key = parent.as_ref().map_or(0, |p| p.key);
        // A recorded child's ids are final at creation: its span id rides on `SpanNew`.
        let child_id = (recording && parent_key != 0).then(ids::span_id);
        let now = crate::clock::now();
        let new = SpanNew {
            key,
            meta: attrs.metadata(),
            parent: parent_key,
            span_id: child_id,
        };
        recorder::write_at(now, &new);
        let own = if let Some(sampler) = sampler {
            let (trace_id, trace, remote) = match parent.and_then(|p| p.trace) {
                Some((id, trace)) => (id, TraceHome::Descendant(trace), None),
                None => {
                    let remote = attrs.is_contextual().then(current_otel_parent).flatten();
                    let id = remote.map_or_else(ids::trace_id, |(trace, _)| trace);
                    (id, TraceHome::Root(Box::default()), remote)
                }
            };
            trace.get().add_span(key);
            let mut w = FieldWriter::new(key, now);
            attrs.record(&mut w);
            let span_id = child_id.unwrap_or_else(ids::span_id);
            let own = OwnSpan::new(trace_id, span_id, now, trace);
            if let Some((trace, parent)) = remote {
                own.set_remote_parent(trace, parent);
            }
            let rules = sampler.rules();
            if w.specials.name.is_none() {
                let rule = rule_index(rules.first_on_name(attrs.metadata().name()));
                own.slo_on_name.store(rule, Ordering::Relaxed);
            }
            own.absorb(&w, rules);
            Some(own)
        } else {
            attrs.record(&mut FieldWriter::only(key, now, "otel.name"));
            None
        };
        Some(SpanState {
            key,
            local_root: parent_key == 0,
            ids_recorded: AtomicBool::new(child_id.is_some()),
            own,
        })
    }

    /// Records values recorded after creation (span-recording mode only: `sampler` is the
    /// one the span was opened with).
    pub(crate) fn record(&self, values: &Record<'_>, sampler: Option<&SourceSampler>) {
        if let (Some(own), Some(sampler)) = (self.own(), sampler) {
            let mut w = FieldWriter::new(self.key, crate::clock::now());
            values.record(&mut w);
            own.absorb(&w, sampler.rules());
        }
    }

    /// Records an entry (`id`: the span's `tracing` id for [`context::current_id`], or 0).
    /// True the first time for a span whose ids come from elsewhere (`tracing-opentelemetry`):
    /// the caller records them then.
    pub(crate) fn enter(&self, id: u64) -> bool {
        let first = self.first_ids();
        if first {
            self.record_own_ids();
        }
        enter_key(self.key, id);
        first && self.own.is_none()
    }

    /// Records an exit of the innermost span.
    pub(crate) fn exit(&self) {
        record_exit(self.key);
        context::pop();
    }

    /// Whether the span's ids are still to be recorded (at its first entry, or at close).
    pub(crate) fn ids_due(&self) -> bool {
        !self.ids_recorded.load(Ordering::Relaxed)
    }

    /// Records the close and, in span-recording mode, has `sampler` judge the span.
    pub(crate) fn close(&self, sampler: Option<&SourceSampler>) {
        if self.first_ids() {
            self.record_own_ids();
        }
        let now = crate::clock::now();
        // Judged before the close is written, so the close says whether the trace goes to
        // the analyzer (a reader exporting every other trace from the rings leaves it alone);
        // handed over after, so the analyzer finds the close.
        let chosen = match (sampler, self.own()) {
            (Some(sampler), Some(own)) => sampler.on_close(&ClosedSpan {
                key: self.key,
                local_root: self.local_root,
                rule: own.slo_rule(),
                error: own.error(),
                start: own.start,
                end: now,
                trace_id: own.trace_id(),
                trace: own.trace(),
            }),
            _ => None,
        };
        let close = SpanClose {
            key: self.key,
            to_analyzer: chosen.is_some(),
        };
        recorder::write_at(now, &close);
        if let (Some(sampler), Some(req)) = (sampler, chosen) {
            sampler.hand_over(req);
        }
    }

    /// True once: the ids are due (a plain load first, so later entries pay no atomic swap).
    fn first_ids(&self) -> bool {
        !self.ids_recorded.load(Ordering::Relaxed)
            && !self.ids_recorded.swap(true, Ordering::Relaxed)
    }

    fn record_own_ids(&self) {
        if let Some(own) = self.own() {
            let root = self.local_root.then(|| TraceRoot {
                trace_id: own.trace_id(),
                remote_parent: own.remote_parent(),
            });
            let span_id = own.span_id;
            recorder::write(&SpanIds {
                key: self.key,
                span_id,
                root,
            });
        }
    }
}

/// Records an entry of the span `key` (0: a span that records nothing) whose ids are already
/// recorded (what [`SpanState::enter`] does after the first entry): a caller that knows the
/// key need not reach the span's state. `id` is its `tracing` id for [`context::current_id`],
/// or 0.
#[inline]
pub(crate) fn enter_key(key: u64, id: u64) {
    if key != 0 {
        let counters = alloc::changed_counters();
        recorder::write(&SpanEnter { key, counters });
    }
    context::push(id, key);
}

/// Records an exit of the span `id` (its `tracing` id, as it was entered) with the key it was
/// entered with on this thread, which this thread's stack of entered spans remembers; `key_of`
/// gives the key only when the stack did not keep it (nested too deep, or entered on another
/// thread). 0 records nothing.
#[inline]
pub(crate) fn exit_id(id: u64, key_of: impl FnOnce() -> u64) {
    let key = context::pop_id(id).unwrap_or_else(key_of);
    if key != 0 {
        record_exit(key);
    }
}

/// Records an exit of the span `key`, with the allocation counters when they changed.
#[inline]
fn record_exit(key: u64) {
    let counters = alloc::changed_counters();
    recorder::write(&SpanExit { key, counters });
}

/// Records an event inside the span `key` (span-recording mode): its metadata and fields.
pub(crate) fn record_event(key: u64, event: &Event<'_>) {
    let now = crate::clock::now();
    let meta = event.metadata();
    recorder::write_at(now, &TracingEvent { span: key, meta });
    event.record(&mut FieldWriter::new(0, now));
}

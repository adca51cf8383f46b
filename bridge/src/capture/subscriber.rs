//! [`GranularSubscriber`]: the `tracing` subscriber [`init`](fn@crate::init) installs with
//! `GRANULAR_SAMPLE=violations`. It records spans into the flight recorder exactly as
//! [`RecorderLayer::recording_spans`](crate::RecorderLayer::recording_spans) does, without a
//! `tracing-subscriber` registry: no sharded-slab pool, no per-span extension map, no
//! formatted span fields, no layer plumbing per call. Spans live in a lock-free [`Slab`]
//! under generation-checked ids; a child holds a reference on its parent, so a parent closes
//! after its children, as in the registry.
//!
//! Events are filtered by target and level (`RUST_LOG` syntax, without span or field
//! directives), recorded into their span, and written to standard output by [`log_line`].
//!
//! Limits: at most [`slab::CAPACITY`](super::slab::CAPACITY) spans open at once (beyond that a span is handed an id
//! that records nothing; counted in [`GranularSubscriber::untracked_spans`]); the entered-span
//! stack is per thread and shared by all instances of this subscriber on that thread.

use std::any::TypeId;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};
use tracing_core::span::Current;
use tracing_subscriber::filter::{LevelFilter, Targets};

use super::context;
use super::log_line;
use super::otel_ext;
use super::slab::{Ref, Released, Slab};
use super::spans::{self, SpanState, record_event};
use crate::slo::SourceSampler;

/// The id of a span that could not be stored (the slab is full): it names no slot.
const UNTRACKED: u64 = u64::MAX;

/// A span's tag in the slab (read on entry without a reference, see [`Slab::tag`]; an exit
/// takes the key from the thread's stack of entered spans): its recorder key (0 when it
/// records nothing), with this bit set while its ids are still to be recorded at its first
/// entry. Keys use fewer than 62 bits.
const IDS_DUE: u64 = 1 << 62;

/// How deep [`GranularSubscriber`] walks up the span tree for a log line's scope.
const MAX_SCOPE: usize = 16;

/// One open span.
#[derive(Debug)]
struct Slot {
    meta: &'static Metadata<'static>,
    /// The parent's id, on which this span holds a reference.
    parent: Option<u64>,
    /// `None` when the recorder is not installed.
    state: Option<SpanState>,
}

/// Records spans and events into the flight recorder and judges spans at close (see the
/// module docs). Build it with [`GranularSubscriber::new`]; the sampler comes from
/// [`GranularProcessor::source_sampler`](crate::GranularProcessor::source_sampler).
#[derive(Debug)]
pub struct GranularSubscriber {
    spans: Slab<Slot>,
    filter: Targets,
    max_level: LevelFilter,
    sampler: Arc<SourceSampler>,
    untracked: AtomicU64,
}

impl GranularSubscriber {
    /// A subscriber that keeps the spans and events `filter` enables.
    pub fn new(sampler: Arc<SourceSampler>, filter: Targets) -> Self {
        otel_ext::probe();
        let max_level = filter
            .iter()
            .map(|(_, level)| level)
            .chain(filter.default_level())
            .max()
            .unwrap_or(LevelFilter::OFF);
        GranularSubscriber {
            spans: Slab::default(),
            filter,
            max_level,
            sampler,
            untracked: AtomicU64::new(0),
        }
    }

    /// Spans handed an id that records nothing because the span table was full (4,194,304
    /// spans open at once).
    pub fn untracked_spans(&self) -> u64 {
        self.untracked.load(Ordering::Relaxed)
    }

    /// Runs `f` on the Granular state of the span `id`, if it has one.
    pub(crate) fn with_state<R>(&self, id: &Id, f: impl FnOnce(&SpanState) -> R) -> Option<R> {
        let slot = self.spans.get(id.into_u64())?;
        slot.state.as_ref().map(f)
    }

    /// The span a new span or event belongs to: none for an explicit root, the explicit
    /// parent, else the innermost span entered on this thread.
    fn parent_of(&self, is_root: bool, explicit: Option<&Id>) -> Option<u64> {
        match (is_root, explicit) {
            (true, _) => None,
            (false, Some(p)) => Some(p.into_u64()),
            (false, None) => self.current(),
        }
    }

    fn current(&self) -> Option<u64> {
        context::current_id()
    }

    /// Records the close of `slot` and of every ancestor this close releases.
    fn close(&self, slot: Slot) {
        let mut next = Some(slot);
        while let Some(slot) = next.take() {
            if let Some(state) = &slot.state {
                state.close(Some(&self.sampler));
            }
            if let Some(Released::Last(parent)) = slot.parent.map(|p| self.spans.release(p)) {
                next = Some(parent);
            }
        }
    }

    /// The names of the spans around `span`, outermost first.
    fn scope(&self, span: Option<u64>) -> Vec<&'static str> {
        let mut names = Vec::new();
        let mut at = span;
        while let Some(id) = at {
            if names.len() == MAX_SCOPE {
                break;
            }
            let Some(slot) = self.spans.get(id) else {
                break;
            };
            names.push(slot.meta.name());
            at = slot.parent;
        }
        names.reverse();
        names
    }
}

impl Subscriber for GranularSubscriber {
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        if self.enabled(meta) {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, meta: &Metadata<'_>) -> bool {
        self.filter.would_enable(meta.target(), meta.level())
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(self.max_level)
    }

    fn new_span(&self, attrs: &Attributes<'_>) -> Id {
        // The child keeps its lookup of the parent as the reference it holds until it closes.
        let found = self
            .parent_of(attrs.is_root(), attrs.parent())
            .and_then(|p| Some((p, self.spans.get(p)?)));
        let (parent, inherited) = match found {
            Some((p, slot)) => {
                let inherited = slot.state.as_ref().map(SpanState::inherited);
                Ref::keep(slot);
                (Some(p), inherited)
            }
            None => (None, None),
        };
        let slot = Slot {
            meta: attrs.metadata(),
            parent,
            state: SpanState::open(attrs, inherited, Some(&self.sampler)),
        };
        let tag = slot.state.as_ref().map_or(0, |s| {
            debug_assert!(s.key < IDS_DUE, "recorder keys use fewer than 62 bits");
            if s.ids_due() { s.key | IDS_DUE } else { s.key }
        });
        match self.spans.insert(slot, tag) {
            Some(id) => Id::from_u64(id),
            None => {
                if let Some(p) = parent {
                    drop(self.spans.release(p));
                }
                self.untracked.fetch_add(1, Ordering::Relaxed);
                Id::from_u64(UNTRACKED)
            }
        }
    }

    fn record(&self, span: &Id, values: &Record<'_>) {
        self.with_state(span, |state| state.record(values, Some(&self.sampler)));
    }

    fn record_follows_from(&self, _span: &Id, _follows: &Id) {
        // Span links are not recorded (see analysis::rebuild).
    }

    fn event(&self, event: &Event<'_>) {
        let span = self.parent_of(event.is_root(), event.parent());
        if let Some(id) = span {
            self.with_state(&Id::from_u64(id), |state| record_event(state.key, event));
        }
        let line = log_line::format(event, &self.scope(span), SystemTime::now());
        log_line::write(&line);
    }

    fn enter(&self, span: &Id) {
        let id = span.into_u64();
        match self.spans.tag(id) {
            Some(tag) if tag & IDS_DUE != 0 => {
                let entered = self.spans.get(id).and_then(|slot| {
                    let state = slot.state.as_ref()?;
                    state.enter(id);
                    self.spans.clear_tag_bits(&slot, IDS_DUE);
                    Some(())
                });
                if entered.is_none() {
                    spans::enter_key(0, id);
                }
            }
            tag => spans::enter_key(tag.unwrap_or(0), id),
        }
    }

    fn exit(&self, span: &Id) {
        let id = span.into_u64();
        spans::exit_id(id, || self.spans.tag(id).map_or(0, |tag| tag & !IDS_DUE));
    }

    fn clone_span(&self, span: &Id) -> Id {
        self.spans.add_ref(span.into_u64());
        span.clone()
    }

    fn try_close(&self, span: Id) -> bool {
        match self.spans.release(span.into_u64()) {
            Released::Last(slot) => {
                self.close(slot);
                true
            }
            Released::Shared | Released::Unknown => false,
        }
    }

    fn current_span(&self) -> Current {
        self.current()
            .and_then(|id| {
                let slot = self.spans.get(id)?;
                Some(Current::new(Id::from_u64(id), slot.meta))
            })
            .unwrap_or_else(Current::none)
    }

    // SAFETY: a pointer to `self` is returned only for `Self`'s own type id, as the default
    // implementation does.
    unsafe fn downcast_raw(&self, id: TypeId) -> Option<*const ()> {
        if id == TypeId::of::<Self>() {
            return Some(self as *const Self as *const ());
        }
        otel_ext::noticed(id);
        None
    }
}

/// The filter `RUST_LOG` asks for, for [`GranularSubscriber::new`]: target/level directives
/// (`info,my_crate=debug`); `info` when unset or empty. A value this subscriber cannot honour
/// (span or field directives, bad syntax) falls back to `info`, and the second value is a
/// message saying why (print it: no subscriber is installed yet).
pub fn filter_from_env() -> (Targets, Option<String>) {
    filter_from(std::env::var("RUST_LOG").ok().as_deref())
}

/// The filter a `RUST_LOG` value asks for, read as target/level directives; `info` when unset
/// or empty. A value this subscriber cannot honour (span or field directives, bad syntax)
/// falls back to `info`, with a message saying why.
pub(crate) fn filter_from(rust_log: Option<&str>) -> (Targets, Option<String>) {
    let info = Targets::new().with_default(LevelFilter::INFO);
    let Some(v) = rust_log.filter(|v| !v.trim().is_empty()) else {
        return (info, None);
    };
    // `Targets` would read `crate[span]=debug` as a target named `crate[span]`: refuse span
    // directives outright rather than filter on a target that never matches.
    let parsed = if v.contains('[') {
        Err("span directives ([...]) are not supported".to_string())
    } else {
        v.parse::<Targets>().map_err(|e| e.to_string())
    };
    match parsed {
        Ok(t) => (t, None),
        Err(e) => (
            info,
            Some(format!(
                "granular: RUST_LOG={v:?} is not understood ({e}); with GRANULAR_SAMPLE=violations \
                 it takes target=level directives only, e.g. \"info,my_crate=debug\"; using \"info\""
            )),
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::{Receiver, sync_channel};

    use opentelemetry::trace::{SpanContext, TraceContextExt, TraceFlags, TraceState};
    use opentelemetry::trace::{SpanId, TraceId};

    use super::*;
    use crate::propagation::SpanExt;
    use crate::recorder::{FlightRecorder, RecorderSize};
    use crate::slo::Judge;
    use crate::slo::SloRules;
    use crate::slo::message::{Msg, RebuildRequest};

    /// A subscriber whose sampler exports every trace (its `*` SLO is zero), and the channel
    /// its rebuild requests arrive on.
    fn subscriber() -> (Arc<GranularSubscriber>, Receiver<Msg>) {
        subscriber_judging_by("*=0ms")
    }

    /// A subscriber whose sampler judges spans by the SLO rules `slo`.
    fn subscriber_judging_by(slo: &str) -> (Arc<GranularSubscriber>, Receiver<Msg>) {
        FlightRecorder::install(RecorderSize::default());
        let judge = Judge::new(SloRules::parse(slo).unwrap(), true, 0.0);
        let (tx, rx) = sync_channel(16);
        let sampler = SourceSampler::new(Arc::new(judge), tx, Default::default(), true);
        let filter = Targets::new().with_default(LevelFilter::INFO);
        (
            Arc::new(GranularSubscriber::new(Arc::new(sampler), filter)),
            rx,
        )
    }

    fn rebuilt_roots(rx: &Receiver<Msg>) -> Vec<RebuildRequest> {
        rx.try_iter()
            .filter_map(|m| match m {
                Msg::Rebuild(r) => Some(r),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_parent_closes_after_its_children() {
        let (sub, rx) = subscriber();
        tracing::subscriber::with_default(sub.clone(), || {
            let root = tracing::info_span!("root");
            let child = root.in_scope(|| tracing::info_span!("child"));
            let root_id = root.id().unwrap();
            drop(root);
            assert!(
                sub.spans.get(root_id.into_u64()).is_some(),
                "kept by its child"
            );
            assert!(rebuilt_roots(&rx).is_empty(), "the root has not closed yet");
            let keys =
                [&root_id, &child.id().unwrap()].map(|id| sub.with_state(id, |s| s.key).unwrap());
            drop(child);
            assert!(sub.spans.get(root_id.into_u64()).is_none());
            let judged = rebuilt_roots(&rx);
            assert_eq!(judged.len(), 1, "the root closed, its trace judged");
            assert_eq!(judged[0].root, keys[0]);
            assert_eq!(
                judged[0].span_keys.as_deref(),
                Some(&keys[..]),
                "both spans noted"
            );
        });
    }

    #[test]
    fn a_child_outliving_its_roots_handle_judges_the_trace_on_another_thread() {
        let (sub, rx) = subscriber_judging_by("slow child=0ms,*=10s");
        let child = tracing::subscriber::with_default(sub.clone(), || {
            let root = tracing::info_span!("root");
            let child = root.in_scope(|| tracing::info_span!("slow child"));
            drop(root);
            child
        });
        assert!(
            rebuilt_roots(&rx).is_empty(),
            "the root waits for its child"
        );
        std::thread::spawn(move || drop(child)).join().unwrap();
        let judged = rebuilt_roots(&rx);
        assert_eq!(judged.len(), 1, "the child's violation reached the trace");
        assert_eq!(judged[0].span_keys.as_ref().map(Vec::len), Some(2));
    }

    #[test]
    fn current_span_and_contextual_parents_follow_entries() {
        let (sub, _rx) = subscriber();
        tracing::subscriber::with_default(sub.clone(), || {
            assert!(tracing::Span::current().is_none());
            let root = tracing::info_span!("root");
            let _g = root.enter();
            assert_eq!(tracing::Span::current().id(), root.id());
            let child = tracing::info_span!("child");
            let parent = sub
                .spans
                .get(child.id().unwrap().into_u64())
                .unwrap()
                .parent;
            assert_eq!(parent, root.id().map(|i| i.into_u64()));
            let explicit_root = tracing::info_span!(parent: None, "other");
            let slot = sub
                .spans
                .get(explicit_root.id().unwrap().into_u64())
                .unwrap();
            assert_eq!(slot.parent, None);
            assert!(slot.state.as_ref().unwrap().local_root);
        });
    }

    #[test]
    fn exits_record_the_key_of_the_entry_on_any_thread() {
        use crate::recorder::codec::{self, Event};
        let (sub, _rx) = subscriber();
        let span = tracing::subscriber::with_default(sub.clone(), || tracing::info_span!("moved"));
        let id = span.id().unwrap();
        let key = sub.with_state(&id, |s| s.key).unwrap();
        // Entered here and exited on a thread whose stack never saw it (the slab answers
        // there), then entered and exited here (the stack answers).
        sub.enter(&id);
        std::thread::scope(|s| {
            s.spawn(|| sub.exit(&id));
        });
        sub.enter(&id);
        sub.exit(&id);
        let snap = FlightRecorder::get().unwrap().snapshot();
        let (mut enters, mut exits) = (0, 0);
        for e in snap.threads.iter().flat_map(|t| codec::events(t.records())) {
            match e.event {
                Event::SpanEnter(enter) if enter.key == key => enters += 1,
                Event::SpanExit(exit) if exit.key == key => exits += 1,
                _ => {}
            }
        }
        assert_eq!((enters, exits), (2, 2));
    }

    #[test]
    fn filtered_out_levels_build_no_span() {
        let (sub, _rx) = subscriber();
        tracing::subscriber::with_default(sub, || {
            assert!(tracing::debug_span!("noisy").is_disabled());
            assert!(!tracing::info_span!("kept").is_disabled());
        });
    }

    #[test]
    fn a_remote_parent_carries_into_outgoing_contexts() {
        let (sub, _rx) = subscriber();
        let trace = TraceId::from_bytes(7u128.to_be_bytes());
        let remote = opentelemetry::Context::new().with_remote_span_context(SpanContext::new(
            trace,
            SpanId::from_bytes(9u64.to_be_bytes()),
            TraceFlags::default(),
            true,
            TraceState::default(),
        ));
        tracing::subscriber::with_default(sub, || {
            let root = tracing::info_span!("root");
            root.set_remote_parent(&remote);
            let child = root.in_scope(|| tracing::info_span!("child"));
            let cx = child.otel_context();
            let sc = cx.span().span_context().clone();
            assert_eq!(sc.trace_id(), trace);
            assert!(
                sc.is_sampled(),
                "always recorded: the decision is at the tail"
            );
            assert_ne!(
                sc.span_id(),
                root.otel_context().span().span_context().span_id()
            );
        });
    }

    #[test]
    fn a_name_or_route_recorded_late_decides_the_rule() {
        let (sub, rx) = subscriber_judging_by("route:/slow=0ms,late name=0ms,*=10s");
        tracing::subscriber::with_default(sub, || {
            let healthy = tracing::info_span!("root", http.route = tracing::field::Empty);
            healthy.record("http.route", "/fast");
            drop(healthy);
            assert!(rebuilt_roots(&rx).is_empty(), "judged by *=10s");
            let slow_route = tracing::info_span!("root", http.route = tracing::field::Empty);
            slow_route.record("http.route", "/slow");
            drop(slow_route);
            assert_eq!(rebuilt_roots(&rx).len(), 1, "judged by route:/slow=0ms");
            let renamed = tracing::info_span!("root", otel.name = tracing::field::Empty);
            renamed.record("otel.name", "late name");
            drop(renamed);
            assert_eq!(rebuilt_roots(&rx).len(), 1, "judged by its otel.name");
        });
    }

    #[test]
    fn an_incoming_traceparent_is_read_without_the_propagator() {
        let (sub, _rx) = subscriber();
        let headers =
            |v: &str| std::collections::HashMap::from([("traceparent".to_string(), v.to_string())]);
        let remote = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        tracing::subscriber::with_default(sub, || {
            let root = tracing::info_span!("root");
            root.set_remote_parent_from(&headers(remote));
            let child = root.in_scope(|| tracing::info_span!("child"));
            let want = TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
            assert_eq!(root.trace_id(), want);
            assert_eq!(child.trace_id(), want);
            assert_eq!(child.otel_context().span().span_context().trace_id(), want);

            // Not a valid traceparent (uppercase hex): the global propagator has its say (none
            // is installed here), and the span keeps the trace id it was given.
            let other = tracing::info_span!(parent: None, "other");
            let own = other.trace_id();
            other.set_remote_parent_from(&headers(&remote.to_uppercase()));
            assert_eq!(other.trace_id(), own);
            assert_ne!(own, want);
        });
    }

    /// Middleware in the style of opentelemetry-rust's examples attaches the caller's context
    /// (`Context::attach`, or `FutureExt::with_context`, which attaches it around each poll)
    /// before the handler's span exists: a contextual local root must take its parent from it,
    /// as under tracing-opentelemetry (every trace was exported under a new id without this).
    #[test]
    fn a_contextual_root_takes_its_parent_from_the_current_otel_context() {
        use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceState};
        let (sub, _rx) = subscriber();
        let remote = SpanContext::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
            SpanId::from_hex("00f067aa0ba902b7").unwrap(),
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        );
        let remote_parent = |span: &tracing::Span| {
            sub.with_state(&span.id().unwrap(), |s| s.own().unwrap().remote_parent())
                .flatten()
        };
        tracing::subscriber::with_default(sub.clone(), || {
            let cx = opentelemetry::Context::new().with_remote_span_context(remote.clone());
            let (root, child, explicit_root) = {
                let _attached = cx.attach();
                let root = tracing::info_span!("handler");
                let child = root.in_scope(|| tracing::info_span!("child"));
                (
                    root,
                    child,
                    tracing::info_span!(parent: None, "explicit root"),
                )
            };
            assert_eq!(root.trace_id(), remote.trace_id());
            assert_eq!(remote_parent(&root), Some(0x00f0_67aa_0ba9_02b7));
            assert_eq!(
                child.trace_id(),
                remote.trace_id(),
                "a child joins its root's trace"
            );
            assert_eq!(remote_parent(&child), None, "a child's parent is local");
            assert_ne!(
                explicit_root.trace_id(),
                remote.trace_id(),
                "parent: None is a root"
            );
            assert_eq!(remote_parent(&explicit_root), None);

            let detached = tracing::info_span!("after the middleware");
            assert_ne!(detached.trace_id(), remote.trace_id());
            assert_eq!(remote_parent(&detached), None);
        });
    }

    /// tracing-opentelemetry's `OpenTelemetrySpanExt` cannot reach spans this subscriber
    /// records: its use is noticed and reported once, with the replacement.
    #[test]
    fn opentelemetry_span_ext_on_a_recorded_span_warns() {
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        let (sub, _rx) = subscriber();
        tracing::subscriber::with_default(sub, || {
            let span = tracing::info_span!("handler");
            let cx = OpenTelemetrySpanExt::context(&span);
            assert!(!cx.span().span_context().is_valid(), "it sees no span");
            assert!(super::otel_ext::warned());
        });
    }

    #[test]
    fn bad_rust_log_values_fall_back_to_info_and_say_why() {
        let (t, warning) = filter_from(Some("warn,my_crate=debug"));
        assert!(warning.is_none());
        assert!(t.would_enable("my_crate::db", &tracing::Level::DEBUG));
        assert!(!t.would_enable("other", &tracing::Level::INFO));
        let (_, warning) = filter_from(Some("info,my_crate[request]=debug"));
        assert!(warning.is_some_and(|w| w.contains("span directives")));
        let (t, warning) = filter_from(Some("my_crate[span{a=1}]=debug"));
        let warning = warning.expect("a message");
        assert!(
            warning.contains("RUST_LOG") && warning.contains("target=level"),
            "{warning}"
        );
        assert!(t.would_enable("any", &tracing::Level::INFO));
        assert!(!t.would_enable("any", &tracing::Level::DEBUG));
        assert!(
            filter_from(None)
                .0
                .would_enable("any", &tracing::Level::INFO)
        );
    }
}

//! Noticing `tracing_opentelemetry::OpenTelemetrySpanExt` used on spans Granular records
//! itself (`GRANULAR_SAMPLE=violations`).
//!
//! That trait reaches its layer's span data through `Dispatch::downcast_ref` to a type private
//! to `tracing-opentelemetry`; no other subscriber can answer it, so on Granular's spans
//! `set_parent` does nothing and `context()` returns an empty context. A caller who relied on
//! them would lose the trace's parent or its downstream hops without a word. Granular cannot
//! name that type, so it learns its `TypeId` once by asking: [`probe`] runs the trait's
//! `context()` on a span of a throwaway subscriber that notes what it is asked to downcast to.
//! Granular's subscriber and span-recording layer then pass every foreign downcast to
//! [`noticed`], which warns once, with the replacement.

use std::any::TypeId;
use std::sync::Mutex;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// What `OpenTelemetrySpanExt` downcasts to; `None` if the probe did not find exactly one type.
static EXTENSION_TYPE: OnceLock<Option<TypeId>> = OnceLock::new();
static WARNED: AtomicBool = AtomicBool::new(false);

/// The message, once per process.
pub(crate) const WARNING: &str = "granular: tracing_opentelemetry::OpenTelemetrySpanExt \
    (set_parent, context, add_link, set_attribute, ...) has no effect on spans Granular records \
    with GRANULAR_SAMPLE=violations; use granular::SpanExt instead: \
    span.set_remote_parent(&cx) for set_parent(cx), span.otel_context() for context() \
    (or attach the caller's context with opentelemetry::Context::attach before creating the \
    span: a new local root takes its parent from the current context)";

/// Learns the extension's type (once; later calls return at once).
pub(crate) fn probe() {
    EXTENSION_TYPE.get_or_init(|| {
        let probe = Probe::default();
        let dispatch = tracing::Dispatch::new(probe);
        tracing::dispatcher::with_default(&dispatch, || {
            let span = tracing::error_span!("granular.probe");
            if let Some(p) = dispatch.downcast_ref::<Probe>() {
                lock(&p.asked).clear();
            }
            let _ = OpenTelemetrySpanExt::context(&span);
        });
        let asked = dispatch
            .downcast_ref::<Probe>()
            .map(|p| std::mem::take(&mut *lock(&p.asked)))
            .unwrap_or_default();
        match asked[..] {
            [one] => Some(one),
            _ => None,
        }
    });
}

/// Called with each downcast a Granular subscriber or layer does not answer: warns once if
/// it is `OpenTelemetrySpanExt`'s. A load and a compare otherwise.
pub(crate) fn noticed(id: TypeId) {
    let ours = EXTENSION_TYPE.get().copied().flatten() == Some(id);
    if ours && !WARNED.swap(true, Ordering::Relaxed) {
        tracing::warn!("{WARNING}");
    }
}

/// Whether the warning was given (tests).
#[cfg(test)]
pub(crate) fn warned() -> bool {
    WARNED.load(Ordering::Relaxed)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A subscriber that enables everything, records nothing and notes the types it is asked to
/// downcast to.
#[derive(Default)]
struct Probe {
    asked: Mutex<Vec<TypeId>>,
}

impl Subscriber for Probe {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, _: &Event<'_>) {}
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}

    // SAFETY: returns a pointer to `self` only for its own type, as the default does.
    unsafe fn downcast_raw(&self, id: TypeId) -> Option<*const ()> {
        if id == TypeId::of::<Self>() {
            return Some(self as *const Self as *const ());
        }
        lock(&self.asked).push(id);
        None
    }
}

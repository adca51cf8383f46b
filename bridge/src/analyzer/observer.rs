//! Who else is told what the analyzer explained: the debug endpoint keeps the recent
//! analyses and timelines in memory. Registered once per process ([`observe`]); without one,
//! the analyzer tells no one and pays one atomic load per span.

use std::sync::OnceLock;

use opentelemetry_sdk::trace::SpanData;

/// Told of each span the analyzer explained, and of each timeline it built.
///
/// Contract: called on the analyzer thread only, never on the request path; must return
/// quickly (no I/O, no waiting beyond a short lock shared with readers that hold it briefly),
/// must not panic, and must bound whatever it keeps.
pub(crate) trait AnalysisObserver: Send + Sync + std::fmt::Debug {
    /// `span` was explained: it carries `granular.cause`, `granular.verdict` and the rest, as
    /// it is about to be exported.
    fn explained(&self, span: &SpanData);
    /// The timeline of span `span_id` of trace `trace_id`, Perfetto-encoded.
    fn timeline(&self, trace_id: u128, span_id: u64, bytes: &[u8]);
}

static OBSERVER: OnceLock<&'static dyn AnalysisObserver> = OnceLock::new();

/// Registers the process's observer; a second call is ignored (the first stays).
pub(crate) fn observe(o: &'static dyn AnalysisObserver) {
    let _ = OBSERVER.set(o);
}

/// The registered observer, if any.
pub(crate) fn observer() -> Option<&'static dyn AnalysisObserver> {
    OBSERVER.get().copied()
}

//! What the judges send the analyzer thread. One bounded channel carries it; its message type
//! is owned here, by its producers ([`GranularProcessor`](crate::GranularProcessor) and the
//! [`SourceSampler`](super::SourceSampler)), as a subscriber owns the events it sends its
//! aggregator: the analyzer, above them, consumes it.

use std::sync::mpsc::SyncSender;

use opentelemetry_sdk::trace::SpanData;

use super::judge::Judgement;

pub(crate) enum Msg {
    /// A violating (or baseline) span tracing-opentelemetry built, to analyze and enrich
    /// (`all` mode).
    Enrich(Box<SpanData>, Judgement),
    /// A span tracing-opentelemetry built, held with its trace until the trace is decided
    /// (`violations` mode).
    Hold(Box<SpanData>, Judgement),
    /// A local trace recorded by the span-recording layer, chosen for export.
    Rebuild(RebuildRequest),
    /// Answered once everything sent before it has been passed to the exporting processor.
    Flush(SyncSender<()>),
}

/// A local trace chosen for export: its root's recorder key.
#[derive(Debug, Clone)]
pub(crate) struct RebuildRequest {
    pub root: u64,
    pub trace_id: u128,
    /// Clock ticks at the root's creation (bounds the window to decode).
    pub start_ticks: u64,
    /// The keys of all the trace's spans, root included, when the trace noted them all.
    pub span_keys: Option<Vec<u64>>,
    /// How many spans the trace had, root included: the analyzer exports it whole only if
    /// it finds them all.
    pub span_count: usize,
}

//! What the judges and the analyzer did, counted: the shutdown line, [`Stats`] and the health
//! metrics (`export::health`) read the same atomics.

use std::sync::atomic::AtomicU64;

/// Counters of what the processor, the source sampler and the analyzer did; read them with
/// [`GranularProcessor::stats`](crate::GranularProcessor::stats). The shutdown line (`granular: shut down ...`) prints every one.
///
/// Each trace a `violations`-mode decision chose for export (`chosen_traces`) ends in exactly
/// one of `exported_traces`, `partial_traces`, `unfinished_traces`, `lost_traces`,
/// `not_found_traces`, `rebuild_errors` or (traces Granular recorded itself)
/// `skipped_queue_full`; the difference is traces still waiting for the analyzer.
#[derive(Debug, Default)]
pub struct Stats {
    /// Spans given a breakdown from a full analysis.
    pub enriched: AtomicU64,
    /// Spans exported without a breakdown because `GRANULAR_MAX_ENRICH_PER_SEC` was reached
    /// (`all` mode).
    pub skipped_rate_limit: AtomicU64,
    /// Spans (or, in span-recording mode, traces chosen for export) the analyzer's full queue
    /// turned away, or that found no analyzer thread running: spans are exported undecided,
    /// traces are not exported.
    pub skipped_queue_full: AtomicU64,
    /// Spans analyzed from a light decode because full analysis would exceed its share.
    pub light_analyzed: AtomicU64,
    /// Spans of held traces (tracing-opentelemetry's spans in `violations` mode) dropped with
    /// their healthy trace.
    pub dropped_healthy_spans: AtomicU64,
    /// Traces a `violations`-mode decision chose for export when their local root ended (a
    /// span violated its SLO, or the trace is in the baseline); see the struct's docs for
    /// where each one ends. In `all` mode every trace is exported and none is counted here.
    pub chosen_traces: AtomicU64,
    /// Chosen traces exported whole: every span they had (held, or rebuilt from the recorder).
    pub exported_traces: AtomicU64,
    /// Chosen traces exported without some of their spans, which the rings had overwritten
    /// (or their close: found still open) before the analyzer copied them; their spans carry
    /// `granular.data_loss=true`.
    pub partial_traces: AtomicU64,
    /// Chosen traces exported without spans found still open after their local root ended
    /// (those spans are counted in `unfinished_spans`), although the rings had overwritten
    /// nothing of their window. Granular's subscribers close a parent after its children, so
    /// such a span's close was not found: a defect, expected to stay 0.
    pub unfinished_traces: AtomicU64,
    /// Chosen traces not exported: the rings had overwritten all their spans before the
    /// analyzer copied them (see `GRANULAR_RING_KB` and docs/architecture.md, Known limits).
    pub lost_traces: AtomicU64,
    /// Chosen traces exported without some of their spans, or not exported, although the
    /// rings had overwritten nothing of their window: a defect, expected to stay 0.
    pub not_found_traces: AtomicU64,
    /// Chosen traces not exported because rebuilding them from the recorder failed (a
    /// defect; logged once).
    pub rebuild_errors: AtomicU64,
    /// Traces a `violations`-mode decision dropped as healthy.
    pub dropped_traces: AtomicU64,
    /// Held traces decided early because `GRANULAR_HOLD_SPANS` spans were held.
    pub hold_overflow: AtomicU64,
    /// Artifacts the artifact store failed to keep (the span says so).
    pub artifact_errors: AtomicU64,
    /// Spans whose analysis failed (exported without a breakdown, marked
    /// `granular.skipped=analysis_error`).
    pub analysis_errors: AtomicU64,
    /// Spans still open when their trace was exported (not exported).
    pub unfinished_spans: AtomicU64,
    /// Spans handed to the exporting (batch) processor. This and the two below are counted
    /// when the stack is [`init`](fn@crate::init)'s (`export::delivery`).
    pub export_queued_spans: AtomicU64,
    /// Spans in batches the span exporter delivered.
    pub export_delivered_spans: AtomicU64,
    /// Spans in batches the span exporter failed to deliver (endpoint down or refusing, or no
    /// answer within `OTEL_EXPORTER_OTLP_TIMEOUT`); the SDK drops such a batch.
    pub export_failed_spans: AtomicU64,
    /// Spans exported from the recording as their traces were released
    /// (`GRANULAR_ALL_FROM=recording`: every trace the analyzer does not export).
    pub streamed_spans: AtomicU64,
    /// Spans `GRANULAR_ALL_FROM=recording` could not export: their local root, or its ids, was
    /// never read (created before the stream began, or overwritten before it was read), or
    /// 200,000 spans were held already.
    pub stream_unexported_spans: AtomicU64,
    /// The analyzer thread's CPU time, ns, as of its last batch (from schedstat; 0 where the
    /// kernel does not keep it).
    pub analyzer_cpu_ns: AtomicU64,
}

impl Stats {
    /// Spans handed to the exporting processor and neither delivered nor failed: the SDK's
    /// full queue dropped them, or they are still queued or in an export (at shutdown: left
    /// behind when its timeout ran out).
    pub fn export_undelivered_spans(&self) -> u64 {
        use std::sync::atomic::Ordering::Relaxed;
        self.export_queued_spans.load(Relaxed).saturating_sub(
            self.export_delivered_spans.load(Relaxed) + self.export_failed_spans.load(Relaxed),
        )
    }
}

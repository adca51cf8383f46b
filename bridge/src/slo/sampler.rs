//! Tail sampling at the source: spans are recorded into the flight recorder at ring-write cost
//! and judged at close; only when a local root closes is the trace's fate decided. Exported
//! traces (a violation, or the baseline fraction) are rebuilt from the recorder into
//! OpenTelemetry spans by the analyzer thread ([`crate::analysis::rebuild`]); the rest cost
//! nothing more and are counted as dropped.
//!
//! Outgoing propagation: [`crate::SpanExt::otel_context`] always carries the sampled flag
//! (`01`): "record everything, decide at the tail". Downstream services record their part and
//! the Collector's `granular` processor decides per trace; a trace this process drops may still
//! be kept downstream, with this process's spans missing (see docs/architecture.md).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::time::Duration;

use super::judge::{Judge, SpanFacts};
use super::message::{Msg, RebuildRequest};
use super::rules::SloRules;
use super::stats::Stats;

/// Span keys a [`LocalTrace`] remembers; a trace with more spans is found in the recorder by
/// walking parent links instead.
const TRACE_KEYS: usize = 16;

/// Judging state shared by the spans of one local trace, and the recorder keys of its first
/// `TRACE_KEYS` (16) spans (so the analyzer can pick the trace's records out of the rings without
/// first walking the span tree).
#[derive(Debug, Default)]
pub(crate) struct LocalTrace {
    violated: AtomicBool,
    keys: [AtomicU64; TRACE_KEYS],
    spans: AtomicUsize,
}

impl LocalTrace {
    /// Notes a span of this trace (one atomic add and a store).
    pub(crate) fn add_span(&self, key: u64) {
        let i = self.spans.fetch_add(1, Ordering::Relaxed);
        if let Some(slot) = self.keys.get(i) {
            slot.store(key, Ordering::Relaxed);
        }
    }

    /// How many spans the trace had. Called when the local root closes: every span noted
    /// itself at creation, before.
    fn span_count(&self) -> usize {
        self.spans.load(Ordering::Relaxed)
    }

    /// The keys of every span of the trace, or `None` when it had more than [`TRACE_KEYS`].
    /// Called when the local root closes, as [`Self::span_count`].
    fn span_keys(&self) -> Option<Vec<u64>> {
        let n = self.span_count();
        (n <= TRACE_KEYS).then(|| {
            self.keys[..n]
                .iter()
                .map(|k| k.load(Ordering::Relaxed))
                .collect()
        })
    }
}

/// What is known of a recorded span when it closes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClosedSpan<'a> {
    /// Its recorder key.
    pub key: u64,
    pub local_root: bool,
    /// The index of its SLO rule, matched when its name and route were recorded.
    pub rule: Option<usize>,
    /// `otel.status_code = "ERROR"` was recorded on it.
    pub error: bool,
    /// Clock ticks at creation and at close.
    pub start: u64,
    pub end: u64,
    pub trace_id: u128,
    /// The judging state of its local trace.
    pub trace: &'a LocalTrace,
}

/// Judges spans as they close and hands exported traces to the analyzer.
#[derive(Debug)]
pub struct SourceSampler {
    judge: Arc<Judge>,
    tx: SyncSender<Msg>,
    stats: Arc<Stats>,
    ns_per_tick: f64,
    /// Healthy traces are dropped (`violations` mode), not left to the stream that exports
    /// them (`GRANULAR_ALL_FROM=recording`): counted in `dropped_traces` then.
    drops_healthy: bool,
}

impl SourceSampler {
    pub(crate) fn new(
        judge: Arc<Judge>,
        tx: SyncSender<Msg>,
        stats: Arc<Stats>,
        drops_healthy: bool,
    ) -> Self {
        let ns_per_tick = crate::clock::Calibration::now().ticks_to_ns(1_000_000) as f64 / 1e6;
        SourceSampler {
            judge,
            tx,
            stats,
            ns_per_tick,
            drops_healthy,
        }
    }

    /// The SLO rules spans are judged by.
    pub(crate) fn rules(&self) -> &SloRules {
        self.judge.rules()
    }

    /// Judges a recorded span as it closes (request path: the judge's comparisons). For a
    /// local root whose trace leaves the process, returns the request to hand the analyzer
    /// with [`Self::hand_over`] once the root's close is written: the analyzer, which may
    /// copy the rings as soon as it has it, then always finds the close.
    pub(crate) fn on_close(&self, span: &ClosedSpan<'_>) -> Option<RebuildRequest> {
        let ticks = span.end.saturating_sub(span.start);
        let j = self.judge.judge(&SpanFacts {
            rule: span.rule,
            elapsed: Duration::from_nanos((ticks as f64 * self.ns_per_tick) as u64),
            error: span.error,
            local_root: span.local_root,
            trace_id: span.trace_id,
        });
        let trace = span.trace;
        if j.violated {
            trace.violated.store(true, Ordering::Relaxed);
        }
        if !span.local_root {
            return None;
        }
        let violated = trace.violated.load(Ordering::Relaxed);
        if !self.judge.exports_trace(violated, span.trace_id) {
            if self.drops_healthy {
                self.stats.dropped_traces.fetch_add(1, Ordering::Relaxed);
            }
            return None;
        }
        self.stats.chosen_traces.fetch_add(1, Ordering::Relaxed);
        Some(RebuildRequest {
            root: span.key,
            trace_id: span.trace_id,
            start_ticks: span.start,
            span_keys: trace.span_keys(),
            span_count: trace.span_count(),
        })
    }

    /// Hands a trace [`Self::on_close`] chose to the analyzer: one non-blocking send (a full
    /// queue loses the trace, counted and logged once).
    pub(crate) fn hand_over(&self, req: RebuildRequest) {
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            self.tx.try_send(Msg::Rebuild(req))
            && self
                .stats
                .skipped_queue_full
                .fetch_add(1, Ordering::Relaxed)
                == 0
        {
            tracing::warn!(
                "granular: analyzer queue full; an SLO-violating trace was not exported (counted as skipped_queue_full)"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trace_remembers_its_span_keys_up_to_the_limit() {
        let t = LocalTrace::default();
        for k in 1..=TRACE_KEYS as u64 {
            t.add_span(k);
        }
        assert_eq!(
            t.span_keys(),
            Some((1..=TRACE_KEYS as u64).collect::<Vec<_>>())
        );
        t.add_span(99);
        assert_eq!(t.span_keys(), None, "too many: found from the root instead");
    }
}

//! The traces the source sampler chose, rebuilt from the decoded window into OpenTelemetry
//! spans ([`rebuild`]), and where each one ends ([`TraceFate`]): every chosen trace is
//! counted once in [`Stats`].

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};

use opentelemetry::InstrumentationScope;
use opentelemetry_sdk::trace::SpanData;

use crate::analysis::Decoded;
use crate::analysis::rebuild::rebuild;
use crate::clock::Calibration;
use crate::slo::Stats;
use crate::slo::message::RebuildRequest;

/// Rebuilds the traces `rebuilds` names from `decoded` (`None`: the decode failed) and counts
/// where each one ends; returns their spans, to judge and export.
pub(super) fn rebuild_chosen(
    decoded: Option<&Decoded>,
    rebuilds: &[RebuildRequest],
    cal: &Calibration,
    scope: &InstrumentationScope,
    stats: &Stats,
) -> Vec<SpanData> {
    let mut spans = Vec::new();
    for r in rebuilds {
        // A bug in rebuilding must cost the trace, never the thread.
        let rebuilt = decoded.and_then(|d| {
            catch_unwind(AssertUnwindSafe(|| {
                let rebuilt = rebuild(d, r.root, r.trace_id, scope);
                // The rings overwrote records of the trace's window.
                let start = cal.to_unix_ns(r.start_ticks);
                let overwritten = d.complete_since.is_some_and(|c| c > start);
                (rebuilt, overwritten)
            }))
            .ok()
        });
        let Some((rebuilt, overwritten)) = rebuilt else {
            if stats.rebuild_errors.fetch_add(1, Ordering::Relaxed) == 0 {
                tracing::warn!(
                    "granular: rebuilding a trace from the recorder failed; not exported (counted as rebuild_errors)"
                );
            }
            continue;
        };
        stats
            .unfinished_spans
            .fetch_add(rebuilt.unfinished as u64, Ordering::Relaxed);
        let fate = TraceFate::of(
            r.span_count,
            rebuilt.spans.len(),
            rebuilt.unfinished,
            overwritten,
        );
        fate.counter(stats).fetch_add(1, Ordering::Relaxed);
        spans.extend(rebuilt.spans);
    }
    spans
}

/// Where a trace rebuilt from the recorder ends, each a counter of [`Stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TraceFate {
    Whole,
    /// Spans missing or found still open: the rings overwrote them, or their close (a span
    /// closed on another thread than the one that created it, as a request moves between
    /// workers, has its close on another ring).
    Partial,
    /// Spans found still open (their close was not found) though the rings overwrote
    /// nothing of the trace's window.
    Unfinished,
    /// Nothing found: the rings overwrote it all.
    Lost,
    /// Spans missing though the rings overwrote nothing of the trace's window.
    NotFound,
}

impl TraceFate {
    /// The fate of a trace that had `spans` spans, of which `exported` were found and
    /// rebuilt and `unfinished` found still open; `overwritten`: the rings overwrote records
    /// of its window.
    fn of(spans: usize, exported: usize, unfinished: usize, overwritten: bool) -> Self {
        let missing = spans > exported + unfinished;
        let incomplete = missing || unfinished > 0;
        match (exported, incomplete, overwritten) {
            (0, _, true) => Self::Lost,
            (0, _, false) => Self::NotFound,
            (_, false, _) => Self::Whole,
            (_, true, true) => Self::Partial,
            _ if missing => Self::NotFound,
            _ => Self::Unfinished,
        }
    }

    fn counter(self, stats: &Stats) -> &AtomicU64 {
        match self {
            Self::Whole => &stats.exported_traces,
            Self::Partial => &stats.partial_traces,
            Self::Unfinished => &stats.unfinished_traces,
            Self::Lost => &stats.lost_traces,
            Self::NotFound => &stats.not_found_traces,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::TraceFate;

    #[test]
    fn every_rebuilt_trace_has_one_fate() {
        // (spans the trace had, found and rebuilt, found still open, rings overwrote its window)
        for (case, fate) in [
            ((4, 4, 0, false), TraceFate::Whole),
            ((4, 4, 0, true), TraceFate::Whole),
            ((4, 3, 0, true), TraceFate::Partial),
            ((4, 3, 0, false), TraceFate::NotFound),
            ((4, 0, 0, true), TraceFate::Lost),
            ((4, 0, 0, false), TraceFate::NotFound),
            ((4, 0, 4, false), TraceFate::NotFound),
            ((4, 3, 1, false), TraceFate::Unfinished),
            ((4, 2, 1, true), TraceFate::Partial),
            // Its close overwritten, on another ring than its creation.
            ((4, 3, 1, true), TraceFate::Partial),
        ] {
            let (spans, exported, unfinished, overwritten) = case;
            assert_eq!(
                TraceFate::of(spans, exported, unfinished, overwritten),
                fate,
                "{case:?}"
            );
        }
    }
}

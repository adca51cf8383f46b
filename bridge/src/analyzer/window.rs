//! Which records a batch reads, and how it decodes them.
//!
//! A full decode reads from [`DECODE_MARGIN_NS`] before the batch's earliest span: every
//! record, so that culprits and the request's spawned tasks are found. A light one reads from
//! [`ROOT_MARGIN_NS`] before it, and keeps only the batch's own spans (by their OTel ids,
//! their recorder keys, or walking the trees from their roots) and the thread-level records
//! a breakdown needs.

use std::time::SystemTime;

use opentelemetry_sdk::trace::SpanData;

use crate::analysis::idmap::IdSet;
use crate::analysis::{Decoded, decode, decode_spans, decode_spans_by_otel_id, decode_spans_of};
use crate::clock::Calibration;
use crate::recorder::RecorderSnapshot;
use crate::slo::Judgement;
use crate::slo::message::RebuildRequest;

/// How far before the earliest span of a batch a full decode begins: long enough for a
/// culprit's poll that began before the span (a 200 ms CPU hog) and for the spans and tasks
/// created for the request, short enough that a busy service's copy and decode stay small
/// (decode is ~40–100 ns per record in the window).
const DECODE_MARGIN_NS: u64 = 200_000_000;

/// How far before a root's start time a light decode begins: the root's creation record is
/// stamped before the start time is read (by the time its fields take to record).
const ROOT_MARGIN_NS: u64 = 1_000_000;

/// A span's time as Unix nanoseconds (0 before the epoch).
pub(super) fn unix_ns(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// The earliest start (Unix ns) of the spans and traces of a batch.
pub(super) fn earliest_start(
    spans: &[(SpanData, Judgement)],
    rebuilds: &[RebuildRequest],
    cal: &Calibration,
) -> u64 {
    spans
        .iter()
        .map(|(s, _)| unix_ns(s.start_time))
        .chain(rebuilds.iter().map(|r| cal.to_unix_ns(r.start_ticks)))
        .min()
        .unwrap_or(0)
}

/// Where the window of a batch whose earliest span started at `earliest` begins (Unix ns).
pub(super) fn window_start(earliest: u64, light: bool) -> u64 {
    let margin = if light {
        ROOT_MARGIN_NS
    } else {
        DECODE_MARGIN_NS
    };
    earliest.saturating_sub(margin)
}

/// A batch's window of the rings.
#[derive(Debug)]
pub(super) struct Window {
    pub snapshot: RecorderSnapshot,
    /// Where decoding begins, Unix ns.
    pub start: u64,
    /// When the snapshot was taken, Unix ns.
    pub taken_at: u64,
    /// Decoded lightly.
    pub light: bool,
}

impl Window {
    /// Decodes the window for the batch's `spans` (tracing-opentelemetry's) and `rebuilds`.
    pub(super) fn decode(
        &self,
        cal: &Calibration,
        spans: &[(SpanData, Judgement)],
        rebuilds: &[RebuildRequest],
    ) -> Decoded {
        let (snap, from, to) = (&self.snapshot, self.start, self.taken_at);
        if !self.light {
            return decode(snap, cal, from, to);
        }
        if rebuilds.is_empty() {
            // Spans tracing-opentelemetry built: found by their ids.
            let ids: IdSet<u64> = spans
                .iter()
                .map(|(s, _)| u64::from_be_bytes(s.span_context.span_id().to_bytes()))
                .collect();
            return decode_spans_by_otel_id(snap, cal, from, to, &ids);
        }
        // The traces' own keys when every one noted them, else found from the roots.
        let keys: Option<IdSet<u64>> = rebuilds.iter().map(|r| r.span_keys.as_deref()).try_fold(
            IdSet::default(),
            |mut all, keys| {
                all.extend(keys?);
                Some(all)
            },
        );
        match keys {
            Some(keys) => decode_spans(snap, cal, from, to, &keys),
            None => {
                let roots: Vec<u64> = rebuilds.iter().map(|r| r.root).collect();
                decode_spans_of(snap, cal, from, to, &roots)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    /// A full window reaches back for culprits that began before the span; a light one only
    /// to just before the root's creation record.
    #[test]
    fn a_full_window_reaches_back_further_than_a_light_one() {
        assert_eq!(window_start(1_000 * MS, false), 800 * MS);
        assert_eq!(window_start(1_000 * MS, true), 999 * MS);
        assert_eq!(
            window_start(10 * MS, false),
            0,
            "not before the clock's start"
        );
    }

    #[test]
    fn a_batch_begins_at_its_earliest_span_or_trace() {
        let late = crate::analyzer::testing::span(1, 1, 0, "late", 5);
        let start = unix_ns(late.start_time);
        let cal = Calibration::identity(start - 10 * MS);
        let spans = [(late, Judgement::default())];
        assert_eq!(earliest_start(&spans, &[], &cal), start);
        let early = RebuildRequest {
            root: 1,
            trace_id: 2,
            start_ticks: 3 * MS,
            span_keys: None,
            span_count: 1,
        };
        assert_eq!(earliest_start(&spans, &[early], &cal), start - 7 * MS);
        assert_eq!(earliest_start(&[], &[], &cal), 0);
    }
}

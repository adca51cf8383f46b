//! One pass over the recorder for a ready batch: read its window of the rings, decode it once,
//! rebuild the traces the source sampler chose, then explain every span that wants it.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::Ordering;
use std::time::Instant;

use opentelemetry_sdk::trace::{SpanData, SpanProcessor};

use super::Analyzer;
use super::batch::budget;
use super::overload::full_decode_time;
use super::rebuilt::rebuild_chosen;
use super::window::{Window, earliest_start, window_start};
use crate::clock::{self, Calibration};
use crate::slo::Judgement;
use crate::slo::message::RebuildRequest;

impl<P: SpanProcessor> Analyzer<P> {
    /// Enriches `spans` and exports the traces `rebuilds` names, from one copy of the rings.
    pub(super) fn pass(
        &mut self,
        mut spans: Vec<(SpanData, Judgement)>,
        rebuilds: &[RebuildRequest],
    ) {
        // Context switches still in the kernel's rings, and the threads' schedstat and page
        // faults right now, belong to the windows analyzed now (the sampler thread may lag
        // under load, and looks at threads only every 10 ms).
        crate::capture::perf::drain_all();
        crate::capture::os::sample_now();
        let cal = Calibration::now();
        let budget = budget();
        let window = self.read_window(&spans, rebuilds, &cal, budget);
        let started = Instant::now();
        // A bug in the analysis must cost a breakdown, never the span or the thread.
        let decoded = catch_unwind(AssertUnwindSafe(|| window.decode(&cal, &spans, rebuilds))).ok();
        let light = window.light;
        for span in rebuild_chosen(decoded.as_ref(), rebuilds, &cal, &self.scope, &self.stats) {
            crate::background::yield_point();
            let j = self.judge.judge_span_data(&span);
            if j.wants_detail() {
                spans.push((span, j));
            } else {
                self.export_plain(span, &j);
            }
        }
        self.explain_all(spans, decoded.as_ref(), &window, &cal, started, budget);
        self.copy.keep(window.snapshot);
        if !light {
            self.duty.spent(started.elapsed());
        }
        self.share.update();
        self.stats
            .analyzer_cpu_ns
            .store(self.share.run_ns(), Ordering::Relaxed);
    }

    /// Reads the batch's window of the rings: light when the analyzer is overloaded, or when
    /// a full decode of the window is predicted to take longer than `budget`.
    fn read_window(
        &mut self,
        spans: &[(SpanData, Judgement)],
        rebuilds: &[RebuildRequest],
        cal: &Calibration,
        budget: std::time::Duration,
    ) -> Window {
        let mut light = self.overloaded();
        let earliest = earliest_start(spans, rebuilds, cal);
        let mut start = window_start(earliest, light);
        // Only the window is copied: names of spans and tasks created before it (a long-lived
        // culprit's spawn site) are then unknown, and say so. The last batch's copy is
        // extended, so overlapping windows copy each record about once.
        let snapshot = self.copy.read_from(cal.unix_to_ticks(start));
        let taken_at = cal.to_unix_ns(clock::now());
        // A window too busy to decode fully within the budget (the load just rose) is decoded
        // lightly at once, rather than after a stall that loses the traces queued behind it.
        let records: usize = snapshot.threads.iter().map(|t| t.records().len()).sum();
        let predicted = full_decode_time(records, self.share.update());
        if !light && predicted > budget {
            light = true;
            start = window_start(earliest, true);
            self.duty.spent(predicted);
        }
        Window {
            snapshot,
            start,
            taken_at,
            light,
        }
    }
}

//! Explaining one span: its breakdown from the decoded window, its artifact, and both
//! attached to it (`enrich`), within the batch's time budget. In a light batch, the few
//! spans the spotlight chooses go to the full-analysis thread first (`spotlit`).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use opentelemetry_sdk::trace::{SpanData, SpanProcessor};

use super::Analyzer;
use super::batch;
use super::enrich::{self, Extras};
use super::rate::current_second;
use super::window::{Window, unix_ns};
use crate::analysis::{Breakdown, Decoded, Target, analyze_with};
use crate::clock::Calibration;
use crate::slo::Judgement;

/// A span to explain, with its judgement and, where one was made already, its breakdown.
pub(super) type Explaining = (SpanData, Judgement, Option<Breakdown>);

impl<P: SpanProcessor> Analyzer<P> {
    /// Explains and exports each span of a batch (decoded from `window`, lightly or not),
    /// the batch's work begun at `started` with `budget` to spend.
    pub(super) fn explain_all(
        &mut self,
        spans: Vec<(SpanData, Judgement)>,
        decoded: Option<&Decoded>,
        window: &Window,
        cal: &Calibration,
        started: Instant,
        budget: Duration,
    ) {
        let light = window.light;
        // A light batch builds no artifacts: a timeline without polls would mislead. Its spans
        // the spotlight chooses go to the full-analysis thread, the others keep the light
        // breakdowns it made to choose.
        let (spans, with_artifact): (Vec<Explaining>, Vec<bool>) = match decoded {
            Some(d) if light => {
                let rest = self.spotlight(spans, d, window, cal);
                let n = rest.len();
                (rest, vec![false; n])
            }
            _ => {
                let with_artifact = if light {
                    vec![false; spans.len()]
                } else {
                    self.artifacts.choose(&spans, current_second())
                };
                let spans = spans.into_iter().map(|(s, j)| (s, j, None)).collect();
                (spans, with_artifact)
            }
        };
        for ((span, j, made), with_artifact) in spans.into_iter().zip(with_artifact) {
            crate::background::yield_point();
            if let Some(b) = made {
                self.export(self.attach(span, &j, Some((b, None)), true, false));
                continue;
            }
            // Past the budget, the rest of the batch skips the culprit search and artifacts.
            // The budget shrinks with the rings' reach if the load rises meanwhile: a full
            // batch begun on a quiet service must not keep the analyzer while the rings wrap
            // under it (on a saturated core it gets a quarter of the CPU at most).
            let late = started.elapsed() > budget.min(batch::budget());
            let explained = self.explain(span, &j, decoded, light || late, with_artifact && !late);
            self.export(explained);
        }
    }

    /// Hands an explained span, and the synthetic spans that came with it, to the exporter.
    pub(super) fn export(&self, (span, synthetic): (SpanData, Vec<SpanData>)) {
        if let Some(o) = super::observer::observer() {
            o.explained(&span);
        }
        self.inner.on_end(span);
        for s in synthetic {
            self.inner.on_end(s);
        }
    }

    /// One span with its judgement and breakdown attached, and the synthetic spans
    /// `GRANULAR_DETAIL=spans` asks for. Without a breakdown (the decode or the analysis
    /// failed) it says so (`granular.skipped=analysis_error`).
    fn explain(
        &self,
        span: SpanData,
        j: &Judgement,
        decoded: Option<&Decoded>,
        light: bool,
        with_artifact: bool,
    ) -> (SpanData, Vec<SpanData>) {
        let analyzed = decoded.and_then(|d| {
            catch_unwind(AssertUnwindSafe(|| {
                self.analyze(d, &span, light, with_artifact)
            }))
            .ok()
        });
        self.attach(span, j, analyzed, light, with_artifact)
    }

    /// [`Self::explain`] with the analysis made: the breakdown and the artifact's link, if
    /// one was asked for (`with_artifact`).
    pub(super) fn attach(
        &self,
        mut span: SpanData,
        j: &Judgement,
        analyzed: Option<(Breakdown, Option<Result<String, ()>>)>,
        light: bool,
        with_artifact: bool,
    ) -> (SpanData, Vec<SpanData>) {
        self.judge.annotate(&mut span, j);
        let Some((b, artifact)) = analyzed else {
            if self.stats.analysis_errors.fetch_add(1, Ordering::Relaxed) == 0 {
                tracing::warn!(
                    "granular: analyzing span {:?} failed; exported without breakdown",
                    span.name
                );
            }
            enrich::mark_skipped(&mut span, "analysis_error");
            return (span, Vec::new());
        };
        let limited = j.violated && self.artifacts.enabled() && !with_artifact;
        let artifact_skipped = match &artifact {
            Some(Err(())) => Some("store_error"),
            _ if limited => Some(if light { "overload" } else { "rate_limit" }),
            _ => None,
        };
        let extras = Extras {
            sources: &self.sources,
            artifact: artifact.and_then(Result::ok),
            artifact_skipped,
            max_events: self.max_events,
        };
        let counter = if light {
            &self.stats.light_analyzed
        } else {
            &self.stats.enriched
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let synthetic = enrich::enrich(&mut span, &b, self.detail, &extras);
        (span, synthetic)
    }

    /// The breakdown of one span and, `with_artifact`, its artifact link.
    fn analyze(
        &self,
        d: &Decoded,
        span: &SpanData,
        light: bool,
        with_artifact: bool,
    ) -> (Breakdown, Option<Result<String, ()>>) {
        super::fault::check(&span.name);
        let target = target(span);
        let trace_id = u128::from_be_bytes(span.span_context.trace_id().to_bytes());
        let b = analyze_with(d, &target, light);
        let artifact = with_artifact.then(|| {
            self.artifacts
                .put(d, &b, trace_id, target.otel_span_id, &self.stats)
        });
        (b, artifact)
    }
}

/// What the analysis looks for: the span by its id, over its time.
pub(super) fn target(span: &SpanData) -> Target {
    Target {
        otel_span_id: u64::from_be_bytes(span.span_context.span_id().to_bytes()),
        name: span.name.to_string(),
        start: unix_ns(span.start_time),
        end: unix_ns(span.end_time),
    }
}

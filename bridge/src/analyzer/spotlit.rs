//! Spans of light batches that the spotlight chose (`spotlight`), while the full-analysis
//! thread (`full_thread`) makes their full analyses: each waits here with its light
//! breakdown, which it is exported with if its full one fails or takes longer than
//! [`PATIENCE`].

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use opentelemetry_sdk::trace::{SpanData, SpanProcessor};

use super::Analyzer;
use super::explain::{Explaining, target};
use super::full_thread::{Done, Job};
use super::rate::current_second;
use super::spotlight::{self, Candidate};
use super::window::{Window, unix_ns};
use crate::analysis::{Breakdown, Category, Decoded, analyze_with, copy_between, records_between};
use crate::clock::Calibration;
use crate::slo::Judgement;

/// How long a span waits for its full analysis before it is exported with its light one.
pub(super) const PATIENCE: Duration = Duration::from_secs(5);

/// A span waiting for its full analysis.
#[derive(Debug)]
pub(super) struct Spotlit {
    id: u64,
    span: SpanData,
    j: Judgement,
    /// Its light breakdown, to fall back on.
    light: Breakdown,
    /// The CPU time its analysis was predicted to take (counted as spent until it is done).
    predicted: Duration,
    with_artifact: bool,
    since: Instant,
}

impl<P: SpanProcessor> Analyzer<P> {
    /// Sends the spans of a light batch (decoded as `d` from `window`) the spotlight chooses
    /// to the full-analysis thread; returns the others, to explain lightly, each violating
    /// one with the light breakdown made to choose.
    pub(super) fn spotlight(
        &mut self,
        spans: Vec<(SpanData, Judgement)>,
        d: &Decoded,
        window: &Window,
        cal: &Calibration,
    ) -> Vec<Explaining> {
        let room = self.full.room();
        if room == 0 || !self.spotlight.enabled() {
            return spans.into_iter().map(|(s, j)| (s, j, None)).collect();
        }
        let mut candidates = Vec::new();
        let mut lights: Vec<Option<Breakdown>> = vec![None; spans.len()];
        let mut at = Vec::new();
        for (i, (span, j)) in spans.iter().enumerate() {
            if !j.violated {
                continue;
            }
            // A bug in the analysis must cost a breakdown, never the thread: the span is
            // then explained (and fails) as any other.
            let analyzed = catch_unwind(AssertUnwindSafe(|| analyze_with(d, &target(span), true)));
            let Ok(light) = analyzed else { continue };
            let (from, to) = full_window(span, &light);
            let records = records_between(&window.snapshot, cal, from, to);
            candidates.push(Candidate {
                route: &span.name,
                scheduler_wait: scheduler_wait(&light),
                length_ns: unix_ns(span.end_time).saturating_sub(unix_ns(span.start_time)),
                cpu: spotlight::cost(records),
            });
            lights[i] = Some(light);
            at.push(i);
        }
        let chosen = self.spotlight.choose(&candidates, current_second(), room);
        let mut predicted: Vec<Option<Duration>> = vec![None; spans.len()];
        for ((i, c), chosen) in at.into_iter().zip(&candidates).zip(chosen) {
            predicted[i] = chosen.then_some(c.cpu);
        }
        let mut rest = Vec::with_capacity(spans.len());
        for (((span, j), light), predicted) in spans.into_iter().zip(lights).zip(predicted) {
            match (light, predicted) {
                (Some(light), Some(predicted)) => {
                    rest.extend(self.send_full(span, j, light, predicted, window, cal));
                }
                (light, _) => rest.push((span, j, light)),
            }
        }
        rest
    }

    /// Sends a chosen span's full analysis to the thread, the span waiting here meanwhile;
    /// gives it back, with its light breakdown, when the thread is busy after all.
    fn send_full(
        &mut self,
        span: SpanData,
        j: Judgement,
        light: Breakdown,
        predicted: Duration,
        window: &Window,
        cal: &Calibration,
    ) -> Option<Explaining> {
        let with_artifact = self.artifacts.take_one(current_second());
        let (from, to) = full_window(&span, &light);
        self.next_full += 1;
        let job = Job {
            id: self.next_full,
            records: copy_between(&window.snapshot, cal, from, to),
            cal: *cal,
            from,
            to,
            target: target(&span),
            artifact_of_trace: with_artifact
                .then(|| u128::from_be_bytes(span.span_context.trace_id().to_bytes())),
        };
        if !self.full.send(job) {
            // The CPU time it was counted for goes back.
            self.spotlight
                .spent(scheduler_wait(&light), predicted, Duration::ZERO);
            return Some((span, j, Some(light)));
        }
        self.spotlit.push(Spotlit {
            id: self.next_full,
            span,
            j,
            light,
            predicted,
            with_artifact,
            since: Instant::now(),
        });
        None
    }

    /// Attaches the full analyses that finished and exports their spans; with `wait`, waits
    /// up to it for all of them. Spans that waited longer than [`PATIENCE`] (or, after a
    /// `wait`, any still waiting) are exported with their light breakdowns.
    pub(super) fn collect_full(&mut self, wait: Option<Duration>) {
        for done in self.full.finished(wait) {
            self.finish_full(done);
        }
        let now = Instant::now();
        let give_up = |s: &Spotlit| wait.is_some() || now.duration_since(s.since) > PATIENCE;
        let (late, waiting): (Vec<Spotlit>, Vec<Spotlit>) = std::mem::take(&mut self.spotlit)
            .into_iter()
            .partition(give_up);
        self.spotlit = waiting;
        for s in late {
            self.export(self.attach(s.span, &s.j, Some((s.light, None)), true, false));
        }
    }

    /// Whether spans wait for their full analyses.
    pub(super) fn awaiting_full(&self) -> bool {
        !self.spotlit.is_empty()
    }

    fn finish_full(&mut self, done: Done) {
        let Some(at) = self.spotlit.iter().position(|s| s.id == done.id) else {
            return; // given up on already
        };
        let s = self.spotlit.swap_remove(at);
        self.spotlight
            .spent(scheduler_wait(&s.light), s.predicted, done.cpu);
        let analyzed = match done.analysis {
            Some((b, bytes)) => {
                let trace_id = u128::from_be_bytes(s.span.span_context.trace_id().to_bytes());
                let span_id = u64::from_be_bytes(s.span.span_context.span_id().to_bytes());
                let link =
                    bytes.map(|bytes| self.artifacts.keep(bytes, trace_id, span_id, &self.stats));
                (b, link, false)
            }
            None => (s.light, None, true),
        };
        let (b, link, light) = analyzed;
        let explained = self.attach(
            s.span,
            &s.j,
            Some((b, link)),
            light,
            s.with_artifact && !light,
        );
        self.export(explained);
    }
}

/// Whether a span's light breakdown names scheduler wait: only a full analysis names who held
/// the worker.
fn scheduler_wait(light: &Breakdown) -> bool {
    light.dominant == Category::SchedulerWait
}

/// The window (Unix ns) a chosen span's full decode reads.
fn full_window(span: &SpanData, light: &Breakdown) -> (u64, u64) {
    let (start, end) = (unix_ns(span.start_time), unix_ns(span.end_time));
    spotlight::window(start, end, scheduler_wait(light))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::Ordering;

    use opentelemetry::Value;
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SimpleSpanProcessor};

    use super::*;
    use crate::analysis::decode_spans;
    use crate::analysis::idmap::IdSet;
    use crate::analyzer::testing::span;
    use crate::config::Config;
    use crate::recorder::codec::Codec;
    use crate::recorder::codec::span_ids::{SpanIds, TraceRoot};
    use crate::recorder::codec::spans::{SpanClose, SpanEnter, SpanExit, SpanNew};
    use crate::recorder::ring::Ring;
    use crate::recorder::{Owner, RecorderSnapshot, ThreadRecords};
    use crate::slo::{Judge, SloRules, Stats};

    const MS: u64 = 1_000_000;
    const KEY: u64 = (1 << 40) | 1;

    /// A light batch of one violating span (a 30 ms local root, entered for its first and
    /// last millisecond), decoded lightly, through an analyzer whose full analyses may take
    /// `share` of a CPU; the span as exported and the analyzer's counters.
    fn explain_light_batch(share: f64) -> (SpanData, Arc<Stats>) {
        let (trace, id) = (7u128, 9u64);
        let data = span(trace, id, 0, "GET /a", 30);
        let start = unix_ns(data.start_time);
        let meta = tracing::subscriber::with_default(tracing_subscriber::registry(), || {
            tracing::info_span!("GET /a")
        })
        .metadata()
        .expect("enabled under the registry");
        let ring = Ring::new(64);
        // Ticks are ns after the calibration's zero, which is 20 ms before the span.
        let at = |ms: u64| 20 * MS + ms * MS;
        let new = SpanNew {
            key: KEY,
            meta,
            parent: 0,
            span_id: None,
        };
        new.encode(at(0), &ring);
        let root = Some(TraceRoot {
            trace_id: trace,
            remote_parent: None,
        });
        SpanIds {
            key: KEY,
            span_id: id,
            root,
        }
        .encode(at(0), &ring);
        for (enter, exit) in [(0, 1), (29, 30)] {
            let counters = None;
            SpanEnter { key: KEY, counters }.encode(at(enter), &ring);
            SpanExit { key: KEY, counters }.encode(at(exit), &ring);
        }
        SpanClose {
            key: KEY,
            to_analyzer: false,
        }
        .encode(at(30), &ring);
        let snapshot = RecorderSnapshot {
            threads: vec![ThreadRecords {
                ring: 0,
                owners: vec![Owner::default()],
                copy: ring.snapshot(0),
            }],
            ..RecorderSnapshot::default()
        };
        let cal = Calibration::identity(start - 20 * MS);
        let window = Window {
            snapshot,
            start: start - MS,
            taken_at: start + 40 * MS,
            light: true,
        };
        let keys: IdSet<u64> = [KEY].into_iter().collect();
        let d = decode_spans(&window.snapshot, &cal, window.start, window.taken_at, &keys);

        let exporter = InMemorySpanExporter::default();
        let cfg = Config {
            full_analysis_cpu: share,
            ..Config::default()
        };
        let judge = Arc::new(Judge::new(SloRules::parse("*=20ms").unwrap(), true, 0.0));
        let stats = Arc::new(Stats::default());
        let inner = Arc::new(SimpleSpanProcessor::new(exporter.clone()));
        let mut a = Analyzer::new(inner, &cfg, judge, "".into(), stats.clone(), None);
        let j = Judgement {
            violated: true,
            local_root: true,
            ..Judgement::default()
        };
        let budget = Duration::from_secs(1);
        a.explain_all(
            vec![(data, j)],
            Some(&d),
            &window,
            &cal,
            Instant::now(),
            budget,
        );
        a.collect_full(Some(Duration::from_secs(30)));
        let mut spans = exporter.get_finished_spans().expect("exported");
        assert_eq!(spans.len(), 1, "the span is exported once");
        (spans.remove(0), stats)
    }

    fn attribute(span: &SpanData, key: &str) -> Option<Value> {
        let kv = span.attributes.iter().find(|kv| kv.key.as_str() == key);
        kv.map(|kv| kv.value.clone())
    }

    /// A light batch's violating span gets the full analysis from its own window on the
    /// full-analysis thread, and is exported with it; with no CPU for full analyses, it keeps
    /// the light one.
    #[test]
    fn a_light_batch_still_gives_a_violating_span_the_full_analysis() {
        let (full, stats) = explain_light_batch(0.05);
        assert_eq!(
            attribute(&full, "granular.analysis"),
            None,
            "the full analysis"
        );
        assert!(
            attribute(&full, "granular.cause").is_some(),
            "with a breakdown"
        );
        assert_eq!(stats.enriched.load(Ordering::Relaxed), 1);
        assert_eq!(stats.light_analyzed.load(Ordering::Relaxed), 0);

        let (light, stats) = explain_light_batch(0.0);
        assert_eq!(
            attribute(&light, "granular.analysis"),
            Some(Value::from("light"))
        );
        assert_eq!(stats.enriched.load(Ordering::Relaxed), 0);
        assert_eq!(stats.light_analyzed.load(Ordering::Relaxed), 1);
    }
}

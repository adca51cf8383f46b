//! Held traces: with `GRANULAR_SAMPLE=violations` beside tracing-opentelemetry, every span the
//! SDK ends waits here with its trace until the trace's local root ends; then the trace is
//! exported whole or dropped whole ([`Judge::exports_trace`]).
//!
//! Bounded: past `GRANULAR_HOLD_SPANS` held spans the oldest traces are decided early (counted
//! as `hold_overflow`), and a trace held longer than [`HOLD_TIMEOUT`] (its root never ended,
//! or ended in another process) is decided as it stands.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use opentelemetry::trace::TraceId;
use opentelemetry_sdk::trace::SpanData;

use crate::slo::{Judge, Judgement, Stats};

/// How long a trace is held at most.
pub(super) const HOLD_TIMEOUT: Duration = Duration::from_secs(30);

/// How often the held traces are checked for [`HOLD_TIMEOUT`].
const EXPIRE_EVERY: Duration = Duration::from_secs(1);

/// The spans of the traces decided for export.
#[derive(Debug, Default)]
pub(super) struct Released {
    /// To analyze with the batch: violating spans, and the baseline samples of traces in
    /// which nothing violated.
    pub analyze: Vec<(SpanData, Judgement)>,
    /// To export as they are (with their judgement where a rule applied).
    pub plain: Vec<(SpanData, Judgement)>,
}

/// One trace's held spans.
#[derive(Debug)]
struct Held {
    spans: Vec<(SpanData, Judgement)>,
    violated: bool,
    since: Instant,
}

/// The traces held until they are decided.
#[derive(Debug)]
pub(super) struct HeldTraces {
    traces: HashMap<TraceId, Held>,
    /// Spans held, over all traces.
    spans: usize,
    /// `GRANULAR_HOLD_SPANS`.
    limit: usize,
    /// When the traces were last checked for [`HOLD_TIMEOUT`].
    checked: Instant,
    judge: Arc<Judge>,
    stats: Arc<Stats>,
}

impl HeldTraces {
    /// At most `limit` spans held; traces decided by `judge`, counted in `stats`.
    pub(super) fn new(limit: usize, judge: Arc<Judge>, stats: Arc<Stats>) -> Self {
        HeldTraces {
            traces: HashMap::new(),
            spans: 0,
            limit,
            checked: Instant::now(),
            judge,
            stats,
        }
    }

    /// Holds `span`. Its trace is decided when it is the local root; the oldest traces are
    /// decided early while more than the limit are held.
    pub(super) fn hold(&mut self, span: SpanData, j: Judgement) -> Released {
        let mut out = Released::default();
        let trace = span.span_context.trace_id();
        let h = self.traces.entry(trace).or_insert_with(|| Held {
            spans: Vec::new(),
            violated: false,
            since: Instant::now(),
        });
        h.violated |= j.violated;
        h.spans.push((span, j));
        self.spans += 1;
        if j.local_root {
            self.decide(trace, &mut out);
        }
        while self.spans > self.limit {
            self.stats.hold_overflow.fetch_add(1, Ordering::Relaxed);
            let Some(oldest) = self
                .traces
                .iter()
                .min_by_key(|(_, h)| h.since)
                .map(|(t, _)| *t)
            else {
                break;
            };
            self.decide(oldest, &mut out);
        }
        out
    }

    /// Decides the traces held longer than [`HOLD_TIMEOUT`] at `now`, looking at most once
    /// every [`EXPIRE_EVERY`].
    pub(super) fn expire(&mut self, now: Instant) -> Released {
        let mut out = Released::default();
        if now.saturating_duration_since(self.checked) < EXPIRE_EVERY {
            return out;
        }
        self.checked = now;
        let due: Vec<TraceId> = self
            .traces
            .iter()
            .filter(|(_, h)| now.saturating_duration_since(h.since) > HOLD_TIMEOUT)
            .map(|(t, _)| *t)
            .collect();
        for t in due {
            self.decide(t, &mut out);
        }
        out
    }

    /// Decides every held trace (a flush, or the end).
    pub(super) fn decide_all(&mut self) -> Released {
        let mut out = Released::default();
        let all: Vec<TraceId> = self.traces.keys().copied().collect();
        for t in all {
            self.decide(t, &mut out);
        }
        out
    }

    /// Exports or drops a held trace.
    fn decide(&mut self, trace: TraceId, out: &mut Released) {
        let Some(h) = self.traces.remove(&trace) else {
            return;
        };
        self.spans -= h.spans.len();
        let trace_id = u128::from_be_bytes(trace.to_bytes());
        if !self.judge.exports_trace(h.violated, trace_id) {
            self.stats.dropped_traces.fetch_add(1, Ordering::Relaxed);
            self.stats
                .dropped_healthy_spans
                .fetch_add(h.spans.len() as u64, Ordering::Relaxed);
            return;
        }
        self.stats.chosen_traces.fetch_add(1, Ordering::Relaxed);
        self.stats.exported_traces.fetch_add(1, Ordering::Relaxed);
        for (span, j) in h.spans {
            if j.violated || (j.wants_detail() && !h.violated) {
                out.analyze.push((span, j));
            } else {
                out.plain.push((span, j));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyzer::testing::span;
    use crate::slo::SloRules;

    /// Spans named `slow*` violate (their rule's threshold is 0); the rest are healthy.
    fn held(limit: usize, baseline: f64) -> HeldTraces {
        let rules = SloRules::parse("slow*=0ms,*=10s").unwrap();
        let judge = Arc::new(Judge::new(rules, true, baseline));
        HeldTraces::new(limit, judge, Arc::default())
    }

    /// Holds a span of `trace`, judged (`parent` 0: a local root).
    fn hold(h: &mut HeldTraces, trace: u128, id: u64, parent: u64, name: &str) -> Released {
        let s = span(trace, id, parent, name, 5);
        let j = h.judge.judge_span_data(&s);
        h.hold(s, j)
    }

    fn names(spans: &[(SpanData, Judgement)]) -> Vec<&str> {
        spans.iter().map(|(s, _)| s.name.as_ref()).collect()
    }

    #[test]
    fn a_trace_is_decided_when_its_local_root_ends() {
        let mut h = held(100, 0.0);
        let r = hold(&mut h, 1, 2, 1, "slow step");
        assert!(r.analyze.is_empty() && r.plain.is_empty(), "held");
        let r = hold(&mut h, 1, 3, 1, "fast step");
        assert!(r.analyze.is_empty() && r.plain.is_empty(), "held");
        let r = hold(&mut h, 1, 1, 0, "request");
        assert_eq!(
            names(&r.analyze),
            ["slow step"],
            "the violating span is analyzed"
        );
        assert_eq!(
            names(&r.plain),
            ["fast step", "request"],
            "the rest go as they are"
        );
        assert_eq!(h.stats.exported_traces.load(Ordering::Relaxed), 1);
        assert_eq!(h.spans, 0);
    }

    #[test]
    fn a_healthy_trace_is_dropped_whole_and_counted() {
        let mut h = held(100, 0.0);
        hold(&mut h, 1, 2, 1, "fast step");
        let r = hold(&mut h, 1, 1, 0, "request");
        assert!(r.analyze.is_empty() && r.plain.is_empty());
        assert_eq!(h.stats.dropped_traces.load(Ordering::Relaxed), 1);
        assert_eq!(h.stats.dropped_healthy_spans.load(Ordering::Relaxed), 2);
        assert_eq!(h.stats.chosen_traces.load(Ordering::Relaxed), 0);
    }

    /// A baseline trace (every trace, at fraction 1) is exported, its judged spans analyzed
    /// as the healthy sample; a child no rule judges goes as it is.
    #[test]
    fn a_baseline_trace_is_exported_with_its_judged_spans_analyzed() {
        let rules = SloRules::parse("named=10s").unwrap();
        let judge = Arc::new(Judge::new(rules, true, 1.0));
        let mut h = HeldTraces::new(100, judge, Arc::default());
        hold(&mut h, 1, 2, 1, "named");
        hold(&mut h, 1, 3, 1, "unnamed");
        let r = hold(&mut h, 1, 1, 0, "request");
        assert_eq!(names(&r.analyze), ["named", "request"]);
        assert_eq!(names(&r.plain), ["unnamed"]);
    }

    #[test]
    fn past_the_limit_the_oldest_trace_is_decided_early() {
        let mut h = held(2, 0.0);
        hold(&mut h, 1, 11, 10, "slow step");
        std::thread::sleep(Duration::from_millis(2));
        hold(&mut h, 2, 21, 20, "fast step");
        let r = hold(&mut h, 2, 22, 20, "fast step");
        assert_eq!(
            names(&r.analyze),
            ["slow step"],
            "trace 1, the oldest, decided"
        );
        assert_eq!(h.stats.hold_overflow.load(Ordering::Relaxed), 1);
        assert_eq!(h.spans, 2);
    }

    #[test]
    fn a_trace_held_past_the_timeout_is_decided_as_it_stands() {
        let mut h = held(100, 0.0);
        hold(&mut h, 1, 2, 1, "slow step");
        let now = Instant::now();
        assert!(h.expire(now + EXPIRE_EVERY).analyze.is_empty(), "not yet");
        let late = now + HOLD_TIMEOUT + EXPIRE_EVERY * 2;
        assert_eq!(names(&h.expire(late).analyze), ["slow step"]);
        assert!(h.traces.is_empty());
    }
}

//! What the analyzer explained recently, and the last timelines it built, in memory: what
//! `/debug/granular/traces/<trace_id>` serves and what the per-operation view joins its
//! slowest requests with (cause and verdict). Bounded: the last [`KEEP_ANALYSES`] analyses,
//! the last [`KEEP_TIMELINES`] timelines within [`KEEP_TIMELINE_BYTES`], oldest dropped first.

use std::collections::{HashMap, VecDeque};

use opentelemetry::Value;
use opentelemetry_sdk::trace::SpanData;

/// Analyses kept at most.
pub(crate) const KEEP_ANALYSES: usize = 4096;
/// Timelines kept at most.
pub(crate) const KEEP_TIMELINES: usize = 64;
/// Bytes of timelines kept at most.
pub(crate) const KEEP_TIMELINE_BYTES: usize = 32 << 20;

/// A span the analyzer explained.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Explained {
    pub trace_id: u128,
    pub name: String,
    pub route: Option<String>,
    pub duration_ns: u64,
    pub violated: bool,
    /// `granular.cause`.
    pub cause: String,
    /// `granular.verdict`.
    pub verdict: String,
}

impl Explained {
    /// What the debug endpoint keeps of an explained span: `None` for a span without a
    /// breakdown (skipped, or a child the analysis did not reach).
    pub(crate) fn of(span: &SpanData) -> Option<Explained> {
        let attr = |key: &str| {
            span.attributes
                .iter()
                .find(|kv| kv.key.as_str() == key)
                .map(|kv| &kv.value)
        };
        let text = |key: &str| attr(key).map(|v| v.as_str().into_owned());
        Some(Explained {
            trace_id: u128::from_be_bytes(span.span_context.trace_id().to_bytes()),
            name: span.name.to_string(),
            route: text("http.route"),
            duration_ns: span
                .end_time
                .duration_since(span.start_time)
                .map_or(0, |d| d.as_nanos() as u64),
            violated: matches!(attr("granular.slo.violated"), Some(Value::Bool(true))),
            cause: text("granular.cause")?,
            verdict: text("granular.verdict").unwrap_or_default(),
        })
    }
}

/// A kept timeline.
#[derive(Debug, Clone)]
pub(crate) struct Timeline {
    pub span_id: u64,
    pub bytes: Vec<u8>,
}

/// See the module documentation.
#[derive(Debug, Default)]
pub(crate) struct Recent {
    analyses: HashMap<(u128, String), Explained>,
    analysis_order: VecDeque<(u128, String)>,
    timelines: HashMap<u128, Timeline>,
    timeline_order: VecDeque<u128>,
    timeline_bytes: usize,
}

impl Recent {
    pub(crate) fn explained(&mut self, e: Explained) {
        let key = (e.trace_id, e.name.clone());
        if self.analyses.insert(key.clone(), e).is_none() {
            self.analysis_order.push_back(key);
        }
        while self.analysis_order.len() > KEEP_ANALYSES {
            if let Some(old) = self.analysis_order.pop_front() {
                self.analyses.remove(&old);
            }
        }
    }

    /// Keeps `bytes` as trace `trace_id`'s timeline (one per trace: the latest).
    pub(crate) fn timeline(&mut self, trace_id: u128, span_id: u64, bytes: &[u8]) {
        if bytes.len() > KEEP_TIMELINE_BYTES {
            return;
        }
        if let Some(old) = self.timelines.remove(&trace_id) {
            self.timeline_bytes -= old.bytes.len();
            self.timeline_order.retain(|t| *t != trace_id);
        }
        while self.timeline_order.len() >= KEEP_TIMELINES
            || self.timeline_bytes + bytes.len() > KEEP_TIMELINE_BYTES
        {
            let Some(old) = self.timeline_order.pop_front() else {
                break;
            };
            if let Some(t) = self.timelines.remove(&old) {
                self.timeline_bytes -= t.bytes.len();
            }
        }
        self.timeline_bytes += bytes.len();
        self.timeline_order.push_back(trace_id);
        self.timelines.insert(
            trace_id,
            Timeline {
                span_id,
                bytes: bytes.to_vec(),
            },
        );
    }

    /// The analysis of span `name` of trace `trace_id`, if kept.
    pub(crate) fn analysis(&self, trace_id: u128, name: &str) -> Option<&Explained> {
        self.analyses.get(&(trace_id, name.to_string()))
    }

    /// The analyses of trace `trace_id` kept.
    pub(crate) fn analyses_of(&self, trace_id: u128) -> Vec<&Explained> {
        self.analyses
            .values()
            .filter(|e| e.trace_id == trace_id)
            .collect()
    }

    /// Trace `trace_id`'s timeline, if kept.
    pub(crate) fn timeline_of(&self, trace_id: u128) -> Option<&Timeline> {
        self.timelines.get(&trace_id)
    }

    /// Timelines kept now, and their bytes.
    pub(crate) fn timelines_kept(&self) -> (usize, usize) {
        (self.timelines.len(), self.timeline_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timelines_are_bounded_by_count_and_bytes_oldest_dropped_first() {
        let mut r = Recent::default();
        for t in 0..(KEEP_TIMELINES as u128 + 3) {
            r.timeline(t, 1, &[0; 10]);
        }
        assert_eq!(r.timelines_kept(), (KEEP_TIMELINES, KEEP_TIMELINES * 10));
        assert!(r.timeline_of(0).is_none());
        assert!(r.timeline_of(KEEP_TIMELINES as u128 + 2).is_some());
        let big = vec![0; KEEP_TIMELINE_BYTES / 2 + 1];
        r.timeline(1000, 1, &big);
        r.timeline(1001, 1, &big);
        assert!(r.timeline_of(1000).is_none(), "bytes bound the rest");
        assert!(r.timeline_of(1001).is_some());
        assert!(r.timelines_kept().1 <= KEEP_TIMELINE_BYTES);
    }
}

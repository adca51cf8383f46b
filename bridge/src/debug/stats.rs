//! The per-operation statistics: for each span name (and `http.route` where recorded), how
//! many ended, their latency distribution, how many violated their SLO, the violating time by
//! the cause the analyzer found, and the slowest recent ones.
//!
//! Fixed memory: at most [`MAX_OPERATIONS`] operations (~20 KiB each: a [`Histogram`] and a
//! few lists); spans of further operations are counted in `overflow`, not kept.

use std::collections::HashMap;
use std::time::Duration;

use super::histogram::Histogram;
use super::span_ends::SpanEnd;
use crate::slo::Judge;
use crate::slo::judge::SpanFacts;

/// Operations kept at most.
pub(crate) const MAX_OPERATIONS: usize = 128;

/// The slowest requests kept per operation and window.
const SLOWEST: usize = 10;

/// The slowest recent requests are the slowest of the current window and the one before.
const WINDOW_NS: u64 = 60_000_000_000;

/// An operation: a span name and, where recorded, its route.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct OpKey {
    pub name: String,
    pub route: Option<String>,
}

/// One slow request of an operation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Slow {
    pub trace_id: Option<u128>,
    pub duration_ns: u64,
    pub end_unix_ns: u64,
    pub violated: bool,
}

/// The [`SLOWEST`] slowest of the current window and of the one before.
#[derive(Debug, Clone, Default)]
struct Slowest {
    window: u64,
    current: Vec<Slow>,
    previous: Vec<Slow>,
}

impl Slowest {
    fn add(&mut self, s: Slow) {
        let window = s.end_unix_ns / WINDOW_NS;
        if window > self.window {
            self.previous = if window == self.window + 1 {
                std::mem::take(&mut self.current)
            } else {
                Vec::new()
            };
            self.current.clear();
            self.window = window;
        }
        let list = if window == self.window {
            &mut self.current
        } else if window + 1 == self.window {
            &mut self.previous
        } else {
            return;
        };
        if list.len() < SLOWEST {
            list.push(s);
        } else if let Some(least) = list.iter_mut().min_by_key(|x| x.duration_ns)
            && least.duration_ns < s.duration_ns
        {
            *least = s;
        }
    }

    fn both(&self) -> Vec<Slow> {
        let mut all: Vec<Slow> = self.current.iter().chain(&self.previous).cloned().collect();
        all.sort_by_key(|s| std::cmp::Reverse(s.duration_ns));
        all.truncate(SLOWEST);
        all
    }
}

#[derive(Debug, Clone)]
struct Operation {
    key: OpKey,
    latency: Histogram,
    local_roots: u64,
    violated: u64,
    violated_ns: u64,
    /// The SLO rule spans of this operation are judged by.
    rule: Option<usize>,
    /// Violating time the analyzer explained, by cause (`granular.cause`).
    by_cause: Vec<(String, u64)>,
    slowest: Slowest,
}

/// One operation as shown.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OpSummary {
    pub key: OpKey,
    pub count: u64,
    pub local_roots: u64,
    pub mean_ns: u64,
    /// p50, p90, p99, p99.9.
    pub percentiles: [(f64, u64); 4],
    pub max_ns: u64,
    /// `(lowest value, count)` per power of two of nanoseconds.
    pub histogram: Vec<(u64, u64)>,
    /// The SLO rule, as written, and its threshold.
    pub slo: Option<(String, Duration)>,
    pub violated: u64,
    pub violated_ns: u64,
    /// Violating time by cause, largest first; what the analyzer did not explain is the rest
    /// of `violated_ns`.
    pub by_cause: Vec<(String, u64)>,
    pub slowest: Vec<Slow>,
}

/// The operations (see the module documentation).
#[derive(Debug)]
pub(crate) struct Operations {
    judge: Judge,
    ops: Vec<Operation>,
    index: HashMap<OpKey, usize>,
    /// Spans of operations beyond [`MAX_OPERATIONS`].
    overflow_spans: u64,
    overflow_names: std::collections::HashSet<String>,
}

/// Distinct names counted in the overflow at most (the count stops growing there).
const MAX_OVERFLOW_NAMES: usize = 1024;

impl Operations {
    pub(crate) fn new(judge: Judge) -> Self {
        Operations {
            judge,
            ops: Vec::new(),
            index: HashMap::new(),
            overflow_spans: 0,
            overflow_names: Default::default(),
        }
    }

    /// The index of `key`'s operation, added if there is room.
    fn op(&mut self, key: OpKey) -> Option<usize> {
        if let Some(&i) = self.index.get(&key) {
            return Some(i);
        }
        if self.ops.len() >= MAX_OPERATIONS {
            self.overflow_spans += 1;
            if self.overflow_names.len() < MAX_OVERFLOW_NAMES {
                self.overflow_names.insert(key.name);
            }
            return None;
        }
        let rule = self
            .judge
            .rules()
            .matching_index(&key.name, key.route.as_deref());
        self.index.insert(key.clone(), self.ops.len());
        self.ops.push(Operation {
            key,
            latency: Histogram::default(),
            local_roots: 0,
            violated: 0,
            violated_ns: 0,
            rule,
            by_cause: Vec::new(),
            slowest: Slowest::default(),
        });
        Some(self.ops.len() - 1)
    }

    /// Counts a span that ended.
    pub(crate) fn record(&mut self, end: SpanEnd) {
        let key = OpKey {
            name: end.name,
            route: end.route,
        };
        let Some(i) = self.op(key) else { return };
        let op = &mut self.ops[i];
        let violated = self
            .judge
            .judge(&SpanFacts {
                rule: op.rule,
                elapsed: Duration::from_nanos(end.duration_ns),
                error: end.error,
                local_root: end.local_root,
                trace_id: end.trace_id.unwrap_or(0),
            })
            .violated;
        op.latency.record(end.duration_ns);
        op.local_roots += u64::from(end.local_root);
        if violated {
            op.violated += 1;
            op.violated_ns += end.duration_ns;
        }
        op.slowest.add(Slow {
            trace_id: end.trace_id,
            duration_ns: end.duration_ns,
            end_unix_ns: end.end_unix_ns,
            violated,
        });
    }

    /// Adds a violating span the analyzer explained to its operation's time by cause: the
    /// operation of its name and route, else of its name alone (tracing-opentelemetry's spans
    /// keep their route out of the rings).
    pub(crate) fn explained(&mut self, name: &str, route: Option<&str>, cause: &str, ns: u64) {
        let with_route = OpKey {
            name: name.to_string(),
            route: route.map(str::to_string),
        };
        let key = if self.index.contains_key(&with_route) || route.is_none() {
            with_route
        } else {
            OpKey {
                name: name.to_string(),
                route: None,
            }
        };
        let Some(i) = self.op(key) else { return };
        let op = &mut self.ops[i];
        match op.by_cause.iter_mut().find(|(c, _)| c == cause) {
            Some((_, total)) => *total += ns,
            None => op.by_cause.push((cause.to_string(), ns)),
        }
    }

    /// Every operation, local roots first, then by name.
    pub(crate) fn summaries(&self) -> Vec<OpSummary> {
        let mut out: Vec<OpSummary> = self
            .ops
            .iter()
            .map(|op| {
                let h = &op.latency;
                let mut by_cause = op.by_cause.clone();
                by_cause.sort_by_key(|(_, ns)| std::cmp::Reverse(*ns));
                OpSummary {
                    key: op.key.clone(),
                    count: h.count(),
                    local_roots: op.local_roots,
                    mean_ns: h.mean(),
                    percentiles: [0.5, 0.9, 0.99, 0.999].map(|q| (q, h.quantile(q))),
                    max_ns: h.max(),
                    histogram: h.octaves(),
                    slo: op
                        .rule
                        .and_then(|i| self.judge.rules().get(i))
                        .map(|r| (r.to_string(), r.threshold)),
                    violated: op.violated,
                    violated_ns: op.violated_ns,
                    by_cause,
                    slowest: op.slowest.both(),
                }
            })
            .collect();
        out.sort_by(|a, b| (a.local_roots == 0, &a.key).cmp(&(b.local_roots == 0, &b.key)));
        out
    }

    /// Spans of operations that did not fit, and how many distinct names they had.
    pub(crate) fn overflow(&self) -> (u64, usize) {
        (self.overflow_spans, self.overflow_names.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slo::SloRules;

    fn end(name: &str, ms: u64, trace: u128) -> SpanEnd {
        SpanEnd {
            name: name.into(),
            route: None,
            trace_id: Some(trace),
            local_root: true,
            error: false,
            duration_ns: ms * 1_000_000,
            end_unix_ns: 1_700_000_000_000_000_000 + u64::try_from(trace).unwrap_or(0),
        }
    }

    fn ops() -> Operations {
        Operations::new(Judge::new(
            SloRules::parse("GET /x=20ms").unwrap(),
            true,
            0.0,
        ))
    }

    #[test]
    fn every_span_is_counted_and_violations_judged_by_its_rule() {
        let mut o = ops();
        for i in 0..99 {
            o.record(end("GET /x", 10, i));
        }
        o.record(end("GET /x", 150, 99));
        o.explained("GET /x", Some("/x"), "blocked_in_poll", 150_000_000);
        let s = &o.summaries()[0];
        assert_eq!(s.count, 100);
        assert_eq!(s.violated, 1);
        assert_eq!(s.violated_ns, 150_000_000);
        assert_eq!(s.by_cause, [("blocked_in_poll".to_string(), 150_000_000)]);
        assert_eq!(s.slowest[0].trace_id, Some(99));
        assert_eq!(s.slowest.len(), SLOWEST);
        assert_eq!(s.max_ns, 150_000_000);
        assert_eq!(s.slo.as_ref().map(|(r, _)| r.as_str()), Some("GET /x=20ms"));
    }

    #[test]
    fn operations_beyond_the_limit_are_counted_not_kept() {
        let mut o = ops();
        for i in 0..(MAX_OPERATIONS as u128 + 5) {
            o.record(end(&format!("op{i}"), 1, i));
        }
        assert_eq!(o.summaries().len(), MAX_OPERATIONS);
        assert_eq!(o.overflow(), (5, 5));
    }

    #[test]
    fn the_slowest_are_kept_from_this_window_and_the_last() {
        let mut s = Slowest::default();
        let at = |ms, end_s: u64| Slow {
            trace_id: None,
            duration_ns: ms,
            end_unix_ns: end_s * 1_000_000_000,
            violated: false,
        };
        s.add(at(500, 0));
        s.add(at(7, 61));
        assert_eq!(s.both().len(), 2, "the window before is kept");
        s.add(at(9, 200));
        assert_eq!(
            s.both().iter().map(|x| x.duration_ns).collect::<Vec<_>>(),
            [9]
        );
    }
}

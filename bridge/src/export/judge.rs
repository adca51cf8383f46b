//! Judging a finished span against its SLO. Runs on the request path (inside `on_end`), so it
//! only matches globs and compares durations.

use std::time::Duration;

use opentelemetry::trace::Status;
use opentelemetry_sdk::trace::SpanData;

use crate::config::Config;

/// The verdict on one span.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    /// The rule that applied, as text; `None` when no rule matched.
    pub rule: Option<String>,
    pub threshold: Option<Duration>,
    pub violated: bool,
    /// Chosen for the healthy baseline sample.
    pub baseline: bool,
    /// The span opened its trace's work in this process (no local parent).
    pub local_root: bool,
}

impl Judgement {
    /// Whether the span gets a breakdown.
    pub fn wants_detail(&self) -> bool {
        self.violated || self.baseline
    }
}

/// Judges `span`. Local roots are always judged (against their rule, else none matched means
/// no threshold); other spans only when a rule matches them.
pub fn judge(cfg: &Config, span: &SpanData) -> Judgement {
    let local_root =
        span.parent_span_id == opentelemetry::trace::SpanId::INVALID || span.parent_span_is_remote;
    let route = span
        .attributes
        .iter()
        .find(|kv| kv.key.as_str() == "http.route")
        .map(|kv| kv.value.as_str());
    let rule = cfg.slo.matching(&span.name, route.as_deref());
    let duration = span
        .end_time
        .duration_since(span.start_time)
        .unwrap_or_default();
    let too_slow = rule.is_some_and(|r| duration > r.threshold);
    let failed = cfg.errors_violate
        && matches!(span.status, Status::Error { .. })
        && (rule.is_some() || local_root);
    let violated = too_slow || failed;
    let baseline = !violated
        && (rule.is_some() || local_root)
        && in_baseline(cfg.baseline, span.span_context.trace_id().to_bytes());
    Judgement {
        rule: rule.map(ToString::to_string),
        threshold: rule.map(|r| r.threshold),
        violated,
        baseline,
        local_root,
    }
}

/// Deterministic by trace id, so every span of a trace (and every service using the same
/// fraction) makes the same choice.
pub fn in_baseline(fraction: f64, trace_id: [u8; 16]) -> bool {
    if fraction <= 0.0 {
        return false;
    }
    let low = u64::from_be_bytes(trace_id[8..].try_into().unwrap_or([0; 8]));
    (low as f64 / u64::MAX as f64) < fraction
}

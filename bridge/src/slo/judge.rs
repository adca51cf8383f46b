//! The one judge of a span against its SLO, for both stacks.
//!
//! ```text
//! SDK span ends ─> GranularProcessor::on_end ─ rule from name and http.route ─┐
//! recorded span closes ─> SourceSampler::on_close ─ rule matched when recorded ┴─> SpanFacts
//!     ─> Judge::judge ─> Judgement (violated, baseline; the rule, by index)
//! ```
//!
//! It runs on the request path (inside `on_end`, or at a recorded span's close): comparisons
//! and no allocation. A local trace leaves the process, whole, when one of its spans violated
//! or the trace falls in the baseline fraction ([`Judge::exports_trace`]).

use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::trace::{SpanId, Status};
use opentelemetry_sdk::trace::SpanData;

use super::rules::{SloRule, SloRules};

/// Judges spans by the SLO rules (`GRANULAR_SLO`), whether errors violate
/// (`GRANULAR_ERRORS_VIOLATE`) and the baseline fraction (`GRANULAR_BASELINE`).
#[derive(Debug, Clone)]
pub(crate) struct Judge {
    rules: SloRules,
    errors_violate: bool,
    baseline: f64,
}

/// What the judge needs to know of an ended span.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct SpanFacts {
    /// The index, in the judge's rules, of the first rule matching the span's name or
    /// `http.route` (the earlier of the two); `None` when none matched.
    pub rule: Option<usize>,
    /// How long the span took.
    pub elapsed: Duration,
    /// It ended in error (status `Error`, `otel.status_code = "ERROR"`).
    pub error: bool,
    /// It opened its trace's work in this process (no local parent).
    pub local_root: bool,
    pub trace_id: u128,
}

/// The verdict on one span.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Judgement {
    /// The index of the rule that applied ([`Judge::rule`] gives it); `None` when no rule
    /// matched.
    pub rule: Option<usize>,
    pub violated: bool,
    /// Chosen for the healthy baseline sample.
    pub baseline: bool,
    /// The span opened its trace's work in this process (no local parent).
    pub local_root: bool,
}

impl Judgement {
    /// Whether the span gets a breakdown.
    pub(crate) fn wants_detail(&self) -> bool {
        self.violated || self.baseline
    }
}

impl Judge {
    pub(crate) fn new(rules: SloRules, errors_violate: bool, baseline: f64) -> Self {
        Judge {
            rules,
            errors_violate,
            baseline,
        }
    }

    /// The rules spans are judged by (matched by index into them).
    pub(crate) fn rules(&self) -> &SloRules {
        &self.rules
    }

    /// The rule a judgement applied.
    pub(crate) fn rule(&self, j: &Judgement) -> Option<&SloRule> {
        self.rules.get(j.rule?)
    }

    /// Judges a span. Local roots are always judged (against their rule, else none matched
    /// means no threshold); other spans only when a rule matches them.
    pub(crate) fn judge(&self, span: &SpanFacts) -> Judgement {
        let rule = span.rule.and_then(|i| self.rules.get(i));
        let judged = rule.is_some() || span.local_root;
        let too_slow = rule.is_some_and(|r| span.elapsed > r.threshold);
        let failed = self.errors_violate && span.error && judged;
        let violated = too_slow || failed;
        Judgement {
            rule: rule.and(span.rule),
            violated,
            baseline: !violated && judged && self.in_baseline(span.trace_id),
            local_root: span.local_root,
        }
    }

    /// Judges a span the OpenTelemetry SDK holds (tracing-opentelemetry's, or one the
    /// analyzer rebuilt from the recorder): its rule is matched by its name and `http.route`.
    pub(crate) fn judge_span_data(&self, span: &SpanData) -> Judgement {
        let route = span
            .attributes
            .iter()
            .find(|kv| kv.key.as_str() == "http.route")
            .map(|kv| kv.value.as_str());
        self.judge(&SpanFacts {
            rule: self.rules.matching_index(&span.name, route.as_deref()),
            elapsed: span
                .end_time
                .duration_since(span.start_time)
                .unwrap_or_default(),
            error: matches!(span.status, Status::Error { .. }),
            local_root: span.parent_span_id == SpanId::INVALID || span.parent_span_is_remote,
            trace_id: u128::from_be_bytes(span.span_context.trace_id().to_bytes()),
        })
    }

    /// Whether a local trace leaves the process: one of its spans violated (`violated`), or
    /// it falls in the baseline fraction.
    pub(crate) fn exports_trace(&self, violated: bool, trace_id: u128) -> bool {
        violated || self.in_baseline(trace_id)
    }

    /// Writes the judgement on its span: `granular.slo.violated`, the rule and its threshold
    /// when one applied, `granular.baseline` for a baseline sample.
    pub(crate) fn annotate(&self, span: &mut SpanData, j: &Judgement) {
        let a = &mut span.attributes;
        a.push(KeyValue::new("granular.slo.violated", j.violated));
        if let Some(rule) = self.rule(j) {
            a.push(KeyValue::new(
                "granular.slo.threshold_ms",
                rule.threshold.as_secs_f64() * 1e3,
            ));
            a.push(KeyValue::new("granular.slo.rule", rule.to_string()));
        }
        if j.baseline {
            a.push(KeyValue::new("granular.baseline", true));
        }
    }

    /// Deterministic by trace id (its low 64 bits against the fraction), so every span of a
    /// trace, and every service using the same fraction, makes the same choice.
    fn in_baseline(&self, trace_id: u128) -> bool {
        self.baseline > 0.0 && ((trace_id as u64) as f64 / u64::MAX as f64) < self.baseline
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judge(rules: &str, baseline: f64) -> Judge {
        Judge::new(SloRules::parse(rules).unwrap(), true, baseline)
    }

    fn facts(rule: Option<usize>, elapsed_ms: u64) -> SpanFacts {
        SpanFacts {
            rule,
            elapsed: Duration::from_millis(elapsed_ms),
            error: false,
            local_root: false,
            trace_id: 1,
        }
    }

    #[test]
    fn a_span_violates_past_its_rules_threshold_not_at_it() {
        let j = judge("fast=10ms,*=1s", 0.0);
        assert!(j.judge(&facts(Some(0), 11)).violated);
        assert!(!j.judge(&facts(Some(0), 10)).violated);
        assert!(!j.judge(&facts(Some(1), 11)).violated);
        let v = j.judge(&facts(Some(0), 11));
        assert_eq!(
            j.rule(&v).map(ToString::to_string).as_deref(),
            Some("fast=10ms")
        );
    }

    /// An error violates only where the span is judged: a child no rule names is not.
    #[test]
    fn errors_violate_only_judged_spans() {
        let j = judge("named=1s", 0.0);
        let error = |rule, local_root| SpanFacts {
            error: true,
            local_root,
            ..facts(rule, 1)
        };
        assert!(j.judge(&error(Some(0), false)).violated);
        assert!(
            j.judge(&error(None, true)).violated,
            "local roots are judged"
        );
        assert!(!j.judge(&error(None, false)).violated);
        let lenient = Judge::new(SloRules::parse("named=1s").unwrap(), false, 0.0);
        assert!(!lenient.judge(&error(Some(0), false)).violated);
    }

    /// The table the Collector processor's judge is tested against too: the same verdict and
    /// rule for the same span, rules and `errors_violate`. It pins the difference there was:
    /// the Collector counted an error on any span, the library only on a judged one.
    #[test]
    fn judgements_match_the_shared_table() {
        let rows = crate::slo::shared_table("judgements.json", 20);
        for row in rows {
            let case = row["case"].as_str().unwrap();
            let rules = SloRules::parse(row["rules"].as_str().unwrap()).unwrap();
            let rule = rules.matching_index(row["name"].as_str().unwrap(), row["route"].as_str());
            let j = Judge::new(rules, row["errors_violate"].as_bool().unwrap(), 0.0);
            let got = j.judge(&SpanFacts {
                rule,
                elapsed: Duration::from_nanos(row["duration_ns"].as_u64().unwrap()),
                error: row["error"].as_bool().unwrap(),
                local_root: row["local_root"].as_bool().unwrap(),
                trace_id: 1,
            });
            let want_rule = row["rule"].as_u64().map(|i| i as usize);
            assert_eq!(got.violated, row["violated"].as_bool().unwrap(), "{case}");
            assert_eq!(got.rule, want_rule, "{case}");
        }
    }

    /// The baseline is chosen by trace id, so a trace's spans agree, and only for judged
    /// spans that did not violate (those are exported anyway).
    #[test]
    fn the_baseline_is_a_judged_healthy_span_of_a_chosen_trace() {
        let j = judge("named=1s", 0.5);
        let low = 1u128; // low 64 bits near 0: under any fraction
        let high = u128::from(u64::MAX); // never under a fraction below 1
        let at = |rule, trace_id| SpanFacts {
            trace_id,
            ..facts(rule, 1)
        };
        assert!(j.judge(&at(Some(0), low)).baseline);
        assert!(!j.judge(&at(Some(0), high)).baseline);
        assert!(!j.judge(&at(None, low)).baseline, "not judged");
        assert!(!j.judge(&facts(Some(0), 2_000)).baseline, "violated");
        assert!(j.exports_trace(false, low));
        assert!(!j.exports_trace(false, high));
        assert!(j.exports_trace(true, high));
        assert!(!judge("named=1s", 0.0).exports_trace(false, low));
    }

    /// An SDK span and a recorded span with the same facts get the same verdict: the rule
    /// by name, else by route, whichever comes first in the list.
    #[test]
    fn sdk_spans_are_judged_by_their_name_and_route() {
        use opentelemetry::trace::{SpanContext, SpanKind, TraceFlags, TraceId, TraceState};
        use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};
        use std::time::UNIX_EPOCH;

        let j = judge("route:/slow=5ms,GET /x=50ms", 0.0);
        let start = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let span = SpanData {
            span_context: SpanContext::new(
                TraceId::from_bytes(7u128.to_be_bytes()),
                SpanId::from_bytes(9u64.to_be_bytes()),
                TraceFlags::SAMPLED,
                false,
                TraceState::default(),
            ),
            parent_span_id: SpanId::from_bytes(3u64.to_be_bytes()),
            parent_span_is_remote: false,
            span_kind: SpanKind::Server,
            name: "GET /x".into(),
            start_time: start,
            end_time: start + Duration::from_millis(10),
            attributes: vec![KeyValue::new("http.route", "/slow")],
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: Status::Unset,
            instrumentation_scope: Default::default(),
        };
        let mut span = span;
        let got = j.judge_span_data(&span);
        let recorded = j.judge(&SpanFacts {
            rule: Some(0),
            elapsed: Duration::from_millis(10),
            error: false,
            local_root: false,
            trace_id: 7,
        });
        assert_eq!(got, recorded);
        assert!(got.violated, "route:/slow=5ms comes first");
        j.annotate(&mut span, &got);
        let written: Vec<String> = span.attributes[1..]
            .iter()
            .map(|kv| format!("{}={}", kv.key, kv.value))
            .collect();
        assert_eq!(
            written,
            [
                "granular.slo.violated=true",
                "granular.slo.threshold_ms=5",
                "granular.slo.rule=route:/slow=5ms",
            ]
        );
    }
}

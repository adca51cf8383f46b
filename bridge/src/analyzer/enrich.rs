//! Attaching a breakdown to its span: `granular.*` attributes, span events, and (with
//! `GRANULAR_DETAIL=spans`) synthetic child spans.

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{SpanContext, SpanKind, Status, TraceState};
use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator, SpanData, SpanEvents, SpanLinks};

use crate::analysis::blocked_on;
use crate::analysis::breakdown::{IntervalKind, ms};
use crate::analysis::{Breakdown, Category};
use crate::config::Detail;

/// What to attach besides the breakdown itself.
#[derive(Debug, Clone, Default)]
pub struct Extras<'a> {
    /// The active sources (`granular.sources`).
    pub sources: &'a str,
    /// The artifact's link (`granular.artifact`).
    pub artifact: Option<String>,
    /// Why a violating span has no artifact (`rate_limit`), put on it as
    /// `granular.artifact.skipped`.
    pub artifact_skipped: Option<&'a str>,
    /// Span events added at most (`GRANULAR_MAX_EVENTS`).
    pub max_events: usize,
}

fn at(ns: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(ns)
}

/// Adds the breakdown to `span`; returns synthetic child spans when `detail` asks for them.
pub fn enrich(
    span: &mut SpanData,
    b: &Breakdown,
    detail: Detail,
    extras: &Extras<'_>,
) -> Vec<SpanData> {
    let a = &mut span.attributes;
    a.push(KeyValue::new("granular.cause", b.dominant.key()));
    a.push(KeyValue::new("granular.verdict", b.verdict.clone()));
    for c in Category::ALL {
        a.push(KeyValue::new(
            format!("granular.time.{}_us", c.key()),
            (b.part(c) / 1000) as i64,
        ));
    }
    // What this build or analysis did not observe is left out, not reported as 0.
    if let Some(polls) = b.polls {
        a.push(KeyValue::new("granular.polls", polls as i64));
    }
    if let Some(alloc) = b.alloc {
        a.push(KeyValue::new("granular.alloc.bytes", alloc.bytes as i64));
        a.push(KeyValue::new("granular.alloc.count", alloc.count as i64));
    }
    if let Some(f) = b.page_faults {
        a.push(KeyValue::new("granular.page_faults.minor", f.minor as i64));
        a.push(KeyValue::new("granular.page_faults.major", f.major as i64));
        if let Some(ns) = f.est_ns {
            a.push(KeyValue::new(
                "granular.page_faults.est_us",
                (ns / 1000) as i64,
            ));
        }
    }
    let u = &b.unattributed;
    if let Some(ns) = u.workers_ns {
        a.push(KeyValue::new(
            "granular.unattributed.workers_us",
            (ns / 1000) as i64,
        ));
    }
    if u.pool_busy_ns.is_some() || u.pool_jobs_ns > 0 {
        a.push(KeyValue::new(
            "granular.unattributed.pool_us",
            ((u.pool_busy_ns.unwrap_or(0) + u.pool_jobs_ns) / 1000) as i64,
        ));
    }
    if let Some(w) = b.blocked_on.first() {
        a.push(KeyValue::new("granular.blocked.syscall", w.syscall.clone()));
        if !w.object.is_empty() {
            a.push(KeyValue::new("granular.blocked.object", w.object.clone()));
        }
        if !w.wchan.is_empty() {
            a.push(KeyValue::new("granular.blocked.wchan", w.wchan.clone()));
        }
        if let Some(h) = &w.holder {
            a.push(KeyValue::new("granular.blocked.holder", h.clone()));
        }
        a.push(KeyValue::new(
            "granular.blocked.syscalls",
            blocked_on::table(&b.blocked_on),
        ));
    }
    if let Some(w) = b.pool_blocked_on.first() {
        a.push(KeyValue::new(
            "granular.blocking_pool.syscall",
            w.syscall.clone(),
        ));
        if !w.object.is_empty() {
            a.push(KeyValue::new(
                "granular.blocking_pool.object",
                w.object.clone(),
            ));
        }
    }
    // A span rebuilt from the recorder comes marked (true) when its trace's window lost
    // records; the mark stands whatever the span's own breakdown says.
    if !a.iter().any(|kv| kv.key.as_str() == "granular.data_loss") {
        a.push(KeyValue::new("granular.data_loss", b.data_loss));
    }
    a.push(KeyValue::new(
        "granular.sources",
        extras.sources.to_string(),
    ));
    if b.scheduler_wait_estimated {
        a.push(KeyValue::new("granular.scheduler_wait.estimated", true));
    }
    if b.light {
        a.push(KeyValue::new("granular.analysis", "light"));
    }
    if let Some(c) = b.culprits.first() {
        a.push(KeyValue::new("granular.culprit", c.describe()));
        if let Some(site) = &c.spawn_site {
            a.push(KeyValue::new("granular.culprit.spawn_site", site.clone()));
        }
        if let Some(name) = &c.span_name {
            a.push(KeyValue::new("granular.culprit.span", name.clone()));
        }
        if let Some(t) = c.trace_id {
            a.push(KeyValue::new(
                "granular.culprit.trace_id",
                format!("{t:032x}"),
            ));
        }
        a.push(KeyValue::new(
            "granular.culprit.busy_us",
            (c.overlap_ns / 1000) as i64,
        ));
    }
    if let Some(url) = &extras.artifact {
        a.push(KeyValue::new("granular.artifact", url.clone()));
    }
    if let Some(why) = extras.artifact_skipped {
        a.push(KeyValue::new("granular.artifact.skipped", why.to_string()));
    }
    if detail == Detail::Summary {
        return Vec::new();
    }
    let room = extras.max_events.saturating_sub(span.events.events.len());
    let mut added = 0;
    for i in b.intervals.iter().take(room) {
        let name = if i.kind == IntervalKind::Culprit {
            "granular.culprit_poll".to_string()
        } else {
            format!("granular.{}", i.category.key())
        };
        let mut attributes = vec![
            KeyValue::new("granular.duration_us", ((i.end - i.start) / 1000) as i64),
            KeyValue::new("granular.detail", i.detail.clone()),
        ];
        if let Some(w) = &i.waited {
            attributes.push(KeyValue::new("granular.syscall", w.syscall.clone()));
            if !w.object.is_empty() {
                attributes.push(KeyValue::new("granular.object", w.object.clone()));
            }
        }
        span.events.events.push(opentelemetry::trace::Event::new(
            name,
            at(i.start),
            attributes,
            0,
        ));
        added += 1;
    }
    if added < b.intervals.len() {
        span.events.dropped_count += (b.intervals.len() - added) as u32;
    }
    span.events.events.sort_by_key(|e| e.timestamp);
    if detail != Detail::Spans {
        return Vec::new();
    }
    let ids = RandomIdGenerator::default();
    b.intervals
        .iter()
        .take(extras.max_events)
        .map(|i| {
            synthetic(
                span,
                &ids,
                i.category,
                i.start,
                i.end.max(i.start),
                &i.detail,
            )
        })
        .collect()
}

fn synthetic(
    parent: &SpanData,
    ids: &RandomIdGenerator,
    c: Category,
    start: u64,
    end: u64,
    detail: &str,
) -> SpanData {
    let pc = &parent.span_context;
    let sc = SpanContext::new(
        pc.trace_id(),
        ids.new_span_id(),
        pc.trace_flags(),
        false,
        TraceState::default(),
    );
    SpanData {
        span_context: sc,
        parent_span_id: pc.span_id(),
        parent_span_is_remote: false,
        span_kind: SpanKind::Internal,
        name: Cow::Owned(format!("granular: {} {}", c.words(), ms(end - start))),
        start_time: at(start),
        end_time: at(end),
        attributes: vec![
            KeyValue::new("granular.synthetic", true),
            KeyValue::new("granular.category", c.key()),
            KeyValue::new("granular.detail", Value::from(detail.to_string())),
        ],
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status: Status::Unset,
        instrumentation_scope: parent.instrumentation_scope.clone(),
    }
}

/// Marks a violating span that could not be enriched, and why.
pub(crate) fn mark_skipped(span: &mut SpanData, reason: &'static str) {
    span.attributes
        .push(KeyValue::new("granular.skipped", reason));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::Target;
    use crate::analysis::analyze::analyze;
    use crate::analysis::fixtures::decoded;
    use crate::analyzer::testing::span;

    /// A span rebuilt from the recorder of a trace whose window lost records comes marked;
    /// enriched, it says so once, whatever its own breakdown says.
    #[test]
    fn a_rebuilt_span_marked_with_data_loss_is_marked_once() {
        let mut s = span(1, 2, 0, "GET /", 10);
        s.attributes.push(KeyValue::new("granular.data_loss", true));
        let target = Target {
            otel_span_id: 2,
            name: "GET /".into(),
            start: 0,
            end: 10_000_000,
        };
        let mut b = analyze(&decoded(Vec::new()), &target);
        b.data_loss = false;
        enrich(&mut s, &b, Detail::Summary, &Extras::default());
        let marks: Vec<&Value> = s
            .attributes
            .iter()
            .filter(|kv| kv.key.as_str() == "granular.data_loss")
            .map(|kv| &kv.value)
            .collect();
        assert_eq!(marks, vec![&Value::Bool(true)]);
    }
}

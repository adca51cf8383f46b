//! Traces as Jaeger's query API (`GET /api/traces/{id}`) returns them, with
//! helpers to navigate the span tree and a readable rendering.
//!
//! Times are microseconds since the Unix epoch, durations microseconds.
//! OTel attributes appear as [`Tag`]s (plus `span.kind`, `otel.*`), span
//! events as [`Log`]s whose `event` field is the event name, and the span's
//! resource as the [`ProcessInfo`] its `processID` points to.

use std::collections::{BTreeMap, HashSet};
use std::fmt::{self, Write as _};

use serde::{Deserialize, Deserializer};
use serde_json::Value;

#[derive(Debug, Clone, Deserialize)]
pub struct Trace {
    #[serde(rename = "traceID")]
    pub trace_id: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub spans: Vec<Span>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub processes: BTreeMap<String, ProcessInfo>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Span {
    #[serde(rename = "traceID")]
    pub trace_id: String,
    #[serde(rename = "spanID")]
    pub span_id: String,
    pub operation_name: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub references: Vec<Reference>,
    /// µs since the Unix epoch.
    pub start_time: u64,
    /// µs.
    pub duration: u64,
    #[serde(default, deserialize_with = "null_as_default")]
    pub tags: Vec<Tag>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub logs: Vec<Log>,
    #[serde(rename = "processID")]
    pub process_id: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reference {
    /// `CHILD_OF` (the parent) or `FOLLOWS_FROM` (OTel links).
    pub ref_type: String,
    #[serde(rename = "traceID")]
    pub trace_id: String,
    #[serde(rename = "spanID")]
    pub span_id: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Tag {
    pub key: String,
    /// `string`, `bool`, `int64`, `float64` or `binary`.
    #[serde(rename = "type", default)]
    pub kind: String,
    pub value: Value,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Log {
    /// µs since the Unix epoch.
    pub timestamp: u64,
    #[serde(default, deserialize_with = "null_as_default")]
    pub fields: Vec<Tag>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessInfo {
    pub service_name: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub tags: Vec<Tag>,
}

impl Trace {
    /// The first span called `name`.
    pub fn span_by_name(&self, name: &str) -> Option<&Span> {
        self.spans.iter().find(|span| span.operation_name == name)
    }

    /// The span called `name` that `service` reported (client and server
    /// spans of one HTTP hop often share a name).
    pub fn span_in(&self, service: &str, name: &str) -> Option<&Span> {
        self.spans
            .iter()
            .find(|span| span.operation_name == name && self.service_of(span) == Some(service))
    }

    pub fn span_by_id(&self, span_id: &str) -> Option<&Span> {
        self.spans.iter().find(|span| span.span_id == span_id)
    }

    /// Children of `span` in this trace, in start order.
    pub fn children_of(&self, span: &Span) -> Vec<&Span> {
        let mut children: Vec<&Span> = self
            .spans
            .iter()
            .filter(|child| child.parent_id() == Some(span.span_id.as_str()))
            .collect();
        children.sort_by_key(|child| child.start_time);
        children
    }

    /// The parent of `span`, if it has one and it is in this trace.
    pub fn parent_of(&self, span: &Span) -> Option<&Span> {
        span.parent_id().and_then(|id| self.span_by_id(id))
    }

    /// Spans whose parent is not in this trace (normally just the root), in
    /// start order.
    pub fn roots(&self) -> Vec<&Span> {
        let mut roots: Vec<&Span> = self
            .spans
            .iter()
            .filter(|span| self.parent_of(span).is_none())
            .collect();
        roots.sort_by_key(|span| span.start_time);
        roots
    }

    /// The `service.name` of the process that reported `span`.
    pub fn service_of(&self, span: &Span) -> Option<&str> {
        self.processes
            .get(&span.process_id)
            .map(|process| process.service_name.as_str())
    }

    /// Service names in this trace, sorted, without duplicates.
    pub fn services(&self) -> Vec<&str> {
        let mut services: Vec<&str> = self
            .processes
            .values()
            .map(|process| process.service_name.as_str())
            .collect();
        services.sort_unstable();
        services.dedup();
        services
    }

    /// True when every span's parent has arrived: exactly one root. Spans
    /// reach Jaeger in export batches, children usually before parents, and
    /// each process exports on its own schedule.
    pub fn is_connected(&self) -> bool {
        self.roots().len() == 1
    }

    /// The span tree as indented text: one line per span (service, name,
    /// duration, SLO judgement), then its other `granular.*` attributes —
    /// cause, verdict, the time partition on one line, culprit, artifact,
    /// the rest — and its events (offset from the span's start, name,
    /// duration, detail).
    pub fn render(&self) -> String {
        let mut out = format!(
            "trace {}: {} spans from {}\n",
            self.trace_id,
            self.spans.len(),
            self.services().join(", ")
        );
        let mut seen = HashSet::new();
        for root in self.roots() {
            if let Some(parent) = root.parent_id() {
                let _ = writeln!(out, "(child of span {parent}, which is not in the trace)");
            }
            self.render_span(root, 0, &mut seen, &mut out);
        }
        out
    }

    fn render_span<'a>(
        &'a self,
        span: &'a Span,
        depth: usize,
        seen: &mut HashSet<&'a str>,
        out: &mut String,
    ) {
        if !seen.insert(&span.span_id) {
            return; // malformed trace with a cycle
        }
        let indent = "  ".repeat(depth);
        let _ = writeln!(
            out,
            "{indent}[{}] {}  {:.2} ms{}",
            self.service_of(span).unwrap_or("?"),
            span.operation_name,
            span.duration_ms(),
            judgement(span)
        );
        render_granular_tags(span, &format!("{indent}    "), out);
        for log in &span.logs {
            let offset_ms = (log.timestamp as f64 - span.start_time as f64) / 1000.0;
            let _ = write!(
                out,
                "{indent}    @{offset_ms:+.2} ms {}",
                log.event().unwrap_or("(event)")
            );
            if let Some(us) = log.field("granular.duration_us").and_then(Value::as_f64) {
                let _ = write!(out, " {}", Ms(us / 1000.0));
            }
            if let Some(detail) = log.field("granular.detail") {
                let _ = write!(out, ": {}", DisplayValue(detail));
            }
            for field in log.fields.iter().filter(|field| {
                !matches!(
                    field.key.as_str(),
                    "event" | "granular.duration_us" | "granular.detail"
                )
            }) {
                let _ = write!(out, " {}={}", field.key, DisplayValue(&field.value));
            }
            out.push('\n');
        }
        for child in self.children_of(span) {
            self.render_span(child, depth + 1, seen, out);
        }
    }

    /// Spans that carry a breakdown (`granular.cause`), in start order.
    pub fn enriched_spans(&self) -> Vec<&Span> {
        let mut spans: Vec<&Span> = self
            .spans
            .iter()
            .filter(|span| span.tag("granular.cause").is_some())
            .collect();
        spans.sort_by_key(|span| span.start_time);
        spans
    }
}

/// The breakdown categories, in the order Granular documents them; each is
/// exported as `granular.time.<category>_us`.
pub const GRANULAR_CATEGORIES: [&str; 6] = [
    "running",
    "scheduler_wait",
    "os_wait",
    "blocked_in_poll",
    "blocking_pool",
    "idle",
];

/// Tags shown first, in this order, after the breakdown line; the rest of
/// the `granular.*` tags follow in the order the span carries them.
const LEADING_TAGS: [&str; 8] = [
    "granular.cause",
    "granular.verdict",
    "granular.culprit",
    "granular.culprit.span",
    "granular.culprit.spawn_site",
    "granular.culprit.trace_id",
    "granular.culprit.busy_us",
    "granular.artifact",
];

/// `  [SLO 40 ms VIOLATED, rule ...]` / `  [SLO 10000 ms ok]` for judged spans.
fn judgement(span: &Span) -> String {
    let Some(violated) = span.tag_bool("granular.slo.violated") else {
        return String::new();
    };
    let threshold = span
        .tag_f64("granular.slo.threshold_ms")
        .map_or_else(String::new, |ms| format!(" {} ms", Rounded(ms)));
    if violated {
        let rule = span
            .tag_str("granular.slo.rule")
            .map_or_else(String::new, |rule| format!(", rule {rule}"));
        format!("  [SLO{threshold} VIOLATED{rule}]")
    } else {
        format!("  [SLO{threshold} ok]")
    }
}

/// The `granular.*` tags of `span` other than the judgement (shown on the
/// span's line): cause, verdict, the time partition on one line, culprit,
/// artifact, then the rest.
fn render_granular_tags(span: &Span, indent: &str, out: &mut String) {
    let shown_elsewhere = |key: &str| {
        key.starts_with("granular.time.")
            || matches!(
                key,
                "granular.slo.violated" | "granular.slo.threshold_ms" | "granular.slo.rule"
            )
    };
    let mut tags: Vec<&Tag> = span
        .tags
        .iter()
        .filter(|tag| tag.key.starts_with("granular.") && !shown_elsewhere(&tag.key))
        .collect();
    tags.sort_by_key(|tag| {
        LEADING_TAGS
            .iter()
            .position(|key| *key == tag.key)
            .unwrap_or(LEADING_TAGS.len())
    });
    let breakdown_after = tags
        .iter()
        .position(|tag| tag.key == "granular.verdict")
        .map_or(0, |i| i + 1);
    for (i, tag) in tags.iter().enumerate() {
        if i == breakdown_after {
            render_time_parts(span, indent, out);
        }
        let value = match tag.value.as_f64() {
            Some(n) if tag.kind == "float64" => format!("{}", Rounded(n)),
            _ => DisplayValue(&tag.value).to_string(),
        };
        let _ = writeln!(out, "{indent}{} = {value}", tag.key);
    }
    if breakdown_after >= tags.len() {
        render_time_parts(span, indent, out);
    }
}

/// `granular.time.*: running 0.4 ms, scheduler_wait 151.2 ms, ... (sum
/// 160.7 ms = 100.0% of the span)`, when the span carries the partition.
fn render_time_parts(span: &Span, indent: &str, out: &mut String) {
    let Some(parts) = span.granular_time_parts_us() else {
        return;
    };
    let listed: Vec<String> = GRANULAR_CATEGORIES
        .iter()
        .zip(parts)
        .map(|(category, us)| format!("{category} {}", Ms(us as f64 / 1000.0)))
        .collect();
    let sum: u64 = parts.iter().sum();
    let share = if span.duration == 0 {
        String::new()
    } else {
        format!(
            " = {:.1}% of the span",
            100.0 * sum as f64 / span.duration as f64
        )
    };
    let _ = writeln!(
        out,
        "{indent}granular.time.* = {} (sum {}{share})",
        listed.join(", "),
        Ms(sum as f64 / 1000.0)
    );
}

impl Span {
    /// The parent's span id (the `CHILD_OF` reference).
    pub fn parent_id(&self) -> Option<&str> {
        self.references
            .iter()
            .find(|reference| reference.ref_type == "CHILD_OF")
            .map(|reference| reference.span_id.as_str())
    }

    /// The value of the tag (OTel attribute) `key`.
    pub fn tag(&self, key: &str) -> Option<&Value> {
        self.tags
            .iter()
            .find(|tag| tag.key == key)
            .map(|tag| &tag.value)
    }

    /// OTel span kind: `server`, `client`, `internal`, `producer`, `consumer`.
    pub fn kind(&self) -> Option<&str> {
        self.tag("span.kind").and_then(Value::as_str)
    }

    /// The span's events called `event`.
    pub fn logs_named(&self, event: &str) -> Vec<&Log> {
        self.logs
            .iter()
            .filter(|log| log.event() == Some(event))
            .collect()
    }

    pub fn duration_ms(&self) -> f64 {
        self.duration as f64 / 1000.0
    }

    /// µs since the Unix epoch.
    pub fn end_time(&self) -> u64 {
        self.start_time + self.duration
    }

    /// The tag `key` when it is a string.
    pub fn tag_str(&self, key: &str) -> Option<&str> {
        self.tag(key).and_then(Value::as_str)
    }

    /// The tag `key` when it is an integer (`int64`).
    pub fn tag_i64(&self, key: &str) -> Option<i64> {
        self.tag(key).and_then(Value::as_i64)
    }

    /// The tag `key` when it is a number (`float64` or `int64`).
    pub fn tag_f64(&self, key: &str) -> Option<f64> {
        self.tag(key).and_then(Value::as_f64)
    }

    /// The tag `key` when it is a boolean.
    pub fn tag_bool(&self, key: &str) -> Option<bool> {
        self.tag(key).and_then(Value::as_bool)
    }

    /// The `granular.time.<category>_us` tags in [`GRANULAR_CATEGORIES`]
    /// order, when all six are present as non-negative integers.
    pub fn granular_time_parts_us(&self) -> Option<[u64; 6]> {
        let mut parts = [0; 6];
        for (part, category) in parts.iter_mut().zip(GRANULAR_CATEGORIES) {
            let us = self.tag_i64(&format!("granular.time.{category}_us"))?;
            *part = u64::try_from(us).ok()?;
        }
        Some(parts)
    }

    /// One `granular.time.<category>_us` tag (`category` as in
    /// [`GRANULAR_CATEGORIES`]), when present as an integer.
    pub fn granular_time_us(&self, category: &str) -> Option<i64> {
        self.tag_i64(&format!("granular.time.{category}_us"))
    }
}

impl Log {
    /// The event name.
    pub fn event(&self) -> Option<&str> {
        self.field("event").and_then(Value::as_str)
    }

    pub fn field(&self, key: &str) -> Option<&Value> {
        self.fields
            .iter()
            .find(|field| field.key == key)
            .map(|field| &field.value)
    }
}

/// Strings without JSON quotes, everything else as JSON.
struct DisplayValue<'a>(&'a Value);

impl fmt::Display for DisplayValue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Value::String(text) => f.write_str(text),
            other => write!(f, "{other}"),
        }
    }
}

/// Milliseconds for people: `151.2 ms`, `0.35 ms`, `0 ms`.
struct Ms(f64);

impl fmt::Display for Ms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0;
        if ms == 0.0 {
            f.write_str("0 ms")
        } else if ms.abs() >= 10.0 {
            write!(f, "{ms:.1} ms")
        } else {
            write!(f, "{ms:.2} ms")
        }
    }
}

/// A float with at most three decimals and no trailing zeros.
struct Rounded(f64);

impl fmt::Display for Rounded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = format!("{:.3}", self.0);
        let text = text.trim_end_matches('0').trim_end_matches('.');
        f.write_str(if text == "-0" { "0" } else { text })
    }
}

/// Jaeger writes empty lists and maps as `null`.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A slow span and a healthy child, shaped like Jaeger's answer.
    const TRACE: &str = r#"{
      "traceID": "t1",
      "spans": [
        {"traceID": "t1", "spanID": "a", "operationName": "GET /messages", "references": [],
         "startTime": 1000000, "duration": 160000, "processID": "p1",
         "tags": [
           {"key": "granular.slo.violated", "type": "bool", "value": true},
           {"key": "granular.slo.threshold_ms", "type": "float64", "value": 40},
           {"key": "granular.slo.rule", "type": "string", "value": "GET /messages=40ms"},
           {"key": "granular.sources", "type": "string", "value": "tokio.workers"},
           {"key": "granular.cause", "type": "string", "value": "scheduler_wait"},
           {"key": "granular.verdict", "type": "string", "value": "scheduler wait 150 ms of 160 ms"},
           {"key": "granular.time.running_us", "type": "int64", "value": 400},
           {"key": "granular.time.scheduler_wait_us", "type": "int64", "value": 150000},
           {"key": "granular.time.os_wait_us", "type": "int64", "value": 0},
           {"key": "granular.time.blocked_in_poll_us", "type": "int64", "value": 0},
           {"key": "granular.time.blocking_pool_us", "type": "int64", "value": 0},
           {"key": "granular.time.idle_us", "type": "int64", "value": 9600},
           {"key": "granular.culprit.busy_us", "type": "int64", "value": 150273},
           {"key": "granular.culprit", "type": "string", "value": "GET /report (trace t2)"},
           {"key": "http.route", "type": "string", "value": "/messages"}
         ],
         "logs": [
           {"timestamp": 1001150, "fields": [
             {"key": "event", "type": "string", "value": "granular.scheduler_wait"},
             {"key": "granular.duration_us", "type": "int64", "value": 151089},
             {"key": "granular.detail", "type": "string", "value": "runnable, waiting for a worker"}
           ]}
         ]},
        {"traceID": "t1", "spanID": "b", "operationName": "db.Query",
         "references": [{"refType": "CHILD_OF", "traceID": "t1", "spanID": "a"}],
         "startTime": 1150000, "duration": 6000, "processID": "p1",
         "tags": [
           {"key": "granular.slo.violated", "type": "bool", "value": false},
           {"key": "granular.slo.threshold_ms", "type": "float64", "value": 10000},
           {"key": "granular.slo.rule", "type": "string", "value": "*=10s"}
         ],
         "logs": null}
      ],
      "processes": {"p1": {"serviceName": "messages", "tags": []}}
    }"#;

    #[test]
    fn render_leads_with_the_answer() {
        let trace: Trace = serde_json::from_str(TRACE).expect("trace JSON");
        let expected = "\
trace t1: 2 spans from messages
[messages] GET /messages  160.00 ms  [SLO 40 ms VIOLATED, rule GET /messages=40ms]
    granular.cause = scheduler_wait
    granular.verdict = scheduler wait 150 ms of 160 ms
    granular.time.* = running 0.40 ms, scheduler_wait 150.0 ms, os_wait 0 ms, blocked_in_poll 0 ms, blocking_pool 0 ms, idle 9.60 ms (sum 160.0 ms = 100.0% of the span)
    granular.culprit = GET /report (trace t2)
    granular.culprit.busy_us = 150273
    granular.sources = tokio.workers
    @+1.15 ms granular.scheduler_wait 151.1 ms: runnable, waiting for a worker
  [messages] db.Query  6.00 ms  [SLO 10000 ms ok]
";
        assert_eq!(trace.render(), expected);
    }

    #[test]
    fn breakdown_accessors() {
        let trace: Trace = serde_json::from_str(TRACE).expect("trace JSON");
        let root = trace.span_by_name("GET /messages").expect("root");
        assert_eq!(
            root.granular_time_parts_us(),
            Some([400, 150_000, 0, 0, 0, 9_600])
        );
        assert_eq!(root.granular_time_us("idle"), Some(9_600));
        assert_eq!(root.tag_bool("granular.slo.violated"), Some(true));
        assert_eq!(root.tag_f64("granular.slo.threshold_ms"), Some(40.0));
        assert_eq!(root.tag_str("granular.cause"), Some("scheduler_wait"));
        let names: Vec<&str> = trace
            .enriched_spans()
            .iter()
            .map(|s| s.operation_name.as_str())
            .collect();
        assert_eq!(names, ["GET /messages"]);
        let child = trace.span_by_name("db.Query").expect("child");
        assert_eq!(child.granular_time_parts_us(), None);
    }
}

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
    /// duration), then its `granular.*` attributes and its events.
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
            "{indent}[{}] {}  {:.2} ms",
            self.service_of(span).unwrap_or("?"),
            span.operation_name,
            span.duration_ms()
        );
        for tag in span
            .tags
            .iter()
            .filter(|tag| tag.key.starts_with("granular."))
        {
            let _ = writeln!(
                out,
                "{indent}    {} = {}",
                tag.key,
                DisplayValue(&tag.value)
            );
        }
        for log in &span.logs {
            let offset_ms = (log.timestamp as f64 - span.start_time as f64) / 1000.0;
            let _ = write!(
                out,
                "{indent}    @{offset_ms:+.2} ms {}",
                log.event().unwrap_or("(event)")
            );
            for field in log.fields.iter().filter(|field| field.key != "event") {
                let _ = write!(out, " {}={}", field.key, DisplayValue(&field.value));
            }
            out.push('\n');
        }
        for child in self.children_of(span) {
            self.render_span(child, depth + 1, seen, out);
        }
    }
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

/// Jaeger writes empty lists and maps as `null`.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

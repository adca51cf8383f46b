//! Rebuilding a local trace's spans from the recorder into OpenTelemetry `SpanData`, as
//! `tracing-opentelemetry` (0.34, default settings) would have built them:
//!
//! - name: the `otel.name` field, else the span's name; kind from `otel.kind`; status from
//!   `otel.status_code` / `otel.status_description`, or `Error` when an ERROR-level event was
//!   recorded inside the span;
//! - attributes: `code.file.path`, `code.module.name`, `code.line.number`, `thread.id`,
//!   `thread.name`, `target`, then the span's fields (`otel.*` excluded; a field recorded again
//!   keeps its first position and its last value; `u64` and `Debug` values as strings, as
//!   tracing-opentelemetry does), then `busy_ns` and `idle_ns`;
//! - events: named by their `message` field (else the event's name), with `level`, `target`,
//!   their other fields and `code.*` attributes;
//! - ids: the ids Granular gave the spans (the same ones propagated downstream).
//!
//! Differences: `thread.id` is the OS thread id (tracing-opentelemetry numbers threads itself);
//! span links are not recorded.

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{
    Event, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue, StringValue, Value};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};

use super::decode::{Decoded, FieldValue, SpanInfo};
use super::request::RequestWork;

/// What a rebuild produced.
#[derive(Debug)]
pub struct Rebuilt {
    pub spans: Vec<SpanData>,
    /// Spans of the trace still open at snapshot time (not exported).
    pub unfinished: usize,
    /// The recorder lost records of this trace's window (or its root).
    pub data_loss: bool,
}

fn at(ns: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(ns)
}

fn into_value(v: FieldValue) -> Value {
    match v {
        FieldValue::Bool(b) => Value::Bool(b),
        FieldValue::I64(i) => Value::I64(i),
        FieldValue::F64(f) => Value::F64(f),
        FieldValue::Str(s) => Value::String(s.into()),
    }
}

fn into_string(v: FieldValue) -> String {
    match v {
        FieldValue::Str(s) => s,
        other => as_str(&other).into_owned(),
    }
}

fn as_str(v: &FieldValue) -> Cow<'_, str> {
    match v {
        FieldValue::Str(s) => Cow::Borrowed(s.as_str()),
        FieldValue::Bool(b) => Cow::Owned(b.to_string()),
        FieldValue::I64(i) => Cow::Owned(i.to_string()),
        FieldValue::F64(f) => Cow::Owned(f.to_string()),
    }
}

fn kind_of(s: &str) -> Option<SpanKind> {
    Some(match s.to_ascii_lowercase().as_str() {
        "server" => SpanKind::Server,
        "client" => SpanKind::Client,
        "producer" => SpanKind::Producer,
        "consumer" => SpanKind::Consumer,
        "internal" => SpanKind::Internal,
        _ => return None,
    })
}

fn code_attrs(meta: &'static tracing::Metadata<'static>, out: &mut Vec<KeyValue>) {
    if let Some(f) = meta.file() {
        out.push(KeyValue::new("code.file.path", f));
    }
    if let Some(m) = meta.module_path() {
        out.push(KeyValue::new("code.module.name", m));
    }
    if let Some(l) = meta.line() {
        out.push(KeyValue::new("code.line.number", i64::from(l)));
    }
}

/// Rebuilds every finished span under local root `root` (same trace id for all).
pub fn rebuild(d: &Decoded, root: u64, trace_id: u128, scope: &InstrumentationScope) -> Rebuilt {
    let data_loss = d
        .spans
        .get(&root)
        .is_none_or(|r| d.complete_since.is_some_and(|c| c > r.start));
    let work = RequestWork::collect(d, root);
    let mut spans = Vec::new();
    let mut unfinished = 0;
    for key in &work.spans {
        let Some(info) = d.spans.get(key) else {
            continue;
        };
        let Some(end) = info.end else {
            unfinished += 1;
            continue;
        };
        let parent = if *key == root {
            info.remote_parent.unwrap_or(0)
        } else {
            d.spans.get(&info.parent).map_or(0, |p| p.otel_span_id)
        };
        let busy = d
            .threads
            .iter()
            .flat_map(|t| t.entries_starting_in(info.start, end))
            .filter(|e| e.span == *key)
            .map(|e| e.end.saturating_sub(e.start))
            .sum();
        let thread_name = d.thread_names.get(&info.tid).map(|n| n.clone().into());
        let mut span = span_data(
            info.clone(),
            end,
            busy,
            thread_name,
            trace_id,
            parent,
            scope,
        );
        if *key == root && info.remote_parent.is_some() {
            span.parent_span_is_remote = true;
        }
        if data_loss {
            span.attributes
                .push(KeyValue::new("granular.data_loss", true));
        }
        spans.push(span);
    }
    Rebuilt {
        spans,
        unfinished,
        data_loss,
    }
}

/// One span as tracing-opentelemetry would have built it (see the module documentation):
/// `info` ended at `end` (Unix ns) after `busy` ns entered, created on a thread named
/// `thread_name`; `parent` is its parent's span id (0: none). Takes the span's values rather
/// than copying them.
pub(crate) fn span_data(
    info: SpanInfo,
    end: u64,
    busy: u64,
    thread_name: Option<StringValue>,
    trace_id: u128,
    parent: u64,
    scope: &InstrumentationScope,
) -> SpanData {
    let mut name: Cow<'static, str> = Cow::Borrowed(info.name);
    let mut kind = SpanKind::Internal;
    let mut status = Status::Unset;
    let mut attributes = Vec::with_capacity(info.fields.len() + 8);
    code_attrs(info.meta, &mut attributes);
    attributes.push(KeyValue::new("thread.id", info.tid as i64));
    if let Some(n) = thread_name {
        attributes.push(KeyValue::new("thread.name", n));
    }
    attributes.push(KeyValue::new("target", info.meta.target()));
    let fixed = attributes.len();
    for (field, value) in info.fields {
        match field {
            "otel.name" => name = Cow::Owned(into_string(value)),
            "otel.kind" => kind = kind_of(&as_str(&value)).unwrap_or(kind),
            "otel.status_code" => {
                status = match as_str(&value).to_ascii_lowercase().as_str() {
                    "ok" => Status::Ok,
                    "error" => Status::error(""),
                    _ => Status::Unset,
                }
            }
            "otel.status_description" => status = Status::error(into_string(value)),
            f => {
                let kv = KeyValue::new(f, into_value(value));
                match attributes[fixed..].iter_mut().find(|a| a.key.as_str() == f) {
                    Some(existing) => *existing = kv,
                    None => attributes.push(kv),
                }
            }
        }
    }
    let total = end.saturating_sub(info.start);
    attributes.push(KeyValue::new("busy_ns", busy.min(total) as i64));
    attributes.push(KeyValue::new("idle_ns", total.saturating_sub(busy) as i64));
    let mut events = SpanEvents::default();
    for e in info.events {
        let mut ev_name: Cow<'static, str> = Cow::Borrowed(e.meta.name());
        let mut attrs = vec![
            KeyValue::new("level", e.meta.level().as_str()),
            KeyValue::new("target", e.meta.target()),
        ];
        for (field, value) in e.fields {
            if field == "message" {
                ev_name = Cow::Owned(into_string(value));
            } else {
                attrs.push(KeyValue::new(field, into_value(value)));
            }
        }
        code_attrs(e.meta, &mut attrs);
        if status == Status::Unset && *e.meta.level() == tracing::Level::ERROR {
            status = Status::error("");
        }
        events.events.push(Event::new(ev_name, at(e.at), attrs, 0));
    }
    SpanData {
        span_context: SpanContext::new(
            TraceId::from_bytes(trace_id.to_be_bytes()),
            SpanId::from_bytes(info.otel_span_id.to_be_bytes()),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        ),
        parent_span_id: SpanId::from_bytes(parent.to_be_bytes()),
        parent_span_is_remote: false,
        span_kind: kind,
        name,
        start_time: at(info.start),
        end_time: at(end),
        attributes,
        dropped_attributes_count: 0,
        events,
        links: SpanLinks::default(),
        status,
        instrumentation_scope: scope.clone(),
    }
}

//! The code Granular's span-recording stacks are checked on, and the check: spans rebuilt from
//! the recording must match what tracing-opentelemetry exports for the same code, field by
//! field.

use std::collections::BTreeMap;
use std::time::Duration;

use opentelemetry::trace::{SpanKind, Status, TracerProvider as _};
use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::trace::{
    InMemorySpanExporter, SdkTracerProvider, SimpleSpanProcessor, SpanData,
};
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;

#[derive(Debug)]
struct Thing {
    _n: u8,
}

/// The code under test: a request with three steps, fields of every kind, a late `record`,
/// events, reserved `otel.*` fields. `slow` makes the root violate its SLO.
pub async fn request(slow: bool) {
    let root = tracing::info_span!(
        "GET /messages",
        otel.kind = "server",
        http.route = "/messages",
        http.response.status_code = tracing::field::Empty,
        big = 18_000_000_000_000_000_000u64,
    );
    async {
        tracing::info_span!("auth.AccessToken", user = "alice", admin = false)
            .in_scope(|| tracing::info!(token_ttl = 30, "token issued"));
        async { tokio::time::sleep(Duration::from_millis(1)).await }
            .instrument(tracing::info_span!(
                "cache.Lookup",
                hit = false,
                ratio = 0.5
            ))
            .await;
        async {
            if slow {
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
            tracing::error!(thing = ?Thing { _n: 1 }, "query failed once");
        }
        .instrument(tracing::info_span!(
            "db.Query",
            otel.status_code = "error",
            rows = 3i64
        ))
        .await;
        tracing::Span::current().record("http.response.status_code", 200i64);
    }
    .instrument(root)
    .await;
}

pub fn run(subscriber: impl Into<tracing::Dispatch>, slow: bool) {
    let rt = granular::instrument_runtime(&mut tokio::runtime::Builder::new_current_thread())
        .enable_all()
        .build()
        .unwrap();
    tracing::dispatcher::with_default(&subscriber.into(), || rt.block_on(request(slow)));
}

pub fn attrs(s: &SpanData) -> BTreeMap<String, Value> {
    s.attributes
        .iter()
        .filter(|kv| !kv.key.as_str().starts_with("granular."))
        .map(|kv: &KeyValue| (kv.key.to_string(), kv.value.clone()))
        .collect()
}

pub fn by_name(spans: &[SpanData]) -> BTreeMap<String, &SpanData> {
    spans
        .iter()
        .filter(|s| !s.name.starts_with("granular:"))
        .map(|s| (s.name.to_string(), s))
        .collect()
}

/// What tracing-opentelemetry exports for one request (`slow`: its root violates).
pub fn reference(slow: bool) -> Vec<SpanData> {
    let reference = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(SimpleSpanProcessor::new(reference.clone()))
        .build();
    run(
        tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("granular"))),
        slow,
    );
    let spans = reference.get_finished_spans().unwrap();
    assert_eq!(spans.len(), 4);
    spans
}

/// `got`, one trace of [`request`] as `stack` exported it, matches `expected`, field by field
/// (Granular's own `granular.*` attributes and events aside; thread ids and times entered
/// present, their values not compared).
pub fn assert_same_spans(stack: &str, expected: &[SpanData], got: &[SpanData], slow: bool) {
    let (want, have) = (by_name(expected), by_name(got));
    assert_eq!(
        want.keys().collect::<Vec<_>>(),
        have.keys().collect::<Vec<_>>(),
        "{stack}: same spans"
    );
    let trace = have["GET /messages"].span_context.trace_id();
    for (name, w) in &want {
        let name = format!("{stack}: {name}");
        let h = have[name.rsplit(": ").next().unwrap_or_default()];
        assert_eq!(h.span_context.trace_id(), trace, "{name}: one trace");
        assert_eq!(h.span_kind, w.span_kind, "{name}: kind");
        assert_eq!(h.status, w.status, "{name}: status");
        assert_eq!(
            h.instrumentation_scope.name(),
            w.instrumentation_scope.name()
        );
        // Parent by name: the ids differ between the two runs, the tree must not.
        let parent_name = |all: &BTreeMap<String, &SpanData>, s: &SpanData| {
            all.values()
                .find(|p| p.span_context.span_id() == s.parent_span_id)
                .map(|p| p.name.to_string())
        };
        assert_eq!(
            parent_name(&have, h),
            parent_name(&want, w),
            "{name}: parent"
        );
        let (mut wa, mut ha) = (attrs(w), attrs(h));
        for timing in ["thread.id", "busy_ns", "idle_ns"] {
            assert!(ha.remove(timing).is_some(), "{name}: {timing} present");
            wa.remove(timing);
        }
        assert_eq!(ha, wa, "{name}: attributes");
        let events = |s: &SpanData| -> Vec<(String, BTreeMap<String, Value>)> {
            s.events
                .iter()
                .filter(|e| !e.name.starts_with("granular."))
                .map(|e| {
                    (
                        e.name.to_string(),
                        e.attributes
                            .iter()
                            .map(|kv| (kv.key.to_string(), kv.value.clone()))
                            .collect(),
                    )
                })
                .collect()
        };
        assert_eq!(events(h), events(w), "{name}: events");
        let dur = |s: &SpanData| s.end_time.duration_since(s.start_time).unwrap();
        assert!(
            dur(h)
                >= Duration::from_millis(if slow && name.ends_with("GET /messages") {
                    30
                } else {
                    0
                })
        );
    }
    assert_eq!(have["GET /messages"].span_kind, SpanKind::Server);
    assert_eq!(have["db.Query"].status, Status::error(""));
}

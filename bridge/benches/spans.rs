//! What recording a request's spans costs on the request path, without a network or a load
//! generator in the way: the demo's `GET /messages` span shape (a server span with its
//! semantic-convention fields and an incoming `traceparent`, three children each entered
//! twice, a late `record`) under each subscriber, one thread, side by side in one run.
//!
//! - `none`: no subscriber and no propagator (what `tracing` costs when nothing listens);
//! - `floor`: a subscriber that keeps nothing (what `tracing`'s own span machinery costs once
//!   anything listens: the part of every subscriber's cost no subscriber can remove);
//! - `granular`: `GranularSubscriber`, what `init()` installs with `GRANULAR_SAMPLE=violations`
//!   (an SLO nothing violates: recorded, judged, dropped);
//! - `otel`: a registry with `tracing-opentelemetry` and a batch processor whose exporter
//!   drops everything (OTel span data built for every span, as with 100 % sampling).
//!
//! Run: `cargo bench -p granular --bench spans`; results in docs/benchmarks.md.

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use granular::SloRules;
use granular::SpanExt;
use granular::{ArtifactSink, Config, SampleMode};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::testing::trace::NoopSpanExporter;
use opentelemetry_sdk::trace::{BatchSpanProcessor, SdkTracerProvider};
use tracing::field::Empty;
use tracing_subscriber::layer::SubscriberExt;

/// One request: the server span and its three steps, as the demo's middleware and handler
/// make them (each step is polled twice, so entered twice, with the server span around it).
fn request(headers: &HashMap<String, String>) {
    let name = black_box("GET /messages");
    let root = tracing::info_span!(
        "http.server.request",
        otel.name = %name,
        otel.kind = "server",
        http.request.method = %"GET",
        http.route = Some("/messages"),
        url.path = %"/messages",
        http.response.status_code = Empty,
        otel.status_code = Empty,
    );
    root.set_remote_parent_from(headers);
    black_box(root.trace_id());
    let step = |span: tracing::Span| {
        for _ in 0..2 {
            let _root = root.enter();
            let _step = span.enter();
        }
    };
    step(root.in_scope(|| tracing::info_span!("auth.AccessToken")));
    step(root.in_scope(|| tracing::info_span!("cache.Lookup", cache.hit = false)));
    step(root.in_scope(|| tracing::info_span!("db.Query")));
    root.record("http.response.status_code", 200i64);
}

/// A subscriber that keeps nothing: every span enabled, ids from a counter. What `tracing`'s
/// own span machinery costs once anything listens (macros, `Span` handles, dispatch).
struct Floor(std::sync::atomic::AtomicU64);

impl tracing::Subscriber for Floor {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let id = self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::span::Id::from_u64(id)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, _: &tracing::Event<'_>) {}
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

fn bench(c: &mut Criterion) {
    let headers = HashMap::from([(
        "traceparent".to_string(),
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_string(),
    )]);
    let mut g = c.benchmark_group("request spans (4 spans)");
    // Before any subscriber exists (one that exists anywhere in the process makes the macros
    // build spans for the no-op default too); without telemetry there is no propagator.
    g.bench_function("none", |b| b.iter(|| request(&headers)));
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    let cfg = Config {
        slo: SloRules::parse("GET /messages=10s").expect("a valid rule"),
        sample: SampleMode::Violations,
        artifacts: ArtifactSink::None,
        ..Config::default()
    };
    granular::install_recorder(&cfg);
    let processor = granular::GranularProcessor::new(
        BatchSpanProcessor::builder(NoopSpanExporter::new()).build(),
        cfg,
        "bench",
    );
    let granular: tracing::Dispatch = granular::GranularSubscriber::new(
        processor.source_sampler(),
        tracing_subscriber::filter::Targets::new().with_default(tracing::Level::INFO),
    )
    .into();
    let _granular_provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .build();
    let otel_provider = SdkTracerProvider::builder()
        .with_span_processor(BatchSpanProcessor::builder(NoopSpanExporter::new()).build())
        .build();
    let otel: tracing::Dispatch = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(otel_provider.tracer("bench")))
        .into();

    let floor = tracing::Dispatch::new(Floor(std::sync::atomic::AtomicU64::new(1)));
    tracing::dispatcher::with_default(&floor, || {
        g.bench_function("floor", |b| b.iter(|| request(&headers)));
    });
    tracing::dispatcher::with_default(&granular, || {
        request(&headers); // take this thread's ring outside the measurement
        g.bench_function("granular", |b| b.iter(|| request(&headers)));
    });
    tracing::dispatcher::with_default(&otel, || {
        g.bench_function("otel", |b| b.iter(|| request(&headers)));
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

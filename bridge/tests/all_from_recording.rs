//! `GRANULAR_ALL_FROM=recording`: `all` mode with Granular's own subscriber on the request
//! path. Every trace is exported once: the healthy ones rebuilt from the recording by the
//! stream, as tracing-opentelemetry exports them, field by field; the violating one by the
//! analyzer, with its breakdown.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;

use granular::SloRules;
use granular::{AllFrom, ArtifactSink, Config, GranularProcessor, GranularSubscriber, SampleMode};
use opentelemetry::Value;
use opentelemetry_sdk::trace::{
    InMemorySpanExporter, SdkTracerProvider, SimpleSpanProcessor, SpanData,
};

#[path = "support/same_spans.rs"]
mod same_spans;
use same_spans::{assert_same_spans, reference, run};

fn attr(span: &SpanData, key: &str) -> Option<Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.clone())
}

#[test]
fn every_trace_is_exported_once_healthy_ones_as_tracing_opentelemetry_builds_them() {
    let (healthy, slow) = (reference(false), reference(true));
    let cfg = Config {
        slo: SloRules::parse("GET /messages=20ms,*=10s").unwrap(),
        sample: SampleMode::All,
        all_from: AllFrom::Recording,
        errors_violate: false,
        artifacts: ArtifactSink::None,
        ..Config::default()
    };
    granular::install_recorder(&cfg);
    let exporter = InMemorySpanExporter::default();
    let processor = GranularProcessor::new(SimpleSpanProcessor::new(exporter.clone()), cfg, "test");
    let sampler = processor.source_sampler();
    processor.stream_every_trace();
    let stats = processor.stats();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .build();
    let stack = || {
        GranularSubscriber::new(
            sampler.clone(),
            tracing_subscriber::filter::Targets::new().with_default(tracing::Level::INFO),
        )
    };
    run(stack(), false);
    run(stack(), true);
    run(stack(), false);
    provider.force_flush().unwrap();

    let got = exporter.get_finished_spans().unwrap();
    let mut traces: BTreeMap<_, Vec<SpanData>> = BTreeMap::new();
    for s in got {
        traces
            .entry(u128::from_be_bytes(s.span_context.trace_id().to_bytes()))
            .or_default()
            .push(s);
    }
    assert_eq!(
        traces.len(),
        3,
        "every trace exported: {traces:#?}\n{stats:?}"
    );
    let mut violating = 0;
    for spans in traces.values() {
        let root = spans
            .iter()
            .find(|s| s.name == "GET /messages")
            .expect("each trace's root");
        let violated = attr(root, "granular.slo.violated");
        if violated == Some(Value::Bool(true)) {
            violating += 1;
            assert!(attr(root, "granular.cause").is_some(), "{root:#?}");
            assert_same_spans("violating", &slow, spans, true);
        } else {
            assert_eq!(violated, Some(Value::Bool(false)), "judged: {root:#?}");
            assert_same_spans("healthy, from the recording", &healthy, spans, false);
        }
    }
    assert_eq!(violating, 1);
    assert_eq!(stats.streamed_spans.load(Relaxed), 8, "{stats:?}");
    assert_eq!(stats.chosen_traces.load(Relaxed), 1, "{stats:?}");
    assert_eq!(stats.exported_traces.load(Relaxed), 1, "{stats:?}");
    assert_eq!(
        stats.dropped_traces.load(Relaxed),
        0,
        "exported, not dropped"
    );
    assert_eq!(stats.stream_unexported_spans.load(Relaxed), 0, "{stats:?}");
}

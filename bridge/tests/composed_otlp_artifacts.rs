//! `GRANULAR_ARTIFACTS=otlp` in a stack composed by hand: the artifact store is the
//! application's OTLP log pipeline, passed as `granular::OtlpArtifacts`. A violating span's
//! timeline leaves as a log record linked to the span, and the span's `granular.artifact`
//! link names the same artifact.
//!
//! Pins: composed stacks had no way to send artifacts over OTLP (the store type was private)
//! and wrote none, silently.

#[path = "support/composed.rs"]
mod composed;

use std::time::Duration;

use granular::{ArtifactSink, Config, SloRules};
use opentelemetry::logs::AnyValue;
use opentelemetry_sdk::logs::{InMemoryLogExporter, SdkLoggerProvider};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SimpleSpanProcessor};
use tracing::Instrument as _;

#[test]
fn composed_stack_sends_artifacts_through_its_own_log_pipeline() {
    let cfg = Config {
        slo: SloRules::parse("GET /slow=5ms,*=10s").unwrap(),
        artifacts: ArtifactSink::Otlp,
        artifact_base_url: Some("https://artifacts.example".into()),
        ..Config::default()
    };
    let sources = granular::install_recorder(&cfg);
    let logs = InMemoryLogExporter::default();
    let logger_provider = SdkLoggerProvider::builder()
        .with_simple_exporter(logs.clone())
        .build();
    let store = granular::OtlpArtifacts::new(
        opentelemetry::logs::LoggerProvider::logger(&logger_provider, "app"),
        &cfg,
    );
    let spans = InMemorySpanExporter::default();
    let processor = granular::GranularProcessor::new(
        SimpleSpanProcessor::new(spans.clone()),
        cfg,
        sources.active(),
    )
    .with_artifact_store(Box::new(store));
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .build();
    crate::composed::set_global_subscriber(&provider);
    let rt = crate::composed::runtime(1);
    rt.block_on(
        async { tokio::time::sleep(Duration::from_millis(20)).await }
            .instrument(tracing::info_span!("GET /slow")),
    );
    provider.force_flush().unwrap();
    logger_provider.force_flush().unwrap();

    let span = spans
        .get_finished_spans()
        .unwrap()
        .into_iter()
        .find(|s| s.name == "GET /slow")
        .expect("GET /slow exported");
    let link = span
        .attributes
        .iter()
        .find(|kv| kv.key.as_str() == "granular.artifact")
        .map(|kv| kv.value.as_str().to_string())
        .unwrap_or_else(|| panic!("no granular.artifact: {:#?}", span.attributes));
    let id = link
        .strip_prefix("https://artifacts.example/artifacts/")
        .unwrap_or_else(|| panic!("link {link} is not under the configured base URL"));

    let records = logs.get_emitted_logs().unwrap();
    let record = records
        .iter()
        .map(|l| &l.record)
        .find(|r| {
            r.attributes_iter().any(|(k, v)| {
                k.as_str() == "granular.artifact.id"
                    && *v == AnyValue::String(id.to_string().into())
            })
        })
        .unwrap_or_else(|| panic!("no log record for artifact {id} among {}", records.len()));
    assert_eq!(record.event_name(), Some("granular.artifact"));
    let context = record
        .trace_context()
        .expect("the record is linked to the span");
    assert_eq!(context.trace_id, span.span_context.trace_id());
    assert_eq!(context.span_id, span.span_context.span_id());
    match record.body() {
        Some(AnyValue::Bytes(bytes)) => assert!(bytes.len() > 100, "{} bytes", bytes.len()),
        other => panic!("the body is the timeline's bytes, got {other:?}"),
    }
}

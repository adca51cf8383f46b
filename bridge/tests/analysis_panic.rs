//! A panic inside analysis (injected for one span name) is caught and counted: that span is
//! exported with its SLO judgement and `granular.skipped=analysis_error` but no breakdown, and
//! the analyzer goes on analysing the next violating span in full.

#[path = "support/composed.rs"]
mod composed;

use std::sync::atomic::Ordering;
use std::time::Duration;

use granular::{ArtifactSink, Config, SloRules};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SimpleSpanProcessor};
use tracing::Instrument as _;

#[test]
fn a_panic_in_analysis_costs_one_span_its_breakdown_and_nothing_else() {
    let cfg = Config {
        slo: SloRules::parse("*=5ms").unwrap(),
        artifacts: ArtifactSink::None,
        ..Config::default()
    };
    let sources = granular::install_recorder(&cfg);
    let spans = InMemorySpanExporter::default();
    let processor = granular::GranularProcessor::new(
        SimpleSpanProcessor::new(spans.clone()),
        cfg,
        sources.active(),
    );
    let stats = processor.stats();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .build();
    crate::composed::set_global_subscriber(&provider);
    granular::__internal::faults::panic_in_analysis_of(Some("GET /boom"));
    let rt = crate::composed::runtime(1);
    for name in ["GET /boom", "GET /after"] {
        rt.block_on(
            async { tokio::time::sleep(Duration::from_millis(20)).await }
                .instrument(tracing::info_span!("request", otel.name = name)),
        );
    }
    provider.force_flush().unwrap();
    granular::__internal::faults::panic_in_analysis_of(None);

    let exported = spans.get_finished_spans().unwrap();
    let attr = |name: &str, key: &str| {
        let span = exported
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("{name} not exported: {exported:#?}"));
        span.attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| kv.value.to_string())
    };
    assert_eq!(
        attr("GET /boom", "granular.skipped").as_deref(),
        Some("analysis_error")
    );
    assert_eq!(
        attr("GET /boom", "granular.slo.violated").as_deref(),
        Some("true")
    );
    assert_eq!(attr("GET /boom", "granular.cause"), None);
    assert_eq!(
        attr("GET /after", "granular.cause").as_deref(),
        Some("idle")
    );
    assert_eq!(attr("GET /after", "granular.skipped"), None);
    assert_eq!(stats.analysis_errors.load(Ordering::Relaxed), 1);
}

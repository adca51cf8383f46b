//! The composed stack (`support/composed.rs`) over a provider whose only processor is
//! `GranularProcessor` in front of an in-memory exporter: what in-process breakdown tests read
//! their spans from. The including test binary also includes `support/composed.rs` as
//! `composed`.

use std::sync::Arc;
use std::time::Duration;

use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SimpleSpanProcessor};
use tracing::Instrument as _;

/// Installs the stack for `cfg` (its sources already installed) as the global subscriber.
#[allow(dead_code)] // Not every test binary that includes this module calls it.
pub fn install(
    cfg: granular::Config,
    sources: &granular::Sources,
) -> (InMemorySpanExporter, SdkTracerProvider) {
    let (exporter, provider, _) = install_counted(cfg, sources);
    (exporter, provider)
}

/// [`install`], with the processor's counters.
pub fn install_counted(
    cfg: granular::Config,
    sources: &granular::Sources,
) -> (
    InMemorySpanExporter,
    SdkTracerProvider,
    Arc<granular::Stats>,
) {
    let exporter = InMemorySpanExporter::default();
    let processor = granular::GranularProcessor::new(
        SimpleSpanProcessor::new(exporter.clone()),
        cfg,
        sources.active(),
    );
    let stats = processor.stats();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .build();
    crate::composed::set_global_subscriber(&provider);
    (exporter, provider, stats)
}

/// Runs, on a one-worker runtime, one request span per name that sleeps 20 ms each, then
/// flushes; returns a lookup of (span name, attribute) → the attribute's value as text.
#[allow(dead_code)] // Not every test binary that includes this module calls it.
pub fn sleep_spans(
    exporter: &InMemorySpanExporter,
    provider: &SdkTracerProvider,
    names: &[&'static str],
) -> impl Fn(&str, &str) -> Option<String> + use<> {
    let rt = crate::composed::runtime(1);
    for name in names {
        rt.block_on(
            async { tokio::time::sleep(Duration::from_millis(20)).await }
                .instrument(tracing::info_span!("request", otel.name = *name)),
        );
    }
    provider.force_flush().unwrap();
    let spans = exporter.get_finished_spans().unwrap();
    move |name: &str, key: &str| {
        let span = spans
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("{name} not exported: {spans:#?}"));
        span.attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| kv.value.to_string())
    }
}

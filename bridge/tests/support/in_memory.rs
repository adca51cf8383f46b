//! The composed stack (`support/composed.rs`) over a provider whose only processor is
//! `GranularProcessor` in front of an in-memory exporter: what in-process breakdown tests read
//! their spans from. The including test binary also includes `support/composed.rs` as
//! `composed`.

use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SimpleSpanProcessor};

/// Installs the stack for `cfg` (its sources already installed) as the global subscriber.
pub fn install(
    cfg: granular::Config,
    sources: &granular::Sources,
) -> (InMemorySpanExporter, SdkTracerProvider) {
    let exporter = InMemorySpanExporter::default();
    let processor = granular::GranularProcessor::new(
        SimpleSpanProcessor::new(exporter.clone()),
        cfg,
        sources.active(),
    );
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .build();
    crate::composed::set_global_subscriber(&provider);
    (exporter, provider)
}

//! A stack composed by hand, as the README's "Composable" section shows it: `provider`'s
//! tracer behind tracing-opentelemetry's layer, Granular's `RecorderLayer` above it, as the
//! process's global subscriber; and a runtime with Granular's hooks.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt as _;

/// Sets the composed stack over `provider` as the global subscriber (once per test binary).
pub fn set_global_subscriber(provider: &SdkTracerProvider) {
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")))
        .with(granular::RecorderLayer::new());
    tracing::subscriber::set_global_default(subscriber).unwrap();
}

/// A multi-thread runtime of `workers` workers, instrumented by Granular.
pub fn runtime(workers: usize) -> tokio::runtime::Runtime {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    granular::instrument_runtime(&mut builder)
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap()
}

//! Granular: why was this span slow?
//!
//! (Skeleton: the foundation exports spans with tracing-opentelemetry; the flight recorder and
//! the breakdown come next.)

pub mod analysis;
pub mod artifact;
pub mod capture;
pub mod clock;
pub mod config;
pub mod recorder;
pub mod slo;

pub use capture::alloc::Alloc;
pub use capture::blocking::spawn_blocking;
pub use capture::layer::RecorderLayer;
pub use capture::runtime::instrument_runtime;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// What went wrong while setting Granular up.
#[derive(Debug)]
pub struct Error(String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for Error {}

/// Guard returned by [`init`]: flushes and shuts the exporters down when dropped.
#[derive(Debug)]
pub struct Granular {
    provider: SdkTracerProvider,
}

impl Drop for Granular {
    fn drop(&mut self) {
        let _ = self.provider.shutdown();
    }
}

/// One-line setup: reads the environment, installs the global tracing subscriber (fmt + OTel)
/// and the W3C trace-context propagator, exports over OTLP. Call it inside a tokio runtime.
pub fn init() -> Result<Granular, Error> {
    let protocol = std::env::var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        .or_else(|_| std::env::var("OTEL_EXPORTER_OTLP_PROTOCOL"))
        .unwrap_or_else(|_| "grpc".to_string());
    let exporter = match protocol.as_str() {
        "grpc" => opentelemetry_otlp::SpanExporter::builder().with_tonic().build(),
        "http/protobuf" => opentelemetry_otlp::SpanExporter::builder().with_http().build(),
        other => {
            return Err(Error(format!(
                "OTEL_EXPORTER_OTLP_PROTOCOL={other:?} is not supported: expected \"grpc\" or \"http/protobuf\""
            )));
        }
    }
    .map_err(|e| Error(format!("cannot build the OTLP span exporter: {e}")))?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .build();
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    opentelemetry::global::set_tracer_provider(provider.clone());
    let tracer = provider.tracer("granular");
    tracing_subscriber::registry()
        .with(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with(tracing_subscriber::fmt::layer())
        .with(tracing_opentelemetry::layer().with_tracer(tracer))
        .try_init()
        .map_err(|e| Error(format!("a global tracing subscriber is already installed: {e}")))?;
    Ok(Granular { provider })
}

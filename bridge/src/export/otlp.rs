//! The OTLP exporters Granular builds: spans (for [`init`](fn@crate::init)'s tracer provider),
//! logs (artifacts, with `GRANULAR_ARTIFACTS=otlp`) and metrics (the health counters).
//!
//! In: a signal's [`OtlpSignal`] (protocol and compression, read by [`Config`](crate::Config)).
//! Out: the `opentelemetry-otlp` exporter for it, which reads the endpoint, headers and timeout
//! itself from the same `OTEL_EXPORTER_OTLP_*` variables; or, when it cannot be built, why.

use std::fmt;

use crate::config::{OtlpCompression, OtlpProtocol, OtlpSignal};

/// An OTLP exporter `opentelemetry-otlp` could not build: its reason.
#[derive(Debug)]
pub struct ExporterError(pub String);

impl fmt::Display for ExporterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ExporterError {}

/// Builds the OTLP exporter `$exporter` for the `OtlpSignal` `$signal`. A macro because each
/// signal's builder is a type of its own.
macro_rules! otlp_exporter_for {
    ($exporter:ty, $signal:expr) => {{
        use opentelemetry_otlp::{
            WithExportConfig as _, WithHttpConfig as _, WithTonicConfig as _,
        };
        let signal: OtlpSignal = $signal;
        let built = match (signal.protocol, compression(signal.compression)) {
            (OtlpProtocol::Grpc, None) => <$exporter>::builder().with_tonic().build(),
            (OtlpProtocol::Grpc, Some(c)) => <$exporter>::builder()
                .with_tonic()
                .with_compression(c)
                .build(),
            (OtlpProtocol::HttpProtobuf, c) => {
                let b = <$exporter>::builder()
                    .with_http()
                    .with_protocol(opentelemetry_otlp::Protocol::HttpBinary);
                match c {
                    Some(c) => b.with_compression(c).build(),
                    None => b.build(),
                }
            }
        };
        built.map_err(|e| ExporterError(e.to_string()))
    }};
}

/// The span exporter for `signal`.
pub(crate) fn span_exporter(
    signal: OtlpSignal,
) -> Result<opentelemetry_otlp::SpanExporter, ExporterError> {
    otlp_exporter_for!(opentelemetry_otlp::SpanExporter, signal)
}

/// The log exporter for `signal` (artifacts).
pub(crate) fn log_exporter(
    signal: OtlpSignal,
) -> Result<opentelemetry_otlp::LogExporter, ExporterError> {
    otlp_exporter_for!(opentelemetry_otlp::LogExporter, signal)
}

/// The metric exporter for `signal` (the health counters).
pub(crate) fn metric_exporter(
    signal: OtlpSignal,
) -> Result<opentelemetry_otlp::MetricExporter, ExporterError> {
    otlp_exporter_for!(opentelemetry_otlp::MetricExporter, signal)
}

/// The exporter's compression setting; `None` leaves the request uncompressed.
fn compression(c: OtlpCompression) -> Option<opentelemetry_otlp::Compression> {
    match c {
        OtlpCompression::None => None,
        OtlpCompression::Gzip => Some(opentelemetry_otlp::Compression::Gzip),
        OtlpCompression::Zstd => Some(opentelemetry_otlp::Compression::Zstd),
    }
}

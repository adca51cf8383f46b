//! What leaves the process: [`GranularProcessor`], the OpenTelemetry `SpanProcessor` that
//! judges each finished span and hands violating ones to the analyzer, Granular's health
//! metrics, and the OTLP exporters that carry them.

pub(crate) mod delivery;
pub(crate) mod health;
pub(crate) mod otlp;
pub(crate) mod processor;
pub(crate) mod streamer;

pub(crate) use processor::GranularProcessor;

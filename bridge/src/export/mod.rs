//! What leaves the process: [`GranularProcessor`], the OpenTelemetry `SpanProcessor` that
//! judges each finished span and hands violating ones to the analyzer, and Granular's health
//! metrics.

pub(crate) mod health;
pub mod processor;

pub use processor::GranularProcessor;

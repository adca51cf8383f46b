//! From a finished span to what leaves the process: enrichment, artifacts.

pub mod artifacts;
mod cpu_share;
pub mod enrich;
pub(crate) mod health;
pub mod processor;

pub use processor::GranularProcessor;

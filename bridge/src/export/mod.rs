//! From a finished span to what leaves the process: judging, enrichment, artifacts.

pub mod artifacts;
mod cpu_share;
pub mod enrich;
pub(crate) mod health;
pub mod judge;
pub mod processor;
pub mod source_sampling;

pub use processor::{GranularProcessor, Stats};

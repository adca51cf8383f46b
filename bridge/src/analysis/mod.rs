//! Analysis: from a recorder snapshot to a [`Breakdown`] of one span.

pub mod allocations;
pub mod analyze;
pub mod breakdown;
pub mod culprits;
pub mod decode;
#[cfg(test)]
pub(crate) mod fixtures;
pub mod idmap;
pub mod late_wakes;
pub mod os_time;
pub mod ranges;
pub mod rebuild;
pub mod request;
pub mod sweep;
pub mod unattributed;
pub mod verdict;

pub use analyze::analyze_with;
pub use breakdown::{Breakdown, Category, Target};
pub use decode::{Decoded, decode, decode_spans, decode_spans_by_otel_id, decode_spans_of};

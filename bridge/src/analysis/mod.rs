//! Analysis: from a recorder snapshot to a [`Breakdown`] of one span.

pub(crate) mod allocations;
pub(crate) mod analyze;
pub(crate) mod blocked_on;
pub(crate) mod breakdown;
pub(crate) mod culprits;
pub(crate) mod decode;
#[cfg(test)]
pub(crate) mod fixtures;
pub(crate) mod idmap;
pub(crate) mod late_wakes;
pub(crate) mod os_time;
pub(crate) mod page_faults;
pub(crate) mod ranges;
pub(crate) mod rebuild;
pub(crate) mod request;
pub(crate) mod stream;
pub(crate) mod sweep;
pub(crate) mod unattributed;
pub(crate) mod verdict;

pub(crate) use analyze::analyze_with;
pub use breakdown::{Breakdown, Category, Target};
pub(crate) use decode::{
    Decoded, copy_between, decode, decode_between, decode_spans, decode_spans_by_otel_id,
    decode_spans_of, records_between,
};

//! Analysis: from a recorder snapshot to a [`Breakdown`] of one span.

pub mod breakdown;
pub mod decode;
pub mod idmap;
pub mod late_wakes;
pub mod rebuild;
pub mod unattributed;

pub use breakdown::{
    Allocations, Breakdown, Category, Culprit, NoCulprit, Target, analyze, analyze_with,
};
pub use decode::{Decoded, decode, decode_spans, decode_spans_by_otel_id, decode_spans_of};

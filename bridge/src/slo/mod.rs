//! Judging spans against their SLOs, on the request path: the rules (`GRANULAR_SLO`,
//! [`rules`]), the one [`Judge`] both stacks use, the [`SourceSampler`] that judges spans
//! Granular records as they close, and what judged spans send the analyzer (`message`) and
//! count ([`Stats`]).
//!
//! ```text
//! SDK span ends ─> GranularProcessor::on_end ─ rule from name and http.route ─┐
//! recorded span closes ─> SourceSampler::on_close ─ rule matched when recorded ┴─> Judge
//!   GranularProcessor, all: healthy ─> exported plain; violating or baseline ─> Msg::Enrich
//!                     violations: every span ─> Msg::Hold (its trace decided by the analyzer)
//!   SourceSampler: a local root's close decides its trace ─ exported ─> Msg::Rebuild
//!                                                         └ dropped (counted)
//! ```
//!
//! Nothing here blocks or allocates: judging is comparisons, and a message is one
//! non-blocking send (a full queue is counted, never waited on).

pub(crate) mod judge;
pub(crate) mod message;
pub(crate) mod rules;
pub(crate) mod sampler;
pub(crate) mod stats;

pub(crate) use judge::{Judge, Judgement};
pub(crate) use rules::{SloRules, parse_duration};
pub(crate) use sampler::SourceSampler;
pub(crate) use stats::Stats;

/// A table the Collector processor's tests read too
/// (`collector-plugin/granularprocessor/testdata/<file>`), as JSON rows; at least `min_rows`,
/// so that a truncated file fails rather than passes with nothing checked.
#[cfg(test)]
fn shared_table(file: &str, min_rows: usize) -> Vec<serde_json::Value> {
    let path = format!(
        "{}/../collector-plugin/granularprocessor/testdata/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert!(rows.len() >= min_rows, "{path}: {} rows", rows.len());
    rows
}

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

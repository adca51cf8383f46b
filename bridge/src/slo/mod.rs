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

pub mod judge;
pub(crate) mod message;
pub mod rules;
pub mod sampler;
pub mod stats;

pub use judge::{Judge, Judgement};
pub use rules::{SloParseError, SloRules, parse_duration};
pub use sampler::SourceSampler;
pub use stats::Stats;

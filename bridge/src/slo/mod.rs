//! Judging spans against their SLOs: the rules (`GRANULAR_SLO`, [`rules`]).

pub mod rules;

pub use rules::{DURATION_FORM, SloParseError, SloRule, SloRules, glob, parse_duration};

//! Granular's `recorder::record` and `recorder::ring`, included by path so that `ring/`'s
//! `super::record::Record` resolves as it does in the `granular` crate.

#[path = "../../src/recorder/record.rs"]
pub mod record;
#[path = "../../src/recorder/ring/mod.rs"]
pub mod ring;

//! Granular's `recorder::record` and `recorder::ring`, included by path so that `ring.rs`'s
//! `super::record::Record` resolves as it does in the `granular` crate.

#[path = "../../src/recorder/record.rs"]
pub mod record;
#[path = "../../src/recorder/ring.rs"]
pub mod ring;

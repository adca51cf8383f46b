//! Model checks of the flight recorder's ring (`bridge/src/recorder/ring.rs`) with loom.
//!
//! The ring is compiled here from Granular's own source file, unchanged: under `--cfg loom` it
//! imports loom's atomics and fence, so every interleaving and every value a relaxed load may
//! return is explored by the models in `tests/ring.rs`. Without `--cfg loom` this crate is empty.
//!
//! Run: `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p granular-loom --release`

#[cfg(loom)]
pub mod recorder;

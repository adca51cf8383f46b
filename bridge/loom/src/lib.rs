//! Model checks with loom of the flight recorder's ring (`bridge/src/recorder/ring.rs`) and of
//! the span slab of Granular's subscriber (`bridge/src/capture/slab.rs`).
//!
//! Both are compiled here from Granular's own source files, unchanged: under `--cfg loom` they
//! import loom's atomics (and the slab loom's `UnsafeCell`, which checks that the value is never
//! read while written), so every interleaving and every value a relaxed load may return is
//! explored by the models in `tests/`. Without `--cfg loom` this crate is empty.
//!
//! Run: `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p granular-loom --release`

#[cfg(loom)]
pub mod recorder;
#[cfg(loom)]
#[path = "../../src/capture/slab.rs"]
pub mod slab;

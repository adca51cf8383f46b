//! Whether Granular records at all in this process.
//!
//! Off (`GRANULAR_ENABLED=false` or `OTEL_SDK_DISABLED=true`, set by
//! [`install_recorder`](crate::install_recorder)): no recorder is installed, no sampler thread
//! started, no perf event opened, and every event source returns at once — a relaxed load and
//! a branch (`docs/benchmarks.md`, "Disabled"). A runtime built before the configuration was
//! read registered its threads for sampling; `install_recorder` forgets them when it turns
//! Granular off. Once off, Granular stays off for the life of the process.

use std::sync::atomic::{AtomicBool, Ordering};

static OFF: AtomicBool = AtomicBool::new(false);

/// Whether Granular was turned off. Sources call it first, per event: one relaxed load.
#[inline]
pub(crate) fn off() -> bool {
    OFF.load(Ordering::Relaxed)
}

/// Turns Granular off for the rest of the process.
pub(crate) fn turn_off() {
    OFF.store(true, Ordering::Relaxed);
}

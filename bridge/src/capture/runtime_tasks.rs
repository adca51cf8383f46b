//! How many tasks the instrumented runtime holds, sampled into the recorder: more than any
//! worker's run queue can hold ahead of a woken task, which bounds how long tokio takes to
//! poll a task its maintenance woke (`analysis::late_wakes`).
//!
//! The runtime is the first one [`instrument_runtime`](super::runtime::instrument_runtime)
//! started a thread for (its handle is kept for the process's life, so its counters stay
//! readable); a second runtime's tasks are not counted. tokio's `num_alive_tasks` is one
//! atomic load; the analyzer samples it on each turn of its loop (every ~10 ms while traces
//! wait for it), on its own ring.

use std::sync::OnceLock;

use tokio::runtime::Handle;

use crate::recorder;
use crate::recorder::codec::threads::AliveTasks;

static RUNTIME: OnceLock<Handle> = OnceLock::new();

/// Watches the runtime the calling thread belongs to, if none is watched yet.
pub(crate) fn watch_current() {
    if RUNTIME.get().is_none()
        && let Ok(handle) = Handle::try_current()
    {
        let _ = RUNTIME.set(handle);
    }
}

/// Records the watched runtime's task count now (nothing while none is watched).
pub(crate) fn sample() {
    if let Some(handle) = RUNTIME.get() {
        let count = handle.metrics().num_alive_tasks() as u64;
        recorder::write(&AliveTasks { count });
    }
}

//! Blocking-pool accounting. tokio's `spawn_blocking` runs no task hooks, so its jobs are
//! invisible to the runtime sources; [`spawn_blocking`] is a drop-in replacement that records
//! when a job was queued (and by which span and task), when a pool thread started it and when
//! it finished.

use std::sync::atomic::{AtomicU64, Ordering};

use super::context;
use crate::recorder;
use crate::recorder::codec::blocking::{BlockingEnd, BlockingQueued, BlockingStart};

static NEXT_JOB: AtomicU64 = AtomicU64::new(1);

/// Like [`tokio::task::spawn_blocking`], and the job's queueing and running time is counted
/// as `blocking pool` in the breakdown of the span that spawned it.
pub fn spawn_blocking<F, R>(f: F) -> tokio::task::JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    if super::switch::off() {
        return tokio::task::spawn_blocking(f);
    }
    let job = NEXT_JOB.fetch_add(1, Ordering::Relaxed);
    let task = tokio::task::try_id().map_or(0, context::task_id_u64);
    let span = context::current_span();
    recorder::write(&BlockingQueued { job, task, span });
    tokio::task::spawn_blocking(move || {
        recorder::write(&BlockingStart { job });
        let out = f();
        recorder::write(&BlockingEnd { job });
        out
    })
}

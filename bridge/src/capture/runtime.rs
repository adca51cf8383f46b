//! tokio runtime hooks.
//!
//! Stable API: worker park/unpark, thread start/stop (threads are registered with the OS
//! sampler). With `--cfg tokio_unstable`: task spawn (with spawn site, spawning task and
//! current span, which is how work moved to a child task stays attributed to its request),
//! task terminate, poll start/end, and wake-to-poll latency.
//!
//! tokio keeps one callback per hook: installing these replaces hooks set earlier on the same
//! builder, and hooks set later replace these.

use super::os;
use crate::recorder::{self, Kind};

/// Installs Granular's hooks on a runtime builder. Works for multi-thread and current-thread
/// runtimes; call it before `build()`.
pub fn instrument_runtime(builder: &mut tokio::runtime::Builder) -> &mut tokio::runtime::Builder {
    builder
        .on_thread_start(os::register_current_thread)
        .on_thread_stop(os::unregister_current_thread)
        .on_thread_park(|| {
            recorder::record(Kind::Park, 0);
            super::perf::ensure_current_thread();
        })
        .on_thread_unpark(|| recorder::record(Kind::Unpark, 0));
    #[cfg(tokio_unstable)]
    unstable::install(builder);
    builder
}

/// Whether this build sees task polls and spawns (`--cfg tokio_unstable`).
pub const TASK_HOOKS: bool = cfg!(tokio_unstable);

#[cfg(tokio_unstable)]
mod unstable {
    use super::*;
    use crate::capture::{alloc, context};

    pub(super) fn install(builder: &mut tokio::runtime::Builder) {
        builder
            .track_task_schedule_latency()
            .on_task_spawn(|meta| {
                let task = context::task_id_u64(meta.id());
                let location = meta.spawned_at() as *const _ as u64;
                recorder::record_with(
                    Kind::TaskSpawn,
                    task,
                    &[
                        (context::current_task(), context::current_span()),
                        (location, 0),
                    ],
                );
            })
            .on_task_terminate(|meta| {
                recorder::record(Kind::TaskTerminate, context::task_id_u64(meta.id()));
            })
            .on_before_task_poll(|meta| {
                let task = context::task_id_u64(meta.id());
                context::set_current_task(task);
                alloc::record_boundary(Kind::PollStart, task);
            })
            .on_after_task_poll(|meta| {
                let latency = meta
                    .schedule_latency()
                    .map_or(0, |d| d.as_nanos().min(u128::from(u32::MAX)) as u64);
                alloc::record_boundary(Kind::PollEnd, latency);
                context::set_current_task(0);
            });
    }
}

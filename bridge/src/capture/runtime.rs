//! tokio runtime hooks.
//!
//! Stable API: worker park/unpark, thread start/stop (threads are registered with the OS
//! sampler). With `--cfg tokio_unstable`: task spawn (with spawn site, spawning task and
//! current span, which is how work moved to a child task stays attributed to its request),
//! task terminate, poll start/end, and wake-to-poll latency.
//!
//! tokio keeps one callback per hook. A hook set on the builder *before*
//! [`instrument_runtime`] is replaced by Granular's; one set *after* replaces Granular's, and
//! Granular then misses that event (a park hook set later, for instance, hides every park:
//! scheduler wait and idle time are then misjudged). To keep hooks of your own, hand them to
//! [`instrument_runtime_with`] in a [`RuntimeHooks`]: Granular's hooks call them.
//!
//! With Granular off ([`switch`]), each hook returns at once after one relaxed
//! load; your hooks still run.

use std::fmt;
use std::sync::Arc;

use super::{os, switch};
use crate::recorder;
use crate::recorder::codec::threads::{Park, Unpark};

/// A callback of yours for a thread hook.
type ThreadHook = Arc<dyn Fn() + Send + Sync>;
/// A callback of yours for a task hook (`--cfg tokio_unstable`).
#[cfg(tokio_unstable)]
type TaskHook = Arc<dyn Fn(&tokio::runtime::TaskMeta<'_>) + Send + Sync>;

/// Runtime hooks of your own, called by Granular's (tokio keeps one callback per hook, so
/// setting them on the builder next to [`instrument_runtime`] would replace Granular's or be
/// replaced by them).
///
/// Granular's work brackets yours: on thread start, unpark, task spawn and before a poll
/// Granular records first and then calls you; on thread stop, park, task terminate and after a
/// poll you are called first. Your hook's time therefore counts as the worker's busy time (and,
/// around a poll, as the task's running time), never as parked or idle.
///
/// ```
/// let mut builder = tokio::runtime::Builder::new_multi_thread();
/// let hooks = granular::RuntimeHooks::new()
///     .on_thread_start(|| println!("worker started"))
///     .on_thread_park(|| { /* your metrics */ });
/// let rt = granular::instrument_runtime_with(&mut builder, hooks)
///     .enable_all()
///     .build()?;
/// # drop(rt);
/// # Ok::<_, std::io::Error>(())
/// ```
#[derive(Clone, Default)]
pub struct RuntimeHooks {
    thread_start: Option<ThreadHook>,
    thread_stop: Option<ThreadHook>,
    thread_park: Option<ThreadHook>,
    thread_unpark: Option<ThreadHook>,
    #[cfg(tokio_unstable)]
    task_spawn: Option<TaskHook>,
    #[cfg(tokio_unstable)]
    task_terminate: Option<TaskHook>,
    #[cfg(tokio_unstable)]
    before_task_poll: Option<TaskHook>,
    #[cfg(tokio_unstable)]
    after_task_poll: Option<TaskHook>,
}

impl RuntimeHooks {
    /// No hooks of your own.
    pub fn new() -> Self {
        Self::default()
    }

    /// tokio's `on_thread_start`, called after Granular registers the thread.
    pub fn on_thread_start(mut self, f: impl Fn() + Send + Sync + 'static) -> Self {
        self.thread_start = Some(Arc::new(f));
        self
    }

    /// tokio's `on_thread_stop`, called before Granular unregisters the thread.
    pub fn on_thread_stop(mut self, f: impl Fn() + Send + Sync + 'static) -> Self {
        self.thread_stop = Some(Arc::new(f));
        self
    }

    /// tokio's `on_thread_park`, called before Granular records the park.
    pub fn on_thread_park(mut self, f: impl Fn() + Send + Sync + 'static) -> Self {
        self.thread_park = Some(Arc::new(f));
        self
    }

    /// tokio's `on_thread_unpark`, called after Granular records the unpark.
    pub fn on_thread_unpark(mut self, f: impl Fn() + Send + Sync + 'static) -> Self {
        self.thread_unpark = Some(Arc::new(f));
        self
    }

    /// tokio's `on_task_spawn` (`--cfg tokio_unstable`), called after Granular records it.
    #[cfg(tokio_unstable)]
    pub fn on_task_spawn(
        mut self,
        f: impl Fn(&tokio::runtime::TaskMeta<'_>) + Send + Sync + 'static,
    ) -> Self {
        self.task_spawn = Some(Arc::new(f));
        self
    }

    /// tokio's `on_task_terminate` (`--cfg tokio_unstable`), called before Granular records it.
    #[cfg(tokio_unstable)]
    pub fn on_task_terminate(
        mut self,
        f: impl Fn(&tokio::runtime::TaskMeta<'_>) + Send + Sync + 'static,
    ) -> Self {
        self.task_terminate = Some(Arc::new(f));
        self
    }

    /// tokio's `on_before_task_poll` (`--cfg tokio_unstable`), called after Granular records
    /// the poll's start.
    #[cfg(tokio_unstable)]
    pub fn on_before_task_poll(
        mut self,
        f: impl Fn(&tokio::runtime::TaskMeta<'_>) + Send + Sync + 'static,
    ) -> Self {
        self.before_task_poll = Some(Arc::new(f));
        self
    }

    /// tokio's `on_after_task_poll` (`--cfg tokio_unstable`), called before Granular records
    /// the poll's end.
    #[cfg(tokio_unstable)]
    pub fn on_after_task_poll(
        mut self,
        f: impl Fn(&tokio::runtime::TaskMeta<'_>) + Send + Sync + 'static,
    ) -> Self {
        self.after_task_poll = Some(Arc::new(f));
        self
    }
}

impl fmt::Debug for RuntimeHooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("RuntimeHooks");
        d.field("thread_start", &self.thread_start.is_some())
            .field("thread_stop", &self.thread_stop.is_some())
            .field("thread_park", &self.thread_park.is_some())
            .field("thread_unpark", &self.thread_unpark.is_some());
        #[cfg(tokio_unstable)]
        d.field("task_spawn", &self.task_spawn.is_some())
            .field("task_terminate", &self.task_terminate.is_some())
            .field("before_task_poll", &self.before_task_poll.is_some())
            .field("after_task_poll", &self.after_task_poll.is_some());
        d.finish()
    }
}

/// Installs Granular's hooks on a runtime builder. Works for multi-thread and current-thread
/// runtimes; call it before `build()`. It replaces runtime hooks set on `builder` before it,
/// and hooks set after it replace Granular's: use [`instrument_runtime_with`] to keep yours.
pub fn instrument_runtime(builder: &mut tokio::runtime::Builder) -> &mut tokio::runtime::Builder {
    instrument_runtime_with(builder, RuntimeHooks::default())
}

/// [`instrument_runtime`], calling your `hooks` from Granular's (see [`RuntimeHooks`] for the
/// order).
pub fn instrument_runtime_with(
    builder: &mut tokio::runtime::Builder,
    hooks: RuntimeHooks,
) -> &mut tokio::runtime::Builder {
    let RuntimeHooks {
        thread_start,
        thread_stop,
        thread_park,
        thread_unpark,
        #[cfg(tokio_unstable)]
        task_spawn,
        #[cfg(tokio_unstable)]
        task_terminate,
        #[cfg(tokio_unstable)]
        before_task_poll,
        #[cfg(tokio_unstable)]
        after_task_poll,
    } = hooks;
    builder
        .on_thread_start(move || {
            on_thread_start();
            call(&thread_start);
        })
        .on_thread_stop(move || {
            call(&thread_stop);
            on_thread_stop();
        })
        .on_thread_park(move || {
            call(&thread_park);
            on_thread_park();
        })
        .on_thread_unpark(move || {
            on_thread_unpark();
            call(&thread_unpark);
        });
    #[cfg(tokio_unstable)]
    unstable::install(
        builder,
        [
            task_spawn,
            task_terminate,
            before_task_poll,
            after_task_poll,
        ],
    );
    builder
}

#[inline]
fn call(hook: &Option<ThreadHook>) {
    if let Some(f) = hook {
        f();
    }
}

/// Granular's `on_thread_start`: registers the thread with the OS sampler (and perf).
pub(crate) fn on_thread_start() {
    os::register_current_thread();
    super::runtime_tasks::watch_current();
}

/// Granular's `on_thread_stop`.
pub(crate) fn on_thread_stop() {
    if switch::off() {
        return;
    }
    os::unregister_current_thread();
}

/// Granular's `on_thread_park`: records the park (public for the hook benchmark).
#[inline]
pub fn on_thread_park() {
    if switch::off() {
        return;
    }
    recorder::write(&Park);
    super::perf::ensure_current_thread();
    super::waits::ensure_current_thread();
}

/// Granular's `on_thread_unpark`: records the unpark (public for the hook benchmark).
#[inline]
pub fn on_thread_unpark() {
    if switch::off() {
        return;
    }
    recorder::write(&Unpark);
    super::waits::wake_sampler();
}

/// Whether this build sees task polls and spawns (`--cfg tokio_unstable`).
pub const TASK_HOOKS: bool = cfg!(tokio_unstable);

#[cfg(tokio_unstable)]
mod unstable {
    use super::*;
    use crate::capture::{alloc, context};
    use crate::recorder::codec::tasks::{PollEnd, PollStart, TaskSpawn, TaskTerminate};
    use tokio::runtime::TaskMeta;

    #[inline]
    fn call(hook: &Option<TaskHook>, meta: &TaskMeta<'_>) {
        if let Some(f) = hook {
            f(meta);
        }
    }

    pub(super) fn install(
        builder: &mut tokio::runtime::Builder,
        [spawn, terminate, before_poll, after_poll]: [Option<TaskHook>; 4],
    ) {
        builder
            .track_task_schedule_latency()
            .on_task_spawn(move |meta| {
                if !switch::off() {
                    recorder::write(&TaskSpawn {
                        task: context::task_id_u64(meta.id()),
                        parent_task: context::current_task(),
                        parent_span: context::current_span(),
                        spawned_at: Some(meta.spawned_at()),
                    });
                }
                call(&spawn, meta);
            })
            .on_task_terminate(move |meta| {
                call(&terminate, meta);
                if !switch::off() {
                    let task = context::task_id_u64(meta.id());
                    recorder::write(&TaskTerminate { task });
                }
            })
            .on_before_task_poll(move |meta| {
                if !switch::off() {
                    let task = context::task_id_u64(meta.id());
                    context::set_current_task(task);
                    let counters = alloc::changed_counters();
                    recorder::write(&PollStart { task, counters });
                }
                call(&before_poll, meta);
            })
            .on_after_task_poll(move |meta| {
                call(&after_poll, meta);
                if !switch::off() {
                    let schedule_latency_ns = meta
                        .schedule_latency()
                        .map_or(0, |d| d.as_nanos().min(u128::from(u32::MAX)) as u64);
                    let counters = alloc::changed_counters();
                    recorder::write(&PollEnd {
                        schedule_latency_ns,
                        counters,
                    });
                    context::set_current_task(0);
                }
            });
    }
}

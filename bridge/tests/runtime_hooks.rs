//! Runtime hooks of the user's own, kept through `granular::instrument_runtime_with`: tokio
//! keeps one callback per hook, so hooks set on the builder next to `instrument_runtime` are
//! replaced by Granular's (or replace them). Runs in both build modes; with
//! `--cfg tokio_unstable` the task hooks are checked too.
//!
//! Pins issue #17: `instrument_runtime` silently replaced runtime hooks set before it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use granular::__internal::recorder::{FlightRecorder, Kind};
use granular::RecorderSize;

#[derive(Default, Debug)]
struct Counts {
    start: AtomicUsize,
    stop: AtomicUsize,
    park: AtomicUsize,
    unpark: AtomicUsize,
    spawn: AtomicUsize,
    terminate: AtomicUsize,
    before_poll: AtomicUsize,
    after_poll: AtomicUsize,
}

fn counting(counts: &Arc<Counts>) -> granular::RuntimeHooks {
    let c = |f: fn(&Counts) -> &AtomicUsize| {
        let counts = counts.clone();
        move || {
            f(&counts).fetch_add(1, Relaxed);
        }
    };
    let hooks = granular::RuntimeHooks::new()
        .on_thread_start(c(|c| &c.start))
        .on_thread_stop(c(|c| &c.stop))
        .on_thread_park(c(|c| &c.park))
        .on_thread_unpark(c(|c| &c.unpark));
    #[cfg(tokio_unstable)]
    let hooks = {
        let t = |f: fn(&Counts) -> &AtomicUsize| {
            let counts = counts.clone();
            move |_: &tokio::runtime::TaskMeta<'_>| {
                f(&counts).fetch_add(1, Relaxed);
            }
        };
        hooks
            .on_task_spawn(t(|c| &c.spawn))
            .on_task_terminate(t(|c| &c.terminate))
            .on_before_task_poll(t(|c| &c.before_poll))
            .on_after_task_poll(t(|c| &c.after_poll))
    };
    hooks
}

/// Runs a little work with sleeps (so that workers park) on `rt`, then shuts it down.
fn run(rt: tokio::runtime::Runtime) {
    rt.block_on(async {
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                tokio::spawn(async {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    rt.shutdown_timeout(Duration::from_secs(5));
}

/// Parks recorded in the rings of threads named `thread`.
fn parks_recorded(thread: &str) -> usize {
    FlightRecorder::get()
        .unwrap()
        .snapshot()
        .threads
        .iter()
        .filter(|t| t.owners.iter().any(|o| o.name.as_deref() == Some(thread)))
        .flat_map(|t| t.records())
        .filter(|r| r.kind() == Some(Kind::Park))
        .count()
}

#[test]
fn the_users_hooks_run_and_granulars_still_record() {
    FlightRecorder::install(RecorderSize::default());
    let counts = Arc::new(Counts::default());
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder
        .worker_threads(2)
        .thread_name("with-user-hooks")
        .enable_all();
    run(
        granular::instrument_runtime_with(&mut builder, counting(&counts))
            .build()
            .unwrap(),
    );
    let n = |a: &AtomicUsize| a.load(Relaxed);
    assert!(n(&counts.start) >= 2, "{counts:?}");
    assert_eq!(n(&counts.start), n(&counts.stop), "{counts:?}");
    assert!(n(&counts.park) > 0 && n(&counts.unpark) > 0, "{counts:?}");
    if granular::__internal::capture::TASK_HOOKS {
        assert!(n(&counts.spawn) >= 8, "{counts:?}");
        assert!(n(&counts.terminate) >= 8, "{counts:?}");
        assert!(n(&counts.before_poll) >= 8, "{counts:?}");
        assert_eq!(n(&counts.before_poll), n(&counts.after_poll), "{counts:?}");
    }
    assert!(
        parks_recorded("with-user-hooks") > 0,
        "Granular's park hook no longer records"
    );
}

/// What the documentation says of the plain `instrument_runtime`: a hook set on the builder
/// before it is replaced (tokio keeps one per hook), which is why `instrument_runtime_with`
/// exists.
#[test]
fn a_hook_set_before_instrument_runtime_is_replaced() {
    FlightRecorder::install(RecorderSize::default());
    let parks = Arc::new(AtomicUsize::new(0));
    let seen = parks.clone();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder
        .worker_threads(2)
        .enable_all()
        .on_thread_park(move || {
            seen.fetch_add(1, Relaxed);
        });
    run(granular::instrument_runtime(&mut builder).build().unwrap());
    assert_eq!(parks.load(Relaxed), 0);
}

//! Manners of the threads that work beside the application on its cores: the analyzer, the
//! debug endpoint's captures, the span exporter.
//!
//! Such a thread runs at [`NICE`], so that the scheduler gives the application most of a
//! contended CPU, and through [`yield_point`] pauses for [`PAUSE`] after each [`SLICE`] of
//! running. The nice value alone bounds the share, not how long the thread keeps the CPU once
//! it has it: the scheduler lets a running thread go at the next tick at the earliest (4 ms at
//! 250 Hz), so an analysis that ran for a tick held every request on that core for 4 ms, in
//! the application's tail latency (docs/benchmarks.md). Pausing caps that delay at about
//! [`SLICE`] and the thread's share of a CPU at a quarter.
//!
//! Why a pause and not `sched_yield`: yielding forfeits the rest of the thread's fair share
//! (the scheduler pushes its deadline back), and at saturation the analyzer then got about 5 %
//! of the core, less than its light analyses need: the rings overwrote 40 % of the violating
//! traces before their batches. A sleeping thread keeps its share.

use std::cell::Cell;
use std::time::{Duration, Instant};

/// The nice value of background threads. At nice 10 the scheduler gives the application about
/// 90 % of a contended CPU (weights 1024 against 110); the analyzer keeps the rest, more than
/// its duty and its light analyses at saturation need. At nice 0 a batch's analysis took half
/// a shared CPU from requests for tens of milliseconds.
const NICE: i32 = 10;

/// How long a background thread runs before it pauses: a request on its core waits for it
/// about this long at most at a time.
const SLICE: Duration = Duration::from_micros(250);

/// How long it then pauses: the thread gets a quarter of a CPU at most, more than the
/// analyzer's light analyses need at saturation (~8 % of a core on the service-overhead
/// benchmark) and its full analyses' duty (10 %).
const PAUSE: Duration = Duration::from_micros(750);

/// The largest share of a CPU a background thread that reaches its yield points takes.
pub(crate) const MAX_SHARE: f64 = SLICE.as_secs_f64() / (SLICE.as_secs_f64() + PAUSE.as_secs_f64());

/// How many units of work (records, spans) pass between clock reads in [`every`].
const CHECK_EVERY: usize = 1024;

thread_local! {
    /// When the calling thread last paused; `None` on threads that never called
    /// [`yield_to_the_application`] (the application's own: they never pause here).
    static SINCE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Makes the calling thread a background thread: lowers its scheduling priority to [`NICE`]
/// (raising a nice value needs no privilege; where it fails the thread keeps its priority and
/// says so once) and turns its [`yield_point`]s on.
pub(crate) fn yield_to_the_application() {
    // SAFETY: gettid and setpriority have no memory preconditions; on Linux, PRIO_PROCESS with
    // a thread id sets that thread's nice value. (The thread id is read here rather than from
    // the recorder, which pauses at this module's yield points: this module depends on
    // nothing of the crate's.)
    let rc = unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, NICE)
    };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        tracing::debug!("granular: a background thread keeps its priority (setpriority: {e})");
    }
    SINCE.with(|s| s.set(Some(Instant::now())));
}

/// [`yield_to_the_application`] unless the calling thread is a background thread already.
pub(crate) fn become_background() {
    if SINCE.with(Cell::get).is_none() {
        yield_to_the_application();
    }
}

/// On a background thread that has run [`SLICE`] since it last paused, pauses for [`PAUSE`]
/// (the application's runnable threads on its core run meanwhile). Elsewhere nothing. Costs a
/// clock read: call it between pieces of work of a few µs or more, or through [`every`].
pub(crate) fn yield_point() {
    SINCE.with(|s| {
        if let Some(since) = s.get() {
            let now = Instant::now();
            if now.duration_since(since) >= SLICE {
                std::thread::sleep(PAUSE);
                s.set(Some(Instant::now()));
            }
        }
    });
}

/// [`yield_point`] once every [`CHECK_EVERY`] values of the counter `i` (a loop's index over
/// work items of tens of ns).
#[inline]
pub(crate) fn every(i: usize) {
    if i % CHECK_EVERY == 0 {
        yield_point();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn application_threads_never_pause_and_background_ones_do_after_a_slice() {
        std::thread::spawn(|| {
            yield_point();
            assert!(
                SINCE.with(Cell::get).is_none(),
                "an application thread stays as it is"
            );
            yield_to_the_application();
            let first = SINCE.with(Cell::get).expect("background");
            yield_point();
            assert_eq!(
                SINCE.with(Cell::get),
                Some(first),
                "within its slice: no yield"
            );
            let t = Instant::now();
            while t.elapsed() < SLICE {
                std::hint::spin_loop();
            }
            let before = Instant::now();
            yield_point();
            assert!(before.elapsed() >= PAUSE, "paused");
            assert!(SINCE.with(Cell::get).expect("background") > first);
        })
        .join()
        .expect("test thread");
    }
}

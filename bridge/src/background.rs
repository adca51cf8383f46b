//! Manners of the threads that work beside the application on its cores: the analyzer, its
//! full-analysis thread, the debug endpoint's threads, the span exporter.
//!
//! Such a thread pauses through [`yield_point`] for [`PAUSE`] after each [`SLICE`] of running.
//! The scheduler lets a running thread go at the next tick at the earliest (4 ms at 250 Hz),
//! so an analysis that ran for a tick held every request on that core for 4 ms, in the
//! application's tail latency (docs/benchmarks.md). Pausing caps that delay at about [`SLICE`]
//! and the thread's share of a CPU at a quarter.
//!
//! The thread keeps the application's priority: the pauses bound its share already. At a
//! lower one (nice 10) the analyzer got about a tenth of a core the application saturates,
//! barely more than its light analyses need there: any other work on that core (a full
//! analysis) made it fall behind, and the rings overwrote a fifth of the violating traces
//! before their batches (docs/benchmarks.md, "Service overhead").
//!
//! Where the application leaves a CPU spare, `GRANULAR_BACKGROUND_CPUS` puts these threads
//! there ([`run_on`]): each pins itself when it becomes a background thread, and off the
//! application's cores their work no longer delays requests at all.
//!
//! Why a pause and not `sched_yield`: yielding forfeits the rest of the thread's fair share
//! (the scheduler pushes its deadline back), and at saturation the analyzer then got about 5 %
//! of the core, less than its light analyses need: the rings overwrote 40 % of the violating
//! traces before their batches. A sleeping thread keeps its share.

use std::cell::Cell;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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

/// The CPUs background threads run on; empty: wherever the application's threads may.
static CPUS: Mutex<Vec<usize>> = Mutex::new(Vec::new());

/// Background threads started from now on run on `cpus` (`GRANULAR_BACKGROUND_CPUS`); empty:
/// wherever the application's threads may. A probe thread tries them first: where the kernel
/// refuses them (a CPU outside the process's cpuset, or one the machine does not have), no
/// thread is pinned and the refusal is returned.
pub(crate) fn run_on(cpus: &[usize]) -> Result<(), String> {
    let outcome = if cpus.is_empty() {
        Ok(())
    } else {
        let probe = cpus.to_vec();
        std::thread::Builder::new()
            .name("granular-probe".into())
            .spawn(move || pin_to(&probe))
            .map_err(|e| format!("no thread could be started to try them ({e})"))?
            .join()
            .unwrap_or_else(|_| Err("the thread trying them failed".into()))
    };
    if let Ok(mut c) = CPUS.lock() {
        *c = if outcome.is_ok() {
            cpus.to_vec()
        } else {
            Vec::new()
        };
    }
    outcome
}

/// The CPUs background threads run on, as [`run_on`] accepted them.
pub(crate) fn cpus() -> Vec<usize> {
    CPUS.lock().map(|c| c.clone()).unwrap_or_default()
}

/// Makes the calling thread a background thread: pins it to the [`run_on`] CPUs, if any, and
/// turns its [`yield_point`]s on.
pub(crate) fn yield_to_the_application() {
    if let Err(e) = pin_to(&cpus()) {
        // Accepted at start: the process's cpuset changed since.
        tracing::debug!("granular: a background thread stays where it was: {e}");
    }
    SINCE.with(|s| s.set(Some(Instant::now())));
}

/// Pins the calling thread to `cpus` (none: nothing to do).
fn pin_to(cpus: &[usize]) -> Result<(), String> {
    if cpus.is_empty() {
        return Ok(());
    }
    let max = libc::CPU_SETSIZE as usize;
    // SAFETY: cpu_set_t is plain integers (all zero is the empty set); CPU_SET is given only
    // numbers below CPU_SETSIZE; sched_setaffinity(0, ..) pins the calling thread and reads
    // `size` bytes of the set it is given.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &cpu in cpus.iter().filter(|&&c| c < max) {
            libc::CPU_SET(cpu, &mut set);
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc == 0 {
        Ok(())
    } else {
        let e = std::io::Error::last_os_error();
        Err(format!("the kernel refuses them (sched_setaffinity: {e})"))
    }
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

    #[test]
    fn a_thread_pins_itself_where_the_kernel_allows_and_is_told_where_not() {
        std::thread::spawn(|| {
            assert_eq!(pin_to(&[]), Ok(()));
            let refused = pin_to(&[1000]).expect_err("no machine here has CPU 1000");
            assert!(
                refused.starts_with("the kernel refuses them (sched_setaffinity: "),
                "{refused}"
            );
            // SAFETY: sched_getcpu has no preconditions.
            let cpu = usize::try_from(unsafe { libc::sched_getcpu() }).expect("a CPU");
            assert_eq!(pin_to(&[cpu]), Ok(()));
        })
        .join()
        .expect("test thread");
    }
}

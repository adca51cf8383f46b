//! The OS sampler: a background thread that reads each runtime thread's cumulative on-CPU time
//! and run-queue wait from `/proc/self/task/<tid>/schedstat` at a fixed rate and records them.
//!
//! Unprivileged and off the request path: runtime threads only register themselves at start.
//! The analyzer interpolates between samples: within a poll, wall time minus on-CPU time is
//! off-CPU time; the run-queue wait part of it is *OS wait* (runnable, preempted), the rest is
//! *blocked in poll* (sleeping in a syscall, a lock, `thread::sleep`). Resolution is one
//! sampling period (1 ms by default).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::waits::pace::Pace;
use crate::recorder;
use crate::recorder::codec::os::OsSample;

struct Watched {
    tid: u64,
    file: File,
}

static WATCHED: Mutex<Vec<Watched>> = Mutex::new(Vec::new());
static RUNNING: AtomicBool = AtomicBool::new(false);
static SCHEDSTAT: AtomicBool = AtomicBool::new(false);

/// Whether schedstat can be read on this machine (kernel built with schedstats, /proc mounted).
pub(crate) fn available() -> Result<(), String> {
    let mut buf = [0u8; 128];
    let f = File::open("/proc/thread-self/schedstat")
        .map_err(|e| format!("cannot open /proc/thread-self/schedstat: {e}"))?;
    let n = f
        .read_at(&mut buf, 0)
        .map_err(|e| format!("cannot read schedstat: {e}"))?;
    parse_schedstat(&buf[..n])
        .map(|_| ())
        .ok_or_else(|| "schedstat has an unexpected format".into())
}

/// The longest a sampler that only drains perf rings sleeps: a 64 KiB ring (two 24-byte
/// records a context switch) then overflows only past ~27,000 switches a second.
const MAX_DRAIN_PERIOD: Duration = Duration::from_millis(50);

/// Starts the sampler thread (once per process). Every period it reads schedstat (when
/// `schedstat` is set) and drains the perf rings (when that source is enabled). `hz` = 0
/// means 1000. Draining only, it paces itself by how full it found the rings: it starts at
/// `hz`, doubles its period (up to `MAX_DRAIN_PERIOD`, 50 ms) while they were under a sixteenth
/// full and goes back to `hz` when one was over a quarter. A wake-up costs ~30 µs of CPU on a
/// small VM (two context switches with perf attached): at a fixed 100 Hz an idle service
/// would pay ~3 ms of CPU a second for it; the analyzer drains the rings before each snapshot
/// anyway, so the sampler only keeps them from overflowing.
pub(crate) fn start(hz: u32, schedstat: bool) -> Result<(), String> {
    if RUNNING.swap(true, Ordering::SeqCst) {
        return Ok(());
    }
    SCHEDSTAT.store(schedstat, Ordering::Relaxed);
    let hz = if hz == 0 { 1000 } else { u64::from(hz) };
    let base = Duration::from_nanos(1_000_000_000 / hz);
    std::thread::Builder::new()
        .name("granular-os-sampler".into())
        .spawn(move || {
            super::waits::set_sampler(std::thread::current());
            super::waits::measure_fault_cost_once();
            let mut period = base;
            let mut pace = super::waits::period().map(Pace::new);
            loop {
                let now = Instant::now();
                // Free to rest (be woken by an unpark) only when wait sampling sets no cap.
                let cap = pace.as_ref().and_then(|p| p.cap(now));
                let rest = pace.is_some() && cap.is_none();
                let sleep = cap.map_or(period, |c| period.min(c));
                let woken = super::waits::sleep(sleep, rest);
                if schedstat {
                    sample_all();
                }
                let fill = super::perf::drain_all();
                if let Some(p) = pace.as_mut() {
                    let now = Instant::now();
                    if woken {
                        p.woken(now);
                    }
                    if p.due(now) {
                        p.looked(now, super::waits::sample());
                    }
                }
                if !schedstat {
                    period = drain_period(period, base, fill);
                }
            }
        })
        .map(|_| ())
        .map_err(|e| format!("cannot start the OS sampler thread: {e}"))
}

/// The next drain period after finding the fullest ring `fill` full (see [`start`]).
fn drain_period(period: Duration, base: Duration, fill: f64) -> Duration {
    if fill > 0.25 {
        base
    } else if fill < 1.0 / 16.0 {
        (period * 2).min(MAX_DRAIN_PERIOD.max(base))
    } else {
        period
    }
}

/// Whether the sampler reads the runtime threads' schedstat.
pub(crate) fn sampling() -> bool {
    RUNNING.load(Ordering::Relaxed) && SCHEDSTAT.load(Ordering::Relaxed)
}

/// Takes one schedstat sample of every registered thread now, and one look of the wait
/// sampler (the analyzer calls it before each snapshot so the latest intervals are covered: a
/// request that ended since the sampler's last look has its threads' page faults read at its
/// end, not 10 ms before it).
pub(crate) fn sample_now() {
    if sampling() {
        sample_all();
    }
    if super::waits::period().is_some() {
        super::waits::sample();
    }
}

fn sample_all() {
    let Ok(watched) = WATCHED.lock() else { return };
    for w in watched.iter() {
        if let Some((on_cpu_ns, run_queue_ns)) = read_schedstat(&w.file) {
            recorder::write(&OsSample {
                tid: w.tid,
                on_cpu_ns,
                run_queue_ns,
            });
        }
    }
}

/// A thread's time on CPU and time waiting on a run queue, ns, from its open schedstat file.
pub(crate) fn read_schedstat(file: &File) -> Option<(u64, u64)> {
    let mut buf = [0u8; 128];
    let n = file.read_at(&mut buf, 0).ok()?;
    parse_schedstat(&buf[..n])
}

/// The first two numbers of a schedstat file.
fn parse_schedstat(buf: &[u8]) -> Option<(u64, u64)> {
    let s = std::str::from_utf8(buf).ok()?;
    let mut it = s.split_whitespace();
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

/// Registers the calling thread for sampling (tokio `on_thread_start`), with perf too.
pub(crate) fn register_current_thread() {
    if super::switch::off() {
        return;
    }
    super::perf::register_current_thread();
    super::waits::register_current_thread();
    let tid = recorder::current_tid();
    if let Ok(file) = File::open(format!("/proc/self/task/{tid}/schedstat")) {
        if let Ok(mut w) = WATCHED.lock() {
            w.push(Watched { tid, file });
        }
    }
}

/// Unregisters the calling thread (tokio `on_thread_stop`).
pub(crate) fn unregister_current_thread() {
    super::perf::unregister_current_thread();
    super::waits::unregister_current_thread();
    let tid = recorder::current_tid();
    if let Ok(mut w) = WATCHED.lock() {
        w.retain(|x| x.tid != tid);
    }
}

/// Closes every registered thread's schedstat file (Granular turned off).
pub(crate) fn forget_threads() {
    super::waits::forget_threads();
    if let Ok(mut w) = WATCHED.lock() {
        w.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drains_back_off_while_the_rings_stay_empty_and_speed_up_when_they_fill() {
        let base = Duration::from_millis(10);
        let mut p = base;
        for _ in 0..10 {
            p = drain_period(p, base, 0.0);
        }
        assert_eq!(p, MAX_DRAIN_PERIOD);
        assert_eq!(drain_period(p, base, 0.1), p, "steady between the bounds");
        assert_eq!(
            drain_period(p, base, 0.5),
            base,
            "back to full speed at once"
        );
    }

    #[test]
    fn parses_schedstat() {
        assert_eq!(
            super::parse_schedstat(b"510035 37963 2\n"),
            Some((510035, 37963))
        );
        assert_eq!(super::parse_schedstat(b"garbage"), None);
    }
}

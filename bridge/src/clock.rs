//! The recorder's clock: cheap ticks on the hot path, calibrated to wall-clock time off it.
//!
//! Writers stamp events with [`now`]: the CPU's time-stamp counter where it is invariant
//! (`constant_tsc` and `nonstop_tsc` in `/proc/cpuinfo`, about 9 ns a read), else
//! `CLOCK_MONOTONIC` in nanoseconds (about 25 ns). Nothing is converted while recording.
//!
//! Readers convert ticks with a [`Calibration`]: two (ticks, monotonic ns) pairs — the anchor
//! taken when the clock was first used and a fresh pair taken at conversion time — give the tick
//! rate as a least-squares-free two-point fit; the anchor's `SystemTime` maps monotonic time to
//! Unix time. Because the second point is taken when a window is analyzed, seconds after the
//! anchor, the rate error is the read jitter (~100 ns) divided by the elapsed time: below 1 ppm
//! after 100 ms. Wall-clock steps after the anchor (NTP slews) are not followed: the mapping
//! keeps the anchor's offset, like `tracing-opentelemetry`'s own `SystemTime` at span start.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Which counter [`now`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClockSource {
    /// The invariant time-stamp counter (`rdtsc`).
    Tsc,
    /// `CLOCK_MONOTONIC`, nanoseconds.
    Monotonic,
}

#[derive(Debug, Clone, Copy)]
struct Anchor {
    source: ClockSource,
    ticks: u64,
    mono_ns: u64,
    unix_ns: u64,
}

static ANCHOR: OnceLock<Anchor> = OnceLock::new();

fn anchor() -> &'static Anchor {
    ANCHOR.get_or_init(|| {
        let source = if tsc_is_invariant() {
            ClockSource::Tsc
        } else {
            ClockSource::Monotonic
        };
        let unix_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let (ticks, mono_ns) = read_pair(source);
        Anchor {
            source,
            ticks,
            mono_ns,
            unix_ns,
        }
    })
}

/// Ticks now. Hot path: one `rdtsc` (or one vDSO `clock_gettime`) after the first call.
#[inline]
pub fn now() -> u64 {
    match anchor().source {
        ClockSource::Tsc => tsc(),
        ClockSource::Monotonic => monotonic_ns(),
    }
}

#[inline]
fn tsc() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: rdtsc has no preconditions; it is only selected when the CPU reports an
        // invariant TSC.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        monotonic_ns()
    }
}

/// `CLOCK_MONOTONIC` in nanoseconds.
pub(crate) fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The calling thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), `None` where it cannot be read.
pub(crate) fn thread_cpu() -> Option<Duration> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    (rc == 0).then(|| Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}

fn read_pair(source: ClockSource) -> (u64, u64) {
    match source {
        ClockSource::Monotonic => {
            let ns = monotonic_ns();
            (ns, ns)
        }
        ClockSource::Tsc => {
            // Bracket the monotonic read with two TSC reads and keep the tightest of a few
            // tries, so a preemption between the reads does not skew the pair.
            let mut best = (u64::MAX, 0, 0);
            for _ in 0..5 {
                let t0 = tsc();
                let ns = monotonic_ns();
                let t1 = tsc();
                let width = t1.wrapping_sub(t0);
                if width < best.0 {
                    best = (width, t0 + width / 2, ns);
                }
            }
            (best.1, best.2)
        }
    }
}

fn tsc_is_invariant() -> bool {
    if !cfg!(target_arch = "x86_64") {
        return false;
    }
    if std::env::var_os("GRANULAR_CLOCK").is_some_and(|v| v == "monotonic") {
        return false;
    }
    std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|info| {
        info.lines()
            .find(|l| l.starts_with("flags"))
            .is_some_and(|flags| {
                let has = |f: &str| flags.split_whitespace().any(|w| w == f);
                has("constant_tsc") && has("nonstop_tsc")
            })
    })
}

/// Converts recorder ticks to Unix-epoch nanoseconds. Take one per analysis: it is exact
/// at the anchor and at the moment it was taken, and linear in between.
#[derive(Debug, Clone, Copy)]
pub struct Calibration {
    anchor_ticks: u64,
    anchor_mono_ns: u64,
    anchor_unix_ns: u64,
    /// Nanoseconds per tick.
    ns_per_tick: f64,
}

impl Calibration {
    /// A calibration from the anchor to now.
    pub fn now() -> Self {
        let a = anchor();
        let ns_per_tick = match a.source {
            ClockSource::Monotonic => 1.0,
            ClockSource::Tsc => {
                let (ticks, mono) = read_pair(a.source);
                let dt = ticks.saturating_sub(a.ticks);
                let dns = mono.saturating_sub(a.mono_ns);
                if dt < 1_000_000 || dns == 0 {
                    // Too close to the anchor to measure the rate: fall back to a short,
                    // explicit measurement (only happens in the first milliseconds).
                    measure_rate()
                } else {
                    dns as f64 / dt as f64
                }
            }
        };
        Calibration {
            anchor_ticks: a.ticks,
            anchor_mono_ns: a.mono_ns,
            anchor_unix_ns: a.unix_ns,
            ns_per_tick,
        }
    }

    /// A fixed calibration for tests: `ticks` are nanoseconds since `unix_ns_at_zero`.
    pub fn identity(unix_ns_at_zero: u64) -> Self {
        Calibration {
            anchor_ticks: 0,
            anchor_mono_ns: 0,
            anchor_unix_ns: unix_ns_at_zero,
            ns_per_tick: 1.0,
        }
    }

    /// Unix-epoch nanoseconds of a tick value.
    pub fn to_unix_ns(&self, ticks: u64) -> u64 {
        // i64, not i128: 128-bit float conversions are library calls, and this runs for every
        // decoded record. Tick distances fit in 63 bits for centuries.
        let delta = ticks.wrapping_sub(self.anchor_ticks) as i64;
        let ns = (delta as f64 * self.ns_per_tick) as i64;
        (self.anchor_unix_ns as i64).saturating_add(ns).max(0) as u64
    }

    /// Unix-epoch nanoseconds of a `CLOCK_MONOTONIC` time (perf records use that clock).
    pub fn mono_to_unix_ns(&self, mono_ns: u64) -> u64 {
        (self.anchor_unix_ns as i128 + mono_ns as i128 - self.anchor_mono_ns as i128).max(0) as u64
    }

    /// The tick value of a Unix-epoch nanosecond time (the inverse of [`to_unix_ns`](Self::to_unix_ns)).
    pub fn unix_to_ticks(&self, unix_ns: u64) -> u64 {
        let delta = unix_ns as i128 - self.anchor_unix_ns as i128;
        (self.anchor_ticks as i128 + (delta as f64 / self.ns_per_tick) as i128).max(0) as u64
    }

    /// Nanoseconds spanned by a tick count.
    pub fn ticks_to_ns(&self, ticks: u64) -> u64 {
        (ticks as f64 * self.ns_per_tick) as u64
    }

    /// Ticks spanned by a nanosecond count.
    pub fn ns_to_ticks(&self, ns: u64) -> u64 {
        (ns as f64 / self.ns_per_tick) as u64
    }
}

fn measure_rate() -> f64 {
    let (t0, n0) = read_pair(ClockSource::Tsc);
    std::thread::sleep(std::time::Duration::from_millis(2));
    let (t1, n1) = read_pair(ClockSource::Tsc);
    (n1.saturating_sub(n0)) as f64 / (t1.saturating_sub(t0)).max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checked against clocks read around the same instants, not against the nominal sleep:
    /// a loaded machine may oversleep or preempt between reads by tens of milliseconds.
    #[test]
    fn calibrated_ticks_track_the_system_clock() {
        let unix = || {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        };
        let cal0 = Calibration::now();
        let i0 = std::time::Instant::now();
        let t0 = now();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let t1 = now();
        let wall = i0.elapsed().as_nanos() as u64;
        let cal = Calibration::now();
        let elapsed = cal.ticks_to_ns(t1 - t0);
        assert!(
            (19_000_000..=wall + wall / 50 + 1_000_000).contains(&elapsed),
            "20 ms sleep measured as {elapsed} ns, {wall} ns around it"
        );
        let before = unix();
        let mapped = cal.to_unix_ns(now());
        let after = unix();
        assert!(
            (before.saturating_sub(2_000_000)..=after + 2_000_000).contains(&mapped),
            "{mapped} not within [{before}, {after}] (± 2 ms)"
        );
        assert!(cal0.to_unix_ns(t0) <= cal.to_unix_ns(t1));
    }

    #[test]
    fn identity_calibration_is_exact() {
        let cal = Calibration::identity(1_000);
        assert_eq!(cal.to_unix_ns(500), 1_500);
        assert_eq!(cal.ticks_to_ns(42), 42);
    }
}

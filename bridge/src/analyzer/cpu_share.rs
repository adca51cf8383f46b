//! How much of a CPU the analyzer thread gets when it wants one.
//!
//! The analyzer runs beside the application, pausing after each slice of running
//! (`crate::background`). On an idle core a batch's decode takes its CPU time over
//! [`MAX_SHARE`] in wall time; on a core several of the application's threads keep busy, the
//! scheduler gives the analyzer its fair part of that, and the same decode takes longer
//! still, while the rings keep wrapping. Budgets are wall time (the rings' reach), predictions are CPU
//! time: [`CpuShare`] converts between them.

use std::fs::File;

use crate::background::MAX_SHARE;
use crate::capture::os::read_schedstat;

/// The smallest share assumed: the analyzer's fair part of a core nine runnable threads of the
/// application's share with it. Shorter runs measure less (a thread that runs for 60 µs after
/// waiting 3 ms to be scheduled), but a long decode is given the weight's share.
const FLOOR: f64 = 0.1;

/// Run plus run-queue wait, ns, an interval needs before it changes the estimate.
const MIN_INTERVAL_NS: u64 = 1_000_000;

/// The calling thread's recent CPU share: its run time over run time plus run-queue wait
/// (`/proc/thread-self/schedstat`) since the last estimate. Time asleep counts in neither, so
/// an idle analyzer on a busy machine still reads as contended, and one on a quiet machine
/// as uncontended (its pauses then bound it: [`MAX_SHARE`] at most). [`MAX_SHARE`] where
/// schedstat cannot be read (no claim of contention).
#[derive(Debug)]
pub(crate) struct CpuShare {
    /// Opened by the measuring thread itself at its first [`CpuShare::update`] (the file
    /// names the thread that opens it); `None` after a failure, which is not retried.
    file: Option<Option<File>>,
    last: Option<(u64, u64)>,
    share: f64,
    /// The thread's CPU time, ns, at the last reading (0 before one).
    run_ns: u64,
}

impl Default for CpuShare {
    fn default() -> Self {
        CpuShare {
            file: None,
            last: None,
            share: MAX_SHARE,
            run_ns: 0,
        }
    }
}

impl CpuShare {
    /// Reads the thread's schedstat and returns the share, updated when at least
    /// [`MIN_INTERVAL_NS`] of run and wait passed since the last estimate. Call it from the
    /// thread measured, only.
    pub(super) fn update(&mut self) -> f64 {
        let file = self
            .file
            .get_or_insert_with(|| File::open("/proc/thread-self/schedstat").ok());
        let Some(now) = file.as_ref().and_then(read_schedstat) else {
            return self.share;
        };
        self.run_ns = now.0;
        match self.last {
            Some(last) => {
                if let Some(share) = share_between(last, now) {
                    self.share = share;
                    self.last = Some(now);
                }
            }
            None => self.last = Some(now),
        }
        self.share
    }
}

impl CpuShare {
    /// The thread's CPU time, ns, as of the last [`CpuShare::update`] (0 if schedstat could
    /// not be read).
    pub(super) fn run_ns(&self) -> u64 {
        self.run_ns
    }
}

/// The share between two schedstat readings `(run ns, wait ns)`, if enough passed.
fn share_between((run0, wait0): (u64, u64), (run1, wait1): (u64, u64)) -> Option<f64> {
    let run = run1.saturating_sub(run0);
    let wait = wait1.saturating_sub(wait0);
    let total = run + wait;
    (total >= MIN_INTERVAL_NS).then(|| (run as f64 / total as f64).clamp(FLOOR, MAX_SHARE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_share_is_run_over_run_and_wait_within_its_floor() {
        let ms = 1_000_000;
        assert_eq!(
            share_between((0, 0), (ms, 0)),
            Some(MAX_SHARE),
            "pauses cap it"
        );
        assert_eq!(share_between((0, 0), (ms, 4 * ms)), Some(0.2));
        assert_eq!(share_between((0, 0), (ms / 20, 3 * ms)), Some(FLOOR));
        assert_eq!(share_between((5, 5), (10, 10)), None, "too short to tell");
    }

    #[test]
    fn a_thread_reads_its_own_share() {
        let mut s = CpuShare::default();
        let t = std::time::Instant::now();
        while t.elapsed().as_millis() < 5 {
            std::hint::black_box(s.update());
        }
        let share = s.update();
        assert!((FLOOR..=MAX_SHARE).contains(&share), "{share}");
    }
}

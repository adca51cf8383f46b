//! Overload: the analyzer spends at most [`ANALYSIS_DUTY`] of wall time on full analysis
//! (decoding every record of a window, searching every other request for culprits). Beyond
//! it, on a busy service, batches are decoded and analyzed lightly: the traces' own spans and
//! threads, no polls, no culprit (`granular.analysis=light`).
//!
//! A full decode's cost is predicted from the window's records ([`full_decode_time`]) and
//! held against the batch's budget before it begins. The budget is wall time and the rate
//! CPU time: on a core the application saturates, the analyzer gets a quarter of the CPU at
//! most (its pauses, `crate::background`), and a decode that fits the budget in CPU time takes
//! four times as long or more in wall time while the rings wrap; the prediction is divided by the analyzer's measured CPU share
//! ([`CpuShare`](super::cpu_share::CpuShare)).

use std::time::{Duration, Instant};

/// The largest share of wall time the analyzer spends on full analysis.
pub(super) const ANALYSIS_DUTY: f64 = 0.1;

/// What a full decode costs per record, roughly (a light one ~5 ns): a batch whose window holds
/// more records than its time budget allows at this rate is decoded lightly.
const FULL_DECODE_NS_PER_RECORD: u64 = 100;

/// The wall time a full decode of `records` is predicted to take with `share` of a CPU.
pub(super) fn full_decode_time(records: usize, share: f64) -> Duration {
    let cpu = records as f64 * FULL_DECODE_NS_PER_RECORD as f64;
    Duration::from_nanos((cpu / share) as u64)
}

/// What full analysis cost lately, against the duty.
#[derive(Debug)]
pub(super) struct Duty {
    /// When the last full batch ended, and what it cost (wall time).
    last_full: (Instant, Duration),
}

impl Default for Duty {
    fn default() -> Self {
        Duty {
            last_full: (Instant::now(), Duration::ZERO),
        }
    }
}

impl Duty {
    /// Counts `cost` of full analysis as spent, ending now. A full batch predicted over its
    /// budget and decoded lightly instead is counted as if spent, so the following batches
    /// stay light as long as it would have kept the analyzer past its duty.
    pub(super) fn spent(&mut self, cost: Duration) {
        self.last_full = (Instant::now(), cost);
    }

    /// Whether the last full batch's cost, spread over the time from its end to `now`, is
    /// still more than [`ANALYSIS_DUTY`].
    pub(super) fn exceeded(&self, now: Instant) -> bool {
        let (ended, cost) = self.last_full;
        now.saturating_duration_since(ended).as_secs_f64() * ANALYSIS_DUTY < cost.as_secs_f64()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_batch_keeps_the_next_ones_light_for_ten_times_its_cost() {
        let mut duty = Duty::default();
        assert!(!duty.exceeded(Instant::now()), "nothing spent yet");
        duty.spent(Duration::from_millis(100));
        let now = Instant::now();
        assert!(duty.exceeded(now + Duration::from_millis(900)));
        assert!(!duty.exceeded(now + Duration::from_millis(1_100)));
    }

    /// The prediction is in wall time: CPU time over the share of a CPU the analyzer gets.
    #[test]
    fn a_decode_takes_longer_the_less_cpu_the_analyzer_gets() {
        assert_eq!(full_decode_time(1_000_000, 1.0), Duration::from_millis(100));
        assert_eq!(full_decode_time(1_000_000, 0.1), Duration::from_secs(1));
        assert_eq!(full_decode_time(0, 0.1), Duration::ZERO);
    }
}

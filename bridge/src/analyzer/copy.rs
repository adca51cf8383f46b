//! The analyzer's copy of the rings, kept between batches so that each record is copied about
//! once ([`FlightRecorder::snapshot_since`] extends it and trims what precedes the window).
//!
//! It is brought up to date every [`DELAY_RECHECK`] while a batch waits, so that the copy
//! taken when the batch is processed appends only the last milliseconds: copying a whole
//! saturated window at once races the writer at the ring's edge, and a reader preempted for
//! 20–30 ms (a busy core) loses the window's oldest records, the first spans of
//! the traces it is about to export. For [`KEEP_CURRENT_FOR`] after a trace to export arrived,
//! the copy of busy rings is kept current between batches too.

use std::time::{Duration, Instant};

use super::batch::{DELAY_RECHECK, rings_wrap_fast};
use crate::recorder::{FlightRecorder, RecorderSnapshot};

/// How long after a trace to export arrived the analyzer keeps its copy of busy rings current
/// between batches. The next trace to export may have begun before its close wakes the
/// analyzer, on a ring that keeps little more than a request's length at saturation (the
/// demo's violating requests last ~150 ms, its saturated worker's ring keeps ~200 ms), and
/// the analyzer (on a saturated CPU) wakes late. Kept current, the copy lags by one
/// recheck and a wake-up, not by a whole trace. Costs a copy of the records written since
/// (~60 µs at saturation) per [`DELAY_RECHECK`], and only after violations.
pub(super) const KEEP_CURRENT_FOR: Duration = Duration::from_secs(10);

/// The copy and when it was brought up to date.
#[derive(Debug)]
pub(super) struct KeptCopy {
    snapshot: RecorderSnapshot,
    /// When it was last brought up to date, or a waiting batch's wait last worked out.
    checked: Instant,
    /// When the last trace to export arrived.
    wanted_at: Option<Instant>,
}

impl Default for KeptCopy {
    fn default() -> Self {
        KeptCopy {
            snapshot: RecorderSnapshot::default(),
            checked: Instant::now(),
            wanted_at: None,
        }
    }
}

impl KeptCopy {
    /// Notes that a trace to export arrived at `now`.
    pub(super) fn wanted(&mut self, now: Instant) {
        self.wanted_at = Some(now);
    }

    /// Whether a trace to export arrived within [`KEEP_CURRENT_FOR`].
    pub(super) fn after_violations(&self) -> bool {
        self.wanted_at
            .is_some_and(|t| t.elapsed() < KEEP_CURRENT_FOR)
    }

    /// Whether a [`DELAY_RECHECK`] has passed since it was last brought up to date.
    pub(super) fn due(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.checked) >= DELAY_RECHECK
    }

    /// Notes that it is brought up to date (or the batch's wait worked out) at `now`.
    pub(super) fn checked(&mut self, now: Instant) {
        self.checked = now;
    }

    /// The rings from clock tick `from` on (the copy extended with what was written since,
    /// what precedes `from` dropped); the copy is given up until [`Self::keep`] returns it.
    /// Empty without a recorder.
    pub(super) fn read_from(&mut self, from: u64) -> RecorderSnapshot {
        match FlightRecorder::get() {
            Some(recorder) => {
                let earlier = std::mem::take(&mut self.snapshot);
                recorder.snapshot_since(from.max(1), earlier)
            }
            None => RecorderSnapshot::default(),
        }
    }

    /// Keeps `snapshot` as the copy. Each ring's copy keeps at most two rings of history, its
    /// oldest records trimmed beyond (`ring::COPY_REACH`).
    pub(super) fn keep(&mut self, snapshot: RecorderSnapshot) {
        self.snapshot = snapshot;
    }

    /// Brings the copy up to date from clock tick `from` (a waiting batch's window).
    pub(super) fn top_up(&mut self, from: u64) {
        if FlightRecorder::get().is_some() {
            let snapshot = self.read_from(from);
            self.keep(snapshot);
        }
    }

    /// Brings the copy of busy rings up to date while no batch waits, keeping all it holds
    /// (up to two rings of history per ring): the next trace to export may have begun before
    /// its close wakes the analyzer. Quiet rings hold seconds and are left alone.
    pub(super) fn keep_current(&mut self) {
        if FlightRecorder::get().is_some() && rings_wrap_fast() {
            self.top_up(1);
        }
    }
}

//! Batching: work that needs the recorder waits for more to join it, so that one copy and
//! decode of the rings serves many spans, but never so long that the rings overwrite it.
//!
//! Each batch copies and decodes the rings from a margin before its earliest span: analyzing
//! each violation alone would decode the same few hundred milliseconds of records once per
//! violation, batching keeps the analyzer's cost near one decode of every record. The wait is
//! [`BATCH_DELAY`], or a quarter of the rings' reach when they wrap faster than that; a batch
//! may take half its wait ([`budget`]): the traces queued behind it wait as long.

use std::sync::mpsc::SyncSender;
use std::time::{Duration, Instant};

use opentelemetry_sdk::trace::SpanData;

use crate::clock::{self, Calibration};
use crate::recorder::FlightRecorder;
use crate::slo::Judgement;
use crate::slo::message::RebuildRequest;

/// How long work that needs the recorder waits for more to join it, where the rings keep
/// longer than four times as much.
pub(super) const BATCH_DELAY: Duration = Duration::from_millis(500);

/// How often a waiting batch works out its wait again (the load, and with it the rings'
/// reach, can change while it waits), and how often the kept copy of the rings is brought up
/// to date.
pub(super) const DELAY_RECHECK: Duration = Duration::from_millis(10);

/// A batch this large is analyzed at once.
pub(super) const BATCH_MAX: usize = 4096;

/// The batch wait for rings that keep `reach_ns` (`None`: no ring has wrapped): a quarter of
/// the reach when that is shorter than [`BATCH_DELAY`], so that a busy worker (~2 KB of
/// records a request at 20k requests/s fills 16 MiB in ~0.4 s) does not overwrite a slow
/// trace while it waits for its batch.
pub(super) fn delay_for_reach(reach_ns: Option<u64>) -> Duration {
    match reach_ns {
        Some(ns) => BATCH_DELAY.min(Duration::from_nanos(ns / 4)),
        None => BATCH_DELAY,
    }
}

/// The batch wait now, from the rings' reach ([`FlightRecorder::reach`]).
pub(super) fn batch_delay() -> Duration {
    let reach = FlightRecorder::get().and_then(|r| r.reach(clock::now()));
    delay_for_reach(reach.map(|ticks| Calibration::now().ticks_to_ns(ticks)))
}

/// Whether the rings wrap fast enough to shorten the batch wait: a busy service.
pub(super) fn rings_wrap_fast() -> bool {
    batch_delay() < BATCH_DELAY
}

/// How long a batch may take with the rings' reach as it is now: half the wait, as the
/// traces queued behind it wait as long while the rings overwrite them.
pub(super) fn budget() -> Duration {
    batch_delay() / 2
}

/// How the analyzer waits for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Wait {
    /// Sleep, then take what arrived: while a batch waits. A receiver blocked on the channel
    /// is woken by every send, a futex wake and two context switches on the request path for
    /// each violating trace (~1 % of a saturated service's samples, both sides together).
    Sleep(Duration),
    /// Block on the channel at most this long: idle, the first message wakes it.
    Receive(Duration),
}

/// Work waiting for one pass over the recorder, and when it goes.
#[derive(Debug)]
pub(super) struct Batch {
    /// Spans tracing-opentelemetry built, to analyze.
    pub spans: Vec<(SpanData, Judgement)>,
    /// Traces the source sampler chose, to rebuild and analyze.
    pub rebuilds: Vec<RebuildRequest>,
    /// Flushes answered once this batch is done.
    pub acks: Vec<SyncSender<()>>,
    /// When its first item arrived (`None`: nothing waits).
    since: Option<Instant>,
    /// How long it may wait, as last worked out.
    delay: Duration,
}

impl Default for Batch {
    fn default() -> Self {
        Batch {
            spans: Vec::new(),
            rebuilds: Vec::new(),
            acks: Vec::new(),
            since: None,
            delay: BATCH_DELAY,
        }
    }
}

impl Batch {
    /// The spans and traces waiting.
    pub(super) fn len(&self) -> usize {
        self.spans.len() + self.rebuilds.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether it holds [`BATCH_MAX`] items: it goes now, and takes no more.
    pub(super) fn full(&self) -> bool {
        self.len() >= BATCH_MAX
    }

    /// Whether its wait has begun.
    pub(super) fn waiting(&self) -> bool {
        self.since.is_some()
    }

    /// How to wait for messages at `now`: while it waits, sleep until its wait ends, at most
    /// a [`DELAY_RECHECK`]; without work, block at most `idle`.
    pub(super) fn wait(&self, now: Instant, idle: Duration) -> Wait {
        match self.since {
            Some(s) => Wait::Sleep(
                (s + self.delay)
                    .saturating_duration_since(now)
                    .min(DELAY_RECHECK),
            ),
            None => Wait::Receive(idle),
        }
    }

    /// Begins its wait at `now` if it has not begun, and makes it `delay` long.
    pub(super) fn wait_for(&mut self, now: Instant, delay: Duration) {
        self.since.get_or_insert(now);
        self.delay = delay;
    }

    /// Whether it goes at `now`: its wait is over, a flush waits for it, or it is full.
    pub(super) fn ready(&self, now: Instant) -> bool {
        let waited = self
            .since
            .is_some_and(|s| now.saturating_duration_since(s) >= self.delay);
        waited || !self.acks.is_empty() || self.full()
    }

    /// Takes everything out; the next item begins a new wait.
    pub(super) fn take(&mut self) -> Batch {
        std::mem::take(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    /// A trace to rebuild, rooted at `root`.
    fn request(root: u64) -> RebuildRequest {
        RebuildRequest {
            root,
            trace_id: 1,
            start_ticks: 0,
            span_keys: None,
            span_count: 1,
        }
    }

    /// The batch wait stays well inside the rings' reach.
    #[test]
    fn the_wait_is_a_quarter_of_the_reach_when_that_is_shorter() {
        assert_eq!(delay_for_reach(None), BATCH_DELAY);
        assert_eq!(delay_for_reach(Some(10_000 * MS)), BATCH_DELAY);
        assert_eq!(delay_for_reach(Some(2_000 * MS)), BATCH_DELAY);
        assert_eq!(delay_for_reach(Some(200 * MS)), Duration::from_millis(50));
    }

    #[test]
    fn a_waiting_batch_sleeps_a_recheck_at_most_and_goes_when_its_wait_is_over() {
        let t0 = Instant::now();
        let idle = Duration::from_secs(1);
        let mut b = Batch::default();
        assert_eq!(
            b.wait(t0, idle),
            Wait::Receive(idle),
            "nothing waits: block"
        );
        assert!(!b.ready(t0));
        b.rebuilds.push(request(1));
        b.wait_for(t0, Duration::from_millis(50));
        assert_eq!(b.wait(t0, idle), Wait::Sleep(DELAY_RECHECK));
        let near_end = t0 + Duration::from_millis(46);
        assert_eq!(
            b.wait(near_end, idle),
            Wait::Sleep(Duration::from_millis(4))
        );
        assert!(!b.ready(near_end));
        // Worked out again later: the wait still counts from the first item.
        b.wait_for(near_end, Duration::from_millis(40));
        assert!(b.ready(near_end), "the shorter wait is over");
        let taken = b.take();
        assert_eq!(taken.len(), 1);
        assert!(!b.waiting() && b.is_empty());
    }

    #[test]
    fn a_flush_or_a_full_batch_goes_at_once() {
        let now = Instant::now();
        let mut b = Batch::default();
        let (tx, _rx) = std::sync::mpsc::sync_channel(1);
        b.acks.push(tx);
        assert!(b.ready(now), "a flush waits for it");
        let mut b = Batch {
            rebuilds: (0..BATCH_MAX as u64).map(request).collect(),
            ..Batch::default()
        };
        b.wait_for(now, BATCH_DELAY);
        assert!(b.full() && b.ready(now));
    }
}

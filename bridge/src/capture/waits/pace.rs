//! When the sampler thread looks for blocked threads, so that wait sampling costs little while
//! nothing blocks: a wake-up of the sampler costs ~30 µs of CPU on a small VM, far more than a
//! look at the threads (~1 µs each).
//!
//! - While some registered thread was inside work in the last [`LINGER`], the sampler looks
//!   every two sampling periods (10 ms at the default 200 Hz): a block longer than that gets
//!   sampled.
//! - While one was found blocked, every sampling period (5 ms).
//! - Otherwise it sleeps as its other sources let it (up to 50 ms with perf), *resting*: the
//!   next worker unpark wakes it ([`super::wake_sampler`]), so a request that blocks a worker
//!   right away is still seen. An unpark wakes it at most once per rest, and after a wake it
//!   looks every two periods for [`LINGER`] before resting again, so a service that parks and
//!   unparks between requests does not wake it per request.
//!
//! Each interval is drawn at random within ±25 % of its length: a thread that alternates
//! between blocking and running in a steady rhythm (a loop of 1 ms disk reads) would otherwise
//! be looked at in the same phase of it every time, and could read `running` at every look.

use std::time::{Duration, Instant};

/// How long after last seeing a thread inside work (or being woken) the sampler keeps looking
/// every two sampling periods.
const LINGER: Duration = Duration::from_millis(100);

/// What a look at the registered threads found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Seen {
    /// Some thread was inside a request's work.
    pub inside_work: bool,
    /// Some thread was found blocked there (a sample was written).
    pub blocked: bool,
}

/// The sampler's wait-sampling pace.
#[derive(Debug)]
pub(crate) struct Pace {
    period: Duration,
    last_look: Option<Instant>,
    busy_until: Option<Instant>,
    blocked: bool,
    /// The interval until the next look, jittered.
    next: Duration,
    /// xorshift64 state for the jitter.
    seed: u64,
}

impl Pace {
    /// A pace for sampling every `period` while a thread is blocked.
    pub(crate) fn new(period: Duration) -> Pace {
        Pace {
            period,
            last_look: None,
            busy_until: None,
            blocked: false,
            next: period * 2,
            seed: 0x9e37_79b9_7f4a_7c15,
        }
    }

    /// `base` scaled by a random factor in [0.75, 1.25).
    fn jittered(&mut self, base: Duration) -> Duration {
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let unit = (self.seed >> 11) as f64 / (1u64 << 53) as f64;
        base.mul_f64(0.75 + unit / 2.0)
    }

    /// Time between looks now: one period while a thread is blocked, else two.
    fn interval(&self) -> Duration {
        if self.blocked {
            self.period
        } else {
            self.period * 2
        }
    }

    /// Whether a look is due at `now` (an eighth of the interval early counts: the sampler's
    /// own sleeps overshoot).
    pub(crate) fn due(&self, now: Instant) -> bool {
        self.last_look
            .is_none_or(|at| now.saturating_duration_since(at) >= self.next - self.next / 8)
    }

    /// Records a look at `now` that found `seen`.
    pub(crate) fn looked(&mut self, now: Instant, seen: Seen) {
        self.last_look = Some(now);
        self.blocked = seen.blocked;
        self.next = self.jittered(self.interval());
        if seen.inside_work || self.busy_until.is_none() {
            self.busy_until = Some(now + LINGER);
        }
    }

    /// The sampler was woken early (a worker unparked while it rested): keep looking for a
    /// while.
    pub(crate) fn woken(&mut self, now: Instant) {
        self.busy_until = Some(now + LINGER);
        self.last_look = None;
    }

    /// The longest the sampler may sleep at `now`; `None` when it may rest.
    pub(crate) fn cap(&self, now: Instant) -> Option<Duration> {
        self.busy_until
            .filter(|until| now < *until)
            .map(|_| self.next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Duration = Duration::from_millis(5);

    /// Whether `cap` is `base` within the jitter.
    fn about(cap: Option<Duration>, base: Duration) -> bool {
        cap.is_some_and(|c| c >= base.mul_f64(0.75) && c < base.mul_f64(1.25))
    }

    #[test]
    fn looks_every_two_periods_while_busy_every_period_while_blocked_then_rests() {
        let t0 = Instant::now();
        let mut pace = Pace::new(P);
        assert!(pace.due(t0));
        pace.looked(t0, Seen::default());
        let busy = Seen {
            inside_work: true,
            blocked: false,
        };
        pace.looked(t0, busy);
        assert!(about(pace.cap(t0), 2 * P));
        assert!(!pace.due(t0 + P));
        assert!(pace.due(t0 + 3 * P));
        let blocked = Seen {
            inside_work: true,
            blocked: true,
        };
        pace.looked(t0 + 3 * P, blocked);
        assert!(about(pace.cap(t0 + 3 * P), P));
        assert!(pace.due(t0 + 5 * P));
        pace.looked(t0 + 5 * P, Seen::default());
        assert!(about(pace.cap(t0 + 5 * P), 2 * P), "lingers");
        assert_eq!(pace.cap(t0 + 5 * P + LINGER), None, "then rests");
    }

    #[test]
    fn intervals_are_jittered() {
        let t0 = Instant::now();
        let mut pace = Pace::new(P);
        let busy = Seen {
            inside_work: true,
            blocked: false,
        };
        let mut seen = Vec::new();
        for _ in 0..100 {
            pace.looked(t0, busy);
            let cap = pace.cap(t0).expect("busy");
            assert!(about(Some(cap), 2 * P), "{cap:?}");
            seen.push(cap);
        }
        seen.sort();
        seen.dedup();
        assert!(seen.len() > 50, "{} distinct intervals of 100", seen.len());
        let (lo, hi) = (seen[0], seen[seen.len() - 1]);
        assert!(
            lo < (2 * P).mul_f64(0.85) && hi > (2 * P).mul_f64(1.15),
            "{lo:?}..{hi:?}"
        );
    }

    #[test]
    fn a_wake_makes_it_look_at_once_and_linger() {
        let t0 = Instant::now();
        let mut pace = Pace::new(P);
        pace.looked(t0, Seen::default());
        let later = t0 + Duration::from_secs(1);
        assert_eq!(pace.cap(later), None);
        pace.woken(later);
        assert!(pace.due(later));
        assert!(about(pace.cap(later + LINGER / 2), 2 * P));
    }
}

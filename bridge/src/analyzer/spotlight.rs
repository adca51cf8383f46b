//! Full analyses on a busy service. When the analyzer is overloaded its batches are decoded
//! lightly (`overload`): every violating span keeps a breakdown, but without polls or a
//! culprit. The spotlight still gives a few violating spans per route per second the full
//! analysis, each from a full decode of its own window ([`window`]): its records alone, not
//! the batch's, on a thread of its own (`full_thread`).
//!
//! Which ones, per route (the span's name), up to [`PER_ROUTE_PER_SEC`] a second: first those
//! whose light breakdown names scheduler wait (only the full analysis names who held the
//! worker), then the slowest of the others (their light breakdown names the cause already: a
//! timer, a socket, a blocking call; the full one adds the polls and the timeline). All within
//! `GRANULAR_FULL_ANALYSIS_CPU` of a CPU's time each second, as many as the thread takes; the
//! others within [`OTHERS_SHARE`] of it, so spans with scheduler wait later in the second
//! still find room. On a saturated core a full analysis costs more than its own CPU time: the
//! decode's memory traffic slows the workers sharing the core (docs/benchmarks.md).

use std::collections::HashMap;
use std::time::Duration;

/// Full analyses a route's violating spans get per second at most on a busy service.
pub(super) const PER_ROUTE_PER_SEC: u32 = 10;

/// The part of the second's CPU time that spans without scheduler wait may take.
const OTHERS_SHARE: u32 = 2;

/// How far before a span's start its window begins when its light breakdown shows scheduler
/// wait: a culprit's poll that began shortly before the span is seen (one that began earlier
/// is not, and the span says no culprit).
const MARGIN_NS: u64 = 10_000_000;

/// How far before the other spans' starts their windows begin: their own work begins with
/// them, and a quarter fewer records than [`MARGIN_NS`] for a 30 ms span.
const OWN_MARGIN_NS: u64 = 1_000_000;

/// How far past a span's end its window reaches: its close is stamped when the end time is read.
const AFTER_NS: u64 = 1_000_000;

/// The window (Unix ns) of the full analysis of a span from `start` to `end` (Unix ns),
/// whose light breakdown shows `scheduler_wait` or not.
pub(super) fn window(start: u64, end: u64, scheduler_wait: bool) -> (u64, u64) {
    let margin = if scheduler_wait {
        MARGIN_NS
    } else {
        OWN_MARGIN_NS
    };
    (start.saturating_sub(margin), end + AFTER_NS)
}

/// What one span's full analysis costs per record in its window, about: its decode (fields
/// other than names and `tracing` events passed over), the analysis and the timeline, ~8 ms
/// for the ~150,000 records around a 30 ms span on the benchmark's saturated core.
const NS_PER_RECORD: u64 = 55;

/// The CPU time a full analysis of a window of `records` is predicted to take.
pub(super) fn cost(records: usize) -> Duration {
    Duration::from_nanos(records as u64 * NS_PER_RECORD)
}

/// Routes counted per second at most; past them, other routes wait for the next second.
const MAX_ROUTES: usize = 256;

/// A violating span of a light batch, as the choice sees it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Candidate<'a> {
    /// The span's name: per route for a server span.
    pub route: &'a str,
    /// Its light breakdown's cause is scheduler wait.
    pub scheduler_wait: bool,
    /// Its length, ns.
    pub length_ns: u64,
    /// The CPU time a full decode of its window is predicted to take.
    pub cpu: Duration,
}

/// What the full analyses of light batches took in the current second, against the CPU time
/// they may take in a second.
#[derive(Debug, Default)]
pub(super) struct Spotlight {
    second: u64,
    per_route: HashMap<String, u32>,
    cpu: Duration,
    /// Of `cpu`, what the spans without scheduler wait took.
    others_cpu: Duration,
    cpu_per_sec: Duration,
}

impl Spotlight {
    /// Full analyses within `share` of a CPU (0 to 1): `GRANULAR_FULL_ANALYSIS_CPU`.
    pub(super) fn new(share: f64) -> Self {
        Spotlight {
            cpu_per_sec: Duration::from_secs_f64(share.clamp(0.0, 1.0)),
            ..Spotlight::default()
        }
    }

    /// Whether any full analysis may be made at all.
    pub(super) fn enabled(&self) -> bool {
        self.cpu_per_sec > Duration::ZERO
    }

    /// Which of `candidates` (`max` at most) get the full analysis in the second `now`; each
    /// chosen one's predicted CPU time is counted as spent until [`Self::spent`] corrects it.
    pub(super) fn choose(
        &mut self,
        candidates: &[Candidate<'_>],
        now: u64,
        mut max: usize,
    ) -> Vec<bool> {
        if self.second != now {
            self.second = now;
            self.per_route.clear();
            self.cpu = Duration::ZERO;
            self.others_cpu = Duration::ZERO;
        }
        let mut order: Vec<usize> = (0..candidates.len()).collect();
        order.sort_by_key(|&i| {
            let c = &candidates[i];
            (!c.scheduler_wait, std::cmp::Reverse(c.length_ns))
        });
        let mut chosen = vec![false; candidates.len()];
        for i in order {
            let c = &candidates[i];
            if max == 0 {
                break;
            }
            if self.cpu + c.cpu > self.cpu_per_sec
                || (!c.scheduler_wait && self.others_cpu + c.cpu > self.cpu_per_sec / OTHERS_SHARE)
            {
                continue;
            }
            let known = self.per_route.len();
            let Some(n) = (match self.per_route.get_mut(c.route) {
                Some(n) => Some(n),
                None if known < MAX_ROUTES => {
                    Some(self.per_route.entry(c.route.into()).or_default())
                }
                None => None,
            }) else {
                continue;
            };
            if *n >= PER_ROUTE_PER_SEC {
                continue;
            }
            *n += 1;
            self.cpu += c.cpu;
            if !c.scheduler_wait {
                self.others_cpu += c.cpu;
            }
            max -= 1;
            chosen[i] = true;
        }
        chosen
    }

    /// A chosen analysis (of a span with scheduler wait or not) took `actual` CPU time where
    /// `predicted` was counted.
    pub(super) fn spent(&mut self, scheduler_wait: bool, predicted: Duration, actual: Duration) {
        self.cpu = (self.cpu + actual).saturating_sub(predicted);
        if !scheduler_wait {
            self.others_cpu = (self.others_cpu + actual).saturating_sub(predicted);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// `n` spans of `GET /a`, 30 ms, 31 ms, … long, each predicted to take `cpu_ms`.
    fn of_a(n: u64, scheduler_wait: bool, cpu_ms: u32) -> Vec<Candidate<'static>> {
        (0..n)
            .map(|i| candidate("GET /a", scheduler_wait, 30 + i, cpu_ms))
            .collect()
    }

    /// How many were chosen.
    fn count(chosen: Vec<bool>) -> usize {
        chosen.iter().filter(|x| **x).count()
    }

    fn candidate(route: &str, scheduler_wait: bool, length_ms: u64, cpu_ms: u32) -> Candidate<'_> {
        Candidate {
            route,
            scheduler_wait,
            length_ns: length_ms * 1_000_000,
            cpu: MS * cpu_ms,
        }
    }

    #[test]
    fn scheduler_wait_first_then_the_slowest_others_up_to_the_route_limit() {
        let mut s = Spotlight::new(1.0);
        let mut c = of_a(12, true, 1);
        c.push(candidate("GET /a", false, 99, 1));
        c.extend((0..12).map(|i| candidate("GET /b", false, 25 + i, 1)));
        let chosen = s.choose(&c, 7, 100);
        let waits: Vec<usize> = (0..12).filter(|&i| chosen[i]).collect();
        assert_eq!(
            waits,
            (2..12).collect::<Vec<_>>(),
            "the 10 slowest with scheduler wait"
        );
        assert!(
            !chosen[12],
            "/a had its full analyses this second, slower or not"
        );
        let others: Vec<usize> = (13..25).filter(|&i| chosen[i]).collect();
        assert_eq!(others, (15..25).collect::<Vec<_>>(), "/b: its 10 slowest");
        assert!(
            s.choose(&c, 7, 100).iter().all(|x| !x),
            "the second is used up"
        );
        assert!(s.choose(&c[12..13], 8, 100)[0], "a new second");
    }

    /// Spans without scheduler wait take half the second's CPU time at most: spans with it
    /// that come later in the second still get theirs.
    #[test]
    fn the_others_leave_room_for_scheduler_wait() {
        let mut s = Spotlight::new(0.1);
        let others = of_a(3, false, 20);
        assert_eq!(count(s.choose(&others, 1, 100)), 2, "50 ms: two of 20 ms");
        let waits = [candidate("GET /a", true, 30, 20)];
        assert_eq!(count(s.choose(&waits, 1, 100)), 1, "the other half");
        s.spent(false, MS * 20, MS * 5);
        assert_eq!(
            count(s.choose(&others, 1, 100)),
            1,
            "an other took 5 ms: room for one more"
        );
    }

    #[test]
    fn the_cpu_budget_and_the_room_bound_the_choice() {
        let mut s = Spotlight::new(0.1);
        let c = of_a(5, true, 40);
        assert_eq!(
            count(s.choose(&c, 1, 100)),
            2,
            "100 ms of CPU: two of 40 ms"
        );
        s.spent(true, MS * 80, MS * 20);
        assert_eq!(
            count(s.choose(&c, 1, 100)),
            2,
            "they took 20 ms: room for two more"
        );
        let mut s = Spotlight::new(0.1);
        let chosen = s.choose(&c, 1, 1);
        assert_eq!(
            chosen,
            [false, false, false, false, true],
            "room for one: the slowest"
        );
        let mut off = Spotlight::new(0.0);
        assert_eq!(count(off.choose(&c, 1, 100)), 0, "0 turns them off");
    }
}

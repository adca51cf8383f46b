//! Work the recorder saw happen but could not attribute to any request: what a span's idle
//! time (or a scheduler wait without a culprit) may really have been.
//!
//! A breakdown counts only work it can tie to the request: its spans, and with task hooks the
//! tasks spawned beneath them. Work it cannot tie to anyone is still visible as activity:
//! - **workers busy outside any span and any poll**: a worker is unparked, yet no span is
//!   entered on it and (with task hooks) no task is being polled, for [`MIN_STRETCH_NS`] or
//!   more at a stretch. In a stable build that is how a task spawned without a span looks
//!   (tokio's spawns and polls are not seen); with task hooks every poll is seen and this is
//!   only the scheduler's own overhead. Shorter stretches are a server's own bookkeeping
//!   between spans (0.1–0.5 ms around each request of the demo's debug build) and are not
//!   counted, so a hidden task whose polls are all shorter and parked between goes unseen.
//! - **blocking-pool time no span or job names**: runtime threads that are not workers (the
//!   blocking pool) busy — on CPU, or runnable and waiting for one — per their schedstat
//!   samples or perf context switches, outside `granular::spawn_blocking` jobs and span
//!   entries. `tokio::task::spawn_blocking` (and what uses it: `tokio::fs`, DNS lookups) runs
//!   no hook tokio offers: its jobs are seen only this way, and only while they use the CPU
//!   (a pool thread sleeping in a job looks like an idle one).
//! - **`granular::spawn_blocking` jobs queued outside any span** (stable builds): the job is
//!   seen, but not which request's task queued it.
//!
//! None of it is known to be the request's, and none of it is known not to be: the verdict
//! says how much there was and that it may be the request's.

use super::decode::{Decoded, ThreadActivity};
use super::idmap::IdMap;
use super::os_time::busy_in;
use super::ranges::{intersect, merge, subtract};

/// Unattributed work during a set of time ranges.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Unattributed {
    /// Worker time busy outside any span entry and any poll, in stretches of
    /// [`MIN_STRETCH_NS`] or more, ns. `None` when not checked: a light decode keeps neither
    /// other requests' span entries nor polls.
    pub workers_ns: Option<u64>,
    /// Blocking-pool time on CPU or runnable outside jobs and span entries, ns. `None` when
    /// the runtime threads' CPU is not observed (no schedstat sampler, no perf).
    pub pool_busy_ns: Option<u64>,
    /// Running time of `granular::spawn_blocking` jobs queued outside any span whose task
    /// this build cannot tie to a request (stable builds), ns.
    pub pool_jobs_ns: u64,
    /// Where it happened, longest first (at most [`MAX_STRETCHES`]).
    pub stretches: Vec<Stretch>,
}

/// One place unattributed work was seen.
#[derive(Debug, Clone, PartialEq)]
pub struct Stretch {
    pub kind: StretchKind,
    pub tid: u64,
    pub start: u64,
    pub end: u64,
    /// The work's amount in `[start, end]`, ns: the whole stretch on a worker or for a job;
    /// the time on CPU or runnable for a pool thread.
    pub ns: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StretchKind {
    /// A worker busy outside any span and poll.
    Worker(usize),
    /// A blocking-pool thread busy outside jobs and spans.
    PoolBusy,
    /// A `granular::spawn_blocking` job queued outside any span.
    PoolJob,
}

impl Unattributed {
    /// The amount of one kind, ns.
    pub fn amount(&self, kind: StretchKind) -> u64 {
        match kind {
            StretchKind::Worker(_) => self.workers_ns.unwrap_or(0),
            StretchKind::PoolBusy => self.pool_busy_ns.unwrap_or(0),
            StretchKind::PoolJob => self.pool_jobs_ns,
        }
    }

    /// Whether there is enough of one kind to report ([`MIN_UNATTRIBUTED_NS`]).
    pub fn reported(&self, kind: StretchKind) -> bool {
        self.amount(kind) >= MIN_UNATTRIBUTED_NS
    }
}

/// Unattributed work below this (of one kind) is not reported: a worker's own bookkeeping
/// between spans, a server's connection handling around the request.
pub(crate) const MIN_UNATTRIBUTED_NS: u64 = 1_000_000;

/// Stretches kept for span events.
pub(crate) const MAX_STRETCHES: usize = 8;

/// A worker's busy stretches shorter than this are not counted (see the module doc).
pub(crate) const MIN_STRETCH_NS: u64 = 1_000_000;

/// Unattributed work inside `ranges` (sorted, disjoint, Unix ns). `light`: the decode kept
/// only the request's own spans, so busy workers cannot be told apart from other requests.
pub(crate) fn unattributed(d: &Decoded, ranges: &[(u64, u64)], light: bool) -> Unattributed {
    let mut u = Unattributed::default();
    let (Some(&(lo, _)), Some(&(_, hi))) = (ranges.first(), ranges.last()) else {
        return Unattributed {
            workers_ns: (!light).then_some(0),
            pool_busy_ns: d.threads_observed.then_some(0),
            ..Unattributed::default()
        };
    };
    if !light {
        let mut total = 0;
        for t in d.threads.iter().filter(|t| t.worker.is_some()) {
            let busy = subtract(ranges, &worker_accounted(t, lo, hi));
            for &(a, b) in busy.iter().filter(|(a, b)| b - a >= MIN_STRETCH_NS) {
                total += b - a;
                u.stretches.push(Stretch {
                    kind: StretchKind::Worker(t.worker.unwrap_or(0)),
                    tid: t.tid,
                    start: a,
                    end: b,
                    ns: b - a,
                });
            }
        }
        // A worker with no activity in the window at all was parked throughout (or busy
        // without a trace: not claimed).
        u.workers_ns = Some(total);
    }
    pool(d, ranges, lo, hi, &mut u);
    u.stretches.sort_by_key(|s| std::cmp::Reverse(s.ns));
    u.stretches.truncate(MAX_STRETCHES);
    u
}

/// What a worker's time in `[lo, hi]` is accounted for by: parked, a span entered, a task
/// polled. Sorted and merged.
fn worker_accounted(t: &ThreadActivity, lo: u64, hi: u64) -> Vec<(u64, u64)> {
    let from = t.parks.partition_point(|p| p.1 < lo);
    let mut covered: Vec<(u64, u64)> = t.parks[from..]
        .iter()
        .take_while(|p| p.0 <= hi)
        .copied()
        .collect();
    covered.extend(t.entries_overlapping(lo, hi).map(|e| (e.start, e.end)));
    covered.extend(t.polls_overlapping(lo, hi).iter().map(|p| (p.start, p.end)));
    merge(covered)
}

/// Blocking-pool threads: jobs queued outside any span (stable builds) by their running time,
/// and busy time outside every job and span entry.
fn pool(d: &Decoded, ranges: &[(u64, u64)], lo: u64, hi: u64, u: &mut Unattributed) {
    // Per pool thread: (start, end, attributed) of the jobs it ran in [lo, hi].
    let mut jobs: IdMap<u64, Vec<(u64, u64, bool)>> = IdMap::default();
    for j in d.jobs.values() {
        let Some(started) = j.started else { continue };
        let ended = j.ended.unwrap_or(d.taken_at);
        if ended < lo || started > hi || j.tid == 0 {
            continue;
        }
        // With task hooks a job's task is tied to the request that spawned it (or known not
        // to be this one's); without, only its span says whose it is.
        let attributed = crate::capture::runtime::TASK_HOOKS || j.span != 0;
        jobs.entry(j.tid)
            .or_default()
            .push((started, ended, attributed));
    }
    let mut busy = 0;
    let mut seen = d.worker_tids.clone();
    let tids = d
        .os_samples
        .keys()
        .chain(d.off_cpu.keys())
        .chain(jobs.keys());
    for &tid in tids {
        if !seen.insert(tid) {
            continue;
        }
        let mine = jobs.get(&tid).map_or(&[][..], Vec::as_slice);
        let unnamed = merge(mine.iter().filter(|j| !j.2).map(|j| (j.0, j.1)).collect());
        for &(a, b) in &intersect(ranges, &unnamed) {
            u.pool_jobs_ns += b - a;
            u.stretches.push(Stretch {
                kind: StretchKind::PoolJob,
                tid,
                start: a,
                end: b,
                ns: b - a,
            });
        }
        let mut accounted: Vec<(u64, u64)> = mine.iter().map(|j| (j.0, j.1)).collect();
        if let Some(t) = d.threads.iter().find(|t| t.tid == tid) {
            accounted.extend(t.entries_overlapping(lo, hi).map(|e| (e.start, e.end)));
        }
        let free = subtract(ranges, &merge(accounted));
        let (mut on, mut first, mut last) = (0, u64::MAX, 0);
        for &(a, b) in &free {
            let ns = busy_in(d, tid, a, b);
            if ns > 0 {
                on += ns;
                first = first.min(a);
                last = last.max(b);
            }
        }
        if on > 0 {
            busy += on;
            u.stretches.push(Stretch {
                kind: StretchKind::PoolBusy,
                tid,
                start: first,
                end: last,
                ns: on,
            });
        }
    }
    u.pool_busy_ns = d.threads_observed.then_some(busy);
}

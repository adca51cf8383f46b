//! Analyzing one span: from a decoded snapshot to its [`Breakdown`].
//!
//! Steps, for a target span `S` with window `[start, end]`:
//! 1. The request's work ([`super::request`]): `S` and its descendant spans (`D`), the tasks
//!    spawned while a span of `D` was current, transitively through tasks spawned by those
//!    (`T`), and the `granular::spawn_blocking` jobs queued by either.
//! 2. Marks, each tagged: *own work* (a span of `D` entered on a thread, or a poll of a task in
//!    `T`), *scheduler wait* (before a poll of its own: tokio's measured wake-to-poll latency,
//!    and in both builds the wake-ups the runtime delayed, estimated from the workers' parks —
//!    see [`super::late_wakes`]), *blocking pool* (queued/running jobs).
//! 3. A sweep over the window ([`super::sweep`]) gives every instant one category, by priority:
//!    own work > scheduler wait > blocking pool > idle. The parts therefore sum to the span's
//!    duration.
//! 4. Time covered by own work is split by what the OS says its thread did
//!    ([`super::os_time`]): on-CPU → running, run-queue wait → OS wait, the rest of off-CPU →
//!    blocked in poll.
//! 5. Culprits ([`super::culprits`]): whatever other tasks the workers polled during scheduler
//!    wait, grouped by task, named by spawn site and the span (and trace) they served; one that
//!    held a worker for less than [`MIN_CULPRIT_WAIT_NS`](super::breakdown::MIN_CULPRIT_WAIT_NS)
//!    of the wait is not named.
//! 6. What the build could not attribute ([`super::unattributed`]): during idle time (and a
//!    scheduler wait without a culprit), workers busy outside any span and poll, and
//!    blocking-pool CPU no span or job names. It may be the request's; the verdict
//!    ([`super::verdict`]) says so rather than calling the time quiet.
//!
//! Allocations are the growth of each thread's cumulative counters over the union of the
//! request's intervals on that thread ([`super::allocations`]), so each allocation counts once
//! however its span and poll intervals nest.

use std::collections::HashMap;

use super::allocations::{Counted, allocations};
use super::blocked_on::{self, BlockedOn};
use super::breakdown::{
    Breakdown, Category, Culprit, Interval, IntervalKind, LateWakes, Target, ms,
};
use super::culprits::culprits;
use super::decode::Decoded;
use super::idmap::IdSet;
use super::late_wakes::{Late, OwnInterval, late_wakes};
use super::os_time;
use super::page_faults::page_faults;
use super::ranges::merge;
use super::request::{PollOf, RequestWork};
use super::sweep::{Marks, Segment, Tag, Wait, joined};
use super::unattributed::{Unattributed, unattributed};
use super::verdict::{describe_stretch, verdict};
use crate::capture::runtime::TASK_HOOKS;

/// Intervals shorter than this are not reported as span events.
pub(crate) const MIN_INTERVAL_NS: u64 = 100_000;

/// How far a span's start from the SDK (`SystemTime`) and from the recorder (TSC, calibrated)
/// may disagree.
pub(crate) const CLOCK_SLACK_NS: u64 = 1_000_000;

/// Analyzes one span against a decoded snapshot.
pub fn analyze(d: &Decoded, target: &Target) -> Breakdown {
    analyze_with(d, target, false)
}

/// [`analyze`]; `light` skips the search for culprits (a light decode holds nothing to
/// search), whose cost grows with how busy the workers were: on a saturated worker every
/// other request is a candidate.
pub(crate) fn analyze_with(d: &Decoded, target: &Target, light: bool) -> Breakdown {
    let light = light || d.light;
    let (start, end) = (target.start, target.end.max(target.start));
    let key = d.by_otel_id.get(&target.otel_span_id).copied();
    let data_loss = key.is_none() || d.complete_since.is_some_and(|c| c > start);
    let work = key.map(|k| RequestWork::collect(d, k)).unwrap_or_default();
    let activity = Activity::gather(d, &work, start, end);
    let Swept {
        mut parts,
        waits,
        idle,
        own,
    } = sweep(activity.marks);
    let (mut intervals, mut blocked_on) = own_time(d, own, &mut parts);
    let pool_blocked_on = pool_waits(d, &activity.jobs_run);
    if let (Some(top), Some(period)) = (blocked_on.first_mut(), crate::capture::waits::period()) {
        blocked_on::name_holder(d, &work.spans, top, period.as_nanos() as u64);
    }
    let wait_ranges = merge(waits.iter().map(|w| (w.start, w.end)).collect());
    let culprits = culprits(d, &work, &wait_ranges, light, data_loss);
    let late_wake = late_wakes_in(&waits);
    let unattributed = unattributed(d, &merge(idle), d.light);
    intervals.extend(notable(&unattributed, waits, &culprits.named, start, end));
    // Sub-0.1 ms intervals are noise to a reader; they still count in the parts.
    intervals.retain(|i| i.end - i.start >= MIN_INTERVAL_NS || i.kind == IntervalKind::Culprit);
    intervals.sort_by_key(|i| std::cmp::Reverse(i.end - i.start));

    let dominant = Category::ALL
        .into_iter()
        .max_by_key(|c| (parts.get(c).copied().unwrap_or(0), std::cmp::Reverse(*c)))
        .unwrap_or(Category::Idle);
    let mut b = Breakdown {
        span_name: target.name.clone(),
        start,
        end,
        parts,
        dominant,
        polls: (TASK_HOOKS && !d.light).then_some(activity.polls),
        page_faults: page_faults(
            d,
            &activity
                .counted
                .iter()
                .map(|c| {
                    let (thread, start, end) = c.range();
                    (d.threads[thread].tid, start, end)
                })
                .collect::<Vec<_>>(),
            crate::capture::waits::fault_cost_ns(),
        ),
        alloc: d.alloc_counted.then(|| allocations(activity.counted)),
        unattributed,
        blocked_on,
        pool_blocked_on,
        culprits: culprits.named,
        no_culprit: culprits.no_culprit,
        intervals,
        verdict: String::new(),
        data_loss,
        scheduler_wait_estimated: !TASK_HOOKS || d.light || late_wake.is_some(),
        late_wake,
        light,
        threads: activity.threads.into_iter().collect(),
    };
    b.verdict = verdict(&b);
    b
}

/// What the request did in the window (steps 1 and 2): its marks for the sweep, and what the
/// breakdown counts besides.
struct Activity {
    marks: Marks,
    /// Polls that did the request's work (see [`PollOf`]).
    polls: u64,
    /// Its own intervals, for its allocations.
    counted: Vec<Counted>,
    /// OS threads its work ran on (for the artifact).
    threads: IdSet<u64>,
    /// Its `granular::spawn_blocking` jobs that started: (pool thread, start, end).
    jobs_run: Vec<(u64, u64, u64)>,
}

impl Activity {
    fn gather(d: &Decoded, work: &RequestWork, start: u64, end: u64) -> Activity {
        let mut a = Activity {
            marks: Marks::new(start, end),
            polls: 0,
            counted: Vec::new(),
            threads: IdSet::default(),
            jobs_run: Vec::new(),
        };
        for (ti, t) in d.threads.iter().enumerate() {
            let own = Tag::OwnWork { thread: ti };
            // Entries of the request's spans: the spans were created at or after the target's
            // start, so their entries begin inside the window.
            for e in t
                .entries_starting_in(start.saturating_sub(CLOCK_SLACK_NS), end)
                .iter()
                .filter(|e| work.spans.contains(&e.span))
            {
                a.marks.push(e.start, e.end, own);
                a.counted.push(Counted::new(ti, e.start, e.end, e.alloc));
                a.threads.insert(t.tid);
            }
            for p in t.polls_overlapping(start, end) {
                let Some(poll_of) = work.poll_of(t, p) else {
                    continue;
                };
                a.polls += 1;
                a.threads.insert(t.tid);
                // A host task's poll is the request's only in the span entries counted above.
                if poll_of == PollOf::RequestTask {
                    a.marks.push(p.start, p.end, own);
                    a.counted.push(Counted::new(ti, p.start, p.end, p.alloc));
                }
                if p.sched_latency > 0 {
                    let woken = p.start.saturating_sub(p.sched_latency);
                    a.marks.push(woken, p.start, Tag::SchedWait(Wait::Measured));
                }
            }
        }
        let mut own: Vec<OwnInterval> = a
            .marks
            .iter()
            .filter_map(|m| match m.what {
                Tag::OwnWork { thread } => Some(OwnInterval {
                    start: m.start,
                    end: m.end,
                    thread,
                }),
                _ => None,
            })
            .collect();
        own.sort_unstable();
        for w in late_wakes(d, &own, start, end) {
            a.marks
                .push(w.start, w.end, Tag::SchedWait(Wait::Late(w.why)));
        }
        for j in d.jobs.values() {
            if work.spans.contains(&j.span) || work.tasks.contains(&j.task) {
                let done = j.ended.unwrap_or(d.taken_at);
                a.marks.push(j.queued, done, Tag::Pool);
                if let Some(started) = j.started {
                    a.jobs_run.push((j.tid, started, done.max(started)));
                }
            }
        }
        a
    }
}

/// The window swept (step 3): the time of the categories the sweep decides, and the segments
/// the later steps look at again.
struct Swept {
    parts: HashMap<Category, u64>,
    /// Scheduler wait, by where it comes from.
    waits: Vec<Segment<Wait>>,
    idle: Vec<(u64, u64)>,
    /// The request's own work, by thread index.
    own: Vec<Segment<usize>>,
}

fn sweep(marks: Marks) -> Swept {
    let mut s = Swept {
        parts: HashMap::new(),
        waits: Vec::new(),
        idle: Vec::new(),
        own: Vec::new(),
    };
    for seg in marks.sweep() {
        let (start, end) = (seg.start, seg.end);
        match seg.what {
            Some(Tag::OwnWork { thread }) => s.own.push(Segment {
                start,
                end,
                what: thread,
            }),
            Some(Tag::SchedWait(w)) => {
                *s.parts.entry(Category::SchedulerWait).or_default() += end - start;
                s.waits.push(Segment {
                    start,
                    end,
                    what: w,
                });
            }
            Some(Tag::Pool) => *s.parts.entry(Category::BlockingPool).or_default() += end - start,
            None => {
                *s.parts.entry(Category::Idle).or_default() += end - start;
                s.idle.push((start, end));
            }
        }
    }
    s
}

/// Step 4: the request's own time on each thread, split into `parts` by what the OS says the
/// thread did. Returns the intervals worth a span event (time off-CPU inside a poll, with what
/// the thread waited in where sampled; time runnable without a CPU), and what the blocked time
/// was spent in.
fn own_time(
    d: &Decoded,
    own: Vec<Segment<usize>>,
    parts: &mut HashMap<Category, u64>,
) -> (Vec<Interval>, Vec<BlockedOn>) {
    let mut intervals = Vec::new();
    let mut waited_in = Vec::new();
    for s in joined(own, |s| (s.what, s.start)) {
        let tid = d.threads[s.what].tid;
        let split = os_time::split(d, tid, s.start, s.end);
        for (c, ns) in [
            (Category::Running, split.running),
            (Category::OsWait, split.os_wait),
            (Category::BlockedInPoll, split.blocked),
        ] {
            *parts.entry(c).or_default() += ns;
        }
        // Each is placed at the stretch's start, as long as the time the thread actually
        // spent off-CPU (or runnable).
        if split.blocked > 0 {
            let on = blocked_on::in_stretch(d, tid, s.start, s.end, split.blocked);
            let waited = on.iter().max_by_key(|g| g.ns).cloned();
            let mut detail = format!(
                "thread {tid} off-CPU {} inside a poll of this request",
                ms(split.blocked)
            );
            if let Some(w) = &waited {
                detail = format!("{detail}: {}", w.describe());
            }
            let mut blocked = part(
                Category::BlockedInPoll,
                s.start,
                s.start + split.blocked,
                detail,
            );
            blocked.waited = waited;
            intervals.push(blocked);
            blocked_on::merge(&mut waited_in, on);
        }
        if split.os_wait > 0 {
            intervals.push(part(
                Category::OsWait,
                s.start,
                s.start + split.os_wait,
                format!(
                    "thread {tid} runnable but not on a CPU for {}",
                    ms(split.os_wait)
                ),
            ));
        }
    }
    (intervals, waited_in)
}

/// What the request's `granular::spawn_blocking` jobs waited in while their threads were
/// blocked, as [`own_time`] tells it for polls.
fn pool_waits(d: &Decoded, jobs_run: &[(u64, u64, u64)]) -> Vec<BlockedOn> {
    let mut all = Vec::new();
    for &(tid, start, end) in jobs_run {
        let blocked = os_time::split(d, tid, start, end).blocked;
        if blocked > 0 {
            blocked_on::merge(
                &mut all,
                blocked_on::in_stretch(d, tid, start, end, blocked),
            );
        }
    }
    all
}

/// How much of the scheduler wait `waits` is a wake-up the runtime delayed, and by which rule
/// mostly. A parked worker's own wake-up (its unpark hook to the request's first span entry)
/// is counted by the first rule too, tens of microseconds: under [`MIN_INTERVAL_NS`] in all,
/// it is not worth calling an estimate.
fn late_wakes_in(waits: &[Segment<Wait>]) -> Option<LateWakes> {
    let mut late: Vec<(Late, u64)> = Vec::new();
    for w in waits {
        if let Wait::Late(why) = w.what {
            match late.iter_mut().find(|l| l.0 == why) {
                Some(l) => l.1 += w.end - w.start,
                None => late.push((why, w.end - w.start)),
            }
        }
    }
    let ns: u64 = late.iter().map(|l| l.1).sum();
    late.iter()
        .max_by_key(|l| l.1)
        .filter(|_| ns >= MIN_INTERVAL_NS)
        .map(|&(why, _)| LateWakes { ns, why })
}

/// The intervals of steps 5 and 6 worth a span event: unattributed work large enough to
/// report, the scheduler wait by source, and the three largest culprits.
fn notable(
    unattributed: &Unattributed,
    waits: Vec<Segment<Wait>>,
    culprits: &[Culprit],
    start: u64,
    end: u64,
) -> Vec<Interval> {
    let mut intervals = Vec::new();
    for s in unattributed
        .stretches
        .iter()
        .filter(|s| unattributed.reported(s.kind))
    {
        intervals.push(part(Category::Idle, s.start, s.end, describe_stretch(s)));
    }
    for w in joined(waits, |w| w.start) {
        intervals.push(part(
            Category::SchedulerWait,
            w.start,
            w.end,
            w.what.describe(),
        ));
    }
    for c in culprits.iter().take(3) {
        let from = c.first_seen.clamp(start, end);
        intervals.push(Interval {
            category: Category::SchedulerWait,
            start: from,
            end: from + c.overlap_ns,
            detail: format!(
                "culprit: {} held worker {} for {}",
                c.describe(),
                c.worker.map_or("?".into(), |w| w.to_string()),
                ms(c.overlap_ns)
            ),
            kind: IntervalKind::Culprit,
            waited: None,
        });
    }
    intervals
}

/// An interval of the span's own time.
fn part(category: Category, start: u64, end: u64, detail: String) -> Interval {
    Interval {
        category,
        start,
        end,
        detail,
        kind: IntervalKind::Part,
        waited: None,
    }
}

#[cfg(test)]
mod tests;

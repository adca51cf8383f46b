//! The breakdown: a span's wall time partitioned into causes, with culprits.
//!
//! Steps, for a target span `S` with window `[start, end]`:
//! 1. The request's work: `S` and its descendant spans (`D`), the tasks spawned while a span
//!    of `D` was current, transitively through tasks spawned by those (`T`), and the
//!    `granular::spawn_blocking` jobs queued by either.
//! 2. Intervals, each tagged: *ours* (a span of `D` entered on a thread, or a poll of a task in
//!    `T`), *scheduler wait* (before a poll of ours: tokio's measured wake-to-poll latency, and
//!    in both builds the wake-ups the runtime delayed, estimated from the workers' parks — see
//!    [`super::late_wakes`]), *blocking pool* (queued/running jobs).
//! 3. A sweep over the window gives every instant one category, by priority: ours >
//!    scheduler wait > blocking pool > idle. The parts therefore sum to the span's duration.
//! 4. Time covered by *ours* is split by the OS samples of its thread: on-CPU → running,
//!    run-queue wait → OS wait, the rest of off-CPU → blocked in poll.
//! 5. Culprits: whatever other tasks the workers polled during scheduler wait, grouped by task,
//!    named by spawn site and the span (and trace) they served; one that held a worker for
//!    less than [`MIN_CULPRIT_WAIT_NS`] of the wait is not named.
//! 6. What the build could not attribute ([`super::unattributed`]): during idle time (and a
//!    scheduler wait without a culprit), workers busy outside any span and poll, and
//!    blocking-pool CPU no span or job names. It may be the request's; the verdict says so
//!    rather than calling the time quiet.
//!
//! Allocations are the growth of each thread's cumulative counters over the union of the
//! request's intervals on that thread, so each allocation counts once however its span and
//! poll intervals nest.

use std::collections::HashMap;

use super::idmap::{IdMap, IdSet};
use super::late_wakes::{Late, Own, late_wakes};
use super::unattributed::{Stretch, StretchKind, Unattributed, merge, samples_at, unattributed};
use std::fmt::Write as _;

use super::decode::{Decoded, ThreadActivity};

/// The categories a span's wall time is partitioned into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Category {
    Running,
    SchedulerWait,
    OsWait,
    BlockedInPoll,
    BlockingPool,
    Idle,
}

impl Category {
    pub const ALL: [Category; 6] = [
        Category::Running,
        Category::SchedulerWait,
        Category::OsWait,
        Category::BlockedInPoll,
        Category::BlockingPool,
        Category::Idle,
    ];

    /// Machine name, used in attribute keys and values (`granular.cause`).
    pub fn key(self) -> &'static str {
        match self {
            Category::Running => "running",
            Category::SchedulerWait => "scheduler_wait",
            Category::OsWait => "os_wait",
            Category::BlockedInPoll => "blocked_in_poll",
            Category::BlockingPool => "blocking_pool",
            Category::Idle => "idle",
        }
    }

    /// Words users read.
    pub fn words(self) -> &'static str {
        match self {
            Category::Running => "running",
            Category::SchedulerWait => "scheduler wait",
            Category::OsWait => "OS wait",
            Category::BlockedInPoll => "blocked in poll",
            Category::BlockingPool => "blocking pool",
            Category::Idle => "idle",
        }
    }
}

/// What the analyzer is asked about.
#[derive(Debug, Clone)]
pub struct Target {
    pub otel_span_id: u64,
    pub name: String,
    pub start: u64,
    pub end: u64,
}

/// Another task that held a worker while the request waited for one.
#[derive(Debug, Clone, PartialEq)]
pub struct Culprit {
    /// tokio task id (0 when only span entries were seen, in stable builds).
    pub task: u64,
    pub spawn_site: Option<String>,
    /// The task's spawn precedes the recorder's oldest records (a long-lived task, such as a
    /// server's connection task): its spawn site and the span it was spawned in are unknown.
    pub spawned_before_window: bool,
    /// The local root span the task was serving, if any.
    pub span_name: Option<String>,
    pub trace_id: Option<u128>,
    pub worker: Option<usize>,
    /// Time it overlapped the request's scheduler wait, ns.
    pub overlap_ns: u64,
    /// When it was first seen holding a worker during the wait.
    pub first_seen: u64,
}

impl Culprit {
    /// "GET /report (src/report.rs:40, trace 4bf92f3577b34da6)"; "task 7 (spawned before the
    /// recorded window)" when neither its spawn nor a span it served was seen.
    pub fn describe(&self) -> String {
        let mut s = self
            .span_name
            .clone()
            .unwrap_or_else(|| format!("task {}", self.task));
        let mut extra = Vec::new();
        if let Some(site) = &self.spawn_site {
            extra.push(site.clone());
        }
        if let Some(t) = self.trace_id {
            extra.push(format!("trace {t:032x}"));
        }
        // The span it served says what it is; a connection task spawned long ago has nothing
        // more to add.
        if self.spawned_before_window && self.span_name.is_none() {
            extra.push("spawned before the recorded window".into());
        }
        if !extra.is_empty() {
            let _ = write!(s, " ({})", extra.join(", "));
        }
        s
    }
}

/// One notable interval inside the window.
#[derive(Debug, Clone, PartialEq)]
pub struct Interval {
    pub category: Category,
    pub start: u64,
    pub end: u64,
    pub detail: String,
}

/// Allocations made by a request's own work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Allocations {
    pub count: u64,
    pub bytes: u64,
}

/// Why a scheduler wait names no culprit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoCulprit {
    /// A light analysis searches for none.
    Light,
    /// The wait was under [`MIN_CULPRIT_WAIT_NS`].
    Short,
    /// The workers were busy meanwhile with work no span (or task poll) names, ns.
    UnnamedWork(u64),
    /// Other tasks (or spans) ran meanwhile, none of them for [`MIN_CULPRIT_WAIT_NS`] of the
    /// wait: how many, and the longest's overlap, ns.
    Scattered { count: usize, longest_ns: u64 },
    /// The recorder overwrote records of the window.
    Overwritten,
    /// No other work was seen on the workers meanwhile.
    NoneSeen,
}

impl NoCulprit {
    /// Words for the verdict.
    pub fn describe(self) -> String {
        match self {
            NoCulprit::Light => "light analysis under load (no culprit search)".into(),
            NoCulprit::Short => format!("the wait was under {}", ms(MIN_CULPRIT_WAIT_NS)),
            NoCulprit::UnnamedWork(ns) => format!(
                "the workers were busy {} with work no span{} names",
                ms(ns),
                if crate::capture::runtime::TASK_HOOKS {
                    " or task poll"
                } else {
                    " (stable builds do not see tasks: a task spawned without a span?)"
                }
            ),
            NoCulprit::Scattered { count, longest_ns } => format!(
                "no other {} held a worker for {} of it ({count} ran, the longest {})",
                if crate::capture::runtime::TASK_HOOKS {
                    "task"
                } else {
                    "span"
                },
                ms(MIN_CULPRIT_WAIT_NS),
                ms(longest_ns)
            ),
            NoCulprit::Overwritten => "the recorder overwrote the workers' records of it".into(),
            NoCulprit::NoneSeen => "no other span or task ran on the workers meanwhile".into(),
        }
    }
}

/// The answer to "why was this span slow?".
#[derive(Debug, Clone)]
pub struct Breakdown {
    pub span_name: String,
    pub start: u64,
    pub end: u64,
    /// ns per category; they sum to `end - start`.
    pub parts: HashMap<Category, u64>,
    pub dominant: Category,
    /// The request's polls; `None` where polls are not observed (stable builds, a light
    /// decode).
    pub polls: Option<u64>,
    /// `None` where allocations are not counted (`granular::Alloc` not installed).
    pub alloc: Option<Allocations>,
    /// Work during the idle time that no span or task names (see [`super::unattributed`]).
    pub unattributed: Unattributed,
    pub culprits: Vec<Culprit>,
    /// Why a scheduler wait names no culprit (set when there was a wait and no culprit).
    pub no_culprit: Option<NoCulprit>,
    /// The longest intervals, longest first.
    pub intervals: Vec<Interval>,
    pub verdict: String,
    /// The span was not found in the recorder, or records of its window were overwritten.
    pub data_loss: bool,
    /// Scheduler wait was estimated: from span entries (no task hooks in this build, or a
    /// light analysis), or in part from the workers' parks, where a wake-up the runtime
    /// delayed is an upper bound ([`super::late_wakes`]).
    pub scheduler_wait_estimated: bool,
    /// How much of the scheduler wait is such a delayed wake-up, and the worker whose turn of
    /// the driver noticed it where one did ([`Late::DriverUnpolled`]), ns.
    pub late_wake: Option<(u64, Late)>,
    /// A light analysis (an overloaded analyzer): no culprit search, and from a light decode
    /// the request's own spans and its threads' parks, off-CPU time and allocations, no polls.
    pub light: bool,
    /// Threads whose time this span used (for the artifact).
    pub threads: Vec<u64>,
}

impl Breakdown {
    pub fn part(&self, c: Category) -> u64 {
        self.parts.get(&c).copied().unwrap_or(0)
    }
}

/// Scheduler wait below this names no culprit, and neither does other work that overlapped the
/// wait for less: a sub-millisecond overlap is a neighbour's poll, not what held the request up.
pub const MIN_CULPRIT_WAIT_NS: u64 = 1_000_000;

/// Unattributed work below this (of one kind) is not reported: a worker's own bookkeeping
/// between spans, a server's connection handling around the request.
pub const MIN_UNATTRIBUTED_NS: u64 = 1_000_000;

/// Intervals shorter than this are not reported as span events.
pub const MIN_INTERVAL_NS: u64 = 100_000;

/// How far a span's start from the SDK (`SystemTime`) and from the recorder (TSC, calibrated)
/// may disagree.
pub const CLOCK_SLACK_NS: u64 = 1_000_000;

/// Analyzes one span against a decoded snapshot.
pub fn analyze(d: &Decoded, target: &Target) -> Breakdown {
    analyze_with(d, target, false)
}

/// [`analyze`]; `light` skips the search for culprits (a light decode holds nothing to
/// search), whose cost grows with how busy the workers were: on a saturated worker every
/// other request is a candidate.
pub fn analyze_with(d: &Decoded, target: &Target, light: bool) -> Breakdown {
    let light = light || d.light;
    let (start, end) = (target.start, target.end.max(target.start));
    let key = d.by_otel_id.get(&target.otel_span_id).copied();
    let data_loss = key.is_none() || d.complete_since.is_some_and(|c| c > start);
    let ours = key.map(|k| RequestWork::collect(d, k)).unwrap_or_default();

    let mut marks: Vec<Mark> = Vec::new();
    let mut polls = 0;
    let mut counted: Vec<Counted> = Vec::new();
    let mut used_threads = IdSet::default();
    for (ti, t) in d.threads.iter().enumerate() {
        // Entries of the request's spans: the spans were created at or after the target's
        // start, so their entries begin inside the window.
        for e in t
            .entries_starting_in(start.saturating_sub(CLOCK_SLACK_NS), end)
            .iter()
            .filter(|e| ours.spans.contains(&e.span))
        {
            push_mark(&mut marks, e.start, e.end, start, end, Tag::Ours(ti));
            counted.push((ti, e.start, e.end, e.alloc));
            used_threads.insert(t.tid);
        }
        for p in t.polls_overlapping(start, end) {
            let whole = ours.tasks.contains(&p.task);
            let home = !whole
                && t.entries_starting_in(p.start, p.end)
                    .iter()
                    .any(|e| ours.spans.contains(&e.span));
            if !(whole || home) {
                continue;
            }
            polls += 1;
            used_threads.insert(t.tid);
            if whole {
                push_mark(&mut marks, p.start, p.end, start, end, Tag::Ours(ti));
                counted.push((ti, p.start, p.end, p.alloc));
            }
            if p.sched_latency > 0 {
                push_mark(
                    &mut marks,
                    p.start.saturating_sub(p.sched_latency),
                    p.start,
                    start,
                    end,
                    Tag::SchedWait(Wait::Measured),
                );
            }
        }
    }
    let mut own: Vec<Own> = marks
        .iter()
        .filter_map(|m| match m.tag {
            Tag::Ours(ti) => Some((m.a, m.b, ti)),
            _ => None,
        })
        .collect();
    own.sort_unstable();
    for w in late_wakes(d, &own, start, end) {
        push_mark(
            &mut marks,
            w.start,
            w.end,
            start,
            end,
            Tag::SchedWait(Wait::Late(w.why)),
        );
    }
    for j in d.jobs.values() {
        if ours.spans.contains(&j.span) || ours.tasks.contains(&j.task) {
            let done = j.ended.unwrap_or(d.taken_at);
            push_mark(&mut marks, j.queued, done, start, end, Tag::Pool);
        }
    }

    let segments = sweep(&mut marks, start, end);
    let mut parts: HashMap<Category, u64> = HashMap::new();
    let mut sched_segments = Vec::new();
    let mut waits: Vec<(Wait, u64, u64)> = Vec::new();
    let mut idle_segments = Vec::new();
    let mut ours_segments: Vec<(usize, u64, u64)> = Vec::new();
    for (a, b, tag) in segments {
        match tag {
            Some(Tag::Ours(ti)) => ours_segments.push((ti, a, b)),
            Some(Tag::SchedWait(w)) => {
                *parts.entry(Category::SchedulerWait).or_default() += b - a;
                sched_segments.push((a, b));
                waits.push((w, a, b));
            }
            Some(Tag::Pool) => *parts.entry(Category::BlockingPool).or_default() += b - a,
            None => {
                *parts.entry(Category::Idle).or_default() += b - a;
                idle_segments.push((a, b));
            }
        }
    }
    let mut intervals = Vec::new();
    for (ti, a, b) in merge_adjacent(ours_segments) {
        let split = os_split(d, d.threads[ti].tid, a, b);
        for (c, ns) in [
            (Category::Running, split.0),
            (Category::OsWait, split.1),
            (Category::BlockedInPoll, split.2),
        ] {
            *parts.entry(c).or_default() += ns;
        }
        if split.2 > 0 {
            intervals.push(Interval {
                category: Category::BlockedInPoll,
                start: a,
                // Placed at the poll's start, as long as the time actually spent off-CPU.
                end: a + split.2,
                detail: format!(
                    "thread {} off-CPU {} inside a poll of this request",
                    d.threads[ti].tid,
                    ms(split.2)
                ),
            });
        }
        if split.1 > 0 {
            intervals.push(Interval {
                category: Category::OsWait,
                start: a,
                end: a + split.1,
                detail: format!(
                    "thread {} runnable but not on a CPU for {}",
                    d.threads[ti].tid,
                    ms(split.1)
                ),
            });
        }
    }
    // A culprit is only worth naming when the wait it caused is: 1 ms at least (and a light
    // decode holds no other work to name).
    let wait = parts.get(&Category::SchedulerWait).copied().unwrap_or(0);
    let found = if !light && wait >= MIN_CULPRIT_WAIT_NS {
        culprits(d, &ours, &merge(sched_segments.clone()))
    } else {
        Found::default()
    };
    let culprits = found.named;
    let no_culprit = (wait > 0 && culprits.is_empty()).then(|| {
        if light {
            NoCulprit::Light
        } else if wait < MIN_CULPRIT_WAIT_NS {
            NoCulprit::Short
        } else {
            let busy = unattributed(d, &merge(sched_segments.clone()), d.light).workers_ns;
            match busy.unwrap_or(0) {
                ns if ns >= MIN_UNATTRIBUTED_NS => NoCulprit::UnnamedWork(ns),
                _ if found.candidates > 0 => NoCulprit::Scattered {
                    count: found.candidates,
                    longest_ns: found.longest_ns,
                },
                _ if data_loss => NoCulprit::Overwritten,
                _ => NoCulprit::NoneSeen,
            }
        }
    });
    // How much of the wait is a wake-up the runtime delayed, and by which rule mostly.
    let mut late: Vec<(Late, u64)> = Vec::new();
    for &(w, a, b) in &waits {
        if let Wait::Late(why) = w {
            match late.iter_mut().find(|l| l.0 == why) {
                Some(l) => l.1 += b - a,
                None => late.push((why, b - a)),
            }
        }
    }
    // A parked worker's own wake-up (its unpark hook to the request's first span entry) is
    // counted by the first rule too, tens of microseconds: not worth calling an estimate.
    let late_ns: u64 = late.iter().map(|l| l.1).sum();
    let late_wake = late
        .iter()
        .max_by_key(|l| l.1)
        .filter(|_| late_ns >= MIN_INTERVAL_NS)
        .map(|&(why, _)| (late_ns, why));
    let unattributed = unattributed(d, &merge(idle_segments), d.light);
    for s in unattributed
        .stretches
        .iter()
        .filter(|s| reported(&unattributed, s.kind))
    {
        intervals.push(Interval {
            category: Category::Idle,
            start: s.start,
            end: s.end,
            detail: describe_stretch(s),
        });
    }
    for (w, a, b) in merge_runs(waits) {
        intervals.push(Interval {
            category: Category::SchedulerWait,
            start: a,
            end: b,
            detail: w.describe(),
        });
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
        });
    }
    // Sub-0.1 ms intervals are noise to a reader; they still count in the parts.
    intervals.retain(|i| i.end - i.start >= MIN_INTERVAL_NS || i.detail.starts_with("culprit"));
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
        polls: (crate::capture::runtime::TASK_HOOKS && !d.light).then_some(polls),
        alloc: d.alloc_counted.then(|| allocations(counted)),
        unattributed,
        culprits,
        no_culprit,
        intervals,
        verdict: String::new(),
        data_loss,
        scheduler_wait_estimated: !crate::capture::runtime::TASK_HOOKS
            || d.light
            || late_wake.is_some(),
        late_wake,
        light,
        threads: used_threads.into_iter().collect(),
    };
    b.verdict = verdict(&b);
    b
}

/// One of the request's own intervals on a thread (index into `Decoded::threads`), with the
/// thread's cumulative (allocations, bytes) at its start and end when they were recorded.
type Counted = (usize, u64, u64, Option<((u64, u64), (u64, u64))>);

/// The allocations in the request's own intervals. The counters are cumulative per thread, so
/// the intervals of one thread are merged first and each merged stretch counts its counters'
/// growth once: a child span's entry inside the root's entry, or an entry inside a poll of
/// the request's task, adds nothing the enclosing interval did not count already. A stretch
/// whose first interval began before the thread's counters were first recorded counts from
/// the earliest interval in it that has them.
fn allocations(mut iv: Vec<Counted>) -> Allocations {
    iv.sort_unstable_by_key(|x| (x.0, x.1));
    let mut total = Allocations::default();
    let mut add = |from: Option<(u64, u64)>, to: Option<(u64, u64)>| {
        if let (Some(from), Some(to)) = (from, to) {
            total.count += to.0.saturating_sub(from.0);
            total.bytes += to.1.saturating_sub(from.1);
        }
    };
    // The stretch being merged: thread, end, counters at its start and at its end.
    type Open = (usize, u64, Option<(u64, u64)>, Option<(u64, u64)>);
    let mut open: Option<Open> = None;
    for (ti, a, b, counters) in iv {
        let (from, to) = (counters.map(|c| c.0), counters.map(|c| c.1));
        match &mut open {
            Some(o) if o.0 == ti && a <= o.1 => {
                o.1 = o.1.max(b);
                o.2 = match (o.2, from) {
                    (Some(x), Some(y)) => Some(x.min(y)),
                    (x, y) => x.or(y),
                };
                o.3 = o.3.max(to);
            }
            _ => {
                if let Some(o) = open.take() {
                    add(o.2, o.3);
                }
                open = Some((ti, b, from, to));
            }
        }
    }
    if let Some(o) = open {
        add(o.2, o.3);
    }
    total
}

/// The spans and tasks doing a request's work.
#[derive(Debug, Default)]
pub struct RequestWork {
    pub spans: IdSet<u64>,
    pub tasks: IdSet<u64>,
}

impl RequestWork {
    /// `root` and its descendants, and the tasks spawned beneath them, transitively.
    pub fn collect(d: &Decoded, root: u64) -> RequestWork {
        let mut spans = IdSet::default();
        let mut stack = vec![root];
        while let Some(k) = stack.pop() {
            if spans.insert(k) {
                stack.extend_from_slice(below(&d.children, k));
            }
        }
        let mut tasks = IdSet::default();
        let mut stack: Vec<u64> = spans
            .iter()
            .flat_map(|s| below(&d.spawned_in_span, *s))
            .copied()
            .collect();
        while let Some(t) = stack.pop() {
            if tasks.insert(t) {
                stack.extend_from_slice(below(&d.spawned_by_task, t));
            }
        }
        RequestWork { spans, tasks }
    }
}

fn below(map: &IdMap<u64, Vec<u64>>, key: u64) -> &[u64] {
    map.get(&key).map_or(&[], Vec::as_slice)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    Ours(usize),
    SchedWait(Wait),
    Pool,
}

impl Tag {
    /// Which tag an instant covered by several gets. Among waits the order is only that of
    /// their descriptions (all are scheduler wait): measured, then "every worker was busy",
    /// which says more than "worker N was busy" where both rules count an instant.
    fn priority(self) -> u8 {
        match self {
            Tag::Ours(_) => 5,
            Tag::SchedWait(Wait::Measured) => 4,
            Tag::SchedWait(Wait::Late(Late::AllBusy)) => 3,
            Tag::SchedWait(Wait::Late(Late::DriverUnpolled { .. })) => 2,
            Tag::Pool => 1,
        }
    }
}

/// Where a stretch of scheduler wait comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    /// tokio's wake-to-poll latency.
    Measured,
    /// A wake-up the runtime delayed ([`super::late_wakes`]).
    Late(Late),
}

impl Wait {
    /// A span event's words for it.
    fn describe(self) -> String {
        match self {
            Wait::Measured => "runnable, waiting for a worker".into(),
            Wait::Late(Late::AllBusy) => "ready (at most this long) while every worker was busy: \
                 noticed when one polled tokio's timer and I/O driver"
                .into(),
            Wait::Late(Late::DriverUnpolled { worker }) => format!(
                "ready (at most this long) while worker {worker} was busy and no other worker \
                 polled tokio's timer and I/O driver: noticed when worker {worker} parked"
            ),
        }
    }
}

/// Sorted scheduler-wait segments with touching ones of the same source merged.
fn merge_runs(mut segs: Vec<(Wait, u64, u64)>) -> Vec<(Wait, u64, u64)> {
    segs.sort_by_key(|s| s.1);
    let mut out: Vec<(Wait, u64, u64)> = Vec::new();
    for s in segs {
        match out.last_mut() {
            Some(l) if l.0 == s.0 && l.2 == s.1 => l.2 = s.2,
            _ => out.push(s),
        }
    }
    out
}

struct Mark {
    a: u64,
    b: u64,
    tag: Tag,
}

fn push_mark(marks: &mut Vec<Mark>, a: u64, b: u64, lo: u64, hi: u64, tag: Tag) {
    let (a, b) = (a.max(lo), b.min(hi));
    if b > a {
        marks.push(Mark { a, b, tag });
    }
}

/// Elementary segments of `[lo, hi]`, each with the highest-priority tag covering it.
fn sweep(marks: &mut [Mark], lo: u64, hi: u64) -> Vec<(u64, u64, Option<Tag>)> {
    let mut cuts: Vec<u64> = marks
        .iter()
        .flat_map(|m| [m.a, m.b])
        .chain([lo, hi])
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    marks.sort_by_key(|m| m.a);
    let mut out = Vec::with_capacity(cuts.len());
    let mut active: Vec<usize> = Vec::new();
    let mut next = 0;
    for w in cuts.windows(2) {
        let (a, b) = (w[0], w[1]);
        while next < marks.len() && marks[next].a <= a {
            active.push(next);
            next += 1;
        }
        active.retain(|&i| marks[i].b > a);
        let tag = active
            .iter()
            .map(|&i| marks[i].tag)
            .max_by_key(|t| t.priority());
        out.push((a, b, tag));
    }
    out
}

fn merge_adjacent(mut segs: Vec<(usize, u64, u64)>) -> Vec<(usize, u64, u64)> {
    segs.sort_by_key(|s| (s.0, s.1));
    let mut out: Vec<(usize, u64, u64)> = Vec::new();
    for s in segs {
        match out.last_mut() {
            Some(l) if l.0 == s.0 && l.2 == s.1 => l.2 = s.2,
            _ => out.push(s),
        }
    }
    out
}

/// (running, OS wait, blocked) ns of thread `tid` over `[a, b]`: from perf context-switch
/// intervals when the thread has them, else interpolated from its schedstat samples.
/// Time outside the sampled range, or an interval with no sample inside it, counts as running:
/// without evidence of being off-CPU we do not claim it.
fn os_split(d: &Decoded, tid: u64, a: u64, b: u64) -> (u64, u64, u64) {
    let wall = b - a;
    if let Some(iv) = d.off_cpu.get(&tid) {
        // Exact intervals from perf: preempted → OS wait, voluntary → blocked.
        let (mut os_wait, mut blocked) = (0, 0);
        // Sorted by start, and a thread is off-CPU in one interval at a time, so ends are
        // sorted too.
        let from = iv.partition_point(|x| x.1 < a);
        let to = iv.partition_point(|x| x.0 <= b);
        for &(x, y, preempted) in &iv[from..to.max(from)] {
            let ov = b.min(y).saturating_sub(a.max(x));
            if preempted {
                os_wait += ov;
            } else {
                blocked += ov;
            }
        }
        let os_wait = os_wait.min(wall);
        let blocked = blocked.min(wall - os_wait);
        return (wall - os_wait - blocked, os_wait, blocked);
    }
    let Some(s) = d.os_samples.get(&tid) else {
        return (wall, 0, 0);
    };
    if s.len() < 2 || !s.iter().any(|x| x.0 >= a && x.0 <= b) {
        return (wall, 0, 0);
    }
    let (ca, cb) = (a.max(s[0].0), b.min(s[s.len() - 1].0));
    if cb <= ca {
        return (wall, 0, 0);
    }
    let (c0, w0) = samples_at(s, ca);
    let (c1, w1) = samples_at(s, cb);
    let covered = cb - ca;
    let on_cpu = ((c1 - c0).max(0.0) as u64).min(covered);
    let off = covered - on_cpu;
    let os_wait = ((w1 - w0).max(0.0) as u64).min(off);
    (wall - off, os_wait, off - os_wait)
}

/// What the culprit search found.
#[derive(Debug, Default)]
struct Found {
    /// Those that overlapped the wait for [`MIN_CULPRIT_WAIT_NS`] or more, largest first.
    named: Vec<Culprit>,
    /// Every other task (or root span) that overlapped it.
    candidates: usize,
    /// The largest overlap, ns.
    longest_ns: u64,
}

/// Other work the workers did while the request waited for one, grouped per task (or, without
/// task hooks, per local root span), largest overlap first.
fn culprits(d: &Decoded, ours: &RequestWork, waits: &[(u64, u64)]) -> Found {
    if waits.is_empty() {
        return Found::default();
    }
    // `waits` are merged (sorted, disjoint): only those from the first that ends after `a`
    // up to the first that starts at `b` can overlap `[a, b]`. A saturated window holds
    // thousands of waits and of other requests' ranges; summing over every wait for every
    // range made the culprit search quadratic (~30 ms a span).
    let overlap = |a: u64, b: u64| -> u64 {
        let from = waits.partition_point(|&(_, y)| y <= a);
        waits[from..]
            .iter()
            .take_while(|&&(x, _)| x < b)
            .map(|&(x, y)| b.min(y).saturating_sub(a.max(x)))
            .sum()
    };
    let mut by_key: HashMap<(u64, u64), Tally> = HashMap::new();
    // Threads are walked one after the other, so a culprit's overlaps on one thread arrive
    // together: `on` sums the current thread's, and the thread with the most is kept.
    let mut tally = |key: (u64, u64), thread: usize, root: Option<u64>, ov: u64, seen: u64| {
        let t = by_key.entry(key).or_insert(Tally {
            thread,
            thread_ns: 0,
            on: (thread, 0),
            root,
            overlap_ns: 0,
            first_seen: u64::MAX,
        });
        t.overlap_ns += ov;
        t.first_seen = t.first_seen.min(seen);
        t.on = if t.on.0 == thread {
            (thread, t.on.1 + ov)
        } else {
            (thread, ov)
        };
        if t.on.1 > t.thread_ns {
            (t.thread, t.thread_ns) = t.on;
        }
    };
    let (lo, hi) = (waits[0].0, waits[waits.len() - 1].1);
    for (ti, t) in d.threads.iter().enumerate() {
        if crate::capture::runtime::TASK_HOOKS {
            for p in t
                .polls_overlapping(lo, hi)
                .iter()
                .filter(|p| !ours.tasks.contains(&p.task))
            {
                let ov = overlap(p.start, p.end);
                if ov == 0 {
                    continue;
                }
                let entered = t.entries_starting_in(p.start, p.end);
                let root = entered
                    .first()
                    .map(|e| d.local_root(e.span))
                    .filter(|r| !ours.spans.contains(r));
                if root.is_none() && entered.iter().any(|e| ours.spans.contains(&e.span)) {
                    continue; // the request's own home task
                }
                tally((p.task, 0), ti, root, ov, p.start.max(lo));
            }
        } else {
            // No polls: a root's entries on this thread stand in for the work it held the
            // worker with. Only outermost entries: one nested inside another adds no time.
            // Those are disjoint, so their overlaps add up per root; the root is looked up
            // (a walk up the span tree) only for entries that overlap a wait.
            let mut outer_end = 0;
            for e in t.entries_overlapping(lo, hi) {
                if e.start < outer_end {
                    continue;
                }
                outer_end = e.end;
                if ours.spans.contains(&e.span) {
                    continue;
                }
                let ov = overlap(e.start, e.end);
                if ov == 0 {
                    continue;
                }
                let root = d.local_root(e.span);
                if !ours.spans.contains(&root) {
                    tally((0, root), ti, Some(root), ov, e.start.max(lo));
                }
            }
        }
    }
    let mut v: Vec<((u64, u64), Tally)> = by_key.into_iter().collect();
    v.sort_by_key(|(_, t)| std::cmp::Reverse(t.overlap_ns));
    let (candidates, longest_ns) = (v.len(), v.first().map_or(0, |(_, t)| t.overlap_ns));
    v.retain(|(_, t)| t.overlap_ns >= MIN_CULPRIT_WAIT_NS);
    v.truncate(8);
    let named = v
        .into_iter()
        .map(|((task, _), t)| Culprit {
            overlap_ns: t.overlap_ns,
            first_seen: t.first_seen,
            ..culprit_for(d, &d.threads[t.thread], task, t.root)
        })
        .collect();
    Found {
        named,
        candidates,
        longest_ns,
    }
}

/// A culprit's share of the wait, before it is named: naming looks up its task and spans and
/// formats strings, worth doing only for the few reported (a saturated window holds thousands
/// of candidates).
struct Tally {
    /// Index of the thread on which it overlapped the wait most (a task moves between
    /// workers), and by how much, ns.
    thread: usize,
    thread_ns: u64,
    /// The thread being summed, and its sum so far.
    on: (usize, u64),
    root: Option<u64>,
    overlap_ns: u64,
    first_seen: u64,
}

fn culprit_for(d: &Decoded, t: &ThreadActivity, task: u64, root: Option<u64>) -> Culprit {
    let info = d.tasks.get(&task);
    let spawn_site = info
        .and_then(|i| i.spawned_at)
        .map(|l| format!("{}:{}", l.file(), l.line()));
    let root = root.or_else(|| {
        info.map(|i| d.local_root(i.parent_span))
            .filter(|r| *r != 0)
    });
    Culprit {
        task,
        spawn_site,
        spawned_before_window: info.is_none() && task != 0,
        span_name: root.map(|r| d.span_name(r).to_string()),
        trace_id: root.and_then(|r| d.spans.get(&r)).and_then(|s| s.trace_id),
        worker: t.worker,
        overlap_ns: 0,
        first_seen: u64::MAX,
    }
}

/// Milliseconds, for humans: "83 ms", "0.4 ms".
pub fn ms(ns: u64) -> String {
    let m = ns as f64 / 1e6;
    if m >= 10.0 {
        format!("{m:.0} ms")
    } else {
        format!("{m:.1} ms")
    }
}

fn verdict(b: &Breakdown) -> String {
    let c = b.dominant;
    let head = format!("{} {} of {}", c.words(), ms(b.part(c)), ms(b.end - b.start));
    // Unattributed work that could be most of the idle time is told with its remedy; less of
    // it (on a shared machine a worker's own chores outside spans, or the exporter's, run a
    // few ms at a time) is mentioned without.
    let unattributed = unattributed_clause(&b.unattributed).map(|(work, remedy, ns)| {
        let most = 2 * ns >= b.part(Category::Idle);
        match remedy.filter(|_| most) {
            Some(remedy) => (format!("{work} ({remedy})"), most),
            None => (work, most),
        }
    });
    let mut v = match c {
        Category::SchedulerWait => {
            let mut v = match (b.culprits.first(), b.no_culprit) {
                (Some(cu), _) => format!("{head}: {}", held_by(cu)),
                (None, why) => format!(
                    "{head}: runnable but no worker free; no culprit named: {}",
                    why.unwrap_or(NoCulprit::NoneSeen).describe()
                ),
            };
            if let Some(late) = late_clause(b) {
                let _ = write!(v, "; {late}");
            }
            v
        }
        Category::BlockedInPoll => format!(
            "{head}: the thread slept inside a poll (blocking syscall, lock or sleep in async code)"
        ),
        Category::OsWait => {
            format!("{head}: preempted by the OS while polling (CPU contention)")
        }
        Category::BlockingPool => {
            format!("{head}: spawn_blocking jobs queued for or ran on the blocking pool")
        }
        Category::Running => format!("{head}: the request's own code was on the CPU"),
        // Unattributed work that could be most of the wait leads the verdict; less of it is
        // added to the usual words, which then claim no quiet runtime; and so does a wait for
        // a worker of a millisecond or more.
        Category::Idle => {
            let mut v = match (&unattributed, unchecked(&b.unattributed)) {
                (Some((work, true)), _) => {
                    format!("{head} by what this build sees: meanwhile {work}")
                }
                (Some((work, _)), _) => {
                    format!("{head}: awaiting I/O, timers or downstream calls; meanwhile {work}")
                }
                (None, Some(unchecked)) => format!(
                    "{head}: awaiting I/O, timers or downstream calls as far as this analysis \
                     sees ({unchecked})"
                ),
                (None, None) => format!("{head}: awaiting I/O, timers or downstream calls"),
            };
            match wait_clause(b) {
                Some(wait) => {
                    let _ = write!(v, "; it also {wait}");
                }
                None if unattributed.is_none() && unchecked(&b.unattributed).is_none() => {
                    v.push_str("; no runtime trouble");
                }
                None => {}
            }
            v
        }
    };
    if let Some((work, _)) = unattributed.filter(|_| c != Category::Idle) {
        let _ = write!(
            v,
            "; during its {} idle, {work}",
            ms(b.part(Category::Idle))
        );
    }
    if let Some(a) = b.alloc.filter(|a| a.bytes > 0) {
        let _ = write!(
            v,
            "; allocated {:.1} MiB in {} allocations",
            a.bytes as f64 / (1 << 20) as f64,
            a.count
        );
    }
    if b.data_loss {
        v.push_str(" (incomplete: recorder data lost)");
    }
    if b.light {
        v.push_str(" (light analysis under load: no culprit search)");
    }
    v
}

/// "worker 1 busy 60 ms polling GET /report (…)".
fn held_by(cu: &Culprit) -> String {
    format!(
        "worker {} busy {} polling {}",
        cu.worker.map_or("?".into(), |w| w.to_string()),
        ms(cu.overlap_ns),
        cu.describe()
    )
}

/// A wake-up the runtime delayed, for the verdict: "up to 59 ms of it the request was ready
/// but unnoticed: worker 1 was busy and no other worker polled tokio's timer and I/O driver";
/// `None` under [`MIN_CULPRIT_WAIT_NS`].
fn late_clause(b: &Breakdown) -> Option<String> {
    let (ns, why) = b.late_wake.filter(|l| l.0 >= MIN_CULPRIT_WAIT_NS)?;
    let how = match why {
        Late::AllBusy => "every worker was busy".to_string(),
        Late::DriverUnpolled { worker } => format!(
            "worker {worker} was busy and no other worker polled tokio's timer and I/O driver"
        ),
    };
    Some(format!(
        "up to {} of it the request was ready but unnoticed: {how}",
        ms(ns)
    ))
}

/// A wait for a worker that is not the dominant cause, for an idle verdict: "waited 3.0 ms for
/// a worker (worker 1 busy 3.0 ms polling …)"; `None` under [`MIN_CULPRIT_WAIT_NS`].
fn wait_clause(b: &Breakdown) -> Option<String> {
    let wait = b.part(Category::SchedulerWait);
    if wait < MIN_CULPRIT_WAIT_NS {
        return None;
    }
    let mut v = format!("waited {} for a worker", ms(wait));
    match (b.culprits.first(), b.no_culprit) {
        (Some(cu), _) => {
            let _ = write!(v, " ({})", held_by(cu));
        }
        // A light analysis says so at the end of the verdict.
        (None, Some(why)) if why != NoCulprit::Light => {
            let _ = write!(v, " (no culprit named: {})", why.describe());
        }
        (None, _) => {}
    }
    if let Some(late) = late_clause(b) {
        let _ = write!(v, "; {late}");
    }
    Some(v)
}

/// Unattributed work of one kind, ns.
fn amount(u: &Unattributed, kind: StretchKind) -> u64 {
    match kind {
        StretchKind::Worker(_) => u.workers_ns.unwrap_or(0),
        StretchKind::PoolBusy => u.pool_busy_ns.unwrap_or(0),
        StretchKind::PoolJob => u.pool_jobs_ns,
    }
}

/// Whether stretches of this kind are large enough to report.
fn reported(u: &Unattributed, kind: StretchKind) -> bool {
    amount(u, kind) >= MIN_UNATTRIBUTED_NS
}

/// "the workers were busy 60 ms outside any span, which may be this request's", the remedy,
/// and how much that is, ns; `None` when there was too little to report.
fn unattributed_clause(u: &Unattributed) -> Option<(String, Option<String>, u64)> {
    let stable = !crate::capture::runtime::TASK_HOOKS;
    let (mut work, mut remedies, mut ns) = (Vec::new(), Vec::new(), 0);
    for kind in [
        StretchKind::Worker(0),
        StretchKind::PoolJob,
        StretchKind::PoolBusy,
    ] {
        if reported(u, kind) {
            ns += amount(u, kind);
        }
    }
    if reported(u, StretchKind::Worker(0)) {
        work.push(format!(
            "the workers were busy {} outside any span{}",
            ms(u.workers_ns.unwrap_or(0)),
            if stable { "" } else { " and task poll" }
        ));
    }
    if reported(u, StretchKind::PoolJob) {
        work.push(format!(
            "granular::spawn_blocking jobs queued outside any span ran {}",
            ms(u.pool_jobs_ns)
        ));
    }
    if stable && !work.is_empty() {
        remedies.push(
            "stable builds do not follow spawned tasks: build with --cfg tokio_unstable, or give \
             the task a span",
        );
    }
    if reported(u, StretchKind::PoolBusy) {
        work.push(format!(
            "the blocking pool was busy {} with work no span or granular::spawn_blocking job \
             names",
            ms(u.pool_busy_ns.unwrap_or(0))
        ));
        remedies.push("tokio::task::spawn_blocking is not seen: use granular::spawn_blocking");
    }
    if work.is_empty() {
        return None;
    }
    Some((
        format!("{}, which may be this request's", work.join(" and ")),
        (!remedies.is_empty()).then(|| remedies.join("; ")),
        ns,
    ))
}

/// What a breakdown could not check for unattributed work, in words; `None` when it checked
/// everything.
fn unchecked(u: &Unattributed) -> Option<String> {
    let mut not = Vec::new();
    if u.workers_ns.is_none() {
        not.push("work outside spans not checked");
    }
    if u.pool_busy_ns.is_none() {
        not.push("blocking-pool threads not observed without schedstat or perf");
    }
    (!not.is_empty()).then(|| not.join("; "))
}

/// A span event's words for one stretch of unattributed work.
fn describe_stretch(s: &Stretch) -> String {
    match s.kind {
        StretchKind::Worker(w) => format!(
            "worker {w} (thread {}) busy {} outside any span: work no span names, may be this \
             request's",
            s.tid,
            ms(s.ns)
        ),
        StretchKind::PoolBusy => format!(
            "blocking-pool thread {} busy {} (on CPU or runnable) with work no span or \
             granular::spawn_blocking job names, may be this request's",
            s.tid,
            ms(s.ns)
        ),
        StretchKind::PoolJob => format!(
            "granular::spawn_blocking job queued outside any span ran {} on thread {}, may be \
             this request's",
            ms(s.ns),
            s.tid
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::decode::{Entry, Job, Poll};
    use crate::capture::runtime::TASK_HOOKS;
    use crate::clock::Calibration;

    const MS: u64 = 1_000_000;
    /// The root span: key 1, OTel id 101; its child: key 2, OTel id 102.
    const ROOT: u64 = 1;
    const CHILD: u64 = 2;

    /// Counters at an interval's (start, end): (allocations, bytes).
    type Counters = ((u64, u64), (u64, u64));

    fn decoded(threads: Vec<ThreadActivity>) -> Decoded {
        let mut d = Decoded {
            spans: IdMap::default(),
            by_otel_id: [(101, ROOT), (102, CHILD)].into_iter().collect(),
            tasks: IdMap::default(),
            jobs: IdMap::default(),
            threads,
            os_samples: IdMap::default(),
            off_cpu: IdMap::default(),
            worker_tids: IdSet::default(),
            alloc_counted: true,
            threads_observed: true,
            lost_records: 0,
            complete_since: None,
            taken_at: 100 * MS,
            calibration: Calibration::identity(0),
            light: false,
            thread_names: IdMap::default(),
            children: [(ROOT, vec![CHILD])].into_iter().collect(),
            spawned_in_span: IdMap::default(),
            spawned_by_task: IdMap::default(),
        };
        d.worker_tids = d
            .threads
            .iter()
            .filter(|t| t.worker.is_some())
            .map(|t| t.tid)
            .collect();
        d
    }

    fn worker(tid: u64, entries: Vec<Entry>, parks: Vec<(u64, u64)>) -> ThreadActivity {
        let mut t = ThreadActivity {
            tid,
            worker: Some(tid as usize),
            entries,
            parks,
            ..ThreadActivity::default()
        };
        t.entries.sort_by_key(|e| e.start);
        let mut reach = 0;
        t.entry_reach = t
            .entries
            .iter()
            .map(|e| {
                reach = reach.max(e.end);
                reach
            })
            .collect();
        t
    }

    fn entry(span: u64, from_ms: u64, to_ms: u64, alloc: Option<Counters>) -> Entry {
        Entry {
            span,
            start: from_ms * MS,
            end: to_ms * MS,
            alloc,
        }
    }

    fn target(otel_span_id: u64, from_ms: u64, to_ms: u64) -> Target {
        Target {
            otel_span_id,
            name: "GET /test".into(),
            start: from_ms * MS,
            end: to_ms * MS,
        }
    }

    fn alloc(b: &Breakdown) -> (u64, u64) {
        let a = b.alloc.expect("allocations counted");
        (a.count, a.bytes)
    }

    /// Issue #17, item 3: a root whose child allocated reported twice the child's figure.
    /// The child's entries nest inside the root's; another request's entry sits between
    /// them on the same thread; the child also ran on a second thread.
    #[test]
    fn nested_spans_count_each_allocation_once() {
        let t0 = worker(
            0,
            vec![
                entry(ROOT, 0, 10, Some(((0, 0), (100, 100_000)))),
                entry(CHILD, 2, 8, Some(((10, 1_000), (90, 91_000)))),
                entry(9, 12, 18, Some(((100, 100_000), (150, 200_000)))),
                entry(ROOT, 20, 30, Some(((150, 200_000), (250, 500_000)))),
                entry(CHILD, 21, 29, Some(((160, 210_000), (240, 390_000)))),
            ],
            vec![],
        );
        let t1 = worker(
            1,
            vec![entry(CHILD, 40, 45, Some(((0, 0), (5, 5_000))))],
            vec![],
        );
        let d = decoded(vec![t0, t1]);
        let root = analyze(&d, &target(101, 0, 50));
        let child = analyze(&d, &target(102, 2, 45));
        assert_eq!(alloc(&child), (80 + 80 + 5, 90_000 + 180_000 + 5_000));
        assert_eq!(
            alloc(&root),
            (100 + 100 + 5, 100_000 + 300_000 + 5_000),
            "the root counts its child once and the other request's entry not at all"
        );
        assert!(
            root.verdict
                .contains("allocated 0.4 MiB in 205 allocations"),
            "{}",
            root.verdict
        );
    }

    /// With task hooks, the request's task's polls are its intervals too: an entry inside one
    /// adds nothing to the poll's figure.
    #[test]
    fn entries_inside_the_requests_polls_count_once() {
        let mut t0 = worker(
            0,
            vec![entry(CHILD, 1, 9, Some(((1, 1_000), (9, 9_000))))],
            vec![],
        );
        t0.polls.push(Poll {
            task: 50,
            start: 0,
            end: 10 * MS,
            sched_latency: 0,
            alloc: Some(((0, 0), (10, 10_000))),
            open: false,
        });
        let mut d = decoded(vec![t0]);
        d.spawned_in_span.insert(ROOT, vec![50]);
        assert_eq!(alloc(&analyze(&d, &target(101, 0, 20))), (10, 10_000));
        assert_eq!(alloc(&analyze(&d, &target(102, 1, 9))), (8, 8_000));
    }

    /// Issue #17, item 4: attributes that were not observed are absent, not 0.
    #[test]
    fn what_was_not_observed_is_absent() {
        let t0 = worker(0, vec![entry(ROOT, 0, 10, None)], vec![]);
        let mut d = decoded(vec![t0]);
        d.alloc_counted = false;
        let b = analyze(&d, &target(101, 0, 10));
        assert_eq!(b.alloc, None, "no granular::Alloc: no figure");
        assert_eq!(
            b.polls.is_some(),
            TASK_HOOKS,
            "polls are seen with task hooks only"
        );
        d.light = true;
        assert_eq!(
            analyze(&d, &target(101, 0, 10)).polls,
            None,
            "a light decode has none"
        );
        d.alloc_counted = true;
        let b = analyze(&d, &target(101, 0, 10));
        assert_eq!(
            b.alloc,
            Some(Allocations::default()),
            "counted, and none made"
        );
    }

    /// A request that awaited something for 98 ms while the parts of the window it did not
    /// run in are laid out by `busy`: worker 0's unparked stretches outside any span.
    fn awaiting(busy: &[(u64, u64)]) -> Decoded {
        let mut parks = Vec::new();
        let mut at = 1;
        for &(a, b) in busy {
            parks.push((at * MS, a * MS));
            at = b;
        }
        parks.push((at * MS, 99 * MS));
        let t0 = worker(
            0,
            vec![entry(ROOT, 0, 1, None), entry(ROOT, 99, 100, None)],
            parks,
        );
        let t1 = worker(1, vec![], vec![(0, 100 * MS)]);
        decoded(vec![t0, t1])
    }

    #[test]
    fn a_quiet_wait_is_idle_with_no_runtime_trouble() {
        let b = analyze(&awaiting(&[]), &target(101, 0, 100));
        assert_eq!(b.dominant, Category::Idle);
        assert_eq!(b.unattributed.workers_ns, Some(0));
        assert_eq!(b.unattributed.pool_busy_ns, Some(0));
        assert!(b.verdict.ends_with("no runtime trouble"), "{}", b.verdict);
    }

    /// Issue #17, item 4: CPU work in a spawned child task without a span read "idle ...; no
    /// runtime trouble" in a stable build.
    #[test]
    fn a_worker_busy_outside_spans_is_named_in_an_idle_verdict() {
        let b = analyze(&awaiting(&[(30, 90)]), &target(101, 0, 100));
        assert_eq!(b.dominant, Category::Idle);
        assert_eq!(b.unattributed.workers_ns, Some(60 * MS));
        assert!(
            b.verdict
                .contains("the workers were busy 60 ms outside any span")
                && b.verdict.contains("which may be this request's")
                && !b.verdict.contains("no runtime trouble"),
            "{}",
            b.verdict
        );
        assert_eq!(
            b.verdict.contains("--cfg tokio_unstable"),
            !TASK_HOOKS,
            "the remedy where it applies: {}",
            b.verdict
        );
        let event = b
            .intervals
            .iter()
            .find(|i| i.detail.starts_with("worker 0"))
            .expect("a span event where it happened");
        assert_eq!((event.start, event.end), (30 * MS, 90 * MS));
    }

    /// A light decode keeps no other request's spans, so busy workers cannot be told apart
    /// from other requests: the verdict says it did not check, rather than "no runtime trouble".
    #[test]
    fn a_light_analysis_does_not_claim_a_quiet_runtime() {
        let mut d = awaiting(&[(30, 90)]);
        d.light = true;
        let b = analyze(&d, &target(101, 0, 100));
        assert_eq!(b.unattributed.workers_ns, None);
        assert!(
            b.verdict
                .contains("as far as this analysis sees (work outside spans not checked)")
                && !b.verdict.contains("no runtime trouble"),
            "{}",
            b.verdict
        );
    }

    /// A little unattributed work during a long wait is mentioned, not made the story; the
    /// verdict no longer claims a quiet runtime.
    #[test]
    fn a_little_unattributed_work_is_added_to_an_idle_verdict() {
        let b = analyze(&awaiting(&[(50, 53)]), &target(101, 0, 100));
        assert!(
            b.verdict.contains(
                "awaiting I/O, timers or downstream calls; meanwhile the workers were busy \
                 3.0 ms outside any span"
            ) && b.verdict.contains("which may be this request's")
                && !b.verdict.contains("--cfg tokio_unstable")
                && !b.verdict.contains("no runtime trouble"),
            "{}",
            b.verdict
        );
    }

    /// Short stretches between spans (a server's connection handling) are not news.
    #[test]
    fn a_workers_bookkeeping_is_not_counted() {
        let mut d = awaiting(&[]);
        d.threads[0].parks[0].1 -= MS * 9 / 10; // 0.9 ms busy before the request resumes
        let b = analyze(&d, &target(101, 0, 100));
        assert_eq!(b.unattributed.workers_ns, Some(0));
        assert!(b.verdict.ends_with("no runtime trouble"), "{}", b.verdict);
    }

    /// Issue #17, item 4: `tokio::task::spawn_blocking` work read "idle 30 ms of 30 ms ...; no
    /// runtime trouble" in either build. Its pool thread's busy time is seen, from schedstat
    /// samples or from perf context switches.
    #[test]
    fn blocking_pool_work_no_job_names_is_named() {
        let pool = 77;
        let mut sampled = awaiting(&[]);
        sampled.os_samples.insert(
            pool,
            vec![
                (0, 0, 0),
                (10 * MS, 0, 0),
                (40 * MS, 25 * MS, 5 * MS),
                (70 * MS, 50 * MS, 10 * MS),
                (100 * MS, 50 * MS, 10 * MS),
            ],
        );
        let mut switched = awaiting(&[]);
        // Registered at 10 ms (on CPU from there), preempted for 10 ms (busy still: runnable),
        // asleep from 70 ms until the snapshot.
        switched.off_cpu.insert(
            pool,
            vec![
                (10 * MS, 10 * MS, false),
                (20 * MS, 30 * MS, true),
                (70 * MS, 100 * MS, false),
            ],
        );
        for d in [&sampled, &switched] {
            let b = analyze(d, &target(101, 0, 100));
            assert_eq!(b.unattributed.pool_busy_ns, Some(60 * MS));
            assert!(
                b.verdict.contains(
                    "by what this build sees: meanwhile the blocking pool was busy 60 ms with \
                     work no span or granular::spawn_blocking job names"
                ) && b.verdict.contains("use granular::spawn_blocking")
                    && !b.verdict.contains("no runtime trouble"),
                "{}",
                b.verdict
            );
        }
        // A thread known only since 40 ms: nothing before is claimed.
        let mut late = awaiting(&[]);
        late.off_cpu.insert(pool, vec![(40 * MS, 100 * MS, false)]);
        assert_eq!(
            analyze(&late, &target(101, 0, 100))
                .unattributed
                .pool_busy_ns,
            Some(0)
        );
        let mut unobserved = awaiting(&[]);
        unobserved.threads_observed = false;
        let b = analyze(&unobserved, &target(101, 0, 100));
        assert_eq!(b.unattributed.pool_busy_ns, None);
        assert!(
            b.verdict.contains("blocking-pool threads not observed")
                && !b.verdict.contains("no runtime trouble"),
            "{}",
            b.verdict
        );
    }

    /// Issue #17, item 4: pool work reached through a spawned task without a span, even with
    /// `granular::spawn_blocking`. Stable builds see the job but not whose it is; with task
    /// hooks its task leads to its request (here: not this one).
    #[test]
    fn a_job_queued_outside_any_span_is_named_where_its_request_is_unknown() {
        let mut d = awaiting(&[]);
        d.jobs.insert(
            5,
            Job {
                task: 60,
                span: 0,
                queued: 10 * MS,
                started: Some(10 * MS),
                ended: Some(40 * MS),
                tid: 77,
            },
        );
        d.os_samples
            .insert(77, vec![(0, 0, 0), (10 * MS, 0, 0), (40 * MS, 30 * MS, 0)]);
        let b = analyze(&d, &target(101, 0, 100));
        assert_eq!(
            b.unattributed.pool_busy_ns,
            Some(0),
            "the job's time is the job's"
        );
        if TASK_HOOKS {
            assert_eq!(b.unattributed.pool_jobs_ns, 0);
            assert!(b.verdict.ends_with("no runtime trouble"), "{}", b.verdict);
        } else {
            assert_eq!(b.unattributed.pool_jobs_ns, 30 * MS);
            assert!(
                b.verdict
                    .contains("granular::spawn_blocking jobs queued outside any span ran 30 ms"),
                "{}",
                b.verdict
            );
        }
    }

    /// Issue #17, item 4: a scheduler wait without a culprit named nothing and did not say
    /// why. Here no worker parked while the request waited, and nothing the worker ran had a
    /// span.
    #[test]
    fn a_scheduler_wait_without_a_culprit_says_why() {
        let t0 = worker(
            0,
            vec![entry(ROOT, 0, 1, None), entry(ROOT, 99, 100, None)],
            vec![],
        );
        let d = decoded(vec![t0]);
        let b = analyze(&d, &target(101, 0, 100));
        assert_eq!(b.dominant, Category::SchedulerWait);
        assert!(b.culprits.is_empty());
        assert_eq!(b.no_culprit, Some(NoCulprit::UnnamedWork(98 * MS)));
        assert!(
            b.verdict
                .contains("no culprit named: the workers were busy 98 ms with work no span"),
            "{}",
            b.verdict
        );
        let b = analyze_with(&d, &target(101, 0, 100), true);
        assert_eq!(b.no_culprit, Some(NoCulprit::Light));
        assert!(
            b.verdict.contains("no culprit named: light analysis"),
            "{}",
            b.verdict
        );
    }

    const US: u64 = 1_000;
    /// Another request's root span: key 9, on another trace.
    const OTHER: u64 = 9;
    const OTHER_TRACE: u128 = 0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736;

    fn at_us(span: u64, from_us: u64, to_us: u64) -> Entry {
        Entry {
            span,
            start: from_us * US,
            end: to_us * US,
            alloc: None,
        }
    }

    fn poll_us(task: u64, from_us: u64, to_us: u64) -> Poll {
        Poll {
            task,
            start: from_us * US,
            end: to_us * US,
            sched_latency: 0,
            alloc: None,
            open: false,
        }
    }

    /// Parks in µs.
    fn parks_us(p: &[(u64, u64)]) -> Vec<(u64, u64)> {
        p.iter().map(|&(a, b)| (a * US, b * US)).collect()
    }

    /// A root span of another trace, so a culprit has a name.
    fn add_span(d: &mut Decoded, key: u64, name: &'static str, trace: u128) {
        let meta = tracing::subscriber::with_default(tracing_subscriber::registry(), || {
            tracing::info_span!("span", otel.name = name)
                .metadata()
                .expect("enabled under the registry")
        });
        d.spans.insert(
            key,
            crate::analysis::decode::SpanInfo {
                name: meta.name(),
                meta,
                parent: 0,
                otel_span_id: 100 + key,
                trace_id: Some(trace),
                remote_parent: None,
                start: 0,
                end: None,
                tid: 0,
                fields: vec![(
                    "otel.name",
                    crate::analysis::decode::FieldValue::Str(name.into()),
                )],
                events: Vec::new(),
            },
        );
    }

    /// A request (root key 1) whose 1 ms timer is due while worker 1 runs another request's
    /// 60 ms poll (worker 1 had the driver and woke for that request). Worker 0 sleeps
    /// without the driver throughout, so nothing notices the timer until worker 1 parks at
    /// 61.9 ms: that turn of the driver finds the request ready at once and worker 1 polls
    /// it at 62 ms. `worker0` lays out worker 0's parks, `park` worker 1's after its busy
    /// stretch and `resume` when the request's work resumes on worker 1 (µs).
    fn late_timer(worker0: &[(u64, u64)], park: (u64, u64), resume: u64) -> Decoded {
        let mut w1 = worker(
            1,
            vec![
                at_us(ROOT, 0, 1_000),
                at_us(OTHER, 2_000, 61_800),
                at_us(ROOT, resume, resume + 2_000),
            ],
            parks_us(&[(1_000, 2_000), park, (resume + 2_000, 200_000)]),
        );
        w1.polls = vec![
            poll_us(50, 0, 1_000),
            poll_us(70, 2_000, 61_800),
            poll_us(50, resume, resume + 2_000),
        ];
        let w0 = worker(0, vec![], parks_us(worker0));
        let mut d = decoded(vec![w0, w1]);
        add_span(&mut d, OTHER, "GET /other", OTHER_TRACE);
        d
    }

    /// Issue #17 / accuracy row 8c: the stretch between the busy worker's start and the
    /// request's resumption read as idle ("idle 62 ms", "no runtime trouble"), because a
    /// worker was parked all along. It sat on a condition variable, not on the driver.
    #[test]
    fn a_timer_due_while_the_drivers_worker_is_busy_is_scheduler_wait() {
        let d = late_timer(&[(0, 100_000)], (61_900, 61_950), 62_000);
        let b = analyze(&d, &target(101, 0, 64));
        assert_eq!(b.dominant, Category::SchedulerWait, "{:?}", b.parts);
        assert_eq!(
            b.part(Category::SchedulerWait),
            60 * MS,
            "from 2 ms to 62 ms"
        );
        assert_eq!(
            b.part(Category::Idle),
            MS,
            "1 ms to 2 ms: the driver was held"
        );
        assert_eq!(
            b.late_wake,
            Some((60 * MS, Late::DriverUnpolled { worker: 1 }))
        );
        assert!(b.scheduler_wait_estimated, "an upper bound");
        let culprit = b
            .culprits
            .first()
            .expect("the other request is the culprit");
        assert_eq!(
            (
                culprit.span_name.as_deref(),
                culprit.trace_id,
                culprit.worker
            ),
            (Some("GET /other"), Some(OTHER_TRACE), Some(1))
        );
        assert_eq!(culprit.overlap_ns, 59_800 * US);
        assert_eq!(
            culprit.spawned_before_window, TASK_HOOKS,
            "task 70's spawn is unknown"
        );
        assert!(
            b.verdict.starts_with(
                "scheduler wait 60 ms of 64 ms: worker 1 busy 60 ms polling GET /other ("
            ) && b.verdict.contains(
                "up to 60 ms of it the request was ready but unnoticed: worker 1 was busy and \
                 no other worker polled tokio's timer and I/O driver"
            ),
            "{}",
            b.verdict
        );
        assert!(
            b.intervals
                .iter()
                .any(|i| i.category == Category::SchedulerWait
                    && (i.start, i.end) == (2 * MS, 62 * MS)
                    && i.detail.contains("noticed when worker 1 parked")),
            "{:?}",
            b.intervals
        );
    }

    /// The false positive to avoid: worker 0 held the driver and woke when the request's
    /// downstream answered at 40 ms, while worker 1 happened to be busy with another request.
    /// The request resumes at once on worker 0: that is idle time, not the runtime's.
    #[test]
    fn an_answer_while_another_worker_is_busy_stays_idle() {
        let mut w0 = worker(
            0,
            vec![at_us(ROOT, 0, 1_000), at_us(ROOT, 40_050, 42_000)],
            parks_us(&[(1_000, 40_000), (42_000, 100_000)]),
        );
        w0.polls = vec![poll_us(50, 0, 1_000), poll_us(50, 40_050, 42_000)];
        let mut w1 = worker(
            1,
            vec![at_us(OTHER, 2_000, 61_800)],
            parks_us(&[(0, 2_000), (61_900, 61_950), (62_000, 100_000)]),
        );
        w1.polls = vec![poll_us(70, 2_000, 61_800)];
        let mut d = decoded(vec![w0, w1]);
        add_span(&mut d, OTHER, "GET /other", OTHER_TRACE);
        let b = analyze(&d, &target(101, 0, 42));
        assert_eq!(b.dominant, Category::Idle);
        assert_eq!(
            b.part(Category::SchedulerWait),
            50 * US,
            "worker 0's own wake-up only"
        );
        assert_eq!(b.late_wake, None);
        assert!(b.culprits.is_empty());
        assert!(b.verdict.ends_with("no runtime trouble"), "{}", b.verdict);
    }

    /// A park that slept is no turn that found the request ready: worker 1 parked after its
    /// busy stretch, held the driver, and woke when the request's answer came at 80 ms.
    #[test]
    fn a_park_that_slept_is_not_a_turn_that_found_the_request() {
        let d = late_timer(&[(0, 100_000)], (61_900, 80_000), 80_050);
        let b = analyze(&d, &target(101, 0, 82));
        assert_eq!(b.dominant, Category::Idle, "{:?}", b.parts);
        assert_eq!(b.late_wake, None);
        assert!(b.verdict.ends_with("no runtime trouble"), "{}", b.verdict);
    }

    /// Any park or unpark of another worker may have polled the driver: the late stretch
    /// starts after worker 0's last one (it woke at 30 ms for something else and parked again
    /// at 31 ms, when it could have taken the driver).
    #[test]
    fn another_workers_park_bounds_a_late_wake() {
        let d = late_timer(&[(0, 30_000), (31_000, 100_000)], (61_900, 61_950), 62_000);
        let b = analyze(&d, &target(101, 0, 64));
        assert_eq!(
            b.late_wake,
            Some((31 * MS, Late::DriverUnpolled { worker: 1 }))
        );
        assert_eq!(b.part(Category::SchedulerWait), 31 * MS);
    }

    /// Issue #17: a request was named as the culprit of a wait it overlapped for 0.384 ms.
    /// Neighbours' sub-millisecond polls are not culprits; the verdict says what ran instead.
    #[test]
    fn a_sub_millisecond_neighbour_is_not_named_a_culprit() {
        // No worker parks: the request's 1.8 ms gap is all scheduler wait; `others` (span
        // key, task, from, to in µs) ran in it.
        let wait_with = |others: &[(u64, u64, u64, u64)]| {
            let mut entries = vec![at_us(ROOT, 0, 10_000), at_us(ROOT, 11_800, 12_000)];
            let mut polls = vec![poll_us(50, 0, 10_000), poll_us(50, 11_800, 12_000)];
            for &(key, task, a, b) in others {
                entries.push(at_us(key, a, b));
                polls.push(poll_us(task, a, b));
            }
            let mut w0 = worker(0, entries, vec![]);
            polls.sort_by_key(|p| p.start);
            w0.polls = polls;
            let mut d = decoded(vec![w0]);
            for &(key, ..) in others {
                add_span(&mut d, key, "GET /other", OTHER_TRACE + u128::from(key));
            }
            analyze(&d, &target(101, 0, 12))
        };
        let b = wait_with(&[
            (20, 80, 10_000, 10_400),
            (21, 81, 10_450, 10_850),
            (22, 82, 10_900, 11_300),
            (23, 83, 11_350, 11_750),
        ]);
        assert!(b.culprits.is_empty(), "{:?}", b.culprits);
        assert_eq!(
            b.no_culprit,
            Some(NoCulprit::Scattered {
                count: 4,
                longest_ns: 400 * US
            })
        );
        assert!(
            NoCulprit::Scattered {
                count: 4,
                longest_ns: 400 * US
            }
            .describe()
            .ends_with("held a worker for 1.0 ms of it (4 ran, the longest 0.4 ms)")
        );
        let b = wait_with(&[(20, 80, 10_000, 11_200), (21, 81, 11_250, 11_650)]);
        let named: Vec<u64> = b.culprits.iter().map(|c| c.overlap_ns).collect();
        assert_eq!(named, vec![1_200 * US], "the 0.4 ms neighbour is left out");
    }

    /// Issue #17: "task 7 (spawn site no longer in the recorder)" read like lost data for a
    /// connection task spawned long before the window.
    #[test]
    fn a_task_spawned_before_the_window_says_so() {
        let mut c = Culprit {
            task: 7,
            spawn_site: None,
            spawned_before_window: true,
            span_name: None,
            trace_id: None,
            worker: Some(0),
            overlap_ns: 5 * MS,
            first_seen: 0,
        };
        assert_eq!(c.describe(), "task 7 (spawned before the recorded window)");
        c.span_name = Some("GET /messages".into());
        c.trace_id = Some(OTHER_TRACE);
        assert_eq!(
            c.describe(),
            format!("GET /messages (trace {OTHER_TRACE:032x})"),
            "the request it served says what it is"
        );
    }

    /// An idle verdict with a wait for a worker of a millisecond or more does not claim a
    /// quiet runtime: the wait and its culprit are told.
    #[test]
    fn an_idle_verdict_tells_a_wait_for_a_worker() {
        // As the late timer, with the request awaiting longer after it.
        let d = late_timer(&[(0, 200_000)], (61_900, 61_950), 62_000);
        let b = analyze(&d, &target(101, 0, 200));
        assert_eq!(b.dominant, Category::Idle);
        assert!(
            b.verdict.contains(
                "awaiting I/O, timers or downstream calls; it also waited 60 ms for a worker \
                 (worker 1 busy 60 ms polling GET /other ("
            ) && !b.verdict.contains("no runtime trouble"),
            "{}",
            b.verdict
        );
        // A light analysis has the parks but names no culprit, and says so once.
        let mut d = d;
        d.light = true;
        let b = analyze(&d, &target(101, 0, 200));
        assert!(
            b.verdict.contains(
                "it also waited 60 ms for a worker; up to 60 ms of it the request was ready but \
                 unnoticed"
            ) && b.verdict.matches("light analysis").count() == 1,
            "{}",
            b.verdict
        );
    }

    /// The culprit's worker is where it held the request up, not where it was first seen: a
    /// task that moved from worker 0 (1 ms) to worker 1 (9 ms) is named on worker 1.
    #[test]
    fn a_culprit_is_named_on_the_worker_it_held_most() {
        let mut w0 = worker(
            0,
            vec![
                at_us(ROOT, 0, 10_000),
                at_us(OTHER, 10_000, 11_000),
                at_us(ROOT, 20_000, 21_000),
            ],
            vec![],
        );
        w0.polls = vec![
            poll_us(50, 0, 10_000),
            poll_us(70, 10_000, 11_000),
            poll_us(50, 20_000, 21_000),
        ];
        let mut w1 = worker(1, vec![at_us(OTHER, 11_000, 20_000)], vec![]);
        w1.polls = vec![poll_us(70, 11_000, 20_000)];
        let mut d = decoded(vec![w0, w1]);
        add_span(&mut d, OTHER, "GET /other", OTHER_TRACE);
        let b = analyze(&d, &target(101, 0, 21));
        let c = b.culprits.first().expect("a culprit");
        assert_eq!((c.worker, c.overlap_ns), (Some(1), 10 * MS));
    }

    /// Where every worker was busy, that says more than "worker 1 was busy": with worker 0
    /// running a third request throughout, both rules count the stretch and the first names it.
    #[test]
    fn work_resuming_off_the_workers_did_not_wait_for_one() {
        // The request's span is entered on a plain thread at 0–1 ms and again at 30–31 ms,
        // while the only worker ran another request throughout, never parked. The gap is the
        // thread's own business, not a wait for a worker (a flaky test caught it: concurrent
        // tests' runtimes made every closed-on-another-thread span read scheduler wait).
        let plain = ThreadActivity {
            tid: 7,
            entries: vec![at_us(ROOT, 0, 1_000), at_us(ROOT, 30_000, 31_000)],
            entry_reach: vec![1_000 * US, 31_000 * US],
            ..ThreadActivity::default()
        };
        let mut busy = worker(0, vec![at_us(OTHER, 0, 90_000)], vec![]);
        busy.polls = vec![poll_us(70, 0, 90_000)];
        let mut d = decoded(vec![busy, plain]);
        add_span(&mut d, OTHER, "GET /other", OTHER_TRACE);
        let b = analyze(&d, &target(101, 0, 31));
        assert_eq!(b.part(Category::SchedulerWait), 0, "{:?}", b.parts);
        assert_eq!(b.late_wake, None);
        assert_eq!(b.dominant, Category::Idle, "{:?}", b.parts);
    }

    #[test]
    fn every_worker_busy_is_told_before_one_worker_busy() {
        let mut d = late_timer(&[(0, 1_500)], (61_900, 61_950), 62_000);
        let mut w0 = worker(0, vec![at_us(11, 1_500, 70_000)], parks_us(&[(0, 1_500)]));
        w0.polls = vec![poll_us(71, 1_500, 70_000)];
        d.threads[0] = w0;
        let b = analyze(&d, &target(101, 0, 64));
        assert_eq!(b.late_wake, Some((60 * MS, Late::AllBusy)));
        assert!(
            b.verdict.contains(
                "up to 60 ms of it the request was ready but unnoticed: every worker was busy"
            ),
            "{}",
            b.verdict
        );
    }
}

//! The breakdown: a span's wall time partitioned into causes, with culprits.
//!
//! Steps, for a target span `S` with window `[start, end]`:
//! 1. The request's work: `S` and its descendant spans (`D`), the tasks spawned while a span
//!    of `D` was current, transitively through tasks spawned by those (`T`), and the
//!    `granular::spawn_blocking` jobs queued by either.
//! 2. Intervals, each tagged: *ours* (a span of `D` entered on a thread, or a poll of a task in
//!    `T`), *scheduler wait* (before a poll of ours: tokio's measured wake-to-poll latency; in
//!    stable builds, estimated — see [`estimate_scheduler_waits`]), *blocking pool*
//!    (queued/running jobs).
//! 3. A sweep over the window gives every instant one category, by priority: ours >
//!    scheduler wait > blocking pool > idle. The parts therefore sum to the span's duration.
//! 4. Time covered by *ours* is split by the OS samples of its thread: on-CPU → running,
//!    run-queue wait → OS wait, the rest of off-CPU → blocked in poll.
//! 5. Culprits: whatever other tasks the workers polled during scheduler wait, grouped by task,
//!    named by spawn site and the span (and trace) they served.

use std::collections::HashMap;

use super::idmap::{IdMap, IdSet};
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
    /// "GET /report (src/report.rs:40, trace 4bf92f3577b34da6)".
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

/// The answer to "why was this span slow?".
#[derive(Debug, Clone)]
pub struct Breakdown {
    pub span_name: String,
    pub start: u64,
    pub end: u64,
    /// ns per category; they sum to `end - start`.
    pub parts: HashMap<Category, u64>,
    pub dominant: Category,
    pub polls: u64,
    pub alloc_count: u64,
    pub alloc_bytes: u64,
    pub culprits: Vec<Culprit>,
    /// The longest intervals, longest first.
    pub intervals: Vec<Interval>,
    pub verdict: String,
    /// The span was not found in the recorder, or records of its window were overwritten.
    pub data_loss: bool,
    /// Scheduler wait was estimated from span entries (no task hooks in this build, or a
    /// light analysis).
    pub scheduler_wait_estimated: bool,
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

/// Scheduler wait below this names no culprit.
pub const MIN_CULPRIT_WAIT_NS: u64 = 1_000_000;

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
    let (mut alloc_count, mut alloc_bytes) = (0, 0);
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
            add_alloc(e.alloc, &mut alloc_count, &mut alloc_bytes);
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
                add_alloc(p.alloc, &mut alloc_count, &mut alloc_bytes);
            }
            if p.sched_latency > 0 {
                push_mark(
                    &mut marks,
                    p.start.saturating_sub(p.sched_latency),
                    p.start,
                    start,
                    end,
                    Tag::SchedWait,
                );
            }
        }
    }
    let scheduler_wait_estimated = !crate::capture::runtime::TASK_HOOKS || d.light;
    let mut ours_ranges: Vec<(u64, u64)> = marks
        .iter()
        .filter(|m| matches!(m.tag, Tag::Ours(_)))
        .map(|m| (m.a, m.b))
        .collect();
    ours_ranges = merge_ranges(ours_ranges);
    for (a, b) in estimate_scheduler_waits(d, &ours_ranges, start, end) {
        push_mark(&mut marks, a, b, start, end, Tag::SchedWait);
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
    let mut ours_segments: Vec<(usize, u64, u64)> = Vec::new();
    for (a, b, tag) in segments {
        match tag {
            Some(Tag::Ours(ti)) => ours_segments.push((ti, a, b)),
            Some(Tag::SchedWait) => {
                *parts.entry(Category::SchedulerWait).or_default() += b - a;
                sched_segments.push((a, b));
            }
            Some(Tag::Pool) => *parts.entry(Category::BlockingPool).or_default() += b - a,
            None => *parts.entry(Category::Idle).or_default() += b - a,
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
    let culprits = if !light
        && parts.get(&Category::SchedulerWait).copied().unwrap_or(0) >= MIN_CULPRIT_WAIT_NS
    {
        culprits(d, &ours, &merge_ranges(sched_segments.clone()))
    } else {
        Vec::new()
    };
    for (a, b) in merge_ranges(sched_segments) {
        intervals.push(Interval {
            category: Category::SchedulerWait,
            start: a,
            end: b,
            detail: "runnable, waiting for a worker".into(),
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
        polls,
        alloc_count,
        alloc_bytes,
        culprits,
        intervals,
        verdict: String::new(),
        data_loss,
        scheduler_wait_estimated,
        light,
        threads: used_threads.into_iter().collect(),
    };
    b.verdict = verdict(&b);
    b
}

fn add_alloc(a: Option<((u64, u64), (u64, u64))>, count: &mut u64, bytes: &mut u64) {
    if let Some((s, e)) = a {
        *count += e.0.saturating_sub(s.0);
        *bytes += e.1.saturating_sub(s.1);
    }
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
    SchedWait,
    Pool,
}

impl Tag {
    fn priority(self) -> u8 {
        match self {
            Tag::Ours(_) => 3,
            Tag::SchedWait => 2,
            Tag::Pool => 1,
        }
    }
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

fn merge_ranges(mut r: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    r.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::new();
    for (a, b) in r {
        match out.last_mut() {
            Some(l) if a <= l.1 => l.1 = l.1.max(b),
            _ => out.push((a, b)),
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
    let at = |t: u64| -> (f64, f64) {
        let i = s.partition_point(|x| x.0 <= t).clamp(1, s.len() - 1);
        let (p, q) = (s[i - 1], s[i]);
        let f = if q.0 > p.0 {
            (t.saturating_sub(p.0)) as f64 / (q.0 - p.0) as f64
        } else {
            0.0
        };
        let f = f.clamp(0.0, 1.0);
        (
            p.1 as f64 + f * (q.1 as f64 - p.1 as f64),
            p.2 as f64 + f * (q.2 as f64 - p.2 as f64),
        )
    };
    let (c0, w0) = at(ca);
    let (c1, w1) = at(cb);
    let covered = cb - ca;
    let on_cpu = ((c1 - c0).max(0.0) as u64).min(covered);
    let off = covered - on_cpu;
    let os_wait = ((w1 - w0).max(0.0) as u64).min(off);
    (wall - off, os_wait, off - os_wait)
}

/// Waits the runtime did not measure. A timer or socket that became ready while every worker
/// was busy is not even noticed (its wake happens when a worker next polls the driver), so
/// tokio's wake-to-poll latency misses it. For each resumption of the request's work after a
/// gap, the trailing stretch during which no worker was parked (parks under 0.5 ms ignored: a park that returns at once only polled the driver and found the request ready),
/// bounded by the gap, is counted as scheduler wait: had the request been ready earlier, a
/// parked worker would have polled it.
pub fn estimate_scheduler_waits(
    d: &Decoded,
    ours: &[(u64, u64)],
    lo: u64,
    hi: u64,
) -> Vec<(u64, u64)> {
    const MIN_PARK_NS: u64 = 500_000;
    let workers: Vec<&ThreadActivity> = d
        .threads
        .iter()
        .filter(|t| t.worker.is_some() || !t.parks.is_empty())
        .collect();
    if workers.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut covered_until = lo;
    for &(s, e) in ours {
        if s > covered_until && s <= hi {
            let last_park = workers
                .iter()
                .filter_map(|t| {
                    // Parks are sorted and do not overlap: walk back from the last one that
                    // began before `s` to the first long enough to count.
                    let upto = t.parks.partition_point(|(a, _)| *a < s);
                    t.parks[..upto]
                        .iter()
                        .rev()
                        .find(|(a, b)| b - a >= MIN_PARK_NS)
                        .map(|(_, b)| (*b).min(s))
                })
                .max()
                .unwrap_or(covered_until);
            let from = last_park.max(covered_until);
            if from < s {
                out.push((from, s));
            }
        }
        covered_until = covered_until.max(e);
    }
    out
}

/// Other work the workers did while the request waited for one, grouped per task (or, without
/// task hooks, per local root span), largest overlap first.
fn culprits(d: &Decoded, ours: &RequestWork, waits: &[(u64, u64)]) -> Vec<Culprit> {
    if waits.is_empty() {
        return Vec::new();
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
    let mut tally = |key: (u64, u64), thread: usize, root: Option<u64>, ov: u64, seen: u64| {
        let t = by_key.entry(key).or_insert(Tally {
            thread,
            root,
            overlap_ns: 0,
            first_seen: u64::MAX,
        });
        t.overlap_ns += ov;
        t.first_seen = t.first_seen.min(seen);
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
    v.truncate(8);
    v.into_iter()
        .map(|((task, _), t)| Culprit {
            overlap_ns: t.overlap_ns,
            first_seen: t.first_seen,
            ..culprit_for(d, &d.threads[t.thread], task, t.root)
        })
        .collect()
}

/// A culprit's share of the wait, before it is named: naming looks up its task and spans and
/// formats strings, worth doing only for the few reported (a saturated window holds thousands
/// of candidates).
struct Tally {
    /// Index of the first thread it was seen on.
    thread: usize,
    root: Option<u64>,
    overlap_ns: u64,
    first_seen: u64,
}

fn culprit_for(d: &Decoded, t: &ThreadActivity, task: u64, root: Option<u64>) -> Culprit {
    let info = d.tasks.get(&task);
    let mut spawn_site = info
        .and_then(|i| i.spawned_at)
        .map(|l| format!("{}:{}", l.file(), l.line()));
    let root = root.or_else(|| {
        info.map(|i| d.local_root(i.parent_span))
            .filter(|r| *r != 0)
    });
    if spawn_site.is_none() && task != 0 {
        spawn_site = Some("spawn site no longer in the recorder".into());
    }
    Culprit {
        task,
        spawn_site,
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
    let amount = ms(b.part(c));
    let total = ms(b.end - b.start);
    let mut v = match c {
        Category::SchedulerWait => match b.culprits.first() {
            Some(cu) => format!(
                "{} {amount} of {total}: worker {} busy {} polling {}",
                c.words(),
                cu.worker.map_or("?".into(), |w| w.to_string()),
                ms(cu.overlap_ns),
                cu.describe()
            ),
            None => format!(
                "{} {amount} of {total}: runnable but no worker free",
                c.words()
            ),
        },
        Category::BlockedInPoll => format!(
            "{} {amount} of {total}: the thread slept inside a poll (blocking syscall, lock or sleep in async code)",
            c.words()
        ),
        Category::OsWait => format!(
            "{} {amount} of {total}: preempted by the OS while polling (CPU contention)",
            c.words()
        ),
        Category::BlockingPool => format!(
            "{} {amount} of {total}: spawn_blocking jobs queued for or ran on the blocking pool",
            c.words()
        ),
        Category::Running => format!(
            "{} {amount} of {total}: the request's own code was on the CPU",
            c.words()
        ),
        Category::Idle => format!(
            "{} {amount} of {total}: awaiting I/O, timers or downstream calls; no runtime trouble",
            c.words()
        ),
    };
    if b.alloc_bytes > 0 {
        let _ = write!(
            v,
            "; allocated {:.1} MiB in {} allocations",
            b.alloc_bytes as f64 / (1 << 20) as f64,
            b.alloc_count
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

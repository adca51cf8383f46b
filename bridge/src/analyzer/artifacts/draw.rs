//! Drawing a span's window as a [`Timeline`]:
//! * a [`SPANS_TRACK`] track first: one slice per span of the request (the analyzed span and
//!   its descendants, `span_id` and `parent_span_id` in the args), the analyzed span's slice
//!   first and carrying the request-level args ([`request_args`]: the span's `granular.*`
//!   attributes — the six `granular.time.*_us` parts, cause, verdict, culprit — and the
//!   `trace_id`), so a viewer needs nothing but the artifact;
//! * one track per thread that did anything in the window (workers named `worker N`): the
//!   request's own polls as slices named after the span they served (highlighted, prefixed
//!   `▶`, with the allocations they made where counted) and its span entries; a culprit's
//!   polls (or, without task hooks, its span entries) as slices of their own in the
//!   `culprit` category, labelled with its span, spawn site and trace; other work gathered
//!   into runs (one slice per stretch with gaps under 1 ms, named after its longest poll or
//!   entry); parked intervals; off-CPU intervals outside parks, from perf context switches
//!   where that source recorded the thread (`preempted` in `os_wait`, `blocked` in
//!   `blocked_in_poll` with the syscall and object the wait samples name), 0.1 ms or longer;
//! * a `request` track with the breakdown's intervals (scheduler wait, blocked in poll...),
//!   and flows from each scheduler-wait interval to the poll that ended it.

use crate::analysis::blocked_on;
use crate::analysis::breakdown::{Culprit, IntervalKind};
use crate::analysis::decode::{Poll, ThreadActivity};
use crate::analysis::request::RequestWork;
use crate::analysis::{Breakdown, Category, Decoded};
use crate::timeline::{Flow, Instant, Slice, SliceRef, Timeline, Track, TrackKind};

/// The name of the track holding the request's spans (the first track).
pub(crate) const SPANS_TRACK: &str = "spans";

/// Off-CPU intervals shorter than this are not drawn on thread tracks: they are the OS's
/// ordinary scheduling, invisible at a window's scale, and would multiply the artifact's size.
/// The request's own OS wait and blocked time is on the `request` track however short.
const MIN_OFF_CPU_NS: u64 = 100_000;

/// Other work closer together than this on one thread is drawn as one slice: on a busy worker
/// the window holds thousands of other requests' polls, and one slice per poll would make
/// artifacts of ~1 MB that cost more to build than the analysis.
const MERGE_GAP_NS: u64 = 1_000_000;

/// How close a scheduler wait's end and the start of the request's next poll must be for a
/// flow to join them.
const FLOW_MATCH_NS: u64 = 1_000_000;

/// A stretch of other work on one thread, named after its longest member. `key` says whose
/// work it is: `None` for anyone's, `Some(i)` for `b.culprits[i]`'s only.
struct Run<T> {
    key: Option<usize>,
    start: u64,
    end: u64,
    count: usize,
    longest: T,
    longest_ns: u64,
}

/// Gathers other work into [`Run`]s; items must come sorted by start.
struct Runs<T> {
    open: Option<Run<T>>,
}

impl<T> Runs<T> {
    fn new() -> Self {
        Runs { open: None }
    }

    /// Adds `[a, z]` of `key`'s work; returns the run it closed, if it starts a new one (a
    /// culprit's work never joins a run of anyone else's, so its time is never claimed by
    /// other work).
    fn add(&mut self, key: Option<usize>, a: u64, z: u64, item: T) -> Option<Run<T>> {
        if let Some(r) = &mut self.open {
            if r.key == key && a <= r.end.saturating_add(MERGE_GAP_NS) {
                r.end = r.end.max(z);
                r.count += 1;
                if z - a > r.longest_ns {
                    r.longest_ns = z - a;
                    r.longest = item;
                }
                return None;
            }
        }
        self.open.replace(Run {
            key,
            start: a,
            end: z,
            count: 1,
            longest: item,
            longest_ns: z - a,
        })
    }

    fn take(&mut self) -> Option<Run<T>> {
        self.open.take()
    }
}

/// The slice of a run: named after its longest member, `(+N more)` when it holds others; a
/// culprit's run (`b.culprits[i]`) is named and labelled after the culprit.
fn run_slice<T>(
    culprits: &[Culprit],
    run: Run<T>,
    what: &str,
    name: String,
    mut args: Vec<(String, String)>,
) -> Slice {
    let culprit = run.key.and_then(|i| culprits.get(i));
    let name = match culprit {
        Some(c) => format!("culprit: {}", culprit_name(c)),
        None => name,
    };
    let name = match run.count {
        1 => name,
        n => format!("{name} (+{} more {what})", n - 1),
    };
    args.push((what.to_string(), run.count.to_string()));
    if let Some(c) = culprit {
        args.extend(culprit_args(c));
    }
    Slice {
        name,
        category: if culprit.is_some() {
            "culprit"
        } else {
            "other"
        }
        .into(),
        start_unix_ns: run.start,
        end_unix_ns: run.end,
        highlight: false,
        args,
    }
}

/// A slice of the request's own work: highlighted, in the `running` category.
fn own_slice(name: String, (a, z): (u64, u64), args: Vec<(String, String)>) -> Slice {
    Slice {
        name,
        category: "running".into(),
        start_unix_ns: a,
        end_unix_ns: z,
        highlight: true,
        args,
    }
}

/// The span's window: everything drawn is clipped to it.
#[derive(Debug, Clone, Copy)]
struct Window {
    lo: u64,
    hi: u64,
}

impl Window {
    /// `[a, z]` within the window, never ending before it starts.
    fn clip(self, a: u64, z: u64) -> (u64, u64) {
        let a = a.max(self.lo);
        (a, z.min(self.hi).max(a))
    }
}

/// One of the request's polls as drawn: its start, and its slice (where a scheduler wait's
/// flow ends).
type OwnPoll = (u64, SliceRef);

/// Draws `b`'s window from the decoded snapshot: `work` is the request's (its spans and
/// tasks), `trace_id` and `span_id` the analyzed span's.
pub(crate) fn draw(
    d: &Decoded,
    b: &Breakdown,
    work: &RequestWork,
    trace_id: u128,
    span_id: u64,
) -> Timeline {
    let w = Window {
        lo: b.start,
        hi: b.end,
    };
    let mut tracks = vec![spans_track(d, b, work, w, trace_id, span_id)];
    let mut own_polls = Vec::new();
    let first = tracks.len();
    tracks.extend(thread_tracks(
        d,
        &b.culprits,
        work,
        w,
        first,
        &mut own_polls,
    ));
    let request = tracks.len();
    let (track, flows) = request_track(b, w, &own_polls, request);
    tracks.push(track);
    let instants = [("start", w.lo), ("end", w.hi)]
        .into_iter()
        .map(|(what, at)| Instant {
            track: request,
            name: format!("{} {what}", b.span_name),
            at_unix_ns: at,
        })
        .collect();
    Timeline {
        title: format!("{} · trace {trace_id:032x}", b.span_name),
        tracks,
        flows,
        instants,
    }
}

/// The [`SPANS_TRACK`]: the analyzed span (its window, whether or not the recorder still
/// holds its records) with [`request_args`], then each other span of the request the recorder
/// saw, clipped to the window (a span still open at the snapshot ends there).
fn spans_track(
    d: &Decoded,
    b: &Breakdown,
    work: &RequestWork,
    w: Window,
    trace_id: u128,
    span_id: u64,
) -> Track {
    let root = d.by_otel_id.get(&span_id).copied();
    let parent_of = |parent: u64| d.spans.get(&parent).map(|p| p.otel_span_id);
    let mut args = vec![("span_id".to_string(), format!("{span_id:016x}"))];
    if let Some(p) = root
        .and_then(|r| d.spans.get(&r))
        .and_then(|s| parent_of(s.parent).or(s.remote_parent))
    {
        args.push(("parent_span_id".into(), format!("{p:016x}")));
    }
    args.extend(request_args(b, trace_id));
    let mut slices = vec![Slice {
        name: b.span_name.clone(),
        category: "span".into(),
        start_unix_ns: w.lo,
        end_unix_ns: w.hi,
        highlight: true,
        args,
    }];
    let mut others: Vec<(u64, &crate::analysis::decode::SpanInfo)> = work
        .spans
        .iter()
        .filter(|k| Some(**k) != root)
        .filter_map(|k| Some((*k, d.spans.get(k)?)))
        .filter(|(_, s)| s.start < w.hi && s.end.is_none_or(|e| e > w.lo))
        .collect();
    others.sort_by_key(|(k, s)| (s.start, *k));
    for (key, s) in others {
        let (a, z) = w.clip(s.start, s.end.unwrap_or(d.taken_at));
        let mut args = vec![("span_id".to_string(), format!("{:016x}", s.otel_span_id))];
        if let Some(p) = parent_of(s.parent) {
            args.push(("parent_span_id".into(), format!("{p:016x}")));
        }
        slices.push(Slice {
            name: d.span_name(key).to_string(),
            category: "span".into(),
            start_unix_ns: a,
            end_unix_ns: z,
            highlight: true,
            args,
        });
    }
    Track {
        name: SPANS_TRACK.into(),
        kind: TrackKind::Task,
        slices,
    }
}

/// The request-level args on the analyzed span's slice: what the span carries as `granular.*`
/// attributes (same keys, integers in decimal), and its trace id.
fn request_args(b: &Breakdown, trace_id: u128) -> Vec<(String, String)> {
    let mut args = vec![
        ("trace_id".to_string(), format!("{trace_id:032x}")),
        ("granular.cause".into(), b.dominant.key().into()),
        ("granular.verdict".into(), b.verdict.clone()),
    ];
    for c in Category::ALL {
        args.push((
            format!("granular.time.{}_us", c.key()),
            (b.part(c) / 1000).to_string(),
        ));
    }
    if let Some(c) = b.culprits.first() {
        args.push(("granular.culprit".into(), c.describe()));
        args.extend(culprit_args(c));
    }
    if let Some(polls) = b.polls {
        args.push(("granular.polls".into(), polls.to_string()));
    }
    if let Some(a) = b.alloc {
        args.push(("granular.alloc.bytes".into(), a.bytes.to_string()));
        args.push(("granular.alloc.count".into(), a.count.to_string()));
    }
    if let Some(w) = b.blocked_on.first() {
        args.push(("granular.blocked.syscall".into(), w.syscall.clone()));
        if !w.object.is_empty() {
            args.push(("granular.blocked.object".into(), w.object.clone()));
        }
    }
    if b.scheduler_wait_estimated {
        args.push(("granular.scheduler_wait.estimated".into(), "true".into()));
    }
    args.push(("granular.data_loss".into(), b.data_loss.to_string()));
    args
}

/// How a culprit is labelled: the span it served, else its task.
fn culprit_name(c: &Culprit) -> String {
    c.span_name
        .clone()
        .unwrap_or_else(|| format!("task {}", c.task))
}

/// A culprit's args, under the keys of the span attributes that name it.
fn culprit_args(c: &Culprit) -> Vec<(String, String)> {
    let mut args = Vec::new();
    if let Some(name) = &c.span_name {
        args.push(("granular.culprit.span".into(), name.clone()));
    }
    if let Some(site) = &c.spawn_site {
        args.push(("granular.culprit.spawn_site".into(), site.clone()));
    }
    if let Some(t) = c.trace_id {
        args.push(("granular.culprit.trace_id".into(), format!("{t:032x}")));
    }
    args.push((
        "granular.culprit.busy_us".into(),
        (c.overlap_ns / 1000).to_string(),
    ));
    args
}

/// Which of `b`'s culprits poll `p` is: one named by its task (with task hooks).
fn culprit_of_poll(culprits: &[Culprit], p: &Poll) -> Option<usize> {
    culprits
        .iter()
        .position(|c| c.task != 0 && c.task == p.task)
}

/// Which of `b`'s culprits an entry of span `key` is: one named by the local root span it
/// served (without task hooks culprits have no task), matched by name and trace.
fn culprit_of_entry(d: &Decoded, culprits: &[Culprit], key: u64) -> Option<usize> {
    let root = d.local_root(key);
    let trace = d.spans.get(&root).and_then(|s| s.trace_id);
    culprits.iter().position(|c| {
        c.task == 0
            && c.trace_id.is_some()
            && c.trace_id == trace
            && c.span_name.as_deref() == Some(d.span_name(root))
    })
}

/// The whole process over `[lo, hi]` (Unix ns), as [`draw`] draws other requests' work: one
/// track per thread that did anything, polls and span entries gathered into runs, parks,
/// off-CPU intervals perf recorded; no
/// request track.
pub(crate) fn draw_process(d: &Decoded, lo: u64, hi: u64, title: String) -> Timeline {
    let w = Window { lo, hi };
    Timeline {
        title,
        tracks: thread_tracks(d, &[], &RequestWork::default(), w, 0, &mut Vec::new()),
        flows: Vec::new(),
        instants: Vec::new(),
    }
}

/// One track per thread that did anything in `w`, numbered from `first` in the timeline: the
/// request's (`work`) polls noted in `own_polls`, `culprits`' work labelled.
fn thread_tracks(
    d: &Decoded,
    culprits: &[Culprit],
    work: &RequestWork,
    w: Window,
    first: usize,
    own_polls: &mut Vec<OwnPoll>,
) -> Vec<Track> {
    let mut tracks = Vec::new();
    for t in &d.threads {
        let track = first + tracks.len();
        let has_polls = !t.polls_overlapping(w.lo, w.hi).is_empty();
        let mut slices = poll_slices(d, culprits, t, work, w, track, own_polls);
        slices.extend(entry_slices(d, culprits, t, work, w, has_polls));
        slices.extend(park_slices(t, w));
        slices.extend(off_cpu_slices(d, t, w));
        if slices.is_empty() {
            continue;
        }
        let name = match t.worker {
            Some(n) => format!("worker {n} (tid {})", t.tid),
            None => format!("thread {}", t.tid),
        };
        tracks.push(Track {
            name,
            kind: TrackKind::Thread { tid: t.tid as u32 },
            slices,
        });
    }
    tracks
}

/// The polls on `t` (track number `track`): the request's own one by one, noted in
/// `own_polls`; other work gathered into runs.
fn poll_slices(
    d: &Decoded,
    culprits: &[Culprit],
    t: &ThreadActivity,
    work: &RequestWork,
    w: Window,
    track: usize,
    own_polls: &mut Vec<OwnPoll>,
) -> Vec<Slice> {
    let mut slices = Vec::new();
    let mut runs = Runs::new();
    let other = |run: Run<&Poll>| {
        let (name, args) = poll_name(d, t, run.longest, false);
        run_slice(culprits, run, "polls", name, args)
    };
    for p in t.polls_overlapping(w.lo, w.hi) {
        let clipped = w.clip(p.start, p.end);
        if work.poll_of(t, p).is_none() {
            let key = culprit_of_poll(culprits, p);
            slices.extend(runs.add(key, clipped.0, clipped.1, p).map(other));
            continue;
        }
        slices.extend(runs.take().map(other));
        let (name, mut args) = poll_name(d, t, p, true);
        if let Some(((count0, bytes0), (count1, bytes1))) = p.alloc {
            args.push((
                "alloc_bytes".into(),
                bytes1.wrapping_sub(bytes0).to_string(),
            ));
            args.push((
                "alloc_count".into(),
                count1.wrapping_sub(count0).to_string(),
            ));
        }
        let slice = slices.len();
        own_polls.push((p.start, SliceRef { track, slice }));
        slices.push(own_slice(name, clipped, args));
    }
    slices.extend(runs.take().map(other));
    slices
}

/// A poll's name (the local root of the first span it entered, else its task; `▶ ` before
/// the request's own) and its args: the task, its spawn site, tokio's wake-to-poll latency.
fn poll_name(
    d: &Decoded,
    t: &ThreadActivity,
    p: &Poll,
    own: bool,
) -> (String, Vec<(String, String)>) {
    let entered = t.entries_starting_in(p.start, p.end);
    let served = entered.first().map(|e| d.span_name(d.local_root(e.span)));
    let mark = if own { "▶ " } else { "" };
    let name = match served {
        Some(n) => format!("{mark}{n}"),
        None => format!("{mark}poll task {}", p.task),
    };
    let mut args = vec![("task".to_string(), p.task.to_string())];
    if let Some(l) = d.tasks.get(&p.task).and_then(|i| i.spawned_at) {
        args.push(("spawn_site".into(), format!("{}:{}", l.file(), l.line())));
    }
    if p.sched_latency > 0 {
        args.push((
            "wake_to_poll_us".into(),
            (p.sched_latency / 1000).to_string(),
        ));
    }
    (name, args)
}

/// The span entries on `t`: the request's own one by one. With polls on the track, other
/// requests' entries sit inside the polls drawn already; without task hooks the entries are
/// all there is, gathered into runs the same way.
fn entry_slices(
    d: &Decoded,
    culprits: &[Culprit],
    t: &ThreadActivity,
    work: &RequestWork,
    w: Window,
    has_polls: bool,
) -> Vec<Slice> {
    let mut slices = Vec::new();
    let mut runs = Runs::new();
    let other = |run: Run<u64>| {
        let root = d.local_root(run.longest);
        let mut args = Vec::new();
        if let Some(t) = d.spans.get(&root).and_then(|s| s.trace_id) {
            args.push(("trace_id".into(), format!("{t:032x}")));
        }
        run_slice(
            culprits,
            run,
            "entries",
            d.span_name(root).to_string(),
            args,
        )
    };
    for e in t
        .entries_overlapping(w.lo, w.hi)
        .filter(|e| e.end > w.lo && e.start < w.hi)
    {
        let clipped = w.clip(e.start, e.end);
        if !work.spans.contains(&e.span) {
            if !has_polls {
                let key = culprit_of_entry(d, culprits, e.span);
                slices.extend(runs.add(key, clipped.0, clipped.1, e.span).map(other));
            }
            continue;
        }
        slices.extend(runs.take().map(other));
        slices.push(own_slice(
            d.span_name(e.span).to_string(),
            clipped,
            Vec::new(),
        ));
    }
    slices.extend(runs.take().map(other));
    slices
}

/// The intervals `t` spent parked.
fn park_slices(t: &ThreadActivity, w: Window) -> impl Iterator<Item = Slice> {
    t.parks
        .iter()
        .filter(move |(a, z)| *z > w.lo && *a < w.hi)
        .map(move |&(a, z)| {
            let (a, z) = w.clip(a, z);
            Slice {
                name: "parked".into(),
                category: "idle".into(),
                start_unix_ns: a,
                end_unix_ns: z,
                highlight: false,
                args: vec![],
            }
        })
}

/// The intervals `t` spent off CPU outside its parks, where perf recorded them, of
/// [`MIN_OFF_CPU_NS`] or more: preempted (runnable, the OS ran something else) or blocked
/// (with what the wait samples inside name, when one fell there).
fn off_cpu_slices(d: &Decoded, t: &ThreadActivity, w: Window) -> Vec<Slice> {
    let Some(intervals) = d.off_cpu.get(&t.tid) else {
        return Vec::new();
    };
    let from = intervals.partition_point(|(_, z, _)| *z <= w.lo);
    intervals[from..]
        .iter()
        .take_while(|(a, _, _)| *a < w.hi)
        .map(|&(a, z, preempted)| (w.clip(a, z), preempted))
        .filter(|((a, z), _)| z - a >= MIN_OFF_CPU_NS && !parked_over(t, *a, *z))
        .map(|((a, z), preempted)| {
            let (name, category, args) = if preempted {
                ("preempted".to_string(), Category::OsWait, Vec::new())
            } else {
                let on = blocked_on::in_stretch(d, t.tid, a, z, z - a);
                match on.first() {
                    Some(w) => (
                        format!("blocked: {}", w.syscall),
                        Category::BlockedInPoll,
                        vec![
                            ("syscall".into(), w.syscall.clone()),
                            ("object".into(), w.object.clone()),
                            ("wchan".into(), w.wchan.clone()),
                        ],
                    ),
                    None => ("blocked".to_string(), Category::BlockedInPoll, Vec::new()),
                }
            };
            Slice {
                name,
                category: category.key().into(),
                start_unix_ns: a,
                end_unix_ns: z,
                highlight: false,
                args,
            }
        })
        .collect()
}

/// Whether `[a, z]` lies mostly within one of `t`'s parks (a parked worker is off CPU by
/// design: its park is drawn already).
fn parked_over(t: &ThreadActivity, a: u64, z: u64) -> bool {
    // Parks are sorted and disjoint: only those between these two points overlap `[a, z]`.
    let from = t.parks.partition_point(|&(_, pz)| pz <= a);
    let to = t.parks.partition_point(|&(pa, _)| pa < z);
    t.parks[from..to.max(from)]
        .iter()
        .any(|&(pa, pz)| 2 * (z.min(pz) - a.max(pa)) >= z - a)
}

/// The `request` track (number `track`): the breakdown's intervals, and a flow from each
/// scheduler wait to the request's poll that ended it. Culprits' intervals are left out:
/// their polls are drawn on their threads.
fn request_track(
    b: &Breakdown,
    w: Window,
    own_polls: &[OwnPoll],
    track: usize,
) -> (Track, Vec<Flow>) {
    let mut slices = Vec::new();
    let mut flows = Vec::new();
    for i in b
        .intervals
        .iter()
        .filter(|i| i.kind != IntervalKind::Culprit)
    {
        let (a, z) = w.clip(i.start, i.end);
        let from = SliceRef {
            track,
            slice: slices.len(),
        };
        let mut args = vec![("detail".into(), i.detail.clone())];
        let name = match &i.waited {
            Some(w) => {
                args.push(("syscall".into(), w.syscall.clone()));
                args.push(("object".into(), w.object.clone()));
                args.push(("wchan".into(), w.wchan.clone()));
                format!("{}: {}", i.category.words(), w.syscall)
            }
            None => i.category.words().into(),
        };
        slices.push(Slice {
            name,
            category: i.category.key().into(),
            start_unix_ns: a,
            end_unix_ns: z,
            highlight: true,
            args,
        });
        if i.category != Category::SchedulerWait {
            continue;
        }
        if let Some(&(_, to)) = own_polls
            .iter()
            .find(|(start, _)| start.abs_diff(i.end) < FLOW_MATCH_NS)
        {
            flows.push(Flow { from, to });
        }
    }
    let track = Track {
        name: format!("request: {}", b.span_name),
        kind: TrackKind::Task,
        slices,
    };
    (track, flows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::breakdown::{Category, Culprit, Interval};
    use crate::analysis::decode::{Entry, Poll, TaskInfo, ThreadActivity, Waited};
    use crate::analysis::fixtures;
    use crate::analysis::idmap::IdSet;
    use crate::analysis::{Target, analyze_with};

    const MS: u64 = 1_000_000;
    /// The request's root span (key 1, OTel id 101) and child (key 2); its task is 7.
    const ROOT: u64 = 1;
    const CHILD: u64 = 2;
    const TASK: u64 = 7;

    fn poll(task: u64, from_us: u64, to_us: u64) -> Poll {
        fixtures::poll(task, from_us * 1_000, to_us * 1_000)
    }

    fn entry(span: u64, from_us: u64, to_us: u64) -> Entry {
        fixtures::entry(span, from_us * 1_000, to_us * 1_000)
    }

    /// A thread parked from 3 ms to 4.5 ms.
    fn thread(
        tid: u64,
        worker: Option<usize>,
        polls: Vec<Poll>,
        entries: Vec<Entry>,
    ) -> ThreadActivity {
        fixtures::thread(tid, worker, polls, entries, vec![(3 * MS, 4_500_000)])
    }

    /// A worker that ran the request's task (7) once and other tasks (8, 9) around it, and a
    /// thread without polls that entered the request's child and other spans.
    fn window() -> (Decoded, Breakdown, RequestWork) {
        let worker = thread(
            10,
            Some(0),
            vec![
                poll(8, 0, 1_000),
                poll(9, 1_500, 2_000),
                poll(8, 5_000, 6_000),
                poll(TASK, 10_000, 12_000),
            ],
            vec![entry(50, 200, 800), entry(ROOT, 10_100, 11_900)],
        );
        let other = thread(
            11,
            None,
            Vec::new(),
            vec![
                entry(60, 2_000, 3_000),
                entry(61, 3_500, 3_900),
                entry(CHILD, 13_000, 14_000),
            ],
        );
        let mut d = fixtures::decoded(vec![worker, other]);
        d.tasks.insert(
            TASK,
            TaskInfo {
                parent_task: 0,
                parent_span: ROOT,
                spawned_at: Some(std::panic::Location::caller()),
            },
        );
        d.by_otel_id = [(101, ROOT)].into_iter().collect();
        d.children = [(ROOT, vec![CHILD])].into_iter().collect();
        d.taken_at = 30 * MS;
        let target = Target {
            otel_span_id: 101,
            name: "GET /test".into(),
            start: 0,
            end: 20 * MS,
        };
        let mut b = analyze_with(&d, &target, false);
        // Whether the analysis names task 8 a culprit depends on the build (task hooks see its
        // polls): the tests that draw culprits set their own.
        b.culprits.clear();
        let interval = |category, from_ms, to_ms, detail: &str| Interval {
            category,
            start: from_ms * MS,
            end: to_ms * MS,
            detail: detail.into(),
            kind: IntervalKind::Part,
            waited: None,
        };
        b.intervals = vec![
            interval(Category::SchedulerWait, 8, 10, "workers busy"),
            Interval {
                kind: IntervalKind::Culprit,
                ..interval(
                    Category::SchedulerWait,
                    8,
                    9,
                    "culprit: task 8 held worker 0 for 1 ms",
                )
            },
            interval(Category::Running, 10, 12, "polled"),
            interval(Category::Idle, 14, 20, "awaiting"),
        ];
        let work = RequestWork {
            spans: [ROOT, CHILD].into_iter().collect::<IdSet<u64>>(),
            tasks: [TASK].into_iter().collect(),
        };
        (d, b, work)
    }

    /// (name, start ms, end ms, highlighted) of each slice of a track.
    fn slices(t: &Track) -> Vec<(&str, f64, f64, bool)> {
        t.slices
            .iter()
            .map(|s| {
                let ms = |ns: u64| ns as f64 / MS as f64;
                (
                    s.name.as_str(),
                    ms(s.start_unix_ns),
                    ms(s.end_unix_ns),
                    s.highlight,
                )
            })
            .collect()
    }

    /// Other requests' polls less than 1 ms apart are one slice, named after the longest
    /// and counted; the request's own poll stands alone, highlighted.
    #[test]
    fn other_work_is_gathered_into_runs_and_the_requests_own_stands_out() {
        let (d, b, work) = window();
        let t = draw(&d, &b, &work, 0xabc, 101);
        assert_eq!(t.tracks[1].name, "worker 0 (tid 10)");
        assert_eq!(
            slices(&t.tracks[1]),
            [
                ("? (+1 more polls)", 0.0, 2.0, false),
                ("poll task 8", 5.0, 6.0, false),
                ("▶ ?", 10.0, 12.0, true),
                ("?", 10.1, 11.9, true),
                ("parked", 3.0, 4.5, false),
            ]
        );
        let own = &t.tracks[1].slices[2];
        assert!(
            own.args.iter().any(|(k, _)| k == "spawn_site"),
            "{:?}",
            own.args
        );
        // Without polls, other spans' entries are gathered the same way.
        assert_eq!(
            slices(&t.tracks[2]),
            [
                ("? (+1 more entries)", 2.0, 3.9, false),
                ("?", 13.0, 14.0, true),
                ("parked", 3.0, 4.5, false),
            ]
        );
    }

    /// The request track holds the breakdown's intervals but not the culprit's (drawn on its
    /// thread), and an arrow joins the scheduler wait to the poll that ended it.
    #[test]
    fn the_request_track_points_from_a_wait_to_the_poll_that_ended_it() {
        let (d, b, work) = window();
        let t = draw(&d, &b, &work, 0xabc, 101);
        assert_eq!(t.title, format!("GET /test · trace {:032x}", 0xabc));
        let request = &t.tracks[3];
        assert_eq!(request.name, "request: GET /test");
        let names: Vec<&str> = request.slices.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["scheduler wait", "running", "idle"]);
        assert_eq!(
            t.flows,
            [Flow {
                from: SliceRef { track: 3, slice: 0 },
                to: SliceRef { track: 1, slice: 2 },
            }]
        );
        let marks: Vec<(&str, u64)> = t
            .instants
            .iter()
            .map(|i| (i.name.as_str(), i.at_unix_ns))
            .collect();
        assert_eq!(marks, [("GET /test start", 0), ("GET /test end", 20 * MS)]);
    }

    /// (key, value) args of a slice, as a map.
    fn args(s: &Slice) -> std::collections::HashMap<&str, &str> {
        s.args
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    /// The viewer reads the request's span tree and its breakdown from the artifact alone: the
    /// first track lists the analyzed span (with the `granular.*` attributes the span carries)
    /// and its descendants with their parents.
    #[test]
    fn the_spans_track_lists_the_request_and_carries_its_breakdown() {
        let (mut d, b, work) = window();
        fixtures::add_root_span(&mut d, ROOT, "GET /test", 0xabc);
        fixtures::add_root_span(&mut d, CHILD, "db.Query", 0xabc);
        let child = d.spans.get_mut(&CHILD).expect("child");
        (child.parent, child.trace_id) = (ROOT, None);
        (child.start, child.end) = (13 * MS, Some(14 * MS));
        let t = draw(&d, &b, &work, 0xabc, 101);
        let spans = &t.tracks[0];
        assert_eq!(spans.name, SPANS_TRACK);
        assert_eq!(
            slices(spans),
            [
                ("GET /test", 0.0, 20.0, true),
                ("db.Query", 13.0, 14.0, true)
            ]
        );
        let request = args(&spans.slices[0]);
        assert_eq!(request["trace_id"], format!("{:032x}", 0xabc));
        assert_eq!(request["span_id"], format!("{:016x}", 101));
        assert_eq!(request["granular.verdict"], b.verdict);
        assert_eq!(request["granular.cause"], b.dominant.key());
        let parts: u64 = Category::ALL
            .iter()
            .map(|c| {
                request[format!("granular.time.{}_us", c.key()).as_str()]
                    .parse::<u64>()
                    .expect("integer µs")
            })
            .sum();
        assert_eq!(parts, b.parts.values().map(|ns| ns / 1000).sum::<u64>());
        let child = args(&spans.slices[1]);
        assert_eq!(child["span_id"], format!("{:016x}", 102));
        assert_eq!(child["parent_span_id"], format!("{:016x}", 101));
    }

    fn report_culprit(task: u64) -> Culprit {
        Culprit {
            task,
            spawn_site: (task != 0).then(|| "src/report.rs:40".to_string()),
            spawned_before_window: false,
            span_name: Some("GET /report".into()),
            trace_id: Some(0xdef),
            worker: Some(0),
            overlap_ns: MS,
            first_seen: 0,
        }
    }

    /// A culprit's polls stand apart from other work (a run of anyone's work never swallows
    /// them), labelled with its span, spawn site and trace.
    #[test]
    fn a_culprits_polls_are_labelled_and_never_merged_into_other_work() {
        let (d, mut b, work) = window();
        b.culprits = vec![report_culprit(8)];
        let t = draw(&d, &b, &work, 0xabc, 101);
        let worker = &t.tracks[1];
        assert_eq!(
            slices(worker)[..3],
            [
                ("culprit: GET /report", 0.0, 1.0, false),
                ("poll task 9", 1.5, 2.0, false),
                ("culprit: GET /report", 5.0, 6.0, false),
            ]
        );
        let culprit = &worker.slices[0];
        assert_eq!(culprit.category, "culprit");
        let a = args(culprit);
        assert_eq!(a["granular.culprit.span"], "GET /report");
        assert_eq!(a["granular.culprit.spawn_site"], "src/report.rs:40");
        assert_eq!(a["granular.culprit.trace_id"], format!("{:032x}", 0xdef));
        assert_eq!(worker.slices[1].category, "other");
    }

    /// Without task hooks a culprit is a span: its entries on a thread without polls are
    /// labelled the same way, matched by name and trace.
    #[test]
    fn a_culprits_span_entries_are_labelled_without_task_hooks() {
        let (mut d, mut b, work) = window();
        fixtures::add_root_span(&mut d, 60, "GET /report", 0xdef);
        b.culprits = vec![report_culprit(0)];
        let t = draw(&d, &b, &work, 0xabc, 101);
        assert_eq!(
            slices(&t.tracks[2])[..2],
            [
                ("culprit: GET /report", 2.0, 3.0, false),
                ("?", 3.5, 3.9, false),
            ]
        );
        assert_eq!(t.tracks[2].slices[0].category, "culprit");
    }

    /// Off-CPU intervals perf recorded are drawn outside parks, 0.1 ms or longer: preempted
    /// as OS wait, blocked with the syscall a wait sample inside names.
    #[test]
    fn off_cpu_intervals_outside_parks_are_drawn_with_their_syscall() {
        let (mut d, b, work) = window();
        let us = |n: u64| n * 1_000;
        d.off_cpu.insert(
            10,
            vec![
                (us(3_200), us(4_000), false), // while parked
                (us(5_100), us(5_500), true),
                (us(10_200), us(10_250), false), // 50 µs
                (us(10_500), us(11_500), false),
            ],
        );
        d.waits.insert(
            10,
            vec![Waited {
                at: us(11_000),
                nr: 230,
                state: b'S',
                wchan: "hrtimer_nanosleep".into(),
                object: "std::thread::sleep (1 ms requested)".into(),
            }],
        );
        let t = draw(&d, &b, &work, 0xabc, 101);
        let syscall = crate::capture::waits::syscalls::name(230);
        let drawn: Vec<_> = t.tracks[1]
            .slices
            .iter()
            .filter(|s| s.category == "os_wait" || s.category == "blocked_in_poll")
            .map(|s| {
                (
                    s.name.clone(),
                    s.start_unix_ns / 1_000,
                    s.end_unix_ns / 1_000,
                )
            })
            .collect();
        assert_eq!(
            drawn,
            [
                ("preempted".to_string(), 5_100, 5_500),
                (format!("blocked: {syscall}"), 10_500, 11_500),
            ]
        );
        let blocked = t.tracks[1].slices.last().expect("blocked slice");
        assert_eq!(
            args(blocked)["object"],
            "std::thread::sleep (1 ms requested)"
        );
    }
}

//! Drawing a span's window as a [`Timeline`]: one track per thread that did anything in the
//! window (workers named `worker N`), the request's own polls as slices named after the span
//! they served (highlighted, prefixed `▶`) and its span entries; other work gathered into runs
//! (one slice per stretch with gaps under 1 ms, named after its longest poll or entry: a
//! culprit keeps its name and spawn site); parked intervals; a `request` track with the
//! breakdown's intervals (scheduler wait, blocked in poll...), and flows from each
//! scheduler-wait interval to the poll that ended it.

use crate::analysis::breakdown::IntervalKind;
use crate::analysis::decode::{Poll, ThreadActivity};
use crate::analysis::request::RequestWork;
use crate::analysis::{Breakdown, Category, Decoded};
use crate::timeline::{Flow, Instant, Slice, SliceRef, Timeline, Track, TrackKind};

/// Other work closer together than this on one thread is drawn as one slice: on a busy worker
/// the window holds thousands of other requests' polls, and one slice per poll would make
/// artifacts of ~1 MB that cost more to build than the analysis.
const MERGE_GAP_NS: u64 = 1_000_000;

/// How close a scheduler wait's end and the start of the request's next poll must be for a
/// flow to join them.
const FLOW_MATCH_NS: u64 = 1_000_000;

/// A stretch of other work on one thread, named after its longest member.
struct Run<T> {
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

    /// Adds `[a, z]`; returns the run it closed, if it starts a new one.
    fn add(&mut self, a: u64, z: u64, item: T) -> Option<Run<T>> {
        if let Some(r) = &mut self.open {
            if a <= r.end.saturating_add(MERGE_GAP_NS) {
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

/// The slice of a run: named after its longest member, `(+N more)` when it holds others.
fn run_slice<T>(run: Run<T>, what: &str, name: String, mut args: Vec<(String, String)>) -> Slice {
    let name = match run.count {
        1 => name,
        n => format!("{name} (+{} more {what})", n - 1),
    };
    args.push((what.to_string(), run.count.to_string()));
    Slice {
        name,
        category: "other".into(),
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
/// tasks), `trace_id` goes in the title.
pub(crate) fn draw(d: &Decoded, b: &Breakdown, work: &RequestWork, trace_id: u128) -> Timeline {
    let w = Window {
        lo: b.start,
        hi: b.end,
    };
    let mut own_polls = Vec::new();
    let mut tracks = thread_tracks(d, work, w, &mut own_polls);
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

/// The whole process over `[lo, hi]` (Unix ns), as [`draw`] draws other requests' work: one
/// track per thread that did anything, polls and span entries gathered into runs, parks; no
/// request track.
pub(crate) fn draw_process(d: &Decoded, lo: u64, hi: u64, title: String) -> Timeline {
    let w = Window { lo, hi };
    Timeline {
        title,
        tracks: thread_tracks(d, &RequestWork::default(), w, &mut Vec::new()),
        flows: Vec::new(),
        instants: Vec::new(),
    }
}

/// One track per thread that did anything in `w`: the request's (`work`) polls noted in
/// `own_polls`.
fn thread_tracks(
    d: &Decoded,
    work: &RequestWork,
    w: Window,
    own_polls: &mut Vec<OwnPoll>,
) -> Vec<Track> {
    let mut tracks = Vec::new();
    for t in &d.threads {
        let track = tracks.len();
        let has_polls = !t.polls_overlapping(w.lo, w.hi).is_empty();
        let mut slices = poll_slices(d, t, work, w, track, own_polls);
        slices.extend(entry_slices(d, t, work, w, has_polls));
        slices.extend(park_slices(t, w));
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
        run_slice(run, "polls", name, args)
    };
    for p in t.polls_overlapping(w.lo, w.hi) {
        let clipped = w.clip(p.start, p.end);
        if work.poll_of(t, p).is_none() {
            slices.extend(runs.add(clipped.0, clipped.1, p).map(other));
            continue;
        }
        slices.extend(runs.take().map(other));
        let (name, args) = poll_name(d, t, p, true);
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
    t: &ThreadActivity,
    work: &RequestWork,
    w: Window,
    has_polls: bool,
) -> Vec<Slice> {
    let mut slices = Vec::new();
    let mut runs = Runs::new();
    let other = |run: Run<u64>| {
        let name = d.span_name(d.local_root(run.longest)).to_string();
        run_slice(run, "entries", name, Vec::new())
    };
    for e in t
        .entries_overlapping(w.lo, w.hi)
        .filter(|e| e.end > w.lo && e.start < w.hi)
    {
        let clipped = w.clip(e.start, e.end);
        if !work.spans.contains(&e.span) {
            if !has_polls {
                slices.extend(runs.add(clipped.0, clipped.1, e.span).map(other));
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
    use crate::analysis::breakdown::{Category, Interval};
    use crate::analysis::decode::{Entry, Poll, TaskInfo, ThreadActivity};
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
        let t = draw(&d, &b, &work, 0xabc);
        assert_eq!(t.tracks[0].name, "worker 0 (tid 10)");
        assert_eq!(
            slices(&t.tracks[0]),
            [
                ("? (+1 more polls)", 0.0, 2.0, false),
                ("poll task 8", 5.0, 6.0, false),
                ("▶ ?", 10.0, 12.0, true),
                ("?", 10.1, 11.9, true),
                ("parked", 3.0, 4.5, false),
            ]
        );
        let own = &t.tracks[0].slices[2];
        assert!(
            own.args.iter().any(|(k, _)| k == "spawn_site"),
            "{:?}",
            own.args
        );
        // Without polls, other spans' entries are gathered the same way.
        assert_eq!(
            slices(&t.tracks[1]),
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
        let t = draw(&d, &b, &work, 0xabc);
        assert_eq!(t.title, format!("GET /test · trace {:032x}", 0xabc));
        let request = &t.tracks[2];
        assert_eq!(request.name, "request: GET /test");
        let names: Vec<&str> = request.slices.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["scheduler wait", "running", "idle"]);
        assert_eq!(
            t.flows,
            [Flow {
                from: SliceRef { track: 2, slice: 0 },
                to: SliceRef { track: 0, slice: 2 },
            }]
        );
        let marks: Vec<(&str, u64)> = t
            .instants
            .iter()
            .map(|i| (i.name.as_str(), i.at_unix_ns))
            .collect();
        assert_eq!(marks, [("GET /test start", 0), ("GET /test end", 20 * MS)]);
    }
}

//! Culprits: who held the workers while a request waited for one.
//!
//! In: a decoded snapshot, the request's work and the stretches it spent in scheduler wait.
//! Out: the other work the workers did meanwhile, grouped per task (without task hooks, per
//! local root span), largest overlap first; those that held a worker for
//! [`MIN_CULPRIT_WAIT_NS`] of the wait or more are named by spawn site and by the span (and
//! trace) they served. Where none is named, [`NoCulprit`] says why.

use std::collections::HashMap;

use super::breakdown::{Culprit, MIN_CULPRIT_WAIT_NS, NoCulprit};
use super::decode::{Decoded, ThreadActivity};
use super::ranges::overlap;
use super::request::{PollOf, RequestWork};
use super::unattributed::{MIN_UNATTRIBUTED_NS, unattributed};

/// The culprits of a scheduler wait, or why there are none.
#[derive(Debug, Default)]
pub(crate) struct Culprits {
    /// Largest overlap first, at most eight.
    pub named: Vec<Culprit>,
    /// Set when the request waited and no culprit is named.
    pub no_culprit: Option<NoCulprit>,
}

/// The culprits of the request's scheduler wait `waits` (sorted, disjoint). A wait under
/// [`MIN_CULPRIT_WAIT_NS`] in all names none, and neither does a `light` analysis (a light
/// decode holds no other work to name; the search's cost grows with how busy the workers were).
/// `data_loss`: the recorder overwrote records of the window.
pub(crate) fn culprits(
    d: &Decoded,
    work: &RequestWork,
    waits: &[(u64, u64)],
    light: bool,
    data_loss: bool,
) -> Culprits {
    let wait: u64 = waits.iter().map(|(a, b)| b - a).sum();
    let found = if !light && wait >= MIN_CULPRIT_WAIT_NS {
        search(d, work, waits)
    } else {
        Found::default()
    };
    let no_culprit = (wait > 0 && found.named.is_empty()).then(|| {
        if light {
            NoCulprit::Light
        } else if wait < MIN_CULPRIT_WAIT_NS {
            NoCulprit::Short
        } else {
            let busy = unattributed(d, waits, d.light).workers_ns;
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
    Culprits {
        named: found.named,
        no_culprit,
    }
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

/// Other work the workers did while the request waited for one (`waits`: sorted, disjoint),
/// grouped per task (or, without task hooks, per local root span), largest overlap first. A
/// saturated window holds thousands of waits and of other requests' polls: each poll's
/// overlap with the waits is a binary search ([`overlap`]), not a pass over them.
fn search(d: &Decoded, work: &RequestWork, waits: &[(u64, u64)]) -> Found {
    let (Some(&(lo, _)), Some(&(_, hi))) = (waits.first(), waits.last()) else {
        return Found::default();
    };
    let mut tallies = Tallies {
        waits,
        lo,
        hi,
        by_whose: HashMap::new(),
    };
    for (ti, t) in d.threads.iter().enumerate() {
        if crate::capture::runtime::TASK_HOOKS {
            tallies.polls(d, work, ti, t);
        } else {
            tallies.entries(d, work, ti, t);
        }
    }
    let mut v: Vec<(Whose, Tally)> = tallies.by_whose.into_iter().collect();
    v.sort_by_key(|(_, t)| std::cmp::Reverse(t.overlap_ns));
    let (candidates, longest_ns) = (v.len(), v.first().map_or(0, |(_, t)| t.overlap_ns));
    v.retain(|(_, t)| t.overlap_ns >= MIN_CULPRIT_WAIT_NS);
    v.truncate(8);
    let named = v
        .into_iter()
        .map(|(whose, t)| {
            let task = match whose {
                Whose::Task(task) => task,
                Whose::Root(_) => 0,
            };
            Culprit {
                overlap_ns: t.overlap_ns,
                first_seen: t.first_seen,
                ..culprit_for(d, &d.threads[t.thread], task, t.root)
            }
        })
        .collect();
    Found {
        named,
        candidates,
        longest_ns,
    }
}

/// Each candidate's share of the waits `[lo, hi]` so far.
struct Tallies<'a> {
    waits: &'a [(u64, u64)],
    lo: u64,
    hi: u64,
    by_whose: HashMap<Whose, Tally>,
}

impl Tallies<'_> {
    /// With task hooks: the other tasks' polls on thread `t` (index `ti`) that overlap a wait,
    /// each named by the local root of the first span it entered.
    fn polls(&mut self, d: &Decoded, work: &RequestWork, ti: usize, t: &ThreadActivity) {
        for p in t
            .polls_overlapping(self.lo, self.hi)
            .iter()
            .filter(|p| !work.tasks.contains(&p.task))
        {
            let ov = overlap(self.waits, p.start, p.end);
            if ov == 0 {
                continue;
            }
            let entered = t.entries_starting_in(p.start, p.end);
            let root = entered
                .first()
                .map(|e| d.local_root(e.span))
                .filter(|r| !work.spans.contains(r));
            if root.is_none() && work.poll_of(t, p) == Some(PollOf::HostTask) {
                continue; // the task hosting the request's spans: its own work
            }
            self.add(Whose::Task(p.task), ti, root, ov, p.start.max(self.lo));
        }
    }

    /// Without task hooks (no polls): a root's entries on thread `t` (index `ti`) stand in for
    /// the work it held the worker with. Only outermost entries: one nested inside another
    /// adds no time. Those are disjoint, so their overlaps add up per root; the root is looked
    /// up (a walk up the span tree) only for entries that overlap a wait.
    fn entries(&mut self, d: &Decoded, work: &RequestWork, ti: usize, t: &ThreadActivity) {
        let mut outer_end = 0;
        for e in t.entries_overlapping(self.lo, self.hi) {
            if e.start < outer_end {
                continue;
            }
            outer_end = e.end;
            if work.spans.contains(&e.span) {
                continue;
            }
            let ov = overlap(self.waits, e.start, e.end);
            if ov == 0 {
                continue;
            }
            let root = d.local_root(e.span);
            if !work.spans.contains(&root) {
                self.add(Whose::Root(root), ti, Some(root), ov, e.start.max(self.lo));
            }
        }
    }

    /// Adds `ov` ns of `whose` on thread index `thread`, first seen at `seen`. Threads are
    /// walked one after the other, so a culprit's overlaps on one thread arrive together:
    /// `on_ns` sums the current thread's, and the thread with the most is kept.
    fn add(&mut self, whose: Whose, thread: usize, root: Option<u64>, ov: u64, seen: u64) {
        let t = self.by_whose.entry(whose).or_insert(Tally {
            thread,
            thread_ns: 0,
            on_thread: thread,
            on_ns: 0,
            root,
            overlap_ns: 0,
            first_seen: u64::MAX,
        });
        t.overlap_ns += ov;
        t.first_seen = t.first_seen.min(seen);
        if t.on_thread == thread {
            t.on_ns += ov;
        } else {
            (t.on_thread, t.on_ns) = (thread, ov);
        }
        if t.on_ns > t.thread_ns {
            (t.thread, t.thread_ns) = (t.on_thread, t.on_ns);
        }
    }
}

/// Whose work a culprit is: a task, or (without task hooks, where polls are not seen) the
/// local root span whose entries held the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Whose {
    Task(u64),
    Root(u64),
}

/// A culprit's share of the wait, before it is named: naming looks up its task and spans and
/// formats strings, worth doing only for the few reported (a saturated window holds thousands
/// of candidates).
struct Tally {
    /// Index of the thread on which it overlapped the wait most (a task moves between
    /// workers), and by how much, ns.
    thread: usize,
    thread_ns: u64,
    /// The thread being summed, and its sum so far, ns.
    on_thread: usize,
    on_ns: u64,
    root: Option<u64>,
    overlap_ns: u64,
    first_seen: u64,
}

/// The culprit `task` (0 without task hooks) is, named from its spawn and from the local root
/// span `root` it served (else the one it was spawned under); seen on thread `t`.
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

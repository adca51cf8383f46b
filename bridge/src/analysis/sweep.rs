//! The sweep: every instant of a span's window gets one cause.
//!
//! In: [`Marks`] — stretches of the window, each tagged with what covered it (the request's
//! own work on a thread, a scheduler wait by its source, one of its blocking-pool jobs), free to
//! overlap. Out: the window cut into segments, each with the highest-priority tag covering it,
//! or none (idle). The segments tile the window, so the parts they add up to sum to the span's
//! duration.

use super::late_wakes::Late;

/// What covered an instant of the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tag {
    /// The request's own work: one of its span entries or task polls on a thread (index into
    /// [`Decoded::threads`](super::decode::Decoded::threads)).
    OwnWork { thread: usize },
    /// The request was waiting for a worker.
    SchedWait(Wait),
    /// One of the request's `granular::spawn_blocking` jobs was queued or running.
    Pool,
}

impl Tag {
    /// Which tag an instant covered by several gets: own work, then scheduler wait, then the
    /// blocking pool. Among waits the order is only that of their descriptions (all are
    /// scheduler wait): measured, then "every worker was busy", which says more than "worker N
    /// was busy" where both rules count an instant.
    fn priority(self) -> u8 {
        match self {
            Tag::OwnWork { .. } => 5,
            Tag::SchedWait(Wait::Measured) => 4,
            Tag::SchedWait(Wait::Late(Late::AllBusy)) => 3,
            Tag::SchedWait(Wait::Late(Late::DriverUnpolled { .. })) => 2,
            Tag::Pool => 1,
        }
    }
}

/// Where a stretch of scheduler wait comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    /// tokio's wake-to-poll latency.
    Measured,
    /// A wake-up the runtime delayed ([`super::late_wakes`]).
    Late(Late),
}

impl Wait {
    /// A span event's words for it.
    pub(crate) fn describe(self) -> String {
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

/// A stretch `[start, end]` of the window, and what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Segment<T> {
    pub start: u64,
    pub end: u64,
    pub what: T,
}

/// Tagged stretches of a window `[lo, hi]`: each is clipped to the window as it is added, and
/// one that lies outside is dropped.
#[derive(Debug)]
pub(crate) struct Marks {
    lo: u64,
    hi: u64,
    marks: Vec<Segment<Tag>>,
}

impl Marks {
    pub(crate) fn new(lo: u64, hi: u64) -> Marks {
        Marks {
            lo,
            hi,
            marks: Vec::new(),
        }
    }

    /// Marks `[a, b]` (clipped to the window) as covered by `tag`.
    pub(crate) fn push(&mut self, a: u64, b: u64, tag: Tag) {
        let (a, b) = (a.max(self.lo), b.min(self.hi));
        if b > a {
            self.marks.push(Segment {
                start: a,
                end: b,
                what: tag,
            });
        }
    }

    /// The marks so far, in the order they were pushed.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Segment<Tag>> {
        self.marks.iter()
    }

    /// The window's elementary segments, each with the highest-priority tag covering it. Among
    /// tags of equal priority (own work on two threads at once) the mark that began last wins,
    /// or of those that began together the one pushed last.
    pub(crate) fn sweep(mut self) -> Vec<Segment<Option<Tag>>> {
        let marks = &mut self.marks;
        let mut cuts: Vec<u64> = marks
            .iter()
            .flat_map(|m| [m.start, m.end])
            .chain([self.lo, self.hi])
            .collect();
        cuts.sort_unstable();
        cuts.dedup();
        marks.sort_by_key(|m| m.start);
        let mut out = Vec::with_capacity(cuts.len());
        let mut active: Vec<usize> = Vec::new();
        let mut next = 0;
        for w in cuts.windows(2) {
            let (a, b) = (w[0], w[1]);
            while next < marks.len() && marks[next].start <= a {
                active.push(next);
                next += 1;
            }
            active.retain(|&i| marks[i].end > a);
            let tag = active
                .iter()
                .map(|&i| marks[i].what)
                .max_by_key(|t| t.priority());
            out.push(Segment {
                start: a,
                end: b,
                what: tag,
            });
        }
        out
    }
}

/// `segs` sorted by `key`, with each segment that starts where the one before it ends, and is
/// of the same `what`, joined to it.
pub(crate) fn joined<T: PartialEq, K: Ord>(
    mut segs: Vec<Segment<T>>,
    key: impl Fn(&Segment<T>) -> K,
) -> Vec<Segment<T>> {
    segs.sort_by_key(key);
    let mut out: Vec<Segment<T>> = Vec::new();
    for s in segs {
        match out.last_mut() {
            Some(l) if l.what == s.what && l.end == s.start => l.end = s.end,
            _ => out.push(s),
        }
    }
    out
}

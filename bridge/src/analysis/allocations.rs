//! A request's allocations, from the cumulative per-thread counters `granular::Alloc` keeps and
//! the recorder notes at the boundaries of span entries and polls.
//!
//! In: the request's own intervals, each on a thread, with that thread's counters at its start
//! and end where they were recorded ([`Counted`]). Out: the [`Allocations`] its work made, each
//! counted once however its span entries and polls nest.

use super::breakdown::Allocations;

/// A thread's cumulative allocation counters at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Counters {
    count: u64,
    bytes: u64,
}

impl Counters {
    fn new((count, bytes): (u64, u64)) -> Counters {
        Counters { count, bytes }
    }
}

/// One of the request's own intervals on a thread, with the thread's counters at its start and
/// end when they were recorded.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Counted {
    /// Index into [`Decoded::threads`](super::decode::Decoded::threads).
    thread: usize,
    start: u64,
    end: u64,
    at_start: Option<Counters>,
    at_end: Option<Counters>,
}

impl Counted {
    /// Its thread index, start and end.
    pub(crate) fn range(&self) -> (usize, u64, u64) {
        (self.thread, self.start, self.end)
    }

    /// An interval on thread index `thread`; `alloc` as the decoder gives it: cumulative
    /// (allocations, bytes) at the start and at the end.
    pub(crate) fn new(
        thread: usize,
        start: u64,
        end: u64,
        alloc: Option<((u64, u64), (u64, u64))>,
    ) -> Counted {
        Counted {
            thread,
            start,
            end,
            at_start: alloc.map(|(from, _)| Counters::new(from)),
            at_end: alloc.map(|(_, to)| Counters::new(to)),
        }
    }
}

/// The allocations in the request's own intervals. The counters are cumulative per thread, so
/// the intervals of one thread are merged first and each merged stretch counts its counters'
/// growth once: a child span's entry inside the root's entry, or an entry inside a poll of
/// the request's task, adds nothing the enclosing interval did not count already. A stretch
/// whose first interval began before the thread's counters were first recorded counts from
/// the earliest interval in it that has them.
pub(crate) fn allocations(mut iv: Vec<Counted>) -> Allocations {
    iv.sort_unstable_by_key(|x| (x.thread, x.start));
    let mut total = Allocations::default();
    let mut add = |stretch: Counted| {
        if let (Some(from), Some(to)) = (stretch.at_start, stretch.at_end) {
            total.count += to.count.saturating_sub(from.count);
            total.bytes += to.bytes.saturating_sub(from.bytes);
        }
    };
    // The stretch being merged: its thread, its end so far, the earliest counters at its
    // start and the latest at its end.
    let mut open: Option<Counted> = None;
    for i in iv {
        match &mut open {
            Some(o) if o.thread == i.thread && i.start <= o.end => {
                o.end = o.end.max(i.end);
                o.at_start = match (o.at_start, i.at_start) {
                    (Some(x), Some(y)) => Some(x.min(y)),
                    (x, y) => x.or(y),
                };
                o.at_end = o.at_end.max(i.at_end);
            }
            _ => {
                if let Some(o) = open.take() {
                    add(o);
                }
                open = Some(i);
            }
        }
    }
    if let Some(o) = open {
        add(o);
    }
    total
}

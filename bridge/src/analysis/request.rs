//! A request's work: which spans and tasks in a decoded snapshot are doing it.
//!
//! In: a [`Decoded`] snapshot and the span a question is about. Out: that span and its
//! descendants, the tasks spawned while one of them was current, and transitively the tasks
//! those spawned ([`RequestWork`]); and, for any poll, whether it was the request's
//! ([`RequestWork::poll_of`]). A breakdown, an artifact and a rebuilt trace all start here.

use super::decode::{Decoded, Poll, ThreadActivity};
use super::idmap::{IdMap, IdSet};

/// The spans and tasks doing a request's work.
#[derive(Debug, Default)]
pub(crate) struct RequestWork {
    pub spans: IdSet<u64>,
    pub tasks: IdSet<u64>,
}

/// Why a poll is (partly) the request's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PollOf {
    /// A poll of one of the request's tasks: all of its time is the request's.
    RequestTask,
    /// A poll of another task inside which a span of the request was entered (a server's
    /// connection task polling the request's handler in place): the request's time in it is
    /// that of its span entries, not the whole poll.
    HostTask,
}

impl RequestWork {
    /// `root` and its descendants, and the tasks spawned beneath them, transitively.
    pub(crate) fn collect(d: &Decoded, root: u64) -> RequestWork {
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

    /// Whether poll `p` on thread `t` did the request's work, and how; `None` when it did not.
    pub(crate) fn poll_of(&self, t: &ThreadActivity, p: &Poll) -> Option<PollOf> {
        if self.tasks.contains(&p.task) {
            return Some(PollOf::RequestTask);
        }
        t.entries_starting_in(p.start, p.end)
            .iter()
            .any(|e| self.spans.contains(&e.span))
            .then_some(PollOf::HostTask)
    }
}

fn below(map: &IdMap<u64, Vec<u64>>, key: u64) -> &[u64] {
    map.get(&key).map_or(&[], Vec::as_slice)
}

//! The allocation counters a poll or span boundary carries ([`PollStart`](super::tasks::PollStart),
//! [`PollEnd`](super::tasks::PollEnd), [`SpanEnter`](super::spans::SpanEnter),
//! [`SpanExit`](super::spans::SpanExit)).
//!
//! ```text
//!  header:   kind | value (55 bits) | COUNTERS_FOLLOW (bit 55)
//!  payload:  w0 = bytes allocated   | w1 = allocations        (only with COUNTERS_FOLLOW)
//! ```
//! The thread's cumulative counters ride on a boundary only when they changed since the thread
//! last wrote them (see `capture/alloc.rs`): the reader carries the last values forward. A
//! boundary's value (a task id, a span key, a latency) stays below bit 55.

use super::{Kind, Record, Ring, payloads};

/// Set in a boundary's argument when a payload with the counters follows.
const COUNTERS_FOLLOW: u64 = 1 << 55;

/// A thread's cumulative allocation counters (see `granular::Alloc`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    /// Allocations made by the thread so far.
    pub allocations: u64,
    /// Bytes allocated by the thread so far.
    pub bytes: u64,
}

/// Writes a boundary header of `kind` carrying `value`, and its counters when given. Always
/// inlined: a poll or span boundary is the request path's most frequent write, and as a call
/// of its own (two pushes, so not inlined by default) it cost every boundary ~4 ns.
#[inline(always)]
pub(super) fn encode(kind: Kind, ts: u64, value: u64, counters: Option<Counters>, ring: &Ring) {
    match counters {
        Some(c) => {
            ring.push(Record::header(kind, ts, value | COUNTERS_FOLLOW));
            ring.push(Record::payload(c.bytes, c.allocations));
        }
        None => ring.push(Record::header(kind, ts, value)),
    }
}

/// A boundary's value and counters from its argument and the records after it, with the
/// number of payloads taken; `None` when announced counters are missing or torn.
#[inline]
pub(super) fn decode(arg: u64, rest: &[Record]) -> Option<(u64, Option<Counters>, usize)> {
    let value = arg & !COUNTERS_FOLLOW;
    if arg & COUNTERS_FOLLOW == 0 {
        return Some((value, None, 0));
    }
    let p = payloads(rest, 1)?[0];
    let counters = Counters {
        allocations: p.arg(),
        bytes: p.w0,
    };
    Some((value, Some(counters), 1))
}

//! Finding records by time. One writer stamps a ring's headers in order, so a binary search
//! over the headers finds where the records stamped from a time on begin, in the ring
//! ([`Ring::seq_for_time`]) or in a copy of it ([`RingCopy::seq_for_time`]). A window that
//! begins before what either holds is read from one record earlier, so that the read reports
//! it incomplete ([`Ring::window_from`]). How far back in time a ring reaches at its current
//! rate ([`Ring::reach`]) comes from the stamps of its newest records.

#[cfg(loom)]
use loom::sync::atomic::Ordering;
#[cfg(not(loom))]
use std::sync::atomic::Ordering;

use super::{Ring, RingCopy};
use crate::recorder::record::{Kind, Record};

/// How many records a search for the next header looks at: payload runs are short.
const HEADER_SCAN: u64 = 64;

/// Whether a record starts an event (not a payload, not a never-written slot).
fn is_header(r: Record) -> bool {
    let kind = r.kind_byte();
    kind != 0 && kind != Kind::Payload as u8
}

/// The first record number in `[lo, hi)` whose header is stamped at or after `ts` (`hi` if
/// none): a binary search over headers stamped in order, `header_from(seq, end)` giving the
/// first header in `[seq, end)` and its time.
fn first_stamped_at(
    mut lo: u64,
    mut hi: u64,
    ts: u64,
    header_from: impl Fn(u64, u64) -> Option<(u64, u64)>,
) -> u64 {
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match header_from(mid, hi) {
            Some((seq, t)) if t < ts => lo = seq + 1,
            _ => hi = mid,
        }
    }
    lo
}

impl Ring {
    /// The first header at or after `seq` (and before `end`): its sequence number and time.
    fn header_from(&self, seq: u64, end: u64) -> Option<(u64, u64)> {
        (seq..end.min(seq + HEADER_SCAN)).find_map(|seq| {
            let slot = &self.slots[(seq & self.mask) as usize];
            let w1 = slot.w1.load(Ordering::Relaxed);
            is_header(Record { w0: 0, w1 }).then(|| (seq, slot.w0.load(Ordering::Relaxed)))
        })
    }

    /// A sequence number from which to snapshot so that every record stamped at or after `ts`
    /// (clock ticks) is included: a binary search over the headers' timestamps, which one
    /// writer stamps in order. A hint only: racing with the writer can make it start a little
    /// early or at the oldest record; [`snapshot`](Self::snapshot) still checks what it copies.
    pub fn seq_for_time(&self, ts: u64) -> u64 {
        let cap = self.slots.len() as u64;
        let end = self.published.load(Ordering::Acquire);
        first_stamped_at(end.saturating_sub(cap), end, ts, |seq, end| {
            self.header_from(seq, end)
        })
    }

    /// Where a read of the records stamped from `ts` on begins, given `copy`, an earlier read
    /// of this ring that may hold records the ring has overwritten since: the first such
    /// record the copy or the ring holds. When nothing held is stamped before `ts` and the
    /// record before the oldest one held was overwritten, that record, and others before it,
    /// may have been stamped from `ts` on: the read then begins one record earlier, at a
    /// record it cannot return, so that [`RingCopy::lost`] says the window is incomplete (how
    /// many of the overwritten records were in it is not known; a window that begins exactly
    /// at the oldest record held is reported incomplete too). Begun at the oldest record, the
    /// read would report nothing lost, and a trace whose first spans the ring had overwritten
    /// would be exported without `granular.data_loss`, or counted lost for another reason.
    pub fn window_from(&self, ts: u64, copy: &RingCopy) -> u64 {
        let in_ring = self.seq_for_time(ts);
        let from = copy
            .seq_for_time(ts)
            .map_or(in_ring, |kept| kept.min(in_ring));
        let oldest = self.written().saturating_sub(self.slots.len() as u64);
        // The copy extends the ring backwards only when it reaches the ring's records.
        let held_from = if copy.end_seq() >= oldest {
            copy.first_seq.min(oldest)
        } else {
            oldest
        };
        if from > 0 && from == held_from {
            from - 1
        } else {
            from
        }
    }

    /// How many clock ticks of history this ring holds at its current rate, as of `now`:
    /// extrapolated from how long its newest sixty-fourth (or, while less is written,
    /// everything) took to write, so a ring that just got busy reports its new, short reach
    /// within milliseconds (16 MiB at 3.5 M records/s: 5 ms; with an eighth it took 40 ms,
    /// long enough for the first batch after a load rise to be analyzed in full, and slowly).
    /// `None` while it is empty. Approximate: the writer may be overwriting meanwhile.
    pub fn reach(&self, now: u64) -> Option<u64> {
        let cap = self.slots.len() as u64;
        let end = self.published.load(Ordering::Acquire);
        let probe = end.min((cap / 64).max(1));
        let from = end - probe;
        let (seq, ts) = self.header_from(from, end)?;
        let written = (end - seq).max(1);
        Some((u128::from(now.saturating_sub(ts)) * u128::from(cap) / u128::from(written)) as u64)
    }
}

impl RingCopy {
    /// [`Ring::seq_for_time`] within the copy (it may hold records the ring has overwritten
    /// since): its first record when all are stamped at or after `ts`; `None` when empty.
    pub fn seq_for_time(&self, ts: u64) -> Option<u64> {
        let recs = self.records();
        let header = |seq: u64, end: u64| {
            let (a, b) = (
                (seq - self.first_seq) as usize,
                (end - self.first_seq) as usize,
            );
            recs[a..b.min(a + HEADER_SCAN as usize)]
                .iter()
                .position(|r| is_header(*r))
                .map(|i| (seq + i as u64, recs[a + i].ts()))
        };
        let (first, end) = (self.first_seq, self.end_seq());
        (first < end).then(|| first_stamped_at(first, end, ts, header))
    }
}

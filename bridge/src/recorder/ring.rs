//! A single-writer, many-reader ring of [`Record`]s that overwrites its oldest records.
//!
//! The owning thread writes; any thread may copy it, or extend an earlier copy, with
//! [`Ring::refresh`], at any time without stopping it. Publication protocol (a seqlock over a ring):
//!
//! ```text
//! writer, record number h:  claimed := h+1 ; fence(Release) ; slot[h % cap] := rec ; published := h+1 (Release)
//! reader:                   p := published (Acquire) ; copy slots [p-cap, p) ; fence(Acquire) ; c := claimed
//!                           keep only records numbered >= c - cap   (older ones may have been torn)
//! ```
//! If the reader's copy saw any word of a write that started after the writer's fence, the
//! fences synchronise and the reader's `claimed` load sees that claim, so the torn record falls
//! below `c - cap` and is dropped. Slots are pairs of relaxed atomics, so a race is a stale
//! value, never undefined behaviour. On x86-64 the whole write is two plain stores, a compiler
//! fence and two more plain stores.
//!
//! This file is also compiled by `bridge/loom/` under `--cfg loom` to model-check the protocol.

// `pub` (not `pub(crate)`): the loom crate compiles this file as a module of its own and its
// models, in another crate, use these items.
#![allow(unreachable_pub)]

#[cfg(loom)]
use loom::sync::atomic::{AtomicU64, Ordering, fence};
#[cfg(not(loom))]
use std::sync::atomic::{AtomicU64, Ordering, fence};

use super::record::{Kind, Record};

#[derive(Debug)]
struct Slot {
    w0: AtomicU64,
    w1: AtomicU64,
}

/// `cap` zeroed slots. Outside loom they come from the allocator already zeroed (`calloc`,
/// fresh pages for large rings), so a ring's memory becomes resident only as it fills.
#[cfg(not(loom))]
fn zeroed_slots(cap: usize) -> Box<[Slot]> {
    let Ok(layout) = std::alloc::Layout::array::<Slot>(cap) else {
        return Box::new([]);
    };
    // SAFETY: `layout` has non-zero size (cap >= 2); a Slot is two AtomicU64, for which all-zero
    // bytes are a valid value (0); the Box takes ownership of exactly `cap` slots allocated with
    // the layout `Box<[Slot]>` deallocates with.
    unsafe {
        let ptr = std::alloc::alloc_zeroed(layout) as *mut Slot;
        if ptr.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        Box::from_raw(std::ptr::slice_from_raw_parts_mut(ptr, cap))
    }
}

#[cfg(loom)]
fn zeroed_slots(cap: usize) -> Box<[Slot]> {
    (0..cap)
        .map(|_| Slot {
            w0: AtomicU64::new(0),
            w1: AtomicU64::new(0),
        })
        .collect()
}

/// How far ahead of its write position (in records) the writer prefetches: four cache lines.
const PREFETCH_AHEAD: u64 = 16;

/// Asks for `slot`'s cache line ahead of its write (a hint: no effect on memory or order).
#[inline(always)]
fn prefetch(slot: &Slot) {
    #[cfg(all(target_arch = "x86_64", not(loom)))]
    // SAFETY: prefetching is a hint that never faults and has no observable effect; `slot` is
    // a valid reference anyway.
    unsafe {
        use core::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>((slot as *const Slot).cast::<i8>());
    }
    #[cfg(not(all(target_arch = "x86_64", not(loom))))]
    let _ = slot;
}

/// How many records a search for the next header looks at: payload runs are short.
const HEADER_SCAN: u64 = 64;

/// Whether a kind byte starts an event (not a payload, not a never-written slot).
fn is_header(kind: u8) -> bool {
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

/// How much history a [`RingCopy`] keeps at most, in rings: with the slack its buffer keeps
/// for growth (half a ring), at most two and a half times the ring's memory. Trimming the
/// oldest records there, rather than discarding a copy that grew past a bound, keeps the
/// recent records the next read still needs (the analyzer had discarded its whole copy once
/// the copies outgrew twice the rings, and the next batch then lacked the first spans of
/// traces the ring had overwritten).
pub(crate) const COPY_REACH: u64 = 2;

/// See the module documentation.
#[derive(Debug)]
pub struct Ring {
    slots: Box<[Slot]>,
    mask: u64,
    /// Records whose write has begun.
    claimed: AtomicU64,
    /// Records fully written.
    published: AtomicU64,
}

/// A reader's copy of a ring's records, in write order. Kept between reads and brought up to
/// date with [`Ring::refresh`], it copies only what was written since: a reader that reads a
/// sliding window copies each record once, not once per read.
#[derive(Debug, Default, Clone)]
pub struct RingCopy {
    /// `buf[start..]` is the copy; the records before `start` were dropped from its front and
    /// are compacted away when they are half the buffer.
    buf: Vec<Record>,
    start: usize,
    /// Number of the copy's first record since the ring was created.
    first_seq: u64,
    /// Records the last read asked for that were no longer (or not reliably) in the ring.
    lost: u64,
}

impl RingCopy {
    /// The records, oldest first.
    pub fn records(&self) -> &[Record] {
        &self.buf[self.start..]
    }

    /// Number of the first record since the ring was created.
    pub fn first_seq(&self) -> u64 {
        self.first_seq
    }

    /// Records the last read asked for (from its `from_seq`) that it could not return.
    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// Memory the copy holds, in records.
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

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
                .position(|r| is_header(r.kind_byte()))
                .map(|i| (seq + i as u64, recs[a + i].ts()))
        };
        let (first, end) = (self.first_seq, self.end_seq());
        (first < end).then(|| first_stamped_at(first, end, ts, header))
    }

    fn end_seq(&self) -> u64 {
        self.first_seq + (self.buf.len() - self.start) as u64
    }

    /// Drops the records numbered below `seq` from the front (all of them, and the copy then
    /// continues at `seq`, when `seq` is past its end).
    fn drop_before(&mut self, seq: u64) {
        if seq >= self.end_seq() {
            self.clear_at(seq.max(self.first_seq));
            return;
        }
        let n = seq.saturating_sub(self.first_seq);
        self.start += n as usize;
        self.first_seq += n;
        if self.start > self.buf.len() / 2 {
            self.compact();
        }
    }

    /// Moves the live records to the front of the buffer, discarding the dropped ones.
    fn compact(&mut self) {
        self.buf.drain(..self.start);
        self.start = 0;
    }

    /// Room for `n` more records. When the tail is full, the dropped front is compacted away
    /// (a move of the live records only, where growing would reallocate and copy the dropped
    /// ones too), and the buffer then keeps room for as many records again as are live, up to
    /// `slack`: a sliding window compacts once per window's worth of records appended, so
    /// each record moves about once. (An exact fit had compacted, moved the whole window, at
    /// every read: every 10 ms while a batch waits.) The copy's memory follows the window: its
    /// records, plus `slack` at most.
    fn make_room(&mut self, n: usize, slack: usize) {
        if self.buf.capacity() - self.buf.len() >= n {
            return;
        }
        self.compact();
        let live = self.buf.len();
        self.buf.reserve_exact(n + live.min(slack));
    }

    fn clear_at(&mut self, seq: u64) {
        self.buf.clear();
        self.start = 0;
        self.first_seq = seq;
    }
}

impl Ring {
    /// A ring of `capacity` records, rounded up to a power of two (at least 2).
    pub fn new(capacity: usize) -> Ring {
        let cap = capacity.max(2).next_power_of_two();
        Ring {
            slots: zeroed_slots(cap),
            mask: cap as u64 - 1,
            claimed: AtomicU64::new(0),
            published: AtomicU64::new(0),
        }
    }

    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Records written so far.
    pub fn written(&self) -> u64 {
        self.published.load(Ordering::Acquire)
    }

    /// Records overwritten so far (the ring no longer holds them).
    pub fn overwritten(&self) -> u64 {
        self.written().saturating_sub(self.slots.len() as u64)
    }

    /// Appends a record.
    ///
    /// # Contract
    /// Only one thread may write to a ring at a time (the recorder hands each ring to one
    /// thread). Never blocks, never allocates.
    #[inline]
    pub fn push(&self, rec: Record) {
        let h = self.published.load(Ordering::Relaxed);
        let slot = &self.slots[(h & self.mask) as usize];
        // A large ring's next lines are cold (last written one lap ago): fetching them a few
        // records early keeps the writer from stalling on them. Never read the slot being
        // overwritten here: that load would wait for memory on every fourth record.
        prefetch(&self.slots[((h + PREFETCH_AHEAD) & self.mask) as usize]);
        self.claimed.store(h + 1, Ordering::Relaxed);
        fence(Ordering::Release);
        slot.w0.store(rec.w0, Ordering::Relaxed);
        slot.w1.store(rec.w1, Ordering::Relaxed);
        self.published.store(h + 1, Ordering::Release);
    }

    /// The first header at or after `seq` (and before `end`): its sequence number and time.
    fn header_from(&self, seq: u64, end: u64) -> Option<(u64, u64)> {
        (seq..end.min(seq + HEADER_SCAN)).find_map(|seq| {
            let slot = &self.slots[(seq & self.mask) as usize];
            is_header((slot.w1.load(Ordering::Relaxed) >> 56) as u8)
                .then(|| (seq, slot.w0.load(Ordering::Relaxed)))
        })
    }

    /// A sequence number from which to snapshot so that every record stamped at or after `ts`
    /// (clock ticks) is included: a binary search over the headers' timestamps, which one
    /// writer stamps in order. A hint only: racing with the writer can make it start a little
    /// early or at the oldest record; [`refresh`](Self::refresh) still checks what it copies.
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

    /// Copies the records currently held, oldest first, without stopping the writer.
    /// `from_seq` skips records numbered below it. For the unit tests and the loom models: the
    /// analyzer extends a kept copy with [`refresh`](Self::refresh).
    #[cfg(any(test, loom))]
    pub fn snapshot(&self, from_seq: u64) -> RingCopy {
        let mut copy = RingCopy::default();
        self.refresh(from_seq, &mut copy);
        copy
    }

    /// Brings `copy` (an earlier read of this ring, or empty) up to date without stopping the
    /// writer: drops its records numbered below `from_seq` and appends those written since.
    /// It keeps records the ring has overwritten meanwhile, up to `COPY_REACH` (two) rings' worth:
    /// beyond that its oldest records are dropped (and counted in [`RingCopy::lost`]), so the
    /// copy's buffer stays within two and a half times the ring's size. A copy that cannot be
    /// extended (the ring has overwritten records it lacks, or the ring still holds older
    /// records asked for) is read afresh.
    pub fn refresh(&self, from_seq: u64, copy: &mut RingCopy) {
        let cap = self.slots.len() as u64;
        let end = self.published.load(Ordering::Acquire);
        let oldest = end.saturating_sub(cap);
        let from = from_seq.min(end);
        let no_gap = (oldest..=end).contains(&copy.end_seq());
        let starts_early_enough = copy.first_seq <= from.max(oldest);
        let kept_from = from.max(end.saturating_sub(cap * COPY_REACH));
        if no_gap && starts_early_enough {
            copy.drop_before(kept_from);
        } else {
            copy.clear_at(kept_from.max(oldest));
        }
        let appended_from = copy.end_seq();
        // Slack of half the ring: with at most `COPY_REACH` rings of history, the buffer
        // holds at most two and a half rings.
        copy.make_room((end - appended_from) as usize, (cap / 2) as usize);
        // One `extend` over a range of known length: no capacity check per record.
        copy.buf.extend((appended_from..end).map(|seq| {
            let slot = &self.slots[(seq & self.mask) as usize];
            Record {
                w0: slot.w0.load(Ordering::Relaxed),
                w1: slot.w1.load(Ordering::Relaxed),
            }
        }));
        fence(Ordering::Acquire);
        // Records copied before are intact copies; of those copied now, the ones numbered
        // below `claimed - cap` may have been torn by the writer lapping the reader. Dropping
        // everything below that number keeps the copy contiguous.
        let intact_from = self.claimed.load(Ordering::Relaxed).saturating_sub(cap);
        if intact_from > appended_from {
            copy.drop_before(intact_from);
        }
        copy.lost = copy.first_seq.saturating_sub(from_seq);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::recorder::record::Kind;

    fn rec(i: u64) -> Record {
        Record::header(Kind::PollStart, i, i * 7)
    }

    #[test]
    fn reach_extrapolates_the_recent_rate() {
        let ring = Ring::new(64);
        assert_eq!(ring.reach(100), None);
        // One record every 10 ticks: the ring holds 640 ticks at this rate.
        for i in 0..32 {
            ring.push(Record::header(Kind::PollStart, 10 * i, 0));
        }
        assert_eq!(ring.reach(320), Some(640));
        // Ten times faster from now on: the reach follows the new rate once a sixty-fourth
        // is written at it, wrapped or not.
        for i in 0..100 {
            ring.push(Record::header(Kind::PollStart, 320 + i, 0));
        }
        assert_eq!(ring.reach(420), Some(64));
    }

    #[test]
    fn a_window_older_than_what_is_held_is_reported_incomplete() {
        // Timestamps are record numbers: the ring holds 13..21, records 0..13 are overwritten.
        let ring = Ring::new(8);
        for i in 0..21 {
            ring.push(rec(i));
        }
        let empty = RingCopy::default();
        assert_eq!(ring.window_from(15, &empty), 15, "held: complete");
        let from = ring.window_from(5, &empty);
        assert_eq!(
            from, 12,
            "5..13 were overwritten: one record before the oldest"
        );
        assert_eq!(
            ring.snapshot(from).lost(),
            1,
            "so the copy says the window lost records"
        );
        assert_eq!(ring.snapshot(from).first_seq(), 13);

        // A copy taken earlier still holds 10..13: it covers a window from 11, not from 5.
        let ring = Ring::new(8);
        let mut copy = RingCopy::default();
        for i in 0..18 {
            ring.push(rec(i));
        }
        ring.refresh(10, &mut copy);
        for i in 18..21 {
            ring.push(rec(i));
        }
        assert_eq!(ring.window_from(11, &copy), 11);
        let from = ring.window_from(5, &copy);
        assert_eq!(from, 9);
        ring.refresh(from, &mut copy);
        assert_eq!((copy.first_seq(), copy.lost()), (10, 1));

        // A ring that never wrapped holds everything since it began.
        let ring = Ring::new(64);
        for i in 10..20 {
            ring.push(rec(i));
        }
        assert_eq!(ring.window_from(5, &RingCopy::default()), 0);
    }

    #[test]
    fn keeps_everything_until_full() {
        let ring = Ring::new(8);
        for i in 0..5 {
            ring.push(rec(i));
        }
        let snap = ring.snapshot(0);
        assert_eq!(snap.records(), (0..5).map(rec).collect::<Vec<_>>());
        assert_eq!(snap.lost(), 0);
    }

    #[test]
    fn wraparound_overwrites_oldest_and_counts_the_loss() {
        let ring = Ring::new(8);
        for i in 0..21 {
            ring.push(rec(i));
        }
        let snap = ring.snapshot(0);
        assert_eq!(snap.records(), (13..21).map(rec).collect::<Vec<_>>());
        assert_eq!(snap.first_seq(), 13);
        assert_eq!(snap.lost(), 13);
        assert_eq!(ring.overwritten(), 13);
        // Timestamps are the record numbers here: from time 17, records 17..21.
        let from = ring.seq_for_time(17);
        assert_eq!(
            ring.snapshot(from).records(),
            (17..21).map(rec).collect::<Vec<_>>()
        );
        assert_eq!(
            ring.seq_for_time(0),
            13,
            "older than the ring: its oldest record"
        );
    }

    #[test]
    fn incremental_snapshot_reads_only_new_records() {
        let ring = Ring::new(8);
        for i in 0..6 {
            ring.push(rec(i));
        }
        let first = ring.snapshot(0);
        for i in 6..9 {
            ring.push(rec(i));
        }
        let next = ring.snapshot(first.first_seq() + first.records().len() as u64);
        assert_eq!(next.records(), (6..9).map(rec).collect::<Vec<_>>());
        assert_eq!(next.lost(), 0);
    }

    #[test]
    fn a_sliding_window_moves_each_record_about_once() {
        let ring = Ring::new(1024);
        let mut copy = RingCopy::default();
        let (window, step, reads) = (256u64, 16u64, 200u64);
        let mut moved = 0;
        for read in 0..reads {
            for i in read * step..(read + 1) * step {
                ring.push(rec(i));
            }
            let end = (read + 1) * step;
            ring.refresh(end.saturating_sub(window), &mut copy);
            // Records were dropped from the front at this read, yet none are left before
            // `start`: the live ones were moved to the front.
            if end > window && copy.start == 0 {
                moved += window;
            }
            assert_eq!(copy.first_seq(), end.saturating_sub(window));
            assert_eq!(copy.records().len() as u64, end.min(window));
        }
        assert!(
            moved <= 2 * reads * step,
            "{moved} records moved by compaction for {} appended",
            reads * step
        );
        assert!(
            copy.capacity() <= 3 * window as usize,
            "{}",
            copy.capacity()
        );

        // A window as long as the ring: the slack stops at half the ring.
        let mut copy = RingCopy::default();
        for read in reads..reads + 200 {
            for i in read * step..(read + 1) * step {
                ring.push(rec(i));
            }
            ring.refresh(((read + 1) * step).saturating_sub(1024), &mut copy);
        }
        assert_eq!(copy.records().len(), 1024);
        assert!(copy.capacity() <= 1024 + 512 + 16, "{}", copy.capacity());
    }

    #[test]
    fn a_copy_keeps_at_most_two_rings_and_counts_the_rest_lost() {
        let ring = Ring::new(1024);
        let mut copy = RingCopy::default();
        // A reader that keeps asking for everything since record 0, every 100 records.
        for read in 0..40u64 {
            for i in read * 100..(read + 1) * 100 {
                ring.push(rec(i));
            }
            ring.refresh(0, &mut copy);
            let end = (read + 1) * 100;
            let kept = end.min(2048);
            assert_eq!(copy.records().len() as u64, kept, "read {read}");
            assert_eq!(copy.first_seq(), end - kept);
            assert_eq!(copy.lost(), end - kept, "what it asked for and lacks");
            assert_eq!(copy.records()[0], rec(end - kept), "the newest are kept");
            assert!(copy.capacity() <= 2560, "{}", copy.capacity());
        }
    }

    #[test]
    fn refresh_extends_a_copy_and_drops_what_the_window_left() {
        let mut copy = RingCopy::default();
        let one = Ring::new(8);
        one.push(rec(0));
        one.refresh(1, &mut copy);
        assert_eq!(
            (copy.records().len(), copy.first_seq()),
            (0, 1),
            "nothing from 1 on yet"
        );
        one.refresh(0, &mut copy);
        assert_eq!(copy.records(), [rec(0)]);

        let ring = Ring::new(8);
        copy = RingCopy::default();
        for i in 0..5 {
            ring.push(rec(i));
        }
        ring.refresh(0, &mut copy);
        assert_eq!(copy.records(), (0..5).map(rec).collect::<Vec<_>>());
        for i in 5..10 {
            ring.push(rec(i));
        }
        // Records 0 and 1 were overwritten, but the copy holds them: asking from 3 drops 0..3.
        ring.refresh(3, &mut copy);
        assert_eq!(copy.records(), (3..10).map(rec).collect::<Vec<_>>());
        assert_eq!((copy.first_seq(), copy.lost()), (3, 0));
        // Asking for older records than the copy holds reads afresh what the ring still has.
        ring.refresh(0, &mut copy);
        assert_eq!(copy.records(), (2..10).map(rec).collect::<Vec<_>>());
        assert_eq!(copy.lost(), 2);
        // Records the ring overwrote since the copy took them stay in the copy.
        for i in 10..14 {
            ring.push(rec(i));
        }
        ring.refresh(3, &mut copy);
        assert_eq!(copy.records(), (3..14).map(rec).collect::<Vec<_>>());
        assert_eq!(copy.lost(), 0);
        // Timestamps are record numbers: time 4 is found in the copy, though the ring lost it.
        assert_eq!(copy.seq_for_time(4), Some(4));
        assert_eq!(ring.seq_for_time(4), 6);
        assert_eq!(
            copy.seq_for_time(2),
            Some(3),
            "every record of the copy is in the window"
        );
        assert_eq!(RingCopy::default().seq_for_time(2), None);
        // A copy the ring has lapped is read afresh too.
        for i in 14..34 {
            ring.push(rec(i));
        }
        ring.refresh(12, &mut copy);
        assert_eq!(copy.records(), (26..34).map(rec).collect::<Vec<_>>());
        assert_eq!(copy.lost(), 14);
    }

    #[test]
    fn concurrent_reader_never_sees_a_torn_record() {
        let ring = std::sync::Arc::new(Ring::new(64));
        let writer = {
            let ring = ring.clone();
            std::thread::spawn(move || {
                for i in 0..2_000_000u64 {
                    ring.push(rec(i));
                }
            })
        };
        let mut reads = 0;
        while !writer.is_finished() || reads == 0 {
            let snap = ring.snapshot(0);
            for (n, r) in snap.records().iter().enumerate() {
                assert_eq!(r.arg(), (r.ts() * 7) & crate::recorder::record::ARG_MASK);
                assert_eq!(r.ts(), snap.first_seq() + n as u64, "records out of order");
            }
            reads += 1;
        }
        writer.join().unwrap();
    }
}

//! A single-writer, many-reader ring of [`Record`]s that overwrites its oldest records.
//!
//! The owning thread writes; any thread may take a [`Ring::snapshot`] at any time without
//! stopping it. Publication protocol (a seqlock over a ring):
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

#[cfg(loom)]
use loom::sync::atomic::{AtomicU64, Ordering, fence};
#[cfg(not(loom))]
use std::sync::atomic::{AtomicU64, Ordering, fence};

use super::record::{Kind, Record};

/// Per-kind counts of overwritten records: statistics only, so plain std atomics even under
/// loom (they take no part in the publication protocol).
type Counter = std::sync::atomic::AtomicU64;

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

/// See the module documentation.
#[derive(Debug)]
pub struct Ring {
    slots: Box<[Slot]>,
    mask: u64,
    /// Records whose write has begun.
    claimed: AtomicU64,
    /// Records fully written.
    published: AtomicU64,
    /// Records overwritten before any snapshot copied them... or after: per kind, every record
    /// the ring no longer holds. Written only by the writer.
    overwritten: [Counter; Kind::COUNT],
}

/// What a snapshot read: records in write order, and how many were lost before them.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    pub records: Vec<Record>,
    /// Number of the first record in `records` since the ring was created.
    pub first_seq: u64,
    /// Records written since the ring was created but no longer (or not reliably) present.
    pub lost: u64,
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
            overwritten: std::array::from_fn(|_| Counter::new(0)),
        }
    }

    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Records written so far.
    pub fn written(&self) -> u64 {
        self.published.load(Ordering::Acquire)
    }

    /// Records overwritten so far, per kind discriminant.
    pub fn overwritten(&self) -> [u64; Kind::COUNT] {
        std::array::from_fn(|k| self.overwritten[k].load(std::sync::atomic::Ordering::Relaxed))
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
        if h > self.mask {
            // The slot's line is about to be written anyway: reading its old kind is nearly free.
            let old = (slot.w1.load(Ordering::Relaxed) >> 56) as usize;
            if let Some(c) = self.overwritten.get(old) {
                c.store(
                    c.load(std::sync::atomic::Ordering::Relaxed) + 1,
                    std::sync::atomic::Ordering::Relaxed,
                );
            }
        }
        self.claimed.store(h + 1, Ordering::Relaxed);
        fence(Ordering::Release);
        slot.w0.store(rec.w0, Ordering::Relaxed);
        slot.w1.store(rec.w1, Ordering::Relaxed);
        self.published.store(h + 1, Ordering::Release);
    }

    /// The first header at or after `seq` (and before `end`): its sequence number and time.
    /// Payload runs are short, so at most 64 records are looked at.
    fn header_from(&self, seq: u64, end: u64) -> Option<(u64, u64)> {
        (seq..end.min(seq + 64)).find_map(|seq| {
            let slot = &self.slots[(seq & self.mask) as usize];
            let kind = (slot.w1.load(Ordering::Relaxed) >> 56) as u8;
            (kind != 0 && kind != Kind::Payload as u8)
                .then(|| (seq, slot.w0.load(Ordering::Relaxed)))
        })
    }

    /// A sequence number from which to snapshot so that every record stamped at or after `ts`
    /// (clock ticks) is included: a binary search over the headers' timestamps, which one
    /// writer stamps in order. A hint only: racing with the writer can make it start a little
    /// early or at the oldest record; [`snapshot`](Self::snapshot) still checks what it copies.
    pub fn seq_for_time(&self, ts: u64) -> u64 {
        let cap = self.slots.len() as u64;
        let end = self.published.load(Ordering::Acquire);
        let (mut lo, mut hi) = (end.saturating_sub(cap), end);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.header_from(mid, hi) {
                Some((seq, t)) if t < ts => lo = seq + 1,
                _ => hi = mid,
            }
        }
        lo
    }

    /// How many clock ticks of history this ring holds at its current rate, as of `now`:
    /// extrapolated from how long its newest eighth (or, while less is written, everything)
    /// took to write, so a ring that just got busy reports its new, short reach. `None` while
    /// it is empty. Approximate: the writer may be overwriting meanwhile.
    pub fn reach(&self, now: u64) -> Option<u64> {
        let cap = self.slots.len() as u64;
        let end = self.published.load(Ordering::Acquire);
        let probe = end.min((cap / 8).max(1));
        let from = end - probe;
        let (seq, ts) = self.header_from(from, end)?;
        let written = (end - seq).max(1);
        Some((u128::from(now.saturating_sub(ts)) * u128::from(cap) / u128::from(written)) as u64)
    }

    /// Copies the records currently held, oldest first, without stopping the writer.
    /// `from_seq` skips records numbered below it (to read only what is new since a previous
    /// snapshot).
    pub fn snapshot(&self, from_seq: u64) -> Snapshot {
        self.snapshot_into(from_seq, Vec::new())
    }

    /// [`Self::snapshot`] into `records` (cleared first): a reader that keeps the buffer
    /// from one snapshot to the next does not fault in fresh pages for every copy.
    pub fn snapshot_into(&self, from_seq: u64, mut records: Vec<Record>) -> Snapshot {
        let cap = self.slots.len() as u64;
        let end = self.published.load(Ordering::Acquire);
        let start = end.saturating_sub(cap).max(from_seq.min(end));
        records.clear();
        records.reserve((end - start) as usize);
        for seq in start..end {
            let slot = &self.slots[(seq & self.mask) as usize];
            records.push(Record {
                w0: slot.w0.load(Ordering::Relaxed),
                w1: slot.w1.load(Ordering::Relaxed),
            });
        }
        fence(Ordering::Acquire);
        let claimed = self.claimed.load(Ordering::Relaxed);
        let intact_from = claimed.saturating_sub(cap);
        let skip = intact_from.saturating_sub(start).min(records.len() as u64);
        records.drain(..skip as usize);
        let first_seq = start + skip;
        Snapshot {
            records,
            first_seq,
            lost: first_seq.saturating_sub(from_seq),
        }
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
        // Ten times faster from now on: the reach follows the new rate once an eighth is
        // written at it, wrapped or not.
        for i in 0..100 {
            ring.push(Record::header(Kind::PollStart, 320 + i, 0));
        }
        assert_eq!(ring.reach(420), Some(64));
    }

    #[test]
    fn keeps_everything_until_full() {
        let ring = Ring::new(8);
        for i in 0..5 {
            ring.push(rec(i));
        }
        let snap = ring.snapshot(0);
        assert_eq!(snap.records, (0..5).map(rec).collect::<Vec<_>>());
        assert_eq!(snap.lost, 0);
    }

    #[test]
    fn wraparound_overwrites_oldest_and_counts_the_loss() {
        let ring = Ring::new(8);
        for i in 0..21 {
            ring.push(rec(i));
        }
        let snap = ring.snapshot(0);
        assert_eq!(snap.records, (13..21).map(rec).collect::<Vec<_>>());
        assert_eq!(snap.first_seq, 13);
        assert_eq!(snap.lost, 13);
        assert_eq!(ring.overwritten()[Kind::PollStart as usize], 13);
        // Timestamps are the record numbers here: from time 17, records 17..21.
        let from = ring.seq_for_time(17);
        assert_eq!(
            ring.snapshot(from).records,
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
        let next = ring.snapshot(first.first_seq + first.records.len() as u64);
        assert_eq!(next.records, (6..9).map(rec).collect::<Vec<_>>());
        assert_eq!(next.lost, 0);
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
            for (n, r) in snap.records.iter().enumerate() {
                assert_eq!(r.arg(), (r.ts() * 7) & crate::recorder::record::ARG_MASK);
                assert_eq!(r.ts(), snap.first_seq + n as u64, "records out of order");
            }
            reads += 1;
        }
        writer.join().unwrap();
    }
}

//! A single-writer, many-reader ring of [`Record`]s that overwrites its oldest records.
//!
//! The owning thread writes; any thread may take a [`Ring::snapshot`], or extend an earlier
//! copy with [`Ring::refresh`], at any time without stopping it. Publication protocol (a seqlock over a ring):
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
//! | module | holds |
//! |---|---|
//! | this one | the ring, its writer ([`Ring::push`]) and the protocol's reader ([`Ring::refresh`]) |
//! | `copy` | [`RingCopy`], a reader's copy kept between reads and trimmed as its window slides |
//! | `by_time` | finding records by time: where a window begins, how far back a ring reaches |
//! | `memory` | the slots' memory: a mapping of their own, on huge pages where the kernel allows |
//!
//! These files are also compiled by `bridge/loom/` under `--cfg loom` to model-check the
//! protocol.

// `pub` (not `pub(crate)`): the loom crate compiles these files as a module of its own and its
// models, in another crate, use these items.
#![allow(unreachable_pub)]

#[cfg(loom)]
use loom::sync::atomic::{AtomicU64, Ordering, fence};
#[cfg(not(loom))]
use std::sync::atomic::{AtomicU64, Ordering, fence};

use super::record::Record;

#[cfg(not(loom))]
use crate::background::yield_point;
/// The loom models have no background threads.
#[cfg(loom)]
fn yield_point() {}

mod by_time;
mod copy;
#[cfg(not(loom))]
mod memory;

pub(crate) use copy::COPY_REACH;
pub use copy::RingCopy;

/// Records [`Ring::refresh`] copies between two yield points (256 KiB, ~50 µs).
const COPY_CHUNK: u64 = 16 * 1024;

#[derive(Debug)]
struct Slot {
    w0: AtomicU64,
    w1: AtomicU64,
}

/// `cap` zeroed slots, in a mapping of their own ([`memory`]).
#[cfg(not(loom))]
fn zeroed_slots(cap: usize) -> memory::SlotMemory {
    memory::SlotMemory::zeroed(cap)
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

/// See the module documentation.
#[derive(Debug)]
pub struct Ring {
    #[cfg(not(loom))]
    slots: memory::SlotMemory,
    #[cfg(loom)]
    slots: Box<[Slot]>,
    mask: u64,
    /// Records whose write has begun.
    claimed: AtomicU64,
    /// Records fully written.
    published: AtomicU64,
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

    /// Copies the records currently held, oldest first, without stopping the writer.
    /// `from_seq` skips records numbered below it.
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
        // `extend`s over ranges of known length (no capacity check per record), in chunks
        // between which a background reader may pause (a whole ring is ~4 ms).
        let mut seq = appended_from;
        while seq < end {
            let chunk_end = end.min(seq + COPY_CHUNK);
            copy.buf.extend((seq..chunk_end).map(|seq| {
                let slot = &self.slots[(seq & self.mask) as usize];
                Record {
                    w0: slot.w0.load(Ordering::Relaxed),
                    w1: slot.w1.load(Ordering::Relaxed),
                }
            }));
            seq = chunk_end;
            yield_point();
        }
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
mod tests;

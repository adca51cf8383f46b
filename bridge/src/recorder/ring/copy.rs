//! A reader's copy of a ring: the records of its last read, kept so that the next read copies
//! only what was written since ([`Ring::refresh`](super::Ring::refresh)), and trimmed from the
//! front in place as the reader's window slides, so that each record moves about once.

use super::Record;

/// How much history a [`RingCopy`] keeps at most, in rings: with the slack its buffer keeps
/// for growth (half a ring), at most two and a half times the ring's memory. Trimming the
/// oldest records there, rather than discarding a copy that grew past a bound, keeps the
/// recent records the next read still needs (the analyzer had discarded its whole copy once
/// the copies outgrew twice the rings, and the next batch then lacked the first spans of
/// traces the ring had overwritten).
pub(crate) const COPY_REACH: u64 = 2;

/// A copy's buffer is shrunk to what a read needs when it holds more than this many times
/// that. Shrinking costs little (a buffer this large is `mmap`ped: its tail is unmapped, not
/// copied) but the pages are faulted in again as the buffer grows back, so ordinary variation
/// (windows a few times longer or shorter from batch to batch) should not trigger it; the
/// windows of an analyzer that fell behind for a while are ten times the usual or more.
const SHRINK_ABOVE: usize = 4;

/// Records a copy is never shrunk below (64 KiB): a quiet ring's small buffer is kept, and an
/// emptied copy keeps its buffer (freed, a large one would be allocated anew from the
/// allocator's arena as it grows back, rather than `mmap`ped, and its unmapping would raise
/// glibc's threshold for `mmap`ping large blocks, keeping more of them in the arenas).
const MIN_SHRUNK: usize = 4096;

/// A reader's copy of a ring's records, in write order. Kept between reads and brought up to
/// date with [`Ring::refresh`], it copies only what was written since: a reader that reads a
/// sliding window copies each record once, not once per read.
#[derive(Debug, Default, Clone)]
pub struct RingCopy {
    /// `buf[start..]` is the copy; the records before `start` were dropped from its front and
    /// are compacted away when they are half the buffer.
    pub(super) buf: Vec<Record>,
    pub(super) start: usize,
    /// Number of the copy's first record since the ring was created.
    pub(super) first_seq: u64,
    /// Records the last read asked for that were no longer (or not reliably) in the ring.
    pub(super) lost: u64,
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

    /// A copy of the records at indices `range` of [`Self::records`] alone: one request's
    /// window, to decode elsewhere. It reports the losses of this copy only if it begins
    /// where this copy does.
    pub fn slice(&self, range: std::ops::Range<usize>) -> RingCopy {
        let lost = if range.start == 0 { self.lost } else { 0 };
        RingCopy {
            buf: self.records()[range.clone()].to_vec(),
            start: 0,
            first_seq: self.first_seq + range.start as u64,
            lost,
        }
    }

    pub(super) fn end_seq(&self) -> u64 {
        self.first_seq + (self.buf.len() - self.start) as u64
    }

    /// Drops the records numbered below `seq` from the front (all of them, and the copy then
    /// continues at `seq`, when `seq` is past its end).
    pub(super) fn drop_before(&mut self, seq: u64) {
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
    /// every read: every 10 ms while a batch waits.) A buffer more than [`SHRINK_ABOVE`] times
    /// what this read needs, left by a longer window (an analyzer that fell behind), is
    /// compacted and shrunk to that. The copy's memory follows the window: its records, plus
    /// `slack` at most, so a long window's memory is not kept for good.
    pub(super) fn make_room(&mut self, n: usize, slack: usize) {
        let live = self.buf.len() - self.start;
        let needed = live + n + live.min(slack);
        if self.buf.capacity() > SHRINK_ABOVE * needed.max(MIN_SHRUNK) {
            self.compact();
            self.buf.shrink_to(needed.max(MIN_SHRUNK));
            return;
        }
        if self.buf.capacity() - self.buf.len() >= n {
            return;
        }
        self.compact();
        self.buf.reserve_exact(n + live.min(slack));
    }

    pub(super) fn clear_at(&mut self, seq: u64) {
        self.buf.clear();
        self.start = 0;
        self.first_seq = seq;
    }
}

//! What a blocked runtime thread was waiting in, as the wait sampler read it from `/proc`
//! (`capture::waits`).
//!
//! ```text
//!  WaitSample  header: OS thread id (bits 0..48) | state << 48 (`stat`'s state letter, 8 bits)
//!              payload 1: w0 = syscall number as i64 (-1: blocked outside a syscall),
//!                         w1 = text length
//!              then ⌈length / 15⌉ payloads with the text's UTF-8 bytes: the kernel's wait
//!              channel, a tab, what the syscall waits on
//!  PageFaults  header: OS thread id (bits 0..48) | INSIDE (bit 48)
//!              payload: w0 = cumulative minor faults, w1 = cumulative major faults
//! ```

use super::fields::{TEXT_BYTES_PER_RECORD, Text, text_record};
use super::{Codec, Kind, Record, Ring, payloads};

/// Where the state letter starts in the header's argument.
const STATE_SHIFT: u32 = 48;
/// The OS thread id in the header's argument.
const TID: u64 = (1 << STATE_SHIFT) - 1;
/// Longest text written; a longer one is cut (at a character boundary).
pub const MAX_TEXT: usize = 512;

/// One sample of a runtime thread found blocked while serving a request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WaitSample<'a> {
    /// The OS thread id.
    pub tid: u64,
    /// The thread's state letter from `stat`: `S` (interruptible sleep) or `D` (uninterruptible,
    /// usually disk I/O).
    pub state: u8,
    /// The syscall it was blocked in (the architecture's number); -1 when it was blocked
    /// outside a syscall (a page fault waiting for I/O).
    pub nr: i64,
    /// The kernel's wait channel and what the syscall waits on, tab-separated.
    pub text: Text<'a>,
}

impl WaitSample<'_> {
    /// The text cut to [`MAX_TEXT`] bytes at a character boundary.
    fn text_len(s: &str) -> usize {
        let mut n = s.len().min(MAX_TEXT);
        while !s.is_char_boundary(n) {
            n -= 1;
        }
        n
    }
}

impl<'a> Codec<'a> for WaitSample<'a> {
    const KIND: Kind = Kind::WaitSample;

    fn encode(&self, ts: u64, ring: &Ring) {
        let arg = (self.tid & TID) | u64::from(self.state) << STATE_SHIFT;
        match self.text {
            Text::Given(s) => {
                let s = &s[..Self::text_len(s)];
                ring.push(Record::header(Self::KIND, ts, arg));
                ring.push(Record::payload(self.nr as u64, s.len() as u64));
                for chunk in s.as_bytes().chunks(TEXT_BYTES_PER_RECORD) {
                    ring.push(text_record(chunk));
                }
            }
            Text::Recorded { chunks, len } => {
                ring.push(Record::header(Self::KIND, ts, arg));
                ring.push(Record::payload(self.nr as u64, len as u64));
                for r in chunks {
                    ring.push(Record::payload(r.w0, r.arg()));
                }
            }
        }
    }

    fn decode(arg: u64, rest: &'a [Record]) -> Option<(Self, usize)> {
        let first = payloads(rest, 1)?[0];
        let len = first.arg() as usize;
        if len > MAX_TEXT {
            return None;
        }
        let n = 1 + len.div_ceil(TEXT_BYTES_PER_RECORD);
        let p = payloads(rest, n)?;
        let sample = WaitSample {
            tid: arg & TID,
            state: (arg >> STATE_SHIFT) as u8,
            nr: first.w0 as i64,
            text: Text::Recorded {
                chunks: &p[1..],
                len,
            },
        };
        Some((sample, n))
    }
}

/// A runtime thread's cumulative page faults (`stat`'s `minflt` and `majflt`), read by the
/// wait sampler while the thread is inside a request's work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageFaults {
    /// The OS thread id.
    pub tid: u64,
    /// Faults served without I/O since the thread started.
    pub minor: u64,
    /// Faults that waited for I/O since the thread started.
    pub major: u64,
    /// Read while the thread was inside a request's work (else just after it left, or before
    /// it first entered).
    pub inside: bool,
}

/// Set in [`PageFaults`]' header when the thread was inside work.
const INSIDE: u64 = 1 << STATE_SHIFT;

impl Codec<'_> for PageFaults {
    const KIND: Kind = Kind::PageFaults;

    fn encode(&self, ts: u64, ring: &Ring) {
        let inside = if self.inside { INSIDE } else { 0 };
        ring.push(Record::header(Self::KIND, ts, (self.tid & TID) | inside));
        ring.push(Record::payload(self.minor, self.major));
    }

    fn decode(arg: u64, rest: &[Record]) -> Option<(Self, usize)> {
        let p = payloads(rest, 1)?[0];
        let faults = PageFaults {
            tid: arg & TID,
            minor: p.w0,
            major: p.arg(),
            inside: arg & INSIDE != 0,
        };
        Some((faults, 1))
    }
}

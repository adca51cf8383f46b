//! The 16-byte record every event is written as.
//!
//! ```text
//!  word 0: timestamp (clock ticks)            word 1: kind (8 bits) | argument (56 bits)
//! ```
//! Events that need more than one 56-bit argument are followed by [`Kind::Payload`] records,
//! whose word 0 is a free 64-bit value and word 1 carries 56 more bits. A payload record keeps its
//! kind byte, so a reader that starts mid-event (the oldest records were overwritten) can tell a
//! stray payload from a header and skip it. Each kind's layout, encoder and decoder are in
//! [`codec`](super::codec).

// `pub` (not `pub(crate)`): the loom crate compiles this file as a module of its own and its
// models, in another crate, use these items.
#![allow(unreachable_pub)]

/// Event kinds. The discriminants are the on-ring encoding; do not reorder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Kind {
    /// A thread took this ring ([`ThreadStart`](super::codec::threads::ThreadStart)).
    ThreadStart = 1,
    /// A tokio worker parked (no work) ([`codec::threads`](super::codec::threads)).
    Park = 2,
    /// A tokio worker unparked.
    Unpark = 3,
    /// A task poll began ([`codec::tasks`](super::codec::tasks)).
    PollStart = 4,
    /// The poll that began last on the thread ended.
    PollEnd = 5,
    /// A task was spawned ([`codec::tasks`](super::codec::tasks)).
    TaskSpawn = 6,
    /// A task terminated.
    TaskTerminate = 7,
    /// A span was created ([`codec::spans`](super::codec::spans)).
    SpanNew = 8,
    /// A span was entered on the thread.
    SpanEnter = 9,
    /// A span was exited on the thread.
    SpanExit = 10,
    /// A span closed.
    SpanClose = 11,
    /// A span's OpenTelemetry ids ([`codec::span_ids`](super::codec::span_ids)).
    SpanIds = 12,
    /// A `granular::spawn_blocking` job was queued ([`codec::blocking`](super::codec::blocking)).
    BlockingQueued = 13,
    /// A pool thread started the job.
    BlockingStart = 14,
    /// The job ended.
    BlockingEnd = 15,
    /// A per-thread OS sample ([`codec::os`](super::codec::os)).
    OsSample = 16,
    /// How many tasks the runtime held ([`codec::threads`](super::codec::threads)).
    AliveTasks = 17,
    /// Continuation of the previous header.
    Payload = 18,
    /// A runtime thread was off-CPU ([`codec::os`](super::codec::os)).
    OffCpu = 19,
    /// A field value ([`codec::fields`](super::codec::fields)).
    Field = 20,
    /// A `tracing` event inside a span ([`codec::fields`](super::codec::fields)).
    Event = 21,
    /// What a blocked runtime thread was waiting in ([`codec::waits`](super::codec::waits)).
    WaitSample = 22,
    /// A runtime thread's cumulative page faults ([`codec::waits`](super::codec::waits)).
    PageFaults = 23,
}

impl Kind {
    /// Every kind, in discriminant order.
    pub const ALL: [Kind; 23] = {
        use Kind::*;
        [
            ThreadStart,
            Park,
            Unpark,
            PollStart,
            PollEnd,
            TaskSpawn,
            TaskTerminate,
            SpanNew,
            SpanEnter,
            SpanExit,
            SpanClose,
            SpanIds,
            BlockingQueued,
            BlockingStart,
            BlockingEnd,
            OsSample,
            AliveTasks,
            Payload,
            OffCpu,
            Field,
            Event,
            WaitSample,
            PageFaults,
        ]
    };

    /// Number of kinds, for per-kind counters (index = discriminant).
    pub const COUNT: usize = 24;

    /// The kind of each byte, `None` for bytes no writer produces.
    const BY_BYTE: [Option<Kind>; 256] = {
        let mut table = [None; 256];
        let mut i = 0;
        while i < Kind::ALL.len() {
            table[Kind::ALL[i] as usize] = Some(Kind::ALL[i]);
            i += 1;
        }
        table
    };

    /// Decodes a kind byte; `None` for bytes no writer produces.
    #[inline]
    pub fn from_u8(b: u8) -> Option<Kind> {
        Kind::BY_BYTE[b as usize]
    }
}

/// Where the kind byte starts in word 1: the argument is the 56 bits below it.
const KIND_SHIFT: u32 = 56;

/// Mask of the 56-bit argument.
pub const ARG_MASK: u64 = (1 << KIND_SHIFT) - 1;

/// One ring slot's worth of data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    /// Word 0: a header's timestamp, a payload's free value.
    pub w0: u64,
    /// Word 1: kind (8 bits) | argument (56 bits).
    pub w1: u64,
}

impl Record {
    /// A header: `kind` at `ts`, with its argument.
    #[inline]
    pub fn header(kind: Kind, ts: u64, arg: u64) -> Record {
        Record {
            w0: ts,
            w1: ((kind as u64) << KIND_SHIFT) | (arg & ARG_MASK),
        }
    }

    /// A payload record continuing the previous header.
    #[inline]
    pub fn payload(w0: u64, w1: u64) -> Record {
        Record::header(Kind::Payload, w0, w1)
    }

    /// The kind byte as written (also for a byte no [`Kind`] has).
    #[inline]
    pub fn kind_byte(&self) -> u8 {
        (self.w1 >> KIND_SHIFT) as u8
    }

    /// The kind, `None` for a byte no [`Kind`] has (a torn or zeroed slot).
    #[inline]
    pub fn kind(&self) -> Option<Kind> {
        Kind::from_u8(self.kind_byte())
    }

    /// The 56-bit argument of word 1.
    #[inline]
    pub fn arg(&self) -> u64 {
        self.w1 & ARG_MASK
    }

    /// Timestamp of a header record (word 0).
    #[inline]
    pub fn ts(&self) -> u64 {
        self.w0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_kind_and_masks_arg() {
        let r = Record::header(Kind::PollStart, 123, u64::MAX);
        assert_eq!(r.kind(), Some(Kind::PollStart));
        assert_eq!(r.arg(), ARG_MASK);
        assert_eq!(r.ts(), 123);
        for b in 0..=255u8 {
            if let Some(k) = Kind::from_u8(b) {
                assert_eq!(k as u8, b);
                assert!((b as usize) < Kind::COUNT);
            }
        }
        let decodable = (0..=255u8).filter_map(Kind::from_u8).count();
        assert_eq!(decodable, Kind::ALL.len(), "every kind and only those");
    }
}

//! The 16-byte record every event is written as.
//!
//! ```text
//!  word 0: timestamp (clock ticks)            word 1: kind (8 bits) | argument (56 bits)
//! ```
//! Events that need more than one 56-bit argument are followed by [`Kind::Payload`] records,
//! whose word 0 is a free 64-bit value and word 1 carries 56 more bits. A payload record keeps its
//! kind byte, so a reader that starts mid-event (the oldest records were overwritten) can tell a
//! stray payload from a header and skip it.

// `pub` (not `pub(crate)`): the loom crate compiles this file as a module of its own and its
// models, in another crate, use these items.
#![allow(unreachable_pub)]

/// Event kinds. The discriminants are the on-ring encoding; do not reorder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Kind {
    /// A thread took this ring. arg = OS thread id. Payload: tokio worker index + 1 (0 = none).
    ThreadStart = 1,
    /// A tokio worker parked (no work) / unparked.
    Park = 2,
    /// A tokio worker unparked.
    Unpark = 3,
    /// A task poll began. arg = tokio task id. Allocation counters may follow
    /// ([`COUNTERS_FOLLOW`]).
    PollStart = 4,
    /// The poll ended. arg = wake-to-poll latency in ns when tokio measured it, else 0.
    /// Allocation counters may follow ([`COUNTERS_FOLLOW`]).
    PollEnd = 5,
    /// A task was spawned. arg = child task id. Payload 1: w0 = spawning task id (0 = none),
    /// w1 = current span key at spawn (0 = none). Payload 2: w0 = `&'static Location` address.
    TaskSpawn = 6,
    /// A task terminated. arg = task id.
    TaskTerminate = 7,
    /// A span was created. arg = span key. Payload: w0 = `&'static Metadata` address,
    /// w1 = parent span key (0 = local root), with [`SPAN_ID_FOLLOWS`] set when a second
    /// payload carries the span's OTel span id in w0 (span-recording mode, children: no
    /// [`Kind::SpanIds`] record follows for them).
    SpanNew = 8,
    /// arg = span key. Allocation counters may follow ([`COUNTERS_FOLLOW`]).
    SpanEnter = 9,
    /// arg = span key.
    SpanExit = 10,
    /// arg = span key.
    SpanClose = 11,
    /// The span's OpenTelemetry ids, recorded once per span. arg = span key. Payload 1:
    /// w0 = OTel span id, w1 = 0 (nothing follows), 1 (trace id follows) or 3 (trace id and a
    /// remote parent follow). Payload 2: w0 = trace id high. Payload 3: w0 = trace id low.
    /// Payload 4: w0 = the remote parent's span id.
    SpanIds = 12,
    /// A `granular::spawn_blocking` job was queued. arg = job id. Payload: w0 = spawning task,
    /// w1 = current span key.
    BlockingQueued = 13,
    /// arg = job id.
    BlockingStart = 14,
    /// arg = job id.
    BlockingEnd = 15,
    /// A per-thread OS sample taken by the sampler thread. arg = OS thread id sampled.
    /// Payload: w0 = cumulative on-CPU ns, w1 = cumulative run-queue wait ns.
    OsSample = 16,
    // 17 was a separate allocation-counter record; counters now ride on poll and span
    // boundaries (COUNTERS_FOLLOW).
    /// Continuation of the previous header.
    Payload = 18,
    /// A runtime thread was off-CPU (perf context-switch records). arg = OS thread id, with
    /// [`OFF_CPU_PREEMPTED`] when it was preempted (involuntary) and [`OFF_CPU_OPEN`] when it
    /// had not switched back in when this was written. Payload: w0 = switch-out time,
    /// CLOCK_MONOTONIC ns (not clock ticks), w1 = off-CPU duration ns (0 when open). A closed
    /// interval of length 0 marks when the thread's context switches began to be recorded.
    OffCpu = 19,
    /// A field value (span attribute or event field). arg = owning span key, or 0 for a field
    /// of the preceding [`Kind::Event`] on this thread. Payload 1: w0 = address of the field
    /// name (`&'static str`), w1 = name length (16 bits) | value kind << 16 | value length
    /// << 24. Then one payload with the number (bool, i64, f64 bits), or ⌈len/15⌉ payloads
    /// carrying the UTF-8 bytes of a string, 8 in w0 and 7 in w1 each.
    Field = 20,
    /// A `tracing` event inside a span (becomes a span event). arg = span key. Payload:
    /// w0 = `&'static Metadata` address. Its fields follow as [`Kind::Field`] with arg 0.
    Event = 21,
}

impl Kind {
    /// Decodes a kind byte; `None` for bytes no writer produces.
    pub fn from_u8(b: u8) -> Option<Kind> {
        use Kind::*;
        Some(match b {
            1 => ThreadStart,
            2 => Park,
            3 => Unpark,
            4 => PollStart,
            5 => PollEnd,
            6 => TaskSpawn,
            7 => TaskTerminate,
            8 => SpanNew,
            9 => SpanEnter,
            10 => SpanExit,
            11 => SpanClose,
            12 => SpanIds,
            13 => BlockingQueued,
            14 => BlockingStart,
            15 => BlockingEnd,
            16 => OsSample,
            18 => Payload,
            19 => OffCpu,
            20 => Field,
            21 => Event,
            _ => return None,
        })
    }

    /// Number of kinds, for per-kind counters (index = discriminant).
    pub const COUNT: usize = 22;
}

/// Flag in the argument of a poll or span boundary ([`Kind::PollStart`], [`Kind::PollEnd`],
/// [`Kind::SpanEnter`], [`Kind::SpanExit`]): one payload follows with the thread's cumulative
/// allocation counters, w0 = bytes allocated, w1 = allocations. Written only when they changed
/// since the thread last wrote them (see `capture/alloc.rs`). Span keys, task ids and latencies
/// stay below this bit.
pub const COUNTERS_FOLLOW: u64 = 1 << 55;

/// Flag in [`Kind::SpanNew`]'s parent-key word: a second payload with the span id follows.
/// Span keys never reach this bit (ring index + 1 stays below 2^15).
pub const SPAN_ID_FOLLOWS: u64 = 1 << 55;

/// Flag in [`Kind::OffCpu`]'s argument: the thread was preempted (involuntary switch-out).
pub const OFF_CPU_PREEMPTED: u64 = 1 << 55;

/// Flag in [`Kind::OffCpu`]'s argument: the thread was still off-CPU when the record was
/// written, from the switch-out time on, until a record with the same switch-out time closes
/// the interval (or, with none, from then on: a thread that exited is written this way).
pub const OFF_CPU_OPEN: u64 = 1 << 54;

/// The OS thread id in [`Kind::OffCpu`]'s argument (Linux thread ids stay below 2^22).
pub const OFF_CPU_TID: u64 = OFF_CPU_OPEN - 1;

/// Mask of the 56-bit argument.
pub const ARG_MASK: u64 = (1 << 56) - 1;

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
            w1: ((kind as u64) << 56) | (arg & ARG_MASK),
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
        (self.w1 >> 56) as u8
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
    }
}

//! What the OS says about runtime threads: schedstat samples and perf off-CPU intervals.
//!
//! ```text
//!  OsSample  header: OS thread id sampled
//!            payload: w0 = cumulative on-CPU ns, w1 = cumulative run-queue wait ns
//!  OffCpu    header: OS thread id (bits 0..54) | OPEN (bit 54) | PREEMPTED (bit 55)
//!            payload: w0 = switch-out time, CLOCK_MONOTONIC ns (not clock ticks),
//!                     w1 = off-CPU duration ns (0 when OPEN)
//! ```

use super::{Codec, Kind, Record, Ring, payloads};

/// Set in [`OffCpu`]'s argument when the thread was preempted (an involuntary switch-out).
const PREEMPTED: u64 = 1 << 55;
/// Set in [`OffCpu`]'s argument when the thread had not switched back in when it was written.
const OPEN: u64 = 1 << 54;
/// The OS thread id in [`OffCpu`]'s argument (Linux thread ids stay below 2^22).
const TID: u64 = OPEN - 1;

/// One per-thread schedstat sample, taken by the sampler thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OsSample {
    /// The OS thread id sampled.
    pub tid: u64,
    /// Cumulative time on a CPU, ns (schedstat's first field).
    pub on_cpu_ns: u64,
    /// Cumulative time runnable but waiting for a CPU, ns (schedstat's second field).
    pub run_queue_ns: u64,
}

impl Codec<'_> for OsSample {
    const KIND: Kind = Kind::OsSample;

    #[inline]
    fn encode(&self, ts: u64, ring: &Ring) {
        ring.push(Record::header(Self::KIND, ts, self.tid));
        ring.push(Record::payload(self.on_cpu_ns, self.run_queue_ns));
    }

    #[inline]
    fn decode(tid: u64, rest: &[Record]) -> Option<(Self, usize)> {
        let p = payloads(rest, 1)?[0];
        let sample = OsSample {
            tid,
            on_cpu_ns: p.w0,
            run_queue_ns: p.arg(),
        };
        Some((sample, 1))
    }
}

/// A runtime thread was off CPU (perf context-switch records), from `out_ns` on.
///
/// One still off CPU when written (`duration_ns: None`) lasts until a record with the same
/// switch-out time closes it (or, with none, from then on: a thread that exited is written
/// this way). A closed interval of length 0 marks when the thread's context switches began to
/// be recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffCpu {
    /// The OS thread id.
    pub tid: u64,
    /// An involuntary switch-out.
    pub preempted: bool,
    /// Switch-out time, CLOCK_MONOTONIC ns.
    pub out_ns: u64,
    /// How long it stayed off CPU; `None` while it had not switched back in.
    pub duration_ns: Option<u64>,
}

impl Codec<'_> for OffCpu {
    const KIND: Kind = Kind::OffCpu;

    #[inline]
    fn encode(&self, ts: u64, ring: &Ring) {
        let open = if self.duration_ns.is_none() { OPEN } else { 0 };
        let preempted = if self.preempted { PREEMPTED } else { 0 };
        ring.push(Record::header(Self::KIND, ts, self.tid | open | preempted));
        ring.push(Record::payload(self.out_ns, self.duration_ns.unwrap_or(0)));
    }

    #[inline]
    fn decode(arg: u64, rest: &[Record]) -> Option<(Self, usize)> {
        let p = payloads(rest, 1)?[0];
        let off = OffCpu {
            tid: arg & TID,
            preempted: arg & PREEMPTED != 0,
            out_ns: p.w0,
            duration_ns: (arg & OPEN == 0).then(|| p.arg()),
        };
        Some((off, 1))
    }
}

//! A thread taking a ring, a tokio worker parking (no work) and unparking, and how many tasks
//! the runtime held.
//!
//! ```text
//!  ThreadStart  header: OS thread id      payload: w0 = tokio worker index + 1 (0: not a worker)
//!  Park         header: 0                 (no payload)
//!  Unpark       header: 0                 (no payload)
//!  AliveTasks   header: task count        (no payload)
//! ```

use super::{Codec, Kind, Record, Ring, payloads};

/// A thread took this ring: the records after it are that thread's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThreadStart {
    /// The OS thread id.
    pub tid: u64,
    /// Its tokio worker index, when it is a worker.
    pub worker: Option<usize>,
}

impl Codec<'_> for ThreadStart {
    const KIND: Kind = Kind::ThreadStart;

    #[inline]
    fn encode(&self, ts: u64, ring: &Ring) {
        let worker = self.worker.map_or(0, |w| w as u64 + 1);
        ring.push(Record::header(Self::KIND, ts, self.tid));
        ring.push(Record::payload(worker, 0));
    }

    #[inline]
    fn decode(tid: u64, rest: &[Record]) -> Option<(Self, usize)> {
        let p = payloads(rest, 1)?[0];
        let worker = p.w0.checked_sub(1).map(|w| w as usize);
        Some((ThreadStart { tid, worker }, 1))
    }
}

/// A tokio worker parked: it had nothing to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Park;

/// A tokio worker unparked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unpark;

/// How many tasks the instrumented runtime held (tokio's `num_alive_tasks`), sampled
/// ([`crate::capture::runtime_tasks`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AliveTasks {
    /// Tasks spawned and not yet terminated.
    pub count: u64,
}

header_only!(Park);
header_only!(Unpark);
header_only!(AliveTasks { count });

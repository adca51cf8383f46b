//! Task polls, spawns and terminations (tokio's task hooks, `--cfg tokio_unstable`).
//!
//! ```text
//!  PollStart      header: task id            + allocation counters (see `counters`)
//!  PollEnd        header: wake-to-poll ns    + allocation counters
//!  TaskSpawn      header: child task id      payload 1: w0 = spawning task, w1 = current span key
//!                                            payload 2: w0 = `&'static Location` address (0: none)
//!  TaskTerminate  header: task id
//! ```

use std::panic::Location;

use super::counters::Counters;
use super::{Codec, Kind, Record, Ring, payloads};

/// A task poll began on this thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollStart {
    /// The task's id.
    pub task: u64,
    /// The thread's allocation counters at the start, when they changed.
    pub counters: Option<Counters>,
}

boundary!(PollStart { task });

/// The poll that began last on this thread ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollEnd {
    /// Wake-to-poll latency tokio measured, ns (0: not measured). At most `u32::MAX`.
    pub schedule_latency_ns: u64,
    /// The thread's allocation counters at the end, when they changed.
    pub counters: Option<Counters>,
}

boundary!(PollEnd {
    schedule_latency_ns
});

/// A task was spawned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskSpawn {
    /// The task's id.
    pub task: u64,
    /// The task that spawned it (0: none).
    pub parent_task: u64,
    /// The span key current at the spawn (0: none).
    pub parent_span: u64,
    /// Where it was spawned, when tokio says.
    pub spawned_at: Option<&'static Location<'static>>,
}

impl Codec<'_> for TaskSpawn {
    const KIND: Kind = Kind::TaskSpawn;

    #[inline]
    fn encode(&self, ts: u64, ring: &Ring) {
        let location = self.spawned_at.map_or(0, |l| l as *const _ as u64);
        ring.push(Record::header(Self::KIND, ts, self.task));
        ring.push(Record::payload(self.parent_task, self.parent_span));
        ring.push(Record::payload(location, 0));
    }

    #[inline]
    fn decode(task: u64, rest: &[Record]) -> Option<(Self, usize)> {
        let [parents, location] = *payloads(rest, 2)? else {
            return None;
        };
        // SAFETY: the address of a `&'static Location` written by `encode` (the only writer of
        // this kind); the records passed the payload-kind and the ring's tearing checks.
        let spawned_at =
            (location.w0 != 0).then(|| unsafe { &*(location.w0 as *const Location<'static>) });
        let spawn = TaskSpawn {
            task,
            parent_task: parents.w0,
            parent_span: parents.arg(),
            spawned_at,
        };
        Some((spawn, 2))
    }
}

/// A task terminated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskTerminate {
    /// The task's id.
    pub task: u64,
}

header_only!(TaskTerminate { task });

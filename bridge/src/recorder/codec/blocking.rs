//! `granular::spawn_blocking` jobs: queued, started on a pool thread, ended.
//!
//! ```text
//!  BlockingQueued  header: job id   payload: w0 = spawning task (0: none), w1 = current span key
//!  BlockingStart   header: job id
//!  BlockingEnd     header: job id
//! ```

use super::{Codec, Kind, Record, Ring, payloads};

/// A job was queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockingQueued {
    /// The job's id (unique in the process).
    pub job: u64,
    /// The task that queued it (0: none).
    pub task: u64,
    /// The span key current when it was queued (0: none).
    pub span: u64,
}

impl Codec<'_> for BlockingQueued {
    const KIND: Kind = Kind::BlockingQueued;

    #[inline]
    fn encode(&self, ts: u64, ring: &Ring) {
        ring.push(Record::header(Self::KIND, ts, self.job));
        ring.push(Record::payload(self.task, self.span));
    }

    #[inline]
    fn decode(job: u64, rest: &[Record]) -> Option<(Self, usize)> {
        let p = payloads(rest, 1)?[0];
        let queued = BlockingQueued {
            job,
            task: p.w0,
            span: p.arg(),
        };
        Some((queued, 1))
    }
}

/// A pool thread started the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockingStart {
    /// The job's id.
    pub job: u64,
}

header_only!(BlockingStart { job });

/// The job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockingEnd {
    /// The job's id.
    pub job: u64,
}

header_only!(BlockingEnd { job });

//! A span's OpenTelemetry ids, written once per span (at its first entry, or at its close if
//! it was never entered), except for children in span-recording mode, whose
//! [`SpanNew`](super::spans::SpanNew) carries the span id.
//!
//! ```text
//!  header:     span key
//!  payload 1:  w0 = OTel span id     w1 = what follows: NOTHING, TRACE or TRACE_AND_REMOTE_PARENT
//!  payload 2:  w0 = trace id, high   (TRACE, TRACE_AND_REMOTE_PARENT)
//!  payload 3:  w0 = trace id, low    (TRACE, TRACE_AND_REMOTE_PARENT)
//!  payload 4:  w0 = the remote parent's span id (TRACE_AND_REMOTE_PARENT)
//! ```
//! The trace id is written for local roots only: their descendants share it.

use super::{Codec, Kind, Record, Ring, payloads};

/// What follows the span id: nothing (a descendant; any value other than the two below reads
/// as nothing).
const NOTHING: u64 = 0;
/// The trace id (a local root).
const TRACE: u64 = 1;
/// The trace id and the remote parent's span id (a local root whose parent came over the wire).
const TRACE_AND_REMOTE_PARENT: u64 = 3;

/// A span's OpenTelemetry ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanIds {
    /// The span's key.
    pub key: u64,
    /// Its OpenTelemetry span id.
    pub span_id: u64,
    /// A local root's trace, `None` for a descendant.
    pub root: Option<TraceRoot>,
}

/// What a local root's [`SpanIds`] carry beyond its span id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceRoot {
    /// The trace's id.
    pub trace_id: u128,
    /// The remote parent's span id, when the parent came over the wire.
    pub remote_parent: Option<u64>,
}

impl Codec<'_> for SpanIds {
    const KIND: Kind = Kind::SpanIds;

    #[inline]
    fn encode(&self, ts: u64, ring: &Ring) {
        ring.push(Record::header(Self::KIND, ts, self.key));
        let Some(root) = self.root else {
            ring.push(Record::payload(self.span_id, NOTHING));
            return;
        };
        let follows = match root.remote_parent {
            Some(_) => TRACE_AND_REMOTE_PARENT,
            None => TRACE,
        };
        ring.push(Record::payload(self.span_id, follows));
        ring.push(Record::payload((root.trace_id >> 64) as u64, 0));
        ring.push(Record::payload(root.trace_id as u64, 0));
        if let Some(parent) = root.remote_parent {
            ring.push(Record::payload(parent, 0));
        }
    }

    #[inline]
    fn decode(key: u64, rest: &[Record]) -> Option<(Self, usize)> {
        let first = payloads(rest, 1)?[0];
        let n = match first.arg() {
            TRACE => 3,
            TRACE_AND_REMOTE_PARENT => 4,
            _ => 1,
        };
        let p = payloads(rest, n)?;
        let root = (n > 1).then(|| TraceRoot {
            trace_id: (u128::from(p[1].w0) << 64) | u128::from(p[2].w0),
            remote_parent: p.get(3).map(|parent| parent.w0),
        });
        let ids = SpanIds {
            key,
            span_id: first.w0,
            root,
        };
        Some((ids, n))
    }
}

//! A span's lifecycle: creation, each entry and exit, close.
//!
//! ```text
//!  SpanNew    header: span key   payload 1: w0 = `&'static Metadata` address,
//!                                           w1 = parent key (0: local root) | SPAN_ID_FOLLOWS
//!                                payload 2: w0 = OTel span id (only with SPAN_ID_FOLLOWS)
//!  SpanEnter  header: span key   + allocation counters (see `counters`)
//!  SpanExit   header: span key   + allocation counters
//!  SpanClose  header: span key | TO_ANALYZER
//! ```
//! Span keys come from [`next_span_key`](crate::recorder::next_span_key): ring index + 1 above
//! bit 40, so below bit 55 (the flags' bit) while ring index + 1 stays below 2^15.

use tracing::Metadata;

use super::counters::Counters;
use super::{Codec, Kind, Record, Ring, payloads};

/// Set in [`SpanNew`]'s parent word when a second payload carries the span id.
const SPAN_ID_FOLLOWS: u64 = 1 << 55;

/// A span was created.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpanNew {
    /// The span's key (unique while it lives, see `next_span_key`).
    pub key: u64,
    /// Its callsite: name, target, level, field names.
    pub meta: &'static Metadata<'static>,
    /// The parent's key (0: a local root).
    pub parent: u64,
    /// The span's OTel span id, when known at creation: children in span-recording mode,
    /// which then write no [`SpanIds`](super::span_ids::SpanIds).
    pub span_id: Option<u64>,
}

impl Codec<'_> for SpanNew {
    const KIND: Kind = Kind::SpanNew;

    #[inline]
    fn encode(&self, ts: u64, ring: &Ring) {
        let meta = self.meta as *const _ as u64;
        ring.push(Record::header(Self::KIND, ts, self.key));
        match self.span_id {
            Some(id) => {
                ring.push(Record::payload(meta, self.parent | SPAN_ID_FOLLOWS));
                ring.push(Record::payload(id, 0));
            }
            None => ring.push(Record::payload(meta, self.parent)),
        }
    }

    #[inline]
    fn decode(key: u64, rest: &[Record]) -> Option<(Self, usize)> {
        let first = payloads(rest, 1)?[0];
        let (span_id, n) = if first.arg() & SPAN_ID_FOLLOWS != 0 {
            (Some(payloads(rest, 2)?[1].w0), 2)
        } else {
            (None, 1)
        };
        // SAFETY: the address of a `&'static Metadata` written by `encode` (the only writer of
        // this kind); the record passed the payload-kind and the ring's tearing checks, and
        // metadata lives for the whole program.
        let meta = unsafe { &*(first.w0 as *const Metadata<'static>) };
        let new = SpanNew {
            key,
            meta,
            parent: first.arg() & !SPAN_ID_FOLLOWS,
            span_id,
        };
        Some((new, n))
    }
}

/// A span was entered on this thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanEnter {
    /// The span's key.
    pub key: u64,
    /// The thread's allocation counters at the entry, when they changed.
    pub counters: Option<Counters>,
}

boundary!(SpanEnter { key });

/// A span was exited on this thread (the exit of its latest entry here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanExit {
    /// The span's key.
    pub key: u64,
    /// The thread's allocation counters at the exit, when they changed.
    pub counters: Option<Counters>,
}

boundary!(SpanExit { key });

/// Set in [`SpanClose`]'s key word when the span's local trace went to the analyzer.
const TO_ANALYZER: u64 = 1 << 55;

/// A span closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanClose {
    /// The span's key.
    pub key: u64,
    /// A local root whose trace the source sampler handed to the analyzer, which exports it
    /// (with its breakdown): whoever else exports traces from the rings leaves it alone.
    pub to_analyzer: bool,
}

impl Codec<'_> for SpanClose {
    const KIND: Kind = Kind::SpanClose;

    #[inline]
    fn encode(&self, ts: u64, ring: &Ring) {
        let flag = if self.to_analyzer { TO_ANALYZER } else { 0 };
        ring.push(Record::header(Self::KIND, ts, self.key | flag));
    }

    #[inline]
    fn decode(arg: u64, _: &[Record]) -> Option<(Self, usize)> {
        let close = SpanClose {
            key: arg & !TO_ANALYZER,
            to_analyzer: arg & TO_ANALYZER != 0,
        };
        Some((close, 0))
    }
}

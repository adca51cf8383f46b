//! Every event kind's records, written and read in one place: one [`Codec`] per kind, grouped
//! by family, each module holding a kind's layout, its encoder and its decoder side by side.
//!
//! | module | kinds |
//! |---|---|
//! | [`threads`] | a thread taking a ring, a worker parking and unparking |
//! | [`tasks`] | task polls (with allocation counters), spawns, terminations |
//! | [`spans`] | span creation, entry and exit (with allocation counters), close |
//! | [`span_ids`] | a span's OpenTelemetry ids |
//! | [`fields`] | span and event field values, `tracing` events inside spans |
//! | [`os`] | per-thread schedstat samples, perf off-CPU intervals |
//! | [`waits`] | what a blocked runtime thread was waiting in, its page faults (sampled from `/proc`) |
//! | [`blocking`] | `granular::spawn_blocking` jobs |
//! | [`counters`] | the allocation counters poll and span boundaries carry |
//!
//! An event is a header record (`kind:8 | argument:56` and a timestamp, see
//! `Record`) followed by the payload records its kind announces, by a fixed
//! count or by a flag in the header or its first payload. Event sources write typed events
//! ([`super::write`]); the analyzer reads them back with [`events`], which never hands out a
//! header whose payloads are missing or torn.

/// [`Codec`] for a kind whose event is its header alone, named as the kind: `$ty { $field }`
/// carries the header's argument; a unit struct carries none and is written with 0.
macro_rules! header_only {
    ($ty:ident { $field:ident }) => {
        impl super::Codec<'_> for $ty {
            const KIND: super::Kind = super::Kind::$ty;

            #[inline]
            fn encode(&self, ts: u64, ring: &super::Ring) {
                ring.push(super::Record::header(Self::KIND, ts, self.$field));
            }

            #[inline]
            fn decode($field: u64, _: &[super::Record]) -> Option<(Self, usize)> {
                Some(($ty { $field }, 0))
            }
        }
    };
    ($ty:ident) => {
        impl super::Codec<'_> for $ty {
            const KIND: super::Kind = super::Kind::$ty;

            #[inline]
            fn encode(&self, ts: u64, ring: &super::Ring) {
                ring.push(super::Record::header(Self::KIND, ts, 0));
            }

            #[inline]
            fn decode(_: u64, _: &[super::Record]) -> Option<(Self, usize)> {
                Some(($ty, 0))
            }
        }
    };
}

/// [`Codec`] for a poll or span boundary, named as its kind: `$ty { $value, counters }` carries
/// the header's value and the allocation counters that may ride on it (see [`counters`]).
macro_rules! boundary {
    ($ty:ident { $value:ident }) => {
        impl super::Codec<'_> for $ty {
            const KIND: super::Kind = super::Kind::$ty;

            #[inline]
            fn encode(&self, ts: u64, ring: &super::Ring) {
                super::counters::encode(Self::KIND, ts, self.$value, self.counters, ring);
            }

            #[inline]
            fn decode(arg: u64, rest: &[super::Record]) -> Option<(Self, usize)> {
                let ($value, counters, n) = super::counters::decode(arg, rest)?;
                Some(($ty { $value, counters }, n))
            }
        }
    };
}

pub mod blocking;
pub mod counters;
pub mod fields;
pub mod os;
pub mod span_ids;
pub mod spans;
pub mod tasks;
pub mod threads;
pub mod waits;

#[cfg(test)]
mod tests;

use super::record::{Kind, Record};
use super::ring::Ring;

use blocking::{BlockingEnd, BlockingQueued, BlockingStart};
use fields::{Field, TracingEvent};
use os::{OffCpu, OsSample};
use span_ids::SpanIds;
use spans::{SpanClose, SpanEnter, SpanExit, SpanNew};
use tasks::{PollEnd, PollStart, TaskSpawn, TaskTerminate};
use threads::{AliveTasks, Park, ThreadStart, Unpark};
use waits::{PageFaults, WaitSample};

/// One event kind's wire form: how the event is written to a ring and read back.
///
/// Contract: [`decode`](Codec::decode), given the header's argument and the records that
/// follow the header, returns what [`encode`](Codec::encode) wrote and how many payload records
/// it took. Given records that are not a whole event of this kind (cut short by the end of a
/// snapshot, or a record other than a payload where a payload belongs), it returns `None`, so a
/// reader passes over the header rather than read another event's records as this one's.
/// `encode` runs on the request path: it never blocks and never allocates.
pub trait Codec<'a>: Sized {
    /// The header's kind.
    const KIND: Kind;

    /// Pushes the header, stamped `ts` (clock ticks), then the payload records, to `ring`.
    fn encode(&self, ts: u64, ring: &Ring);

    /// The event from its header's argument and the records after the header (see the trait's
    /// contract), with the number of payload records it took.
    fn decode(arg: u64, rest: &'a [Record]) -> Option<(Self, usize)>;
}

/// An event as read from a ring.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Event<'a> {
    /// A thread took the ring.
    ThreadStart(ThreadStart),
    /// The tokio worker parked (no work).
    Park,
    /// The tokio worker unparked.
    Unpark,
    /// How many tasks the runtime held.
    AliveTasks(AliveTasks),
    /// A task poll began.
    PollStart(PollStart),
    /// The poll that began last ended.
    PollEnd(PollEnd),
    /// A task was spawned.
    TaskSpawn(TaskSpawn),
    /// A task terminated.
    TaskTerminate(TaskTerminate),
    /// A span was created.
    SpanNew(SpanNew),
    /// A span was entered.
    SpanEnter(SpanEnter),
    /// A span was exited.
    SpanExit(SpanExit),
    /// A span closed.
    SpanClose(SpanClose),
    /// A span's OpenTelemetry ids.
    SpanIds(SpanIds),
    /// A blocking-pool job was queued.
    BlockingQueued(BlockingQueued),
    /// A blocking-pool job started.
    BlockingStart(BlockingStart),
    /// A blocking-pool job ended.
    BlockingEnd(BlockingEnd),
    /// A per-thread schedstat sample.
    OsSample(OsSample),
    /// An off-CPU interval from perf.
    OffCpu(OffCpu),
    /// A field recorded on a span or event.
    Field(Field<'a>),
    /// A `tracing` event inside a span.
    TracingEvent(TracingEvent),
    /// What a blocked runtime thread was waiting in.
    WaitSample(WaitSample<'a>),
    /// A runtime thread's cumulative page faults.
    PageFaults(PageFaults),
}

impl Event<'_> {
    /// The thread's cumulative allocation counters a poll or span boundary carries, if any.
    pub fn counters(&self) -> Option<counters::Counters> {
        match self {
            Event::PollStart(e) => e.counters,
            Event::PollEnd(e) => e.counters,
            Event::SpanEnter(e) => e.counters,
            Event::SpanExit(e) => e.counters,
            _ => None,
        }
    }
}

/// The event whose header is `records[0]`, and how many records it spans (header included);
/// `None` when `records[0]` starts no whole event: a payload (its header was overwritten), a
/// kind byte no writer produces, or a header whose payloads are missing or torn.
#[inline]
pub fn decode(records: &[Record]) -> Option<(Event<'_>, usize)> {
    locate(records, 0).map(|l| (l.event, l.len))
}

/// [`decode`] of the event whose header is `records[at]`. It builds the [`Located`] the reader
/// gets in place: an event built apart and then moved there was stored narrow and reloaded
/// wide, which stalled the analyzer's decode on every event.
#[inline]
fn locate(records: &[Record], at: usize) -> Option<Located<'_>> {
    #[inline(always)]
    fn read<'a, T: Codec<'a>>(
        header: &Record,
        at: usize,
        rest: &'a [Record],
        wrap: impl FnOnce(T) -> Event<'a>,
    ) -> Option<Located<'a>> {
        let (event, n) = T::decode(header.arg(), rest)?;
        Some(Located {
            at,
            len: 1 + n,
            ts: header.ts(),
            event: wrap(event),
        })
    }
    let (h, rest) = records.get(at..)?.split_first()?;
    match h.kind()? {
        Kind::ThreadStart => read(h, at, rest, Event::ThreadStart),
        Kind::Park => read(h, at, rest, |Park| Event::Park),
        Kind::Unpark => read(h, at, rest, |Unpark| Event::Unpark),
        Kind::AliveTasks => read(h, at, rest, Event::AliveTasks),
        Kind::PollStart => read(h, at, rest, Event::PollStart),
        Kind::PollEnd => read(h, at, rest, Event::PollEnd),
        Kind::TaskSpawn => read(h, at, rest, Event::TaskSpawn),
        Kind::TaskTerminate => read(h, at, rest, Event::TaskTerminate),
        Kind::SpanNew => read(h, at, rest, Event::SpanNew),
        Kind::SpanEnter => read(h, at, rest, Event::SpanEnter),
        Kind::SpanExit => read(h, at, rest, Event::SpanExit),
        Kind::SpanClose => read(h, at, rest, Event::SpanClose),
        Kind::SpanIds => read(h, at, rest, Event::SpanIds),
        Kind::BlockingQueued => read(h, at, rest, Event::BlockingQueued),
        Kind::BlockingStart => read(h, at, rest, Event::BlockingStart),
        Kind::BlockingEnd => read(h, at, rest, Event::BlockingEnd),
        Kind::OsSample => read(h, at, rest, Event::OsSample),
        Kind::OffCpu => read(h, at, rest, Event::OffCpu),
        Kind::Field => read(h, at, rest, Event::Field),
        Kind::Event => read(h, at, rest, Event::TracingEvent),
        Kind::WaitSample => read(h, at, rest, Event::WaitSample),
        Kind::PageFaults => read(h, at, rest, Event::PageFaults),
        Kind::Payload => None,
    }
}

/// An event read by [`events`].
#[derive(Debug, Clone, Copy)]
pub struct Located<'a> {
    /// Index of its header in the records read.
    pub at: usize,
    /// Records it spans, header included.
    pub len: usize,
    /// Its header's timestamp (clock ticks).
    pub ts: u64,
    /// The event.
    pub event: Event<'a>,
}

/// The events in `records`, oldest first. A record that starts no whole event (see
/// [`decode`]) is passed over alone, so the records after it are read as they are.
pub fn events(records: &[Record]) -> Events<'_> {
    Events { records, at: 0 }
}

/// See [`events`].
#[derive(Debug, Clone)]
pub struct Events<'a> {
    records: &'a [Record],
    at: usize,
}

impl<'a> Iterator for Events<'a> {
    type Item = Located<'a>;

    #[inline]
    fn next(&mut self) -> Option<Located<'a>> {
        while self.at < self.records.len() {
            match locate(self.records, self.at) {
                Some(located) => {
                    self.at += located.len;
                    return Some(located);
                }
                None => self.at += 1,
            }
        }
        None
    }
}

/// The `n` records at the front of `rest`, when there are `n` and all are payloads.
#[inline]
fn payloads(rest: &[Record], n: usize) -> Option<&[Record]> {
    let p = rest.get(..n)?;
    p.iter()
        .all(|r| r.kind_byte() == Kind::Payload as u8)
        .then_some(p)
}

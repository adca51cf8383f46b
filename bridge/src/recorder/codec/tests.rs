//! Every kind through a real ring and back: what a writer encodes, the analyzer decodes as the
//! same typed event; the records are the documented format; an event cut short or torn is
//! rejected, never read as something else.

use std::panic::Location;

use super::blocking::{BlockingEnd, BlockingQueued, BlockingStart};
use super::counters::Counters;
use super::fields::{Field, Text, TracingEvent, Value};
use super::os::{OffCpu, OsSample};
use super::span_ids::{SpanIds, TraceRoot};
use super::spans::{SpanClose, SpanEnter, SpanExit, SpanNew};
use super::tasks::{PollEnd, PollStart, TaskSpawn, TaskTerminate};
use super::threads::{AliveTasks, Park, ThreadStart, Unpark};
use super::waits::{self, PageFaults, WaitSample};
use super::*;
use crate::recorder::ring::RingCopy;

const TS: u64 = 1_234;
const KEY: u64 = 3 << 40 | 17;

/// The records `event` writes, read back from a ring.
fn written<'a>(event: &impl Codec<'a>) -> Vec<Record> {
    let ring = Ring::new(256);
    event.encode(TS, &ring);
    ring.snapshot(0).records().to_vec()
}

/// Metadata of a real span, for the records that point at it.
fn meta() -> &'static tracing::Metadata<'static> {
    let span = tracing::subscriber::with_default(tracing_subscriber::registry(), || {
        tracing::info_span!("codec")
    });
    span.metadata().expect("enabled under the registry")
}

fn counters() -> Option<Counters> {
    Some(Counters {
        allocations: 12,
        bytes: 3_456,
    })
}

/// A string of `len` bytes, each different from its neighbours.
fn text(len: usize) -> String {
    (0..len)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect()
}

/// One event of every kind, in every shape its layout has (counters or not, ids that follow
/// or not, each value kind, strings of 0, 1, 15 and 16 bytes...).
fn every_shape(long: &str) -> Vec<Event<'_>> {
    let m = meta();
    let root = TraceRoot {
        trace_id: 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210,
        remote_parent: None,
    };
    let field = |owner, value| {
        Event::Field(Field {
            owner,
            name: "http.route",
            value,
        })
    };
    let mut all = vec![
        Event::ThreadStart(ThreadStart {
            tid: 4_242,
            worker: Some(0),
        }),
        Event::ThreadStart(ThreadStart {
            tid: 4_243,
            worker: None,
        }),
        Event::Park,
        Event::Unpark,
        Event::AliveTasks(AliveTasks { count: 68 }),
        Event::PollStart(PollStart {
            task: 99,
            counters: None,
        }),
        Event::PollStart(PollStart {
            task: 99,
            counters: counters(),
        }),
        Event::PollEnd(PollEnd {
            schedule_latency_ns: u64::from(u32::MAX),
            counters: counters(),
        }),
        Event::PollEnd(PollEnd {
            schedule_latency_ns: 0,
            counters: None,
        }),
        Event::TaskSpawn(TaskSpawn {
            task: 100,
            parent_task: 99,
            parent_span: KEY,
            spawned_at: Some(Location::caller()),
        }),
        Event::TaskSpawn(TaskSpawn {
            task: 101,
            parent_task: 0,
            parent_span: 0,
            spawned_at: None,
        }),
        Event::TaskTerminate(TaskTerminate { task: 100 }),
        Event::SpanNew(SpanNew {
            key: KEY,
            meta: m,
            parent: 0,
            span_id: None,
        }),
        Event::SpanNew(SpanNew {
            key: KEY + 1,
            meta: m,
            parent: KEY,
            span_id: Some(u64::MAX),
        }),
        Event::SpanEnter(SpanEnter {
            key: KEY,
            counters: counters(),
        }),
        Event::SpanEnter(SpanEnter {
            key: KEY,
            counters: None,
        }),
        Event::SpanExit(SpanExit {
            key: KEY,
            counters: counters(),
        }),
        Event::SpanExit(SpanExit {
            key: KEY,
            counters: None,
        }),
        Event::SpanClose(SpanClose {
            key: KEY,
            to_analyzer: false,
        }),
        Event::SpanClose(SpanClose {
            key: KEY,
            to_analyzer: true,
        }),
        Event::SpanIds(SpanIds {
            key: KEY,
            span_id: 0xaa,
            root: None,
        }),
        Event::SpanIds(SpanIds {
            key: KEY,
            span_id: 0xaa,
            root: Some(root),
        }),
        Event::SpanIds(SpanIds {
            key: KEY,
            span_id: 0xaa,
            root: Some(TraceRoot {
                remote_parent: Some(0xbb),
                ..root
            }),
        }),
        Event::BlockingQueued(BlockingQueued {
            job: 7,
            task: 99,
            span: KEY,
        }),
        Event::BlockingStart(BlockingStart { job: 7 }),
        Event::BlockingEnd(BlockingEnd { job: 7 }),
        Event::OsSample(OsSample {
            tid: 4_242,
            on_cpu_ns: u64::MAX,
            run_queue_ns: 5_000,
        }),
        Event::TracingEvent(TracingEvent { span: KEY, meta: m }),
        field(KEY, Value::Bool(true)),
        field(KEY, Value::Bool(false)),
        field(0, Value::I64(-7)),
        field(KEY, Value::I64(i64::MIN)),
        field(KEY, Value::F64(-0.25)),
        field(KEY, Value::F64(f64::MAX)),
        field(KEY, Value::Str(Text::Given(long))),
    ];
    for len in [0, 1, 15, 16] {
        all.push(field(KEY, Value::Str(Text::Given(&long[..len]))));
    }
    for (preempted, duration_ns) in [(false, Some(0)), (true, Some(70)), (true, None)] {
        all.push(Event::OffCpu(OffCpu {
            tid: (1 << 22) - 1,
            preempted,
            out_ns: 1 << 62,
            duration_ns,
        }));
    }
    for (len, nr, state) in [(0, -1, b'D'), (1, 202, b'S'), (15, 0, b'S'), (16, 7, b'S')] {
        all.push(Event::WaitSample(WaitSample {
            tid: (1 << 22) - 1,
            state,
            nr,
            text: Text::Given(&long[..len]),
        }));
    }
    all.push(Event::WaitSample(WaitSample {
        tid: 1,
        state: b'S',
        nr: 230,
        text: Text::Given(&long[..waits::MAX_TEXT.min(long.len())]),
    }));
    all.push(Event::PageFaults(PageFaults {
        tid: (1 << 22) - 1,
        minor: u64::MAX,
        major: 7,
        inside: true,
    }));
    all.push(Event::PageFaults(PageFaults {
        tid: 1,
        minor: 0,
        major: 0,
        inside: false,
    }));
    all
}

/// Writes `event` through its kind's codec.
fn encode(event: &Event<'_>, ts: u64, ring: &Ring) {
    match event {
        Event::ThreadStart(e) => e.encode(ts, ring),
        Event::Park => Park.encode(ts, ring),
        Event::Unpark => Unpark.encode(ts, ring),
        Event::AliveTasks(e) => e.encode(ts, ring),
        Event::PollStart(e) => e.encode(ts, ring),
        Event::PollEnd(e) => e.encode(ts, ring),
        Event::TaskSpawn(e) => e.encode(ts, ring),
        Event::TaskTerminate(e) => e.encode(ts, ring),
        Event::SpanNew(e) => e.encode(ts, ring),
        Event::SpanEnter(e) => e.encode(ts, ring),
        Event::SpanExit(e) => e.encode(ts, ring),
        Event::SpanClose(e) => e.encode(ts, ring),
        Event::SpanIds(e) => e.encode(ts, ring),
        Event::BlockingQueued(e) => e.encode(ts, ring),
        Event::BlockingStart(e) => e.encode(ts, ring),
        Event::BlockingEnd(e) => e.encode(ts, ring),
        Event::OsSample(e) => e.encode(ts, ring),
        Event::OffCpu(e) => e.encode(ts, ring),
        Event::Field(e) => e.encode(ts, ring),
        Event::TracingEvent(e) => e.encode(ts, ring),
        Event::WaitSample(e) => e.encode(ts, ring),
        Event::PageFaults(e) => e.encode(ts, ring),
    }
}

fn records_of(event: &Event<'_>) -> Vec<Record> {
    let ring = Ring::new(256);
    encode(event, TS, &ring);
    ring.snapshot(0).records().to_vec()
}

#[test]
fn every_kind_reads_back_as_written() {
    let long = text(MAX_TEXT);
    let shapes = every_shape(&long);
    let mut kinds: Vec<Kind> = Vec::new();
    for event in &shapes {
        let records = records_of(event);
        let (read, len) = decode(&records).expect("a whole event decodes");
        assert_eq!(&read, event);
        assert_eq!(len, records.len(), "{event:?} takes all its records");
        assert_eq!(records[0].ts(), TS);
        kinds.extend(records[0].kind());
    }
    kinds.sort_by_key(|k| *k as u8);
    kinds.dedup();
    let all_but_payload: Vec<Kind> = Kind::ALL
        .into_iter()
        .filter(|k| *k != Kind::Payload)
        .collect();
    assert_eq!(kinds, all_but_payload, "every kind is covered");
}

/// Longest string a field in these tests carries (the field writer's own limit is lower).
const MAX_TEXT: usize = 600;

#[test]
fn a_ring_of_every_kind_reads_back_in_order() {
    let long = text(MAX_TEXT);
    let shapes = every_shape(&long);
    let ring = Ring::new(1 << 10);
    for (ts, event) in shapes.iter().enumerate() {
        encode(event, ts as u64, &ring);
    }
    let copy = ring.snapshot(0);
    let read: Vec<Located<'_>> = events(copy.records()).collect();
    assert_eq!(read.len(), shapes.len());
    for (ts, (located, event)) in read.iter().zip(&shapes).enumerate() {
        assert_eq!((located.ts, &located.event), (ts as u64, event));
        assert_eq!(copy.records()[located.at].ts(), ts as u64);
    }
}

/// The record format, word for word, as `recorder/codec`'s module docs and
/// `docs/architecture.md` describe it: a change here is a change of the format.
#[test]
fn the_records_are_the_documented_format() {
    let header = |kind, arg| Record::header(kind, TS, arg);
    let p = Record::payload;
    let bit55 = 1 << 55;
    let m = meta();
    let meta_addr = m as *const _ as u64;
    let here = Location::caller();
    let name = "name";
    let cases: Vec<(Vec<Record>, Vec<Record>)> = vec![
        (
            written(&ThreadStart {
                tid: 77,
                worker: Some(2),
            }),
            vec![header(Kind::ThreadStart, 77), p(3, 0)],
        ),
        (written(&Park), vec![header(Kind::Park, 0)]),
        (
            written(&PollStart {
                task: 5,
                counters: counters(),
            }),
            vec![header(Kind::PollStart, 5 | bit55), p(3_456, 12)],
        ),
        (
            written(&PollEnd {
                schedule_latency_ns: 9,
                counters: None,
            }),
            vec![header(Kind::PollEnd, 9)],
        ),
        (
            written(&TaskSpawn {
                task: 6,
                parent_task: 5,
                parent_span: KEY,
                spawned_at: Some(here),
            }),
            vec![
                header(Kind::TaskSpawn, 6),
                p(5, KEY),
                p(here as *const _ as u64, 0),
            ],
        ),
        (
            written(&SpanNew {
                key: KEY,
                meta: m,
                parent: 8,
                span_id: Some(0xaa),
            }),
            vec![
                header(Kind::SpanNew, KEY),
                p(meta_addr, 8 | bit55),
                p(0xaa, 0),
            ],
        ),
        (
            written(&SpanIds {
                key: KEY,
                span_id: 0xaa,
                root: Some(TraceRoot {
                    trace_id: 0x1_0000_0000_0000_0002,
                    remote_parent: Some(0xbb),
                }),
            }),
            vec![
                header(Kind::SpanIds, KEY),
                p(0xaa, 3),
                p(1, 0),
                p(2, 0),
                p(0xbb, 0),
            ],
        ),
        (
            written(&BlockingQueued {
                job: 1,
                task: 2,
                span: 3,
            }),
            vec![header(Kind::BlockingQueued, 1), p(2, 3)],
        ),
        (
            written(&OsSample {
                tid: 4,
                on_cpu_ns: 5,
                run_queue_ns: 6,
            }),
            vec![header(Kind::OsSample, 4), p(5, 6)],
        ),
        (
            written(&OffCpu {
                tid: 4,
                preempted: true,
                out_ns: 10,
                duration_ns: None,
            }),
            vec![header(Kind::OffCpu, 4 | 1 << 54 | bit55), p(10, 0)],
        ),
        (
            written(&Field {
                owner: KEY,
                name,
                value: Value::I64(-1),
            }),
            vec![
                header(Kind::Field, KEY),
                p(name.as_ptr() as u64, 4 | 2 << 16),
                p(u64::MAX, 0),
            ],
        ),
        (
            written(&Field {
                owner: 0,
                name,
                value: Value::Str(Text::Given("0123456789abcdefg")),
            }),
            vec![
                header(Kind::Field, 0),
                p(name.as_ptr() as u64, 4 | 4 << 16 | 17 << 24),
                p(
                    u64::from_le_bytes(*b"01234567"),
                    u64::from_le_bytes(*b"89abcde\0"),
                ),
                p(u64::from_le_bytes(*b"fg\0\0\0\0\0\0"), 0),
            ],
        ),
        (
            written(&TracingEvent { span: KEY, meta: m }),
            vec![header(Kind::Event, KEY), p(meta_addr, 0)],
        ),
    ];
    for (got, want) in cases {
        assert_eq!(got, want);
    }
}

/// An event whose payloads the snapshot cut off (its writer was mid-event) is not read: not
/// with fewer payloads, not with another event's records in their place.
#[test]
fn an_event_cut_short_is_rejected() {
    let long = text(40);
    for event in every_shape(&long) {
        let records = records_of(&event);
        for cut in 1..records.len() {
            assert_eq!(decode(&records[..cut]), None, "{event:?} cut to {cut}");
        }
    }
}

/// An event one of whose payloads was overwritten by another event's header (a torn read of
/// a wrapping ring) is rejected, and the reader goes on from the next record.
#[test]
fn an_event_with_a_header_among_its_payloads_is_rejected() {
    let long = text(40);
    let intruder = Record::header(Kind::SpanClose, TS, KEY);
    for event in every_shape(&long) {
        let records = records_of(&event);
        for at in 1..records.len() {
            let mut torn = records.clone();
            torn[at] = intruder;
            assert_eq!(decode(&torn), None, "{event:?} torn at {at}");
            let read: Vec<Event<'_>> = events(&torn).map(|l| l.event).collect();
            assert_eq!(
                read.first(),
                Some(&Event::SpanClose(SpanClose {
                    key: KEY,
                    to_analyzer: false
                })),
                "{event:?} torn at {at}: the intruder is read, nothing before it"
            );
        }
    }
}

/// Records no header starts (a payload whose header was overwritten, a kind byte no writer
/// produces) are passed over one by one; the events after them are read as written.
#[test]
fn stray_payloads_and_unknown_kinds_are_passed_over() {
    let close = Record::header(Kind::SpanClose, TS, KEY);
    let unknown = Record {
        w0: TS,
        w1: (Kind::COUNT as u64) << 56 | KEY,
    };
    let records = [Record::payload(1, 2), unknown, Record::payload(3, 4), close];
    assert_eq!(decode(&records[..1]), None);
    assert_eq!(decode(&records[1..]), None);
    let read: Vec<(usize, Event<'_>)> = events(&records).map(|l| (l.at, l.event)).collect();
    assert_eq!(
        read,
        vec![(
            3,
            Event::SpanClose(SpanClose {
                key: KEY,
                to_analyzer: false
            })
        )]
    );
}

/// A field whose value kind no writer produces is rejected rather than read as some value.
#[test]
fn a_field_of_an_unknown_value_kind_is_rejected() {
    let mut records = written(&Field {
        owner: KEY,
        name: "n",
        value: Value::I64(1),
    });
    records[1] = Record::payload(records[1].w0, records[1].arg() | 0xff << 16);
    assert_eq!(decode(&records), None);
}

/// A boundary's counters are not taken from a record that is not its payload.
#[test]
fn counters_announced_but_missing_are_not_invented() {
    let mut records = written(&SpanExit {
        key: KEY,
        counters: counters(),
    });
    records.truncate(1);
    records.push(Record::header(Kind::Park, TS, 0));
    let read: Vec<Event<'_>> = events(&records).map(|l| l.event).collect();
    assert_eq!(read, vec![Event::Park]);
    assert!(read.iter().all(|e| e.counters().is_none()));
}

proptest::proptest! {
    /// What a reader can be handed: a ring's records read while the writer laps it (the copy
    /// starts anywhere, mid-event included), read once more later (the copy keeps what it had
    /// and appends), and cut at any record (the writer mid-event). Every event wholly inside
    /// the copy is read, in order, at its place and with its stamp; nothing else is.
    /// Arbitrary words are not tried: a ring holds only what writers wrote (records carry
    /// `&'static` metadata pointers), so what a read can get wrong is where it starts and ends.
    #[test]
    fn a_lapped_and_cut_ring_reads_back_exactly_its_whole_events(
        picks in proptest::collection::vec(proptest::prelude::any::<proptest::sample::Index>(), 0..80),
        ring_log in 4u32..9,
        first_read in proptest::prelude::any::<proptest::sample::Index>(),
        keep_from in proptest::prelude::any::<proptest::sample::Index>(),
        cut in proptest::prelude::any::<proptest::sample::Index>(),
    ) {
        let long = text(40);
        let shapes = every_shape(&long);
        let stream: Vec<&Event<'_>> = picks.iter().map(|i| &shapes[i.index(shapes.len())]).collect();
        let ring = Ring::new(1 << ring_log);
        let mut copy = RingCopy::default();
        // (first record's number, records) of each event, numbered as the ring numbers them.
        let mut written = Vec::new();
        let mut seq = 0u64;
        let first_read = first_read.index(stream.len() + 1);
        for (ts, event) in stream.iter().enumerate() {
            if ts == first_read {
                ring.refresh(0, &mut copy);
            }
            encode(event, ts as u64, &ring);
            let len = records_of(event).len() as u64;
            written.push((seq, len, ts as u64, *event));
            seq += len;
        }
        ring.refresh(keep_from.index(seq as usize + 1) as u64, &mut copy);
        let records = copy.records();
        let records = &records[..cut.index(records.len() + 1)];
        let (from, to) = (copy.first_seq(), copy.first_seq() + records.len() as u64);
        let expected: Vec<(u64, u64, &Event<'_>)> = written
            .iter()
            .filter(|(at, len, ..)| *at >= from && at + len <= to)
            .map(|(at, _, ts, event)| (*at, *ts, *event))
            .collect();
        let read: Vec<Located<'_>> = events(records).collect();
        let read: Vec<(u64, u64, &Event<'_>)> =
            read.iter().map(|l| (from + l.at as u64, l.ts, &l.event)).collect();
        proptest::prop_assert_eq!(read, expected);
    }
}

use tracing::Metadata;

use super::*;
use crate::recorder::codec::Codec;
use crate::recorder::codec::fields::{Text, TracingEvent, Value};
use crate::recorder::codec::span_ids::TraceRoot;
use crate::recorder::codec::spans::{SpanEnter, SpanExit};
use crate::recorder::codec::threads::ThreadStart;
use crate::recorder::ring::Ring;

const ROOT: u64 = 1 << 40 | 1;
const CHILD: u64 = 1 << 40 | 2;
const TRACE: u128 = 0xabc;
const ROOT_ID: u64 = 0x11;
const CHILD_ID: u64 = 0x22;

/// Metadata of a real span, for the records that point at it.
fn meta() -> &'static Metadata<'static> {
    let span = tracing::subscriber::with_default(tracing_subscriber::registry(), || {
        tracing::info_span!("step")
    });
    span.metadata().expect("enabled under the registry")
}

/// A ring the test writes, stamped with the ticks it gives (ns: identity calibration).
struct Writer {
    ring: Ring,
    read: u64,
}

impl Writer {
    fn new() -> Self {
        Writer {
            ring: Ring::new(256),
            read: 0,
        }
    }

    fn put<'a>(&self, ts: u64, event: &impl Codec<'a>) -> &Self {
        event.encode(ts, &self.ring);
        self
    }

    /// Feeds what was written since the last feed.
    fn feed(&mut self, stream: &mut TraceStream, ring: usize) {
        self.feed_until(stream, ring, u64::MAX);
    }

    /// Feeds what was written since the last feed, stamped at `until` or before.
    fn feed_until(&mut self, stream: &mut TraceStream, ring: usize, until: u64) {
        let copy = self.ring.snapshot(self.read);
        let used = stream.feed(ring, copy.records(), &Calibration::identity(0), until);
        self.read = copy.first_seq() + used as u64;
    }
}

fn new_span(key: u64, parent: u64, span_id: Option<u64>) -> SpanNew {
    SpanNew {
        key,
        meta: meta(),
        parent,
        span_id,
    }
}

fn root_ids() -> SpanIds {
    SpanIds {
        key: ROOT,
        span_id: ROOT_ID,
        root: Some(TraceRoot {
            trace_id: TRACE,
            remote_parent: None,
        }),
    }
}

/// The child's field `rows = 3`.
fn rows() -> Field<'static> {
    Field {
        owner: CHILD,
        name: "rows",
        value: Value::I64(3),
    }
}

fn close(key: u64, to_analyzer: bool) -> SpanClose {
    SpanClose { key, to_analyzer }
}

fn enter(key: u64) -> SpanEnter {
    SpanEnter {
        key,
        counters: None,
    }
}

fn exit(key: u64) -> SpanExit {
    SpanExit {
        key,
        counters: None,
    }
}

fn stream(rings: usize) -> TraceStream {
    let mut s = TraceStream::new();
    for r in 0..rings {
        s.start_ring(r, 7);
    }
    s
}

/// A root and a child on one ring: the child's fields and event, both entered.
fn request(w: &Writer) {
    w.put(10, &new_span(ROOT, 0, None))
        .put(11, &root_ids())
        .put(11, &enter(ROOT))
        .put(12, &new_span(CHILD, ROOT, Some(CHILD_ID)))
        .put(12, &rows())
        .put(13, &enter(CHILD))
        .put(
            14,
            &TracingEvent {
                span: CHILD,
                meta: meta(),
            },
        )
        .put(
            14,
            &Field {
                owner: 0,
                name: "message",
                value: Value::Str(Text::Given("done")),
            },
        )
        .put(20, &exit(CHILD));
}

/// [`request`], then the child's close (21), the root's exit (22) and close (30).
fn finished_request(w: &Writer) {
    request(w);
    w.put(21, &close(CHILD, false))
        .put(22, &exit(ROOT))
        .put(30, &close(ROOT, false));
}

#[test]
fn a_released_trace_hands_over_every_span_with_its_ids_fields_events_and_time_entered() {
    let mut w = Writer::new();
    finished_request(&w);
    let mut s = stream(1);
    w.feed(&mut s, 0);
    let ready = s.end_pass(&Calibration::identity(0));
    assert_eq!(ready.len(), 2);
    let child = &ready[0];
    assert_eq!(
        (child.info.otel_span_id, child.parent_span_id),
        (CHILD_ID, ROOT_ID)
    );
    assert_eq!(child.trace_id, TRACE);
    assert_eq!((child.info.start, child.end, child.busy), (12, 21, 7));
    assert_eq!(child.info.fields, vec![("rows", FieldValue::I64(3))]);
    assert_eq!(child.info.events.len(), 1);
    assert_eq!(
        child.info.events[0].fields,
        vec![("message", FieldValue::Str("done".into()))]
    );
    let root = &ready[1];
    assert_eq!((root.info.otel_span_id, root.parent_span_id), (ROOT_ID, 0));
    assert_eq!(
        (root.busy, root.remote_parent, root.data_loss),
        (11, false, false)
    );
    assert_eq!(s.held(), 0, "nothing kept once the trace is out");
}

/// A pass reads up to a tick; what was written after it waits for the next pass, so a stream
/// read slice by slice of time exports what one read at once does.
#[test]
fn a_pass_reads_up_to_its_tick_and_the_rest_waits_for_the_next() {
    let cal = Calibration::identity(0);
    let mut w = Writer::new();
    finished_request(&w);
    let mut s = stream(1);
    w.feed_until(&mut s, 0, 20);
    assert!(s.end_pass(&cal).is_empty(), "nothing closed by tick 20");
    assert_eq!(s.held(), 2);
    w.feed_until(&mut s, 0, 25);
    assert!(s.end_pass(&cal).is_empty(), "the child waits for its root");
    assert_eq!(s.held(), 2);
    w.feed_until(&mut s, 0, u64::MAX);
    let ready = s.end_pass(&cal);
    assert_eq!(ready.len(), 2);
    let child = &ready[0];
    assert_eq!((child.info.start, child.end, child.busy), (12, 21, 7));
    assert_eq!(child.info.events.len(), 1);
    assert_eq!((ready[1].end, ready[1].busy), (30, 11));
    assert_eq!(s.held(), 0);
}

#[test]
fn a_trace_the_analyzer_took_is_dropped_and_later_spans_with_it() {
    let mut w = Writer::new();
    request(&w);
    w.put(22, &exit(ROOT)).put(30, &close(ROOT, true));
    let mut s = stream(1);
    w.feed(&mut s, 0);
    assert!(s.end_pass(&Calibration::identity(0)).is_empty());
    w.put(40, &close(CHILD, false));
    w.feed(&mut s, 0);
    assert!(s.end_pass(&Calibration::identity(0)).is_empty());
    assert_eq!(s.counters().to_analyzer, 2);
    assert_eq!(s.held(), 0);
}

#[test]
fn spans_wait_for_their_root_and_spans_closing_after_it_follow_alone() {
    let mut w = Writer::new();
    request(&w);
    w.put(22, &exit(ROOT));
    let mut s = stream(1);
    w.feed(&mut s, 0);
    assert!(
        s.end_pass(&Calibration::identity(0)).is_empty(),
        "root still open"
    );
    w.put(30, &close(ROOT, false));
    w.feed(&mut s, 0);
    let ready = s.end_pass(&Calibration::identity(0));
    assert_eq!(ready.len(), 1);
    assert_eq!(ready[0].info.otel_span_id, ROOT_ID);
    w.put(40, &close(CHILD, false));
    w.feed(&mut s, 0);
    let ready = s.end_pass(&Calibration::identity(0));
    assert_eq!(ready.len(), 1);
    assert_eq!(
        (ready[0].parent_span_id, ready[0].trace_id),
        (ROOT_ID, TRACE)
    );
    assert_eq!(s.held(), 0);
}

#[test]
fn records_read_before_their_span_s_creation_are_applied_at_the_end_of_the_pass() {
    // The child moves to a second ring, read first: its entry, field and close come before
    // the creation in the pass.
    let (mut a, mut b) = (Writer::new(), Writer::new());
    b.put(10, &new_span(ROOT, 0, None))
        .put(11, &root_ids())
        .put(12, &new_span(CHILD, ROOT, Some(CHILD_ID)));
    a.put(
        1,
        &ThreadStart {
            tid: 8,
            worker: None,
        },
    )
    .put(13, &enter(CHILD))
    .put(14, &rows())
    .put(15, &exit(CHILD))
    .put(16, &close(CHILD, false))
    .put(20, &close(ROOT, false));
    let (_, child) = child_read_a_then_b(&mut a, &mut b);
    assert_eq!((child.busy, child.end), (2, 16));
    assert_eq!(child.info.fields, vec![("rows", FieldValue::I64(3))]);
}

/// Reads ring `a`, then ring `b`, in one pass that must release the root and the child;
/// returns the stream and the child.
fn child_read_a_then_b(a: &mut Writer, b: &mut Writer) -> (TraceStream, Ready) {
    let mut s = stream(2);
    a.feed(&mut s, 0);
    b.feed(&mut s, 1);
    let ready = s.end_pass(&Calibration::identity(0));
    assert_eq!(ready.len(), 2, "{ready:?}");
    let child = ready.into_iter().find(|r| r.info.otel_span_id == CHILD_ID);
    (s, child.expect("the child released"))
}

#[test]
fn what_cannot_be_rebuilt_is_counted() {
    let mut w = Writer::new();
    // A child whose root was never read, and its close.
    w.put(10, &new_span(CHILD, ROOT, Some(CHILD_ID)))
        .put(11, &close(CHILD, false));
    let mut s = stream(1);
    w.feed(&mut s, 0);
    assert!(s.end_pass(&Calibration::identity(0)).is_empty());
    assert_eq!(s.counters().orphaned_spans, 0, "it waits one more pass");
    assert!(s.end_pass(&Calibration::identity(0)).is_empty());
    assert_eq!(s.counters().orphaned_spans, 1);
    // Records missed while a trace was open mark it.
    w.put(20, &new_span(ROOT, 0, None)).put(21, &root_ids());
    w.feed(&mut s, 0);
    s.missed(5);
    w.put(30, &close(ROOT, false));
    w.feed(&mut s, 0);
    let ready = s.end_pass(&Calibration::identity(0));
    assert!(ready[0].data_loss);
    assert_eq!(s.counters().missed_records, 5);
}

#[test]
fn a_child_created_on_a_ring_read_before_its_parent_s_joins_the_trace() {
    // The request's task moved to another worker between the root's creation and the
    // child's, and that worker's ring is read first.
    let (mut a, mut b) = (Writer::new(), Writer::new());
    b.put(10, &new_span(ROOT, 0, None)).put(11, &root_ids());
    a.put(12, &new_span(CHILD, ROOT, Some(CHILD_ID)))
        .put(12, &rows())
        .put(13, &enter(CHILD))
        .put(15, &exit(CHILD))
        .put(16, &close(CHILD, false))
        .put(20, &close(ROOT, false));
    let (s, child) = child_read_a_then_b(&mut a, &mut b);
    assert_eq!((child.parent_span_id, child.trace_id), (ROOT_ID, TRACE));
    assert_eq!((child.busy, child.end), (2, 16));
    assert_eq!(child.info.fields, vec![("rows", FieldValue::I64(3))]);
    assert_eq!(s.counters().orphaned_spans, 0);
}

#[test]
fn a_full_stream_drops_the_traces_that_missed_records_first() {
    // A trace whose child's close was overwritten: held until the stream is full.
    let mut w = Writer::new();
    w.put(10, &new_span(ROOT, 0, None))
        .put(11, &root_ids())
        .put(12, &new_span(CHILD, ROOT, Some(CHILD_ID)));
    let mut s = TraceStream::holding_at_most(2);
    s.start_ring(0, 7);
    w.feed(&mut s, 0);
    s.missed(3);
    // A new trace finds the stream full: the lossy one makes room and is counted.
    const NEXT: u64 = 1 << 40 | 9;
    w.put(20, &new_span(NEXT, 0, None))
        .put(
            21,
            &SpanIds {
                key: NEXT,
                span_id: 0x33,
                root: Some(TraceRoot {
                    trace_id: TRACE + 1,
                    remote_parent: None,
                }),
            },
        )
        .put(30, &close(NEXT, false));
    w.feed(&mut s, 0);
    let ready = s.end_pass(&Calibration::identity(0));
    assert_eq!(ready.len(), 1, "{ready:?}");
    assert_eq!((ready[0].trace_id, ready[0].data_loss), (TRACE + 1, false));
    assert_eq!(s.counters().untracked, 2, "the lossy trace's two spans");
    assert_eq!(s.held(), 0);
}

#[test]
fn a_span_whose_creation_is_read_a_pass_after_its_close_is_still_exported() {
    // Pass 1 reads ring b before the child is created there, then ring a, where the child
    // has moved and closed already.
    let (mut a, mut b) = (Writer::new(), Writer::new());
    b.put(10, &new_span(ROOT, 0, None)).put(11, &root_ids());
    let mut s = stream(2);
    b.feed(&mut s, 1);
    b.put(12, &new_span(CHILD, ROOT, Some(CHILD_ID)));
    a.put(13, &enter(CHILD))
        .put(14, &exit(CHILD))
        .put(15, &close(CHILD, false));
    a.feed(&mut s, 0);
    assert!(s.end_pass(&Calibration::identity(0)).is_empty());
    b.put(20, &close(ROOT, false));
    b.feed(&mut s, 1);
    a.feed(&mut s, 0);
    let ready = s.end_pass(&Calibration::identity(0));
    assert_eq!(ready.len(), 2, "{ready:?}");
    let child = ready.iter().find(|r| r.info.otel_span_id == CHILD_ID);
    assert_eq!(child.map(|c| (c.end, c.busy)), Some((15, 1)));
    assert_eq!(s.counters().orphaned_spans, 0);
}

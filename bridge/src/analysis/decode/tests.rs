use super::*;
use crate::recorder::codec::Codec;
use crate::recorder::codec::counters::Counters;
use crate::recorder::codec::fields::{Field, Text, TracingEvent, Value};
use crate::recorder::codec::os::OffCpu;
use crate::recorder::codec::span_ids::{SpanIds, TraceRoot};
use crate::recorder::codec::spans::{SpanClose, SpanEnter, SpanExit, SpanNew};
use crate::recorder::codec::threads::{Park, Unpark};
use crate::recorder::ring::Ring;
use crate::recorder::{Owner, Record};

/// Events written to one ring, stamped 1, 2, 3… clock ticks.
struct Writer {
    ring: Ring,
    ts: u64,
}

impl Writer {
    fn put<'a>(&mut self, event: &impl Codec<'a>) -> &mut Self {
        self.ts += 1;
        event.encode(self.ts, &self.ring);
        self
    }

    fn thread(&self) -> ThreadRecords {
        thread_of(&self.ring)
    }
}

/// `ring`'s records, read whole, as a snapshot holds them.
fn thread_of(ring: &Ring) -> ThreadRecords {
    ThreadRecords {
        ring: 0,
        owners: vec![Owner::default()],
        copy: ring.snapshot(0),
    }
}

fn writer() -> Writer {
    Writer {
        ring: Ring::new(64),
        ts: 0,
    }
}

/// A snapshot of these rings.
fn snapshot(rings: &[&Writer]) -> RecorderSnapshot {
    RecorderSnapshot {
        threads: rings.iter().map(|w| w.thread()).collect(),
        ..RecorderSnapshot::default()
    }
}

/// A snapshot of `ring` alone, read whole.
fn one_ring(ring: &Ring) -> RecorderSnapshot {
    RecorderSnapshot {
        threads: vec![thread_of(ring)],
        ..RecorderSnapshot::default()
    }
}

/// Metadata of a real span, for the records that point at it.
fn meta(name: &'static str) -> &'static tracing::Metadata<'static> {
    let span = tracing::subscriber::with_default(tracing_subscriber::registry(), || match name {
        "root" => tracing::info_span!("root"),
        _ => tracing::info_span!("child"),
    });
    span.metadata().expect("enabled under the registry")
}

fn counters(allocations: u64, bytes: u64) -> Option<Counters> {
    Some(Counters { allocations, bytes })
}

#[test]
fn allocation_counters_ride_on_boundaries_and_carry_forward() {
    let (ours, other) = (7, 9);
    // The other span's exit changes the counters; our entry starts from those (none carried:
    // unchanged) and ends with its own.
    let mut w = writer();
    w.put(&SpanEnter {
        key: other,
        counters: counters(1, 100),
    })
    .put(&SpanExit {
        key: other,
        counters: counters(5, 500),
    })
    .put(&SpanEnter {
        key: ours,
        counters: None,
    })
    .put(&SpanExit {
        key: ours,
        counters: counters(7, 700),
    });
    let snap = snapshot(&[&w]);
    let cal = Calibration::now();
    let full = decode(&snap, &cal, 0, u64::MAX);
    let keys: IdSet<u64> = [ours].into_iter().collect();
    let light = decode_spans(&snap, &cal, 0, u64::MAX, &keys);
    for d in [&full, &light] {
        let entry = d.threads[0]
            .entries
            .iter()
            .find(|e| e.span == ours)
            .expect("our entry");
        let expected = Some(((5, 500), (7, 700)));
        assert_eq!(entry.alloc, expected, "light: {}", d.light);
    }
    let kept = light.threads[0].entries.len();
    assert_eq!(kept, 1, "the other span is skipped");
}

/// A worker parked since before the window shows its unpark first: the park is kept (from the
/// window's start), or the worker would look busy until then.
#[test]
fn an_unpark_before_any_park_ends_a_park_from_before_the_window() {
    let mut w = writer();
    w.put(&Unpark).put(&Park).put(&Unpark).put(&Park);
    let d = decode(&snapshot(&[&w]), &Calibration::identity(0), 0, 10);
    assert_eq!(d.threads[0].parks, vec![(0, 1), (2, 3), (4, 10)]);
}

/// Off-CPU intervals from perf: one recorded open at a drain and closed later keeps its closed
/// form; one never closed lasts until the thread's next interval, or the snapshot.
#[test]
fn open_off_cpu_intervals_end_at_their_pair_the_next_one_or_the_snapshot() {
    let tid = 42;
    let off = |out_ns, duration_ns, preempted| OffCpu {
        tid,
        preempted,
        out_ns,
        duration_ns,
    };
    let mut w = writer();
    w.put(&off(100, Some(0), false)) // registration: on CPU from 100
        .put(&off(200, None, false))
        .put(&off(200, Some(50), true))
        .put(&off(300, None, false)) // its pair was lost
        .put(&off(400, Some(10), false))
        .put(&off(500, None, false)); // the thread exited
    let d = decode(&snapshot(&[&w]), &Calibration::identity(0), 0, 1_000);
    assert_eq!(
        d.off_cpu[&tid],
        vec![
            (100, 100, false),
            (200, 250, true),
            (300, 400, false),
            (400, 410, false),
            (500, 1_000, false),
        ]
    );
}

/// Issue #17: a span created on one ring and closed, named and logged in on another that is
/// decoded first keeps its ids, fields, events (with their own fields) and close.
#[test]
fn what_an_earlier_ring_says_about_a_span_reaches_it() {
    let key = 1 << 40 | 1;
    let mut other = writer();
    other
        .put(&SpanIds {
            key,
            span_id: 0xab,
            root: Some(TraceRoot {
                trace_id: 0xcd,
                remote_parent: Some(0xef),
            }),
        })
        .put(&Field {
            owner: key,
            name: "otel.name",
            value: Value::Str(Text::Given("GET /x")),
        })
        .put(&TracingEvent {
            span: key,
            meta: meta("child"),
        })
        .put(&Field {
            owner: 0,
            name: "n",
            value: Value::I64(-3),
        })
        .put(&SpanClose {
            key,
            to_analyzer: false,
        });
    let mut home = writer();
    home.put(&SpanNew {
        key,
        meta: meta("root"),
        parent: 0,
        span_id: None,
    });
    let d = decode(
        &snapshot(&[&other, &home]),
        &Calibration::identity(0),
        0,
        10,
    );
    let s = &d.spans[&key];
    assert_eq!(s.name, "root");
    assert_eq!(
        (s.otel_span_id, s.trace_id, s.remote_parent),
        (0xab, Some(0xcd), Some(0xef))
    );
    assert_eq!(s.end, Some(5));
    assert_eq!(d.span_name(key), "GET /x");
    assert_eq!(s.events.len(), 1);
    assert_eq!(s.events[0].fields, vec![("n", FieldValue::I64(-3))]);
    assert_eq!(d.by_otel_id[&0xab], key);
}

/// A light decode by OTel span id finds the root, then its children on any ring (a child's
/// span id rides on its creation), and keeps an event's fields only with the event.
#[test]
fn a_light_decode_by_otel_id_keeps_the_tree_and_its_events_only() {
    let (root, child, stranger) = (1 << 40 | 1, 2 << 40 | 1, 1 << 40 | 2);
    let mut a = writer();
    a.put(&SpanNew {
        key: root,
        meta: meta("root"),
        parent: 0,
        span_id: None,
    })
    .put(&SpanIds {
        key: root,
        span_id: 0x11,
        root: Some(TraceRoot {
            trace_id: 0x22,
            remote_parent: None,
        }),
    })
    .put(&SpanNew {
        key: stranger,
        meta: meta("root"),
        parent: 0,
        span_id: None,
    })
    .put(&TracingEvent {
        span: stranger,
        meta: meta("child"),
    })
    .put(&Field {
        owner: 0,
        name: "stranger's",
        value: Value::Bool(true),
    });
    let mut b = writer();
    b.put(&SpanNew {
        key: child,
        meta: meta("child"),
        parent: root,
        span_id: Some(0x33),
    })
    .put(&TracingEvent {
        span: child,
        meta: meta("child"),
    })
    .put(&Field {
        owner: 0,
        name: "ours",
        value: Value::F64(1.5),
    });
    let ids: IdSet<u64> = [0x11].into_iter().collect();
    let snap = snapshot(&[&a, &b]);
    let d = decode_spans_by_otel_id(&snap, &Calibration::identity(0), 0, 10, &ids);
    let mut keys: Vec<u64> = d.spans.keys().copied().collect();
    keys.sort_unstable();
    assert_eq!(keys, vec![root, child]);
    assert_eq!(d.spans[&child].otel_span_id, 0x33);
    let fields = &d.spans[&child].events[0].fields;
    assert_eq!(fields, &vec![("ours", FieldValue::F64(1.5))]);
}

/// A header whose payloads the snapshot cut off, and a payload whose header was overwritten,
/// are passed over: the events around them are read as written, nothing is misread.
#[test]
fn a_cut_event_and_a_stray_payload_are_passed_over() {
    let key = 1 << 40 | 1;
    let ring = Ring::new(64);
    ring.push(Record::payload(7, 7)); // its header was overwritten
    SpanEnter {
        key,
        counters: None,
    }
    .encode(1, &ring);
    SpanExit {
        key,
        counters: None,
    }
    .encode(2, &ring);
    // A span id announced but not there yet.
    ring.push(Record::header(Kind::SpanIds, 3, key));
    let snap = one_ring(&ring);
    let d = decode(&snap, &Calibration::identity(0), 0, 10);
    let entries: Vec<(u64, u64, u64)> = d.threads[0]
        .entries
        .iter()
        .map(|e| (e.span, e.start, e.end))
        .collect();
    assert_eq!(entries, vec![(key, 1, 2)]);
    assert!(d.by_otel_id.is_empty(), "{:?}", d.by_otel_id);
}

/// A ring that lost records: records are complete from just after its oldest header's
/// stamp on (records overwritten before it may share that stamp), not from the word a stray
/// payload (its header overwritten) begins with, which is no time.
#[test]
fn a_ring_that_lost_records_is_complete_after_its_oldest_header() {
    let ring = Ring::new(4);
    ring.push(Record::header(Kind::Park, 1, 0));
    ring.push(Record::header(Kind::SpanIds, 2, 1 << 40 | 1));
    ring.push(Record::payload(1 << 40, 0));
    for ts in 5..=7 {
        ring.push(Record::header(Kind::Unpark, ts, 0));
    }
    let snap = one_ring(&ring);
    assert_eq!(snap.threads[0].records()[0].kind(), Some(Kind::Payload));
    let d = decode(&snap, &Calibration::identity(0), 0, 10);
    assert_eq!(d.lost_records, 2);
    assert_eq!(d.complete_since, Some(6));
}

/// A local root's creation overwritten, its fields (stamped with the creation's time) held:
/// the span began before the rings were complete, so its trace is known to have lost records.
#[test]
fn a_span_created_at_the_oldest_stamp_held_began_before_the_rings_were_complete() {
    let key = 1 << 40 | 1;
    let ring = Ring::new(8);
    SpanNew {
        key,
        meta: meta("root"),
        parent: 0,
        span_id: None,
    }
    .encode(5, &ring);
    let fields_from = ring.written();
    Field {
        owner: key,
        name: "route",
        value: Value::I64(7),
    }
    .encode(5, &ring);
    // Overwrites the creation, not the field.
    while ring.written() < fields_from + ring.capacity() as u64 {
        Unpark.encode(6, &ring);
    }
    let snap = one_ring(&ring);
    let d = decode(&snap, &Calibration::identity(0), 0, 10);
    assert!(d.lost_records > 0 && !d.spans.contains_key(&key));
    assert!(
        d.complete_since.is_some_and(|c| c > 5),
        "the root began at 5: {:?}",
        d.complete_since
    );
}

/// A request's own window of a larger snapshot: the entries stamped inside it, none before or
/// after it, and the count of records it reads.
#[test]
fn a_window_between_two_times_reads_only_its_records() {
    let mut w = writer();
    for key in 1..=4 {
        w.put(&SpanEnter {
            key,
            counters: None,
        })
        .put(&SpanExit {
            key,
            counters: counters(key, key * 10),
        });
    }
    // Stamps: entries of key k at 2k-1, exits at 2k; exits carry a payload each.
    let snap = snapshot(&[&w]);
    let cal = Calibration::identity(0);
    let d = decode_between(&snap, &cal, 3, 6);
    let spans: Vec<u64> = d.threads[0].entries.iter().map(|e| e.span).collect();
    assert_eq!(spans, vec![2, 3], "keys 2 and 3 only");
    // From the last header before the window (key 1's exit) to the first after it.
    assert_eq!(records_between(&snap, &cal, 3, 6), 8);
    assert_eq!(
        records_between(&snap, &cal, 100, 200),
        2,
        "past the end: the last event before it alone"
    );
    let all = decode(&snap, &cal, 0, 100);
    assert_eq!(all.threads[0].entries.len(), 4);
}

/// The thinned start counts answer "a time with at least n starts since" conservatively, and
/// nothing when too few are known.
#[test]
fn start_marks_bound_the_nth_last_start_from_below() {
    let mut m = decoded::StartMarks::default();
    for k in 0..1_000u64 {
        m.note(|| k * 10);
    }
    assert_eq!(m.seen(), 1_000);
    // 900 starts precede t = 9,000; 100 back is start 800 at the latest, kept ones are every
    // 64th: start 768 (time 7,680) is the last kept one with at least 100 after it.
    let x = m.nth_last_before(9_000, 100).expect("enough starts");
    assert!(x <= 8_000, "{x}");
    assert!((x..9_000).step_by(10).count() >= 100);
    assert_eq!(x, 7_680);
    assert_eq!(m.nth_last_before(9_000, 900), None);
    assert_eq!(m.nth_last_before(0, 1), None);
}

/// Outermost entries count ticks in a stable build: a task's poll enters its span once, and
/// `Instrumented` entering the same span again to drop the future (right after the poll's
/// exit) is not another start; nested entries never are.
#[test]
fn an_immediate_reentry_of_the_span_just_exited_is_not_a_new_start() {
    let (a, b, child) = (1, 2, 3);
    let enter = |key| SpanEnter {
        key,
        counters: None,
    };
    let exit = |key| SpanExit {
        key,
        counters: None,
    };
    let mut w = writer();
    // Poll of a's task: a, and its child inside it.
    w.put(&enter(a))
        .put(&enter(child))
        .put(&exit(child))
        .put(&exit(a));
    // a entered again to drop its future: the same task, no new start.
    w.put(&enter(a)).put(&exit(a));
    // Another task's poll, then a's task again: two more starts.
    w.put(&enter(b)).put(&exit(b)).put(&enter(a)).put(&exit(a));
    let cal = Calibration::identity(0);
    let d = decode(&one_ring(&w.ring), &cal, 0, 100);
    assert_eq!(d.threads[0].outer_entries.seen(), 3);
    assert_eq!(
        d.threads[0].entries.len(),
        5,
        "every entry is still an entry"
    );
}

/// The kernel counts a run-queue wait when it ends: a schedstat sample taken during one (the
/// sampler on the thread's CPU, preempting it) does not show it yet, and the next shows all of
/// it. Decoded, the wait is where it happened: OS wait before the sample, not time blocked.
#[test]
fn a_run_queue_wait_under_way_at_a_sample_is_os_wait_before_it() {
    use crate::analysis::os_time::{OsSplit, split};
    use crate::recorder::codec::os::OsSample;
    const MS: u64 = 1_000_000;
    let ring = Ring::new(64);
    // On a CPU 0–5 ms, in the run queue 5–15 ms (the sample at 10 ms sees no wait yet), on a
    // CPU 15–20 ms; from tick 1 (0 is no time).
    for (at, on_cpu_ns, run_queue_ns) in
        [(0, 0, 0), (10 * MS, 5 * MS, 0), (20 * MS, 10 * MS, 10 * MS)]
    {
        let sample = OsSample {
            tid: 7,
            on_cpu_ns,
            run_queue_ns,
        };
        sample.encode(1 + at, &ring);
    }
    let d = decode(&one_ring(&ring), &Calibration::identity(0), 0, 1 + 20 * MS);
    let split_of = |a, b| split(&d, 7, 1 + a, 1 + b);
    assert_eq!(
        split_of(10 * MS, 20 * MS),
        OsSplit {
            running: 5 * MS,
            os_wait: 5 * MS,
            blocked: 0
        }
    );
    let before = split_of(0, 10 * MS);
    assert_eq!(before.blocked, 0, "{before:?}");
    assert_eq!(before.os_wait, 5 * MS, "{before:?}");
}

//! The analyzer's price for one violating span, as the recorder's window grows.
//!
//! One thread fills the recorder with synthetic requests through the public write path
//! (`recorder::write` of typed events, the same records the tokio hooks and the tracing layer
//! write): per request a root span and a child span with their OTel ids, a spawned sub-task,
//! three polls, span enters/exits/closes and a park. Around each level's requests one slow
//! request is open the whole time (its task waits for a worker at the end), and that span is
//! the target. Levels are cumulative: ~1e3, then ~1e4, then ~1e5 events in the recorder.
//!
//! Timed per level, as the analyzer thread does for a batch of one slow span (and, as an
//! overloaded analyzer does, a light decode of the target's own spans from its start plus
//! the breakdown without culprits):
//! `FlightRecorder::snapshot` + `Calibration::now` + `analysis::decode` (window = span start
//! minus 1 s, like the processor) + `analysis::analyze`; and, separately, `analyzer::enrich` of a
//! dummy `SpanData` with that breakdown (`Detail::Events`, 32 events at most). The size of what
//! enrichment adds to the span is printed once per level.
//!
//! Run: `cargo bench -p granular --bench analysis -- --warm-up-time 1 --measurement-time 3`;
//! smoke: `cargo bench -p granular --bench analysis -- --test`. Results in docs/benchmarks.md.

use std::borrow::Cow;
use std::time::{Duration, Instant, SystemTime};

use criterion::{BenchmarkId, Criterion};
use granular::__internal::analysis::IdSet;
use granular::__internal::analysis::{
    Breakdown, Category, Decoded, Target, analyze, decode, decode_spans,
};
use granular::__internal::analysis::{Extras, enrich};
use granular::__internal::clock::{self, Calibration};
use granular::__internal::recorder::codec;
use granular::__internal::recorder::codec::span_ids::{SpanIds, TraceRoot};
use granular::__internal::recorder::codec::spans::{SpanClose, SpanEnter, SpanExit, SpanNew};
use granular::__internal::recorder::codec::tasks::{PollEnd, PollStart, TaskSpawn, TaskTerminate};
use granular::__internal::recorder::codec::threads::{Park, Unpark};
use granular::__internal::recorder::{FlightRecorder, RecorderSnapshot, next_span_key, write};
use granular::Detail;
use granular::RecorderSize;
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue, Value};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};
use tracing::Metadata;

/// Event (header) counts the levels aim at.
const LEVELS: [u64; 3] = [1_000, 10_000, 100_000];
/// Events [`request`] writes.
const EVENTS_PER_REQUEST: u64 = 24;
const TRACE_HI: u128 = 0x4bf9_2f35_77b3_4da6 << 64;

struct Metas {
    root: &'static Metadata<'static>,
    child: &'static Metadata<'static>,
    slow: &'static Metadata<'static>,
    spawn_site: &'static std::panic::Location<'static>,
}

/// Metadata for the synthetic spans (the decoder reads names from them).
fn metas() -> Metas {
    fn meta(m: Option<&'static Metadata<'static>>) -> &'static Metadata<'static> {
        m.expect("span enabled under the registry")
    }
    tracing::subscriber::with_default(tracing_subscriber::registry(), || Metas {
        root: meta(tracing::info_span!("GET /synthetic").metadata()),
        child: meta(tracing::info_span!("db.query").metadata()),
        slow: meta(tracing::info_span!("GET /slow").metadata()),
        spawn_site: std::panic::Location::caller(),
    })
}

/// A span created under `parent` (0: a local root), with no span id of its own yet.
fn span_new(key: u64, meta: &'static Metadata<'static>, parent: u64) -> SpanNew {
    SpanNew {
        key,
        meta,
        parent,
        span_id: None,
    }
}

/// A local root's ids: its span id and its trace.
fn root_ids(key: u64, span_id: u64, trace_low: u64) -> SpanIds {
    let trace_id = TRACE_HI | u128::from(trace_low);
    SpanIds {
        key,
        span_id,
        root: Some(TraceRoot {
            trace_id,
            remote_parent: None,
        }),
    }
}

fn poll_start(task: u64) {
    write(&PollStart {
        task,
        counters: None,
    });
}

fn poll_end(schedule_latency_ns: u64) {
    write(&PollEnd {
        schedule_latency_ns,
        counters: None,
    });
}

fn enter(key: u64) {
    write(&SpanEnter {
        key,
        counters: None,
    });
}

fn exit(key: u64) {
    write(&SpanExit {
        key,
        counters: None,
    });
}

/// One ordinary request: [`EVENTS_PER_REQUEST`] events, 32 records.
fn request(i: u64, m: &Metas) {
    let task = 1_000_000 + 2 * i;
    let sub = task + 1;
    let root = next_span_key();
    write(&span_new(root, m.root, 0));
    write(&root_ids(root, 0x1000_0000 + i, i + 1));
    poll_start(task);
    enter(root);
    let child = next_span_key();
    write(&span_new(child, m.child, root));
    write(&SpanIds {
        key: child,
        span_id: 0x2000_0000 + i,
        root: None,
    });
    enter(child);
    write(&TaskSpawn {
        task: sub,
        parent_task: task,
        parent_span: child,
        spawned_at: Some(m.spawn_site),
    });
    exit(child);
    exit(root);
    poll_end(0);
    write(&Park);
    write(&Unpark);
    poll_start(sub);
    poll_end(2_000);
    write(&TaskTerminate { task: sub });
    poll_start(task);
    enter(root);
    enter(child);
    exit(child);
    write(&SpanClose {
        key: child,
        to_analyzer: false,
    });
    exit(root);
    write(&SpanClose {
        key: root,
        to_analyzer: false,
    });
    poll_end(5_000);
}

/// Writes `n` requests (numbered from `first`) inside one slow request; returns the slow span.
fn fill(first: u64, n: u64, level: usize, m: &Metas) -> (u64, u64, u64) {
    let task = 10 + level as u64;
    let span_id = 0x3000_0000 + level as u64;
    let start = clock::now();
    let root = next_span_key();
    write(&span_new(root, m.slow, 0));
    write(&root_ids(root, span_id, level as u64));
    poll_start(task);
    enter(root);
    exit(root);
    poll_end(0);
    for i in first..first + n {
        request(i, m);
    }
    let waited = clock::now();
    poll_start(task);
    enter(root);
    exit(root);
    write(&SpanClose {
        key: root,
        to_analyzer: false,
    });
    let end = clock::now();
    let cal = Calibration::now();
    let latency = cal.to_unix_ns(end).saturating_sub(cal.to_unix_ns(waited));
    poll_end(latency.max(1));
    (span_id, start, end)
}

/// Decodes `snap` from 1 s before the target, as the analyzer thread does.
fn decode_window(snap: &RecorderSnapshot, target: &Target) -> Decoded {
    let cal = Calibration::now();
    let taken_at = cal.to_unix_ns(clock::now());
    decode(
        snap,
        &cal,
        target.start.saturating_sub(1_000_000_000),
        taken_at,
    )
}

/// Snapshot, decode and analyze one target, as the analyzer thread does.
fn analyze_once(target: &Target) -> Breakdown {
    let snap = FlightRecorder::get().expect("recorder").snapshot();
    analyze(&decode_window(&snap, target), target)
}

/// One [`analyze_once`], timed per phase: (snapshot, decode, analyze).
fn phase_times(target: &Target) -> (Duration, Duration, Duration) {
    let t0 = Instant::now();
    let snap = FlightRecorder::get().expect("recorder").snapshot();
    let t1 = Instant::now();
    let decoded = decode_window(&snap, target);
    let t2 = Instant::now();
    std::hint::black_box(analyze(&decoded, target));
    let t3 = Instant::now();
    (t1 - t0, t2 - t1, t3 - t2)
}

fn dummy_span(t: &Target) -> SpanData {
    let at = |ns: u64| SystemTime::UNIX_EPOCH + Duration::from_nanos(ns);
    SpanData {
        span_context: SpanContext::new(
            TraceId::from_bytes([7; 16]),
            SpanId::from_bytes(t.otel_span_id.to_be_bytes()),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        ),
        parent_span_id: SpanId::INVALID,
        parent_span_is_remote: false,
        span_kind: SpanKind::Server,
        name: Cow::Owned(t.name.clone()),
        start_time: at(t.start),
        end_time: at(t.end),
        attributes: Vec::new(),
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status: Status::Unset,
        instrumentation_scope: InstrumentationScope::builder("bench").build(),
    }
}

fn value_bytes(v: &Value) -> usize {
    match v {
        Value::String(s) => s.as_str().len(),
        Value::Bool(_) => 1,
        _ => 8,
    }
}

fn kv_bytes(kvs: &[KeyValue]) -> usize {
    kvs.iter()
        .map(|kv| kv.key.as_str().len() + value_bytes(&kv.value))
        .sum()
}

const EXTRAS: Extras<'static> = Extras {
    sources: "tokio.workers,tokio.tasks,tracing.spans,os.schedstat",
    artifact: None,
    artifact_skipped: None,
    max_events: 32,
};

fn bench(c: &mut Criterion) {
    // The bench thread is not a tokio worker, so it gets a small ring (ring_bytes / 16): size
    // it so the largest level (~133k records) fits without wrapping.
    FlightRecorder::install(RecorderSize {
        total_bytes: 1 << 30,
        ring_bytes: 256 << 20,
    });
    let m = metas();
    let mut g = c.benchmark_group("analysis");
    g.sample_size(10);
    let mut written = 0;
    for (level, goal) in LEVELS.iter().enumerate() {
        let n = (goal / EVENTS_PER_REQUEST).saturating_sub(written);
        let (span_id, start, end) = fill(written, n, level, &m);
        written += n;
        let cal = Calibration::now();
        let target = Target {
            otel_span_id: span_id,
            name: "GET /slow".into(),
            start: cal.to_unix_ns(start),
            end: cal.to_unix_ns(end),
        };
        let snap = FlightRecorder::get().expect("recorder").snapshot();
        let records: usize = snap.threads.iter().map(|t| t.records().len()).sum();
        let events = snap
            .threads
            .iter()
            .flat_map(|t| codec::events(t.records()))
            .count();
        let b = analyze_once(&target);
        let phases = phase_times(&target);
        assert!(
            !b.data_loss && b.part(Category::Idle) < b.end - b.start,
            "the synthetic target was not found: did the record format change? {b:?}"
        );
        let mut span = dummy_span(&target);
        enrich(&mut span, &b, Detail::Events, &EXTRAS);
        let ev_attrs: usize = span.events.events.iter().map(|e| e.attributes.len()).sum();
        let ev_bytes: usize = span
            .events
            .events
            .iter()
            .map(|e| e.name.len() + 8 + kv_bytes(&e.attributes))
            .sum();
        println!(
            "level {goal}: {events} events ({records} records, {} KiB) in the recorder; \
             breakdown: {:?} polls, {} culprits, {} intervals, dominant {:?}; enrich adds {} \
             attributes (~{} B of keys+values) and {} span events with {ev_attrs} attributes \
             (~{ev_bytes} B)",
            records * 16 / 1024,
            b.polls,
            b.culprits.len(),
            b.intervals.len(),
            b.dominant,
            span.attributes.len(),
            kv_bytes(&span.attributes),
            span.events.events.len(),
        );
        println!(
            "level {goal}: one pass: snapshot {:?}, decode {:?}, analyze {:?}",
            phases.0, phases.1, phases.2
        );
        g.bench_function(BenchmarkId::new("snapshot+decode+analyze", goal), |bn| {
            bn.iter(|| analyze_once(&target))
        });
        // What an overloaded analyzer does instead: a light decode of the target's own spans,
        // then the breakdown without a culprit search.
        let keys: IdSet<u64> = {
            let d = decode_window(&snap, &target);
            let root = d.by_otel_id[&target.otel_span_id];
            d.spans
                .keys()
                .copied()
                .filter(|k| d.local_root(*k) == root)
                .collect()
        };
        g.bench_function(BenchmarkId::new("light: decode+analyze", goal), |bn| {
            bn.iter(|| {
                let cal = Calibration::now();
                let d = decode_spans(
                    &snap,
                    &cal,
                    target.start,
                    cal.to_unix_ns(clock::now()),
                    &keys,
                );
                analyze(&d, &target)
            })
        });
        g.bench_function(BenchmarkId::new("enrich", goal), |bn| {
            let plain = dummy_span(&target);
            bn.iter(|| {
                let mut span = plain.clone();
                enrich(&mut span, &b, Detail::Events, &EXTRAS);
                span
            })
        });
    }
    g.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
}

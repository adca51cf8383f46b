//! Tail sampling at the source: spans recorded by Granular's layer (no tracing-opentelemetry)
//! and rebuilt for exported traces must match what tracing-opentelemetry exports for the same
//! code, field by field; healthy traces must not be exported at all.

use std::sync::Arc;
use std::time::Duration;

use granular::SloRules;
use granular::SourceSampler;
use granular::{ArtifactSink, Config, SampleMode};
use opentelemetry::Value;
use opentelemetry_sdk::trace::{
    InMemorySpanExporter, SdkTracerProvider, SimpleSpanProcessor, SpanData,
};
use tracing_subscriber::layer::SubscriberExt;

#[path = "support/same_spans.rs"]
mod same_spans;
use same_spans::{assert_same_spans, attrs, by_name, reference, run};

fn config() -> Config {
    Config {
        slo: SloRules::parse("GET /messages=20ms,*=10s").unwrap(),
        sample: SampleMode::Violations,
        errors_violate: false,
        artifacts: ArtifactSink::None,
        ..Config::default()
    }
}

/// Granular's own stack in `violations` mode, judging by `slo`, exporting to memory.
struct Stack {
    exporter: InMemorySpanExporter,
    stats: std::sync::Arc<granular::Stats>,
    /// A `GranularSubscriber`, for `tracing::dispatcher::with_default`.
    dispatch: tracing::Dispatch,
    provider: SdkTracerProvider,
}

fn violations_stack(slo: &str) -> Stack {
    let cfg = Config {
        slo: SloRules::parse(slo).unwrap(),
        ..config()
    };
    granular::install_recorder(&cfg);
    let exporter = InMemorySpanExporter::default();
    let processor =
        granular::GranularProcessor::new(SimpleSpanProcessor::new(exporter.clone()), cfg, "test");
    let stats = processor.stats();
    let dispatch = granular::GranularSubscriber::new(
        processor.source_sampler(),
        tracing_subscriber::filter::Targets::new().with_default(tracing::Level::INFO),
    )
    .into();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .build();
    Stack {
        exporter,
        stats,
        dispatch,
        provider,
    }
}

#[test]
fn rebuilt_spans_match_tracing_opentelemetry_and_healthy_traces_cost_no_export() {
    let cfg = config();
    granular::install_recorder(&cfg);

    // Reference: tracing-opentelemetry, exporting everything.
    let expected = reference(true);

    // Granular recording the spans itself: its own subscriber (what `init` installs), and its
    // layer in a tracing-subscriber registry (for users who compose their stack).
    check_granular_stack("GranularSubscriber", &expected, |sampler| {
        granular::GranularSubscriber::new(
            sampler,
            tracing_subscriber::filter::Targets::new().with_default(tracing::Level::INFO),
        )
        .into()
    });
    check_granular_stack(
        "registry + RecorderLayer::recording_spans",
        &expected,
        |sampler| {
            tracing_subscriber::registry()
                .with(granular::RecorderLayer::recording_spans(sampler))
                .into()
        },
    );
}

/// Runs the request twice healthy and once slow under the stack `make` builds, and compares
/// the one exported trace with `expected`, field by field.
fn check_granular_stack(
    stack: &str,
    expected: &[SpanData],
    make: impl Fn(Arc<SourceSampler>) -> tracing::Dispatch,
) {
    let cfg = config();
    let exporter = InMemorySpanExporter::default();
    let processor =
        granular::GranularProcessor::new(SimpleSpanProcessor::new(exporter.clone()), cfg, "test");
    let sampler = processor.source_sampler();
    let stats = processor.stats();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .build();
    run(make(sampler.clone()), false);
    run(make(sampler.clone()), false);
    run(make(sampler.clone()), true);
    provider.force_flush().unwrap();
    let got = exporter.get_finished_spans().unwrap();
    use std::sync::atomic::Ordering::Relaxed;
    assert_eq!(
        stats.dropped_traces.load(Relaxed),
        2,
        "{stack}: both healthy traces dropped without export"
    );
    assert_eq!(stats.chosen_traces.load(Relaxed), 1, "{stack}");
    assert_eq!(stats.exported_traces.load(Relaxed), 1, "{stack}: whole");
    assert_same_spans(stack, expected, &got, true);
    let have = by_name(&got);
    let trace = have["GET /messages"].span_context.trace_id();
    // The violating root carries its breakdown.
    let root = have["GET /messages"];
    assert_eq!(
        root.attributes
            .iter()
            .find(|kv| kv.key.as_str() == "granular.slo.violated")
            .map(|kv| kv.value.clone()),
        Some(Value::Bool(true))
    );
    assert!(
        root.attributes
            .iter()
            .any(|kv| kv.key.as_str() == "granular.cause"),
        "{:#?}",
        root.attributes
    );
    light_decode_rebuilds_the_same_spans(u128::from_be_bytes(trace.to_bytes()));
}

/// An overloaded analyzer rebuilds traces from a span-only decode: the spans must come out as
/// from the full decode.
fn light_decode_rebuilds_the_same_spans(trace: u128) {
    use granular::__internal::analysis::{decode, decode_spans_of, rebuild};
    let snap = granular::__internal::recorder::FlightRecorder::get()
        .expect("recorder")
        .snapshot();
    let cal = granular::__internal::clock::Calibration::now();
    let now = cal.to_unix_ns(granular::__internal::clock::now());
    let full = decode(&snap, &cal, 0, now);
    let root = full
        .spans
        .iter()
        .find(|(_, s)| s.trace_id == Some(trace))
        .map(|(k, _)| *k)
        .expect("the exported trace's root in the recorder");
    let light = decode_spans_of(&snap, &cal, 0, now, &[root]);
    // The same span-only decode from the keys the trace noted (what the analyzer uses).
    let keys: granular::__internal::analysis::IdSet<u64> = light.spans.keys().copied().collect();
    assert_eq!(keys.len(), 4, "the root and its three children");
    let keyed = granular::__internal::analysis::decode_spans(&snap, &cal, 0, now, &keys);
    // And from the root's OpenTelemetry id (how spans tracing-opentelemetry built are found).
    let otel_ids = [full.spans[&root].otel_span_id].into_iter().collect();
    let by_otel_id =
        granular::__internal::analysis::decode_spans_by_otel_id(&snap, &cal, 0, now, &otel_ids);
    assert_eq!(
        by_otel_id
            .spans
            .keys()
            .collect::<std::collections::BTreeSet<_>>(),
        keys.iter().collect(),
        "the same spans found from the root's OTel id"
    );
    // A child's id rides on its creation record (span-recording mode): found the same way.
    let (db_key, db) = full
        .spans
        .iter()
        .find(|(k, s)| s.name == "db.Query" && keys.contains(*k))
        .expect("the trace's db.Query span");
    assert_ne!(
        db.otel_span_id, 0,
        "db.Query's id decoded from its creation record"
    );
    let otel_ids = [db.otel_span_id].into_iter().collect();
    let child =
        granular::__internal::analysis::decode_spans_by_otel_id(&snap, &cal, 0, now, &otel_ids);
    assert_eq!(child.spans.keys().collect::<Vec<_>>(), [db_key]);
    assert!(
        light.spans.len() < full.spans.len(),
        "only the trace's spans: {} of {}",
        light.spans.len(),
        full.spans.len()
    );
    let scope = opentelemetry::InstrumentationScope::builder("granular").build();
    let from_full = rebuild(&full, root, trace, &scope).spans;
    assert_eq!(from_full.len(), 4);
    let f = by_name(&from_full);
    for decoded in [&light, &keyed] {
        let from_light = rebuild(decoded, root, trace, &scope).spans;
        let l = by_name(&from_light);
        assert_eq!(f.keys().collect::<Vec<_>>(), l.keys().collect::<Vec<_>>());
        for (name, a) in &f {
            let b = l[name];
            assert_eq!(attrs(a), attrs(b), "{name}: attributes");
            assert_eq!(a.events.events, b.events.events, "{name}: events");
            assert_eq!(a.parent_span_id, b.parent_span_id, "{name}: parent");
            assert_eq!((a.start_time, a.end_time), (b.start_time, b.end_time));
        }
    }
    // A light decode still breaks the root's time down: the same categories from the same
    // span entries, parks and allocation counters, without polls or a culprit search.
    let target =
        |d: &granular::__internal::analysis::Decoded| granular::__internal::analysis::Target {
            otel_span_id: d.spans[&root].otel_span_id,
            name: "GET /messages".into(),
            start: d.spans[&root].start,
            end: d.spans[&root].end.expect("the root closed"),
        };
    let (f, l) = (
        granular::__internal::analysis::analyze(&full, &target(&full)),
        granular::__internal::analysis::analyze(&keyed, &target(&keyed)),
    );
    assert!(l.light && !f.light, "only the light decode says so");
    assert!(l.verdict.contains("light analysis"), "{}", l.verdict);
    assert_eq!(l.dominant, f.dominant, "{l:#?}\n{f:#?}");
    assert_eq!(l.alloc, f.alloc);
    let idle = |b: &granular::__internal::analysis::Breakdown| {
        b.part(granular::__internal::analysis::Category::Idle)
    };
    assert!(
        idle(&l).abs_diff(idle(&f)) < 2_000_000,
        "idle {} vs {} ns",
        idle(&l),
        idle(&f)
    );
    let total: u64 = l.parts.values().sum();
    assert_eq!(total, l.end - l.start, "the parts add up to the span");
}

/// The application's own events of `span`, in order. Granular's breakdown events
/// (`granular.*`) come on top when the thread's unattributed time reaches a millisecond, which
/// depends on the machine's timing.
fn app_events(span: &SpanData) -> Vec<&str> {
    span.events
        .iter()
        .map(|e| e.name.as_ref())
        .filter(|n| !n.starts_with("granular."))
        .collect()
}

/// Issue #17 (violating traces missing from Jaeger in `violations` mode): a span created on
/// one thread and closed on another. The analyzer decodes the rings one after another, and
/// records of a span (its close, a late field, an event, the root's ids) on a ring decoded
/// before the ring holding its creation were dropped: the span was taken for still open and
/// not exported, or the whole trace was lost. Both directions are run, so one of them crosses
/// the rings' order whichever ring each thread got.
#[test]
fn spans_closed_on_another_thread_are_exported_whole() {
    use std::sync::mpsc::channel;

    let Stack {
        exporter,
        stats,
        dispatch,
        provider,
    } = violations_stack("cross.*=1ms,*=10s");

    /// Opens a trace (root and child) on this thread: each thread records a span first, so
    /// both have a ring before either trace begins.
    fn open(name: &'static str) -> (tracing::Span, tracing::Span) {
        let root = tracing::info_span!(
            "cross.request",
            otel.name = name,
            status = tracing::field::Empty
        );
        let child = tracing::info_span!(parent: &root, "cross.step", step = 1i64);
        root.in_scope(|| tracing::info!(opened = true, "opened"));
        (root, child)
    }
    /// Finishes the other thread's trace here: enters, records, logs, closes.
    fn finish((root, child): (tracing::Span, tracing::Span)) {
        std::thread::sleep(Duration::from_millis(2));
        child.in_scope(|| tracing::info!(finished = true, "step done"));
        drop(child);
        root.record("status", 200i64);
        root.in_scope(|| tracing::info!("answered"));
        drop(root);
    }
    let (to_b, from_a) = channel();
    let (to_a, from_b) = channel();
    let (ready_tx, ready_rx) = channel();
    let d = dispatch.clone();
    let b = std::thread::spawn(move || {
        tracing::dispatcher::with_default(&d, || {
            tracing::info_span!("warm-up").in_scope(|| {});
            ready_tx.send(()).unwrap();
            to_a.send(open("B→A")).unwrap();
            finish(from_a.recv().unwrap());
        })
    });
    tracing::dispatcher::with_default(&dispatch, || {
        ready_rx.recv().unwrap();
        tracing::info_span!("warm-up").in_scope(|| {});
        to_b.send(open("A→B")).unwrap();
        finish(from_b.recv().unwrap());
    });
    b.join().unwrap();
    provider.force_flush().unwrap();

    use std::sync::atomic::Ordering::Relaxed;
    let got = exporter.get_finished_spans().unwrap();
    for name in ["A→B", "B→A"] {
        let root = got
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("{name}: root exported; got {got:#?}\nstats {stats:?}"));
        let trace = root.span_context.trace_id();
        let child = got
            .iter()
            .find(|s| s.span_context.trace_id() == trace && s.name == "cross.step")
            .unwrap_or_else(|| panic!("{name}: child exported; got {got:#?}"));
        assert_eq!(child.parent_span_id, root.span_context.span_id(), "{name}");
        let a = attrs(root);
        assert_eq!(a.get("status"), Some(&Value::I64(200)), "{name}: {a:?}");
        assert_eq!(
            app_events(root),
            ["opened", "answered"],
            "{name}: in time order"
        );
        assert_eq!(app_events(child), ["step done"], "{name}");
        assert!(root.end_time > root.start_time, "{name}");
    }
    // Both whole, and counted so.
    assert_eq!(stats.chosen_traces.load(Relaxed), 2, "{stats:?}");
    assert_eq!(stats.exported_traces.load(Relaxed), 2, "{stats:?}");
    for not_whole in [
        &stats.partial_traces,
        &stats.unfinished_traces,
        &stats.lost_traces,
        &stats.not_found_traces,
        &stats.rebuild_errors,
        &stats.unfinished_spans,
    ] {
        assert_eq!(not_whole.load(Relaxed), 0, "{stats:?}");
    }
}

/// A span that outlives its request (a spawned task's, still running when the handler has
/// answered) keeps its local root open: the trace is decided when its last span closes, and
/// exported whole, not without the late span.
#[test]
fn a_span_outliving_its_request_delays_its_trace_whole() {
    let Stack {
        exporter,
        stats,
        dispatch,
        provider,
    } = violations_stack("late.*=1ms,*=10s");
    let worker = tracing::dispatcher::with_default(&dispatch, || {
        let root = tracing::info_span!("late.request");
        let task = tracing::info_span!(parent: &root, "late.task");
        std::thread::sleep(Duration::from_millis(2));
        drop(root); // the request has answered; its task runs on
        std::thread::spawn(move || {
            let _entered = task.enter();
            std::thread::sleep(Duration::from_millis(20));
        })
    });
    worker.join().unwrap();
    provider.force_flush().unwrap();
    let got = exporter.get_finished_spans().unwrap();
    let names: Vec<&str> = got.iter().map(|s| s.name.as_ref()).collect();
    let root = got.iter().find(|s| s.name == "late.request").expect("root");
    let task = got
        .iter()
        .find(|s| s.name == "late.task")
        .expect("the late span");
    assert_eq!(
        task.parent_span_id,
        root.span_context.span_id(),
        "{names:?}"
    );
    assert!(
        root.end_time >= task.end_time,
        "the root ends with its last span"
    );
    use std::sync::atomic::Ordering::Relaxed;
    assert_eq!(stats.exported_traces.load(Relaxed), 1, "{stats:?}");
    assert_eq!(stats.unfinished_spans.load(Relaxed), 0, "{stats:?}");
}

//! The Granular Collector distribution (`granularcol`, collector-plugin/)
//! between the demo service and Jaeger, with the deploy/collector configs as
//! users run them:
//!
//! * single.yaml: a violating trace reaches Jaeger whole, with the library's
//!   detail and the processor's rollup on its root span, its Perfetto
//!   artifact travels as an OTLP log record to the collector's artifact store
//!   and the span's `granular.artifact` link serves it, as does the viewer
//!   page the Jaeger UI links (deploy/jaeger/ui-config.json); a healthy trace
//!   arrives stripped of Granular detail; Jaeger's tag search finds the
//!   violating trace by `granular.trace.cause`, and by the syscall its
//!   blocked poll waited in (`granular.trace.blocked.syscall`).
//! * tier1-loadbalancer.yaml → 2 × tier2.yaml: every trace is routed whole
//!   to one tier-2 instance and decided exactly once; both instances work.
//!
//! The tests share one Jaeger; each starts its own collectors and demo
//! service, under a service name of its own.
//!
//! Needs the Jaeger binary (deploy/jaeger/build.sh), granularcol
//! (collector-plugin/build.sh), the demo binaries built for this target dir
//! and profile, and a Python with the `perfetto` package in
//! `GRANULAR_PYTHON` (tests/run.sh provides all of them).

use std::collections::{BTreeMap, HashSet};
use std::thread;
use std::time::{Duration, Instant};

use granular_e2e::browser;
use granular_e2e::collector::{Collector, Metrics, fetch_bytes};
use granular_e2e::demo::Demo;
use granular_e2e::jaeger::Jaeger;
use granular_e2e::perfetto::check_perfetto;
use granular_e2e::trace::{GRANULAR_CATEGORIES, Span, Trace};
use granular_e2e::viewer::{PERFETTO_UI_ORIGIN, allowed_origin, check_viewer_page, viewer_link};
use granular_e2e::{Error, Result};
use serde_json::Value;

/// The library judges (and enriches) `GET /messages` at 40 ms.
const LIBRARY_SLO: &str = "GET /messages=40ms,*=10s";
/// The collector judges whole traces: `GET /messages` at 40 ms, any other span at 500 ms.
const COLLECTOR_SLO: &str = "GET /messages=40ms,*=500ms";
const MESSAGES_SLO_US: u64 = 40_000;
const OTHER_SLO_US: u64 = 500_000;
const DECISION_WAIT: Duration = Duration::from_secs(1);
/// Blocks a worker thread for 80 ms inside the request: violates 40 ms.
const VIOLATING: &str = "/messages?pathology=block&ms=80";
const HEALTHY: &str = "/messages";
/// A healthy request this quick stays well under its 40 ms SLO.
const QUICK: Duration = Duration::from_millis(25);
/// Spans of one `GET /messages`: the server span and its three steps.
const SPANS_PER_TRACE: usize = 4;
const TRACE_TIMEOUT: Duration = Duration::from_secs(30);
const METRICS_TIMEOUT: Duration = Duration::from_secs(30);
const DECISIONS: &str = "otelcol_processor_granular_decisions";
/// The demo's service name in each test: the tests share one Jaeger, and
/// the tag search of the first looks for its traces by service.
const SINGLE_SERVICE: &str = "messages-single";
const TWO_TIER_SERVICE: &str = "messages-two-tier";
/// Attributes the processor writes on the root span of a violating trace.
const ROLLUP: [&str; 6] = [
    "granular.trace.cause",
    "granular.trace.culprit",
    "granular.trace.slow_span",
    "granular.trace.violations",
    "granular.trace.slo_ms",
    "granular.trace.artifact",
];
/// The only `granular.*` attributes left on spans of a stripped healthy trace.
const SUMMARY_ATTRIBUTES: [&str; 2] = ["granular.cause", "granular.slo.violated"];

#[test]
fn single_collector_keeps_violations_whole_and_strips_healthy_traces() {
    let jaeger = Jaeger::shared().expect("start Jaeger");
    let wait = format!("{}ms", DECISION_WAIT.as_millis());
    let mut collector = Collector::start(
        "single.yaml",
        &[
            ("JAEGER_OTLP_GRPC", &jaeger.otlp_grpc_endpoint()),
            ("GRANULAR_SLO", COLLECTOR_SLO),
            ("GRANULAR_DECISION_WAIT", &wait),
        ],
    )
    .expect("start granularcol with single.yaml");
    let artifacts_base = collector.artifacts_base_url();
    // GRANULAR_BASELINE=1: healthy spans are enriched too, so the strip has
    // real detail to remove.
    let mut demo = demo_to(
        SINGLE_SERVICE,
        &collector.otlp_grpc_endpoint(),
        &artifacts_base,
    )
    .env("GRANULAR_BASELINE", "1")
    .start()
    .expect("start demo-service");

    let violating = request(&mut demo, VIOLATING);
    // A healthy request that a busy machine slowed past 40 ms would be
    // judged violating: retry a few times for a quick one.
    let mut requests = 1;
    let mut slow_healthy = Vec::new();
    let healthy = loop {
        requests += 1;
        let response = demo.get(HEALTHY).expect("GET /messages");
        assert_eq!(response.status, 200, "{}", response.body);
        let trace_id = response.trace_id().expect("trace id");
        if response.elapsed < QUICK || requests == 6 {
            break trace_id;
        }
        slow_healthy.push(trace_id);
    };

    // The violating trace: whole, with the library's detail and the rollup.
    let trace = jaeger
        .fetch_trace(&violating, TRACE_TIMEOUT, |t| {
            complete(t) && t.roots()[0].tag("granular.trace.cause").is_some()
        })
        .expect("the violating trace with its rollup in Jaeger");
    let tree = trace.render();
    assert_eq!(trace.spans.len(), SPANS_PER_TRACE, "{tree}");
    assert_eq!(trace.services(), [SINGLE_SERVICE], "{tree}");
    let root = trace.roots()[0];
    assert_eq!(root.operation_name, "GET /messages", "{tree}");
    assert!(
        root.duration >= 80_000,
        "the request blocked 80 ms but its span is shorter\n{tree}"
    );
    assert_eq!(
        root.tag_bool("granular.slo.violated"),
        Some(true),
        "the library did not judge the root span violating\n{tree}"
    );
    // The library's breakdown of the 80 ms block; its accuracy is
    // breakdown_e2e's business, here it only has to be there.
    let library_cause = root
        .tag_str("granular.cause")
        .unwrap_or_else(|| panic!("no granular.cause on the violating span\n{tree}"));
    if library_cause != "blocked_in_poll" {
        eprintln!(
            "note: the library called an 80 ms thread::sleep {library_cause:?}, not \
             blocked_in_poll (a loaded machine?)\n{tree}"
        );
    }
    assert!(
        trace
            .spans
            .iter()
            .any(|span| span.logs.iter().any(|log| granular_event(log.event()))),
        "no granular.* span events survived on the violating trace\n{tree}"
    );
    // The rollup's cause: the category with the most time summed over the
    // trace's spans.
    let trace_cause = root
        .tag_str("granular.trace.cause")
        .unwrap_or_default()
        .to_owned();
    assert_eq!(Some(trace_cause.as_str()), dominant_cause(&trace), "{tree}");
    let slow_span = format!("{SINGLE_SERVICE}: GET /messages");
    assert!(
        root.tag_str("granular.trace.culprit").is_some()
            || root.tag_str("granular.trace.slow_span") == Some(slow_span.as_str()),
        "neither granular.trace.culprit nor the right granular.trace.slow_span\n{tree}"
    );
    assert!(
        root.tag_i64("granular.trace.violations")
            .is_some_and(|n| n >= 1),
        "{tree}"
    );
    assert_eq!(root.tag_f64("granular.trace.slo_ms"), Some(40.0), "{tree}");
    for span in trace.spans.iter().filter(|s| s.span_id != root.span_id) {
        assert!(
            !span
                .tags
                .iter()
                .any(|t| t.key.starts_with("granular.trace.")),
            "rollup attributes on a span that is not the root\n{tree}"
        );
    }

    // Its artifact: an OTLP log record the collector stored and serves at
    // the link the library put on the span.
    let link = root
        .tag_str("granular.artifact")
        .unwrap_or_else(|| panic!("no granular.artifact link on the violating span\n{tree}"));
    let artifact_id = format!("{violating}-{}", root.span_id);
    assert_eq!(
        link,
        format!("{artifacts_base}/artifacts/{artifact_id}"),
        "span ids and links: {:?}",
        trace
            .spans
            .iter()
            .map(|s| (
                &s.operation_name,
                &s.span_id,
                s.tag_str("granular.artifact")
            ))
            .collect::<Vec<_>>()
    );
    let bytes = fetch_bytes(link, TRACE_TIMEOUT).expect("the artifact behind granular.artifact");
    let summary = check_artifact(&bytes, &violating);
    assert!(
        summary["packets"].as_u64().is_some_and(|n| n > 0)
            && summary["slice_count"].as_u64() > Some(0),
        "the artifact decodes but holds no slices: {summary:#}"
    );
    if let Some(rolled_up) = root.tag_str("granular.trace.artifact") {
        assert_eq!(rolled_up, link, "{tree}");
    }
    // The Jaeger UI's link to the viewer (deploy/jaeger/ui-config.json)
    // opens a page that loads this very artifact.
    let viewer = viewer_link(link, &artifacts_base).expect("the Jaeger link to the viewer");
    let page = check_viewer_page(&viewer, &bytes).expect("the viewer page of the artifact");
    assert_eq!(
        page.url,
        format!("{artifacts_base}/view/{artifact_id}"),
        "the viewer link {viewer} led elsewhere"
    );
    // In a real browser: the page draws this span's breakdown from the store's artifact,
    // fetching nothing beyond the store.
    let shown = browser::open(&page.url, "collector-viewer").expect("the viewer in Chromium");
    assert_eq!(shown.state, "ready", "{}", shown.describe());
    assert_eq!(
        shown.requests_off_origin(),
        Vec::<&str>::new(),
        "{}",
        shown.describe()
    );
    shown.assert_shows_breakdown_of(root);
    // The Perfetto UI link: the browser may fetch the artifact from
    // ui.perfetto.dev, and only from there.
    assert_eq!(
        allowed_origin(link, PERFETTO_UI_ORIGIN).expect("GET the artifact from ui.perfetto.dev"),
        Some(PERFETTO_UI_ORIGIN.to_owned())
    );
    assert_eq!(
        allowed_origin(link, "https://example.com").expect("GET the artifact from elsewhere"),
        None
    );

    // The healthy trace: forwarded without Granular detail.
    let healthy_trace = jaeger
        .fetch_trace(&healthy, TRACE_TIMEOUT, complete)
        .expect("the healthy trace in Jaeger");
    assert_eq!(
        healthy_trace.spans.len(),
        SPANS_PER_TRACE,
        "{}",
        healthy_trace.render()
    );
    assert!(
        !violates_collector_slo(&healthy_trace),
        "the healthy request was slow enough to violate (machine overloaded?)\n{}",
        healthy_trace.render()
    );
    assert_stripped(&healthy_trace);
    assert!(
        healthy_trace.roots()[0].tag_str("granular.cause").is_some(),
        "the summary granular.cause of the baseline-enriched root was stripped too\n{}",
        healthy_trace.render()
    );

    // Each trace decided exactly once; the strip removed something.
    let metrics = collector
        .wait_for_metrics(&format!("{requests} decisions"), METRICS_TIMEOUT, |m| {
            m.sum(DECISIONS, &[]) >= f64::from(requests)
        })
        .expect("the collector's decisions");
    thread::sleep(2 * DECISION_WAIT);
    let metrics = settled(&mut collector, metrics);
    let report = granular_metrics(&metrics);
    assert_eq!(metrics.sum(DECISIONS, &[]), f64::from(requests), "{report}");
    assert!(
        metrics.sum(DECISIONS, &[("outcome", "violated")]) >= 1.0,
        "{report}"
    );
    assert!(
        metrics.sum(DECISIONS, &[("outcome", "healthy_stripped")]) >= 1.0,
        "{report}"
    );
    assert!(
        metrics.sum("otelcol_processor_granular_stripped_attributes", &[]) > 0.0,
        "the healthy trace reached the collector without detail to strip\n{}",
        granular_metrics(&metrics)
    );
    // Only the violating trace's artifacts are kept.
    let stored = collector.artifact_ids().expect("the artifact listing");
    assert!(stored.contains(&artifact_id), "{stored:?}");
    // (Slow healthy attempts may have violated too.)
    assert!(
        stored.iter().all(|id| id.starts_with(&violating)
            || slow_healthy.iter().any(|t| id.starts_with(t.as_str()))),
        "artifacts of other traces were stored: {stored:?}"
    );
    assert!(
        !stored.iter().any(|id| id.starts_with(&healthy)),
        "artifacts of the healthy trace were stored: {stored:?}"
    );

    // Jaeger's tag search finds the violating trace by its rollup
    // (granular.trace.cause=blocked_in_poll unless the library judged the
    // block otherwise, see above).
    let found = search(
        jaeger,
        SINGLE_SERVICE,
        &[("granular.trace.cause", &trace_cause)],
    )
    .expect("Jaeger tag search");
    assert!(
        found.contains(&violating),
        "tag search granular.trace.cause={trace_cause} missed {violating}: {found:?}"
    );
    assert!(!found.contains(&healthy), "{found:?}");
    let found = search(
        jaeger,
        SINGLE_SERVICE,
        &[("granular.trace.slow_span", &slow_span)],
    )
    .expect("Jaeger tag search");
    assert!(
        found.contains(&violating) && !found.contains(&healthy),
        "tag search by granular.trace.slow_span: {found:?}"
    );
    // What the blocked poll waited in is rolled up from the span the cause came from (the
    // root here), so a search by syscall finds the trace.
    if trace_cause == "blocked_in_poll" {
        let syscall = root.tag_str("granular.blocked.syscall");
        assert_eq!(
            root.tag_str("granular.trace.blocked.syscall"),
            syscall,
            "{tree}"
        );
        assert_eq!(syscall, Some("clock_nanosleep"), "{tree}");
        assert_eq!(
            root.tag_str("granular.trace.blocked.object"),
            root.tag_str("granular.blocked.object"),
            "{tree}"
        );
        let found = search(
            jaeger,
            SINGLE_SERVICE,
            &[("granular.trace.blocked.syscall", "clock_nanosleep")],
        )
        .expect("Jaeger tag search");
        assert!(
            found.contains(&violating) && !found.contains(&healthy),
            "tag search by granular.trace.blocked.syscall: {found:?}"
        );
    }
}

#[test]
fn two_tier_scale_out_decides_every_trace_once() {
    const TRACES: usize = 20;
    let jaeger = Jaeger::shared().expect("start Jaeger");
    let wait = format!("{}ms", DECISION_WAIT.as_millis());
    let tier2_env = [
        ("JAEGER_OTLP_GRPC", jaeger.otlp_grpc_endpoint()),
        ("GRANULAR_SLO", COLLECTOR_SLO.to_owned()),
        ("GRANULAR_DECISION_WAIT", wait),
    ];
    let tier2_env: Vec<(&str, &str)> = tier2_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut tier2 = [
        Collector::start("tier2.yaml", &tier2_env).expect("start tier-2 collector a"),
        Collector::start("tier2.yaml", &tier2_env).expect("start tier-2 collector b"),
    ];
    let endpoints = format!(
        "[{}, {}]",
        tier2[0].otlp_grpc_addr(),
        tier2[1].otlp_grpc_addr()
    );
    let tier1 = Collector::start(
        "tier1-loadbalancer.yaml",
        &[("GRANULAR_TIER2_ENDPOINTS", &endpoints)],
    )
    .expect("start the tier-1 load balancer");
    // Artifact links name one store; which tier-2 instance holds an artifact
    // is checked through both listings instead.
    let mut demo = demo_to(
        TWO_TIER_SERVICE,
        &tier1.otlp_grpc_endpoint(),
        &tier2[0].artifacts_base_url(),
    )
    .start()
    .expect("start demo-service");

    let mut sent: Vec<(String, bool)> = Vec::new();
    for i in 0..TRACES {
        let slow = i % 3 == 0;
        sent.push((
            request(&mut demo, if slow { VIOLATING } else { HEALTHY }),
            slow,
        ));
    }

    let mut rolled_up = 0;
    for (trace_id, slow) in &sent {
        let trace = jaeger
            .fetch_trace(trace_id, TRACE_TIMEOUT, |t| {
                complete(t) && (!slow || t.roots()[0].tag("granular.trace.cause").is_some())
            })
            .unwrap_or_else(|e| panic!("{} trace {trace_id}: {e}", kind(*slow)));
        let tree = trace.render();
        let ids: HashSet<&str> = trace.spans.iter().map(|s| s.span_id.as_str()).collect();
        assert_eq!(
            (trace.spans.len(), ids.len()),
            (SPANS_PER_TRACE, SPANS_PER_TRACE),
            "spans missing or exported twice\n{tree}"
        );
        let violates = violates_collector_slo(&trace);
        if *slow {
            assert!(violates, "{tree}");
        }
        let with_rollup: Vec<&Span> = trace
            .spans
            .iter()
            .filter(|s| s.tag("granular.trace.violations").is_some())
            .collect();
        if violates {
            rolled_up += 1;
            assert_eq!(with_rollup.len(), 1, "rollup not exactly once\n{tree}");
            assert_eq!(with_rollup[0].span_id, trace.roots()[0].span_id, "{tree}");
        } else {
            assert!(with_rollup.is_empty(), "rollup on a healthy trace\n{tree}");
            assert_stripped(&trace);
        }
    }

    // Exactly one decision per trace over both instances, and both decided some.
    let deadline = Instant::now() + METRICS_TIMEOUT;
    let mut per_instance = decisions(&mut tier2);
    while per_instance.iter().sum::<f64>() < TRACES as f64 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(100));
        per_instance = decisions(&mut tier2);
    }
    thread::sleep(2 * DECISION_WAIT);
    let metrics: Vec<Metrics> = tier2
        .iter_mut()
        .map(|c| c.metrics().expect("tier-2 metrics"))
        .collect();
    let report = || {
        metrics
            .iter()
            .enumerate()
            .map(|(i, m)| format!("tier-2 #{i}:\n{}", granular_metrics(m)))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let per_instance: Vec<f64> = metrics.iter().map(|m| m.sum(DECISIONS, &[])).collect();
    assert_eq!(
        per_instance.iter().sum::<f64>(),
        TRACES as f64,
        "{}",
        report()
    );
    assert!(
        per_instance.iter().all(|n| *n > 0.0),
        "one tier-2 instance got no trace: routing did not spread\n{}",
        report()
    );
    let violated: f64 = metrics
        .iter()
        .map(|m| m.sum(DECISIONS, &[("outcome", "violated")]))
        .sum();
    assert_eq!(violated, f64::from(rolled_up), "{}", report());

    // Artifacts follow their trace: each violating trace's artifact is in
    // exactly one store, healthy traces have none.
    let stored: Vec<Vec<String>> = tier2
        .iter_mut()
        .map(|c| c.artifact_ids().expect("artifact listing"))
        .collect();
    for (trace_id, slow) in &sent {
        let holders: Vec<usize> = stored
            .iter()
            .enumerate()
            .filter(|(_, ids)| ids.iter().any(|id| id.starts_with(trace_id.as_str())))
            .map(|(i, _)| i)
            .collect();
        if *slow {
            assert_eq!(
                holders.len(),
                1,
                "artifact of {trace_id} in stores {holders:?}: {stored:?}"
            );
        }
    }
    let _ = tier1;
}

/// A demo-service named `service` exporting spans and artifact log records
/// to `otlp_grpc`.
fn demo_to(
    service: &str,
    otlp_grpc: &str,
    artifacts_base: &str,
) -> granular_e2e::demo::DemoBuilder {
    Demo::builder(service)
        .otlp_grpc(otlp_grpc)
        .env("GRANULAR_SLO", LIBRARY_SLO)
        .env("GRANULAR_ARTIFACTS", "otlp")
        .env("GRANULAR_ARTIFACT_BASE_URL", artifacts_base)
        // Artifact log records leave within 100 ms, like the spans.
        .env("OTEL_BLRP_SCHEDULE_DELAY", "100")
}

/// `GET path`, expecting 200; its trace id.
fn request(demo: &mut Demo, path: &str) -> String {
    let response = demo.get(path).unwrap_or_else(|e| panic!("GET {path}: {e}"));
    assert_eq!(response.status, 200, "GET {path}: {}", response.body);
    response
        .trace_id()
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

fn kind(slow: bool) -> &'static str {
    if slow { "violating" } else { "healthy" }
}

/// All spans of one `GET /messages` arrived and form one tree.
fn complete(trace: &Trace) -> bool {
    trace.spans.len() >= SPANS_PER_TRACE && trace.is_connected()
}

fn granular_event(name: Option<&str>) -> bool {
    name.is_some_and(|n| n.starts_with("granular."))
}

/// The processor's judgement as far as Jaeger shows it: a span slower than
/// its collector rule, or flagged violating by the library, or an error.
fn violates_collector_slo(trace: &Trace) -> bool {
    trace.spans.iter().any(|span| {
        let threshold = if span.operation_name == "GET /messages" {
            MESSAGES_SLO_US
        } else {
            OTHER_SLO_US
        };
        span.duration > threshold
            || span.tag_bool("granular.slo.violated") == Some(true)
            || span.tag_bool("error") == Some(true)
            || span.tag_str("otel.status_code") == Some("ERROR")
    })
}

/// The category with the most `granular.time.<category>_us` summed over the
/// trace's non-synthetic spans, as the processor's rollup defines it.
fn dominant_cause(trace: &Trace) -> Option<&'static str> {
    GRANULAR_CATEGORIES
        .iter()
        .map(|category| {
            let total: i64 = trace
                .spans
                .iter()
                .filter(|s| s.tag_bool("granular.synthetic") != Some(true))
                .filter_map(|s| s.granular_time_us(category))
                .sum();
            (*category, total)
        })
        .filter(|(_, total)| *total > 0)
        .max_by_key(|(_, total)| *total)
        .map(|(category, _)| category)
}

/// No Granular detail beyond the summary attributes, no rollup.
fn assert_stripped(trace: &Trace) {
    let tree = trace.render();
    for span in &trace.spans {
        let extra: Vec<&str> = span
            .tags
            .iter()
            .map(|t| t.key.as_str())
            .filter(|k| k.starts_with("granular.") && !SUMMARY_ATTRIBUTES.contains(k))
            .collect();
        assert!(
            extra.is_empty(),
            "Granular attributes {extra:?} left on {} of a healthy trace\n{tree}",
            span.operation_name
        );
        assert!(
            !span.logs.iter().any(|log| granular_event(log.event())),
            "granular.* span events left on {} of a healthy trace\n{tree}",
            span.operation_name
        );
        assert!(
            ROLLUP.iter().all(|k| span.tag(k).is_none()),
            "rollup on a healthy trace\n{tree}"
        );
    }
}

/// Decisions so far, per instance.
fn decisions(collectors: &mut [Collector]) -> Vec<f64> {
    collectors
        .iter_mut()
        .map(|c| c.metrics().map_or(0.0, |m| m.sum(DECISIONS, &[])))
        .collect()
}

/// The metrics once no decision is added for a while.
fn settled(collector: &mut Collector, mut last: Metrics) -> Metrics {
    loop {
        let now = collector.metrics().expect("collector metrics");
        if now.sum(DECISIONS, &[]) == last.sum(DECISIONS, &[]) {
            return now;
        }
        last = now;
        thread::sleep(DECISION_WAIT);
    }
}

fn granular_metrics(metrics: &Metrics) -> String {
    metrics.render("otelcol_processor_granular")
}

/// `GET /api/traces?service=..&tags={..}`: the ids of the traces found.
fn search(jaeger: &Jaeger, service: &str, tags: &[(&str, &str)]) -> Result<Vec<String>> {
    let tags: BTreeMap<&str, &str> = tags.iter().copied().collect();
    let tags = serde_json::to_string(&tags).map_err(|e| Error::new(e.to_string()))?;
    let url = format!(
        "{}/api/traces?service={}&tags={}&lookback=1h&limit=100",
        jaeger.query_url(),
        percent_encode(service),
        percent_encode(&tags)
    );
    let body = fetch_bytes(&url, TRACE_TIMEOUT)?;
    let answer: Value = serde_json::from_slice(&body)
        .map_err(|e| Error::new(format!("GET {url}: not JSON ({e})")))?;
    Ok(answer["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["traceID"].as_str().map(str::to_owned))
        .collect())
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Writes the artifact under the log dir and decodes it with Perfetto's
/// official schema ([`check_perfetto`]); fails on unknown fields or
/// structural errors. The file is kept when the check fails.
fn check_artifact(bytes: &[u8], name: &str) -> Value {
    let dir = granular_e2e::log_dir().expect("log dir");
    std::fs::create_dir_all(&dir).expect("create the log dir");
    let file = dir.join(format!("collector-artifact-{name}.perfetto-trace"));
    std::fs::write(&file, bytes).expect("write the artifact");
    let summary = check_perfetto(&file).expect("the artifact decodes as a Perfetto trace");
    let shown = file.display();
    assert_eq!(
        summary["unknown_fields"],
        Value::Array(vec![]),
        "{shown}: {summary:#}"
    );
    assert_eq!(
        summary["errors"],
        Value::Array(vec![]),
        "{shown}: {summary:#}"
    );
    let _ = std::fs::remove_file(&file);
    summary
}

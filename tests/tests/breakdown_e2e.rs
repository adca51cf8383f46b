//! Granular's drill-down end to end: the demo service slowed on purpose, its
//! spans exported through the real Jaeger, and the answer read back from
//! Jaeger's query API — cause, time partition, culprit, span events, the
//! Perfetto artifact — in whichever build mode this test was compiled in.
//!
//! `tests/run.sh` runs this file twice: stable, and with
//! `RUSTFLAGS="--cfg tokio_unstable"` (the demo binaries are built with the
//! same flags into the same target dir, so `cfg!(tokio_unstable)` here says
//! which mode the library under test was built in). What differs:
//! * stable — scheduler wait is estimated from span entries
//!   (`granular.scheduler_wait.estimated`), no polls, no spawn sites;
//! * tokio_unstable — `granular.sources` has `tokio.tasks`, polls are
//!   counted and the culprit carries its spawn site (`report.rs`).
//!
//! The scenarios run one at a time (a lock): their timings are assertions,
//! and on a 2-core machine a concurrent scenario's CPU hog would show up as
//! OS wait in another's request. They share one Jaeger and, where they need
//! the same settings, one demo service: [`scenarios_demo`] (the SLO, events,
//! every span sent) and [`one_worker_demo`] (the same on one worker, for the
//! CPU hog). Needs the Jaeger binary
//! (deploy/jaeger/build.sh), the demo binaries of this target dir and
//! profile, and `GRANULAR_PYTHON` with the `perfetto` package for the
//! artifact check (tests/run.sh provides all three).

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use granular_e2e::demo::{Demo, DemoBuilder, DemoLease, Response, SharedDemo};
use granular_e2e::jaeger::Jaeger;
use granular_e2e::perfetto;
use granular_e2e::trace::{GRANULAR_CATEGORIES, Span, Trace};
use serde_json::{Value, json};

/// The build mode of the library under test (the demo is built with the same
/// RUSTFLAGS as this test; `mode_matches` checks that via `granular.sources`).
const TASK_HOOKS: bool = cfg!(tokio_unstable);
const MODE: &str = if TASK_HOOKS {
    "tokio_unstable"
} else {
    "stable"
};

const SLO: &str = "GET /messages=40ms,*=10s";
const MESSAGES_RULE: &str = "GET /messages=40ms";
const THRESHOLD_MS: u64 = 40;
const TRACE_TIMEOUT: Duration = Duration::from_secs(30);
/// Tries at making two requests overlap before the harness gives up.
const ATTEMPTS: usize = 3;

/// The CPU hog: `GET /report?ms=HOG_MS`, sent `HOG_DELAY` after `/messages`
/// to a demo with one worker, which the hog then holds.
const HOG_MS: u64 = 150;
const HOG_DELAY: Duration = Duration::from_millis(3);
/// `?pathology=block&ms=BLOCK_MS`: `thread::sleep` on the worker.
const BLOCK_MS: u64 = 80;
/// `?pathology=downstream&ms=DOWNSTREAM_MS`: an HTTP hop that waits.
const DOWNSTREAM_MS: u64 = 80;
/// Largest scheduler wait, blocked in poll and OS wait of a request that
/// only waited for its downstream.
const SMALL_US: i64 = 10_000;
/// The six parts may differ from the span's duration by this fraction.
const PARTS_TOLERANCE: f64 = 0.05;

const MESSAGES_SPANS: [&str; 4] = [
    "GET /messages",
    "auth.AccessToken",
    "cache.Lookup",
    "db.Query",
];

// ---------------------------------------------------------------------------
// 1. CPU hog → scheduler wait, culprit named.

#[test]
fn cpu_hog_shows_as_scheduler_wait_with_the_report_request_as_culprit() {
    let _serial = one_at_a_time();
    let jaeger = jaeger();
    let mut demo = one_worker_demo();
    let run = cpu_hog(jaeger, &mut demo);
    let root = messages_root(&run.trace);
    let tree = run.trace.render();

    let mut checks = Checks::new(&format!("scenario 1 (CPU hog, {MODE})"));
    checks.violated(root);
    checks.mode_matches(root);
    checks.eq_str(root, "granular.cause", "scheduler_wait");
    checks.that(
        root.tag_str("granular.verdict")
            .is_some_and(|v| v.starts_with("scheduler wait")),
        "granular.verdict starts with \"scheduler wait\"",
    );
    let wait_us = root.granular_time_us("scheduler_wait").unwrap_or(-1);
    checks.that(
        wait_us >= (HOG_MS * 1000 / 2) as i64,
        format!("granular.time.scheduler_wait_us = {wait_us} is at least half the {HOG_MS} ms hog"),
    );
    let culprit = root.tag_str("granular.culprit").unwrap_or("(none)");
    checks.that(
        culprit.contains("GET /report"),
        format!("granular.culprit {culprit:?} names GET /report (the hog's server span)"),
    );
    checks.that(
        root.tag_str("granular.culprit.trace_id") == Some(run.report_trace_id.as_str()),
        format!(
            "granular.culprit.trace_id {:?} is the /report request's trace {}",
            root.tag_str("granular.culprit.trace_id"),
            run.report_trace_id
        ),
    );
    let busy_us = root.tag_i64("granular.culprit.busy_us").unwrap_or(-1);
    checks.that(
        busy_us >= HOG_MS as i64 * 1000 / 2,
        format!("granular.culprit.busy_us = {busy_us} is at least half the {HOG_MS} ms hog"),
    );
    let events: Vec<&str> = root.logs.iter().filter_map(|log| log.event()).collect();
    checks.that(
        events
            .iter()
            .any(|e| *e == "granular.scheduler_wait" || *e == "granular.culprit_poll"),
        format!("a granular.scheduler_wait or granular.culprit_poll event; events: {events:?}"),
    );
    let spawn_site = root.tag_str("granular.culprit.spawn_site");
    if TASK_HOOKS {
        checks.that(
            spawn_site.is_some_and(|site| site.contains("report.rs")),
            format!("granular.culprit.spawn_site {spawn_site:?} is in report.rs"),
        );
        checks.that(
            root.tag_i64("granular.polls").is_some_and(|n| n > 0),
            "granular.polls > 0 (task hooks count polls)",
        );
    } else {
        checks.that(
            spawn_site.is_none(),
            format!("no granular.culprit.spawn_site without task hooks, got {spawn_site:?}"),
        );
    }
    // The request's step timers fell due while the hog held the only worker, and nothing
    // polled tokio's driver until the hog ended: tokio measures wake-to-poll latency from the
    // wake, which came late, so in either build the wait is inferred from the worker's parks
    // (an upper bound).
    checks.that(
        root.tag_bool("granular.scheduler_wait.estimated") == Some(true),
        format!(
            "granular.scheduler_wait.estimated = true (a late timer; {})",
            if TASK_HOOKS {
                "not what tokio measures"
            } else {
                "no task hooks"
            }
        ),
    );
    checks.parts_sum(&run.trace);
    checks.finish(&tree);
}

// ---------------------------------------------------------------------------
// 2. Blocking call → blocked in poll.

#[test]
fn blocking_sleep_shows_as_blocked_in_poll() {
    let _serial = one_at_a_time();
    let jaeger = jaeger();
    let mut demo = scenarios_demo();
    let trace_id = trace_id_of(
        demo.get(&format!("/messages?pathology=block&ms={BLOCK_MS}"))
            .expect("GET /messages?pathology=block"),
    );
    let trace = fetch_judged(jaeger, &trace_id, 4);
    let root = messages_root(&trace);

    let mut checks = Checks::new(&format!("scenario 2 (blocking call, {MODE})"));
    checks.violated(root);
    checks.mode_matches(root);
    checks.eq_str(root, "granular.cause", "blocked_in_poll");
    let blocked_us = root.granular_time_us("blocked_in_poll").unwrap_or(-1);
    let target_us = (BLOCK_MS * 1000) as i64;
    let tolerance_us = (target_us / 10).max(5_000);
    checks.that(
        (blocked_us - target_us).abs() <= tolerance_us,
        format!(
            "granular.time.blocked_in_poll_us = {blocked_us} is within {tolerance_us} µs of the \
             {BLOCK_MS} ms sleep"
        ),
    );
    checks.that(
        !root.logs_named("granular.blocked_in_poll").is_empty(),
        "a granular.blocked_in_poll event",
    );
    checks.parts_sum(&trace);
    checks.finish(&trace.render());
}

// ---------------------------------------------------------------------------
// 3. Slow downstream → idle, no runtime trouble.

#[test]
fn slow_downstream_shows_as_idle() {
    let _serial = one_at_a_time();
    let jaeger = jaeger();
    // The downstream hop goes to the shared demo; only this scenario calls one.
    let inventory = scenarios_demo();
    let artifacts = TempDir::new("downstream");
    let mut messages = granular_demo(jaeger, "messages", artifacts.path())
        .downstream(inventory.url())
        .start()
        .expect("start the messages demo-service");
    let trace_id = trace_id_of(
        messages
            .get(&format!(
                "/messages?pathology=downstream&ms={DOWNSTREAM_MS}"
            ))
            .expect("GET /messages?pathology=downstream"),
    );
    let trace = fetch_judged(jaeger, &trace_id, 6);
    let root = trace
        .span_in("messages", "GET /messages")
        .unwrap_or_else(|| panic!("no GET /messages span from messages\n{}", trace.render()));

    let mut checks = Checks::new(&format!("scenario 3 (slow downstream, {MODE})"));
    checks.violated(root);
    checks.mode_matches(root);
    checks.eq_str(root, "granular.cause", "idle");
    for category in ["scheduler_wait", "blocked_in_poll", "os_wait"] {
        let us = root.granular_time_us(category).unwrap_or(-1);
        checks.that(
            (0..SMALL_US).contains(&us),
            format!("granular.time.{category}_us = {us} is below {SMALL_US}"),
        );
    }
    let idle_us = root.granular_time_us("idle").unwrap_or(-1);
    checks.that(
        idle_us >= (DOWNSTREAM_MS * 1000 * 9 / 10) as i64,
        format!("granular.time.idle_us = {idle_us} covers the {DOWNSTREAM_MS} ms downstream wait"),
    );
    checks.parts_sum(&trace);
    checks.finish(&trace.render());
}

// ---------------------------------------------------------------------------
// 4. Healthy request → judged, not analyzed.

#[test]
fn healthy_request_is_judged_but_not_analyzed() {
    let _serial = one_at_a_time();
    let jaeger = jaeger();
    let mut demo = scenarios_demo();
    let trace = healthy_messages(jaeger, &mut demo);
    let root = messages_root(&trace);

    let mut checks = Checks::new(&format!("scenario 4 (healthy request, {MODE})"));
    checks.that(
        root.tag_bool("granular.slo.violated") == Some(false),
        "granular.slo.violated = false",
    );
    checks.eq_str(root, "granular.slo.rule", MESSAGES_RULE);
    checks.that(
        root.tag_f64("granular.slo.threshold_ms") == Some(THRESHOLD_MS as f64),
        format!("granular.slo.threshold_ms = {THRESHOLD_MS}"),
    );
    for span in &trace.spans {
        let analyzed: Vec<&str> = span
            .tags
            .iter()
            .map(|tag| tag.key.as_str())
            .filter(|key| {
                key.starts_with("granular.")
                    && !key.starts_with("granular.slo.")
                    && *key != "granular.baseline"
            })
            .collect();
        checks.that(
            analyzed.is_empty(),
            format!(
                "{} carries no breakdown (no granular.cause etc.), got {analyzed:?}",
                span.operation_name
            ),
        );
        checks.that(
            span.logs.iter().all(|log| {
                !log.event()
                    .is_some_and(|event| event.starts_with("granular."))
            }),
            format!("{} has no granular.* events", span.operation_name),
        );
    }
    checks.finish(&trace.render());
}

// ---------------------------------------------------------------------------
// 5. The artifact link → a Perfetto trace the official schema decodes.

#[test]
fn cpu_hog_artifact_is_a_perfetto_timeline() {
    let _serial = one_at_a_time();
    let jaeger = jaeger();
    let mut demo = one_worker_demo();
    let run = cpu_hog(jaeger, &mut demo);
    let root = messages_root(&run.trace);
    let tree = run.trace.render();

    let url = root
        .tag_str("granular.artifact")
        .unwrap_or_else(|| panic!("no granular.artifact on GET /messages\n{tree}"));
    let path = perfetto::file_url_path(url).unwrap_or_else(|e| panic!("{e}\n{tree}"));
    let artifacts = demo
        .setting("GRANULAR_ARTIFACT_DIR")
        .expect("the demo's GRANULAR_ARTIFACT_DIR");
    assert!(
        path.starts_with(artifacts),
        "{} is not in GRANULAR_ARTIFACT_DIR={artifacts}\n{tree}",
        path.display(),
    );
    assert!(
        path.is_file(),
        "granular.artifact points at {}, which does not exist\n{tree}",
        path.display()
    );
    let summary = perfetto::check_perfetto(&path).unwrap_or_else(|e| panic!("{e}\n{tree}"));
    let context = format!(
        "check_perfetto.py on {}:\n{summary:#}\n{tree}",
        path.display()
    );

    assert_eq!(summary["errors"], json!([]), "structural errors\n{context}");
    assert_eq!(
        summary["unknown_fields"],
        json!([]),
        "fields unknown to the official schema\n{context}"
    );
    let process_name = summary["process"]["name"].as_str().unwrap_or_default();
    assert!(
        process_name.contains(&run.trace.trace_id),
        "the timeline's title names the trace\n{context}"
    );
    let tracks: Vec<&Value> = summary["tracks"].as_array().into_iter().flatten().collect();
    let named = |prefix: &str| {
        tracks
            .iter()
            .filter(|track| {
                track["name"]
                    .as_str()
                    .is_some_and(|name| name.starts_with(prefix))
            })
            .collect::<Vec<_>>()
    };
    let workers = named("worker ");
    assert!(
        workers
            .iter()
            .any(|t| t["tid"].is_u64() && t["slices"].as_u64() > Some(0)),
        "a worker thread track with slices\n{context}"
    );
    let requests = named("request: GET /messages");
    assert!(
        requests.iter().any(|t| t["slices"].as_u64() > Some(0)),
        "a request track with the breakdown's intervals\n{context}"
    );
    let highlighted: Vec<&str> = summary["highlighted"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    assert!(!highlighted.is_empty(), "a highlighted slice\n{context}");
    assert!(
        highlighted
            .iter()
            .any(|name| name.contains("scheduler wait")),
        "the scheduler wait is highlighted on the request track\n{context}"
    );
    // What the viewer reads from the artifact alone: the request's spans (one slice each on
    // the `spans` track), and on the analyzed span's slice the span's own breakdown, verdict
    // and ids; the culprit's work in a category of its own.
    assert_eq!(
        summary["slices_by_track"]["spans"].as_u64(),
        Some(run.trace.spans.len() as u64),
        "one slice per span of the request on the spans track\n{context}"
    );
    let request = &summary["annotations"]["★ GET /messages"];
    assert_eq!(
        request["trace_id"],
        run.trace.trace_id.as_str(),
        "{context}"
    );
    assert_eq!(request["span_id"], root.span_id.as_str(), "{context}");
    assert_eq!(
        request["granular.verdict"].as_str(),
        root.tag_str("granular.verdict"),
        "{context}"
    );
    for category in GRANULAR_CATEGORIES {
        let key = format!("granular.time.{category}_us");
        assert_eq!(
            request[&key].as_str().and_then(|v| v.parse::<i64>().ok()),
            root.granular_time_us(category),
            "{key} on the artifact's request slice is the span's\n{context}"
        );
    }
    assert!(
        summary["categories"]["culprit"].as_u64() > Some(0),
        "the culprit's work is drawn in the culprit category\n{context}"
    );
}

// ---------------------------------------------------------------------------
// 6. The parts sum to the span, for every pathology.

#[test]
fn time_parts_sum_to_the_span_for_every_pathology() {
    let _serial = one_at_a_time();
    let jaeger = jaeger();
    let mut demo = scenarios_demo();
    // Each pathology with the cause it must be given when it is slow
    // enough to be analyzed (None: whatever the machine makes of it).
    // Work in a spawned child task with no span is attributed to the
    // request only with task hooks; stable builds see the parent idle.
    let child_cause = if TASK_HOOKS { "running" } else { "idle" };
    let cases = [
        (
            format!("/messages?pathology=block&ms={BLOCK_MS}"),
            Some("blocked_in_poll"),
        ),
        (
            format!("/messages?pathology=downstream&ms={DOWNSTREAM_MS}"),
            Some("idle"),
        ),
        (
            "/messages?pathology=spawn_blocking&jobs=12&ms=20".to_owned(),
            Some("blocking_pool"),
        ),
        (
            "/messages?pathology=child&ms=60".to_owned(),
            Some(child_cause),
        ),
        ("/messages?pathology=alloc&mib=1024".to_owned(), None),
        ("/messages?pathology=blockfile&mib=32".to_owned(), None),
    ];
    let mut checks = Checks::new(&format!("scenario 6 (parts sum, {MODE})"));
    let mut trees = String::new();
    let mut enriched = 0;
    for (path, cause) in &cases {
        let trace_id = trace_id_of(demo.get(path).expect("GET a slow /messages"));
        let trace = fetch_judged(jaeger, &trace_id, 4);
        let _ = writeln!(trees, "{path}\n{}", trace.render());
        for span in trace.enriched_spans() {
            // Shown with --nocapture: what each pathology looks like.
            println!(
                "{path}: {} {:.1} ms cause={} parts_us={:?} verdict={:?}",
                span.operation_name,
                span.duration_ms(),
                span.tag_str("granular.cause").unwrap_or("?"),
                span.granular_time_parts_us(),
                span.tag_str("granular.verdict").unwrap_or("?"),
            );
        }
        enriched += trace.enriched_spans().len();
        checks.parts_sum(&trace);
        if let Some(cause) = cause {
            let root = messages_root(&trace);
            checks.that(
                root.tag_str("granular.cause") == Some(cause),
                format!(
                    "{path}: granular.cause = {cause:?}, got {:?}",
                    root.tag_str("granular.cause")
                ),
            );
        }
    }
    checks.that(
        enriched >= 4,
        format!("at least the 4 surely slow requests were analyzed; {enriched} spans were"),
    );
    checks.finish(&trees);
}

// ---------------------------------------------------------------------------
// 7. A bad GRANULAR_* value stops the service with a clear message.

#[test]
fn bad_granular_value_stops_the_service_naming_it() {
    let _serial = one_at_a_time();
    for (variable, value, expected) in [
        (
            "GRANULAR_SAMPLE",
            "some",
            Some("expected all or violations"),
        ),
        (
            "GRANULAR_DETAIL",
            "verbose",
            Some("expected summary, events or spans"),
        ),
        ("GRANULAR_SLO", "GET /messages=fast", None),
    ] {
        let mut process = Demo::builder("bad-config")
            // Nothing listens there: the service must fail before exporting.
            .otlp_grpc("http://127.0.0.1:9")
            .env(variable, value)
            .spawn()
            .expect("spawn demo-service");
        let status = process
            .wait_for_exit(Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("{variable}={value:?}: {e}"));
        let log = process.log();
        assert!(
            !status.success(),
            "{variable}={value:?}: exited successfully\n{log}"
        );
        assert_eq!(
            status.code(),
            Some(2),
            "{variable}={value:?}: demo-service reports start-up failures with status 2\n{log}"
        );
        let named = format!("{variable}={value:?} is invalid");
        let line = log.lines().find(|line| line.contains(&named));
        let line =
            line.unwrap_or_else(|| panic!("{variable}={value:?}: no line saying {named:?}\n{log}"));
        assert!(
            line.contains("expected ") && expected.is_none_or(|form| line.contains(form)),
            "{variable}={value:?}: the message does not give the expected form ({expected:?}): \
             {line}"
        );
        assert!(
            !log.contains("listening on "),
            "{variable}={value:?}: the service started anyway\n{log}"
        );
    }
}

// ---------------------------------------------------------------------------
// 8. GRANULAR_SAMPLE=violations: only slow traces leave, whole.

#[test]
fn sample_violations_exports_only_slow_traces_whole() {
    let _serial = one_at_a_time();
    let jaeger = jaeger();
    let artifacts = TempDir::new("violations");
    let mut demo = granular_demo(jaeger, "violations", artifacts.path())
        .env("GRANULAR_SAMPLE", "violations")
        .start()
        .expect("start demo-service");

    // Healthy first, then the slow one: once the slow trace has arrived,
    // the exporter has had its chance to send the earlier ones.
    let mut healthy = Vec::new();
    for _ in 0..4 {
        let response = demo.get("/messages").expect("GET /messages");
        // Faster than the SLO end to end, so surely under it on the server.
        if response.elapsed < Duration::from_millis(THRESHOLD_MS) {
            healthy.push(trace_id_of(response));
        }
    }
    assert!(
        !healthy.is_empty(),
        "no /messages request finished under {THRESHOLD_MS} ms: the machine is too loaded to \
         tell healthy from slow"
    );
    let slow_id = trace_id_of(
        demo.get(&format!("/messages?pathology=block&ms={BLOCK_MS}"))
            .expect("GET /messages?pathology=block"),
    );
    let trace = fetch_judged(jaeger, &slow_id, 4);
    let tree = trace.render();
    let names: BTreeSet<&str> = trace
        .spans
        .iter()
        .map(|span| span.operation_name.as_str())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from(MESSAGES_SPANS),
        "the violating trace arrives with all its spans\n{tree}"
    );
    assert_eq!(trace.spans.len(), MESSAGES_SPANS.len(), "{tree}");
    let root = messages_root(&trace);
    assert_eq!(
        root.tag_str("granular.cause"),
        Some("blocked_in_poll"),
        "{tree}"
    );
    assert_eq!(root.tag_bool("granular.slo.violated"), Some(true), "{tree}");

    for (i, trace_id) in healthy.iter().enumerate() {
        // The BSP sends every 100 ms; the first id gets the longest watch.
        let watch = if i == 0 {
            Duration::from_millis(1500)
        } else {
            Duration::ZERO
        };
        jaeger.expect_no_trace(trace_id, watch).unwrap_or_else(|e| {
            panic!("healthy trace exported with GRANULAR_SAMPLE=violations: {e}")
        });
    }
}

// ---------------------------------------------------------------------------
// 9. Work no span follows → the verdict says how much and that it may be the
//    request's, never "no runtime trouble" (issue #17, item 4).

/// CPU burned by each case of scenario 9, ms.
const HIDDEN_MS: u64 = 40;

#[test]
fn work_no_span_follows_is_named_in_the_verdict() {
    let _serial = one_at_a_time();
    let jaeger = jaeger();
    let mut demo = scenarios_demo();
    let mut checks = Checks::new(&format!("scenario 9 (work no span follows, {MODE})"));
    let mut trees = String::new();

    // tokio::task::spawn_blocking: no hook sees it in either build; its pool CPU is seen.
    let path = format!("/messages?pathology=tokio_blocking&ms={HIDDEN_MS}");
    let trace = request_judged(jaeger, &mut demo, &path);
    let root = messages_root(&trace);
    verdict_shown(&path, root);
    checks.eq_str(root, "granular.cause", "idle");
    checks.names_unattributed(
        &path,
        root,
        &[
            "the blocking pool was busy",
            "which may be this request's",
            "use granular::spawn_blocking",
        ],
        "granular.unattributed.pool_us",
    );
    let _ = writeln!(trees, "{path}\n{}", trace.render());

    // granular::spawn_blocking from a task without a span: its request is known only by
    // following the spawn (task hooks).
    let path = format!("/messages?pathology=child_blocking&ms={HIDDEN_MS}");
    let trace = request_judged(jaeger, &mut demo, &path);
    let root = messages_root(&trace);
    verdict_shown(&path, root);
    if TASK_HOOKS {
        checks.eq_str(root, "granular.cause", "blocking_pool");
    } else {
        checks.names_unattributed(
            &path,
            root,
            &[
                "granular::spawn_blocking jobs queued outside any span ran",
                "--cfg tokio_unstable",
            ],
            "granular.unattributed.pool_us",
        );
    }
    let _ = writeln!(trees, "{path}\n{}", trace.render());

    // CPU in a spawned child task without a span.
    let path = format!("/messages?pathology=child&ms={HIDDEN_MS}");
    let trace = request_judged(jaeger, &mut demo, &path);
    let root = messages_root(&trace);
    verdict_shown(&path, root);
    if TASK_HOOKS {
        // The burn runs on a worker, or waits for the CPU on this shared machine: either
        // way the child's work, attributed to the request.
        let cause = root.tag_str("granular.cause");
        checks.that(
            matches!(cause, Some("running" | "os_wait")),
            format!("{path}: granular.cause is running (or os_wait), got {cause:?}"),
        );
    } else {
        checks.names_unattributed(
            &path,
            root,
            &[
                "the workers were busy",
                "outside any span",
                "--cfg tokio_unstable",
            ],
            "granular.unattributed.workers_us",
        );
    }
    // Polls are absent where they are not observed, not 0.
    checks.that(
        root.tag("granular.polls").is_some() == TASK_HOOKS,
        format!(
            "{path}: granular.polls {} in a {MODE} build",
            if TASK_HOOKS { "present" } else { "absent" }
        ),
    );
    let _ = writeln!(trees, "{path}\n{}", trace.render());

    // A request that only awaited timers: idle, and whatever the workers did meanwhile
    // outside spans (the exporter's chores, on this shared machine a preempted worker) is
    // far from the whole wait.
    let trace = request_judged(jaeger, &mut demo, "/messages?pathology=sleep&ms=60");
    let root = messages_root(&trace);
    let verdict = verdict_shown("sleep", root);
    checks.that(
        verdict.starts_with("idle")
            && verdict.contains(": awaiting I/O, timers or downstream calls;"),
        format!("a plain timer wait is idle, awaiting a timer: {verdict:?}"),
    );
    let idle_us = root.granular_time_us("idle").unwrap_or(0);
    let workers_us = root
        .tag_i64("granular.unattributed.workers_us")
        .unwrap_or(-1);
    checks.that(
        (0..idle_us / 4).contains(&workers_us),
        format!(
            "a plain timer wait: granular.unattributed.workers_us = {workers_us} is under a \
             quarter of its {idle_us} µs idle"
        ),
    );
    let _ = writeln!(trees, "sleep\n{}", trace.render());
    checks.finish(&trees);
}

// ---------------------------------------------------------------------------
// Helpers.

/// One scenario at a time (see the module doc); a failed one does not stop
/// the others.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

fn jaeger() -> &'static Jaeger {
    Jaeger::shared().expect("start Jaeger")
}

/// A demo-service exporting to `jaeger` with Granular configured for the
/// scenarios: the SLO, events on, artifacts in `artifacts`, every span sent.
fn granular_demo(jaeger: &Jaeger, name: &str, artifacts: &Path) -> DemoBuilder {
    Demo::builder(name)
        .otlp_grpc(&jaeger.otlp_grpc_endpoint())
        .env("GRANULAR_SLO", SLO)
        .env("GRANULAR_DETAIL", "events")
        .env("GRANULAR_SAMPLE", "all")
        .env("GRANULAR_ARTIFACT_DIR", &artifacts.to_string_lossy())
}

/// The demo of the scenarios that need no setting of their own
/// ([`granular_demo`]'s).
fn scenarios_demo() -> DemoLease {
    static DEMO: SharedDemo = SharedDemo::new();
    shared_demo(&DEMO, "scenarios", &[])
}

/// The same on one worker, which the CPU hog then holds.
fn one_worker_demo() -> DemoLease {
    static DEMO: SharedDemo = SharedDemo::new();
    shared_demo(&DEMO, "one-worker", &[("DEMO_WORKERS", "1")])
}

/// This scenario's turn at `demo`, started on first use as
/// [`granular_demo`] named `name` with `env` on top, its artifacts under the
/// target dir (kept after a failed run).
fn shared_demo(
    demo: &'static SharedDemo,
    name: &'static str,
    env: &'static [(&'static str, &'static str)],
) -> DemoLease {
    let jaeger = jaeger();
    demo.lease(move || {
        let artifacts = granular_e2e::artifact_dir(&format!("breakdown-{name}"))?;
        let mut builder = granular_demo(jaeger, name, &artifacts);
        for (key, value) in env {
            builder = builder.env(key, value);
        }
        Ok(builder)
    })
    .unwrap_or_else(|e| panic!("start the shared {name} demo-service: {e}"))
}

/// A `/messages` request overlapped by the CPU hog, as stored in Jaeger.
struct HogRun {
    trace: Trace,
    report_trace_id: String,
}

/// Sends `/messages`, then `HOG_DELAY` later `/report?ms=HOG_MS`, to a demo
/// with one worker, until the hog lands inside the `/messages` span (the
/// harness cannot order two connections' arrival exactly; a try where
/// `/report` was served first, or `/messages` was done before it, is
/// repeated).
fn cpu_hog(jaeger: &Jaeger, demo: &mut Demo) -> HogRun {
    let hog = format!("/report?ms={HOG_MS}");
    let mut tries = String::new();
    for attempt in 1..=ATTEMPTS {
        let responses = demo
            .get_staggered(&[(Duration::ZERO, "/messages"), (HOG_DELAY, &hog)])
            .expect("GET /messages and the hog");
        let [messages, report] = &responses[..] else {
            unreachable!("two requests, two responses")
        };
        let trace_id = trace_id_of(messages.clone());
        let report_trace_id = trace_id_of(report.clone());
        let trace = fetch_judged(jaeger, &trace_id, 4);
        let root = messages_root(&trace);
        if root.duration >= HOG_MS * 1000 / 2 {
            return HogRun {
                trace,
                report_trace_id,
            };
        }
        let _ = writeln!(
            tries,
            "attempt {attempt}: GET /messages took {:.1} ms in Jaeger ({:?} at the client), \
             /report {:?}: the hog did not overlap it\n{}",
            root.duration_ms(),
            messages.elapsed,
            report.elapsed,
            trace.render()
        );
    }
    panic!(
        "the {HOG_MS} ms hog never overlapped a /messages request in {ATTEMPTS} attempts\n{tries}"
    );
}

/// A `/messages` request that finished under the SLO, as stored in Jaeger.
/// A request that was slow for real (a loaded machine) is repeated.
fn healthy_messages(jaeger: &Jaeger, demo: &mut Demo) -> Trace {
    let mut tries = String::new();
    for _ in 0..ATTEMPTS {
        let trace_id = trace_id_of(demo.get("/messages").expect("GET /messages"));
        let trace = fetch_judged(jaeger, &trace_id, 4);
        if messages_root(&trace).duration < THRESHOLD_MS * 1000 {
            return trace;
        }
        tries.push_str(&trace.render());
    }
    panic!("no /messages request finished under {THRESHOLD_MS} ms in {ATTEMPTS} tries\n{tries}");
}

/// The trace once it has `spans` spans, one root, and a judged root (the
/// root of an analyzed span arrives only after the analysis).
fn fetch_judged(jaeger: &Jaeger, trace_id: &str, spans: usize) -> Trace {
    jaeger
        .fetch_trace(trace_id, TRACE_TIMEOUT, |t| {
            t.spans.len() >= spans
                && t.is_connected()
                && t.roots()
                    .first()
                    .is_some_and(|root| root.tag("granular.slo.violated").is_some())
        })
        .expect("the trace in Jaeger, complete and judged")
}

/// GETs `path` from the demo and fetches its trace, complete and judged (four spans).
fn request_judged(jaeger: &Jaeger, demo: &mut Demo, path: &str) -> Trace {
    fetch_judged(jaeger, &trace_id_of(demo.get(path).expect("GET")), 4)
}

/// The span's verdict, printed under `label` (shown with --nocapture); empty when it has none.
fn verdict_shown<'a>(label: &str, span: &'a Span) -> &'a str {
    let verdict = span.tag_str("granular.verdict").unwrap_or("");
    println!("{label}: {verdict}");
    verdict
}

fn messages_root(trace: &Trace) -> &Span {
    match trace.roots()[..] {
        [root] if root.operation_name == "GET /messages" => root,
        _ => panic!("expected one root span, GET /messages\n{}", trace.render()),
    }
}

/// The trace id of a 200 response.
fn trace_id_of(response: Response) -> String {
    assert_eq!(
        response.status, 200,
        "unexpected status; body: {}",
        response.body
    );
    response.trace_id().expect("x-trace-id")
}

/// Soft assertions: every failed check of a scenario is reported at once,
/// with the trace, so one library problem does not hide the next.
struct Checks {
    scenario: String,
    failures: Vec<String>,
    passed: usize,
}

impl Checks {
    fn new(scenario: &str) -> Self {
        Self {
            scenario: scenario.to_owned(),
            failures: Vec::new(),
            passed: 0,
        }
    }

    fn that(&mut self, ok: bool, what: impl Into<String>) {
        if ok {
            self.passed += 1;
        } else {
            self.failures.push(what.into());
        }
    }

    /// Scenario 9: the verdict of `root` (requested at `path`) names work no span follows —
    /// says every one of `phrases`, never "no runtime trouble" — and its `key` attribute
    /// covers at least half the [`HIDDEN_MS`] burn (the shared machine may preempt it).
    fn names_unattributed(&mut self, path: &str, root: &Span, phrases: &[&str], key: &str) {
        let verdict = root.tag_str("granular.verdict").unwrap_or("");
        self.that(
            phrases.iter().all(|p| verdict.contains(p)) && !verdict.contains("no runtime trouble"),
            format!(
                "{path}: the verdict names the work no span follows ({phrases:?}): {verdict:?}"
            ),
        );
        let us = root.tag_i64(key).unwrap_or(-1);
        let half_us = (HIDDEN_MS * 1000 / 2) as i64;
        self.that(
            us >= half_us,
            format!("{path}: {key} = {us} covers half the {HIDDEN_MS} ms burn"),
        );
    }

    fn eq_str(&mut self, span: &Span, key: &str, expected: &str) {
        let actual = span.tag_str(key);
        self.that(
            actual == Some(expected),
            format!(
                "{} {key} = {expected:?}, got {actual:?}",
                span.operation_name
            ),
        );
    }

    /// The span violated the `/messages` SLO and says so.
    fn violated(&mut self, span: &Span) {
        self.that(
            span.tag_bool("granular.slo.violated") == Some(true),
            format!("{} granular.slo.violated = true", span.operation_name),
        );
        self.eq_str(span, "granular.slo.rule", MESSAGES_RULE);
    }

    /// `granular.sources` says the demo was built in this test's mode.
    fn mode_matches(&mut self, span: &Span) {
        let sources = span.tag_str("granular.sources").unwrap_or_default();
        let has_tasks = sources.split(',').any(|source| source == "tokio.tasks");
        self.that(
            has_tasks == TASK_HOOKS,
            format!(
                "granular.sources {sources:?} {} tokio.tasks in a {MODE} build (is demo-service \
                 built with the same RUSTFLAGS and CARGO_TARGET_DIR as this test?)",
                if TASK_HOOKS { "includes" } else { "lacks" }
            ),
        );
    }

    /// Every analyzed span of `trace` has all six parts, summing to its
    /// duration within `PARTS_TOLERANCE`.
    fn parts_sum(&mut self, trace: &Trace) {
        for span in trace.enriched_spans() {
            let Some(parts) = span.granular_time_parts_us() else {
                let keys = GRANULAR_CATEGORIES.map(|c| format!("granular.time.{c}_us"));
                self.that(
                    false,
                    format!(
                        "{} (trace {}) carries granular.cause but not all of {keys:?}",
                        span.operation_name, trace.trace_id
                    ),
                );
                continue;
            };
            let sum: u64 = parts.iter().sum();
            let off = sum.abs_diff(span.duration) as f64;
            self.that(
                off <= PARTS_TOLERANCE * span.duration as f64,
                format!(
                    "{} (trace {}): the parts {parts:?} sum to {sum} µs, the span lasted {} µs \
                     (off by {:.1}%, more than {:.0}%)",
                    span.operation_name,
                    trace.trace_id,
                    span.duration,
                    100.0 * off / span.duration.max(1) as f64,
                    PARTS_TOLERANCE * 100.0
                ),
            );
        }
    }

    fn finish(self, context: &str) {
        if self.failures.is_empty() {
            return;
        }
        panic!(
            "{}: {} of {} checks failed:\n  - {}\n{context}",
            self.scenario,
            self.failures.len(),
            self.failures.len() + self.passed,
            self.failures.join("\n  - ")
        );
    }
}

/// A fresh directory for the service's artifacts; removed when the test
/// passes, kept (and named) when it fails.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!(
            "granular-e2e-{name}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        Self(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("artifacts kept in {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

//! Completeness of `GRANULAR_SAMPLE=violations` (issue #17: violating traces silently missing
//! from Jaeger). The demo service runs with an SLO every `/messages` request violates, a client
//! sends 10,000 of them in mixed shapes at a moderate, steady rate, and every trace id the
//! client got back (`x-trace-id`) must be in Jaeger with its root and every span its shape
//! makes. The service's shutdown line must count each of them as chosen for export and
//! exported whole.
//!
//! Shapes: the rotation of `granular_e2e::violating::SHAPES` (its module lists them), up to eight
//! requests in flight at once; tests/tests/ring_overload.rs sends it too.
//!
//! `GRANULAR_COMPLETENESS_REQUESTS` (default 10,000) and `GRANULAR_COMPLETENESS_RATE` (requests
//! a second, default 125) size the run. With `GRANULAR_WRITE_DOCS=1` the result is written to
//! this build's row of docs/accuracy.md (Completeness). Needs the Jaeger binary and the demo
//! binaries of this target dir and profile (tests/run.sh provides both).

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use granular_e2e::bench::docs::{today, write_section};
use granular_e2e::bench::procfs::Machine;
use granular_e2e::faults::{counter, names, shutdown_line};
use granular_e2e::jaeger::Jaeger;
use granular_e2e::trace::Trace;
use granular_e2e::violating::{self, LOCK_WAITER, Missing, SHAPES, Sent, check, env_number, send};
use granular_e2e::workspace_root;

const MODE: &str = if cfg!(tokio_unstable) {
    "tokio_unstable"
} else {
    "stable"
};

const DEFAULT_REQUESTS: usize = 10_000;
const DEFAULT_RATE: f64 = 125.0;
/// Requests in flight at most.
const CONCURRENCY: usize = 8;
/// How long after the last response every trace may take to arrive whole.
const ARRIVAL_TIMEOUT: Duration = Duration::from_secs(90);

/// A `lock.wait` this long means the request did wait for the other's lock.
const CONTENDED: Duration = Duration::from_millis(1);

#[test]
fn every_violating_trace_reaches_jaeger_whole() {
    let requests = env_number("GRANULAR_COMPLETENESS_REQUESTS", DEFAULT_REQUESTS as f64) as usize;
    let rate = env_number("GRANULAR_COMPLETENESS_RATE", DEFAULT_RATE);
    let jaeger = Jaeger::shared().expect("start Jaeger");
    let demo = violating::demo("completeness", &jaeger.otlp_grpc_endpoint())
        .start()
        .expect("start demo-service");

    let started = Instant::now();
    let sent = send(demo.url(), &SHAPES, requests, rate, CONCURRENCY);
    let sending = started.elapsed();
    let checking = Instant::now();
    let mut contended = 0;
    let missing = check(jaeger.query(), &sent, &SHAPES, ARRIVAL_TIMEOUT, |s, t| {
        if s.shape == LOCK_WAITER && waited(t) {
            contended += 1;
        }
    });
    let checking = checking.elapsed();

    // Stopping the service flushes it and makes it print its counters.
    let log_path = demo.process().log_path().to_owned();
    drop(demo);
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    let shutdown = shutdown_line(&log)
        .map(str::to_owned)
        .unwrap_or_else(|| format!("(no shutdown line in {})", log_path.display()));
    let count = |name: &str| counter(&shutdown, name);

    let waiters = sent.iter().filter(|s| s.shape == LOCK_WAITER).count();
    let summary = format!(
        "{MODE}: {} violating requests sent in {:.1} s ({:.0}/s, {CONCURRENCY} in flight at \
         most), checked in {:.1} s; {} in Jaeger whole, {} missing or partial; {contended} of \
         {waiters} lock waiters waited {CONTENDED:?} or more\n{shutdown}",
        sent.len(),
        sending.as_secs_f64(),
        sent.len() as f64 / sending.as_secs_f64(),
        checking.as_secs_f64(),
        sent.len() - missing.len(),
        missing.len()
    );
    println!("{summary}");
    if std::env::var("GRANULAR_WRITE_DOCS").is_ok_and(|v| v == "1") {
        write_docs(&sent, &missing, sending, &shutdown, rate);
    }

    let mut problems = String::new();
    for (sent, found) in missing.iter().take(20) {
        let _ = writeln!(
            problems,
            "- {} ({}): {}",
            sent.trace_id,
            SHAPES[sent.shape].name,
            found
                .as_ref()
                .map_or("not in Jaeger".to_owned(), |t| format!(
                    "in Jaeger with {:?}",
                    names(t)
                ))
        );
    }
    assert!(
        missing.is_empty(),
        "{} of {} violating traces did not reach Jaeger whole (first 20 below)\n{problems}\n{summary}",
        missing.len(),
        sent.len()
    );
    assert!(
        waiters == 0 || contended > 0,
        "no lock waiter waited for the lock: the shape did not happen\n{summary}"
    );
    let n = sent.len() as u64;
    assert_eq!(
        (count("chosen_traces"), count("exported_traces")),
        (Some(n), Some(n)),
        "every trace chosen for export and counted whole\n{summary}"
    );
}

/// Whether the trace's `lock.wait` span lasted [`CONTENDED`] or more.
fn waited(trace: &Trace) -> bool {
    trace
        .span_by_name("lock.wait")
        .is_some_and(|s| s.duration >= CONTENDED.as_micros() as u64)
}

/// This build's row of docs/accuracy.md's Completeness table.
fn write_docs(sent: &[Sent], missing: &Missing<'_>, sending: Duration, shutdown: &str, rate: f64) {
    let counters: Vec<&str> = shutdown
        .split_whitespace()
        .filter(|w| {
            [
                "chosen_traces=",
                "exported_traces=",
                "partial_traces=",
                "unfinished_traces=",
                "lost_traces=",
                "not_found_traces=",
                "rebuild_errors=",
                "skipped_queue_full=",
                "light_analyzed=",
                "overwritten_records=",
            ]
            .iter()
            .any(|k| w.starts_with(k))
        })
        .collect();
    let command = if cfg!(tokio_unstable) {
        "GRANULAR_WRITE_DOCS=1 RUSTFLAGS=\"--cfg tokio_unstable\" CARGO_TARGET_DIR=target/unstable cargo test -p granular-e2e --test completeness -- --nocapture"
    } else {
        "GRANULAR_WRITE_DOCS=1 cargo test -p granular-e2e --test completeness -- --nocapture"
    };
    let body = format!(
        "Build mode **{MODE}**; machine {} (a shared, noisy VM); {} (debug build); command: \
         `{command}`.\n\n\
         {} violating requests sent in {:.0} s (asked {rate:.0}/s, got {:.0}/s); in Jaeger \
         whole: **{}**; missing or partial: **{}**. Shutdown line: `{}`.",
        Machine::describe().summary(),
        today(),
        sent.len(),
        sending.as_secs_f64(),
        sent.len() as f64 / sending.as_secs_f64(),
        sent.len() - missing.len(),
        missing.len(),
        counters.join(" ")
    );
    let path = workspace_root().join("docs/accuracy.md");
    write_section(
        &path,
        &format!("completeness-{MODE}"),
        &format!("### Completeness, {MODE}"),
        &body,
    )
    .expect("write docs/accuracy.md");
    println!(
        "wrote the {MODE} completeness section of {}",
        path.display()
    );
}

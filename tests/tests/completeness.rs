//! Completeness of `GRANULAR_SAMPLE=violations` (issue #17: violating traces silently missing
//! from Jaeger). The demo service runs with an SLO every `/messages` request violates, a client
//! sends 10,000 of them in mixed shapes at a moderate, steady rate, and every trace id the
//! client got back (`x-trace-id`) must be in Jaeger with its root and every span its shape
//! makes. The service's shutdown line must count each of them as chosen for export and
//! exported whole.
//!
//! Shapes, in a fixed rotation so each recurs every few requests: plain requests (up to eight
//! in flight at once), an allocation storm, CPU in a spawned child task without a span, jobs on
//! `granular::spawn_blocking`, jobs on tokio's `spawn_blocking` whose spans are closed on the
//! blocking-pool thread, spawned tasks with spans of their own (closed on whichever worker runs
//! them), a worker blocked in `thread::sleep`, and two requests in a row contending for a lock
//! one holds across an await. Every request's spans are created, entered and closed on
//! whichever worker its future runs on.
//!
//! `GRANULAR_COMPLETENESS_REQUESTS` (default 10,000) and `GRANULAR_COMPLETENESS_RATE` (requests
//! a second, default 125) size the run. With `GRANULAR_WRITE_DOCS=1` the result is written to
//! this build's row of docs/accuracy.md (Completeness). Needs the Jaeger binary and the demo
//! binaries of this target dir and profile (tests/run.sh provides both).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use granular_e2e::bench::docs::{today, write_section};
use granular_e2e::bench::procfs::Machine;
use granular_e2e::demo::Demo;
use granular_e2e::jaeger::{Jaeger, QueryClient};
use granular_e2e::trace::Trace;
use granular_e2e::workspace_root;

const MODE: &str = if cfg!(tokio_unstable) {
    "tokio_unstable"
} else {
    "stable"
};

/// Every `/messages` request violates (its steps alone await ~8 ms of timers).
const SLO: &str = "GET /messages=1ms,*=10s";
const DEFAULT_REQUESTS: usize = 10_000;
const DEFAULT_RATE: f64 = 125.0;
/// Requests in flight at most.
const CONCURRENCY: usize = 8;
/// How long after the last response every trace may take to arrive whole.
const ARRIVAL_TIMEOUT: Duration = Duration::from_secs(90);
/// Concurrent Jaeger queries while checking.
const CHECKERS: usize = 4;

/// The spans of every `/messages` request.
const BASE_SPANS: [&str; 4] = [
    "GET /messages",
    "auth.AccessToken",
    "cache.Lookup",
    "db.Query",
];

/// A kind of request, and the spans it makes beyond [`BASE_SPANS`].
struct Shape {
    name: &'static str,
    path: &'static str,
    extra: &'static [(&'static str, usize)],
}

/// The rotation. `lock` comes twice in a row: sent 8 ms apart, the second waits for the lock
/// the first holds for 12 ms.
const SHAPES: [Shape; 10] = [
    Shape {
        name: "plain",
        path: "/messages",
        extra: &[],
    },
    Shape {
        name: "alloc",
        path: "/messages?pathology=alloc&mib=8",
        extra: &[],
    },
    Shape {
        name: "lock (holder)",
        path: "/messages?pathology=lock&ms=12",
        extra: &[("lock.wait", 1), ("lock.held", 1)],
    },
    Shape {
        name: "lock (waiter)",
        path: "/messages?pathology=lock&ms=12",
        extra: &[("lock.wait", 1), ("lock.held", 1)],
    },
    Shape {
        name: "child task without a span",
        path: "/messages?pathology=child&ms=2",
        extra: &[],
    },
    Shape {
        name: "granular::spawn_blocking",
        path: "/messages?pathology=spawn_blocking&jobs=3&ms=2",
        extra: &[],
    },
    Shape {
        name: "tokio spawn_blocking, spans closed there",
        path: "/messages?pathology=blocking_spans&jobs=2&ms=2",
        extra: &[("blocking.job", 2)],
    },
    Shape {
        name: "spawned tasks with spans",
        path: "/messages?pathology=fanout&jobs=3&ms=2",
        extra: &[("fanout.task", 3)],
    },
    Shape {
        name: "blocked worker",
        path: "/messages?pathology=block&ms=2",
        extra: &[],
    },
    Shape {
        name: "plain",
        path: "/messages",
        extra: &[],
    },
];

impl Shape {
    /// Span names and how many of each a trace of this shape has.
    fn expected(&self) -> BTreeMap<String, usize> {
        let mut spans: BTreeMap<String, usize> =
            BASE_SPANS.iter().map(|s| (s.to_string(), 1)).collect();
        for (name, n) in self.extra {
            *spans.entry(name.to_string()).or_default() += n;
        }
        spans
    }
}

/// Index in [`SHAPES`] of the request that waits for the lock another holds.
const LOCK_WAITER: usize = 3;
/// A `lock.wait` this long means the request did wait for the other's lock.
const CONTENDED: Duration = Duration::from_millis(1);

/// One request the client sent.
struct Sent {
    shape: usize,
    trace_id: String,
}

#[test]
fn every_violating_trace_reaches_jaeger_whole() {
    let requests = env_number("GRANULAR_COMPLETENESS_REQUESTS", DEFAULT_REQUESTS as f64) as usize;
    let rate = env_number("GRANULAR_COMPLETENESS_RATE", DEFAULT_RATE);
    let jaeger = Jaeger::shared().expect("start Jaeger");
    let artifacts = granular_e2e::log_dir()
        .expect("log dir")
        .join("completeness-artifacts");
    let _ = std::fs::remove_dir_all(&artifacts);
    let demo = Demo::builder("completeness")
        .otlp_grpc(&jaeger.otlp_grpc_endpoint())
        .env("GRANULAR_SAMPLE", "violations")
        .env("GRANULAR_SLO", SLO)
        .env("GRANULAR_ARTIFACT_DIR", &artifacts.to_string_lossy())
        .start()
        .expect("start demo-service");

    let started = Instant::now();
    let sent = send(demo.url(), requests, rate);
    let sending = started.elapsed();
    let checking = Instant::now();
    let (missing, contended) = check(jaeger.query(), &sent);
    let checking = checking.elapsed();

    // Stopping the service flushes it and makes it print its counters.
    let log_path = demo.process().log_path().to_owned();
    drop(demo);
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    let shutdown = log
        .lines()
        .rev()
        .find(|l| l.contains("granular: shut down"))
        .map(str::to_owned)
        .unwrap_or_else(|| format!("(no shutdown line in {})", log_path.display()));
    let counter = |name: &str| -> Option<u64> {
        shutdown
            .split_whitespace()
            .find_map(|w| w.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
    };

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
        (counter("chosen_traces"), counter("exported_traces")),
        (Some(n), Some(n)),
        "every trace chosen for export and counted whole\n{summary}"
    );
}

/// Sends `requests` requests at `rate` a second, in the shapes' rotation, at most
/// [`CONCURRENCY`] at once; every one must answer 200 with a trace id.
fn send(url: &str, requests: usize, rate: f64) -> Vec<Sent> {
    let http = reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("HTTP client");
    let next = AtomicUsize::new(0);
    let sent = Mutex::new(Vec::with_capacity(requests));
    let start = Instant::now();
    thread::scope(|scope| {
        for _ in 0..CONCURRENCY {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= requests {
                        return;
                    }
                    let due = start + Duration::from_secs_f64(i as f64 / rate);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        thread::sleep(wait);
                    }
                    let shape = i % SHAPES.len();
                    let response = http
                        .get(format!("{url}{}", SHAPES[shape].path))
                        .send()
                        .unwrap_or_else(|e| panic!("request {i} ({}): {e}", SHAPES[shape].path));
                    let status = response.status();
                    let trace_id = response
                        .headers()
                        .get("x-trace-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    let body = response.text().unwrap_or_default();
                    assert!(
                        status.is_success() && trace_id.len() == 32,
                        "request {i} ({}): {status}, x-trace-id {trace_id:?}: {body}",
                        SHAPES[shape].path
                    );
                    sent.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(Sent { shape, trace_id });
                }
            });
        }
    });
    sent.into_inner().unwrap_or_else(|e| e.into_inner())
}

/// What [`check`] found missing: each request with what Jaeger has of its trace.
type Missing<'a> = Vec<(&'a Sent, Option<Trace>)>;

/// The requests whose trace is not in Jaeger whole within [`ARRIVAL_TIMEOUT`], with what
/// Jaeger has of it; and how many lock waiters waited [`CONTENDED`] or more.
fn check<'a>(query: &QueryClient, sent: &'a [Sent]) -> (Missing<'a>, usize) {
    let deadline = Instant::now() + ARRIVAL_TIMEOUT;
    let mut pending: Vec<&Sent> = sent.iter().collect();
    let mut contended = 0;
    loop {
        let lookups: Vec<&str> = pending.iter().map(|s| s.trace_id.as_str()).collect();
        let traces = query
            .find_traces(&lookups, CHECKERS)
            .unwrap_or_else(|e| panic!("querying Jaeger: {e}"));
        let results: Vec<(&Sent, Option<Trace>)> = pending
            .iter()
            .copied()
            .zip(traces)
            .filter_map(|(s, trace)| match trace {
                Some(t) if whole(&t, &SHAPES[s.shape]) => {
                    if s.shape == LOCK_WAITER && waited(&t) {
                        contended += 1;
                    }
                    None
                }
                other => Some((s, other)),
            })
            .collect();
        if results.is_empty() || Instant::now() >= deadline {
            return (results, contended);
        }
        pending = results.into_iter().map(|(s, _)| s).collect();
        thread::sleep(Duration::from_secs(1));
    }
}

/// Whether `trace` has exactly the spans `shape` makes, all under one `GET /messages` root.
fn whole(trace: &Trace, shape: &Shape) -> bool {
    let roots = trace.roots();
    names(trace) == shape.expected()
        && roots.len() == 1
        && roots[0].operation_name == "GET /messages"
        && roots[0].tag_bool("granular.slo.violated") == Some(true)
}

/// Whether the trace's `lock.wait` span lasted [`CONTENDED`] or more.
fn waited(trace: &Trace) -> bool {
    trace
        .span_by_name("lock.wait")
        .is_some_and(|s| s.duration >= CONTENDED.as_micros() as u64)
}

/// Span names and how many of each `trace` has.
fn names(trace: &Trace) -> BTreeMap<String, usize> {
    let mut names = BTreeMap::new();
    for span in &trace.spans {
        *names.entry(span.operation_name.clone()).or_default() += 1;
    }
    names
}

fn env_number(name: &str, default: f64) -> f64 {
    match std::env::var(name) {
        Err(_) => default,
        Ok(v) => match v.parse::<f64>() {
            Ok(n) if n > 0.0 => n,
            _ => panic!("{name}={v:?} is invalid: expected a positive number"),
        },
    }
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

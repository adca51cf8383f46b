//! What the tests of `GRANULAR_SAMPLE=violations` under steady load share
//! (tests/tests/completeness.rs, ring_overload.rs): the demo service with an SLO every
//! `/messages` request violates, a client that sends such requests in a rotation of shapes at a
//! steady rate, and what Jaeger holds of each one's trace.
//!
//! Shapes ([`SHAPES`]), in a fixed rotation so each recurs every few requests: plain requests,
//! an allocation storm, CPU in a spawned child task without a span, jobs on
//! `granular::spawn_blocking`, jobs on tokio's `spawn_blocking` whose spans are closed on the
//! blocking-pool thread, spawned tasks with spans of their own (closed on whichever worker runs
//! them), a worker blocked in `thread::sleep`, and two requests in a row contending for a lock
//! one holds across an await. Every request's spans are created, entered and closed on
//! whichever worker its future runs on.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::demo::{Demo, DemoBuilder};
use crate::faults::{BASE_SPANS, names};
use crate::jaeger::QueryClient;
use crate::trace::Trace;

/// Every `/messages` request violates (its steps alone await ~8 ms of timers).
pub const SLO: &str = "GET /messages=1ms,*=10s";
/// Concurrent Jaeger queries while checking.
const CHECKERS: usize = 4;

/// A kind of request, and the spans it makes beyond [`BASE_SPANS`].
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub name: &'static str,
    pub path: &'static str,
    pub extra: &'static [(&'static str, usize)],
}

/// The rotation. `lock` comes twice in a row: sent 8 ms apart, the second waits for the lock
/// the first holds for 12 ms.
pub const SHAPES: [Shape; 10] = [
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

/// Index in [`SHAPES`] of the request that waits for the lock another holds.
pub const LOCK_WAITER: usize = 3;

impl Shape {
    /// Span names and how many of each a trace of this shape has.
    pub fn expected(&self) -> BTreeMap<String, usize> {
        let mut spans: BTreeMap<String, usize> =
            BASE_SPANS.iter().map(|s| (s.to_string(), 1)).collect();
        for (name, n) in self.extra {
            *spans.entry(name.to_string()).or_default() += n;
        }
        spans
    }
}

/// One request the client sent.
#[derive(Debug)]
pub struct Sent {
    /// Its shape: an index in the shapes [`send`] was given.
    pub shape: usize,
    pub trace_id: String,
    /// From sending it to the end of the answer's body.
    pub latency: Duration,
}

/// The demo service named `name` in `violations` mode with [`SLO`], exporting over OTLP/gRPC
/// to `endpoint`, its artifacts in `<log dir>/<name>-artifacts` (emptied first).
pub fn demo(name: &str, endpoint: &str) -> DemoBuilder {
    let artifacts = crate::log_dir()
        .expect("log dir")
        .join(format!("{name}-artifacts"));
    let _ = std::fs::remove_dir_all(&artifacts);
    Demo::builder(name)
        .otlp_grpc(endpoint)
        .env("GRANULAR_SAMPLE", "violations")
        .env("GRANULAR_SLO", SLO)
        .env("GRANULAR_ARTIFACT_DIR", &artifacts.to_string_lossy())
}

/// Sends `requests` requests to `url` at `rate` a second, in the rotation of `shapes`, at most
/// `concurrency` at once; every one must answer 200 with a trace id.
pub fn send(
    url: &str,
    shapes: &[Shape],
    requests: usize,
    rate: f64,
    concurrency: usize,
) -> Vec<Sent> {
    let http = reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("HTTP client");
    let next = AtomicUsize::new(0);
    let sent = Mutex::new(Vec::with_capacity(requests));
    let start = Instant::now();
    thread::scope(|scope| {
        for _ in 0..concurrency {
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
                    let shape = i % shapes.len();
                    let path = shapes[shape].path;
                    let asked = Instant::now();
                    let response = http
                        .get(format!("{url}{path}"))
                        .send()
                        .unwrap_or_else(|e| panic!("request {i} ({path}): {e}"));
                    let status = response.status();
                    let trace_id = response
                        .headers()
                        .get("x-trace-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    let body = response.text().unwrap_or_default();
                    let latency = asked.elapsed();
                    assert!(
                        status.is_success() && trace_id.len() == 32,
                        "request {i} ({path}): {status}, x-trace-id {trace_id:?}: {body}"
                    );
                    sent.lock().unwrap_or_else(|e| e.into_inner()).push(Sent {
                        shape,
                        trace_id,
                        latency,
                    });
                }
            });
        }
    });
    sent.into_inner().unwrap_or_else(|e| e.into_inner())
}

/// What [`check`] did not find whole: each request with what Jaeger has of its trace.
pub type Missing<'a> = Vec<(&'a Sent, Option<Trace>)>;

/// Looks each request's trace up in Jaeger, again every second until it is [`whole`] or
/// `timeout` passed; `on_whole` sees each whole one once. Returns the others, with what Jaeger
/// had of them last.
pub fn check<'a>(
    query: &QueryClient,
    sent: &'a [Sent],
    shapes: &[Shape],
    timeout: Duration,
    mut on_whole: impl FnMut(&Sent, &Trace),
) -> Missing<'a> {
    let deadline = Instant::now() + timeout;
    let mut pending: Vec<&Sent> = sent.iter().collect();
    loop {
        let lookups: Vec<&str> = pending.iter().map(|s| s.trace_id.as_str()).collect();
        let traces = query
            .find_traces(&lookups, CHECKERS)
            .unwrap_or_else(|e| panic!("querying Jaeger: {e}"));
        let missing: Missing<'a> = pending
            .iter()
            .copied()
            .zip(traces)
            .filter_map(|(s, trace)| match trace {
                Some(t) if whole(&t, &shapes[s.shape]) => {
                    on_whole(s, &t);
                    None
                }
                other => Some((s, other)),
            })
            .collect();
        if missing.is_empty() || Instant::now() >= deadline {
            return missing;
        }
        pending = missing.into_iter().map(|(s, _)| s).collect();
        thread::sleep(Duration::from_secs(1));
    }
}

/// Whether `trace` has exactly the spans `shape` makes, all under one `GET /messages` root
/// that says it violated its SLO.
pub fn whole(trace: &Trace, shape: &Shape) -> bool {
    let roots = trace.roots();
    names(trace) == shape.expected()
        && roots.len() == 1
        && roots[0].operation_name == "GET /messages"
        && roots[0].tag_bool("granular.slo.violated") == Some(true)
}

/// A positive number from variable `name`, else `default`.
pub fn env_number(name: &str, default: f64) -> f64 {
    match std::env::var(name) {
        Err(_) => default,
        Ok(v) => match v.parse::<f64>() {
            Ok(n) if n > 0.0 => n,
            _ => panic!("{name}={v:?} is invalid: expected a positive number"),
        },
    }
}

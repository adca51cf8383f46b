//! What the fault tests (`tests/tests/backend_faults.rs`, `shutdown.rs`, `soak.rs`) share: the
//! demo service set up in one `GRANULAR_SAMPLE` mode, the steady load they put on it, what of
//! it must reach the backend, and the counters of the service's shutdown line.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use crate::demo::{Demo, DemoBuilder};
use crate::driver::Request;
use crate::jaeger::QueryClient;
use crate::trace::Trace;

/// The two `GRANULAR_SAMPLE` modes.
pub const MODES: [&str; 2] = ["all", "violations"];
/// A healthy `/messages` takes ~14 ms (its steps await ~8 ms of timers); `sleep` requests
/// (100 ms) violate.
pub const SLO: &str = "GET /messages=50ms,*=10s";
/// ~1 % slow requests.
pub const MIX: &str = "sleep=1%";
/// The spans of every `/messages` request.
pub const BASE_SPANS: [&str; 4] = [
    "GET /messages",
    "auth.AccessToken",
    "cache.Lookup",
    "db.Query",
];
/// Concurrent Jaeger queries while checking.
const CHECKERS: usize = 4;

/// Runs `f` for each mode on threads of their own, side by side, and returns the results in
/// [`MODES`] order. A panic in either is re-raised.
pub fn both_modes<T: Send>(f: impl Fn(&'static str) -> T + Sync) -> Vec<T> {
    thread::scope(|scope| {
        let handles: Vec<_> = MODES
            .iter()
            .map(|&mode| {
                let f = &f;
                thread::Builder::new()
                    .name(format!(
                        "{}-{mode}",
                        thread::current().name().unwrap_or("test")
                    ))
                    .spawn_scoped(scope, move || f(mode))
                    .expect("spawn a mode's thread")
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}

/// The tests of one binary that measure latency or memory take turns: side by side they
/// would measure each other.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The demo in `mode`, exporting over OTLP/gRPC to `endpoint`, artifacts in the log dir.
pub fn demo(name: &str, mode: &str, endpoint: &str) -> DemoBuilder {
    let artifacts = crate::log_dir()
        .map(|d| d.join(format!("{name}-artifacts")))
        .unwrap_or_default();
    Demo::builder(name)
        .otlp_grpc(endpoint)
        .env("GRANULAR_SAMPLE", mode)
        .env("GRANULAR_SLO", SLO)
        .env("GRANULAR_ARTIFACT_DIR", &artifacts.to_string_lossy())
}

/// Whether `mode` exports the trace of `request`: every `/messages` request in `all`, the
/// slowed ones in `violations` (none of them is a `/report` hog).
pub fn exported(mode: &str, request: &Request) -> bool {
    request.latency_us.is_some() && request.kind != "hog" && (mode == "all" || !request.is_normal())
}

/// The service's shutdown line (`granular: shut down ...`) in `log`.
pub fn shutdown_line(log: &str) -> Option<&str> {
    log.lines()
        .rev()
        .find(|l| l.contains("granular: shut down"))
}

/// Counter `name` of a shutdown line (`name=value`).
pub fn counter(line: &str, name: &str) -> Option<u64> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
}

/// The SDK's count of spans its full queue turned away, from its warning at shutdown
/// (`dropped_span_count=N`); 0 when it did not warn.
pub fn sdk_queue_dropped(log: &str) -> u64 {
    log.lines()
        .filter_map(|l| counter(l, "dropped_span_count"))
        .sum()
}

/// What [`check`] found of some traces in Jaeger.
#[derive(Debug, Default)]
pub struct Found {
    /// Trace ids whose trace is in Jaeger whole.
    pub whole: usize,
    /// The others, with what Jaeger has of each.
    pub missing: Vec<(String, Option<Trace>)>,
    /// Spans found, whole traces or not.
    pub spans: usize,
}

impl Found {
    /// Up to `n` of the missing ones, one a line.
    pub fn describe_missing(&self, n: usize) -> String {
        self.missing
            .iter()
            .take(n)
            .map(|(id, t)| match t {
                None => format!("- {id}: not in Jaeger"),
                Some(t) => format!("- {id}: in Jaeger with {:?}", names(t)),
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Looks each trace id up in Jaeger until every one is whole or `timeout` passed.
pub fn check(query: &QueryClient, ids: &[String], timeout: Duration) -> Found {
    let deadline = Instant::now() + timeout;
    let mut pending: Vec<&String> = ids.iter().collect();
    let mut found = Found::default();
    loop {
        let lookups: Vec<&str> = pending.iter().map(|id| id.as_str()).collect();
        let traces = query
            .find_traces(&lookups, CHECKERS)
            .unwrap_or_else(|e| panic!("querying Jaeger: {e}"));
        let results = pending.iter().copied().zip(traces);
        let mut still = Vec::new();
        for (id, trace) in results {
            match trace {
                Some(t) if whole(&t) => {
                    found.whole += 1;
                    found.spans += t.spans.len();
                }
                other if Instant::now() >= deadline => {
                    found.spans += other.as_ref().map_or(0, |t| t.spans.len());
                    found.missing.push((id.clone(), other));
                }
                _ => still.push(id),
            }
        }
        if still.is_empty() {
            return found;
        }
        pending = still;
        thread::sleep(Duration::from_secs(1));
    }
}

/// One `GET /messages` root with every base span under it, no span twice (a trace exported
/// or decided twice shows its spans twice), and the Collector's rollup
/// (`granular.trace.violations`) on one span at most.
fn whole(trace: &Trace) -> bool {
    let n = names(trace);
    let roots = trace.roots();
    let ids: std::collections::HashSet<&str> =
        trace.spans.iter().map(|s| s.span_id.as_str()).collect();
    let rollups = trace
        .spans
        .iter()
        .filter(|s| s.tag("granular.trace.violations").is_some())
        .count();
    roots.len() == 1
        && roots[0].operation_name == "GET /messages"
        && BASE_SPANS.iter().all(|s| n.get(*s) == Some(&1))
        && ids.len() == trace.spans.len()
        && rollups <= 1
}

/// Span names and how many of each.
pub fn names(trace: &Trace) -> BTreeMap<String, usize> {
    let mut names = BTreeMap::new();
    for span in &trace.spans {
        *names.entry(span.operation_name.clone()).or_default() += 1;
    }
    names
}

/// A duration in whole seconds from variable `name`, else `default`.
pub fn env_secs(name: &str, default: u64) -> Duration {
    match std::env::var(name) {
        Err(_) => Duration::from_secs(default),
        Ok(v) => match v.parse::<u64>() {
            Ok(n) if n > 0 => Duration::from_secs(n),
            _ => panic!("{name}={v:?} is invalid: expected a whole number of seconds above 0"),
        },
    }
}

//! W3C propagation through a service written the way opentelemetry-rust's examples write one
//! (`otel-propagation` in `granular-examples`: middleware that extracts the caller's context and
//! attaches it before the `#[instrument]`ed handler's span exists, an outgoing call that injects
//! `traceparent`), run under Granular in both `GRANULAR_SAMPLE` modes and read back from the
//! real Jaeger: every local root's parent is the caller's span, and the downstream hop's spans
//! are in the caller's trace under the client span that made the call.
//!
//! `tests/run.sh` runs this file in both tokio builds. In `violations` mode every trace must
//! leave the process (all spans violate `*=0ms`); a trace exported under a new trace id, or a
//! root without its parent, is the bug this pins (every trace lost its parent before).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use granular_e2e::jaeger::Jaeger;
use granular_e2e::process::{Process, ProcessBuilder};
use granular_e2e::trace::{Span, Trace};
use granular_e2e::workspace_binary;

const REQUESTS: usize = 5;
const TRACE_TIMEOUT: Duration = Duration::from_secs(30);
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// What `tracing_opentelemetry::OpenTelemetrySpanExt` on a span Granular records logs, once.
const EXT_WARNING: &str = "OpenTelemetrySpanExt";

#[test]
fn incoming_context_attached_by_middleware_parents_the_handler_in_every_mode() {
    let jaeger = Jaeger::shared().expect("start Jaeger");
    let mut failures = Vec::new();
    for mode in ["all", "violations"] {
        if let Err(e) = check_mode(jaeger, mode) {
            failures.push(format!("GRANULAR_SAMPLE={mode}:\n{e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The spans of one `/front` request, as the service creates them.
const FRONT: &str = "front";
const CALL: &str = "call /leaf";
const LEAF_SERVER: &str = "GET /leaf";
const LEAF: &str = "leaf";

fn check_mode(jaeger: &Jaeger, mode: &str) -> Result<(), String> {
    let service = format!("propagation-{mode}");
    let (mut process, url) = start_service(jaeger, &service, mode)?;
    let http = reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    let mut problems = Vec::new();
    let callers: Vec<(String, String)> = (0..REQUESTS).map(|_| (hex(16), hex(8))).collect();
    for (trace, span) in &callers {
        let response = http
            .get(format!("{url}/front"))
            .header("traceparent", format!("00-{trace}-{span}-01"))
            .send()
            .map_err(|e| format!("GET /front: {e}"))?;
        if !response.status().is_success() {
            return Err(format!(
                "GET /front answered {}: {}\n{}",
                response.status(),
                response.text().unwrap_or_default(),
                process.log_tail(30)
            ));
        }
    }
    // Once one trace is missing, the others are looked up briefly: the failure is shown already.
    let mut timeout = TRACE_TIMEOUT;
    for (trace_id, caller) in &callers {
        let found = jaeger.fetch_trace(trace_id, timeout, |t| {
            [FRONT, CALL, LEAF_SERVER, LEAF]
                .iter()
                .all(|name| t.span_by_name(name).is_some())
        });
        match found {
            Ok(trace) => problems.extend(check_trace(&trace, trace_id, caller)),
            Err(e) => {
                timeout = Duration::from_secs(2);
                problems.push(format!(
                    "the caller's trace {trace_id} is not complete in Jaeger: {e}"
                ));
            }
        }
    }

    // tracing-opentelemetry's extension answers only with its own layer in the stack.
    let (legacy_trace, legacy_caller) = (hex(16), hex(8));
    let mut legacy_answers = Vec::new();
    for _ in 0..2 {
        let answer = http
            .get(format!("{url}/legacy"))
            .header(
                "traceparent",
                format!("00-{legacy_trace}-{legacy_caller}-01"),
            )
            .send()
            .and_then(|r| r.text())
            .map_err(|e| format!("GET /legacy: {e}"))?;
        legacy_answers.push(answer);
    }
    let warnings = process.log().matches(EXT_WARNING).count();
    match mode {
        "all" => {
            if legacy_answers.iter().any(|a| *a != legacy_trace) {
                problems.push(format!(
                    "OpenTelemetrySpanExt::context() returned trace ids {legacy_answers:?}, \
                     expected the caller's {legacy_trace}"
                ));
            }
            if warnings != 0 {
                problems.push(format!(
                    "{warnings} warnings about OpenTelemetrySpanExt where it works"
                ));
            }
        }
        _ => {
            if warnings != 1 {
                problems.push(format!(
                    "OpenTelemetrySpanExt used twice on recorded spans: {warnings} warnings \
                     in the log, expected exactly one"
                ));
            }
        }
    }
    process.stop();
    if problems.is_empty() {
        Ok(())
    } else {
        problems.push(format!("service log: {}", process.log_path().display()));
        Err(problems.join("\n"))
    }
}

fn start_service(jaeger: &Jaeger, service: &str, mode: &str) -> Result<(Process, String), String> {
    let binary =
        workspace_binary("otel-propagation", "granular-examples").map_err(|e| e.to_string())?;
    let mut builder = ProcessBuilder::new(service, binary);
    for (key, _) in std::env::vars_os() {
        let name = key.to_string_lossy();
        if name.starts_with("OTEL_") || name.starts_with("GRANULAR_") {
            builder = builder.env_remove(key);
        }
    }
    let mut process = builder
        .env("OTEL_SERVICE_NAME", service)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", jaeger.otlp_grpc_endpoint())
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .env("GRANULAR_SAMPLE", mode)
        .env("GRANULAR_SLO", "*=0ms")
        .env("GRANULAR_ARTIFACTS", "none")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .spawn()
        .map_err(|e| e.to_string())?;
    let line = process
        .wait_for_line("print its listening line", READY_TIMEOUT, |l| {
            l.starts_with("listening on ")
        })
        .map_err(|e| e.to_string())?;
    let url = line["listening on ".len()..].trim().to_owned();
    Ok((process, url))
}

/// What is wrong with one request's trace: each span's parent must be the one the service
/// code implies, the handler's the caller's span.
fn check_trace(trace: &Trace, trace_id: &str, caller: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let span = |name: &str| trace.span_by_name(name);
    let (Some(front), Some(call), Some(leaf_server), Some(leaf)) =
        (span(FRONT), span(CALL), span(LEAF_SERVER), span(LEAF))
    else {
        return vec![format!("trace {trace_id} lacks spans:\n{}", trace.render())];
    };
    let mut expect_parent = |child: &Span, parent: &str, what: &str| {
        if child.parent_id() != Some(parent) {
            problems.push(format!(
                "trace {trace_id}: {:?}'s parent is {:?}, expected {what} {parent}",
                child.operation_name,
                child.parent_id()
            ));
        }
    };
    expect_parent(front, caller, "the caller's span");
    expect_parent(call, &front.span_id, "the handler span");
    expect_parent(leaf_server, &call.span_id, "the client span that called it");
    expect_parent(leaf, &leaf_server.span_id, "its server span");
    if problems.is_empty() {
        problems
    } else {
        problems.push(trace.render());
        problems
    }
}

/// `bytes` random bytes as lowercase hex (never all zeros: ids must be valid).
fn hex(bytes: usize) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(1);
    let mut state = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
        ^ COUNTER
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (0..bytes)
        .map(|_| {
            // splitmix64
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            format!("{:02x}", ((z ^ (z >> 31)) as u8) | 1)
        })
        .collect()
}

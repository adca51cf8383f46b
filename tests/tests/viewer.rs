//! The viewer end to end, in a real browser: the demo slowed on purpose against the real
//! Jaeger, each slow span's `granular.artifact` (a file in the default `dir` mode) served by the
//! real `granular serve`, its `/view/<name>` page opened in headless Chromium
//! (`granular_e2e::browser`), and what the page drew compared with what Jaeger stored for the
//! same span: the span bars, the worker lanes, the culprit's label, the breakdown's parts, the
//! blocked interval's syscall. The page may request nothing outside its own origin; each test
//! leaves a screenshot in `<target>/e2e-screenshots/`.
//!
//! Needs the Jaeger binary, the demo and `granular` binaries of this target dir and profile
//! (`cargo build --workspace --bins`), Chromium (`apt-get install -y chromium`) and
//! `GRANULAR_PYTHON` with tests/requirements.txt (playwright); tests/run.sh provides all of
//! them. Nothing missing is skipped: the test fails naming it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use granular_e2e::browser::{self, Page};
use granular_e2e::demo::{Demo, DemoLease, Response, SharedDemo};
use granular_e2e::jaeger::Jaeger;
use granular_e2e::perfetto;
use granular_e2e::process::{Process, ProcessBuilder};
use granular_e2e::trace::{Span, Trace};
use granular_e2e::workspace_binary;
use serde_json::{Map, Value};

const TASK_HOOKS: bool = cfg!(tokio_unstable);
const SLO: &str = "GET /messages=40ms,*=10s";
const TRACE_TIMEOUT: Duration = Duration::from_secs(30);
const ATTEMPTS: usize = 3;
/// The CPU hog, sent `HOG_DELAY` after `/messages` to a demo with one worker.
const HOG_MS: u64 = 150;
const HOG_DELAY: Duration = Duration::from_millis(3);
/// `?pathology=block&ms=BLOCK_MS`: `thread::sleep` on the worker.
const BLOCK_MS: u64 = 60;

// ---------------------------------------------------------------------------
// The CPU hog: span bars, worker lanes, the culprit's polls, the breakdown.

#[test]
fn viewer_shows_the_cpu_hogs_culprit_and_the_breakdown_jaeger_has() {
    let _serial = one_at_a_time();
    let mut demo = one_worker_demo();
    let (trace, report_trace_id) = cpu_hog(jaeger(), &mut demo);
    let root = messages_root(&trace);
    let page = view_artifact_of(root, &trace, "viewer-cpu-hog");
    let context = format!("{}\n{}", page.describe(), trace.render());

    assert_eq!(page.state, "ready", "the viewer did not draw\n{context}");
    assert_eq!(page.errors, Vec::<String>::new(), "page errors\n{context}");
    assert_no_request_leaves_the_origin(&page);
    assert_span_bars_match_the_trace(&page, &trace, &context);
    page.assert_shows_breakdown_of(root);

    let workers: Vec<&str> = page
        .role("lane")
        .into_iter()
        .filter(|l| str_of(l, "kind") == "thread")
        .map(|l| str_of(l, "lane"))
        .filter(|name| name.starts_with("worker "))
        .collect();
    assert!(!workers.is_empty(), "no worker lane\n{context}");

    // The breakdown may name other culprits too (a connection task that held the worker for a
    // millisecond): each is labelled; the hog's are those of the /report request's trace.
    let all_culprits: Vec<&Map<String, Value>> = page
        .role("slice")
        .into_iter()
        .filter(|s| str_of(s, "category") == "culprit")
        .collect();
    for c in &all_culprits {
        assert!(
            str_of(c, "name").starts_with("culprit: ") && str_of(c, "lane").starts_with("worker "),
            "a culprit slice labelled as one, on a worker: {c:?}\n{context}"
        );
    }
    let culprits: Vec<&Map<String, Value>> = all_culprits
        .into_iter()
        .filter(|c| str_of(c, "culpritTrace") == report_trace_id)
        .collect();
    assert!(
        !culprits.is_empty(),
        "no culprit slice of the /report request's trace {report_trace_id} (the span's culprit \
         is {:?})\n{context}",
        root.tag_str("granular.culprit")
    );
    for c in &culprits {
        let span = str_of(c, "culpritSpan");
        assert!(
            span == "GET /report" || span == "report.Build",
            "the hog's culprit slice is labelled {span:?}, not its span: {c:?}\n{context}"
        );
    }
    // With task hooks each culprit is a task: the hog's (spawned in report.rs) and, briefly,
    // the connection task that served GET /report (spawned by axum) are both labelled so.
    if TASK_HOOKS {
        assert!(
            culprits
                .iter()
                .any(|c| str_of(c, "culpritSpawnSite").contains("report.rs")),
            "with task hooks the hog's culprit slice carries its spawn site in report.rs\n{context}"
        );
    }
    let hog_ms: f64 = culprits
        .iter()
        .map(|c| num_of(c, "endMs") - num_of(c, "startMs"))
        .sum();
    assert!(
        hog_ms >= HOG_MS as f64 / 2.0,
        "the culprit's slices cover {hog_ms:.1} ms of the {HOG_MS} ms hog\n{context}"
    );
    assert!(page.screenshot.is_file(), "no screenshot\n{context}");
}

// ---------------------------------------------------------------------------
// A blocking call: the blocked interval with its syscall.

#[test]
fn viewer_shows_the_blocked_interval_with_its_syscall() {
    let _serial = one_at_a_time();
    let mut demo = one_worker_demo();
    let response = demo
        .get(&format!("/messages?pathology=block&ms={BLOCK_MS}"))
        .expect("GET /messages?pathology=block");
    let trace = fetch_judged(jaeger(), &trace_id_of(response));
    let root = messages_root(&trace);
    let page = view_artifact_of(root, &trace, "viewer-blocked");
    let context = format!("{}\n{}", page.describe(), trace.render());

    assert_eq!(page.state, "ready", "the viewer did not draw\n{context}");
    assert_no_request_leaves_the_origin(&page);
    assert_span_bars_match_the_trace(&page, &trace, &context);
    page.assert_shows_breakdown_of(root);
    let syscall = root.tag_str("granular.blocked.syscall").unwrap_or_else(|| {
        panic!("the span names no granular.blocked.syscall to look for\n{context}")
    });
    let blocked: Vec<&Map<String, Value>> = page
        .role("slice")
        .into_iter()
        .filter(|s| str_of(s, "category") == "blocked_in_poll" && str_of(s, "syscall") == syscall)
        .collect();
    let request_lane = blocked
        .iter()
        .find(|s| str_of(s, "lane").starts_with("request: "))
        .unwrap_or_else(|| {
            panic!("no blocked-in-poll interval in {syscall} on the request lane\n{context}")
        });
    let ms = num_of(request_lane, "endMs") - num_of(request_lane, "startMs");
    assert!(
        ms >= BLOCK_MS as f64 / 2.0,
        "the blocked interval lasts {ms:.1} ms of the {BLOCK_MS} ms sleep\n{context}"
    );
}

// ---------------------------------------------------------------------------
// A corrupt artifact: an error page naming the URL and the error, not a blank page.

#[test]
fn viewer_names_the_url_and_the_error_of_a_corrupt_artifact() {
    let dir = fresh_dir("corrupt");
    std::fs::write(
        dir.join("corrupt.perfetto-trace"),
        b"this is not a perfetto trace",
    )
    .expect("write the corrupt artifact");
    let mut serve = Serve::start(&dir);
    let page = browser::open(
        &format!("{}/view/corrupt.perfetto-trace", serve.base),
        "viewer-corrupt",
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", serve.process.log()));
    let context = page.describe();
    assert_eq!(page.state, "error", "{context}");
    let errors = page.role("error");
    let [error] = &errors[..] else {
        panic!("one error element expected\n{context}")
    };
    assert_eq!(
        str_of(error, "url"),
        "/artifacts/corrupt.perfetto-trace",
        "{context}"
    );
    assert!(
        str_of(error, "message").contains("not a Perfetto trace"),
        "{context}"
    );
    assert!(
        page.text.contains("/artifacts/corrupt.perfetto-trace")
            && page.text.contains("not a Perfetto trace"),
        "the page shows the URL and the error\n{context}"
    );
    assert_no_request_leaves_the_origin(&page);
    serve.process.stop();
}

// ---------------------------------------------------------------------------
// `granular serve` itself: routes, names, arguments.

#[test]
fn serve_refuses_bad_names_and_serves_raw_bytes() {
    let dir = fresh_dir("routes");
    std::fs::write(dir.join("a.perfetto-trace"), b"\x0a\x00").expect("write");
    let serve = Serve::start(&dir);
    let http = reqwest::blocking::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let get = |path: &str| {
        let r = http
            .get(format!("{}{path}", serve.base))
            .send()
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = r.status().as_u16();
        let kind = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        (status, kind, r.bytes().expect("body").to_vec())
    };
    let (status, kind, body) = get("/artifacts/a.perfetto-trace");
    assert_eq!(
        (status, kind.as_str(), body.as_slice()),
        (200, "application/octet-stream", &b"\x0a\x00"[..])
    );
    let (status, _, body) = get("/artifacts/missing.perfetto-trace");
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("missing.perfetto-trace"), "{body}");
    for bad in [
        "/artifacts/..%2Fsecret",
        "/view/.hidden",
        "/artifacts/a%20b",
    ] {
        let (status, _, body) = get(bad);
        let body = String::from_utf8_lossy(&body);
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body.contains("expected the file name"), "{bad}: {body}");
    }
    let (status, kind, body) = get("/view/a.perfetto-trace");
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 200);
    assert!(kind.starts_with("text/html"), "{kind}");
    assert!(
        body.contains(r#"<meta name="granular-artifact" content="/artifacts/a.perfetto-trace">"#),
        "the page points at the artifact"
    );
    let (status, _, body) = get("/");
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("href=\"/view/a.perfetto-trace\""));
}

#[test]
fn serve_rejects_bad_arguments_with_usage_and_status_2() {
    let binary = workspace_binary("granular", "granular-cli").expect("the granular binary");
    let missing = std::env::temp_dir().join("granular-no-such-dir");
    for (args, needle) in [
        (vec!["serve"], "no directory given"),
        (
            vec!["serve", "--addr", "0.0.0.0:0", "/tmp"],
            "add --allow-remote",
        ),
        (vec!["serve", "--bogus", "/tmp"], "unknown option"),
        (
            vec!["serve", missing.to_str().unwrap()],
            "granular-no-such-dir",
        ),
        (vec!["frobnicate"], "unknown command"),
    ] {
        let out = std::process::Command::new(&binary)
            .args(&args)
            .output()
            .expect("run granular");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}

// ---------------------------------------------------------------------------
// Helpers.

/// The span's artifact served by `granular serve`, and its viewer page opened in Chromium
/// (screenshot `name`).
fn view_artifact_of(span: &Span, trace: &Trace, name: &str) -> Page {
    let link = span.tag_str("granular.artifact").unwrap_or_else(|| {
        panic!(
            "no granular.artifact on {}\n{}",
            span.operation_name,
            trace.render()
        )
    });
    let path = perfetto::file_url_path(link).unwrap_or_else(|e| panic!("{e}"));
    let dir = path.parent().expect("the artifact's directory");
    let file = path
        .file_name()
        .and_then(|f| f.to_str())
        .expect("a file name");
    let mut serve = Serve::start(dir);
    assert!(
        serve.process.log().contains(&format!("/view/{file}")),
        "granular serve lists the artifact on start\n{}",
        serve.process.log()
    );
    let page = browser::open(&format!("{}/view/{file}", serve.base), name)
        .unwrap_or_else(|e| panic!("{e}\n{}", serve.process.log()));
    serve.process.stop();
    page
}

/// A running `granular serve <dir>`, stopped on drop.
struct Serve {
    process: Process,
    /// `http://127.0.0.1:PORT`.
    base: String,
}

impl Serve {
    fn start(dir: &Path) -> Serve {
        let binary = workspace_binary("granular", "granular-cli").expect("the granular binary");
        let mut process = ProcessBuilder::new("granular-serve", binary)
            .arg("serve")
            .arg(dir)
            .spawn()
            .expect("start granular serve");
        let line = process
            .wait_for_line("print its serving line", Duration::from_secs(20), |l| {
                l.starts_with("granular serve: serving ")
            })
            .expect("granular serve's serving line");
        let base = line
            .rsplit(" at ")
            .next()
            .map(|url| url.trim().trim_end_matches('/').to_string())
            .expect("the URL");
        assert!(base.starts_with("http://127.0.0.1:"), "{line}");
        // The artifact lines follow the serving line: wait until they are in the log.
        std::thread::sleep(Duration::from_millis(100));
        Serve { process, base }
    }
}

fn assert_no_request_leaves_the_origin(page: &Page) {
    assert_eq!(
        page.requests_off_origin(),
        Vec::<&str>::new(),
        "the page requested something outside its origin\n{}",
        page.describe()
    );
}

/// The page's span bars are the trace's spans: same names, same ids.
fn assert_span_bars_match_the_trace(page: &Page, trace: &Trace, context: &str) {
    let bars = page.role("span");
    let drawn: BTreeSet<(String, String)> = bars
        .iter()
        .map(|b| {
            (
                str_of(b, "name").to_string(),
                str_of(b, "spanId").to_string(),
            )
        })
        .collect();
    let stored: BTreeSet<(String, String)> = trace
        .spans
        .iter()
        .map(|s| (s.operation_name.clone(), s.span_id.clone()))
        .collect();
    assert_eq!(drawn, stored, "span bars vs the trace in Jaeger\n{context}");
    assert_eq!(bars.len(), trace.spans.len(), "one bar per span\n{context}");
}

fn str_of<'a>(element: &'a Map<String, Value>, key: &str) -> &'a str {
    element.get(key).and_then(Value::as_str).unwrap_or("")
}

fn num_of(element: &Map<String, Value>, key: &str) -> f64 {
    str_of(element, key).parse().unwrap_or(f64::NAN)
}

fn one_at_a_time() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

fn jaeger() -> &'static Jaeger {
    Jaeger::shared().expect("start Jaeger")
}

/// A demo on one worker (which the CPU hog then holds), its artifacts in a directory of its own.
fn one_worker_demo() -> DemoLease {
    static DEMO: SharedDemo = SharedDemo::new();
    let jaeger = jaeger();
    DEMO.lease(move || {
        let artifacts = granular_e2e::artifact_dir("viewer")?;
        Ok(Demo::builder("viewer")
            .otlp_grpc(&jaeger.otlp_grpc_endpoint())
            .env("GRANULAR_SLO", SLO)
            .env("GRANULAR_SAMPLE", "all")
            .env("GRANULAR_ARTIFACT_DIR", &artifacts.to_string_lossy())
            .env("DEMO_WORKERS", "1"))
    })
    .unwrap_or_else(|e| panic!("start the viewer's demo-service: {e}"))
}

/// A `/messages` request overlapped by the CPU hog, and the hog's trace id.
fn cpu_hog(jaeger: &Jaeger, demo: &mut Demo) -> (Trace, String) {
    let hog = format!("/report?ms={HOG_MS}");
    let mut tries = String::new();
    for _ in 0..ATTEMPTS {
        let responses = demo
            .get_staggered(&[(Duration::ZERO, "/messages"), (HOG_DELAY, &hog)])
            .expect("GET /messages and the hog");
        let [messages, report] = &responses[..] else {
            unreachable!("two requests, two responses")
        };
        let trace = fetch_judged(jaeger, &trace_id_of(messages.clone()));
        let root = messages_root(&trace);
        if root.duration >= HOG_MS * 1000 / 2 && root.tag_str("granular.culprit").is_some() {
            return (trace, trace_id_of(report.clone()));
        }
        tries.push_str(&trace.render());
    }
    panic!("the {HOG_MS} ms hog never overlapped a /messages request with a culprit\n{tries}");
}

fn fetch_judged(jaeger: &Jaeger, trace_id: &str) -> Trace {
    jaeger
        .fetch_trace(trace_id, TRACE_TIMEOUT, |t| {
            t.spans.len() >= 4
                && t.is_connected()
                && t.roots()
                    .first()
                    .is_some_and(|root| root.tag("granular.artifact").is_some())
        })
        .expect("the trace in Jaeger, complete, with its artifact link")
}

fn messages_root(trace: &Trace) -> &Span {
    match trace.roots()[..] {
        [root] if root.operation_name == "GET /messages" => root,
        _ => panic!("expected one root span, GET /messages\n{}", trace.render()),
    }
}

fn trace_id_of(response: Response) -> String {
    assert_eq!(response.status, 200, "body: {}", response.body);
    response.trace_id().expect("x-trace-id")
}

/// An empty directory under the target dir for this test's artifacts.
fn fresh_dir(name: &str) -> PathBuf {
    let dir = granular_e2e::artifact_dir(&format!("viewer-{name}")).expect("artifact dir");
    std::fs::create_dir_all(&dir).expect("create the artifact dir");
    dir
}

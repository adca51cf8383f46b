//! The breakdown end to end inside one process: real tokio runtime with Granular's hooks, the
//! real tracing + tracing-opentelemetry stack, `GranularProcessor` in the real SDK, an
//! in-memory exporter at the end. Ground truth is what each scenario injects.
//!
//! One function runs every scenario in turn: the recorder and the global subscriber are
//! process-wide, so each OS-source variant is its own test binary (`breakdown_*.rs`).

use std::time::{Duration, Instant};

use granular::SloRules;
use granular::{ArtifactSink, Config, Detail};
use opentelemetry::Value;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tracing::Instrument;

fn attr(span: &SpanData, key: &str) -> Option<Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.clone())
}

fn attr_str(span: &SpanData, key: &str) -> String {
    attr(span, key)
        .map(|v| v.as_str().to_string())
        .unwrap_or_default()
}

fn attr_us(span: &SpanData, key: &str) -> i64 {
    match attr(span, key) {
        Some(Value::I64(v)) => v,
        other => panic!(
            "{key} missing or not an int: {other:?} in {:#?}",
            span.attributes
        ),
    }
}

fn burn(ms: u64) {
    let start = Instant::now();
    let mut x = 0u64;
    while start.elapsed() < Duration::from_millis(ms) {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
}

/// The calling thread's minor page faults so far (`getrusage(RUSAGE_THREAD)`).
fn thread_minor_faults() -> u64 {
    // SAFETY: getrusage writes into the zeroed struct it is given.
    unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_THREAD, &mut u);
        u.ru_minflt as u64
    }
}

/// Runs `work` as a spawned task inside a `GET /messages` span and waits for it.
fn serve<F: std::future::Future<Output = ()> + Send + 'static>(
    rt: &tokio::runtime::Runtime,
    work: F,
) {
    rt.block_on(async {
        tokio::spawn(work.instrument(tracing::info_span!("GET /messages")))
            .await
            .unwrap();
    });
}

fn assert_cause(span: &SpanData, cause: &str) {
    assert_eq!(
        attr_str(span, "granular.cause"),
        cause,
        "expected {cause}; verdict: {}; attributes: {:#?}",
        attr_str(span, "granular.verdict"),
        span.attributes
    );
}

fn duration_us(span: &SpanData) -> i64 {
    span.end_time
        .duration_since(span.start_time)
        .unwrap()
        .as_micros() as i64
}

fn request_span(exporter: &InMemorySpanExporter, provider: &SdkTracerProvider) -> SpanData {
    provider.force_flush().unwrap();
    let spans = exporter.get_finished_spans().unwrap();
    exporter.reset();
    spans
        .into_iter()
        .find(|s| s.name == "GET /messages")
        .expect("GET /messages was exported")
}

/// Runs every scenario with perf context-switch records on or off (`perf = false`: the
/// schedstat sampler is the OS source, as where perf is denied).
pub fn breakdowns_name_the_cause(perf: bool) {
    let artifacts =
        std::env::temp_dir().join(format!("granular-breakdown-test-{}", std::process::id()));
    let cfg = Config {
        slo: SloRules::parse("GET /messages=20ms,*=10s").unwrap(),
        perf,
        detail: Detail::Spans,
        artifacts: ArtifactSink::Dir(artifacts.clone()),
        ..Config::default()
    };
    let sources = granular::install_recorder(&cfg);
    assert_eq!(
        sources.active().contains("perf.context_switches"),
        perf && granular::__internal::capture::probe().is_ok(),
        "{sources}"
    );
    let (exporter, provider) = crate::in_memory::install(cfg, &sources);
    let rt = crate::composed::runtime(1);

    // 1. CPU hog holding the only worker while the request's timer fires. The hog task waits
    //    on the worker itself until the request has armed its timer, then burns: nothing
    //    depends on how soon a thread outside the runtime gets the CPU back (a fixed sleep, or
    //    the caller spawning the hog once told, let a loaded machine finish the request first).
    rt.block_on(async {
        let (armed, timer_set) = tokio::sync::oneshot::channel();
        let req = tokio::spawn(
            async move {
                let timer = tokio::time::sleep(Duration::from_millis(5));
                let _ = armed.send(());
                timer.await;
            }
            .instrument(tracing::info_span!("GET /messages")),
        );
        let hog = tokio::spawn(
            async move {
                timer_set.await.unwrap();
                burn(80)
            }
            .instrument(tracing::info_span!("GET /report")),
        );
        req.await.unwrap();
        hog.await.unwrap();
    });
    let span = request_span(&exporter, &provider);
    assert_cause(&span, "scheduler_wait");
    assert!(
        attr_str(&span, "granular.culprit").contains("GET /report"),
        "{:#?}",
        span.attributes
    );
    let wait = attr_us(&span, "granular.time.scheduler_wait_us");
    let dur = duration_us(&span);
    assert!(
        wait >= 60_000 && wait <= dur,
        "scheduler wait {wait} µs of {dur} µs, injected ~75 ms"
    );
    let artifact = attr_str(&span, "granular.artifact");
    let path = artifact
        .strip_prefix("file://")
        .expect("artifact is a file URL");
    assert!(
        std::fs::metadata(path).unwrap().len() > 100,
        "artifact {path} is written"
    );

    // 2. A blocking call inside async code, after a child span has come and gone (the
    //    request's entry is still open: the sampler must see it inside work).
    serve(&rt, async {
        let step = tracing::info_span!("step");
        async {}.instrument(step.clone()).await;
        std::thread::sleep(Duration::from_millis(50));
        drop(step);
    });
    let span = request_span(&exporter, &provider);
    assert_cause(&span, "blocked_in_poll");
    let blocked = attr_us(&span, "granular.time.blocked_in_poll_us");
    assert!(
        (40_000..=60_000).contains(&blocked),
        "blocked {blocked} µs, injected 50 ms"
    );
    // What it blocked in: sampled from /proc, unprivileged.
    assert_eq!(
        attr_str(&span, "granular.blocked.syscall"),
        "clock_nanosleep",
        "{:#?}",
        span.attributes
    );
    assert_eq!(
        attr_str(&span, "granular.blocked.object"),
        "std::thread::sleep (50 ms requested)"
    );
    assert!(
        attr_str(&span, "granular.verdict")
            .contains("in clock_nanosleep — std::thread::sleep (50 ms requested)"),
        "{}",
        attr_str(&span, "granular.verdict")
    );

    // 2b. A std::sync::Mutex another request holds: the wait is a futex, the holder named.
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let (locked, holding) = std::sync::mpsc::channel();
    let holder = std::thread::spawn(move || {
        let _request = tracing::info_span!("GET /holder").entered();
        let _guard = LOCK.lock().unwrap();
        locked.send(()).unwrap();
        std::thread::sleep(Duration::from_millis(60));
    });
    holding.recv().unwrap();
    serve(&rt, async { drop(LOCK.lock().unwrap()) });
    holder.join().unwrap();
    let span = request_span(&exporter, &provider);
    assert_cause(&span, "blocked_in_poll");
    assert_eq!(attr_str(&span, "granular.blocked.syscall"), "futex");
    assert!(
        attr_str(&span, "granular.blocked.object").starts_with("contended std::sync lock"),
        "{:#?}",
        span.attributes
    );
    assert!(
        attr_str(&span, "granular.blocked.holder").starts_with("GET /holder (trace "),
        "{:#?}",
        span.attributes
    );

    // 2c. A spawn_blocking job that sleeps: blocking pool, and what the job waited in.
    serve(&rt, async {
        granular::spawn_blocking(|| std::thread::sleep(Duration::from_millis(60)))
            .await
            .unwrap()
    });
    let span = request_span(&exporter, &provider);
    assert_cause(&span, "blocking_pool");
    assert_eq!(
        attr_str(&span, "granular.blocking_pool.syscall"),
        "clock_nanosleep",
        "{:#?}",
        span.attributes
    );
    assert!(
        attr_str(&span, "granular.verdict")
            .contains("in clock_nanosleep — std::thread::sleep (60 ms requested)"),
        "{}",
        attr_str(&span, "granular.verdict")
    );

    // 2d. Touching 64 MiB of fresh memory: its page faults, counted by the kernel around it.
    let faulted = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counted = faulted.clone();
    serve(&rt, async move {
        let before = thread_minor_faults();
        let mut v = vec![0u8; 64 << 20];
        for page in v.chunks_mut(4096) {
            page[0] = 1;
        }
        std::hint::black_box(&v);
        counted.store(
            thread_minor_faults() - before,
            std::sync::atomic::Ordering::Relaxed,
        );
    });
    let span = request_span(&exporter, &provider);
    let kernel = faulted.load(std::sync::atomic::Ordering::Relaxed) as i64;
    let granular = attr_us(&span, "granular.page_faults.minor");
    assert!(
        kernel >= 16_000 && (granular - kernel).abs() * 10 <= kernel,
        "page faults: Granular {granular}, the kernel {kernel}"
    );
    assert!(
        attr_us(&span, "granular.page_faults.est_us") > 0,
        "{:#?}",
        span.attributes
    );

    // 3. Awaiting a timer: idle, nothing blamed on the runtime.
    serve(&rt, async {
        tokio::time::sleep(Duration::from_millis(60)).await
    });
    let span = request_span(&exporter, &provider);
    assert_cause(&span, "idle");
    assert!(attr_us(&span, "granular.time.scheduler_wait_us") < 5_000);
    let total: i64 = [
        "running",
        "scheduler_wait",
        "os_wait",
        "blocked_in_poll",
        "blocking_pool",
        "idle",
    ]
    .iter()
    .map(|c| attr_us(&span, &format!("granular.time.{c}_us")))
    .sum();
    let dur = duration_us(&span);
    assert!(
        (total - dur).abs() * 20 <= dur,
        "parts {total} µs vs span {dur} µs"
    );

    // 4. A healthy request carries no runtime detail.
    serve(&rt, async {});
    let span = request_span(&exporter, &provider);
    assert!(
        attr(&span, "granular.cause").is_none(),
        "{:#?}",
        span.attributes
    );
    assert_eq!(
        attr(&span, "granular.slo.violated"),
        Some(Value::Bool(false))
    );
    let _ = std::fs::remove_dir_all(artifacts);
}

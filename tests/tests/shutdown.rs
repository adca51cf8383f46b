//! SIGTERM under load (issue #21): the demo service gets SIGTERM while the real load driver
//! runs (5 % slow requests), in both `GRANULAR_SAMPLE` modes side by side. It must stop
//! accepting, flush within its configured export timeout (`OTEL_EXPORTER_OTLP_TIMEOUT`, set
//! to 10 s here) and exit 0; the trace of every request answered before the signal must be in
//! Jaeger whole. The exit time is printed (docs/reliability.md records it).

use std::time::{Duration, SystemTime};

use granular_e2e::driver::{self, Load};
use granular_e2e::faults::{self, both_modes, check, exported, serial};
use granular_e2e::jaeger::Jaeger;

const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
const RATE: f64 = 40.0;
const SLOW_MIX: &str = "sleep=5%";
const LOAD: Duration = Duration::from_secs(8);
/// When the signal comes, into the load.
const SIGNAL_AFTER: Duration = Duration::from_secs(4);

#[test]
fn sigterm_under_load_flushes_and_exits_zero() {
    let _turn = serial();
    let jaeger = Jaeger::shared().expect("start Jaeger");
    both_modes(|mode| sigterm(mode, jaeger));
}

fn sigterm(mode: &str, jaeger: &Jaeger) -> String {
    let what = format!("SIGTERM under load, {mode}");
    let mut demo = faults::demo(
        &format!("sigterm-{mode}"),
        mode,
        &jaeger.otlp_grpc_endpoint(),
    )
    .env(
        "OTEL_EXPORTER_OTLP_TIMEOUT",
        &EXPORT_TIMEOUT.as_millis().to_string(),
    )
    .start()
    .expect("start demo-service");
    let load = Load {
        rate: RATE,
        duration: LOAD,
        // More slow requests than the other fault tests' 1 %: `violations` exports only
        // those, and a few seconds of 1 % are a handful of traces.
        mix: SLOW_MIX.to_owned(),
        concurrency: 32,
    };
    let running = driver::start(&format!("load-sigterm-{mode}"), demo.url(), &load)
        .expect("start the load driver");
    std::thread::sleep(SIGNAL_AFTER);
    let signalled = SystemTime::now();
    let (status, exit_after) = demo
        .process_mut()
        .signal_and_wait(libc::SIGTERM, EXPORT_TIMEOUT * 3)
        .expect("the service exits after SIGTERM");
    let run = running.finish().expect("load driver");
    let answered: Vec<String> = run
        .request_log
        .iter()
        .filter(|r| exported(mode, r) && r.answered().is_some_and(|t| t < signalled))
        .map(|r| r.trace_id.clone())
        .collect();
    let found = check(jaeger.query(), &answered, Duration::from_secs(30));
    let refused = run
        .request_log
        .iter()
        .filter(|r| r.latency_us.is_none())
        .count();
    let row = format!(
        "{what}: exited with code {} {:.0} ms after the signal (export timeout {} s); {} of {} \
         traces of requests answered before the signal in Jaeger whole; {refused} of {} \
         requests refused after it",
        status
            .code()
            .map_or("none (killed)".to_owned(), |c| c.to_string()),
        exit_after.as_secs_f64() * 1000.0,
        EXPORT_TIMEOUT.as_secs(),
        found.whole,
        answered.len(),
        run.requests
    );
    println!("{row}");
    assert!(status.success(), "{what}: not exit 0\n{row}");
    assert!(
        exit_after < EXPORT_TIMEOUT,
        "{what}: did not exit within the export timeout\n{row}"
    );
    assert!(
        !answered.is_empty() && found.missing.is_empty(),
        "{what}: traces answered before the signal missing:\n{}\n{row}",
        found.describe_missing(20)
    );
    row
}

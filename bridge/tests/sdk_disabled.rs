//! `OTEL_SDK_DISABLED=true`, as the OpenTelemetry specification defines it: no telemetry at
//! all. `init()` installs only the log output: no recorder, no Granular or OpenTelemetry
//! thread, no perf event, every source inactive with the reason, nothing sent to the
//! endpoint.
//!
//! Pins issue #17: `OTEL_SDK_DISABLED=true` was ignored.

#[path = "support/otlp_receiver.rs"]
mod otlp_receiver;

use std::time::Duration;

use tracing::Instrument as _;

#[test]
fn otel_sdk_disabled_installs_no_telemetry() {
    let receiver = otlp_receiver::Receiver::start();
    // SAFETY: the only test in this binary; no other thread reads the environment yet.
    unsafe {
        std::env::set_var("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint());
        std::env::set_var("OTEL_SDK_DISABLED", "true");
        std::env::set_var("GRANULAR_SLO", "*=0ms");
    }
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(2);
    let rt = granular::instrument_runtime(&mut builder)
        .enable_all()
        .build()
        .unwrap();
    let granular = rt.block_on(async {
        let granular = granular::init().unwrap();
        for i in 0..10 {
            async { tokio::time::sleep(Duration::from_millis(2)).await }
                .instrument(tracing::info_span!("request", i))
                .await;
        }
        granular
    });
    assert!(granular::__internal::recorder::FlightRecorder::get().is_none());
    let names: Vec<String> = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|n| n.trim().to_string())
        .collect();
    assert!(
        !names
            .iter()
            .any(|n| n.starts_with("granular-") || n.starts_with("OpenTelemetry")),
        "telemetry threads running: {names:?}"
    );
    for (source, state) in &granular.sources().entries {
        assert_eq!(
            state,
            &Err("OTEL_SDK_DISABLED=true".to_string()),
            "source {source}"
        );
    }
    rt.block_on(async { drop(granular) });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(receiver.received().len(), 0, "something was exported");
}

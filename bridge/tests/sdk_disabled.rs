//! `OTEL_SDK_DISABLED=true`, as the OpenTelemetry specification defines it: no telemetry at
//! all. `init()` installs only the log output: no recorder, no Granular or OpenTelemetry
//! thread, no perf event, every source inactive with the reason, nothing sent to the
//! endpoint.
//!
//! Pins issue #17: `OTEL_SDK_DISABLED=true` was ignored.

#[path = "support/otlp_receiver.rs"]
mod otlp_receiver;
#[path = "support/switched_off.rs"]
mod switched_off;

use std::time::Duration;

use tracing::Instrument as _;

#[test]
fn otel_sdk_disabled_installs_no_telemetry() {
    let (receiver, rt) =
        switched_off::start(&[("OTEL_SDK_DISABLED", "true"), ("GRANULAR_SLO", "*=0ms")]);
    let granular = rt.block_on(async {
        let granular = granular::init().unwrap();
        for i in 0..10 {
            async { tokio::time::sleep(Duration::from_millis(2)).await }
                .instrument(tracing::info_span!("request", i))
                .await;
        }
        granular
    });
    switched_off::assert_nothing_runs(
        &granular,
        &["granular-", "OpenTelemetry"],
        "OTEL_SDK_DISABLED=true",
    );
    rt.block_on(async { drop(granular) });
    std::thread::sleep(Duration::from_millis(500)); // what would be sent, sent by now
    assert_eq!(receiver.received().len(), 0, "something was exported");
}

//! `demo-service`: the axum service Granular's demos and end-to-end tests run against.
//!
//! Configuration is by environment only (`DEMO_*` here, `OTEL_*` and `GRANULAR_*` read by the
//! telemetry stack); see `granular_examples::config`. `DEMO_TELEMETRY` picks the stack
//! (`granular_examples::telemetry`; default Granular). Exit status 2 means it could not start.

use std::process::ExitCode;

use granular_examples::config::ServiceConfig;
use granular_examples::service;
use granular_examples::telemetry::SwitchAlloc;

/// Counts allocations per thread (with `DEMO_TELEMETRY=granular`) so slow spans report what
/// they allocated.
#[global_allocator]
static ALLOC: SwitchAlloc = SwitchAlloc::new();

fn main() -> ExitCode {
    let config = match ServiceConfig::from_env() {
        Ok(config) => config,
        Err(e) => return fail(&e),
    };
    let telemetry = config.telemetry;
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder
        .worker_threads(config.workers)
        .max_blocking_threads(config.max_blocking)
        .enable_all();
    let runtime = match telemetry.runtime(builder) {
        Ok(runtime) => runtime,
        Err(e) => return fail(&e),
    };
    runtime.runtime.block_on(async {
        let _guard = match telemetry.install() {
            Ok(guard) => guard,
            Err(e) => return fail(&e),
        };
        match service::run(config).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&format!("cannot serve: {e}")),
        }
    })
}

/// Reports a start-up failure the way scripts expect: one line on stderr, exit status 2.
fn fail(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(2)
}

//! `demo-service`: the axum service Granular's demos and end-to-end tests run against.
//!
//! Configuration is by environment only (`DEMO_*` here, `OTEL_*` read by Granular); see
//! `granular_examples::config`. Exit status 2 means it could not start.

use std::process::ExitCode;

use granular_examples::config::ServiceConfig;
use granular_examples::service;

/// Counts allocations per thread so slow spans report what they allocated.
#[global_allocator]
static ALLOC: granular::Alloc = granular::Alloc::system();

fn main() -> ExitCode {
    let config = match ServiceConfig::from_env() {
        Ok(config) => config,
        Err(e) => return fail(&e),
    };
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    let runtime = granular::instrument_runtime(&mut builder)
        .worker_threads(config.workers)
        .max_blocking_threads(config.max_blocking)
        .enable_all()
        .build();
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(e) => return fail(&format!("cannot build the tokio runtime: {e}")),
    };
    runtime.block_on(async {
        let _guard = match granular::init() {
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

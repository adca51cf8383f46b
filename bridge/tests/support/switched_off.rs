//! What the tests of a switched-off Granular (`GRANULAR_ENABLED=false`, `OTEL_SDK_DISABLED=true`)
//! share: a loopback OTLP receiver the environment points at, an instrumented runtime, and
//! the check that nothing of Granular runs.

use crate::otlp_receiver::Receiver;

/// Starts a receiver, sets `OTEL_EXPORTER_OTLP_ENDPOINT` to it and `vars`, and builds a
/// 2-worker runtime through `granular::instrument_runtime`.
///
/// Call it first, from the only test of the binary: it sets the process environment.
pub fn start(vars: &[(&str, &str)]) -> (Receiver, tokio::runtime::Runtime) {
    let receiver = Receiver::start();
    // SAFETY: the only test in the binary calls this before any other thread reads the
    // environment.
    unsafe {
        std::env::set_var("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint());
        for (name, value) in vars {
            std::env::set_var(name, value);
        }
    }
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(2);
    let rt = granular::instrument_runtime(&mut builder)
        .enable_all()
        .build()
        .unwrap();
    (receiver, rt)
}

/// Nothing of Granular runs: no recorder, no thread whose name starts with one of
/// `thread_prefixes`, no perf event open, and every source inactive because of `reason`.
pub fn assert_nothing_runs(granular: &granular::Granular, thread_prefixes: &[&str], reason: &str) {
    assert!(
        granular::__internal::recorder::FlightRecorder::get().is_none(),
        "no recorder"
    );
    let names = thread_names();
    assert!(
        !names
            .iter()
            .any(|n| thread_prefixes.iter().any(|p| n.starts_with(p))),
        "threads {thread_prefixes:?} running: {names:?}"
    );
    assert_eq!(perf_fds(), 0, "perf events open");
    for (source, state) in &granular.sources().entries {
        assert_eq!(state, &Err(reason.to_string()), "source {source}");
    }
    assert_eq!(granular.sources().active(), "");
}

/// Names of this process's threads (`comm`, at most 15 bytes).
fn thread_names() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|n| n.trim().to_string())
        .collect()
}

/// Open perf event file descriptors of this process.
fn perf_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy().contains("perf_event"))
        .count()
}

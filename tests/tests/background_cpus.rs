//! `GRANULAR_BACKGROUND_CPUS` puts Granular's background threads on the CPUs it names and
//! leaves the application's where they were: the real demo service, its threads' affinity
//! read from `/proc`, its slow request's trace from a real Jaeger. A CPU the kernel refuses
//! leaves the background threads where they were, says so once in the log, and loses nothing.

use std::time::Duration;

use granular_e2e::bench::procfs;
use granular_e2e::demo::Demo;
use granular_e2e::jaeger::Jaeger;

const SLO: &str = "GET /messages=20ms,*=10s";
/// A request that violates the SLO, so the analyzer explains it.
const SLOW: &str = "/messages?pathology=block&ms=60";
/// The analyzer thread's name as `/proc` gives it (15 bytes).
const ANALYZER: &str = "granular-analyz";
/// A tokio worker's (the demo names them).
const WORKER: &str = "tokio-rt-worker";

#[test]
fn background_threads_run_on_the_cpus_asked_for() {
    let cpus = procfs::allowed_cpus();
    assert!(
        cpus.len() >= 2,
        "this test needs two CPUs to tell the background threads' from the application's; \
         the test process may use {cpus:?}"
    );
    let spare = cpus[cpus.len() - 1];
    let demo = slow_request("background-cpus", &spare.to_string());
    let log = demo.process().log();
    assert!(
        log.contains(&format!(
            "granular: background threads run on CPUs [{spare}]"
        )),
        "no start-up line naming the CPUs:\n{log}"
    );
    let affinity = affinities(demo.process().pid());
    assert_eq!(
        allowed(&affinity, ANALYZER),
        spare.to_string(),
        "{affinity:?}"
    );
    assert_ne!(
        allowed(&affinity, WORKER),
        spare.to_string(),
        "{affinity:?}"
    );
}

#[test]
fn cpus_the_kernel_refuses_leave_the_threads_where_they_were() {
    // Valid as a CPU number, but no such CPU here: sched_setaffinity refuses it.
    let demo = slow_request("background-cpus-refused", "1000");
    let log = demo.process().log();
    let refusals = log
        .matches("GRANULAR_BACKGROUND_CPUS=\"1000\" is invalid: the kernel refuses them")
        .count();
    assert_eq!(refusals, 1, "the refusal is said once:\n{log}");
    assert!(!log.contains("background threads run on CPUs"), "{log}");
    let affinity = affinities(demo.process().pid());
    assert_eq!(
        allowed(&affinity, ANALYZER),
        allowed(&affinity, WORKER),
        "{affinity:?}"
    );
}

/// Starts the demo with `GRANULAR_BACKGROUND_CPUS=cpus` and sends it a violating request,
/// whose trace must reach Jaeger with its breakdown.
fn slow_request(name: &str, cpus: &str) -> Demo {
    let jaeger = Jaeger::shared().expect("Jaeger");
    let mut demo = Demo::builder(name)
        .otlp_grpc(&jaeger.otlp_grpc_endpoint())
        .env("GRANULAR_SLO", SLO)
        .env("GRANULAR_SAMPLE", "violations")
        .env("GRANULAR_ARTIFACTS", "none")
        .env("GRANULAR_BACKGROUND_CPUS", cpus)
        .start()
        .expect("demo");
    let response = demo.get(SLOW).expect("GET");
    let trace_id = response.trace_id().expect("trace id");
    jaeger
        .fetch_trace(&trace_id, Duration::from_secs(30), |t| {
            t.span_by_name("GET /messages")
                .is_some_and(|s| s.tag_str("granular.cause").is_some())
        })
        .expect("the violating trace, with its breakdown");
    demo
}

/// Each thread's name and `Cpus_allowed_list` (from `/proc/<pid>/task/<tid>/status`).
fn affinities(pid: u32) -> Vec<(String, String)> {
    let dir = format!("/proc/{pid}/task");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir)
        .expect("the demo's threads")
        .flatten()
    {
        let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else {
            continue; // exited meanwhile
        };
        let field = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .map(|v| v.trim().to_string())
        };
        if let (Some(name), Some(cpus)) = (field("Name:"), field("Cpus_allowed_list:")) {
            out.push((name, cpus));
        }
    }
    out
}

/// The CPU list of the first thread named `name`.
fn allowed(affinity: &[(String, String)], name: &str) -> String {
    affinity
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, cpus)| cpus.clone())
        .unwrap_or_else(|| panic!("no thread named {name} among {affinity:?}"))
}

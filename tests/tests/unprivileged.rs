//! Granular never needs root (README, "What each privilege level adds"): the demo service run
//! as user `nobody` names every source in its start-up line, active or inactive with the reason;
//! the same sources are active as when it runs as root, except where the README says an
//! unprivileged process gets less (perf context switches where `perf_event_paranoid` > 2 or a
//! seccomp filter denies them, schedstat sampling then in their place); and what each source
//! active as nobody adds reaches Jaeger, from requests that hit the demo's pathologies.
//!
//! Run as root (CI), the demo runs as `nobody` through `setpriv` (util-linux), after a run as
//! root for its sources line; the demo binary's directories must be searchable, and the binary
//! executable, by nobody, else the test fails naming what is not. Run as another user, that
//! user is the unprivileged one: the demo runs as it, and its sources are compared with what
//! the README documents only. Runs in both build modes (`tokio.tasks` is active only with
//! `--cfg tokio_unstable`). Needs the Jaeger binary, the demo binaries of this target dir and
//! profile, and `taskset` (util-linux) for the preemption request.

use std::os::unix::fs::{DirBuilderExt as _, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use granular_e2e::bench::procfs;
use granular_e2e::contention;
use granular_e2e::demo::{Demo, DemoBuilder, Response};
use granular_e2e::jaeger::Jaeger;
use granular_e2e::nobody::{self, NOBODY};
use granular_e2e::trace::{Span, Trace};
use serde_json::Value;

const TASK_HOOKS: bool = cfg!(tokio_unstable);
/// Every source, in the order the start-up line lists them (README's table).
const SOURCES: [&str; 8] = [
    "tokio.workers",
    "tokio.tasks",
    "tracing.spans",
    "os.schedstat",
    "perf.context_switches",
    "os.wait_samples",
    "alloc",
    "blocking_pool",
];
/// What `init()` logs before the list.
const SOURCES_LINE: &str = "granular: sources: ";
/// Every span violates, so every span is analyzed.
const SLO: &str = "*=1ms";
const TRACE_TIMEOUT: Duration = Duration::from_secs(30);
const MESSAGES_SPANS: [&str; 4] = [
    "GET /messages",
    "auth.AccessToken",
    "cache.Lookup",
    "db.Query",
];

/// The CPU hog on the demo's one worker, sent `HOG_DELAY` after a `/messages`, and the tries
/// at making the two overlap.
const HOG_MS: u64 = 150;
const HOG_DELAY: Duration = Duration::from_millis(3);
const HOG_ATTEMPTS: usize = 3;
/// `thread::sleep` on the worker.
const BLOCK_MS: u64 = 80;
/// Allocation storm.
const ALLOC_MIB: u64 = 64;
/// An awaited timer: idle, nothing wrong with the runtime.
const SLEEP_MS: u64 = 60;
/// CPU burned in `report.Build` beside [`BUSY_LOOPS`] loops on the same CPU.
const PREEMPT_BURN_MS: u64 = 100;
const BUSY_LOOPS: usize = 3;

#[test]
fn every_source_works_unprivileged_or_says_why() {
    let jaeger = Jaeger::shared().expect("start Jaeger");
    let switch_user = nobody::running_as_root();
    let privileged = switch_user.then(|| {
        let artifacts = granular_e2e::artifact_dir("unprivileged-root").expect("artifact dir");
        let demo = demo(jaeger, "unpriv-root", &artifacts)
            .start()
            .expect("start the demo as root");
        sources_of(&demo)
    });

    let artifacts = ArtifactDir::new(switch_user);
    let mut builder = demo(jaeger, "unpriv-nobody", artifacts.path());
    if switch_user {
        builder = builder.as_nobody();
    }
    let mut demo = builder.start().expect("start the demo unprivileged");
    let uid = status_field(demo.process().pid(), "Uid:");
    let seccomp = status_field(demo.process().pid(), "Seccomp:");
    if switch_user {
        assert!(
            uid.split_whitespace().all(|id| id == NOBODY.to_string()),
            "the demo runs as uid {uid:?}, not nobody"
        );
    }
    let sources = sources_of(&demo);
    let uid = uid.split_whitespace().next().unwrap_or_default().to_owned();
    println!("as uid {uid}: {SOURCES_LINE}{}", describe(&sources));

    // (2) What the README documents for an unprivileged process, and any difference from root.
    let perf = PerfPermission::of(&seccomp);
    let mut failures = against_readme(&sources, &perf);
    match &privileged {
        Some(root) => failures.extend(against_root(root, &sources, &perf)),
        None => println!("not run as root: compared with the README only"),
    }

    // (3) The evidence of each active source, from the pathologies.
    let mut evidence = Evidence {
        failures,
        traces: Vec::new(),
    };
    cpu_hog(jaeger, &mut demo, &sources, &artifacts, &mut evidence);
    blocking_sleep(jaeger, &mut demo, &sources, &mut evidence);
    allocation_storm(jaeger, &mut demo, &sources, &mut evidence);
    spawn_blocking(jaeger, &mut demo, &sources, &mut evidence);
    plain_sleep(jaeger, &mut demo, &mut evidence);
    if off_cpu_source(&sources).is_some() {
        preemption(jaeger, &mut demo, &mut evidence);
    }
    evidence.finish(&sources);
}

/// The message names the first directory nobody may not search.
#[test]
fn a_binary_nobody_cannot_reach_is_named() {
    let dir = std::env::temp_dir().join(format!("granular-unreachable-{}", std::process::id()));
    let inner = dir.join("inner");
    std::fs::create_dir_all(&inner).unwrap();
    let program = inner.join("program");
    std::fs::write(&program, "#!/bin/sh\n").unwrap();
    let chmod = |path: &Path, mode: u32| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    chmod(&program, 0o755);
    chmod(&inner, 0o755);
    chmod(&dir, 0o700);
    let closed = nobody::cannot_run(&program);
    chmod(&dir, 0o755);
    let open = nobody::cannot_run(&program);
    chmod(&program, 0o700);
    let private = nobody::cannot_run(&program);
    std::fs::remove_dir_all(&dir).unwrap();
    let closed = closed.expect("a 0700 directory stops nobody");
    assert!(
        closed.contains(&format!("may not search (x) {} (mode 0700", dir.display())),
        "{closed}"
    );
    assert_eq!(open, None);
    let private = private.expect("a 0700 program stops nobody");
    assert!(
        private.contains(&format!(
            "may not read and execute (r-x) {}",
            program.display()
        )),
        "{private}"
    );
}

/// The demo with one worker (the CPU hog then holds it), every span analyzed, events on,
/// artifacts in `artifacts`.
fn demo(jaeger: &Jaeger, name: &str, artifacts: &Path) -> DemoBuilder {
    Demo::builder(name)
        .otlp_grpc(&jaeger.otlp_grpc_endpoint())
        .env("DEMO_WORKERS", "1")
        .env("GRANULAR_SLO", SLO)
        .env("GRANULAR_DETAIL", "events")
        .env("GRANULAR_SAMPLE", "all")
        .env("GRANULAR_ARTIFACT_DIR", &artifacts.to_string_lossy())
}

/// A source's state: `Err` holds why it is inactive.
type State = Result<(), String>;

/// The sources of the demo's start-up line, in its order. Fails unless it names exactly
/// [`SOURCES`], each `active` or `inactive (<reason>)` with a reason.
fn sources_of(demo: &Demo) -> Vec<(&'static str, State)> {
    let log = demo.process().log();
    let line = log
        .lines()
        .find_map(|l| l.split_once(SOURCES_LINE).map(|(_, list)| list))
        .unwrap_or_else(|| panic!("no `{SOURCES_LINE}...` line in the log:\n{log}"));
    parse_sources(line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
}

/// `name: active; name: inactive (why); ...` with the names of [`SOURCES`] in order. A reason
/// may hold `; ` and parentheses: it ends at the parenthesis that closes it.
fn parse_sources(mut rest: &str) -> Result<Vec<(&'static str, State)>, String> {
    let mut out = Vec::new();
    for (i, name) in SOURCES.iter().enumerate() {
        if i > 0 {
            rest = rest
                .strip_prefix("; ")
                .ok_or_else(|| format!("no `; ` before {name}"))?;
        }
        rest = rest
            .strip_prefix(name)
            .and_then(|r| r.strip_prefix(": "))
            .ok_or_else(|| format!("source {} is not {name}", i + 1))?;
        if let Some(r) = rest.strip_prefix("active") {
            out.push((*name, Ok(())));
            rest = r;
            continue;
        }
        let r = rest
            .strip_prefix("inactive (")
            .ok_or_else(|| format!("{name} is neither `active` nor `inactive (<reason>)`"))?;
        let mut depth = 1;
        let end = r
            .char_indices()
            .find(|&(_, c)| {
                depth += match c {
                    '(' => 1,
                    ')' => -1,
                    _ => 0,
                };
                depth == 0
            })
            .map(|(at, _)| at)
            .ok_or_else(|| format!("{name}'s reason is not closed"))?;
        let why = r[..end].trim();
        if why.is_empty() {
            return Err(format!("{name} is inactive without a reason"));
        }
        out.push((*name, Err(why.to_owned())));
        rest = &r[end + 1..];
    }
    if rest.trim().is_empty() {
        Ok(out)
    } else {
        Err(format!("more than the {} sources: {rest:?}", SOURCES.len()))
    }
}

fn describe(sources: &[(&str, State)]) -> String {
    sources
        .iter()
        .map(|(name, state)| format!("{name}: {}", state_text(state)))
        .collect::<Vec<_>>()
        .join("; ")
}

fn state_text(state: &State) -> String {
    match state {
        Ok(()) => "active".to_owned(),
        Err(why) => format!("inactive ({why})"),
    }
}

/// What decides whether an unprivileged process may open perf context-switch events.
struct PerfPermission {
    paranoid: i32,
    /// The demo's `Seccomp:` mode: 0 none, 2 a filter.
    seccomp: String,
}

impl PerfPermission {
    fn of(seccomp: &str) -> Self {
        let path = "/proc/sys/kernel/perf_event_paranoid";
        let paranoid = std::fs::read_to_string(path)
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("cannot read {path}"));
        Self {
            paranoid,
            seccomp: seccomp.to_owned(),
        }
    }

    /// Whether the README says an unprivileged process gets perf context switches: with
    /// `perf_event_paranoid` ≤ 2 and no seccomp filter; `None` under a filter, which may or
    /// may not deny `perf_event_open` (Docker's default profile does).
    fn documented(&self) -> Option<bool> {
        if self.paranoid > 2 {
            Some(false)
        } else if self.seccomp == "0" {
            Some(true)
        } else {
            None
        }
    }
}

impl std::fmt::Display for PerfPermission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "perf_event_paranoid={}, Seccomp: {}",
            self.paranoid, self.seccomp
        )
    }
}

/// Where the unprivileged `sources` are not what the README documents: every source active
/// but `tokio.tasks` (only with `--cfg tokio_unstable`), perf context switches where `perf`
/// permits them, schedstat sampling exactly where they are not active.
fn against_readme(sources: &[(&str, State)], perf: &PerfPermission) -> Vec<String> {
    let perf_active = is_active(sources, "perf.context_switches");
    let mut failures = Vec::new();
    for (name, state) in sources {
        let expected = match *name {
            "tokio.tasks" => Some(TASK_HOOKS),
            "perf.context_switches" => perf.documented(),
            "os.schedstat" => Some(!perf_active),
            _ => Some(true),
        };
        if let Some(expected) = expected.filter(|&e| e != state.is_ok()) {
            failures.push(format!(
                "{name} is {} unprivileged; README documents it {} here ({perf})",
                state_text(state),
                if expected { "active" } else { "inactive" }
            ));
        }
    }
    failures
}

/// Where the unprivileged `sources` differ from those of the run as root without the README
/// saying so: perf context switches denied to the unprivileged process alone, and schedstat
/// sampling in their place, are documented; any other difference is a failure.
fn against_root(
    root: &[(&str, State)],
    sources: &[(&str, State)],
    perf: &PerfPermission,
) -> Vec<String> {
    let perf_active = is_active(sources, "perf.context_switches");
    let mut failures = Vec::new();
    let mut same = 0;
    for ((name, as_root), (_, unprivileged)) in root.iter().zip(sources) {
        if as_root.is_ok() == unprivileged.is_ok() {
            same += 1;
            continue;
        }
        let line = format!(
            "{name}: as root {}, unprivileged {}",
            state_text(as_root),
            state_text(unprivileged)
        );
        let documented = match *name {
            "perf.context_switches" => perf.documented() == Some(false),
            "os.schedstat" => !perf_active,
            _ => false,
        };
        if documented {
            println!("difference from root (documented, {perf}): {line}");
        } else {
            failures.push(format!(
                "undocumented difference from root ({perf}): {line}"
            ));
        }
    }
    println!(
        "as root: {same} of {} sources in the same state",
        root.len()
    );
    failures
}

/// A field of `/proc/<pid>/status`, e.g. `Uid:` or `Seccomp:`.
fn status_field(pid: u32, field: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .map(|v| v.trim().to_owned())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// The unprivileged demo's artifact directory: under the temp dir, owned by nobody when the
/// demo runs as nobody (0700, as Granular requires of it); removed when dropped.
struct ArtifactDir(PathBuf);

impl ArtifactDir {
    fn new(for_nobody: bool) -> Self {
        let dir =
            std::env::temp_dir().join(format!("granular-unprivileged-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        if for_nobody {
            std::os::unix::fs::chown(&dir, Some(NOBODY), Some(NOBODY))
                .unwrap_or_else(|e| panic!("cannot give {} to nobody: {e}", dir.display()));
        }
        Self(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ArtifactDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Soft checks: every failure is reported at once, with the sources and the traces.
struct Evidence {
    failures: Vec<String>,
    traces: Vec<String>,
}

impl Evidence {
    fn that(&mut self, source: &str, ok: bool, what: impl Into<String>) {
        if ok {
            println!("{source}: {}", what.into());
        } else {
            self.failures.push(format!("{source}: {}", what.into()));
        }
    }

    fn keep(&mut self, label: &str, trace: &Trace) {
        self.traces.push(format!("{label}:\n{}", trace.render()));
    }

    fn finish(self, sources: &[(&str, State)]) {
        assert!(
            self.failures.is_empty(),
            "{} checks failed:\n  - {}\nsources: {}\n{}",
            self.failures.len(),
            self.failures.join("\n  - "),
            describe(sources),
            self.traces.join("\n")
        );
    }
}

fn is_active(sources: &[(&str, State)], name: &str) -> bool {
    sources.iter().any(|(n, s)| *n == name && s.is_ok())
}

/// tokio.workers (a scheduler wait with the hog as culprit), tokio.tasks (polls counted),
/// tracing.spans (the request's spans, and `granular.sources` as the line says), and an
/// artifact written by the unprivileged process.
fn cpu_hog(
    jaeger: &Jaeger,
    demo: &mut Demo,
    sources: &[(&str, State)],
    artifacts: &ArtifactDir,
    evidence: &mut Evidence,
) {
    let hog = format!("/report?ms={HOG_MS}");
    let mut overlapped = None;
    for _ in 0..HOG_ATTEMPTS {
        let responses = demo
            .get_staggered(&[(Duration::ZERO, "/messages"), (HOG_DELAY, &hog)])
            .expect("GET /messages and the hog");
        let trace = fetch(jaeger, &ok_trace_id(&responses[0]), 4);
        if root(&trace).duration >= HOG_MS * 1000 / 2 {
            overlapped = Some(trace);
            break;
        }
    }
    let Some(trace) = overlapped else {
        evidence.that(
            "tokio.workers",
            false,
            format!("the {HOG_MS} ms hog never overlapped a /messages in {HOG_ATTEMPTS} tries"),
        );
        return;
    };
    evidence.keep("CPU hog", &trace);
    let root = root(&trace);
    let names: Vec<&str> = trace
        .spans
        .iter()
        .map(|s| s.operation_name.as_str())
        .collect();
    evidence.that(
        "tracing.spans",
        MESSAGES_SPANS.iter().all(|n| names.contains(n)),
        format!("the request's spans {names:?} are all in Jaeger"),
    );
    let active: Vec<&str> = sources
        .iter()
        .filter(|(_, s)| s.is_ok())
        .map(|(n, _)| *n)
        .collect();
    evidence.that(
        "tracing.spans",
        root.tag_str("granular.sources") == Some(active.join(",").as_str()),
        format!(
            "granular.sources {:?} lists the line's active sources",
            root.tag_str("granular.sources")
        ),
    );
    let culprit = root.tag_str("granular.culprit").unwrap_or("");
    evidence.that(
        "tokio.workers",
        root.tag_str("granular.cause") == Some("scheduler_wait") && culprit.contains("GET /report"),
        format!(
            "cause {} (scheduler_wait), culprit {culprit:?} (GET /report)",
            cause(root)
        ),
    );
    if is_active(sources, "tokio.tasks") {
        let polls = root.tag_i64("granular.polls").unwrap_or(0);
        evidence.that(
            "tokio.tasks",
            polls > 0,
            format!("granular.polls = {polls} (> 0)"),
        );
    }
    let link = root.tag_str("granular.artifact").unwrap_or("");
    let file = link.strip_prefix("file://").map(PathBuf::from);
    let meta = file.as_ref().and_then(|f| f.metadata().ok());
    evidence.that(
        "artifacts",
        file.as_ref()
            .is_some_and(|f| f.starts_with(artifacts.path()))
            && meta
                .as_ref()
                .is_some_and(|m| m.len() > 0 && (!nobody::running_as_root() || m.uid() == NOBODY)),
        format!(
            "granular.artifact {link:?} is a file in {} written by the demo's user ({:?} bytes, \
             uid {:?})",
            artifacts.path().display(),
            meta.as_ref().map(|m| m.len()),
            meta.as_ref().map(|m| m.uid())
        ),
    );
}

/// perf.context_switches or os.schedstat (the blocked time, off CPU), os.wait_samples (what
/// it blocked in).
fn blocking_sleep(
    jaeger: &Jaeger,
    demo: &mut Demo,
    sources: &[(&str, State)],
    evidence: &mut Evidence,
) {
    let path = format!("/messages?pathology=block&ms={BLOCK_MS}");
    let trace = fetch(jaeger, &ok_trace_id(&demo.get(&path).expect("GET")), 4);
    evidence.keep(&path, &trace);
    let root = root(&trace);
    let off_cpu = off_cpu_source(sources);
    if let Some(source) = off_cpu {
        // At least the sleep: a shared machine may wake the thread late (166 ms off CPU for
        // this 80 ms sleep was seen), which the source then reports as it happened.
        let blocked_us = root.granular_time_us("blocked_in_poll").unwrap_or(-1);
        let floor_us = (BLOCK_MS * 1000 * 9 / 10) as i64;
        evidence.that(
            source,
            root.tag_str("granular.cause") == Some("blocked_in_poll") && blocked_us >= floor_us,
            format!(
                "cause {} (blocked_in_poll), granular.time.blocked_in_poll_us = {blocked_us} \
                 (at least {floor_us}: 90 % of the {BLOCK_MS} ms sleep)",
                cause(root)
            ),
        );
    }
    if is_active(sources, "os.wait_samples") {
        let syscall = root.tag_str("granular.blocked.syscall");
        let object = root.tag_str("granular.blocked.object");
        let expected_object = format!("std::thread::sleep ({BLOCK_MS} ms requested)");
        evidence.that(
            "os.wait_samples",
            syscall == Some("clock_nanosleep") && object == Some(expected_object.as_str()),
            format!("granular.blocked.syscall {syscall:?}, granular.blocked.object {object:?}"),
        );
    }
}

/// alloc: the storm's bytes on the request's span.
fn allocation_storm(
    jaeger: &Jaeger,
    demo: &mut Demo,
    sources: &[(&str, State)],
    evidence: &mut Evidence,
) {
    let path = format!("/messages?pathology=alloc&mib={ALLOC_MIB}");
    let response = demo.get(&path).expect("GET");
    let trace = fetch(jaeger, &ok_trace_id(&response), 4);
    evidence.keep(&path, &trace);
    if !is_active(sources, "alloc") {
        return;
    }
    let body: Value = serde_json::from_str(&response.body).expect("a JSON body");
    let allocated = body["allocated_bytes"].as_i64().expect("allocated_bytes");
    let counted = root(&trace).tag_i64("granular.alloc.bytes").unwrap_or(-1);
    evidence.that(
        "alloc",
        (counted - allocated).abs() <= allocated / 10,
        format!("granular.alloc.bytes = {counted}, within 10 % of the {allocated} allocated"),
    );
}

/// blocking_pool: jobs queued on the demo's four pool threads.
fn spawn_blocking(
    jaeger: &Jaeger,
    demo: &mut Demo,
    sources: &[(&str, State)],
    evidence: &mut Evidence,
) {
    let path = "/messages?pathology=spawn_blocking&jobs=12&ms=20";
    let trace = fetch(jaeger, &ok_trace_id(&demo.get(path).expect("GET")), 4);
    evidence.keep(path, &trace);
    if !is_active(sources, "blocking_pool") {
        return;
    }
    let root = root(&trace);
    let pool_us = root.granular_time_us("blocking_pool").unwrap_or(-1);
    evidence.that(
        "blocking_pool",
        root.tag_str("granular.cause") == Some("blocking_pool") && pool_us >= 40_000,
        format!(
            "cause {} (blocking_pool), granular.time.blocking_pool_us = {pool_us} (three \
             waves of 20 ms jobs: at least 40 ms)",
            cause(root)
        ),
    );
}

/// An awaited timer blames nothing: idle.
fn plain_sleep(jaeger: &Jaeger, demo: &mut Demo, evidence: &mut Evidence) {
    let path = format!("/messages?pathology=sleep&ms={SLEEP_MS}");
    let trace = fetch(jaeger, &ok_trace_id(&demo.get(&path).expect("GET")), 4);
    evidence.keep(&path, &trace);
    let root = root(&trace);
    evidence.that(
        "(none needed)",
        root.tag_str("granular.cause") == Some("idle"),
        format!("a {SLEEP_MS} ms timer: cause {} (idle)", cause(root)),
    );
}

/// perf.context_switches or os.schedstat: a CPU burn preempted by busy loops on its CPU shows
/// as OS wait, at least half of what the worker did not run.
fn preemption(jaeger: &Jaeger, demo: &mut Demo, evidence: &mut Evidence) {
    let pid = demo.process().pid();
    let busy = contention::pin_beside_busy_loops(pid, BUSY_LOOPS).expect("CPU contention");
    let before = worker_run_ns(pid);
    let response = demo
        .get(&format!("/report?ms={PREEMPT_BURN_MS}"))
        .expect("GET /report");
    let ran_ms = (worker_run_ns(pid) - before) as f64 / 1e6;
    drop(busy);
    let trace = fetch(jaeger, &ok_trace_id(&response), 2);
    evidence.keep("preempted /report", &trace);
    let Some(build) = trace.span_by_name("report.Build") else {
        evidence.that("preemption", false, "no report.Build span");
        return;
    };
    let not_run_ms = build.duration_ms() - ran_ms;
    let os_wait_ms = build.granular_time_us("os_wait").unwrap_or(-1) as f64 / 1000.0;
    let source = build
        .tag_str("granular.sources")
        .and_then(|s| {
            s.split(',')
                .find(|s| *s == "perf.context_switches" || *s == "os.schedstat")
        })
        .unwrap_or("an off-CPU source");
    evidence.that(
        source,
        build.tag_str("granular.cause") == Some("os_wait") && os_wait_ms >= not_run_ms / 2.0,
        format!(
            "report.Build {:.1} ms, the worker ran {ran_ms:.1} ms of it: cause {} (os_wait), \
             granular.time.os_wait_us = {os_wait_ms:.1} ms (at least half of {not_run_ms:.1} ms)",
            build.duration_ms(),
            cause(build),
        ),
    );
}

/// The source that sees threads off CPU, when one is active.
fn off_cpu_source(sources: &[(&str, State)]) -> Option<&'static str> {
    ["perf.context_switches", "os.schedstat"]
        .into_iter()
        .find(|s| is_active(sources, s))
}

/// CPU time of the demo's runtime workers so far, ns.
fn worker_run_ns(pid: u32) -> u64 {
    procfs::threads(pid)
        .expect("the demo's threads")
        .iter()
        .filter(|t| t.name.starts_with("tokio-r"))
        .map(|t| t.run_ns)
        .sum()
}

/// The trace once it has `spans` spans, connected, each analyzed (or skipped, with why).
fn fetch(jaeger: &Jaeger, trace_id: &str, spans: usize) -> Trace {
    jaeger
        .fetch_trace(trace_id, TRACE_TIMEOUT, |t| {
            t.spans.len() >= spans
                && t.is_connected()
                && t.spans.iter().all(|s| {
                    s.tag("granular.cause").is_some() || s.tag("granular.skipped").is_some()
                })
        })
        .expect("the trace in Jaeger, complete and analyzed")
}

/// The span's `granular.cause`, or `none`.
fn cause(span: &Span) -> &str {
    span.tag_str("granular.cause").unwrap_or("none")
}

fn root(trace: &Trace) -> &Span {
    trace
        .roots()
        .first()
        .copied()
        .unwrap_or_else(|| panic!("a trace without a root:\n{}", trace.render()))
}

fn ok_trace_id(response: &Response) -> String {
    assert_eq!(response.status, 200, "{}", response.body);
    response.trace_id().expect("x-trace-id")
}

//! A process with a file size limit (`RLIMIT_FSIZE`, as `ulimit -f` or a container runtime may
//! set) smaller than an artifact: the artifact is skipped with a reason, the span exported with
//! its breakdown, and the process lives. Run in a child process, which sets the limit on
//! itself: the test changes no system setting.
//!
//! Pins: writing the artifact past the limit raised SIGXFSZ, which ended the whole service
//! ("File size limit exceeded", exit status 153).

#[path = "support/composed.rs"]
mod composed;
#[path = "support/in_memory.rs"]
mod in_memory;

use granular::{ArtifactSink, Config, SloRules};

const CHILD: &str = "GRANULAR_FSIZE_TEST_CHILD";
const TEST: &str = "an_artifact_over_the_file_size_limit_is_skipped_and_the_process_lives";

#[test]
fn an_artifact_over_the_file_size_limit_is_skipped_and_the_process_lives() {
    if std::env::var_os(CHILD).is_some() {
        return child();
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .output()
        .expect("run the child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the child died ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains("skipped=store_error cause=idle"),
        "{stdout}\n{stderr}"
    );
}

/// With a 512-byte file size limit, one violating span: prints what it carries.
fn child() {
    let limit = libc::rlimit {
        rlim_cur: 512,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit reads the struct it is given; this child process is the test's own.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_FSIZE, &limit) }, 0);
    let dir = std::env::temp_dir().join(format!("granular-fsize-{}", std::process::id()));
    let cfg = Config {
        slo: SloRules::parse("*=5ms").unwrap(),
        artifacts: ArtifactSink::Dir(dir.clone()),
        ..Config::default()
    };
    let sources = granular::install_recorder(&cfg);
    let (exporter, provider) = in_memory::install(cfg, &sources);
    let attr = in_memory::sleep_spans(&exporter, &provider, &["GET /slow"]);
    let attr = |key: &str| attr("GET /slow", key).unwrap_or_else(|| "-".into());
    println!(
        "skipped={} cause={}",
        attr("granular.artifact.skipped"),
        attr("granular.cause")
    );
    let _ = std::fs::remove_dir_all(dir);
}

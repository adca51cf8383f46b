//! Wait sampling needs no privilege: a blocked poll's syscall and object are named when the
//! service runs as an unprivileged user. Run as root, the test runs itself again as `nobody`
//! (`setpriv`, util-linux: `support/nobody.rs`, which the e2e harness shares) and checks that
//! run; run as another user, it checks in place.

#[path = "support/composed.rs"]
mod composed;
#[path = "support/in_memory.rs"]
mod in_memory;
#[path = "support/nobody.rs"]
mod nobody;

use std::process::Command;
use std::time::Duration;

use granular::{ArtifactSink, Config, SloRules};
use tracing::Instrument;

/// Set in the environment of the run as `nobody`.
const CHILD: &str = "GRANULAR_TEST_AS_NOBODY";

#[test]
fn a_blocked_poll_is_named_without_privileges() {
    if !nobody::running_as_root() {
        // SAFETY: geteuid has no preconditions.
        blocked_poll_is_named(unsafe { libc::geteuid() });
        return;
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    if let Some(why) = nobody::cannot_run(&exe) {
        panic!("this test runs its binary again as nobody, and {why}");
    }
    let out = Command::new("setpriv")
        .args(nobody::setpriv_args())
        .arg(&exe)
        .args([
            "a_blocked_poll_is_named_without_privileges",
            "--exact",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run setpriv (util-linux) to run this test as nobody: {e}")
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "the run as nobody failed ({}):\n{text}",
        out.status
    );
    let checked = text
        .lines()
        .find(|l| l.starts_with(&format!("as uid {}: ", nobody::NOBODY)))
        .unwrap_or_else(|| panic!("the run as nobody checked nothing:\n{text}"));
    println!("{checked}");
}

/// A 60 ms `thread::sleep` in a request's span, run as user `euid`: the span says
/// `clock_nanosleep` and the requested time.
fn blocked_poll_is_named(euid: u32) {
    if std::env::var_os(CHILD).is_some() {
        assert_eq!(euid, nobody::NOBODY, "setpriv changed the user");
    }
    let cfg = Config {
        slo: SloRules::parse("*=20ms").unwrap(),
        artifacts: ArtifactSink::None,
        ..Config::default()
    };
    let sources = granular::install_recorder(&cfg);
    assert!(
        sources.active().contains("os.wait_samples"),
        "wait sampling is not active as uid {euid}: {sources}"
    );
    let (exporter, provider) = in_memory::install(cfg, &sources);
    let rt = composed::runtime(1);
    rt.block_on(async {
        tokio::spawn(
            async { std::thread::sleep(Duration::from_millis(60)) }
                .instrument(tracing::info_span!("GET /blocked")),
        )
        .await
        .unwrap();
    });
    provider.force_flush().unwrap();
    let spans = exporter.get_finished_spans().unwrap();
    let span = spans
        .iter()
        .find(|s| s.name == "GET /blocked")
        .expect("the request's span was exported");
    let attr = |key: &str| {
        span.attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| kv.value.as_str().to_string())
            .unwrap_or_default()
    };
    assert_eq!(
        (
            attr("granular.blocked.syscall").as_str(),
            attr("granular.blocked.object").as_str()
        ),
        ("clock_nanosleep", "std::thread::sleep (60 ms requested)"),
        "{:#?}",
        span.attributes
    );
    println!("as uid {euid}: {}", attr("granular.verdict"));
}

//! End-to-end harness for Granular.
//!
//! Starts real processes on loopback — Jaeger ([`jaeger`]), the demo
//! services ([`demo`]), anything else through [`process`] — and reads back
//! what reached Jaeger as [`trace::Trace`]s, and Granular's linked
//! artifacts as [`perfetto`] summaries; pages are opened in a real browser
//! ([`browser`]); a demo service can run as user `nobody` ([`nobody`]). Every process is killed (with
//! its process group) when its guard drops; a guard dropped during a panic
//! prints the tail of the process's log first. A service the tests of one
//! binary share ([`shared`], e.g. [`jaeger::Jaeger::shared`]) is killed when
//! the binary exits. Logs are kept under `<target>/e2e-logs/`.
//!
//! Functions return [`Result`]; tests call `.expect("...")`, which panics
//! with the harness's message while the guards are still alive.

use std::path::{Path, PathBuf};

pub mod bench;
pub mod browser;
pub mod collector;
pub mod contention;
pub mod demo;
pub mod driver;
pub mod faults;
pub mod jaeger;
#[path = "../../bridge/tests/support/nobody.rs"]
pub mod nobody;
pub mod perfetto;
pub mod ports;
pub mod process;
pub mod sampler;
mod service;
pub mod shared;
pub mod stall;
pub use granular_cli::trace;
pub mod viewer;
pub mod violating;

pub use granular_cli::{Error, Result};

/// The Cargo workspace root (the repository root).
pub fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the granular-e2e crate lives in a subdirectory of the workspace")
}

/// `<target>/<profile>` of the build the running executable belongs to:
/// where Cargo puts the workspace's binaries. Derived from the running
/// executable, so `CARGO_TARGET_DIR`, `--target-dir`, `--release` and
/// `--target` all carry over to the binaries the harness starts.
pub fn bin_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe()
        .map_err(|e| Error::new(format!("cannot locate the running executable: {e}")))?;
    let mut dir = exe.parent();
    // Test executables live in <target>/<profile>/deps.
    if dir
        .and_then(Path::file_name)
        .is_some_and(|name| name == "deps")
    {
        dir = dir.and_then(Path::parent);
    }
    dir.map(Path::to_path_buf)
        .ok_or_else(|| Error::new(format!("{} has no parent directory", exe.display())))
}

/// A binary of this workspace, built for the same target dir and profile as
/// the running executable. Fails, naming the cargo command, if it was not built,
/// or if a source file it was built from (cargo's dep-info, `<name>.d` beside it)
/// changed since: `cargo test` builds test executables, not the binaries they
/// start, and a test of a stale binary tests the code before the change.
pub fn workspace_binary(name: &str, package: &str) -> Result<PathBuf> {
    let path = bin_dir()?.join(name);
    let build = format!(
        "build it first with `cargo build -p {package} --bins`, or `cargo build --workspace \
         --bins --examples` (same profile, CARGO_TARGET_DIR and RUSTFLAGS as this run; \
         tests/run.sh does this)"
    );
    let built = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .map_err(|_| Error::new(format!("{} does not exist: {build}", path.display())))?;
    if let Some(changed) = changed_since(&path.with_extension("d"), built) {
        return Err(Error::new(format!(
            "{} is older than {}: {build}",
            path.display(),
            changed.display()
        )));
    }
    Ok(path)
}

/// A file listed in the dep-info file `deps` (`target: source source...`) that was
/// modified after `built`; `None` when there is none or no dep-info to read.
fn changed_since(deps: &Path, built: std::time::SystemTime) -> Option<PathBuf> {
    let text = std::fs::read_to_string(deps).ok()?;
    let (_, sources) = text.lines().next()?.split_once(": ")?;
    sources
        .split_whitespace()
        .map(PathBuf::from)
        .find(|source| {
            std::fs::metadata(source)
                .and_then(|m| m.modified())
                .is_ok_and(|modified| modified > built)
        })
}

/// Where process logs go: `<target>/e2e-logs`.
pub fn log_dir() -> Result<PathBuf> {
    let bin_dir = bin_dir()?;
    Ok(bin_dir.parent().unwrap_or(&bin_dir).join("e2e-logs"))
}

/// Where a service of this run keeps its artifacts:
/// `<target>/e2e-artifacts/<name>-<pid>`, not created (the service creates
/// it, with its own permissions). Directories of earlier runs under the same
/// name are removed once their process is gone: a failed run's artifacts
/// stay until the next run.
pub fn artifact_dir(name: &str) -> Result<PathBuf> {
    let logs = log_dir()?;
    let parent = logs.parent().unwrap_or(&logs).join("e2e-artifacts");
    if let Ok(entries) = std::fs::read_dir(&parent) {
        for entry in entries.flatten() {
            let file_name = entry.file_name();
            let earlier_pid = file_name
                .to_str()
                .and_then(|n| n.strip_prefix(name)?.strip_prefix('-')?.parse::<u32>().ok());
            if earlier_pid.is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists()) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    let dir = parent.join(format!("{name}-{}", std::process::id()));
    // A leftover of an earlier run with the same pid would be served.
    let _ = std::fs::remove_dir_all(&dir);
    Ok(dir)
}

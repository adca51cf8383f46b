//! Granular's linked artifacts (`granular.artifact`): from the link to the
//! file, and the file checked with Perfetto's official schema.
//!
//! The check runs `bridge/tests/support/check_perfetto.py` (see its doc for
//! the JSON it prints) with `$GRANULAR_PYTHON` — a Python with the `perfetto`
//! package, as tests/run.sh provisions in `.cache/venv` — else `python3`.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::{Error, Result, workspace_root};

/// The Python to run the checker with (relative paths are taken from the
/// workspace root, like the documented `.cache/venv/bin/python`).
pub const PYTHON_ENV: &str = "GRANULAR_PYTHON";
const INSTALL_HINT: &str = "tests/run.sh provisions one: `python3 -m venv .cache/venv && \
    .cache/venv/bin/pip install -r tests/requirements.txt`, then run with \
    GRANULAR_PYTHON=.cache/venv/bin/python";

/// The local path of a `file://` artifact link (percent-escapes decoded).
pub fn file_url_path(url: &str) -> Result<PathBuf> {
    let rest = url.strip_prefix("file://").ok_or_else(|| {
        Error::new(format!(
            "artifact link {url:?} is not a file:// URL (leave GRANULAR_ARTIFACT_BASE_URL \
             unset for local file links)"
        ))
    })?;
    // file:///path or file://localhost/path
    let path = rest.strip_prefix("localhost").unwrap_or(rest);
    if !path.starts_with('/') {
        return Err(Error::new(format!(
            "artifact link {url:?} does not name an absolute local path"
        )));
    }
    percent_decode(path)
        .map(PathBuf::from)
        .ok_or_else(|| Error::new(format!("artifact link {url:?} has a bad %-escape")))
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The Python that has the `perfetto` package: `$GRANULAR_PYTHON` or `python3`.
pub fn python() -> PathBuf {
    let Some(configured) = std::env::var_os(PYTHON_ENV) else {
        return PathBuf::from("python3");
    };
    let configured = PathBuf::from(configured);
    if configured.is_relative() && configured.components().count() > 1 {
        workspace_root().join(configured)
    } else {
        configured
    }
}

/// Decodes the Perfetto trace at `path` with the official schema and
/// returns check_perfetto.py's JSON summary (tracks, slices, highlighted
/// slices, unknown fields, structural errors...). Fails when the file is not
/// a `perfetto.protos.Trace` at all, or the Python lacks the package.
pub fn check_perfetto(path: &Path) -> Result<Value> {
    let script = workspace_root().join("bridge/tests/support/check_perfetto.py");
    let python = python();
    let output = Command::new(&python)
        .arg(&script)
        .arg(path)
        .output()
        .map_err(|e| {
            Error::new(format!(
                "cannot run {} {}: {e}; {INSTALL_HINT}",
                python.display(),
                script.display()
            ))
        })?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    match output.status.code() {
        Some(0) => {}
        Some(3) => {
            return Err(Error::new(format!(
                "{} lacks the perfetto package ({stderr}); {INSTALL_HINT}",
                python.display()
            )));
        }
        _ => {
            return Err(Error::new(format!(
                "check_perfetto.py failed on {} ({}): {stderr}",
                path.display(),
                output.status
            )));
        }
    }
    serde_json::from_slice(&output.stdout).map_err(|e| {
        Error::new(format!(
            "check_perfetto.py printed no JSON for {} ({e}): {stderr}",
            path.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_urls_become_paths() {
        assert_eq!(
            file_url_path("file:///tmp/a%20b/x.perfetto-trace"),
            Ok(PathBuf::from("/tmp/a b/x.perfetto-trace"))
        );
        assert_eq!(
            file_url_path("file://localhost/tmp/x"),
            Ok(PathBuf::from("/tmp/x"))
        );
        assert!(file_url_path("https://artifacts.example/x").is_err());
        assert!(file_url_path("file://host/x").is_err());
        assert!(file_url_path("file:///tmp/%zz").is_err());
    }
}

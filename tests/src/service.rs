//! What [`crate::jaeger`] and [`crate::collector`] share about running a
//! prebuilt service binary: finding it, starting it on free ports (retrying
//! when a port was grabbed meanwhile), waiting for its ports, and talking
//! HTTP to it.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::process::Process;
use crate::{Error, Result, workspace_root};

/// How long a service gets to become ready.
pub(crate) const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Attempts to start when another process grabbed a port we picked.
const START_ATTEMPTS: usize = 3;

/// A prebuilt binary of a service: where to find it and how to explain its absence.
pub(crate) struct Binary<'a> {
    /// Variable that overrides the path.
    pub env: &'a str,
    /// File name under `<repo>/.cache/bin`.
    pub file: &'a str,
    /// Name in messages, e.g. "Jaeger".
    pub label: &'a str,
    /// Script (relative to the repo) that builds it into `.cache/bin`.
    pub build_script: &'a str,
    /// What `env` may point at, e.g. "a Jaeger v2 binary".
    pub kind: &'a str,
    /// Appended to the message when `env` names a missing file.
    pub env_missing_note: &'a str,
}

impl Binary<'_> {
    /// `$env`, else `<repo>/.cache/bin/<file>`. Fails, saying how to get it,
    /// if absent.
    pub(crate) fn locate(&self) -> Result<PathBuf> {
        let env = self.env;
        if let Some(path) = std::env::var_os(env) {
            let path = PathBuf::from(path);
            return if path.is_file() {
                Ok(path)
            } else {
                Err(Error::new(format!(
                    "{env}={} does not exist{}",
                    path.display(),
                    self.env_missing_note
                )))
            };
        }
        let path = workspace_root().join(".cache/bin").join(self.file);
        if path.is_file() {
            Ok(path)
        } else {
            Err(Error::new(format!(
                "no {} binary at {}: run {} first (needs Go; the first build takes minutes), \
                 or point {env} at {}",
                self.label,
                path.display(),
                self.build_script,
                self.kind
            )))
        }
    }
}

/// Calls `start_once` (which picks fresh free ports each time) until it
/// succeeds, fails for another reason than a port taken meanwhile, or has
/// been tried [`START_ATTEMPTS`] times.
pub(crate) fn start_with_retries<T>(mut start_once: impl FnMut() -> Result<T>) -> Result<T> {
    let mut attempt = 1;
    loop {
        match start_once() {
            Err(e)
                if attempt < START_ATTEMPTS && e.to_string().contains("address already in use") =>
            {
                attempt += 1;
            }
            result => return result,
        }
    }
}

/// Waits, up to [`READY_TIMEOUT`] each, until `process` accepts TCP
/// connections on every loopback port of `ports`.
pub(crate) fn wait_for_loopback_ports(process: &mut Process, ports: &[u16]) -> Result<()> {
    for &port in ports {
        process.wait_for_port(SocketAddr::from((Ipv4Addr::LOCALHOST, port)), READY_TIMEOUT)?;
    }
    Ok(())
}

//! `demo-service` configuration from `DEMO_*` environment variables.
//!
//! Read once at start-up, before the runtime exists (the worker and blocking-pool sizes shape
//! it), and refused with a message naming the variable, its value and the expected form, so a
//! typo in a test harness fails loudly instead of silently running a different demo.

use std::fmt;
use std::net::SocketAddr;

use crate::pathology::PathologyKind;
use crate::telemetry::Telemetry;

/// What `demo-service` was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConfig {
    /// `DEMO_LISTEN`: address to bind (default `127.0.0.1:0`, an ephemeral port).
    pub listen: SocketAddr,
    /// `DEMO_WORKERS`: tokio worker threads (default 2).
    pub workers: usize,
    /// `DEMO_MAX_BLOCKING`: blocking-pool threads (default 4), small so `spawn_blocking` queues.
    pub max_blocking: usize,
    /// `DEMO_PATHOLOGY`: pathology of requests that do not choose one (default `none`).
    pub pathology: PathologyKind,
    /// `DEMO_DOWNSTREAM_URL`: base URL of the downstream hop; `None` means this very process.
    pub downstream_url: Option<String>,
    /// `DEMO_TELEMETRY`: the telemetry stack (default `granular`; see [`crate::telemetry`]).
    pub telemetry: Telemetry,
}

/// A `DEMO_*` variable with a value we cannot use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    var: &'static str,
    value: String,
    expected: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}={:?} is invalid: expected {}",
            self.var, self.value, self.expected
        )
    }
}

impl std::error::Error for ConfigError {}

impl ServiceConfig {
    /// Reads the process environment. A value that is not UTF-8 is reported like any bad value.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|var| std::env::var_os(var).map(|v| v.to_string_lossy().into_owned()))
    }

    /// Reads the variables through `lookup`, so tests need not touch the process environment.
    /// Empty values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |var| lookup(var).filter(|v| !v.is_empty());
        let invalid = |var, value: String, expected: &str| ConfigError {
            var,
            value,
            expected: expected.to_owned(),
        };
        let count = |var, default, max: usize| match get(var) {
            None => Ok(default),
            Some(v) => match v.parse::<usize>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(invalid(var, v, &format!("a whole number from 1 to {max}"))),
            },
        };

        let listen = match get("DEMO_LISTEN") {
            None => SocketAddr::from(([127, 0, 0, 1], 0)),
            Some(v) => v.parse().map_err(|_| {
                invalid(
                    "DEMO_LISTEN",
                    v,
                    "an IP:PORT socket address such as 127.0.0.1:8080",
                )
            })?,
        };
        let workers = count("DEMO_WORKERS", 2, 256)?;
        let max_blocking = count("DEMO_MAX_BLOCKING", 4, 1024)?;
        let pathology = match get("DEMO_PATHOLOGY") {
            None => PathologyKind::None,
            Some(v) => v.parse().map_err(|_| {
                let expected = format!("one of {}", PathologyKind::valid_names());
                invalid("DEMO_PATHOLOGY", v, &expected)
            })?,
        };
        let downstream_url = match get("DEMO_DOWNSTREAM_URL") {
            None => None,
            Some(v) => match reqwest::Url::parse(&v) {
                Ok(url) if url.scheme() == "http" && url.has_host() => Some(v),
                _ => {
                    return Err(invalid(
                        "DEMO_DOWNSTREAM_URL",
                        v,
                        "an http:// base URL such as http://127.0.0.1:8080",
                    ));
                }
            },
        };
        let telemetry = match get("DEMO_TELEMETRY") {
            None => Telemetry::Granular,
            Some(v) => v
                .parse()
                .map_err(|expected: String| invalid("DEMO_TELEMETRY", v, &expected))?,
        };
        Ok(Self {
            listen,
            workers,
            max_blocking,
            pathology,
            downstream_url,
            telemetry,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<ServiceConfig, ConfigError> {
        ServiceConfig::from_lookup(|k| {
            vars.iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn defaults() {
        let c = config(&[]).expect("defaults are valid");
        assert_eq!(c.listen.to_string(), "127.0.0.1:0");
        assert_eq!((c.workers, c.max_blocking), (2, 4));
        assert_eq!(c.pathology, PathologyKind::None);
        assert_eq!(c.downstream_url, None);
        assert_eq!(c.telemetry, Telemetry::Granular);
    }

    #[test]
    fn values() {
        let c = config(&[
            ("DEMO_LISTEN", "0.0.0.0:8080"),
            ("DEMO_WORKERS", "4"),
            ("DEMO_MAX_BLOCKING", "1"),
            ("DEMO_PATHOLOGY", "spawn_blocking"),
            ("DEMO_DOWNSTREAM_URL", "http://127.0.0.1:9000"),
            ("DEMO_TELEMETRY", "otel"),
            ("DEMO_UNRELATED", "x"),
        ])
        .expect("valid values");
        assert_eq!(c.listen.port(), 8080);
        assert_eq!((c.workers, c.max_blocking), (4, 1));
        assert_eq!(c.pathology, PathologyKind::SpawnBlocking);
        assert_eq!(c.downstream_url.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(c.telemetry, Telemetry::Otel);
        assert_eq!(config(&[("DEMO_WORKERS", "")]).map(|c| c.workers), Ok(2));
    }

    #[test]
    fn errors_name_variable_value_and_form() {
        for (var, value, expected) in [
            ("DEMO_LISTEN", "localhost", "IP:PORT"),
            ("DEMO_WORKERS", "0", "from 1 to 256"),
            ("DEMO_WORKERS", "two", "whole number"),
            ("DEMO_MAX_BLOCKING", "-3", "whole number"),
            ("DEMO_PATHOLOGY", "slow", "spawn_blocking"),
            ("DEMO_DOWNSTREAM_URL", "https://example.com", "http://"),
            ("DEMO_DOWNSTREAM_URL", "127.0.0.1:9000", "http://"),
            ("DEMO_TELEMETRY", "otlp", "granular, otel, logs, none"),
        ] {
            let err = config(&[(var, value)])
                .expect_err("invalid value")
                .to_string();
            assert!(err.starts_with(&format!("{var}={value:?}")), "{err}");
            assert!(err.contains(expected), "{err}");
        }
    }
}

//! Configuration: a builder for code, `GRANULAR_*` environment variables for operators.
//!
//! Every variable, its default and its form is listed in the README's table; the defaults are
//! the named constants below. A bad value is an error naming the variable, the value and the
//! expected form.

use std::path::PathBuf;
use std::time::Duration;

use crate::recorder::RecorderSize;
use crate::slo::SloRules;

pub const DEFAULT_SLO: &str = "*=500ms";
pub const DEFAULT_MAX_ENRICH_PER_SEC: u32 = 50;
pub const DEFAULT_MAX_EVENTS: usize = 32;
pub const DEFAULT_OS_SAMPLE_HZ: u32 = 1000;
pub const DEFAULT_QUEUE: usize = 4096;
pub const DEFAULT_ARTIFACT_MAX_MB: u64 = 256;
pub const DEFAULT_ARTIFACTS_PER_SEC: u32 = 10;
pub const DEFAULT_ARTIFACT_RETENTION: Duration = Duration::from_secs(3600);
pub const DEFAULT_HOLD_SPANS: usize = 100_000;

/// Which traces leave the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleMode {
    /// Every span is exported; violators carry the breakdown.
    All,
    /// Only traces with a violating span (plus the baseline fraction) are exported.
    Violations,
}

/// How much runtime detail a judged span carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    /// Attributes only.
    Summary,
    /// Attributes and span events.
    Events,
    /// Attributes, span events and synthetic child spans.
    Spans,
}

/// Where artifacts (Perfetto timelines) go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArtifactSink {
    None,
    /// A local directory (one host).
    Dir(PathBuf),
    /// An OTLP log record linked to the span (many hosts; the Collector stores it).
    Otlp,
}

/// Granular's configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub enabled: bool,
    pub slo: SloRules,
    pub errors_violate: bool,
    pub sample: SampleMode,
    pub baseline: f64,
    pub max_enrich_per_sec: u32,
    pub detail: Detail,
    pub max_events: usize,
    pub recorder: RecorderSize,
    pub os_sample_hz: u32,
    /// Use perf context-switch records where permitted.
    pub perf: bool,
    pub queue: usize,
    pub hold_spans: usize,
    pub artifacts: ArtifactSink,
    pub artifact_base_url: Option<String>,
    pub artifact_max_bytes: u64,
    /// Timelines built per second at most (the slowest spans of each batch first).
    pub artifacts_per_sec: u32,
    pub artifact_retention: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            enabled: true,
            slo: SloRules::parse(DEFAULT_SLO).unwrap_or_default(),
            errors_violate: true,
            sample: SampleMode::All,
            baseline: 0.0,
            max_enrich_per_sec: DEFAULT_MAX_ENRICH_PER_SEC,
            detail: Detail::Events,
            max_events: DEFAULT_MAX_EVENTS,
            recorder: RecorderSize::default(),
            os_sample_hz: DEFAULT_OS_SAMPLE_HZ,
            perf: true,
            queue: DEFAULT_QUEUE,
            hold_spans: DEFAULT_HOLD_SPANS,
            artifacts: ArtifactSink::Dir(std::env::temp_dir().join("granular-artifacts")),
            artifact_base_url: None,
            artifact_max_bytes: DEFAULT_ARTIFACT_MAX_MB << 20,
            artifacts_per_sec: DEFAULT_ARTIFACTS_PER_SEC,
            artifact_retention: DEFAULT_ARTIFACT_RETENTION,
        }
    }
}

/// A `GRANULAR_*` (or `OTEL_*`) variable with a value Granular cannot use.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    pub variable: String,
    pub value: String,
    pub expected: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}={:?} is invalid: expected {}",
            self.variable, self.value, self.expected
        )
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads the process environment.
    ///
    /// A `GRANULAR_*` variable whose value is not UTF-8 is an error naming it, not unset.
    pub fn from_env() -> Result<Config, ConfigError> {
        if let Some((name, value)) = std::env::vars_os().find_map(|(k, v)| {
            let name = k.to_str()?.strip_prefix("GRANULAR_").map(|_| k.clone())?;
            v.to_str().is_none().then_some((name, v))
        }) {
            return Err(ConfigError {
                variable: name.to_string_lossy().into_owned(),
                value: value.to_string_lossy().into_owned(),
                expected: "a UTF-8 value".into(),
            });
        }
        Config::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads variables through `get` (tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let mut c = Config::default();
        let var = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let bad = |name: &str, value: &str, expected: &str| ConfigError {
            variable: name.into(),
            value: value.into(),
            expected: expected.into(),
        };
        if let Some(v) = var("GRANULAR_ENABLED") {
            c.enabled =
                parse_bool(&v).ok_or_else(|| bad("GRANULAR_ENABLED", &v, "true or false"))?;
        }
        // Read by the clock at its calibration; checked here so that a typo is an error.
        if let Some(v) = var("GRANULAR_CLOCK") {
            if !matches!(v.trim(), "auto" | "monotonic") {
                return Err(bad("GRANULAR_CLOCK", &v, "auto or monotonic"));
            }
        }
        if let Some(v) = var("GRANULAR_SLO") {
            c.slo = SloRules::parse(&v).map_err(|e| bad("GRANULAR_SLO", &v, &e.to_string()))?;
        }
        if let Some(v) = var("GRANULAR_ERRORS_VIOLATE") {
            c.errors_violate = parse_bool(&v)
                .ok_or_else(|| bad("GRANULAR_ERRORS_VIOLATE", &v, "true or false"))?;
        }
        if let Some(v) = var("GRANULAR_SAMPLE") {
            c.sample = match v.trim() {
                "all" => SampleMode::All,
                "violations" => SampleMode::Violations,
                _ => return Err(bad("GRANULAR_SAMPLE", &v, "all or violations")),
            };
        }
        if let Some(v) = var("GRANULAR_BASELINE") {
            c.baseline = v
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|f| (0.0..=1.0).contains(f))
                .ok_or_else(|| {
                    bad(
                        "GRANULAR_BASELINE",
                        &v,
                        "a fraction between 0 and 1, e.g. 0.01",
                    )
                })?;
        }
        let num = |name: &str, expected: &str| -> Result<Option<u64>, ConfigError> {
            var(name)
                .map(|v| v.trim().parse::<u64>().map_err(|_| bad(name, &v, expected)))
                .transpose()
        };
        if let Some(n) = num(
            "GRANULAR_MAX_ENRICH_PER_SEC",
            "a whole number of spans per second, e.g. 50",
        )? {
            c.max_enrich_per_sec = n.min(u64::from(u32::MAX)) as u32;
        }
        if let Some(v) = var("GRANULAR_DETAIL") {
            c.detail = match v.trim() {
                "summary" => Detail::Summary,
                "events" => Detail::Events,
                "spans" => Detail::Spans,
                _ => return Err(bad("GRANULAR_DETAIL", &v, "summary, events or spans")),
            };
        }
        if let Some(n) = num(
            "GRANULAR_MAX_EVENTS",
            "a whole number of span events, at most 128",
        )? {
            if n > 128 {
                return Err(bad(
                    "GRANULAR_MAX_EVENTS",
                    &n.to_string(),
                    "a whole number of span events, at most 128",
                ));
            }
            c.max_events = n as usize;
        }
        if let Some(n) = num("GRANULAR_RECORDER_MB", "a whole number of MiB, e.g. 128")? {
            if n == 0 {
                return Err(bad(
                    "GRANULAR_RECORDER_MB",
                    "0",
                    "a whole number of MiB, at least 1",
                ));
            }
            c.recorder.total_bytes = (n as usize) << 20;
        }
        if let Some(n) = num(
            "GRANULAR_RING_KB",
            "a whole number of KiB per worker thread, e.g. 16384",
        )? {
            if n < 4 {
                return Err(bad(
                    "GRANULAR_RING_KB",
                    &n.to_string(),
                    "a whole number of KiB per thread, at least 4",
                ));
            }
            c.recorder.ring_bytes = (n as usize) << 10;
        }
        if c.recorder.ring_bytes > c.recorder.total_bytes {
            return Err(bad(
                "GRANULAR_RING_KB",
                &(c.recorder.ring_bytes >> 10).to_string(),
                "a ring size no larger than GRANULAR_RECORDER_MB",
            ));
        }
        if let Some(n) = num(
            "GRANULAR_OS_SAMPLE_HZ",
            "samples per second, 0 to turn the OS sampler off, at most 10000",
        )? {
            if n > 10_000 {
                return Err(bad(
                    "GRANULAR_OS_SAMPLE_HZ",
                    &n.to_string(),
                    "samples per second, at most 10000",
                ));
            }
            c.os_sample_hz = n as u32;
        }
        if let Some(v) = var("GRANULAR_PERF") {
            c.perf = match v.trim() {
                "auto" => true,
                "off" => false,
                _ => return Err(bad("GRANULAR_PERF", &v, "auto or off")),
            };
        }
        if let Some(n) = num("GRANULAR_QUEUE", "a whole number of spans, e.g. 4096")? {
            c.queue = (n as usize).max(1);
        }
        if let Some(n) = num(
            "GRANULAR_HOLD_SPANS",
            "a whole number of spans, e.g. 100000",
        )? {
            c.hold_spans = (n as usize).max(1);
        }
        if let Some(v) = var("GRANULAR_ARTIFACTS") {
            c.artifacts = match v.trim() {
                "none" => ArtifactSink::None,
                "dir" => c.artifacts.clone(),
                "otlp" => ArtifactSink::Otlp,
                _ => {
                    return Err(bad("GRANULAR_ARTIFACTS", &v, "none, dir or otlp"));
                }
            };
        }
        if let Some(v) = var("GRANULAR_ARTIFACT_DIR") {
            if matches!(c.artifacts, ArtifactSink::Dir(_)) {
                c.artifacts = ArtifactSink::Dir(PathBuf::from(v));
            }
        }
        c.artifact_base_url = var("GRANULAR_ARTIFACT_BASE_URL");
        if let Some(n) = num(
            "GRANULAR_ARTIFACT_MAX_MB",
            "a whole number of MiB, e.g. 256",
        )? {
            c.artifact_max_bytes = n << 20;
        }
        if let Some(n) = num(
            "GRANULAR_ARTIFACTS_PER_SEC",
            "a whole number of timelines per second, e.g. 10 (0: none)",
        )? {
            c.artifacts_per_sec = n.min(u64::from(u32::MAX)) as u32;
        }
        if let Some(v) = var("GRANULAR_ARTIFACT_RETENTION") {
            c.artifact_retention = crate::slo::parse_duration(v.trim()).map_err(|_| {
                bad(
                    "GRANULAR_ARTIFACT_RETENTION",
                    &v,
                    "a duration such as 3600s or 1h",
                )
            })?;
        }
        Ok(c)
    }
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "on" | "yes" => Some(true),
        "0" | "false" | "off" | "no" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| m.get(k).cloned())
    }

    #[test]
    fn defaults_apply_when_unset() {
        let c = from(&[]).unwrap();
        assert_eq!(c.sample, SampleMode::All);
        assert_eq!(c.detail, Detail::Events);
        assert_eq!(c.max_events, DEFAULT_MAX_EVENTS);
    }

    #[test]
    fn values_are_read() {
        let c = from(&[
            ("GRANULAR_SLO", "GET /messages=100ms"),
            ("GRANULAR_SAMPLE", "violations"),
            ("GRANULAR_BASELINE", "0.05"),
            ("GRANULAR_DETAIL", "spans"),
            ("GRANULAR_RECORDER_MB", "8"),
            ("GRANULAR_RING_KB", "512"),
        ])
        .unwrap();
        assert_eq!(c.sample, SampleMode::Violations);
        assert_eq!(c.baseline, 0.05);
        assert_eq!(c.recorder.ring_bytes_for(true), 512 << 10);
        assert_eq!(c.recorder.ring_bytes_for(false), 64 << 10);
    }

    #[test]
    fn bad_values_name_variable_value_and_form() {
        let e = from(&[("GRANULAR_SAMPLE", "some")]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "GRANULAR_SAMPLE=\"some\" is invalid: expected all or violations"
        );
        let e = from(&[("GRANULAR_BASELINE", "2")]).unwrap_err();
        assert_eq!(e.variable, "GRANULAR_BASELINE");
        let e = from(&[("GRANULAR_SLO", "GET /x=fast")]).unwrap_err();
        assert!(e.to_string().contains("GET /x=fast"), "{e}");
        assert!(from(&[("GRANULAR_RING_KB", "99999999")]).is_err());
        let e = from(&[("GRANULAR_CLOCK", "sundial")]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "GRANULAR_CLOCK=\"sundial\" is invalid: expected auto or monotonic"
        );
        assert!(from(&[("GRANULAR_CLOCK", "monotonic")]).is_ok());
        let e = from(&[("GRANULAR_SLO", "*=1.5d")]).unwrap_err();
        assert!(
            e.to_string()
                .contains("has unit \"d\"; expected a number followed by us, ms, s, m or h"),
            "{e}"
        );
        assert!(from(&[("GRANULAR_SLO", "*=1.5h")]).is_ok());
        let e = from(&[("GRANULAR_SLO", "*=15")]).unwrap_err();
        assert!(e.to_string().contains("has no unit"), "{e}");
    }
}

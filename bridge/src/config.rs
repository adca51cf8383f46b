//! Configuration: a builder for code, `GRANULAR_*` environment variables for operators.
//!
//! Every variable, its default and its form is listed in the README's table; the defaults are
//! the named constants below. One parser reads them, each variable once, under two policies:
//! [`Config::from_env`] is strict (the first bad value is an error naming the variable, the
//! value and the expected form); [`Config::from_env_lenient`], what [`init`](crate::init)
//! uses, follows the OpenTelemetry specification: every bad value is reported and ignored,
//! its fallback used, so a typo never keeps a service from starting.

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
    /// Granular records and analyzes (`GRANULAR_ENABLED`, and not `OTEL_SDK_DISABLED`).
    /// Off: no recorder, no sampler thread, no perf events, runtime hooks return at once and
    /// spans are exported untouched.
    pub enabled: bool,
    /// `OTEL_SDK_DISABLED=true`: no telemetry at all; [`init`](crate::init) installs only
    /// the log output (env filter + fmt layer). Implies `enabled = false`.
    pub sdk_disabled: bool,
    /// The span exporter's protocol and compression ([`init`](crate::init)).
    pub otlp_traces: OtlpSignal,
    /// The artifact log exporter's (`GRANULAR_ARTIFACTS=otlp`).
    pub otlp_logs: OtlpSignal,
    /// The health metrics exporter's (`GRANULAR_METRICS`).
    pub otlp_metrics: OtlpSignal,
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
    /// Export Granular's health counters as OpenTelemetry metrics (`GRANULAR_METRICS`; off
    /// also with `OTEL_METRICS_EXPORTER=none`).
    pub metrics: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            enabled: true,
            sdk_disabled: false,
            otlp_traces: OtlpSignal::default(),
            otlp_logs: OtlpSignal::default(),
            otlp_metrics: OtlpSignal::default(),
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
            metrics: true,
        }
    }
}

/// A `GRANULAR_*` (or `OTEL_*`) variable with a value Granular cannot use.
///
/// [`Config::from_env`] returns the first as an error; [`Config::from_env_lenient`] (what
/// [`init`](crate::init) uses) collects them all, keeps `using` in place of each and goes on.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    pub variable: String,
    /// The value as set (a value that is not UTF-8 is shown lossily).
    pub value: String,
    pub expected: String,
    /// What Granular uses instead when it goes on (the default, or a wider variable's value).
    pub using: String,
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

impl ConfigError {
    /// The warning [`init`](crate::init) logs: the error and what is used instead.
    pub fn warning(&self) -> String {
        format!("{self}; using {} instead", self.using)
    }
}

impl std::error::Error for ConfigError {}

/// The transport of an OTLP exporter (`OTEL_EXPORTER_OTLP_[SIGNAL_]PROTOCOL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    Grpc,
    HttpProtobuf,
}

/// How an OTLP exporter compresses what it sends (`OTEL_EXPORTER_OTLP_[SIGNAL_]COMPRESSION`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpCompression {
    None,
    Gzip,
    Zstd,
}

/// One signal's OTLP exporter settings that Granular reads itself; the endpoint, headers and
/// timeout are read by `opentelemetry-otlp` from the same `OTEL_*` variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OtlpSignal {
    pub protocol: OtlpProtocol,
    pub compression: OtlpCompression,
}

impl Default for OtlpSignal {
    fn default() -> Self {
        OtlpSignal {
            protocol: OtlpProtocol::Grpc,
            compression: OtlpCompression::None,
        }
    }
}

/// Reads variables one at a time, each once, through a lookup that tells a value that is not
/// UTF-8 apart (`Err` with its lossy text). A bad value becomes a [`ConfigError`] and the
/// setting keeps its fallback; the caller decides whether errors are fatal.
struct Reader<'a> {
    get: &'a dyn Fn(&str) -> Option<Result<String, String>>,
    errors: Vec<ConfigError>,
}

impl Reader<'_> {
    /// `name`'s value parsed by `parse` (whose error is the expected form), `None` when the
    /// variable is unset or blank, or bad: then the error is kept with `using`, the fallback
    /// the caller keeps.
    fn read<T>(
        &mut self,
        name: &str,
        using: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let (value, parsed) = match (self.get)(name)? {
            Ok(v) if v.trim().is_empty() => return None,
            Ok(v) => {
                let parsed = parse(v.trim());
                (v, parsed)
            }
            Err(lossy) => (lossy, Err("a UTF-8 value".to_string())),
        };
        parsed
            .map_err(|expected| self.reject(name, &value, &expected, using))
            .ok()
    }

    fn reject(&mut self, name: &str, value: &str, expected: &str, using: &str) {
        self.errors.push(ConfigError {
            variable: name.into(),
            value: value.into(),
            expected: expected.into(),
            using: using.into(),
        });
    }

    /// A whole number, at least `min`, at most `max`.
    fn number(
        &mut self,
        name: &str,
        using: &str,
        expected: &str,
        min: u64,
        max: u64,
    ) -> Option<u64> {
        self.read(name, using, |v| {
            v.parse::<u64>()
                .ok()
                .filter(|n| (min..=max).contains(n))
                .ok_or_else(|| expected.to_string())
        })
    }

    /// A boolean in Granular's spelling (`true`/`false`, `1`/`0`, `on`/`off`, `yes`/`no`).
    fn flag(&mut self, name: &str, using: &str) -> Option<bool> {
        self.read(name, using, |v| {
            parse_bool(v).ok_or_else(|| "true or false".to_string())
        })
    }

    /// One of `choices` (value, setting).
    fn choice<T: Clone>(&mut self, name: &str, using: &str, choices: &[(&str, T)]) -> Option<T> {
        self.read(name, using, |v| {
            choices
                .iter()
                .find(|(text, _)| *text == v)
                .map(|(_, t)| t.clone())
                .ok_or_else(|| {
                    let names: Vec<&str> = choices.iter().map(|(text, _)| *text).collect();
                    match names.split_last() {
                        Some((last, [])) => last.to_string(),
                        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
                        None => String::new(),
                    }
                })
        })
    }

    /// An OTLP setting: the signal's variable, else the generic one, else `default`
    /// (`default_text` in a warning).
    fn otlp<T: Copy>(
        &mut self,
        setting: &str,
        signal: &str,
        generic: Option<T>,
        (default, default_text): (T, &str),
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> T {
        let var = format!("OTEL_EXPORTER_OTLP_{signal}_{setting}");
        let using = match generic {
            Some(_) => format!("OTEL_EXPORTER_OTLP_{setting}'s value"),
            None => default_text.to_string(),
        };
        self.read(&var, &using, parse)
            .or(generic)
            .unwrap_or(default)
    }
}

fn parse_protocol(v: &str) -> Result<OtlpProtocol, String> {
    match v {
        "grpc" => Ok(OtlpProtocol::Grpc),
        "http/protobuf" => Ok(OtlpProtocol::HttpProtobuf),
        _ => Err("grpc or http/protobuf (http/json is not supported)".into()),
    }
}

fn parse_compression(v: &str) -> Result<OtlpCompression, String> {
    match v.to_ascii_lowercase().as_str() {
        "none" => Ok(OtlpCompression::None),
        "gzip" => Ok(OtlpCompression::Gzip),
        "zstd" => Ok(OtlpCompression::Zstd),
        _ => Err("gzip, zstd or none".into()),
    }
}

impl Config {
    /// Reads the process environment, strictly: the first variable with a bad value is an
    /// error naming it, its value and the expected form. A value that is not UTF-8 is an
    /// error, not unset. For [`init_with`](crate::init_with).
    pub fn from_env() -> Result<Config, ConfigError> {
        strict(Config::from_env_lenient())
    }

    /// Reads the process environment as OpenTelemetry SDKs do: a bad value is reported (in
    /// the returned list, in the order read) and its fallback used, every other variable still
    /// applies. What [`init`](crate::init) uses; it logs each error as a warning.
    pub fn from_env_lenient() -> (Config, Vec<ConfigError>) {
        Config::read(&|k| {
            std::env::var_os(k).map(|v| {
                v.into_string()
                    .map_err(|v| v.to_string_lossy().into_owned())
            })
        })
    }

    /// [`Config::from_env`] through `get` (tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        strict(Config::from_lookup_lenient(get))
    }

    /// [`Config::from_env_lenient`] through `get`.
    pub fn from_lookup_lenient(get: impl Fn(&str) -> Option<String>) -> (Config, Vec<ConfigError>) {
        Config::read(&|k| get(k).map(Ok))
    }

    /// The one parser behind both policies: every variable read once, in the README's order.
    fn read(get: &dyn Fn(&str) -> Option<Result<String, String>>) -> (Config, Vec<ConfigError>) {
        let mut r = Reader {
            get,
            errors: Vec::new(),
        };
        // The OpenTelemetry specification's boolean: only "true" (any case) is true; anything
        // else but "false" is reported and read as false.
        let sdk_disabled = r
            .read("OTEL_SDK_DISABLED", "false", |v| {
                match v.to_ascii_lowercase().as_str() {
                    "true" => Ok(true),
                    "false" => Ok(false),
                    _ => Err("true or false".into()),
                }
            })
            .unwrap_or(false);
        let mut c = Config {
            sdk_disabled,
            ..Config::default()
        };
        let grpc = (OtlpProtocol::Grpc, "grpc");
        let generic = r.read("OTEL_EXPORTER_OTLP_PROTOCOL", grpc.1, parse_protocol);
        c.otlp_traces.protocol = r.otlp("PROTOCOL", "TRACES", generic, grpc, parse_protocol);
        c.otlp_logs.protocol = r.otlp("PROTOCOL", "LOGS", generic, grpc, parse_protocol);
        c.otlp_metrics.protocol = r.otlp("PROTOCOL", "METRICS", generic, grpc, parse_protocol);
        let none = (OtlpCompression::None, "none");
        let generic = r.read("OTEL_EXPORTER_OTLP_COMPRESSION", none.1, parse_compression);
        c.otlp_traces.compression =
            r.otlp("COMPRESSION", "TRACES", generic, none, parse_compression);
        c.otlp_logs.compression = r.otlp("COMPRESSION", "LOGS", generic, none, parse_compression);
        c.otlp_metrics.compression =
            r.otlp("COMPRESSION", "METRICS", generic, none, parse_compression);

        c.enabled = r.flag("GRANULAR_ENABLED", "true").unwrap_or(true) && !c.sdk_disabled;
        // Read by the clock when it is first used; checked here so that a typo is reported.
        // The clock itself takes anything but "monotonic" as auto.
        r.choice("GRANULAR_CLOCK", "auto", &[("auto", ()), ("monotonic", ())]);
        if let Some(slo) = r.read("GRANULAR_SLO", DEFAULT_SLO, |v| {
            SloRules::parse(v).map_err(|e| e.to_string())
        }) {
            c.slo = slo;
        }
        if let Some(b) = r.flag("GRANULAR_ERRORS_VIOLATE", "true") {
            c.errors_violate = b;
        }
        if let Some(s) = r.choice(
            "GRANULAR_SAMPLE",
            "all",
            &[
                ("all", SampleMode::All),
                ("violations", SampleMode::Violations),
            ],
        ) {
            c.sample = s;
        }
        if let Some(f) = r.read("GRANULAR_BASELINE", "0", |v| {
            v.parse::<f64>()
                .ok()
                .filter(|f| (0.0..=1.0).contains(f))
                .ok_or_else(|| "a fraction between 0 and 1, e.g. 0.01".to_string())
        }) {
            c.baseline = f;
        }
        if let Some(n) = r.number(
            "GRANULAR_MAX_ENRICH_PER_SEC",
            &DEFAULT_MAX_ENRICH_PER_SEC.to_string(),
            "a whole number of spans per second, e.g. 50",
            0,
            u64::MAX,
        ) {
            c.max_enrich_per_sec = n.min(u64::from(u32::MAX)) as u32;
        }
        if let Some(d) = r.choice(
            "GRANULAR_DETAIL",
            "events",
            &[
                ("summary", Detail::Summary),
                ("events", Detail::Events),
                ("spans", Detail::Spans),
            ],
        ) {
            c.detail = d;
        }
        if let Some(n) = r.number(
            "GRANULAR_MAX_EVENTS",
            &DEFAULT_MAX_EVENTS.to_string(),
            "a whole number of span events, at most 128",
            0,
            128,
        ) {
            c.max_events = n as usize;
        }
        let default_size = RecorderSize::default();
        if let Some(n) = r.number(
            "GRANULAR_RECORDER_MB",
            &(default_size.total_bytes >> 20).to_string(),
            "a whole number of MiB, at least 1, e.g. 128",
            1,
            1 << 20,
        ) {
            c.recorder.total_bytes = (n as usize) << 20;
        }
        // A ring larger than the whole recorder could never be allocated: the default is
        // capped at the total without a word, a ring asked for is reported.
        let ring_using = format!(
            "{} KiB",
            default_size.ring_bytes.min(c.recorder.total_bytes) >> 10
        );
        c.recorder.ring_bytes = default_size.ring_bytes.min(c.recorder.total_bytes);
        let total_kb = (c.recorder.total_bytes >> 10) as u64;
        if let Some(n) = r.number(
            "GRANULAR_RING_KB",
            &ring_using,
            &format!(
                "a whole number of KiB per worker thread, at least 4 and at most GRANULAR_RECORDER_MB ({total_kb} KiB), e.g. 16384"
            ),
            4,
            total_kb,
        ) {
            c.recorder.ring_bytes = (n as usize) << 10;
        }
        if let Some(n) = r.number(
            "GRANULAR_OS_SAMPLE_HZ",
            &DEFAULT_OS_SAMPLE_HZ.to_string(),
            "samples per second, 0 to turn the OS sampler off, at most 10000",
            0,
            10_000,
        ) {
            c.os_sample_hz = n as u32;
        }
        if let Some(p) = r.choice("GRANULAR_PERF", "auto", &[("auto", true), ("off", false)]) {
            c.perf = p;
        }
        if let Some(n) = r.number(
            "GRANULAR_QUEUE",
            &DEFAULT_QUEUE.to_string(),
            "a whole number of spans, e.g. 4096",
            0,
            u64::MAX,
        ) {
            c.queue = (n as usize).max(1);
        }
        if let Some(n) = r.number(
            "GRANULAR_HOLD_SPANS",
            &DEFAULT_HOLD_SPANS.to_string(),
            "a whole number of spans, e.g. 100000",
            0,
            u64::MAX,
        ) {
            c.hold_spans = (n as usize).max(1);
        }
        if let Some(Some(sink)) = r.choice(
            "GRANULAR_ARTIFACTS",
            "dir",
            &[
                ("none", Some(ArtifactSink::None)),
                ("dir", None),
                ("otlp", Some(ArtifactSink::Otlp)),
            ],
        ) {
            c.artifacts = sink;
        }
        let dir = r.read("GRANULAR_ARTIFACT_DIR", "the default directory", |v| {
            Ok(PathBuf::from(v))
        });
        if let (Some(dir), ArtifactSink::Dir(_)) = (dir, &c.artifacts) {
            c.artifacts = ArtifactSink::Dir(dir);
        }
        c.artifact_base_url = r.read("GRANULAR_ARTIFACT_BASE_URL", "the default", |v| {
            Ok(v.to_string())
        });
        if let Some(n) = r.number(
            "GRANULAR_ARTIFACT_MAX_MB",
            &DEFAULT_ARTIFACT_MAX_MB.to_string(),
            "a whole number of MiB, e.g. 256",
            0,
            1 << 40,
        ) {
            c.artifact_max_bytes = n << 20;
        }
        if let Some(n) = r.number(
            "GRANULAR_ARTIFACTS_PER_SEC",
            &DEFAULT_ARTIFACTS_PER_SEC.to_string(),
            "a whole number of timelines per second, e.g. 10 (0: none)",
            0,
            u64::MAX,
        ) {
            c.artifacts_per_sec = n.min(u64::from(u32::MAX)) as u32;
        }
        if let Some(d) = r.read(
            "GRANULAR_ARTIFACT_RETENTION",
            &format!("{}s", DEFAULT_ARTIFACT_RETENTION.as_secs()),
            |v| {
                crate::slo::parse_duration(v)
                    .map_err(|e| format!("a duration such as 3600s or 1h ({e})"))
            },
        ) {
            c.artifact_retention = d;
        }
        if let Some(m) = r.flag("GRANULAR_METRICS", "on") {
            c.metrics = m;
        }
        // The OpenTelemetry variable naming the process's metric exporters: `none` turns
        // Granular's off too; any other value keeps OTLP, the only exporter Granular has.
        let no_metrics = r.read("OTEL_METRICS_EXPORTER", "otlp", |v| {
            Ok(v.split(',').any(|e| e.trim() == "none"))
        });
        if no_metrics == Some(true) {
            c.metrics = false;
        }
        (c, r.errors)
    }
}

/// The strict policy over the lenient reading: the first error, if any.
fn strict((c, mut errors): (Config, Vec<ConfigError>)) -> Result<Config, ConfigError> {
    if errors.is_empty() {
        Ok(c)
    } else {
        Err(errors.swap_remove(0))
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

    fn lenient(pairs: &[(&str, &str)]) -> (Config, Vec<ConfigError>) {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup_lenient(|k| m.get(k).cloned())
    }

    /// Issue #17: a typo made init() fail and kept the service from starting. The lenient
    /// path reports every bad value with its fallback and applies the good ones.
    #[test]
    fn lenient_reports_each_bad_value_uses_its_fallback_and_keeps_the_rest() {
        let (c, errors) = lenient(&[
            ("GRANULAR_SLO", "*=fast"),
            ("GRANULAR_SAMPLE", "violations"),
            ("GRANULAR_CLOCK", "sundial"),
            ("GRANULAR_MAX_EVENTS", "500"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "brotli"),
        ]);
        assert_eq!(c.sample, SampleMode::Violations, "good values still apply");
        assert_eq!(c.slo, Config::default().slo);
        assert_eq!(c.max_events, DEFAULT_MAX_EVENTS);
        assert_eq!(c.otlp_traces.compression, OtlpCompression::None);
        let warnings: Vec<String> = errors.iter().map(ConfigError::warning).collect();
        assert_eq!(
            warnings,
            [
                "OTEL_EXPORTER_OTLP_COMPRESSION=\"brotli\" is invalid: expected gzip, zstd or none; using none instead",
                "GRANULAR_CLOCK=\"sundial\" is invalid: expected auto or monotonic; using auto instead",
                "GRANULAR_SLO=\"*=fast\" is invalid: expected SLO rule \"*=fast\": duration \"fast\" does not start with a number; expected a number followed by us, ms, s, m or h (e.g. 250us, 100ms, 1.5s); expected PATTERN=DURATION, e.g. \"GET /messages=100ms\", \"route:/messages=100ms\" or \"*=500ms\"; using *=500ms instead",
                "GRANULAR_MAX_EVENTS=\"500\" is invalid: expected a whole number of span events, at most 128; using 32 instead",
            ]
        );
        // The strict path parses the same way and stops at the first.
        let strict = from(&[("GRANULAR_SLO", "*=fast"), ("GRANULAR_CLOCK", "sundial")]);
        assert_eq!(strict.unwrap_err().variable, "GRANULAR_CLOCK");
    }

    /// Issue #17: a non-UTF-8 GRANULAR_SLO was treated as unset with no word.
    #[test]
    fn a_value_that_is_not_utf8_is_reported_on_both_paths() {
        let get = |k: &str| match k {
            "GRANULAR_SLO" => Some(Err("*=\u{fffd}ms".to_string())),
            "GRANULAR_DETAIL" => Some(Ok("spans".to_string())),
            _ => None,
        };
        let (c, errors) = Config::read(&get);
        assert_eq!(c.detail, Detail::Spans);
        assert_eq!(errors.len(), 1);
        assert_eq!(
            errors[0].warning(),
            "GRANULAR_SLO=\"*=\u{fffd}ms\" is invalid: expected a UTF-8 value; using *=500ms instead"
        );
        assert_eq!(strict(Config::read(&get)).unwrap_err(), errors[0]);
    }

    /// Issue #17: OTEL_SDK_DISABLED=true was ignored. The specification's boolean: "true" in
    /// any case disables, anything but "false" is reported and read as false.
    #[test]
    fn otel_sdk_disabled_follows_the_specification() {
        let c = from(&[("OTEL_SDK_DISABLED", "TRUE")]).unwrap();
        assert!(c.sdk_disabled && !c.enabled);
        let c = from(&[("OTEL_SDK_DISABLED", "false")]).unwrap();
        assert!(!c.sdk_disabled && c.enabled);
        let (c, errors) = lenient(&[("OTEL_SDK_DISABLED", "yes")]);
        assert!(!c.sdk_disabled && c.enabled);
        assert_eq!(errors[0].variable, "OTEL_SDK_DISABLED");
        let c = from(&[("GRANULAR_ENABLED", "false")]).unwrap();
        assert!(!c.sdk_disabled && !c.enabled);
    }

    #[test]
    fn health_metrics_are_on_unless_either_variable_turns_them_off() {
        assert!(from(&[]).unwrap().metrics);
        assert!(!from(&[("GRANULAR_METRICS", "off")]).unwrap().metrics);
        assert!(
            !from(&[("OTEL_METRICS_EXPORTER", "otlp,none")])
                .unwrap()
                .metrics
        );
        assert!(
            from(&[("OTEL_METRICS_EXPORTER", "prometheus")])
                .unwrap()
                .metrics
        );
        let (c, errors) = lenient(&[("GRANULAR_METRICS", "maybe")]);
        assert!(c.metrics, "a bad value keeps the default");
        assert_eq!(
            errors[0].to_string(),
            "GRANULAR_METRICS=\"maybe\" is invalid: expected true or false"
        );
    }

    #[test]
    fn otlp_settings_take_the_signal_variable_then_the_generic_one() {
        let c = from(&[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "GZIP"),
            ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "zstd"),
        ])
        .unwrap();
        assert_eq!(c.otlp_traces.protocol, OtlpProtocol::HttpProtobuf);
        assert_eq!(c.otlp_logs.protocol, OtlpProtocol::Grpc);
        assert_eq!(c.otlp_traces.compression, OtlpCompression::Zstd);
        assert_eq!(c.otlp_logs.compression, OtlpCompression::Gzip);
        let (c, errors) = lenient(&[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json"),
        ]);
        assert_eq!(c.otlp_traces.protocol, OtlpProtocol::HttpProtobuf);
        assert_eq!(
            errors[0].warning(),
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=\"http/json\" is invalid: expected grpc or \
             http/protobuf (http/json is not supported); using OTEL_EXPORTER_OTLP_PROTOCOL's \
             value instead"
        );
    }

    #[test]
    fn the_default_ring_fits_a_smaller_recorder_and_a_ring_asked_for_must() {
        let c = from(&[("GRANULAR_RECORDER_MB", "8")]).unwrap();
        assert_eq!(c.recorder.ring_bytes, 8 << 20);
        let (c, errors) = lenient(&[("GRANULAR_RECORDER_MB", "8"), ("GRANULAR_RING_KB", "16384")]);
        assert_eq!(c.recorder.ring_bytes, 8 << 20);
        assert_eq!(
            errors[0].warning(),
            "GRANULAR_RING_KB=\"16384\" is invalid: expected a whole number of KiB per worker \
             thread, at least 4 and at most GRANULAR_RECORDER_MB (8192 KiB), e.g. 16384; using \
             8192 KiB instead"
        );
    }
}

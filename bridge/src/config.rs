//! Configuration: a builder for code, `GRANULAR_*` environment variables for operators.
//!
//! Every variable, its default and its form is listed in the README's table; the defaults are
//! the named constants below. One parser reads them, each variable once, under two policies:
//! [`Config::from_env`] is strict (the first bad value is an error naming the variable, the
//! value and the expected form); [`Config::from_env_lenient`], what [`init`](fn@crate::init)
//! uses, follows the OpenTelemetry specification: every bad value is reported and ignored,
//! its fallback used, so a typo never keeps a service from starting.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::recorder::RecorderSize;
use crate::slo::SloRules;

mod env;

pub use env::ConfigError;
use env::{Reader, strict};

pub(crate) const DEFAULT_SLO: &str = "*=500ms";
pub(crate) const DEFAULT_MAX_ENRICH_PER_SEC: u32 = 50;
/// Off: on the service-overhead benchmark's saturated service, a twentieth of a CPU gave ~4
/// full analyses a second and cost 9-11 % of its throughput, its p99 about doubled
/// (docs/benchmarks.md); a user who needs culprits at saturation opts in.
pub(crate) const DEFAULT_FULL_ANALYSIS_CPU: f64 = 0.0;
pub(crate) const DEFAULT_MAX_EVENTS: usize = 32;
pub(crate) const DEFAULT_OS_SAMPLE_HZ: u32 = 1000;
pub(crate) const DEFAULT_WAIT_SAMPLE_HZ: u32 = 200;
pub(crate) const DEFAULT_QUEUE: usize = 4096;
pub(crate) const DEFAULT_ARTIFACT_MAX_MB: u64 = 256;
pub(crate) const DEFAULT_ARTIFACTS_PER_SEC: u32 = 10;
pub(crate) const DEFAULT_ARTIFACT_RETENTION: Duration = Duration::from_secs(3600);
pub(crate) const DEFAULT_HOLD_SPANS: usize = 100_000;

/// Which traces leave the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleMode {
    /// Every span is exported; violators carry the breakdown.
    All,
    /// Only traces with a violating span (plus the baseline fraction) are exported.
    Violations,
}

/// Where `all` mode's spans come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllFrom {
    /// tracing-opentelemetry builds every span on the request path.
    TracingOpentelemetry,
    /// Granular's own subscriber records them; a thread of Granular's rebuilds every trace
    /// from the recording (as `violations` mode rebuilds the traces it exports) and exports it.
    Recording,
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
    /// No artifacts.
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
    /// `OTEL_SDK_DISABLED=true`: no telemetry at all; [`init`](fn@crate::init) installs only
    /// the log output (env filter + fmt layer). Implies `enabled = false`.
    pub sdk_disabled: bool,
    /// The span exporter's protocol and compression ([`init`](fn@crate::init)).
    pub otlp_traces: OtlpSignal,
    /// The artifact log exporter's (`GRANULAR_ARTIFACTS=otlp`).
    pub otlp_logs: OtlpSignal,
    /// The health metrics exporter's (`GRANULAR_METRICS`).
    pub otlp_metrics: OtlpSignal,
    /// SLO rules, first match wins (`GRANULAR_SLO`).
    pub slo: SloRules,
    /// An error status counts as a violation (`GRANULAR_ERRORS_VIOLATE`).
    pub errors_violate: bool,
    /// Which traces leave the process (`GRANULAR_SAMPLE`).
    pub sample: SampleMode,
    /// Where `all` mode's spans come from (`GRANULAR_ALL_FROM`).
    pub all_from: AllFrom,
    /// Fraction 0–1 of healthy judged spans (or traces) also enriched, by trace id
    /// (`GRANULAR_BASELINE`).
    pub baseline: f64,
    /// Violating spans analyzed per second at most in `all` mode (`GRANULAR_MAX_ENRICH_PER_SEC`);
    /// `violations` mode analyzes every chosen trace, lightly past the analyzer's duty.
    pub max_enrich_per_sec: u32,
    /// Fraction 0–1 of one CPU that the full analyses of a busy service's violating spans may
    /// take (`GRANULAR_FULL_ANALYSIS_CPU`): when the analyzer is overloaded and analyzes
    /// lightly, a few spans per route per second still get the full analysis.
    pub full_analysis_cpu: f64,
    /// CPUs Granular's background threads run on (`GRANULAR_BACKGROUND_CPUS`): the analyzer,
    /// the full analyses, the debug endpoint's threads, the `violations` exporter. Empty:
    /// wherever the application's threads may.
    pub background_cpus: Vec<usize>,
    /// How much detail a judged span carries (`GRANULAR_DETAIL`).
    pub detail: Detail,
    /// Span events added per span, at most 128 (`GRANULAR_MAX_EVENTS`).
    pub max_events: usize,
    /// The recorder's memory (`GRANULAR_RECORDER_MB`, `GRANULAR_RING_KB`).
    pub recorder: RecorderSize,
    /// Schedstat samples per second of runtime threads; 0 turns schedstat off
    /// (`GRANULAR_OS_SAMPLE_HZ`).
    pub os_sample_hz: u32,
    /// Wait samples per second of a runtime thread blocked inside a request's work; 0 turns
    /// wait sampling off (`GRANULAR_WAIT_SAMPLE_HZ`).
    pub wait_sample_hz: u32,
    /// Use perf context-switch records where permitted.
    pub perf: bool,
    /// Spans waiting for the analyzer at most (`GRANULAR_QUEUE`).
    pub queue: usize,
    /// Spans held at most in `violations` mode behind tracing-opentelemetry
    /// (`GRANULAR_HOLD_SPANS`).
    pub hold_spans: usize,
    /// Where Perfetto timelines go (`GRANULAR_ARTIFACTS`, `GRANULAR_ARTIFACT_DIR`).
    pub artifacts: ArtifactSink,
    /// Base of the `granular.artifact` link (`GRANULAR_ARTIFACT_BASE_URL`); `None`: a
    /// `file://` path for a directory, the Collector extension's default address for OTLP.
    pub artifact_base_url: Option<String>,
    /// The artifact directory's size cap, bytes (`GRANULAR_ARTIFACT_MAX_MB`).
    pub artifact_max_bytes: u64,
    /// Timelines built per second at most (the slowest spans of each batch first).
    pub artifacts_per_sec: u32,
    /// Artifacts older than this are removed (`GRANULAR_ARTIFACT_RETENTION`).
    pub artifact_retention: Duration,
    /// Export Granular's health counters as OpenTelemetry metrics (`GRANULAR_METRICS`; off
    /// also with `OTEL_METRICS_EXPORTER=none`).
    pub metrics: bool,
    /// Where the debug endpoint listens (`GRANULAR_DEBUG_ADDR`); `None`: no endpoint. A
    /// loopback address unless [`Config::debug_allow_remote`].
    pub debug_addr: Option<SocketAddr>,
    /// The debug endpoint may listen beyond loopback (`GRANULAR_DEBUG_ALLOW_REMOTE`).
    pub debug_allow_remote: bool,
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
            all_from: AllFrom::TracingOpentelemetry,
            baseline: 0.0,
            max_enrich_per_sec: DEFAULT_MAX_ENRICH_PER_SEC,
            full_analysis_cpu: DEFAULT_FULL_ANALYSIS_CPU,
            background_cpus: Vec::new(),
            detail: Detail::Events,
            max_events: DEFAULT_MAX_EVENTS,
            recorder: RecorderSize::default(),
            os_sample_hz: DEFAULT_OS_SAMPLE_HZ,
            wait_sample_hz: DEFAULT_WAIT_SAMPLE_HZ,
            perf: true,
            queue: DEFAULT_QUEUE,
            hold_spans: DEFAULT_HOLD_SPANS,
            artifacts: ArtifactSink::Dir(default_artifact_dir()),
            artifact_base_url: None,
            artifact_max_bytes: DEFAULT_ARTIFACT_MAX_MB << 20,
            artifacts_per_sec: DEFAULT_ARTIFACTS_PER_SEC,
            artifact_retention: DEFAULT_ARTIFACT_RETENTION,
            metrics: true,
            debug_addr: None,
            debug_allow_remote: false,
        }
    }
}

/// The transport of an OTLP exporter (`OTEL_EXPORTER_OTLP_[SIGNAL_]PROTOCOL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// `grpc`.
    Grpc,
    /// `http/protobuf`.
    HttpProtobuf,
}

/// How an OTLP exporter compresses what it sends (`OTEL_EXPORTER_OTLP_[SIGNAL_]COMPRESSION`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpCompression {
    /// `none`.
    None,
    /// `gzip`.
    Gzip,
    /// `zstd`.
    Zstd,
}

/// One signal's OTLP exporter settings that Granular reads itself; the endpoint, headers and
/// timeout are read by `opentelemetry-otlp` from the same `OTEL_*` variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OtlpSignal {
    /// The transport.
    pub protocol: OtlpProtocol,
    /// The compression of what is sent.
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

/// `$TMPDIR/granular-artifacts-<uid>`: one directory per user, so a directory another user
/// made first under a shared `/tmp` is never ours to refuse or to write into.
fn default_artifact_dir() -> PathBuf {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    std::env::temp_dir().join(format!("granular-artifacts-{uid}"))
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
    /// applies. What [`init`](fn@crate::init) uses; it logs each error as a warning.
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
        let mut r = Reader::new(get);
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
        c.read_otlp(&mut r);
        c.enabled = r.flag("GRANULAR_ENABLED", "true").unwrap_or(true) && !c.sdk_disabled;
        // Read by the clock when it is first used; checked here so that a typo is reported.
        // The clock itself takes anything but "monotonic" as auto.
        r.choice("GRANULAR_CLOCK", "auto", &[("auto", ()), ("monotonic", ())]);
        c.read_judging(&mut r);
        c.read_enrichment(&mut r);
        c.read_recorder(&mut r);
        c.read_queues(&mut r);
        c.read_artifacts(&mut r);
        c.read_metrics(&mut r);
        c.read_debug(&mut r);
        (c, r.into_errors())
    }

    /// Each signal's OTLP protocol and compression: its own variable, else the generic one.
    fn read_otlp(&mut self, r: &mut Reader<'_>) {
        let grpc = (OtlpProtocol::Grpc, "grpc");
        let generic = r.read("OTEL_EXPORTER_OTLP_PROTOCOL", grpc.1, parse_protocol);
        self.otlp_traces.protocol = r.otlp("PROTOCOL", "TRACES", generic, grpc, parse_protocol);
        self.otlp_logs.protocol = r.otlp("PROTOCOL", "LOGS", generic, grpc, parse_protocol);
        self.otlp_metrics.protocol = r.otlp("PROTOCOL", "METRICS", generic, grpc, parse_protocol);
        let none = (OtlpCompression::None, "none");
        let generic = r.read("OTEL_EXPORTER_OTLP_COMPRESSION", none.1, parse_compression);
        self.otlp_traces.compression =
            r.otlp("COMPRESSION", "TRACES", generic, none, parse_compression);
        self.otlp_logs.compression =
            r.otlp("COMPRESSION", "LOGS", generic, none, parse_compression);
        self.otlp_metrics.compression =
            r.otlp("COMPRESSION", "METRICS", generic, none, parse_compression);
    }

    /// Which spans violate, and which traces leave the process.
    fn read_judging(&mut self, r: &mut Reader<'_>) {
        if let Some(slo) = r.read_explained("GRANULAR_SLO", DEFAULT_SLO, |v| {
            SloRules::parse(v).map_err(|e| e.to_string())
        }) {
            self.slo = slo;
        }
        if let Some(b) = r.flag("GRANULAR_ERRORS_VIOLATE", "true") {
            self.errors_violate = b;
        }
        if let Some(s) = r.choice(
            "GRANULAR_SAMPLE",
            "all",
            &[
                ("all", SampleMode::All),
                ("violations", SampleMode::Violations),
            ],
        ) {
            self.sample = s;
        }
        if let Some(from) = r.choice(
            "GRANULAR_ALL_FROM",
            "tracing-opentelemetry",
            &[
                ("tracing-opentelemetry", AllFrom::TracingOpentelemetry),
                ("recording", AllFrom::Recording),
            ],
        ) {
            self.all_from = from;
        }
        if let Some(f) = r.read("GRANULAR_BASELINE", "0", fraction("0.01")) {
            self.baseline = f;
        }
    }

    /// How many violating spans are explained, and how much each carries.
    fn read_enrichment(&mut self, r: &mut Reader<'_>) {
        if let Some(n) = r.number(
            "GRANULAR_MAX_ENRICH_PER_SEC",
            &DEFAULT_MAX_ENRICH_PER_SEC.to_string(),
            "a whole number of spans per second, e.g. 50",
            0,
            u64::MAX,
        ) {
            self.max_enrich_per_sec = n.min(u64::from(u32::MAX)) as u32;
        }
        let default = DEFAULT_FULL_ANALYSIS_CPU.to_string();
        if let Some(f) = r.read("GRANULAR_FULL_ANALYSIS_CPU", &default, fraction("0.05")) {
            self.full_analysis_cpu = f;
        }
        if let Some(cpus) = r.read("GRANULAR_BACKGROUND_CPUS", "unset", parse_cpu_list) {
            self.background_cpus = cpus;
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
            self.detail = d;
        }
        if let Some(n) = r.number(
            "GRANULAR_MAX_EVENTS",
            &DEFAULT_MAX_EVENTS.to_string(),
            "a whole number of span events, at most 128",
            0,
            128,
        ) {
            self.max_events = n as usize;
        }
    }

    /// The recorder's memory and the OS sources that write into it.
    fn read_recorder(&mut self, r: &mut Reader<'_>) {
        let default_size = RecorderSize::default();
        if let Some(n) = r.number(
            "GRANULAR_RECORDER_MB",
            &(default_size.total_bytes >> 20).to_string(),
            "a whole number of MiB, at least 1, e.g. 128",
            1,
            1 << 20,
        ) {
            self.recorder.total_bytes = (n as usize) << 20;
        }
        // A ring larger than the whole recorder could never be allocated: the default is
        // capped at the total without a word, a ring asked for is reported.
        let ring_using = format!(
            "{} KiB",
            default_size.ring_bytes.min(self.recorder.total_bytes) >> 10
        );
        self.recorder.ring_bytes = default_size.ring_bytes.min(self.recorder.total_bytes);
        let total_kb = (self.recorder.total_bytes >> 10) as u64;
        if let Some(n) = r.number(
            "GRANULAR_RING_KB",
            &ring_using,
            &format!(
                "a whole number of KiB per worker thread, at least 4 and at most GRANULAR_RECORDER_MB ({total_kb} KiB), e.g. 16384"
            ),
            4,
            total_kb,
        ) {
            self.recorder.ring_bytes = (n as usize) << 10;
        }
        if let Some(n) = r.number(
            "GRANULAR_OS_SAMPLE_HZ",
            &DEFAULT_OS_SAMPLE_HZ.to_string(),
            "samples per second, 0 to turn the OS sampler off, at most 10000",
            0,
            10_000,
        ) {
            self.os_sample_hz = n as u32;
        }
        if let Some(n) = r.number(
            "GRANULAR_WAIT_SAMPLE_HZ",
            &DEFAULT_WAIT_SAMPLE_HZ.to_string(),
            "samples per second of a thread blocked inside a request, 0 to turn wait sampling off, at most 1000",
            0,
            1_000,
        ) {
            self.wait_sample_hz = n as u32;
        }
        if let Some(p) = r.choice("GRANULAR_PERF", "auto", &[("auto", true), ("off", false)]) {
            self.perf = p;
        }
    }

    /// How much waits for the analyzer.
    fn read_queues(&mut self, r: &mut Reader<'_>) {
        if let Some(n) = r.number(
            "GRANULAR_QUEUE",
            &DEFAULT_QUEUE.to_string(),
            "a whole number of spans, e.g. 4096",
            0,
            u64::MAX,
        ) {
            self.queue = (n as usize).max(1);
        }
        if let Some(n) = r.number(
            "GRANULAR_HOLD_SPANS",
            &DEFAULT_HOLD_SPANS.to_string(),
            "a whole number of spans, e.g. 100000",
            0,
            u64::MAX,
        ) {
            self.hold_spans = (n as usize).max(1);
        }
    }

    /// Where timelines go, and how many are kept.
    fn read_artifacts(&mut self, r: &mut Reader<'_>) {
        if let Some(Some(sink)) = r.choice(
            "GRANULAR_ARTIFACTS",
            "dir",
            &[
                ("none", Some(ArtifactSink::None)),
                ("dir", None),
                ("otlp", Some(ArtifactSink::Otlp)),
            ],
        ) {
            self.artifacts = sink;
        }
        let dir = r.read("GRANULAR_ARTIFACT_DIR", "the default directory", |v| {
            Ok(PathBuf::from(v))
        });
        if let (Some(dir), ArtifactSink::Dir(_)) = (dir, &self.artifacts) {
            self.artifacts = ArtifactSink::Dir(dir);
        }
        self.artifact_base_url = r.read("GRANULAR_ARTIFACT_BASE_URL", "the default", |v| {
            Ok(v.to_string())
        });
        if let Some(n) = r.number(
            "GRANULAR_ARTIFACT_MAX_MB",
            &DEFAULT_ARTIFACT_MAX_MB.to_string(),
            "a whole number of MiB, e.g. 256",
            0,
            1 << 40,
        ) {
            self.artifact_max_bytes = n << 20;
        }
        if let Some(n) = r.number(
            "GRANULAR_ARTIFACTS_PER_SEC",
            &DEFAULT_ARTIFACTS_PER_SEC.to_string(),
            "a whole number of timelines per second, e.g. 10 (0: none)",
            0,
            u64::MAX,
        ) {
            self.artifacts_per_sec = n.min(u64::from(u32::MAX)) as u32;
        }
        if let Some(d) = r.read(
            "GRANULAR_ARTIFACT_RETENTION",
            &format!("{}s", DEFAULT_ARTIFACT_RETENTION.as_secs()),
            |v| {
                crate::slo::parse_duration(v)
                    .map_err(|e| format!("a duration such as 3600s or 1h ({e})"))
            },
        ) {
            self.artifact_retention = d;
        }
    }

    /// Granular's health metrics.
    fn read_metrics(&mut self, r: &mut Reader<'_>) {
        if let Some(m) = r.flag("GRANULAR_METRICS", "on") {
            self.metrics = m;
        }
        // The OpenTelemetry variable naming the process's metric exporters: `none` turns
        // Granular's off too; any other value keeps OTLP, the only exporter Granular has.
        let no_metrics = r.read("OTEL_METRICS_EXPORTER", "otlp", |v| {
            Ok(v.split(',').any(|e| e.trim() == "none"))
        });
        if no_metrics == Some(true) {
            self.metrics = false;
        }
    }
}

impl Config {
    /// The debug endpoint's address. It serves request traces and timelines, so it listens on
    /// loopback only unless `GRANULAR_DEBUG_ALLOW_REMOTE` says otherwise: a non-loopback address
    /// without it is refused (no endpoint), naming both variables.
    fn read_debug(&mut self, r: &mut Reader<'_>) {
        self.debug_allow_remote = r
            .flag("GRANULAR_DEBUG_ALLOW_REMOTE", "false")
            .unwrap_or(false);
        let allow_remote = self.debug_allow_remote;
        self.debug_addr = r.read_explained("GRANULAR_DEBUG_ADDR", "no debug endpoint", |v| {
            parse_debug_addr(v, allow_remote)
        });
    }
}

/// A debug endpoint address: `IP:PORT` (port 0: any free port), on loopback unless
/// `allow_remote`.
fn parse_debug_addr(v: &str, allow_remote: bool) -> Result<SocketAddr, String> {
    const FORM: &str =
        "expected IP:PORT on loopback, e.g. 127.0.0.1:6061 or [::1]:6061 (port 0: any free port)";
    let addr: SocketAddr = v.parse().map_err(|_| FORM.to_string())?;
    if addr.ip().is_loopback() || allow_remote {
        Ok(addr)
    } else {
        Err(format!(
            "{} is not a loopback address and the endpoint serves request traces; {FORM}, \
             or set GRANULAR_DEBUG_ALLOW_REMOTE=1 to serve it beyond this host",
            addr.ip()
        ))
    }
}

/// A CPU list as `taskset -c` writes it: numbers and ranges, comma-separated (`3`, `2-3`,
/// `0,2-3`), each below `CPU_SETSIZE`; sorted, without repeats.
fn parse_cpu_list(v: &str) -> Result<Vec<usize>, String> {
    let max = libc::CPU_SETSIZE as usize;
    let expected = || format!("CPU numbers and ranges below {max}, e.g. 3, 2-3 or 0,2-3");
    let mut cpus = Vec::new();
    for part in v.split(',').map(str::trim) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        match (a.trim().parse::<usize>(), b.trim().parse::<usize>()) {
            (Ok(a), Ok(b)) if a <= b && b < max => cpus.extend(a..=b),
            _ => return Err(expected()),
        }
    }
    cpus.sort_unstable();
    cpus.dedup();
    Ok(cpus)
}

/// Checks a fraction between 0 and 1 (`example` shows one in the error).
fn fraction(example: &'static str) -> impl Fn(&str) -> Result<f64, String> {
    move |v| {
        v.parse::<f64>()
            .ok()
            .filter(|f| (0.0..=1.0).contains(f))
            .ok_or_else(|| format!("a fraction between 0 and 1, e.g. {example}"))
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
        assert_eq!(c.all_from, AllFrom::TracingOpentelemetry);
        assert_eq!(c.detail, Detail::Events);
        assert_eq!(c.max_events, DEFAULT_MAX_EVENTS);
    }

    #[test]
    fn values_are_read() {
        let c = from(&[
            ("GRANULAR_SLO", "GET /messages=100ms"),
            ("GRANULAR_SAMPLE", "violations"),
            ("GRANULAR_ALL_FROM", "recording"),
            ("GRANULAR_BASELINE", "0.05"),
            ("GRANULAR_FULL_ANALYSIS_CPU", "0"),
            ("GRANULAR_BACKGROUND_CPUS", "3, 0-1,1"),
            ("GRANULAR_DETAIL", "spans"),
            ("GRANULAR_RECORDER_MB", "8"),
            ("GRANULAR_RING_KB", "512"),
        ])
        .unwrap();
        assert_eq!(c.sample, SampleMode::Violations);
        assert_eq!(c.all_from, AllFrom::Recording);
        assert_eq!(c.baseline, 0.05);
        assert_eq!(c.full_analysis_cpu, 0.0);
        assert_eq!(c.background_cpus, [0, 1, 3]);
        assert_eq!(c.recorder.worker_ring_bytes(1), 512 << 10);
        assert_eq!(c.recorder.other_ring_bytes(), 64 << 10);
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
        let e = from(&[("GRANULAR_FULL_ANALYSIS_CPU", "half")]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "GRANULAR_FULL_ANALYSIS_CPU=\"half\" is invalid: expected a fraction between 0 and 1, e.g. 0.05"
        );
        for bad in ["2-1", "x", "1,,2", "4096"] {
            let e = from(&[("GRANULAR_BACKGROUND_CPUS", bad)]).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!(
                    "GRANULAR_BACKGROUND_CPUS=\"{bad}\" is invalid: expected CPU numbers and \
                     ranges below 1024, e.g. 3, 2-3 or 0,2-3"
                )
            );
        }
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
                "GRANULAR_SLO=\"*=fast\" is invalid: SLO rule \"*=fast\": duration \"fast\" does not start with a number; expected a number followed by us, ms, s, m or h (e.g. 250us, 100ms, 1.5s); expected PATTERN=DURATION, e.g. \"GET /messages=100ms\", \"route:/messages=100ms\" or \"*=500ms\"; using *=500ms instead",
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

    /// Issue #19: the debug endpoint serves request traces, so it is refused beyond loopback
    /// unless GRANULAR_DEBUG_ALLOW_REMOTE says so.
    #[test]
    fn the_debug_endpoint_is_off_by_default_and_loopback_only_unless_allowed() {
        assert_eq!(from(&[]).unwrap().debug_addr, None);
        let c = from(&[("GRANULAR_DEBUG_ADDR", "127.0.0.1:6061")]).unwrap();
        assert_eq!(c.debug_addr, Some("127.0.0.1:6061".parse().unwrap()));
        let c = from(&[("GRANULAR_DEBUG_ADDR", "[::1]:0")]).unwrap();
        assert_eq!(c.debug_addr, Some("[::1]:0".parse().unwrap()));
        let e = from(&[("GRANULAR_DEBUG_ADDR", "0.0.0.0:6061")]).unwrap_err();
        assert_eq!(
            e.warning(),
            "GRANULAR_DEBUG_ADDR=\"0.0.0.0:6061\" is invalid: 0.0.0.0 is not a loopback address \
             and the endpoint serves request traces; expected IP:PORT on loopback, e.g. \
             127.0.0.1:6061 or [::1]:6061 (port 0: any free port), or set \
             GRANULAR_DEBUG_ALLOW_REMOTE=1 to serve it beyond this host; using no debug endpoint \
             instead"
        );
        let e = from(&[("GRANULAR_DEBUG_ADDR", "localhost")]).unwrap_err();
        assert!(
            e.to_string().contains("expected IP:PORT on loopback"),
            "{e}"
        );
        let c = from(&[
            ("GRANULAR_DEBUG_ADDR", "0.0.0.0:6061"),
            ("GRANULAR_DEBUG_ALLOW_REMOTE", "1"),
        ])
        .unwrap();
        assert!(c.debug_allow_remote);
        assert_eq!(c.debug_addr, Some("0.0.0.0:6061".parse().unwrap()));
        let e = from(&[("GRANULAR_DEBUG_ALLOW_REMOTE", "perhaps")]).unwrap_err();
        assert_eq!(e.variable, "GRANULAR_DEBUG_ALLOW_REMOTE");
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

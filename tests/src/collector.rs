//! A `granularcol` process (the Collector distribution of collector-plugin/)
//! running one of the deploy/collector/*.yaml configs on free loopback
//! ports, and clients for what it serves: its own Prometheus metrics and the
//! `granular_artifacts` store.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::ports::free_port;
use crate::process::{Process, ProcessBuilder};
use granular_cli::jaeger::http_client;
use granular_cli::text::cut;

use crate::service::{Binary, start_with_retries, wait_for_loopback_ports};
use crate::{Error, Result, artifact_dir, workspace_root};

/// Overrides the granularcol binary (default `<repo>/.cache/bin/granularcol`).
pub const BIN_ENV: &str = "GRANULAR_COLLECTOR_BIN";
/// The configs' port variables, all set by [`Collector::start`] (a config
/// ignores the ones it does not use).
pub const OTLP_GRPC_PORT_ENV: &str = "GRANULAR_OTLP_GRPC_PORT";
pub const OTLP_HTTP_PORT_ENV: &str = "GRANULAR_OTLP_HTTP_PORT";
pub const ARTIFACTS_PORT_ENV: &str = "GRANULAR_ARTIFACTS_PORT";
pub const METRICS_PORT_ENV: &str = "GRANULAR_METRICS_PORT";
pub const ARTIFACT_DIR_ENV: &str = "GRANULAR_ARTIFACT_DIR";
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Longest excerpt of an HTTP answer quoted in an error.
const MAX_QUOTE: usize = 2000;

static INSTANCES: AtomicUsize = AtomicUsize::new(0);

/// The granularcol binary: `$GRANULAR_COLLECTOR_BIN`, else
/// `<repo>/.cache/bin/granularcol` as built by collector-plugin/build.sh.
/// Fails, saying how to get it, if absent.
pub fn binary() -> Result<PathBuf> {
    Binary {
        env: BIN_ENV,
        file: "granularcol",
        label: "granularcol",
        build_script: "collector-plugin/build.sh",
        kind: "a granularcol binary",
        env_missing_note: " (unset it to use the granularcol that collector-plugin/build.sh builds)",
    }
    .locate()
}

/// A running granularcol, stopped on drop (its log stays under
/// [`crate::log_dir`]).
#[derive(Debug)]
pub struct Collector {
    process: Process,
    config: PathBuf,
    otlp_grpc_port: u16,
    otlp_http_port: u16,
    artifacts_port: u16,
    metrics_port: u16,
    artifact_dir: PathBuf,
    http: reqwest::blocking::Client,
}

impl Collector {
    /// Starts granularcol with `deploy/collector/<config>` (e.g.
    /// `"single.yaml"`) and waits until its pipelines run and its OTLP gRPC
    /// port accepts.
    ///
    /// The four port variables of the configs (`GRANULAR_OTLP_GRPC_PORT`,
    /// `GRANULAR_OTLP_HTTP_PORT`, `GRANULAR_ARTIFACTS_PORT`,
    /// `GRANULAR_METRICS_PORT`) get free loopback ports and
    /// `GRANULAR_ARTIFACT_DIR` a fresh directory under the target dir;
    /// `env` sets the rest (`JAEGER_OTLP_GRPC`, `GRANULAR_SLO`,
    /// `GRANULAR_DECISION_WAIT`, `GRANULAR_TIER2_ENDPOINTS`, ...) and may
    /// override those. No `GRANULAR_*` or `JAEGER_*` variable of the caller's
    /// environment leaks in.
    pub fn start(config: &str, env: &[(&str, &str)]) -> Result<Self> {
        let binary = binary()?;
        let path = workspace_root().join("deploy/collector").join(config);
        if !path.is_file() {
            return Err(Error::new(format!(
                "no collector config {}",
                path.display()
            )));
        }
        start_with_retries(|| Self::start_once(&binary, &path, env))
    }

    fn start_once(binary: &Path, config: &Path, env: &[(&str, &str)]) -> Result<Self> {
        let stem = config
            .file_stem()
            .map_or_else(|| "config".into(), |s| s.to_string_lossy().into_owned());
        let instance = INSTANCES.fetch_add(1, Ordering::Relaxed);
        let artifact_dir = artifact_dir(&format!("{stem}-{instance}"))?;

        let mut vars: BTreeMap<String, String> = BTreeMap::new();
        for key in [
            OTLP_GRPC_PORT_ENV,
            OTLP_HTTP_PORT_ENV,
            ARTIFACTS_PORT_ENV,
            METRICS_PORT_ENV,
        ] {
            vars.insert(key.to_owned(), free_port()?.to_string());
        }
        vars.insert(
            ARTIFACT_DIR_ENV.to_owned(),
            artifact_dir.display().to_string(),
        );
        for (key, value) in env {
            vars.insert((*key).to_owned(), (*value).to_owned());
        }
        let port = |key: &str| -> Result<u16> {
            vars[key]
                .parse()
                .map_err(|e| Error::new(format!("{key}={} is not a port number: {e}", vars[key])))
        };
        let (otlp_grpc_port, otlp_http_port) =
            (port(OTLP_GRPC_PORT_ENV)?, port(OTLP_HTTP_PORT_ENV)?);
        let (artifacts_port, metrics_port) = (port(ARTIFACTS_PORT_ENV)?, port(METRICS_PORT_ENV)?);

        let mut builder = ProcessBuilder::new(format!("granularcol-{stem}"), binary)
            .arg("--config")
            .arg(config);
        for (key, _) in std::env::vars_os() {
            let key_text = key.to_string_lossy();
            if key_text.starts_with("GRANULAR_") || key_text.starts_with("JAEGER_") {
                builder = builder.env_remove(key);
            }
        }
        for (key, value) in &vars {
            builder = builder.env(key, value);
        }
        let mut process = builder.spawn()?;
        // Receivers start last: the OTLP gRPC port accepting means every
        // pipeline runs (whatever GRANULAR_LOG_LEVEL hides from the log).
        wait_for_loopback_ports(&mut process, &[otlp_grpc_port])?;
        let http = http_client()?;
        Ok(Self {
            process,
            config: config.to_path_buf(),
            otlp_grpc_port,
            otlp_http_port,
            artifacts_port,
            metrics_port,
            artifact_dir,
            http,
        })
    }

    /// For `OTEL_EXPORTER_OTLP_ENDPOINT` with the `grpc` protocol.
    pub fn otlp_grpc_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.otlp_grpc_port)
    }

    /// `127.0.0.1:PORT` of the OTLP gRPC receiver, as a tier-1 collector's
    /// `GRANULAR_TIER2_ENDPOINTS` lists it.
    pub fn otlp_grpc_addr(&self) -> String {
        format!("127.0.0.1:{}", self.otlp_grpc_port)
    }

    /// For `OTEL_EXPORTER_OTLP_ENDPOINT` with `http/protobuf` (configs with
    /// an OTLP HTTP receiver: single.yaml, tier1-loadbalancer.yaml).
    pub fn otlp_http_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.otlp_http_port)
    }

    /// Base URL of the `granular_artifacts` store (configs with one:
    /// single.yaml, tier2.yaml), for the library's
    /// `GRANULAR_ARTIFACT_BASE_URL`; artifacts are at `<base>/artifacts/<id>`.
    pub fn artifacts_base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.artifacts_port)
    }

    /// The Collector's own Prometheus endpoint.
    pub fn metrics_url(&self) -> String {
        format!("http://127.0.0.1:{}/metrics", self.metrics_port)
    }

    /// Where the artifact store keeps its files.
    pub fn artifact_dir(&self) -> &Path {
        &self.artifact_dir
    }

    pub fn config(&self) -> &Path {
        &self.config
    }

    pub fn process(&self) -> &Process {
        &self.process
    }

    /// The process, to signal it (a kill mid-load) or wait for its exit.
    pub fn process_mut(&mut self) -> &mut Process {
        &mut self.process
    }

    /// The metrics as served now.
    pub fn metrics(&mut self) -> Result<Metrics> {
        let url = self.metrics_url();
        let text = http_get(&self.http, &url)
            .map_err(|problem| self.process.failure(&problem))
            .and_then(|bytes| {
                String::from_utf8(bytes).map_err(|e| {
                    self.process
                        .failure(&format!("served non-UTF-8 metrics at {url}: {e}"))
                })
            })?;
        Ok(Metrics::parse(&text))
    }

    /// Polls the metrics until `ready` accepts them; fails after `timeout`
    /// showing the `otelcol_processor_granular*` lines last served.
    pub fn wait_for_metrics(
        &mut self,
        what: &str,
        timeout: Duration,
        ready: impl Fn(&Metrics) -> bool,
    ) -> Result<Metrics> {
        let deadline = Instant::now() + timeout;
        loop {
            let metrics = self.metrics()?;
            if ready(&metrics) {
                return Ok(metrics);
            }
            if Instant::now() >= deadline {
                return Err(self.failure(&format!(
                    "metrics did not show {what} within {timeout:?} ({}); last granular metrics:\n{}",
                    self.metrics_url(),
                    metrics.render("otelcol_processor_granular")
                )));
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// `GET <store>/artifacts/`: the ids the artifact store holds, newest first.
    pub fn artifact_ids(&mut self) -> Result<Vec<String>> {
        let url = format!("{}/artifacts/", self.artifacts_base_url());
        let bytes = http_get(&self.http, &url).map_err(|problem| self.process.failure(&problem))?;
        let listing: Value = serde_json::from_slice(&bytes).map_err(|e| {
            self.process.failure(&format!(
                "served a listing at {url} that is not JSON ({e}): {}",
                quote(&bytes)
            ))
        })?;
        Ok(listing["artifacts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|item| item["id"].as_str().map(str::to_owned))
            .collect())
    }

    /// A failure report naming this collector, with its log tail.
    pub fn failure(&mut self, problem: &str) -> Error {
        self.process.failure(problem)
    }

    /// Stops the process (also done on drop); buffered traces are judged
    /// and exported on the way out.
    pub fn stop(&mut self) {
        self.process.stop();
    }
}

impl Drop for Collector {
    /// Stops the process; removes the artifact directory unless a test is
    /// failing (then it is kept next to the log for inspection).
    fn drop(&mut self) {
        self.process.stop();
        if !thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.artifact_dir);
        }
    }
}

/// `GET url` until it answers 200, for up to `timeout`; the body. For
/// links such as `granular.artifact`, whose target may be stored a moment
/// after the link was written.
pub fn fetch_bytes(url: &str, timeout: Duration) -> Result<Vec<u8>> {
    let http = http_client()?;
    let deadline = Instant::now() + timeout;
    loop {
        match http_get(&http, url) {
            Ok(bytes) => return Ok(bytes),
            Err(problem) if Instant::now() >= deadline => {
                return Err(Error::new(format!(
                    "GET {url} gave no 200 within {timeout:?}: {problem}"
                )));
            }
            Err(_) => thread::sleep(POLL_INTERVAL),
        }
    }
}

/// The body of a successful GET, or a description of the failure.
fn http_get(http: &reqwest::blocking::Client, url: &str) -> std::result::Result<Vec<u8>, String> {
    let response = http
        .get(url)
        .send()
        .map_err(|e| format!("GET {url} failed: {e}"))?;
    let status = response.status();
    let body = response
        .bytes()
        .map_err(|e| format!("reading the {status} answer of GET {url} failed: {e}"))?;
    if status.is_success() {
        Ok(body.to_vec())
    } else {
        Err(format!("GET {url} answered {status}: {}", quote(&body)))
    }
}

fn quote(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    match cut(&text, MAX_QUOTE) {
        None => text.into_owned(),
        Some((head, more)) => format!("{head}... ({more} more bytes)"),
    }
}

/// Samples of a Prometheus text exposition.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    samples: Vec<Sample>,
}

/// One sample: metric name, labels, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl Metrics {
    /// Parses the text format (`# HELP`/`# TYPE` comments skipped;
    /// unparsable lines ignored).
    pub fn parse(text: &str) -> Self {
        let samples = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .filter_map(parse_sample)
            .collect();
        Self { samples }
    }

    pub fn samples(&self) -> &[Sample] {
        &self.samples
    }

    /// The sum of the samples of metric `name` (a counter also matches with
    /// the exposition's `_total` suffix) whose labels include every
    /// `(label, value)` of `labels`; 0 if there are none.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let total = format!("{name}_total");
        self.samples
            .iter()
            .filter(|sample| sample.name == name || sample.name == total)
            .filter(|sample| {
                labels
                    .iter()
                    .all(|(key, value)| sample.labels.get(*key).map(String::as_str) == Some(*value))
            })
            .map(|sample| sample.value)
            .sum()
    }

    /// The samples whose name starts with `prefix`, one per line.
    pub fn render(&self, prefix: &str) -> String {
        let lines: Vec<String> = self
            .samples
            .iter()
            .filter(|sample| sample.name.starts_with(prefix))
            .map(|sample| {
                let labels: Vec<String> = sample
                    .labels
                    .iter()
                    .filter(|(key, _)| !key.starts_with("otel_scope_"))
                    .map(|(key, value)| format!("{key}={value:?}"))
                    .collect();
                format!("{}{{{}}} {}", sample.name, labels.join(","), sample.value)
            })
            .collect();
        if lines.is_empty() {
            format!("(no {prefix}* samples)")
        } else {
            lines.join("\n")
        }
    }
}

/// `name{label="value",...} value [timestamp]` or `name value [timestamp]`.
fn parse_sample(line: &str) -> Option<Sample> {
    let (name, labels, rest) = match line.find('{') {
        Some(open) => {
            let close = line.rfind('}')?;
            (
                &line[..open],
                parse_labels(&line[open + 1..close])?,
                &line[close + 1..],
            )
        }
        None => {
            let (name, rest) = line.split_once(char::is_whitespace)?;
            (name, BTreeMap::new(), rest)
        }
    };
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        other => other.parse().ok()?,
    };
    Some(Sample {
        name: name.trim().to_owned(),
        labels,
        value,
    })
}

/// `a="x",b="y\"z"` (escapes `\\`, `\"`, `\n`).
fn parse_labels(text: &str) -> Option<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| *c == ',' || c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Some(labels);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=') {
            key.push(c);
        }
        if chars.next() != Some('=') || chars.next() != Some('"') {
            return None;
        }
        let mut value = String::new();
        loop {
            match chars.next()? {
                '"' => break,
                '\\' => match chars.next()? {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                c => value.push(c),
            }
        }
        labels.insert(key.trim().to_owned(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_prometheus_text_format() {
        let metrics = Metrics::parse(
            "# HELP x help\n# TYPE x counter\n\
             otelcol_processor_granular_decisions_total{outcome=\"violated\",processor=\"granular\"} 3\n\
             otelcol_processor_granular_decisions_total{outcome=\"stripped\",processor=\"granular\"} 17\n\
             otelcol_processor_granular_buffered_traces 0\n\
             odd{a=\"q\\\"uote, comma\",b=\"\"} 1.5 1700000000\n",
        );
        assert_eq!(metrics.samples().len(), 4);
        assert_eq!(
            metrics.sum("otelcol_processor_granular_decisions", &[]),
            20.0
        );
        assert_eq!(
            metrics.sum(
                "otelcol_processor_granular_decisions",
                &[("outcome", "violated")]
            ),
            3.0
        );
        assert_eq!(
            metrics.sum("otelcol_processor_granular_buffered_traces", &[]),
            0.0
        );
        assert_eq!(metrics.sum("missing", &[]), 0.0);
        let odd = &metrics.samples()[3];
        assert_eq!(odd.labels["a"], "q\"uote, comma");
        assert_eq!(odd.labels["b"], "");
        assert_eq!(odd.value, 1.5);
    }
}

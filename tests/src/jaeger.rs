//! A Jaeger v2 process (deploy/jaeger/config.yaml: in-memory storage, OTLP
//! gRPC and HTTP receivers, query API) on free loopback ports, and a client
//! for its query API.

use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;

use crate::ports::free_port;
use crate::process::{Process, ProcessBuilder};
use crate::service::{
    Binary, READY_TIMEOUT, cut, http_client, start_with_retries, wait_for_loopback_ports,
};
use crate::shared::Shared;
use crate::trace::Trace;
use crate::{Error, Result, workspace_root};

/// Overrides the Jaeger binary (default `<repo>/.cache/bin/jaeger`).
pub const BIN_ENV: &str = "GRANULAR_JAEGER_BIN";
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Longest excerpt of a Jaeger answer quoted in an error.
const MAX_QUOTE: usize = 4000;

/// The Jaeger binary: `$GRANULAR_JAEGER_BIN`, else `<repo>/.cache/bin/jaeger`
/// as built by deploy/jaeger/build.sh. Fails, saying how to get it, if absent.
pub fn binary() -> Result<PathBuf> {
    Binary {
        env: BIN_ENV,
        file: "jaeger",
        label: "Jaeger",
        build_script: "deploy/jaeger/build.sh",
        kind: "a Jaeger v2 binary",
        env_missing_note: "",
    }
    .locate()
}

/// A running Jaeger, stopped on drop.
#[derive(Debug)]
pub struct Jaeger {
    process: Process,
    otlp_grpc_port: u16,
    otlp_http_port: u16,
    query: QueryClient,
}

impl Jaeger {
    /// The test binary's Jaeger: started by the first test that asks, then
    /// shared by every test of the binary, and killed when the binary exits
    /// ([`crate::shared`]). Tests tell their traces apart by trace id, and by
    /// service names no other test of the binary uses. Fails, saying what is
    /// missing, where [`Jaeger::start`] would.
    pub fn shared() -> Result<&'static Self> {
        static JAEGER: Shared<Jaeger> = Shared::new();
        JAEGER.get_or_start(Self::start)
    }

    /// Starts Jaeger with deploy/jaeger/config.yaml on free loopback ports
    /// and waits until its query API answers and its OTLP ports accept.
    /// Stopped when dropped; a test binary's tests share
    /// [`Jaeger::shared`] instead.
    pub fn start() -> Result<Self> {
        let binary = binary()?;
        start_with_retries(|| Self::start_once(&binary))
    }

    fn start_once(binary: &Path) -> Result<Self> {
        let query_http_port = free_port()?;
        let otlp_grpc_port = free_port()?;
        let otlp_http_port = free_port()?;
        let mut process = ProcessBuilder::new("jaeger", binary)
            .arg("--config")
            .arg(workspace_root().join("deploy/jaeger/config.yaml"))
            .env("JAEGER_QUERY_HTTP_PORT", query_http_port.to_string())
            .env("JAEGER_QUERY_GRPC_PORT", free_port()?.to_string())
            .env("JAEGER_OTLP_GRPC_PORT", otlp_grpc_port.to_string())
            .env("JAEGER_OTLP_HTTP_PORT", otlp_http_port.to_string())
            .spawn()?;
        let query = QueryClient::new(&format!("http://127.0.0.1:{query_http_port}"))?;
        process.wait_until("serve the query API", READY_TIMEOUT, || query.is_up())?;
        wait_for_loopback_ports(&mut process, &[otlp_grpc_port, otlp_http_port])?;
        Ok(Self {
            process,
            otlp_grpc_port,
            otlp_http_port,
            query,
        })
    }

    /// For `OTEL_EXPORTER_OTLP_ENDPOINT` with the `grpc` protocol.
    pub fn otlp_grpc_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.otlp_grpc_port)
    }

    /// For `OTEL_EXPORTER_OTLP_ENDPOINT` with `http/protobuf` (base URL;
    /// exporters append `/v1/traces`).
    pub fn otlp_http_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.otlp_http_port)
    }

    /// Base URL of the query HTTP API.
    pub fn query_url(&self) -> &str {
        self.query.base_url()
    }

    pub fn query(&self) -> &QueryClient {
        &self.query
    }

    /// See [`QueryClient::fetch_trace`].
    pub fn fetch_trace(
        &self,
        trace_id: &str,
        timeout: Duration,
        until: impl Fn(&Trace) -> bool,
    ) -> Result<Trace> {
        self.query
            .fetch_trace(trace_id, timeout, until)
            .map_err(|e| self.with_log_path(e))
    }

    /// See [`QueryClient::fetch_trace_otlp`].
    pub fn fetch_trace_otlp(&self, trace_id: &str, timeout: Duration) -> Result<Value> {
        self.query
            .fetch_trace_otlp(trace_id, timeout)
            .map_err(|e| self.with_log_path(e))
    }

    /// See [`QueryClient::find_trace`].
    pub fn find_trace(&self, trace_id: &str) -> Result<Option<Trace>> {
        self.query
            .find_trace(trace_id)
            .map_err(|e| self.with_log_path(e))
    }

    /// See [`QueryClient::expect_no_trace`].
    pub fn expect_no_trace(&self, trace_id: &str, watch: Duration) -> Result<()> {
        self.query
            .expect_no_trace(trace_id, watch)
            .map_err(|e| self.with_log_path(e))
    }

    fn with_log_path(&self, error: Error) -> Error {
        Error::new(format!(
            "{error}\n(Jaeger's log: {})",
            self.process.log_path().display()
        ))
    }
}

/// Client for a Jaeger query HTTP API (ours or any other).
#[derive(Debug, Clone)]
pub struct QueryClient {
    base_url: String,
    http: reqwest::blocking::Client,
}

impl QueryClient {
    /// `base_url` like `http://127.0.0.1:16686`.
    pub fn new(base_url: &str) -> Result<Self> {
        let http = http_client()?;
        Ok(Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            http,
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    fn is_up(&self) -> bool {
        self.http
            .get(format!("{}/api/services", self.base_url))
            .send()
            .is_ok_and(|response| response.status().is_success())
    }

    /// Polls `GET /api/traces/{id}` until the trace satisfies `until` (e.g.
    /// `|t| t.spans.len() >= 4`; spans arrive in export batches), or fails
    /// after `timeout` showing Jaeger's last answer.
    pub fn fetch_trace(
        &self,
        trace_id: &str,
        timeout: Duration,
        until: impl Fn(&Trace) -> bool,
    ) -> Result<Trace> {
        let url = format!("{}/api/traces/{trace_id}", self.base_url);
        self.poll(&url, timeout, |body| {
            let response: TracesResponse = serde_json::from_str(body)
                .map_err(|e| format!("unexpected answer ({e}):\n{}", quote(body)))?;
            match response.data.into_iter().next() {
                Some(trace) if until(&trace) => Ok(trace),
                Some(trace) => Err(format!(
                    "the trace so far does not satisfy the condition:\n{}\nJaeger returned:\n{}",
                    trace.render(),
                    quote(body)
                )),
                None => Err(format!("no trace in the answer:\n{}", quote(body))),
            }
        })
        .map_err(|last| {
            Error::new(format!(
                "trace {trace_id} did not arrive complete within {timeout:?} ({url}); {last}"
            ))
        })
    }

    /// `GET /api/v3/traces/{id}`: the trace as OTLP/JSON `TracesData`
    /// (`{"resourceSpans": [...]}`), with events and links as sent. Polls
    /// until the trace exists.
    pub fn fetch_trace_otlp(&self, trace_id: &str, timeout: Duration) -> Result<Value> {
        let url = format!("{}/api/v3/traces/{trace_id}", self.base_url);
        self.poll(&url, timeout, |body| {
            serde_json::from_str::<Value>(body)
                .ok()
                .and_then(|mut response| response.get_mut("result").map(Value::take))
                .ok_or_else(|| format!("no \"result\" in the answer:\n{}", quote(body)))
        })
        .map_err(|last| {
            Error::new(format!(
                "trace {trace_id} not found within {timeout:?} ({url}); {last}"
            ))
        })
    }

    /// One `GET /api/traces/{id}`: the trace as stored now, or `None` when
    /// Jaeger does not have it (404, or an answer without a trace).
    pub fn find_trace(&self, trace_id: &str) -> Result<Option<Trace>> {
        let url = format!("{}/api/traces/{trace_id}", self.base_url);
        let response = self
            .http
            .get(&url)
            .send()
            .map_err(|e| Error::new(format!("GET {url} failed: {e}")))?;
        let status = response.status();
        let body = response
            .text()
            .map_err(|e| Error::new(format!("reading the {status} answer of {url} failed: {e}")))?;
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(Error::new(format!(
                "GET {url}: Jaeger answered {status}:\n{}",
                quote(&body)
            )));
        }
        let response: TracesResponse = serde_json::from_str(&body).map_err(|e| {
            Error::new(format!(
                "GET {url}: unexpected answer ({e}):\n{}",
                quote(&body)
            ))
        })?;
        Ok(response
            .data
            .into_iter()
            .find(|trace| !trace.spans.is_empty()))
    }

    /// Watches for `watch` that Jaeger has no span of `trace_id` (e.g. a
    /// trace a sampler should have dropped); fails showing the trace if one
    /// arrives. Call it after a barrier that proves the exporter flushed,
    /// such as a later trace of the same process having arrived.
    pub fn expect_no_trace(&self, trace_id: &str, watch: Duration) -> Result<()> {
        let deadline = Instant::now() + watch;
        loop {
            if let Some(trace) = self.find_trace(trace_id)? {
                return Err(Error::new(format!(
                    "trace {trace_id} reached Jaeger ({}/api/traces/{trace_id}) but should not \
                     have:\n{}",
                    self.base_url,
                    trace.render()
                )));
            }
            if Instant::now() >= deadline {
                return Ok(());
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// GETs `url` until it answers 200 with a body `accept` takes. On
    /// timeout returns what went wrong with the last attempt.
    fn poll<T>(
        &self,
        url: &str,
        timeout: Duration,
        accept: impl Fn(&str) -> std::result::Result<T, String>,
    ) -> std::result::Result<T, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let last = self.get(url).and_then(|body| accept(&body));
            if last.is_ok() || Instant::now() >= deadline {
                return last;
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// The body of a successful GET, or a description of the failure.
    fn get(&self, url: &str) -> std::result::Result<String, String> {
        let response = self
            .http
            .get(url)
            .send()
            .map_err(|e| format!("request failed: {e}"))?;
        let status = response.status();
        let body = response
            .text()
            .map_err(|e| format!("reading the {status} answer failed: {e}"))?;
        if status.is_success() {
            Ok(body)
        } else {
            Err(format!("Jaeger answered {status}:\n{}", quote(&body)))
        }
    }
}

#[derive(Deserialize)]
struct TracesResponse {
    #[serde(default)]
    data: Vec<Trace>,
}

/// Pretty-printed (when JSON) and cut to `MAX_QUOTE` bytes.
fn quote(body: &str) -> String {
    let pretty = serde_json::from_str::<Value>(body)
        .and_then(|value| serde_json::to_string_pretty(&value))
        .unwrap_or_else(|_| body.to_owned());
    match cut(&pretty, MAX_QUOTE) {
        None => pretty,
        Some((head, more)) => format!("{head}\n... ({more} more bytes)"),
    }
}

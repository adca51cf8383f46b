//! A Jaeger v2 process (deploy/jaeger/config.yaml: in-memory storage, OTLP
//! gRPC and HTTP receivers, query API) on free loopback ports, read through
//! the `granular` CLI's query client ([`QueryClient`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

pub use granular_cli::jaeger::QueryClient;

use crate::ports::free_port;
use crate::process::{Process, ProcessBuilder};
use crate::service::{Binary, READY_TIMEOUT, start_with_retries, wait_for_loopback_ports};
use crate::shared::Shared;
use crate::trace::Trace;
use crate::{Error, Result, workspace_root};

/// Overrides the Jaeger binary (default `<repo>/.cache/bin/jaeger`).
pub const BIN_ENV: &str = "GRANULAR_JAEGER_BIN";

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
        start_with_retries(|| Self::start_once(&binary, None))
    }

    /// [`Jaeger::start`] with its OTLP gRPC receiver on `otlp_grpc_port`: a backend that
    /// comes up where a service has been exporting to nothing (tests of an endpoint down,
    /// then up).
    pub fn start_on(otlp_grpc_port: u16) -> Result<Self> {
        let binary = binary()?;
        start_with_retries(|| Self::start_once(&binary, Some(otlp_grpc_port)))
    }

    fn start_once(binary: &Path, otlp_grpc_port: Option<u16>) -> Result<Self> {
        let query_http_port = free_port()?;
        let otlp_grpc_port = match otlp_grpc_port {
            Some(port) => port,
            None => free_port()?,
        };
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

    /// The Jaeger process's id.
    pub fn pid(&self) -> u32 {
        self.process.pid()
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

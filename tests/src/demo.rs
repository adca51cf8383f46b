//! The demo service (`demo-service` from `granular-examples`) as a child
//! process, and an HTTP client for it.

use std::ops::{Deref, DerefMut};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;

use crate::nobody;
use crate::process::{Process, ProcessBuilder};
use crate::shared::Shared;
use crate::{Error, Result, workspace_binary};

const READY_TIMEOUT: Duration = Duration::from_secs(30);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const LISTENING: &str = "listening on ";
/// Batch span processor delay for demo processes: spans reach Jaeger
/// within a fraction of a second instead of the SDK's default 5 s.
const BSP_SCHEDULE_DELAY_MS: &str = "100";

/// Configures a `demo-service` process; [`DemoBuilder::start`] runs it.
#[derive(Debug)]
pub struct DemoBuilder {
    service_name: String,
    env: Vec<(String, String)>,
    as_nobody: bool,
}

impl DemoBuilder {
    /// Export spans over OTLP/gRPC to `endpoint` (e.g. [`crate::jaeger::Jaeger::otlp_grpc_endpoint`]).
    pub fn otlp_grpc(self, endpoint: &str) -> Self {
        self.env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
            .env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    }

    /// Export spans over OTLP/HTTP protobuf to the base URL `endpoint`.
    pub fn otlp_http(self, endpoint: &str) -> Self {
        self.env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
            .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    }

    /// Where the `downstream` pathology's HTTP hop goes (`DEMO_DOWNSTREAM_URL`);
    /// by default the service calls itself.
    pub fn downstream(self, base_url: &str) -> Self {
        self.env("DEMO_DOWNSTREAM_URL", base_url)
    }

    /// Any other variable (`DEMO_WORKERS`, `DEMO_PATHOLOGY`, `RUST_LOG`, ...);
    /// later settings of a variable win.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Run the service as user `nobody` ([`crate::nobody`]); the harness must run as root.
    /// Starting fails, naming the directory or file, when nobody may not reach the binary.
    pub fn as_nobody(mut self) -> Self {
        self.as_nobody = true;
        self
    }

    /// Starts the service on an ephemeral loopback port and waits for its
    /// `listening on http://...` line.
    pub fn start(self) -> Result<Demo> {
        let env = self.env.clone();
        let mut process = self.spawn()?;
        let line = process.wait_for_line("print its listening line", READY_TIMEOUT, |line| {
            line.starts_with(LISTENING)
        })?;
        let url = line[LISTENING.len()..].trim().to_owned();
        let http = reqwest::blocking::Client::builder()
            .no_proxy()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| Error::new(format!("cannot build an HTTP client: {e}")))?;
        Ok(Demo {
            process,
            url,
            http,
            env,
        })
    }

    /// Starts the process like [`DemoBuilder::start`] without waiting for
    /// it to listen: for tests of start-up failures
    /// ([`Process::wait_for_exit`]).
    pub fn spawn(self) -> Result<Process> {
        let binary = workspace_binary("demo-service", "granular-examples")?;
        let mut builder = if self.as_nobody {
            if let Some(why) = nobody::cannot_run(&binary) {
                return Err(Error::new(format!(
                    "{} cannot run as nobody: {why}",
                    self.service_name
                )));
            }
            ProcessBuilder::new(&self.service_name, "setpriv")
                .args(nobody::setpriv_args())
                .arg(binary)
        } else {
            ProcessBuilder::new(&self.service_name, binary)
        };
        // Only what the test sets: no OTEL_* or GRANULAR_* (library settings)
        // leaking in from the caller's shell.
        for (key, _) in std::env::vars_os() {
            let name = key.to_string_lossy();
            if name.starts_with("OTEL_") || name.starts_with("GRANULAR_") {
                builder = builder.env_remove(key);
            }
        }
        // DEMO_LISTEN's default, 127.0.0.1:0, is what tests need (tests/tests/listeners.rs
        // checks that it is loopback); one from the caller's shell does not leak in.
        builder = builder
            .env_remove("DEMO_LISTEN")
            .env("OTEL_SERVICE_NAME", &self.service_name)
            .env("OTEL_BSP_SCHEDULE_DELAY", BSP_SCHEDULE_DELAY_MS)
            .env("NO_COLOR", "1");
        for (key, value) in &self.env {
            builder = builder.env(key, value);
        }
        builder.spawn()
    }
}

/// A running `demo-service`, stopped on drop.
#[derive(Debug)]
pub struct Demo {
    process: Process,
    url: String,
    http: reqwest::blocking::Client,
    /// What [`DemoBuilder::env`] set, in order.
    env: Vec<(String, String)>,
}

impl Demo {
    /// A demo process reporting as `service_name` (`OTEL_SERVICE_NAME`).
    pub fn builder(service_name: &str) -> DemoBuilder {
        DemoBuilder {
            service_name: service_name.to_owned(),
            env: Vec::new(),
            as_nobody: false,
        }
    }

    /// Base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The service's process (log, pid).
    pub fn process(&self) -> &Process {
        &self.process
    }

    /// The service's process, to signal it or wait for its exit.
    pub fn process_mut(&mut self) -> &mut Process {
        &mut self.process
    }

    /// The value the builder gave variable `key` (the last one set), if it
    /// set one: e.g. where a shared demo writes its artifacts.
    pub fn setting(&self, key: &str) -> Option<&str> {
        self.env
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, value)| value.as_str())
    }

    /// `GET {url}{path}`. Any HTTP status is a response; failing to get one
    /// is an error that quotes the service's log.
    pub fn get(&mut self, path: &str) -> Result<Response> {
        self.get_with(path, &[])
    }

    /// [`Demo::get`] with request headers.
    pub fn get_with(&mut self, path: &str, headers: &[(&str, &str)]) -> Result<Response> {
        let url = format!("{}{path}", self.url);
        let mut request = self.http.get(&url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        send(request, &url).map_err(|problem| self.process.failure(&problem))
    }

    /// Sends the requests concurrently, each `(delay, path)` on its own
    /// thread `delay` after the first one was sent, and returns the
    /// responses in the same order once all have completed. For overlaps
    /// such as "a CPU hog arrives 3 ms into a request".
    pub fn get_staggered(&mut self, requests: &[(Duration, &str)]) -> Result<Vec<Response>> {
        let start = Instant::now();
        let results: Vec<std::result::Result<Response, String>> = thread::scope(|scope| {
            let handles: Vec<_> = requests
                .iter()
                .map(|&(delay, path)| {
                    let http = &self.http;
                    let url = format!("{}{path}", self.url);
                    scope.spawn(move || {
                        if let Some(wait) = (start + delay).checked_duration_since(Instant::now()) {
                            thread::sleep(wait);
                        }
                        get(http, &url)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|handle| {
                    handle
                        .join()
                        .unwrap_or_else(|_| Err("the request thread panicked".to_owned()))
                })
                .collect()
        });
        let mut responses = Vec::with_capacity(results.len());
        for result in results {
            responses.push(result.map_err(|problem| self.process.failure(&problem))?);
        }
        Ok(responses)
    }
}

/// A demo-service the tests of one binary share ([`crate::shared`]): one
/// `static` per setting, started for the first test that asks, then lent
/// to one test at a time.
#[derive(Debug)]
pub struct SharedDemo(Shared<Mutex<Demo>>);

impl SharedDemo {
    pub const fn new() -> Self {
        Self(Shared::new())
    }

    /// This test's turn at the demo, which `builder` configures if no test
    /// started it yet (later callers' builders are not called). Other tests
    /// wait until the turn ends (so must the same test: a second lease
    /// during its turn never comes). A test that panics during its turn
    /// shows the demo's log tail, as a dropped [`Demo`] does.
    pub fn lease(
        &'static self,
        builder: impl FnOnce() -> Result<DemoBuilder> + Send + 'static,
    ) -> Result<DemoLease> {
        let demo = self
            .0
            .get_or_start(move || builder()?.start().map(Mutex::new))?;
        // A test that panicked during its turn poisoned the lock; the
        // service itself is as it was.
        let mut demo = demo.lock().unwrap_or_else(PoisonError::into_inner);
        demo.process.begin_test();
        Ok(DemoLease(demo))
    }
}

impl Default for SharedDemo {
    fn default() -> Self {
        Self::new()
    }
}

/// One test's turn at a [`SharedDemo`]: the [`Demo`], to itself until dropped.
#[derive(Debug)]
pub struct DemoLease(MutexGuard<'static, Demo>);

impl Deref for DemoLease {
    type Target = Demo;

    fn deref(&self) -> &Demo {
        &self.0
    }
}

impl DerefMut for DemoLease {
    fn deref_mut(&mut self) -> &mut Demo {
        &mut self.0
    }
}

impl Drop for DemoLease {
    fn drop(&mut self) {
        self.0.process.show_tail_if_panicking();
    }
}

/// `GET url`, or what went wrong, phrased to follow the service's name.
fn get(http: &reqwest::blocking::Client, url: &str) -> std::result::Result<Response, String> {
    send(http.get(url), url)
}

/// Sends a `GET` of `url`; the response, or what went wrong.
fn send(
    request: reqwest::blocking::RequestBuilder,
    url: &str,
) -> std::result::Result<Response, String> {
    let start = Instant::now();
    let response = request
        .send()
        .map_err(|e| format!("did not answer GET {url}: {e}"))?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response
        .text()
        .map_err(|e| format!("sent a bad body for GET {url}: {e}"))?;
    Ok(Response {
        status,
        headers,
        body,
        elapsed: start.elapsed(),
    })
}

/// A complete HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
    /// Time from sending the request to having the whole body.
    pub elapsed: Duration,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// The `x-trace-id` header: the trace of the request's server span.
    pub fn trace_id(&self) -> Result<String> {
        match self.header("x-trace-id") {
            Some(id) if id.len() == 32 && id != "0".repeat(32) => Ok(id.to_owned()),
            other => Err(Error::new(format!(
                "no usable x-trace-id ({other:?}) in the {} response: {}",
                self.status, self.body
            ))),
        }
    }
}

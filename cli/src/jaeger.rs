//! A client for Jaeger's query HTTP API (v1 `GET /api/traces/{id}` as [`Trace`], v3 OTLP/JSON),
//! polling until a trace arrives complete.

use std::thread;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;

use crate::text::cut;
use crate::trace::Trace;
use crate::{Error, Result};

const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Longest excerpt of a Jaeger answer quoted in an error.
const MAX_QUOTE: usize = 4000;

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

    /// Whether the API answers (`GET /api/services` succeeds).
    pub fn is_up(&self) -> bool {
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

    /// [`QueryClient::find_trace`] of each id, `threads` lookups at a time, in the order
    /// given; the first failure if any lookup failed.
    pub fn find_traces(&self, ids: &[&str], threads: usize) -> Result<Vec<Option<Trace>>> {
        let chunk = ids.len().div_ceil(threads.max(1)).max(1);
        thread::scope(|scope| {
            let handles: Vec<_> = ids
                .chunks(chunk)
                .map(|part| {
                    scope.spawn(move || {
                        part.iter()
                            .map(|id| self.find_trace(id))
                            .collect::<Result<Vec<_>>>()
                    })
                })
                .collect();
            let mut all = Vec::with_capacity(ids.len());
            for h in handles {
                all.extend(h.join().expect("a lookup thread panicked")?);
            }
            Ok(all)
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

/// A blocking HTTP client for loopback services: no proxy, 10 s timeout.
pub fn http_client() -> Result<reqwest::blocking::Client> {
    reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| Error::new(format!("cannot build an HTTP client: {e}")))
}

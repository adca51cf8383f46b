//! The demo's `load-driver` as a child process, and what its `--json` file says: every
//! request with its kind, trace id, send time and latency, so a test can take the latency
//! percentiles of a phase of the run or the trace ids of the requests sent after an event.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

use crate::process::{Process, ProcessBuilder};
use crate::{Error, Result, log_dir, workspace_binary};

/// What to send: `load-driver --rate R --duration D --mix M --concurrency C`.
#[derive(Debug, Clone)]
pub struct Load {
    pub rate: f64,
    pub duration: Duration,
    /// `--mix`, e.g. `sleep=1%`.
    pub mix: String,
    pub concurrency: usize,
}

/// A running `load-driver`.
#[derive(Debug)]
pub struct RunningLoad {
    process: Process,
    json: PathBuf,
    duration: Duration,
}

/// Starts `load-driver` against the demo at `url` (its name `name` in logs).
pub fn start(name: &str, url: &str, load: &Load) -> Result<RunningLoad> {
    let binary = workspace_binary("load-driver", "granular-examples")?;
    let json = log_dir()?.join(format!("{name}-{}.json", std::process::id()));
    let _ = std::fs::remove_file(&json);
    let process = ProcessBuilder::new(name, binary)
        .arg("--url")
        .arg(url)
        .arg("--rate")
        .arg(load.rate.to_string())
        .arg("--duration")
        .arg(load.duration.as_secs_f64().to_string())
        .arg("--mix")
        .arg(&load.mix)
        .arg("--concurrency")
        .arg(load.concurrency.to_string())
        .arg("--json")
        .arg(&json)
        .spawn()?;
    Ok(RunningLoad {
        process,
        json,
        duration: load.duration,
    })
}

impl RunningLoad {
    /// Waits for the driver to finish (its duration, then up to a minute for requests in
    /// flight) and reads its JSON. A run in which no request succeeded is an error.
    pub fn finish(mut self) -> Result<LoadRun> {
        let status = self
            .process
            .wait_for_exit(self.duration + Duration::from_secs(60))?;
        let text = std::fs::read_to_string(&self.json).map_err(|e| {
            self.process.failure(&format!(
                "exited ({status}) without its JSON {}: {e}",
                self.json.display()
            ))
        })?;
        let run: LoadRun = serde_json::from_str(&text).map_err(|e| {
            Error::new(format!(
                "{} is not the driver's JSON: {e}",
                self.json.display()
            ))
        })?;
        if !status.success() {
            return Err(self.process.failure(&format!("exited with {status}")));
        }
        Ok(run)
    }
}

/// One request of the run.
#[derive(Debug, Clone, Deserialize)]
pub struct Request {
    /// `messages` (normal), the `--mix` kind that slowed it, or `hog`.
    pub kind: String,
    pub trace_id: String,
    pub sent_unix_us: u64,
    pub latency_us: Option<u64>,
}

impl Request {
    pub fn sent(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_micros(self.sent_unix_us)
    }

    /// When its answer had arrived, if it was answered.
    pub fn answered(&self) -> Option<SystemTime> {
        Some(self.sent() + Duration::from_micros(self.latency_us?))
    }

    pub fn is_normal(&self) -> bool {
        self.kind == "messages"
    }
}

/// The driver's JSON, the parts the tests read.
#[derive(Debug, Clone, Deserialize)]
pub struct LoadRun {
    /// HTTP requests sent.
    pub requests: usize,
    pub ok: usize,
    pub errors: usize,
    /// Every request, in send order.
    pub request_log: Vec<Request>,
}

impl LoadRun {
    /// The answered normal `/messages` requests sent in `[from, to)`.
    pub fn normal_between(&self, from: SystemTime, to: SystemTime) -> Vec<&Request> {
        self.request_log
            .iter()
            .filter(|r| r.is_normal() && r.latency_us.is_some())
            .filter(|r| r.sent() >= from && r.sent() < to)
            .collect()
    }

    /// The requests sent at or after `from` (answered or not).
    pub fn sent_after(&self, from: SystemTime) -> impl Iterator<Item = &Request> {
        self.request_log.iter().filter(move |r| r.sent() >= from)
    }
}

/// Latency percentiles of some requests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    pub count: usize,
    pub p50_us: u64,
    pub p99_us: u64,
}

impl Latency {
    /// Nearest-rank p50 and p99 of the answered `requests`; `None` when none was answered.
    pub fn of(requests: &[&Request]) -> Option<Self> {
        let mut us: Vec<u64> = requests.iter().filter_map(|r| r.latency_us).collect();
        us.sort_unstable();
        let rank =
            |p: f64| us[((p / 100.0 * us.len() as f64).ceil() as usize).clamp(1, us.len()) - 1];
        (!us.is_empty()).then(|| Self {
            count: us.len(),
            p50_us: rank(50.0),
            p99_us: rank(99.0),
        })
    }

    /// `self` against `base`: (p50 ratio, p99 ratio).
    pub fn ratio(&self, base: &Self) -> (f64, f64) {
        (
            self.p50_us as f64 / base.p50_us.max(1) as f64,
            self.p99_us as f64 / base.p99_us.max(1) as f64,
        )
    }

    /// `p50 14.2 ms, p99 21.0 ms (n=750)`.
    pub fn text(&self) -> String {
        format!(
            "p50 {:.1} ms, p99 {:.1} ms (n={})",
            self.p50_us as f64 / 1000.0,
            self.p99_us as f64 / 1000.0,
            self.count
        )
    }
}

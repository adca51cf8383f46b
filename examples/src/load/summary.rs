//! What the driver reports: counts, latency percentiles and the slow-on-purpose trace ids, as
//! text for people and as JSON for scripts.

use std::fmt::Write as _;
use std::time::{Duration, UNIX_EPOCH};

use serde::Serialize;

use super::run::{Outcome, Target};

/// A request the driver slowed on purpose and that was answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SlowRequest {
    /// The `--mix` kind that slowed it.
    pub pathology: &'static str,
    /// Its trace id.
    pub trace_id: String,
    /// Its latency, in whole milliseconds.
    pub latency_ms: u64,
    /// Its latency, in microseconds (to compare with what the service measured).
    pub latency_us: u64,
}

/// The latency distribution of answered `/messages` requests, in microseconds (nearest-rank
/// percentiles), for comparison with what the service itself reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Latencies {
    /// Answered `/messages` requests.
    pub count: usize,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

/// One HTTP request of the run, as the `--json` file lists them all: for checks that need
/// per-request timing (requests sent after an event, latency percentiles of a phase).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestRecord {
    /// `messages` (normal), the `--mix` kind that slowed it, or `hog` (a `/report` hog).
    pub kind: &'static str,
    /// Its trace id.
    pub trace_id: String,
    /// When it was sent, µs since the Unix epoch.
    pub sent_unix_us: u64,
    /// Its latency in µs; `None` when it failed.
    pub latency_us: Option<u64>,
}

/// The results of a run; serialises to the `--json` file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Mix seed, to reproduce the run with `--seed`.
    pub seed: u64,
    /// HTTP requests sent, `/report` hogs included.
    pub requests: usize,
    /// Requests answered with 2xx.
    pub ok: usize,
    /// Requests that failed or were answered with another status.
    pub errors: usize,
    /// Median latency of answered `/messages` requests (`None` when there were none).
    pub p50_ms: Option<u64>,
    /// 99th percentile latency of answered `/messages` requests.
    pub p99_ms: Option<u64>,
    /// The same requests' distribution in microseconds (`None` when there were none).
    pub messages_latency: Option<Latencies>,
    /// Answered requests slowed on purpose, in send order.
    pub slow: Vec<SlowRequest>,
    /// Trace ids of answered normal `/messages` requests.
    pub normal_trace_ids: Vec<String>,
    /// Trace ids of answered `/report` hogs (the culprits of `report` slowness).
    pub hog_trace_ids: Vec<String>,
    /// Every request, answered or not, in send order.
    pub request_log: Vec<RequestRecord>,
    /// The first few failures, to say why there were errors.
    #[serde(skip)]
    pub first_errors: Vec<String>,
}

/// How many failures the summary quotes.
const QUOTED_ERRORS: usize = 5;

impl Summary {
    /// Tallies `outcome`.
    pub fn new(outcome: &Outcome) -> Self {
        let mut summary = Self {
            seed: outcome.seed,
            requests: outcome.samples.len(),
            ok: 0,
            errors: 0,
            p50_ms: None,
            p99_ms: None,
            messages_latency: None,
            slow: Vec::new(),
            normal_trace_ids: Vec::new(),
            hog_trace_ids: Vec::new(),
            request_log: Vec::with_capacity(outcome.samples.len()),
            first_errors: Vec::new(),
        };
        let mut latencies = Vec::new();
        for sample in &outcome.samples {
            summary.request_log.push(RequestRecord {
                kind: match sample.target {
                    Target::Hog => "hog",
                    Target::Messages(None) => "messages",
                    Target::Messages(Some(kind)) => kind.name(),
                },
                trace_id: sample.trace_id.clone(),
                sent_unix_us: sample
                    .sent
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_micros() as u64),
                latency_us: sample.outcome.as_ref().ok().map(|d| d.as_micros() as u64),
            });
            let latency = match &sample.outcome {
                Ok(latency) => *latency,
                Err(e) => {
                    summary.errors += 1;
                    if summary.first_errors.len() < QUOTED_ERRORS {
                        summary
                            .first_errors
                            .push(format!("trace_id={} {e}", sample.trace_id));
                    }
                    continue;
                }
            };
            summary.ok += 1;
            let trace_id = sample.trace_id.clone();
            match sample.target {
                Target::Hog => summary.hog_trace_ids.push(trace_id),
                Target::Messages(kind) => {
                    latencies.push(latency);
                    match kind {
                        None => summary.normal_trace_ids.push(trace_id),
                        Some(kind) => summary.slow.push(SlowRequest {
                            pathology: kind.name(),
                            trace_id,
                            latency_ms: whole_ms(latency),
                            latency_us: latency.as_micros() as u64,
                        }),
                    }
                }
            }
        }
        latencies.sort_unstable();
        summary.p50_ms = percentile(&latencies, 50.0).map(whole_ms);
        summary.p99_ms = percentile(&latencies, 99.0).map(whole_ms);
        let us = |p| percentile(&latencies, p).map_or(0, |d: Duration| d.as_micros() as u64);
        summary.messages_latency = (!latencies.is_empty()).then(|| Latencies {
            count: latencies.len(),
            p50_us: us(50.0),
            p90_us: us(90.0),
            p99_us: us(99.0),
            max_us: us(100.0),
        });
        summary
    }

    /// The report for people: a `summary key=value…` line, then one
    /// `slow <pathology> trace_id=<hex> latency_ms=<n>` line per slow request.
    pub fn text(&self) -> String {
        let ms = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
        let mut text = format!(
            "summary sent={} ok={} errors={} p50_ms={} p99_ms={} seed={}\n",
            self.requests,
            self.ok,
            self.errors,
            ms(self.p50_ms),
            ms(self.p99_ms),
            self.seed
        );
        for slow in &self.slow {
            let _ = writeln!(
                text,
                "slow {} trace_id={} latency_ms={}",
                slow.pathology, slow.trace_id, slow.latency_ms
            );
        }
        text
    }
}

/// Nearest-rank percentile of sorted `values`.
fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.saturating_sub(1)).copied()
}

fn whole_ms(d: Duration) -> u64 {
    d.as_secs_f64().mul_add(1000.0, 0.5) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::mix::SlowKind;
    use crate::load::run::Sample;
    use crate::pathology::PathologyKind;

    fn sample(target: Target, id: &str, outcome: Result<u64, &str>) -> Sample {
        Sample {
            target,
            trace_id: id.into(),
            sent: UNIX_EPOCH + Duration::from_millis(1_000 + id.as_bytes()[0] as u64),
            outcome: outcome.map(Duration::from_millis).map_err(String::from),
        }
    }

    #[test]
    fn tallies_and_formats() {
        let outcome = Outcome {
            seed: 9,
            samples: vec![
                sample(Target::Messages(None), "a", Ok(10)),
                sample(Target::Messages(Some(SlowKind::Report)), "b", Ok(120)),
                sample(Target::Hog, "c", Ok(100)),
                sample(
                    Target::Messages(Some(SlowKind::Pathology(PathologyKind::Block))),
                    "d",
                    Err("HTTP 500"),
                ),
            ],
        };
        let summary = Summary::new(&outcome);
        assert_eq!((summary.requests, summary.ok, summary.errors), (4, 3, 1));
        assert_eq!((summary.p50_ms, summary.p99_ms), (Some(10), Some(120)));
        assert_eq!(summary.normal_trace_ids, ["a"]);
        assert_eq!(summary.hog_trace_ids, ["c"]);
        assert_eq!(summary.first_errors, ["trace_id=d HTTP 500"]);
        assert_eq!(
            summary.text(),
            "summary sent=4 ok=3 errors=1 p50_ms=10 p99_ms=120 seed=9\n\
             slow report trace_id=b latency_ms=120\n"
        );
        let json = serde_json::to_value(&summary).expect("serialisable");
        assert_eq!(json["requests"], 4);
        assert_eq!(json["slow"][0]["pathology"], "report");
        assert_eq!(json["slow"][0]["latency_ms"], 120);
        assert!(json.get("first_errors").is_none());
        // Every request with when it was sent, for per-phase checks: the failed one too.
        let requests = json["request_log"].as_array().expect("request_log");
        assert_eq!(requests.len(), 4);
        assert_eq!(requests[1]["kind"], "report");
        assert_eq!(requests[1]["trace_id"], "b");
        assert_eq!(requests[1]["sent_unix_us"], 1_098_000);
        assert_eq!(requests[1]["latency_us"], 120_000);
        assert_eq!(requests[2]["kind"], "hog");
        assert_eq!(requests[3]["kind"], "block");
        assert!(requests[3]["latency_us"].is_null());
    }

    #[test]
    fn percentiles() {
        let ms: Vec<_> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&ms, 50.0), Some(Duration::from_millis(50)));
        assert_eq!(percentile(&ms, 99.0), Some(Duration::from_millis(99)));
        assert_eq!(percentile(&[], 50.0), None);
    }
}

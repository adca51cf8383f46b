//! Sending the load: a paced loop of events, each one `/messages` request (plus its `/report`
//! hogs for the `report` kind), with trace ids the driver mints itself.

use std::error::Error as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior, sleep, sleep_until};

use super::args::LoadArgs;
use super::mix::SlowKind;
use crate::rng::SplitMix64;

/// How long after the victim `/messages` request the hogs are sent: it is then inside its
/// auth/cache/db timers (~8 ms in all), so when a timer fires every worker is busy hogging and
/// the victim's span shows scheduler wait rather than never having started.
const HOG_DELAY: Duration = Duration::from_millis(3);

/// What one HTTP request was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A `/messages` request, slowed on purpose by `Some(kind)` or normal with `None`.
    Messages(Option<SlowKind>),
    /// A `/report` CPU hog sent to slow another request.
    Hog,
}

/// One HTTP request the driver made.
#[derive(Debug, Clone)]
pub struct Sample {
    /// What it was for.
    pub target: Target,
    /// The trace id the driver gave it, 32 hex digits.
    pub trace_id: String,
    /// When it was sent (wall clock), to tell requests sent before and after an event apart.
    pub sent: SystemTime,
    /// Latency until the whole body arrived, or why it failed (transport error or non-2xx).
    pub outcome: Result<Duration, String>,
}

/// Everything the run produced.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The mix seed actually used (random unless `--seed` was given), to reproduce the run.
    pub seed: u64,
    /// Every request, in the order the events were sent.
    pub samples: Vec<Sample>,
}

/// A W3C trace context minted by the driver.
#[derive(Debug, Clone, Copy)]
struct TraceParent {
    trace_id: u128,
    span_id: u64,
}

impl TraceParent {
    /// Random non-zero ids (all-zero ids are invalid in W3C trace context).
    fn random(rng: &mut SplitMix64) -> Self {
        loop {
            let trace_id = (u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64());
            let span_id = rng.next_u64();
            if trace_id != 0 && span_id != 0 {
                return Self { trace_id, span_id };
            }
        }
    }

    fn header(self) -> String {
        format!("00-{:032x}-{:016x}-01", self.trace_id, self.span_id)
    }
}

/// Sends load as `args` says and waits for every request to finish.
///
/// Events start at `args.rate` per second until `args.duration` has passed, never more than
/// `args.concurrency` at once (the pace slips rather than overload the service). The mix is drawn
/// from the seed; trace ids come from a separately, randomly seeded generator, so repeating a
/// seed repeats the mix without reusing trace ids in the tracing backend.
pub async fn run(args: &LoadArgs) -> Result<Outcome, reqwest::Error> {
    // No proxy: only the given URL is contacted. The timeout bounds the run even if the
    // service hangs; it leaves room for the hogs' own CPU time.
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30) + Duration::from_millis(args.report_ms))
        .build()?;
    let seed = args
        .seed
        .unwrap_or_else(|| SplitMix64::from_entropy().next_u64());
    let mut mix_rng = SplitMix64::new(seed);
    let mut id_rng = SplitMix64::from_entropy();
    let limit = Arc::new(Semaphore::new(args.concurrency));
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let end = Instant::now() + args.duration;
    let mut events = JoinSet::new();

    for index in 0usize.. {
        tokio::select! {
            biased;
            () = sleep_until(end) => break,
            _ = ticker.tick() => {}
        }
        let permit = tokio::select! {
            biased;
            () = sleep_until(end) => break,
            permit = limit.clone().acquire_owned() => permit,
        };
        // The semaphore is never closed, so this only guards against the impossible.
        let Ok(permit) = permit else { break };
        let kind = args.mix.pick(mix_rng.unit() * 100.0);
        let victim = TraceParent::random(&mut id_rng);
        let hogs = match kind {
            Some(SlowKind::Report) => (0..args.hogs)
                .map(|_| TraceParent::random(&mut id_rng))
                .collect(),
            _ => Vec::new(),
        };
        let event = Event {
            client: client.clone(),
            base: args.url.clone(),
            kind,
            victim,
            hogs,
            report_ms: args.report_ms,
        };
        events.spawn(async move {
            let samples = event.send().await;
            drop(permit);
            (index, samples)
        });
    }

    let mut done = events.join_all().await;
    done.sort_by_key(|&(index, _)| index);
    Ok(Outcome {
        seed,
        samples: done.into_iter().flat_map(|(_, samples)| samples).collect(),
    })
}

/// One paced unit of load: a `/messages` request and, for `report`, the hogs behind it.
struct Event {
    client: reqwest::Client,
    base: String,
    kind: Option<SlowKind>,
    victim: TraceParent,
    hogs: Vec<TraceParent>,
    report_ms: u64,
}

impl Event {
    async fn send(self) -> Vec<Sample> {
        let url = match self.kind {
            Some(SlowKind::Pathology(p)) => format!("{}/messages?pathology={p}", self.base),
            _ => format!("{}/messages", self.base),
        };
        let sent = SystemTime::now();
        let victim = timed_get(&self.client, url, self.victim);
        let hog_url = format!("{}/report?ms={}", self.base, self.report_ms);
        let hogs = async {
            if self.hogs.is_empty() {
                return Vec::new();
            }
            sleep(HOG_DELAY).await;
            let mut set = JoinSet::new();
            for ids in self.hogs {
                let (client, url) = (self.client.clone(), hog_url.clone());
                set.spawn(async move {
                    let sent = SystemTime::now();
                    let outcome = timed_get(&client, url, ids).await;
                    sample(Target::Hog, ids, sent, outcome)
                });
            }
            set.join_all().await
        };
        let (victim_outcome, mut samples) = tokio::join!(victim, hogs);
        samples.insert(
            0,
            sample(
                Target::Messages(self.kind),
                self.victim,
                sent,
                victim_outcome,
            ),
        );
        samples
    }
}

fn sample(
    target: Target,
    ids: TraceParent,
    sent: SystemTime,
    outcome: Result<Duration, String>,
) -> Sample {
    Sample {
        target,
        trace_id: format!("{:032x}", ids.trace_id),
        sent,
        outcome,
    }
}

/// GETs `url` under trace context `ids`; the latency includes reading the whole body.
async fn timed_get(
    client: &reqwest::Client,
    url: String,
    ids: TraceParent,
) -> Result<Duration, String> {
    let start = Instant::now();
    let response = client
        .get(&url)
        .header("traceparent", ids.header())
        .send()
        .await
        .map_err(|e| describe(&e))?;
    let status = response.status();
    response.bytes().await.map_err(|e| describe(&e))?;
    if !status.is_success() {
        return Err(format!("GET {url}: HTTP {status}"));
    }
    Ok(start.elapsed())
}

/// The error with its causes: reqwest's own message alone rarely says what went wrong.
fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_is_w3c() {
        let ids = TraceParent {
            trace_id: 0xabc,
            span_id: 0x12,
        };
        assert_eq!(
            ids.header(),
            "00-00000000000000000000000000000abc-0000000000000012-01"
        );
        let random = TraceParent::random(&mut SplitMix64::new(1)).header();
        assert_eq!(random.len(), 55);
    }
}

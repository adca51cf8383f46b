//! The debug endpoint (`GRANULAR_DEBUG_ADDR`): in the spirit of Go's `net/http/pprof`, a
//! loopback HTTP server inside the process that answers, without Jaeger, what Granular sees.
//!
//! ```text
//! rings ─> granular-debug-stats thread (every 25 ms; 100 ms while nothing ends): span ends (span_ends.rs)
//!                                                 ─> per-operation statistics (stats.rs)
//! analyzer thread ─> AnalysisObserver: explained spans (cause, verdict), timelines
//!                 ─> recent analyses and the last timelines in memory (recent.rs)
//! granular-debug thread: accept ─> one short-lived thread per connection (at most 4)
//!     (server.rs: HTTP/1.1 GET, bounded request, timeouts) ─> routes.rs ─> render.rs / capture.rs
//! ```
//!
//! Nothing here runs on the application's runtime or its request path: the statistics are
//! read from records the request path writes anyway, on a thread of their own (pausing like
//! the analyzer, `crate::background`). Memory is bounded: [`stats::MAX_OPERATIONS`] histograms, the span-end
//! reader's open spans ([`span_ends::MAX_OPEN`]), [`recent::KEEP_ANALYSES`] analyses and
//! [`recent::KEEP_TIMELINES`] timelines up to [`recent::KEEP_TIMELINE_BYTES`], one capture at a
//! time.

pub(crate) mod capture;
pub(crate) mod histogram;
pub(crate) mod recent;
mod render;
mod response;
mod routes;
pub(crate) mod server;
pub(crate) mod span_ends;
pub(crate) mod stats;

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use opentelemetry_sdk::trace::SpanData;

use crate::analyzer::observer::{self, AnalysisObserver};
use crate::config::Config;
use crate::recorder::FlightRecorder;
use crate::slo::Judge;
use capture::Captures;
use recent::Recent;
use span_ends::{Missed, RingSpanEnds, SpanEnds};
use stats::Operations;

/// How often the statistics thread reads the rings while spans end: well within a saturated
/// worker ring's reach (~200 ms in the overhead harness), so records are read before they are
/// overwritten.
const READ_EVERY: Duration = Duration::from_millis(25);

/// How often it reads them while no span ended since the last read: a quiet process pays a
/// quarter of the wake-ups, and a load that starts is read within 100 ms, half a saturated
/// ring's reach.
const READ_QUIET_EVERY: Duration = Duration::from_millis(100);

/// What the endpoint serves from: shared by the statistics thread, the analyzer (through
/// [`AnalysisObserver`]) and the connection threads, each holding a lock briefly.
#[derive(Debug)]
pub(crate) struct DebugState {
    pub(crate) ops: Mutex<Operations>,
    pub(crate) missed: Mutex<Missed>,
    pub(crate) recent: Mutex<Recent>,
    pub(crate) captures: Captures,
    /// `GRANULAR_SAMPLE`, shown on the page.
    pub(crate) sample: &'static str,
}

impl DebugState {
    pub(crate) fn new(judge: Judge, sample: &'static str) -> Self {
        DebugState {
            ops: Mutex::new(Operations::new(judge)),
            missed: Mutex::new(Missed::default()),
            recent: Mutex::new(Recent::default()),
            captures: Captures::default(),
            sample,
        }
    }

    /// Counts what `ends` read since the last call; returns how many spans ended.
    pub(crate) fn ingest(&self, ends: &mut dyn SpanEnds) -> usize {
        let read = ends.read();
        let n = read.len();
        if let Ok(mut ops) = self.ops.lock() {
            for end in read {
                ops.record(end);
            }
        }
        if let Ok(mut m) = self.missed.lock() {
            *m = ends.missed();
        }
        n
    }
}

impl AnalysisObserver for DebugState {
    fn explained(&self, span: &SpanData) {
        let Some(e) = recent::Explained::of(span) else {
            return;
        };
        if e.violated
            && let Ok(mut ops) = self.ops.lock()
        {
            ops.explained(&e.name, e.route.as_deref(), &e.cause, e.duration_ns);
        }
        if let Ok(mut r) = self.recent.lock() {
            r.explained(e);
        }
    }

    fn timeline(&self, trace_id: u128, span_id: u64, bytes: &[u8]) {
        if let Ok(mut r) = self.recent.lock() {
            r.timeline(trace_id, span_id, bytes);
        }
    }
}

/// Starts the endpoint `cfg.debug_addr` asks for, if any, and returns where it listens. A
/// failure (the address in use) is logged and leaves the service running without it.
pub(crate) fn start(cfg: &Config) -> Option<SocketAddr> {
    let addr = cfg.debug_addr?;
    let recorder = FlightRecorder::get()?;
    if !addr.ip().is_loopback() {
        tracing::warn!(
            "granular: the debug endpoint listens on {addr}, beyond this host \
             (GRANULAR_DEBUG_ALLOW_REMOTE=1): anyone who reaches it reads request traces and \
             timelines"
        );
    }
    let sample = match cfg.sample {
        crate::config::SampleMode::All => "all",
        crate::config::SampleMode::Violations => "violations",
    };
    let judge = Judge::new(cfg.slo.clone(), cfg.errors_violate, 0.0);
    let state: &'static DebugState = Box::leak(Box::new(DebugState::new(judge, sample)));
    let bound = match server::Server::bind(addr, state) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("granular: debug endpoint not started: cannot listen on {addr}: {e}");
            return None;
        }
    };
    let local = bound.local_addr();
    observer::observe(state);
    let stats = std::thread::Builder::new()
        .name("granular-debug-stats".into())
        .spawn(move || {
            crate::background::yield_to_the_application();
            let mut ends = RingSpanEnds::new(recorder);
            loop {
                let ended = state.ingest(&mut ends);
                std::thread::sleep(if ended == 0 {
                    READ_QUIET_EVERY
                } else {
                    READ_EVERY
                });
            }
        });
    if let Err(e) = stats.and_then(|_| bound.spawn()) {
        tracing::warn!("granular: debug endpoint not started: {e}");
        return None;
    }
    tracing::info!("granular: debug endpoint on http://{local}/debug/granular/");
    Some(local)
}

/// Shared by the unit tests of the routes and the server.
#[cfg(test)]
pub(crate) fn test_state() -> &'static DebugState {
    let judge = Judge::new(
        crate::slo::SloRules::parse("GET /x=20ms").unwrap(),
        true,
        0.0,
    );
    Box::leak(Box::new(DebugState::new(judge, "all")))
}

//! The analyzer thread: from what the judges send (`slo::message::Msg`) to enriched spans handed to the
//! exporting processor, off the request path.
//!
//! ```text
//! Msg ─> Analyzer::run ─ Hold ─> held traces (held.rs) ─ decided ─┐
//!                      ─ Enrich, Rebuild ─────────────────────────┴─> Batch (batch.rs)
//!   while the batch waits: its wait worked out again from the rings' reach, the kept copy
//!   of the rings brought up to date (copy.rs)
//!   batch ready ─> pass.rs: window (window.rs; light when overloaded, overload.rs)
//!     ─> decode ─> rebuild the chosen traces (rebuilt.rs) ─> judge
//!     ─> per span (explain.rs): analysis::analyze ─> enrich.rs, artifacts/ ─> exporter
//! ```
//!
//! Each policy is a small module with its own tests: how long a batch waits and how long it
//! may take (`batch`), which traces are held and when they are decided (`held`), when
//! analysis goes light (`overload`, `cpu_share`), which spans get an artifact
//! ([`artifacts`]), when the memory batches freed is given back to the OS (`trim`). The thread
//! runs as a background thread (`crate::background`): pausing 750 µs after each 250 µs of
//! running, so that a request never waits for it long.

pub(crate) mod artifacts;
mod batch;
mod copy;
mod cpu_share;
pub(crate) mod enrich;
mod explain;
pub(crate) mod fault;
mod full_thread;
mod held;
pub(crate) mod observer;
mod overload;
mod pass;
pub(crate) mod rate;
mod rebuilt;
mod spotlight;
mod spotlit;
#[cfg(test)]
mod testing;
mod trim;
mod window;

use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError, sync_channel};
use std::time::{Duration, Instant};

use opentelemetry::InstrumentationScope;
use opentelemetry_sdk::trace::{SpanData, SpanProcessor};

use crate::config::{Config, Detail};
use crate::slo::message::Msg;
use crate::slo::{Judge, Judgement, Stats};
use artifacts::{ArtifactStore, Artifacts};
use batch::{Batch, DELAY_RECHECK, Wait, batch_delay, rings_wrap_fast};
use copy::KeptCopy;
use cpu_share::CpuShare;
use full_thread::FullThread;
use held::{HeldTraces, Released};
use overload::Duty;
use spotlight::Spotlight;
use spotlit::Spotlit;
use trim::Trim;

/// How long an idle analyzer blocks on its channel before it looks at its held traces.
const IDLE_WAIT: Duration = Duration::from_secs(1);

/// Starts the analyzer thread, `analyzer` running on it; returns the sending end of its
/// channel (`queue` messages at most). Where the thread cannot start, the channel's receiver
/// is gone and every send fails: spans are exported without breakdowns (counted).
pub(crate) fn start<P: SpanProcessor + 'static>(
    analyzer: Analyzer<P>,
    queue: usize,
) -> SyncSender<Msg> {
    let (tx, rx) = sync_channel(queue);
    let spawned = std::thread::Builder::new()
        .name("granular-analyzer".into())
        .spawn(move || {
            crate::background::yield_to_the_application();
            analyzer.run(Inbox { rx, open: true })
        });
    if let Err(e) = spawned {
        tracing::warn!(
            "granular: cannot start the analyzer thread ({e}); spans are exported without breakdowns"
        );
    }
    tx
}

/// The analyzer thread's state: its policies' state and where finished spans go.
pub(crate) struct Analyzer<P: SpanProcessor> {
    /// The exporting processor every span ends in.
    inner: Arc<P>,
    judge: Arc<Judge>,
    stats: Arc<Stats>,
    /// What enrichment attaches (`GRANULAR_DETAIL`, `GRANULAR_MAX_EVENTS`, the active sources).
    detail: Detail,
    max_events: usize,
    sources: Arc<str>,
    held: HeldTraces,
    artifacts: Artifacts,
    copy: KeptCopy,
    /// When the memory batches freed was last given back.
    trim: Trim,
    duty: Duty,
    /// The analyzer's recent share of a CPU, to turn a decode's predicted CPU time into wall
    /// time.
    share: CpuShare,
    /// The full analyses light batches make: which spans get them, the thread that makes
    /// them, the spans waiting for theirs and the last job's number.
    spotlight: Spotlight,
    full: FullThread,
    spotlit: Vec<Spotlit>,
    next_full: u64,
    /// Instrumentation scope of rebuilt spans.
    scope: InstrumentationScope,
    /// Whether threads refused a ring were reported.
    refusal_reported: bool,
}

impl<P: SpanProcessor> Analyzer<P> {
    /// An analyzer exporting to `inner`, configured by `cfg`, judging rebuilt spans with
    /// `judge`; `store` keeps its artifacts (none without one).
    pub(crate) fn new(
        inner: Arc<P>,
        cfg: &Config,
        judge: Arc<Judge>,
        sources: Arc<str>,
        stats: Arc<Stats>,
        store: Option<Box<dyn ArtifactStore>>,
    ) -> Self {
        Analyzer {
            inner,
            held: HeldTraces::new(cfg.hold_spans, judge.clone(), stats.clone()),
            judge,
            stats,
            detail: cfg.detail,
            max_events: cfg.max_events,
            sources,
            artifacts: Artifacts::new(store, cfg.artifacts_per_sec),
            copy: KeptCopy::default(),
            trim: Trim::default(),
            duty: Duty::default(),
            share: CpuShare::default(),
            spotlight: Spotlight::new(cfg.full_analysis_cpu),
            full: FullThread::default(),
            spotlit: Vec::new(),
            next_full: 0,
            scope: InstrumentationScope::builder("granular").build(),
            refusal_reported: false,
        }
    }

    /// Receives messages until the work that needs the recorder has waited its batch delay
    /// (or a flush, or a full batch), then does all of it from one copy of the rings. Held
    /// spans are decided as they arrive.
    fn run(mut self, mut inbox: Inbox) {
        let mut batch = Batch::default();
        while inbox.open {
            let after_violations = self.copy.after_violations();
            let idle = if after_violations || self.awaiting_full() {
                DELAY_RECHECK
            } else {
                IDLE_WAIT
            };
            let Some(messages) = inbox.receive(batch.wait(Instant::now(), idle)) else {
                break;
            };
            for msg in messages {
                self.accept(msg, &mut batch);
                if batch.full() {
                    break;
                }
            }
            self.collect_full(None);
            crate::capture::runtime_tasks::sample();
            self.report_refused_threads();
            let expired = self.held.expire(Instant::now());
            self.release(expired, &mut batch);
            let now = Instant::now();
            if !batch.is_empty() && (!batch.waiting() || self.copy.due(now)) {
                batch.wait_for(now, batch_delay());
                self.copy.checked(now);
                self.top_up(&batch);
            } else if batch.is_empty() && after_violations && self.copy.due(now) {
                self.copy.checked(now);
                self.copy.keep_current();
            }
            if batch.ready(now) {
                self.process(batch.take());
            }
        }
        let held = self.held.decide_all();
        self.release(held, &mut batch);
        self.process(batch);
        self.collect_full(Some(spotlit::PATIENCE));
    }

    /// Says once that threads found no room in the recorder: what they start is not
    /// recorded, so their violating spans have no breakdown (or, in `violations` mode, are not
    /// exported). The shutdown line counts what they dropped.
    fn report_refused_threads(&mut self) {
        if self.refusal_reported {
            return;
        }
        let Some(recorder) = crate::recorder::FlightRecorder::get() else {
            return;
        };
        let refused = recorder.refused_threads();
        if refused == 0 {
            return;
        }
        self.refusal_reported = true;
        let size = recorder.size();
        tracing::warn!(
            "granular: {refused} thread(s) found no room in the recorder ({} rings in \
             GRANULAR_RECORDER_MB={}): they record nothing, so what they run has no breakdown \
             and, with GRANULAR_SAMPLE=violations, their violating traces are not exported; \
             raise GRANULAR_RECORDER_MB",
            recorder.rings_in_use(),
            size.total_bytes >> 20,
        );
    }

    /// Takes one message into the batch (or the held traces).
    fn accept(&mut self, msg: Msg, batch: &mut Batch) {
        if announces_export(&msg) {
            self.copy.wanted(Instant::now());
        }
        match msg {
            Msg::Enrich(s, j) => batch.spans.push((*s, j)),
            Msg::Hold(s, j) => {
                let released = self.held.hold(*s, j);
                self.release(released, batch);
            }
            Msg::Rebuild(r) => batch.rebuilds.push(r),
            Msg::Flush(ack) => {
                let released = self.held.decide_all();
                self.release(released, batch);
                batch.acks.push(ack);
            }
        }
    }

    /// Spans of decided traces: to the batch, or exported as they are.
    fn release(&self, released: Released, batch: &mut Batch) {
        batch.spans.extend(released.analyze);
        for (span, j) in released.plain {
            self.export_plain(span, &j);
        }
    }

    /// Exports a span without a breakdown, its judgement on it where a rule applied.
    fn export_plain(&self, mut span: SpanData, j: &Judgement) {
        if j.rule.is_some() {
            self.judge.annotate(&mut span, j);
        }
        self.inner.on_end(span);
    }

    /// Brings the kept copy up to date from where the waiting batch's window will begin, so
    /// that the copy taken when it is processed appends only the last milliseconds.
    fn top_up(&mut self, batch: &Batch) {
        if crate::recorder::FlightRecorder::get().is_none() {
            return;
        }
        let cal = crate::clock::Calibration::now();
        // Read at every top-up as well, so a batch's prediction sees the last 10 ms's share.
        self.share.update();
        let earliest = window::earliest_start(&batch.spans, &batch.rebuilds, &cal);
        let from = window::window_start(earliest, self.overloaded());
        self.copy.top_up(cal.unix_to_ticks(from));
    }

    /// Whether full analysis would take the analyzer past its duty while the rings wrap fast
    /// enough to shorten the batch wait: a busy service, not a slow build analyzing a few
    /// requests. Then traces are rebuilt and analyzed from a light decode until enough time
    /// has passed.
    fn overloaded(&self) -> bool {
        self.duty.exceeded(Instant::now()) && rings_wrap_fast()
    }

    /// Does a ready batch's work and answers the flushes waiting for it.
    fn process(&mut self, batch: Batch) {
        if !batch.is_empty() {
            self.pass(batch.spans, &batch.rebuilds);
            self.trim.after_batch(Instant::now());
        }
        if !batch.acks.is_empty() {
            self.collect_full(Some(spotlit::PATIENCE));
        }
        for ack in batch.acks {
            let _ = ack.send(());
        }
    }
}

/// Whether a message brings a trace to export: the copy of busy rings is then kept current
/// for a while ([`copy::KEEP_CURRENT_FOR`]).
fn announces_export(msg: &Msg) -> bool {
    match msg {
        Msg::Enrich(..) | Msg::Rebuild(_) => true,
        Msg::Hold(_, j) => j.violated,
        Msg::Flush(_) => false,
    }
}

/// The receiving end of the analyzer's channel.
struct Inbox {
    rx: Receiver<Msg>,
    /// False once every sender is gone.
    open: bool,
}

impl Inbox {
    /// What arrived, after waiting as `wait` says; `None` when the channel closed while the
    /// analyzer blocked on it. The messages are taken as the iterator is read: what a full
    /// batch leaves stays in the channel.
    fn receive(&mut self, wait: Wait) -> Option<impl Iterator<Item = Msg> + '_> {
        let first = match wait {
            Wait::Sleep(d) => {
                std::thread::sleep(d);
                None
            }
            Wait::Receive(d) => match self.rx.recv_timeout(d) {
                Ok(msg) => Some(msg),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => {
                    self.open = false;
                    return None;
                }
            },
        };
        let rest = std::iter::from_fn(|| match self.rx.try_recv() {
            Ok(msg) => Some(msg),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => {
                self.open = false;
                None
            }
        });
        Some(first.into_iter().chain(rest))
    }
}

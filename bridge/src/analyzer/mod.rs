//! The analyzer thread: takes what the judges sent ([`Msg`]), holds tracing-opentelemetry's
//! spans until their trace is decided, and once per batch copies the recorder's window,
//! decodes it, rebuilds the traces the source sampler chose, and gives each violating (or
//! baseline) span its breakdown, span events and artifact before passing it to the exporting
//! processor.

pub mod artifacts;
mod cpu_share;
pub mod enrich;

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError, sync_channel};
use std::time::{Duration, Instant, UNIX_EPOCH};

use opentelemetry::InstrumentationScope;
use opentelemetry::trace::TraceId;
use opentelemetry_sdk::trace::{SpanData, SpanProcessor};

use crate::analysis::breakdown::RequestWork;
use crate::analysis::idmap::IdSet;
use crate::analysis::rebuild::rebuild;
use crate::analysis::{
    Breakdown, Decoded, Target, analyze_with, decode, decode_spans, decode_spans_by_otel_id,
    decode_spans_of,
};
use crate::clock::{self, Calibration};
use crate::config::Config;
use crate::recorder::{FlightRecorder, RecorderSnapshot};
use crate::slo::message::{Msg, RebuildRequest};
use crate::slo::{Judge, Judgement, Stats};
use artifacts::ArtifactStore;
use cpu_share::CpuShare;
use enrich::Extras;

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
            yield_to_the_application();
            analyzer.run(rx)
        });
    if let Err(e) = spawned {
        tracing::warn!(
            "granular: cannot start the analyzer thread ({e}); spans are exported without breakdowns"
        );
    }
    tx
}

fn unix_ns(t: std::time::SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Where a trace rebuilt from the recorder ends, each a counter of [`Stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TraceFate {
    Whole,
    /// Spans missing: the rings overwrote them.
    Partial,
    /// Spans found still open (their close was not found).
    Unfinished,
    /// Nothing found: the rings overwrote it all.
    Lost,
    /// Spans missing though the rings overwrote nothing of the trace's window.
    NotFound,
}

impl TraceFate {
    /// The fate of a trace that had `spans` spans, of which `exported` were found and
    /// rebuilt and `unfinished` found still open; `overwritten`: the rings overwrote records
    /// of its window.
    fn of(spans: usize, exported: usize, unfinished: usize, overwritten: bool) -> Self {
        let missing = spans > exported + unfinished;
        match (exported, missing, overwritten) {
            (0, _, true) => Self::Lost,
            (0, _, false) => Self::NotFound,
            (_, true, true) => Self::Partial,
            (_, true, false) => Self::NotFound,
            _ if unfinished > 0 => Self::Unfinished,
            _ => Self::Whole,
        }
    }

    fn counter(self, stats: &Stats) -> &AtomicU64 {
        match self {
            Self::Whole => &stats.exported_traces,
            Self::Partial => &stats.partial_traces,
            Self::Unfinished => &stats.unfinished_traces,
            Self::Lost => &stats.lost_traces,
            Self::NotFound => &stats.not_found_traces,
        }
    }
}

struct Held {
    spans: Vec<(SpanData, Judgement)>,
    violated: bool,
    since: Instant,
}

/// The background worker; owns the held traces and the artifact store.
pub(crate) struct Analyzer<P: SpanProcessor> {
    inner: Arc<P>,
    cfg: Arc<Config>,
    judge: Arc<Judge>,
    sources: Arc<str>,
    stats: Arc<Stats>,
    store: Option<Box<dyn ArtifactStore>>,
    held: HashMap<TraceId, Held>,
    held_spans: usize,
    /// When the last fully analysed batch ended, and what it cost (wall time).
    last_full: (Instant, Duration),
    /// The last batch's copy of the rings, which the next batch brings up to date.
    copy: RecorderSnapshot,
    /// (second, artifacts built in it), for `GRANULAR_ARTIFACTS_PER_SEC`.
    artifacts_this_sec: (u64, u32),
    /// Instrumentation scope of rebuilt spans.
    scope: InstrumentationScope,
    /// The analyzer's recent share of a CPU, to turn a decode's predicted CPU time into wall
    /// time.
    share: CpuShare,
}

const HOLD_TIMEOUT: Duration = Duration::from_secs(30);

/// The earliest start (Unix ns) of the spans and traces of a batch: where its window begins.
fn earliest_start(
    batch: &[(SpanData, Judgement)],
    rebuilds: &[RebuildRequest],
    cal: &Calibration,
) -> u64 {
    batch
        .iter()
        .map(|(s, _)| unix_ns(s.start_time))
        .chain(rebuilds.iter().map(|r| cal.to_unix_ns(r.start_ticks)))
        .min()
        .unwrap_or(0)
}

/// The analyzer's nice value. Sharing a CPU with the application at nice 0, a batch's analysis
/// took half the CPU from requests for tens of milliseconds (p99 at 15k requests/s on one core:
/// 42 ms against 15 ms without telemetry; still 20–24 ms once the culprit search was linear).
/// At nice 10 the scheduler gives the application about 90 % of a contended CPU; the analyzer
/// keeps the rest, more than its duty ([`ANALYSIS_DUTY`]) and its light analyses at
/// saturation need (it tops up its copy while a batch waits, so being preempted does not cost
/// it records; see [`Analyzer::top_up`]).
const ANALYZER_NICE: i32 = 10;

/// Lowers the calling thread's scheduling priority to [`ANALYZER_NICE`] (raising a nice value
/// needs no privilege). Where that fails, the thread keeps its priority and says so once.
fn yield_to_the_application() {
    let tid = crate::recorder::current_tid() as libc::id_t;
    // SAFETY: setpriority has no memory preconditions; on Linux, PRIO_PROCESS with a thread id
    // sets that thread's nice value.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, tid, ANALYZER_NICE) };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        tracing::debug!("granular: the analyzer keeps its priority (setpriority: {e})");
    }
}

/// How long work that needs the recorder waits for more to join it. Each batch copies and
/// decodes the rings from [`DECODE_MARGIN_NS`] before its earliest span, so batching many
/// spans into one pass is what keeps the analyzer's cost near one decode of every record
/// (analysing each violation alone decoded the same ~300 ms of records again and again).
/// Shortened when the rings wrap fast (see [`batch_delay`]).
const BATCH_DELAY: Duration = Duration::from_millis(500);
/// How often a waiting batch works out its wait again.
const DELAY_RECHECK: Duration = Duration::from_millis(10);
/// [`BATCH_DELAY`], or a quarter of the rings' reach when they wrap faster than that: a busy
/// worker (~2 KB of records a request at 20k requests/s fills 16 MiB in ~0.4 s) must not
/// overwrite a slow trace while it waits for its batch.
fn batch_delay() -> Duration {
    let reach = FlightRecorder::get().and_then(|r| r.reach(clock::now()));
    match reach {
        Some(ticks) => {
            let ns = Calibration::now().ticks_to_ns(ticks) / 4;
            BATCH_DELAY.min(Duration::from_nanos(ns))
        }
        None => BATCH_DELAY,
    }
}

/// How long after a trace to export arrived the analyzer keeps its copy of busy rings current
/// between batches. The first violating trace after the load rose was found with its first
/// spans overwritten: it had begun 150 ms before its close woke the analyzer, on a ring that
/// held 190 ms at that load, and the analyzer (nice 10 on a saturated CPU) copied it ~40 ms
/// too late. Kept current, the copy lags by one recheck and a wake-up, not by a whole trace.
/// Costs a ~60 µs copy per [`DELAY_RECHECK`] at saturation, and only after violations.
const KEEP_CURRENT_FOR: Duration = Duration::from_secs(10);

/// The largest share of wall time the analyzer spends on full analysis (decoding every record
/// of a window and analysing each span). Beyond it, on a saturated service, traces are
/// analysed from a light decode (their own spans and threads: no polls, no culprit).
const ANALYSIS_DUTY: f64 = 0.1;

/// A batch this large is analysed at once.
const BATCH_MAX: usize = 4096;

/// How far before the earliest span of a batch the analyzer copies and decodes the rings:
/// long enough for a culprit's poll that began before the span (a 200 ms CPU hog) and for the
/// spans and tasks created for the request, short enough that a busy service's copy and decode
/// stay small (decode is ~40–100 ns per record in the window).
const DECODE_MARGIN_NS: u64 = 200_000_000;
/// What a full decode costs per record, roughly (a light one ~5 ns): a batch whose window holds
/// more records than its time budget allows at this rate is decoded lightly.
const FULL_DECODE_NS_PER_RECORD: u64 = 100;
/// How far before a root's start time a span-only decode begins: the root's creation record is
/// stamped before the start time is read (by the time its fields take to record).
const ROOT_MARGIN_NS: u64 = 1_000_000;

impl<P: SpanProcessor> Analyzer<P> {
    pub(crate) fn new(
        inner: Arc<P>,
        cfg: Arc<Config>,
        judge: Arc<Judge>,
        sources: Arc<str>,
        stats: Arc<Stats>,
        store: Option<Box<dyn ArtifactStore>>,
    ) -> Self {
        Analyzer {
            inner,
            cfg,
            judge,
            sources,
            stats,
            store,
            held: HashMap::new(),
            held_spans: 0,
            artifacts_this_sec: (0, 0),
            last_full: (Instant::now(), Duration::ZERO),
            copy: RecorderSnapshot::default(),
            scope: InstrumentationScope::builder("granular").build(),
            share: CpuShare::default(),
        }
    }

    /// Receives messages until the work that needs the recorder has waited [`BATCH_DELAY`]
    /// (or a flush, or [`BATCH_MAX`] items), then does all of it from one copy of the rings.
    /// Held spans are decided as they arrive.
    fn run(mut self, rx: Receiver<Msg>) {
        let mut to_enrich = Vec::new();
        let mut rebuilds = Vec::new();
        let mut acks = Vec::new();
        // When the pending batch's first item arrived, how long it may wait, and when that
        // was last worked out: the load can rise while a batch waits (the rings then wrap
        // sooner), so the wait is shortened as the rings' reach shrinks.
        let mut since: Option<Instant> = None;
        let mut delay = BATCH_DELAY;
        let mut checked = Instant::now();
        let mut expired_at = Instant::now();
        // When the last trace to export arrived: for a while after it, the copy of busy rings
        // is kept current between batches too (see `KEEP_CURRENT_FOR`).
        let mut wanted_at: Option<Instant> = None;
        let mut connected = true;
        while connected {
            let after_violations = wanted_at.is_some_and(|t| t.elapsed() < KEEP_CURRENT_FOR);
            let idle_wait = if after_violations {
                DELAY_RECHECK
            } else {
                Duration::from_secs(1)
            };
            let wait = since.map_or(idle_wait, |s| {
                (s + delay)
                    .saturating_duration_since(Instant::now())
                    .min(DELAY_RECHECK)
            });
            // While a batch waits, sleep and then take what arrived, rather than block on the
            // channel: a blocked receiver is woken by every send, a futex wake and two context
            // switches on the request path for each violating trace (~1 % of the samples of a
            // saturated service, both sides together). Idle, block: the first item wakes it.
            let first = if since.is_some() {
                std::thread::sleep(wait);
                None
            } else {
                match rx.recv_timeout(wait) {
                    Ok(msg) => Some(msg),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            };
            let rest = std::iter::from_fn(|| match rx.try_recv() {
                Ok(msg) => Some(msg),
                Err(TryRecvError::Empty) => None,
                Err(TryRecvError::Disconnected) => {
                    connected = false;
                    None
                }
            });
            for msg in first.into_iter().chain(rest) {
                if matches!(&msg, Msg::Enrich(..) | Msg::Rebuild(_))
                    || matches!(&msg, Msg::Hold(_, j) if j.violated)
                {
                    wanted_at = Some(Instant::now());
                }
                match msg {
                    Msg::Enrich(s, j) => to_enrich.push((*s, j)),
                    Msg::Hold(s, j) => self.hold(*s, j, &mut to_enrich),
                    Msg::Rebuild(r) => rebuilds.push(r),
                    Msg::Flush(ack) => {
                        self.expire_held(&mut to_enrich, true);
                        acks.push(ack);
                    }
                }
                if to_enrich.len() + rebuilds.len() >= BATCH_MAX {
                    break;
                }
            }
            if expired_at.elapsed() >= Duration::from_secs(1) {
                self.expire_held(&mut to_enrich, false);
                expired_at = Instant::now();
            }
            let pending = to_enrich.len() + rebuilds.len();
            let now = Instant::now();
            if pending > 0 && (since.is_none() || now - checked >= DELAY_RECHECK) {
                since.get_or_insert(now);
                delay = batch_delay();
                checked = now;
                self.top_up(&to_enrich, &rebuilds);
            } else if pending == 0 && after_violations && now - checked >= DELAY_RECHECK {
                checked = now;
                self.keep_current();
            }
            let ready = since.is_some_and(|s| now - s >= delay);
            if ready || !acks.is_empty() || pending >= BATCH_MAX {
                self.process(
                    std::mem::take(&mut to_enrich),
                    std::mem::take(&mut rebuilds),
                );
                since = None;
                for ack in acks.drain(..) {
                    let _ = ack.send(());
                }
            }
        }
        self.expire_held(&mut to_enrich, true);
        self.process(to_enrich, rebuilds);
    }

    fn hold(&mut self, span: SpanData, j: Judgement, out: &mut Vec<(SpanData, Judgement)>) {
        let trace = span.span_context.trace_id();
        let local_root = j.local_root;
        let h = self.held.entry(trace).or_insert_with(|| Held {
            spans: Vec::new(),
            violated: false,
            since: Instant::now(),
        });
        h.violated |= j.violated;
        h.spans.push((span, j));
        self.held_spans += 1;
        if local_root {
            self.decide(trace, out);
        }
        while self.held_spans > self.cfg.hold_spans {
            self.stats.hold_overflow.fetch_add(1, Ordering::Relaxed);
            let Some(oldest) = self
                .held
                .iter()
                .min_by_key(|(_, h)| h.since)
                .map(|(t, _)| *t)
            else {
                break;
            };
            self.decide(oldest, out);
        }
    }

    /// Exports or drops a held trace.
    fn decide(&mut self, trace: TraceId, out: &mut Vec<(SpanData, Judgement)>) {
        let Some(h) = self.held.remove(&trace) else {
            return;
        };
        self.held_spans -= h.spans.len();
        let trace_id = u128::from_be_bytes(trace.to_bytes());
        let keep = self.judge.exports_trace(h.violated, trace_id);
        if !keep {
            self.stats.dropped_traces.fetch_add(1, Ordering::Relaxed);
            self.stats
                .dropped_healthy_spans
                .fetch_add(h.spans.len() as u64, Ordering::Relaxed);
            return;
        }
        self.stats.chosen_traces.fetch_add(1, Ordering::Relaxed);
        self.stats.exported_traces.fetch_add(1, Ordering::Relaxed);
        for (mut span, j) in h.spans {
            if j.violated || (j.wants_detail() && !h.violated) {
                out.push((span, j));
            } else {
                if j.rule.is_some() {
                    self.judge.annotate(&mut span, &j);
                }
                self.inner.on_end(span);
            }
        }
    }

    /// Decides the traces held longer than [`HOLD_TIMEOUT`] (all of them with `all`).
    fn expire_held(&mut self, out: &mut Vec<(SpanData, Judgement)>, all: bool) {
        let due: Vec<TraceId> = self
            .held
            .iter()
            .filter(|(_, h)| all || h.since.elapsed() > HOLD_TIMEOUT)
            .map(|(t, _)| *t)
            .collect();
        for t in due {
            self.decide(t, out);
        }
    }

    /// Enriches `batch` and exports the traces `rebuilds` names, from one recorder snapshot.
    fn process(&mut self, mut batch: Vec<(SpanData, Judgement)>, rebuilds: Vec<RebuildRequest>) {
        if batch.is_empty() && rebuilds.is_empty() {
            return;
        }
        // Context switches still in the kernel's rings, and the threads' schedstat right now,
        // belong to the windows analysed now (the sampler thread may lag under load).
        crate::capture::perf::drain_all();
        crate::capture::os::sample_now();
        let cal = Calibration::now();
        // How long this batch may take: the traces queued behind it wait as long, and the
        // rings overwrite them meanwhile.
        let budget = batch_delay() / 2;
        let mut light = self.overloaded();
        let earliest = earliest_start(&batch, &rebuilds, &cal);
        // A light decode needs only the traces' own time: their records begin with the root's
        // creation, stamped a little before the start time the request carries.
        let light_start = earliest.saturating_sub(ROOT_MARGIN_NS);
        let mut window_start = if light {
            light_start
        } else {
            earliest.saturating_sub(DECODE_MARGIN_NS)
        };
        // Only the window is copied: names of spans and tasks created before it (a long-lived
        // culprit's spawn site) are then unknown, and say so. The last batch's copy is
        // extended, so overlapping windows copy each record about once.
        let recorder = FlightRecorder::get();
        let snapshot = recorder
            .map(|r| {
                let earlier = std::mem::take(&mut self.copy);
                r.snapshot_since(cal.unix_to_ticks(window_start).max(1), earlier)
            })
            .unwrap_or_default();
        let taken_at = cal.to_unix_ns(clock::now());
        // A window too busy to decode fully within the budget (the load just rose) is decoded
        // lightly at once, rather than after a stall that loses the traces queued behind it.
        // The budget is wall time and the rate CPU time: on a core the application saturates,
        // the analyzer (nice 10) gets about a tenth of it (light batches of 2.5 ms CPU took up
        // to 28 ms), and a full decode that fits the budget in CPU time would take ten times
        // as long, with no top-up meanwhile while the rings wrap.
        let records: usize = snapshot.threads.iter().map(|t| t.records().len()).sum();
        let cpu = records as f64 * FULL_DECODE_NS_PER_RECORD as f64;
        let predicted = Duration::from_nanos((cpu / self.share.update()) as u64);
        if !light && predicted > budget {
            light = true;
            window_start = light_start;
            // Counted as if spent, so the following batches stay light as long as that full
            // batch would have kept the analyzer past its duty.
            self.last_full = (Instant::now(), predicted);
        }
        let started = Instant::now();
        // A bug in the analysis must cost a breakdown, never the span or the thread.
        let decoded = catch_unwind(AssertUnwindSafe(|| {
            if light && rebuilds.is_empty() {
                // Spans tracing-opentelemetry built: found by their ids.
                let ids: IdSet<u64> = batch
                    .iter()
                    .map(|(s, _)| u64::from_be_bytes(s.span_context.span_id().to_bytes()))
                    .collect();
                decode_spans_by_otel_id(&snapshot, &cal, window_start, taken_at, &ids)
            } else if light {
                // The traces' own keys when every one noted them, else found from the roots.
                let keys: Option<IdSet<u64>> = rebuilds
                    .iter()
                    .map(|r| r.span_keys.as_deref())
                    .try_fold(IdSet::default(), |mut all, keys| {
                        all.extend(keys?);
                        Some(all)
                    });
                match keys {
                    Some(keys) => decode_spans(&snapshot, &cal, window_start, taken_at, &keys),
                    None => {
                        let roots: Vec<u64> = rebuilds.iter().map(|r| r.root).collect();
                        decode_spans_of(&snapshot, &cal, window_start, taken_at, &roots)
                    }
                }
            } else {
                decode(&snapshot, &cal, window_start, taken_at)
            }
        }))
        .ok();
        // Kept for the next batch: each ring's copy keeps at most two rings of history, its
        // oldest records trimmed beyond (`ring::COPY_REACH`).
        self.copy = snapshot;
        for r in rebuilds {
            let rebuilt = decoded.as_ref().and_then(|d| {
                catch_unwind(AssertUnwindSafe(|| {
                    let rebuilt = rebuild(d, r.root, r.trace_id, &self.scope);
                    // The rings overwrote records of the trace's window.
                    let start = cal.to_unix_ns(r.start_ticks);
                    let overwritten = d.complete_since.is_some_and(|c| c > start);
                    (rebuilt, overwritten)
                }))
                .ok()
            });
            let Some((rebuilt, overwritten)) = rebuilt else {
                if self.stats.rebuild_errors.fetch_add(1, Ordering::Relaxed) == 0 {
                    tracing::warn!(
                        "granular: rebuilding a trace from the recorder failed; not exported (counted as rebuild_errors)"
                    );
                }
                continue;
            };
            self.stats
                .unfinished_spans
                .fetch_add(rebuilt.unfinished as u64, Ordering::Relaxed);
            let fate = TraceFate::of(
                r.span_count,
                rebuilt.spans.len(),
                rebuilt.unfinished,
                overwritten,
            );
            fate.counter(&self.stats).fetch_add(1, Ordering::Relaxed);
            for span in rebuilt.spans {
                let j = self.judge.judge_span_data(&span);
                if j.wants_detail() {
                    batch.push((span, j));
                } else {
                    let mut span = span;
                    if j.rule.is_some() {
                        self.judge.annotate(&mut span, &j);
                    }
                    self.inner.on_end(span);
                }
            }
        }
        // A light batch builds no artifacts: a timeline without polls would mislead.
        let with_artifact = if light {
            vec![false; batch.len()]
        } else {
            self.artifact_budget(&batch)
        };
        for ((mut span, j), with_artifact) in batch.into_iter().zip(with_artifact) {
            self.judge.annotate(&mut span, &j);
            // Past the budget, the rest of the batch skips the culprit search and artifacts. The
            // budget shrinks with the rings' reach if the load rises meanwhile: a full batch
            // begun on a quiet service must not keep the analyzer while the rings wrap under
            // it (at nice 10 a saturated core leaves it a tenth of the CPU).
            let late = started.elapsed() > budget.min(batch_delay() / 2);
            let light = light || late;
            let with_artifact = with_artifact && !late;
            let analysed = decoded.as_ref().and_then(|d| {
                catch_unwind(AssertUnwindSafe(|| {
                    self.analyse(d, &span, light, with_artifact)
                }))
                .ok()
            });
            let synthetic = match analysed {
                Some((b, artifact)) => {
                    let skipped = j.violated && self.store.is_some() && !with_artifact;
                    let extras = Extras {
                        sources: &self.sources,
                        artifact,
                        artifact_skipped: skipped.then_some(if light {
                            "overload"
                        } else {
                            "rate_limit"
                        }),
                        max_events: self.cfg.max_events,
                    };
                    let counter = if light {
                        &self.stats.light_analysed
                    } else {
                        &self.stats.enriched
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                    enrich::enrich(&mut span, &b, self.cfg.detail, &extras)
                }
                None => {
                    if self.stats.analysis_errors.fetch_add(1, Ordering::Relaxed) == 0 {
                        tracing::warn!(
                            "granular: analysing span {:?} failed; exported without breakdown",
                            span.name
                        );
                    }
                    enrich::mark_skipped(&mut span, "analysis_error");
                    Vec::new()
                }
            };
            self.inner.on_end(span);
            for s in synthetic {
                self.inner.on_end(s);
            }
        }
        if !light {
            self.last_full = (Instant::now(), started.elapsed());
        }
        self.share.update();
        self.stats
            .analyzer_cpu_ns
            .store(self.share.run_ns(), Ordering::Relaxed);
    }

    /// Brings the kept copy of the rings up to date while a batch waits (every
    /// [`DELAY_RECHECK`]), from where the batch's window will begin, so that the copy taken
    /// when it is processed appends only the last few milliseconds. Copying a whole window
    /// at once raced the writer at a saturated ring's edge: preempted for 20–30 ms (at nice
    /// 10 on a busy core), the reader lost the window's oldest records, the first spans of
    /// the traces it was about to export.
    fn top_up(&mut self, batch: &[(SpanData, Judgement)], rebuilds: &[RebuildRequest]) {
        let Some(recorder) = FlightRecorder::get() else {
            return;
        };
        let cal = Calibration::now();
        // Read at every top-up as well, so a batch's prediction sees the last 10 ms's share.
        self.share.update();
        let margin = if self.overloaded() {
            ROOT_MARGIN_NS
        } else {
            DECODE_MARGIN_NS
        };
        let from = earliest_start(batch, rebuilds, &cal).saturating_sub(margin);
        let earlier = std::mem::take(&mut self.copy);
        self.copy = recorder.snapshot_since(cal.unix_to_ticks(from).max(1), earlier);
    }

    /// Brings the kept copy of busy rings up to date while no batch waits, keeping all it
    /// holds (up to `ring::COPY_REACH` rings of history): the next trace to export may have
    /// begun before its close wakes the analyzer. A quiet ring holds seconds and is left alone.
    fn keep_current(&mut self) {
        let Some(recorder) = FlightRecorder::get() else {
            return;
        };
        if batch_delay() < BATCH_DELAY {
            let earlier = std::mem::take(&mut self.copy);
            self.copy = recorder.snapshot_since(1, earlier);
        }
    }

    /// Whether full analysis would take the analyzer past [`ANALYSIS_DUTY`] (the last full
    /// batch's cost, spread over the time since it ended, is too large a share) while the
    /// rings wrap fast enough to shorten the batch wait: a busy service, not a slow build
    /// analysing a few requests. Then traces are rebuilt and analysed from a light decode
    /// (`granular.analysis=light`: no polls, no culprit) until enough time has passed.
    fn overloaded(&self) -> bool {
        let (ended, cost) = self.last_full;
        ended.elapsed().as_secs_f64() * ANALYSIS_DUTY < cost.as_secs_f64()
            && batch_delay() < BATCH_DELAY
    }

    /// Which spans of `batch` get an artifact: violating ones (not baseline samples: their
    /// timelines would cost storage for what is, by definition, normal), slowest first, within
    /// `GRANULAR_ARTIFACTS_PER_SEC`.
    fn artifact_budget(&mut self, batch: &[(SpanData, Judgement)]) -> Vec<bool> {
        let mut chosen = vec![false; batch.len()];
        if self.store.is_none() {
            return chosen;
        }
        let sec = clock::monotonic_ns() / 1_000_000_000;
        if self.artifacts_this_sec.0 != sec {
            self.artifacts_this_sec = (sec, 0);
        }
        let mut violating: Vec<usize> = (0..batch.len()).filter(|i| batch[*i].1.violated).collect();
        let length = |i: &usize| {
            let s = &batch[*i].0;
            s.end_time.duration_since(s.start_time).unwrap_or_default()
        };
        violating.sort_by_key(|i| std::cmp::Reverse(length(i)));
        let room = self
            .cfg
            .artifacts_per_sec
            .saturating_sub(self.artifacts_this_sec.1);
        for i in violating.into_iter().take(room as usize) {
            chosen[i] = true;
            self.artifacts_this_sec.1 += 1;
        }
        chosen
    }

    /// The breakdown of one span and, `with_artifact`, its artifact link.
    fn analyse(
        &self,
        d: &Decoded,
        span: &SpanData,
        light: bool,
        with_artifact: bool,
    ) -> (Breakdown, Option<String>) {
        let span_id = u64::from_be_bytes(span.span_context.span_id().to_bytes());
        let trace_id = u128::from_be_bytes(span.span_context.trace_id().to_bytes());
        let target = Target {
            otel_span_id: span_id,
            name: span.name.to_string(),
            start: unix_ns(span.start_time),
            end: unix_ns(span.end_time),
        };
        let b = analyze_with(d, &target, light);
        let artifact = self
            .store
            .as_ref()
            .filter(|_| with_artifact)
            .and_then(|store| {
                let work = d
                    .by_otel_id
                    .get(&span_id)
                    .map(|k| RequestWork::collect(d, *k))
                    .unwrap_or_default();
                let bytes =
                    crate::timeline::encode_perfetto(&artifacts::timeline(d, &b, &work, trace_id));
                let id = artifacts::artifact_id(trace_id, span_id);
                match store.put(&id, trace_id, span_id, bytes) {
                    Ok(link) => Some(link),
                    Err(e) => {
                        if self.stats.artifact_errors.fetch_add(1, Ordering::Relaxed) == 0 {
                            tracing::warn!("granular: {e}");
                        }
                        None
                    }
                }
            });
        (b, artifact)
    }
}

#[cfg(test)]
mod tests {
    use super::TraceFate;

    #[test]
    fn every_rebuilt_trace_has_one_fate() {
        // (spans the trace had, found and rebuilt, found still open, rings overwrote its window)
        for (case, fate) in [
            ((4, 4, 0, false), TraceFate::Whole),
            ((4, 4, 0, true), TraceFate::Whole),
            ((4, 3, 0, true), TraceFate::Partial),
            ((4, 3, 0, false), TraceFate::NotFound),
            ((4, 0, 0, true), TraceFate::Lost),
            ((4, 0, 0, false), TraceFate::NotFound),
            ((4, 0, 4, false), TraceFate::NotFound),
            ((4, 3, 1, false), TraceFate::Unfinished),
            ((4, 2, 1, true), TraceFate::Partial),
        ] {
            let (spans, exported, unfinished, overwritten) = case;
            assert_eq!(
                TraceFate::of(spans, exported, unfinished, overwritten),
                fate,
                "{case:?}"
            );
        }
    }
}

//! The thread that exports every trace the analyzer does not, rebuilt from the rings as they
//! are written (`GRANULAR_ALL_FROM=recording`): `all` mode with Granular's own subscriber on
//! the request path instead of tracing-opentelemetry.
//!
//! ```text
//! rings ─(every 10 ms: what each ring got since)─> TraceStream ─> spans of released traces
//!   ─> OTel spans as tracing-opentelemetry builds them (analysis::rebuild::span_data),
//!      judged and annotated as `all` mode's processor does ─> the exporting processor
//! ```
//! Violating traces go from the source sampler to the analyzer, which exports them with their
//! breakdown; their closes say so and the stream drops them (one the analyzer's full queue
//! turned away is lost, counted in `skipped_queue_full`, as in `violations` mode).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::time::Duration;

use opentelemetry::{InstrumentationScope, KeyValue, StringValue};
use opentelemetry_sdk::trace::SpanProcessor;

use crate::analysis::idmap::IdMap;
use crate::analysis::rebuild::span_data;
use crate::analysis::stream::{Ready, TraceStream};
use crate::clock::{self, Calibration};
use crate::recorder::FlightRecorder;
use crate::recorder::cursor::RingCursor;
use crate::slo::{Judge, Stats};

/// How often the rings are read: a span is exported at most this long after its trace's root
/// closed (plus the exporting processor's own batching), and a ring must not wrap within it.
const PERIOD: Duration = Duration::from_millis(10);

/// How much of the rings' time the stream reads before it ends a pass of [`TraceStream`]:
/// closes wait for the end of their pass in its table of open spans, which this keeps small
/// (see [`TraceStream::feed`]).
const SLICE: Duration = Duration::from_millis(2);

/// A handle on the thread: asks it to export what has closed so far.
#[derive(Debug, Clone)]
pub(crate) struct Streamer {
    tx: SyncSender<SyncSender<()>>,
}

impl Streamer {
    /// Starts the thread reading `recorder`'s rings into `inner`. `None` (logged) when the
    /// thread cannot start.
    pub(crate) fn start<P: SpanProcessor + 'static>(
        recorder: &'static FlightRecorder,
        inner: Arc<P>,
        judge: Arc<Judge>,
        stats: Arc<Stats>,
    ) -> Option<Streamer> {
        let (tx, rx) = sync_channel(4);
        let reader = Reader {
            recorder,
            places: Vec::new(),
            stream: TraceStream::new(),
            names: IdMap::default(),
            scope: InstrumentationScope::builder("granular").build(),
            inner,
            judge,
            stats,
            unexported: 0,
            read_to: 0,
        };
        let spawned = std::thread::Builder::new()
            .name("granular-stream".into())
            .spawn(move || {
                // Like the analyzer's: each pass pauses for the application (a saturated
                // service's pass of 10 ms of traces is ~1.5 ms of CPU, which would otherwise
                // hold every request in flight on its core).
                crate::background::yield_to_the_application();
                reader.run(&rx)
            });
        match spawned {
            Ok(_) => Some(Streamer { tx }),
            Err(e) => {
                tracing::warn!(
                    "granular: cannot start the thread that exports traces from the recording ({e}); only traces the analyzer takes are exported"
                );
                None
            }
        }
    }

    /// Has the thread export every span whose trace is released by now; waits up to
    /// `timeout` for it.
    pub(crate) fn flush(&self, timeout: Duration) -> bool {
        let (ack_tx, ack_rx) = sync_channel(1);
        self.tx.try_send(ack_tx).is_ok() && ack_rx.recv_timeout(timeout).is_ok()
    }
}

struct Reader<P: SpanProcessor> {
    recorder: &'static FlightRecorder,
    places: Vec<RingCursor>,
    stream: TraceStream,
    /// Thread names by OS thread id (`None`: unnamed), shared by the spans that carry them.
    names: IdMap<u64, Option<StringValue>>,
    scope: InstrumentationScope,
    inner: Arc<P>,
    judge: Arc<Judge>,
    stats: Arc<Stats>,
    /// The stream's spans not exported (orphaned or untracked) counted into `stats` so far.
    unexported: u64,
    /// The tick the rings were read up to (0: not read yet).
    read_to: u64,
}

impl<P: SpanProcessor> Reader<P> {
    fn run(mut self, flushes: &Receiver<SyncSender<()>>) {
        loop {
            let flush = match flushes.recv_timeout(PERIOD) {
                Ok(ack) => Some(ack),
                Err(RecvTimeoutError::Timeout) => None,
                // The processor is gone: what is left has nowhere to go.
                Err(RecvTimeoutError::Disconnected) => return,
            };
            self.pass();
            if let Some(ack) = flush {
                let _ = ack.send(());
            }
        }
    }

    /// Reads what every ring got since the last pass, up to now, [`SLICE`] of the rings' time
    /// at a time, and exports what each slice released.
    fn pass(&mut self) {
        // `now` before the rings: a ring created after the list was taken holds only records
        // stamped after `now`, read by the next pass.
        let now = clock::now();
        let rings = self.recorder.rings();
        let cal = Calibration::now();
        let step = cal.ns_to_ticks(SLICE.as_nanos() as u64).max(1);
        // Rings taken since the last pass, announced once.
        for i in self.places.len()..rings.len() {
            let tid = self.recorder.owners(i).last().map_or(0, |o| o.tid);
            self.stream.start_ring(i, tid);
            self.places.push(RingCursor::default());
        }
        // The first pass reads everything written so far at once.
        let mut until = self.read_to;
        loop {
            until = if until == 0 {
                now
            } else {
                until.saturating_add(step).min(now)
            };
            for (i, (ring, place)) in rings.iter().zip(&mut self.places).enumerate() {
                let (missed, records) = place.unread(ring);
                if missed > 0 {
                    self.stream.missed(missed);
                }
                let used = self.stream.feed(i, records, &cal, until);
                place.advance(used);
            }
            for ready in self.stream.end_pass(&cal) {
                // A span is a few µs of work.
                crate::background::yield_point();
                self.export(ready);
            }
            if until >= now {
                break;
            }
        }
        self.read_to = until;
        let c = self.stream.counters();
        let unexported = c.orphaned_spans + c.untracked;
        self.stats
            .stream_unexported_spans
            .fetch_add(unexported - self.unexported, Ordering::Relaxed);
        self.unexported = unexported;
    }

    fn export(&mut self, r: Ready) {
        if r.trace_id == 0 {
            // Its root's ids were overwritten before they were read.
            self.stats
                .stream_unexported_spans
                .fetch_add(1, Ordering::Relaxed);
            return;
        }
        let name = self.thread_name(r.info.tid);
        let mut span = span_data(
            r.info,
            r.end,
            r.busy,
            name,
            r.trace_id,
            r.parent_span_id,
            &self.scope,
        );
        span.parent_span_is_remote = r.remote_parent;
        if r.data_loss {
            span.attributes
                .push(KeyValue::new("granular.data_loss", true));
        }
        // A healthy span (violating ones went to the analyzer with their trace) says what it
        // was judged by, as `all` mode's processor has it say.
        let j = self.judge.judge_span_data(&span);
        if j.rule.is_some() {
            self.judge.annotate(&mut span, &j);
        }
        self.stats.streamed_spans.fetch_add(1, Ordering::Relaxed);
        self.inner.on_end(span);
    }

    /// The name of thread `tid`, looked up among the rings' owners the first time.
    fn thread_name(&mut self, tid: u64) -> Option<StringValue> {
        if !self.names.contains_key(&tid) {
            let rings = self.recorder.rings().len();
            for i in 0..rings {
                for o in self.recorder.owners(i) {
                    let name = o.name.map(|n| StringValue::from(Arc::<str>::from(n)));
                    self.names.insert(o.tid, name);
                }
            }
            // A thread no ring names (tid 0: a ring read after its owner's start was
            // overwritten) is looked up once, not for each of its spans.
            self.names.entry(tid).or_insert(None);
        }
        self.names.get(&tid).cloned().flatten()
    }
}

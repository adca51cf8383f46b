//! What a decode gives: the spans, tasks, jobs and per-thread activity of a window, with
//! times in Unix nanoseconds.

use std::panic::Location;

use tracing::Metadata;

use super::super::idmap::{IdMap, IdSet};
use crate::clock::Calibration;
use crate::recorder::codec::fields::Value;

/// A recorded field value.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    Bool(bool),
    I64(i64),
    F64(f64),
    Str(String),
}

impl From<Value<'_>> for FieldValue {
    fn from(v: Value<'_>) -> Self {
        match v {
            Value::Bool(b) => FieldValue::Bool(b),
            Value::I64(i) => FieldValue::I64(i),
            Value::F64(f) => FieldValue::F64(f),
            Value::Str(text) => FieldValue::Str(text.to_string_lossy()),
        }
    }
}

/// A `tracing` event recorded inside a span.
#[derive(Debug, Clone)]
pub struct EventInfo {
    pub at: u64,
    pub meta: &'static Metadata<'static>,
    pub fields: Vec<(&'static str, FieldValue)>,
}

/// A span as the recorder saw it.
#[derive(Debug, Clone)]
pub struct SpanInfo {
    pub name: &'static str,
    pub meta: &'static Metadata<'static>,
    pub parent: u64,
    pub otel_span_id: u64,
    /// Set on local roots once their OTel ids were recorded.
    pub trace_id: Option<u128>,
    /// The remote parent's span id, for local roots whose parent came over the wire.
    pub remote_parent: Option<u64>,
    pub start: u64,
    pub end: Option<u64>,
    /// OS thread the span was created on.
    pub tid: u64,
    /// Field values in the order recorded (fields recorded again appear again).
    pub fields: Vec<(&'static str, FieldValue)>,
    pub events: Vec<EventInfo>,
}

/// A task spawn.
#[derive(Debug, Clone)]
pub struct TaskInfo {
    pub parent_task: u64,
    pub parent_span: u64,
    pub spawned_at: Option<&'static Location<'static>>,
}

/// One poll of a task on a thread.
#[derive(Debug, Clone)]
pub struct Poll {
    pub task: u64,
    pub start: u64,
    pub end: u64,
    /// Wake-to-poll latency tokio measured, ns (0 = not measured).
    pub sched_latency: u64,
    /// Cumulative (allocations, bytes) at start and end, when the allocator is counted.
    pub alloc: Option<((u64, u64), (u64, u64))>,
    /// True when the poll had not ended at snapshot time.
    pub open: bool,
}

/// A span entered on a thread.
#[derive(Debug, Clone)]
pub struct Entry {
    pub span: u64,
    pub start: u64,
    pub end: u64,
    pub alloc: Option<((u64, u64), (u64, u64))>,
}

/// A `granular::spawn_blocking` job.
#[derive(Debug, Clone, Default)]
pub struct Job {
    pub task: u64,
    pub span: u64,
    pub queued: u64,
    pub started: Option<u64>,
    pub ended: Option<u64>,
    /// The OS thread that ran it (0 until it started).
    pub tid: u64,
}

/// Everything one thread did in the window.
#[derive(Debug, Clone, Default)]
pub struct ThreadActivity {
    pub tid: u64,
    /// tokio worker index, when the thread is a worker.
    pub worker: Option<usize>,
    pub polls: Vec<Poll>,
    pub entries: Vec<Entry>,
    /// Parked intervals (the worker had nothing to do). A worker parked when the window
    /// began has a park from `window_start` (or earlier) on.
    pub parks: Vec<(u64, u64)>,
    /// Latest end among `entries[..=i]`, for [`Self::entries_overlapping`].
    pub entry_reach: Vec<u64>,
    /// Starts of its top-level polls (task hooks), kept or not by a light decode.
    pub poll_starts: StartMarks,
    /// Starts of its outermost span entries (entered while no other span was), kept or not.
    pub outer_entries: StartMarks,
}

/// A thread's starts of one kind of work, thinned for a saturated worker: the time of every
/// [`StartMarks::EVERY`]-th and how many there were. Enough to tell a time before which at
/// least `n` starts lie, without keeping hundreds of thousands of them.
#[derive(Debug, Clone, Default)]
pub struct StartMarks {
    every: Vec<u64>,
    seen: u64,
}

impl StartMarks {
    /// One start in this many is kept.
    pub const EVERY: u64 = 64;

    /// Counts one start; `at` gives its time and is asked only for the kept ones. Starts come
    /// in time order (one thread's records).
    #[inline]
    pub fn note(&mut self, at: impl FnOnce() -> u64) {
        if self.seen % Self::EVERY == 0 {
            self.every.push(at());
        }
        self.seen += 1;
    }

    /// One more piece of work opened on the thread, `depth` of its kind open before it: a
    /// top-level one is counted ([`Self::note`]).
    #[inline]
    pub fn open(&mut self, depth: &mut u32, at: impl FnOnce() -> u64) {
        if *depth == 0 {
            self.note(at);
        }
        *depth += 1;
    }

    /// How many starts were counted.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// A time `x` with at least `n` starts in `[x, t)`; `None` when fewer than `n` are known
    /// before `t`. Kept start `j` is start number `EVERY * j`, so with `k` kept before `t` at
    /// least `EVERY * (k - 1) + 1` starts precede `t`.
    pub fn nth_last_before(&self, t: u64, n: u64) -> Option<u64> {
        let kept = self.every.partition_point(|&x| x < t);
        let back = usize::try_from(n.div_ceil(Self::EVERY)).ok()?;
        let j = kept.checked_sub(1 + back)?;
        Some(self.every[j])
    }
}

impl ThreadActivity {
    /// Sorts the polls, entries and parks by start and works out `entry_reach`, so the
    /// analyzer can binary-search them instead of scanning.
    pub fn index(&mut self) {
        self.polls.sort_unstable_by_key(|p| p.start);
        self.entries.sort_unstable_by_key(|e| e.start);
        let mut reach = 0;
        self.entry_reach = self
            .entries
            .iter()
            .map(|e| {
                reach = reach.max(e.end);
                reach
            })
            .collect();
        self.parks.sort_unstable_by_key(|p| p.0);
    }

    /// Polls overlapping `[a, b]` (polls on one thread do not overlap, so ends are sorted too).
    pub fn polls_overlapping(&self, a: u64, b: u64) -> &[Poll] {
        let from = self.polls.partition_point(|p| p.end < a);
        let to = self.polls.partition_point(|p| p.start <= b);
        &self.polls[from..to.max(from)]
    }

    /// Span entries overlapping `[a, b]`, without scanning those that ended before `a`.
    pub fn entries_overlapping(&self, a: u64, b: u64) -> impl Iterator<Item = &Entry> {
        let from = self.entry_reach.partition_point(|end| *end < a);
        let to = self.entries.partition_point(|e| e.start <= b);
        self.entries[from..to.max(from)]
            .iter()
            .filter(move |e| e.end >= a)
    }

    /// Span entries that started within `[a, b]`.
    pub fn entries_starting_in(&self, a: u64, b: u64) -> &[Entry] {
        let from = self.entries.partition_point(|e| e.start < a);
        let to = self.entries.partition_point(|e| e.start <= b);
        &self.entries[from..to.max(from)]
    }
}

/// A decoded snapshot.
#[derive(Debug)]
pub struct Decoded {
    /// Every span seen, by key.
    pub spans: IdMap<u64, SpanInfo>,
    /// Span keys by OpenTelemetry span id.
    pub by_otel_id: IdMap<u64, u64>,
    /// Every task seen, by task id.
    pub tasks: IdMap<u64, TaskInfo>,
    /// Every `granular::spawn_blocking` job seen, by job id.
    pub jobs: IdMap<u64, Job>,
    /// What each recorded thread did, one entry per ring.
    pub threads: Vec<ThreadActivity>,
    /// Per OS thread id: (time, cumulative on-CPU ns, cumulative run-queue wait ns).
    pub os_samples: IdMap<u64, Vec<(u64, u64, u64)>>,
    /// Per OS thread id: exact off-CPU intervals from perf (start, end, preempted), when the
    /// perf source recorded any for that thread, sorted and disjoint. Between one interval's
    /// end and the next one's start (or the snapshot) the thread was on CPU; before the first
    /// it is unknown. An interval still open at the snapshot ends there.
    pub off_cpu: IdMap<u64, Vec<(u64, u64, bool)>>,
    /// Per OS thread id: what the thread was blocked in when the wait sampler found it blocked
    /// inside a request's work, sorted by time.
    pub waits: IdMap<u64, Vec<Waited>>,
    /// Per OS thread id: its cumulative page faults as the wait sampler read them (at its
    /// first look, inside a request's work, once after), sorted by time.
    pub page_faults: IdMap<u64, Vec<FaultReading>>,
    /// How many tasks the runtime held, (Unix ns, count), sorted by time: the most a worker's
    /// run queue held ahead of a woken task ([`crate::capture::runtime_tasks`]).
    pub alive_tasks: Vec<(u64, u64)>,
    /// OS thread ids of tokio workers (from the rings' owners); other threads with OS samples
    /// or off-CPU intervals are the runtimes' blocking-pool threads.
    pub worker_tids: IdSet<u64>,
    /// Whether allocations were counted (`granular::Alloc` is the global allocator).
    pub alloc_counted: bool,
    /// Whether the runtime threads' CPU time was observed (schedstat samples or perf
    /// context switches): without it, work on blocking-pool threads is not seen at all.
    pub threads_observed: bool,
    /// Records lost before or during the snapshot (overwritten, or dropped for want of a ring).
    pub lost_records: u64,
    /// From when on every ring that lost records holds all it recorded (None: nothing lost):
    /// what began before this time may have lost records.
    pub complete_since: Option<u64>,
    /// Time of the snapshot (end of every open interval).
    pub taken_at: u64,
    /// The clock mapping used.
    pub calibration: Calibration,
    /// A light decode ([`decode_spans`](super::decode_spans)): only the chosen traces' spans and the thread-level
    /// records a breakdown needs, not other tasks' polls or other spans (so no culprits).
    pub light: bool,
    /// Rust thread names by OS thread id.
    pub thread_names: IdMap<u64, String>,
    /// Child span keys of each span key.
    pub children: IdMap<u64, Vec<u64>>,
    /// Tasks spawned inside each span.
    pub spawned_in_span: IdMap<u64, Vec<u64>>,
    /// Tasks spawned by each task outside any span.
    pub spawned_by_task: IdMap<u64, Vec<u64>>,
}

/// A thread's cumulative page faults at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultReading {
    /// When, Unix ns.
    pub at: u64,
    pub minor: u64,
    pub major: u64,
    /// Read while the thread was inside a request's work.
    pub inside: bool,
}

/// One wait sample: a thread found blocked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waited {
    /// When, Unix ns.
    pub at: u64,
    /// The syscall number (-1: blocked outside a syscall).
    pub nr: i64,
    /// `stat`'s state letter (`S` or `D`).
    pub state: u8,
    /// The kernel's wait channel.
    pub wchan: String,
    /// What the syscall waited on, in words (may be empty).
    pub object: String,
}

impl Decoded {
    /// Name of a span key as exported (`otel.name` when the span recorded one), or "?" when
    /// its creation is no longer in the recorder.
    pub fn span_name(&self, key: u64) -> &str {
        self.spans.get(&key).map_or("?", |s| {
            s.fields
                .iter()
                .rev()
                .find_map(|(f, v)| match (*f, v) {
                    ("otel.name", FieldValue::Str(n)) => Some(n.as_str()),
                    _ => None,
                })
                .unwrap_or(s.name)
        })
    }

    /// The local root above a span (the span itself if it is one).
    pub fn local_root(&self, mut key: u64) -> u64 {
        for _ in 0..256 {
            match self.spans.get(&key) {
                Some(s) if s.parent != 0 => key = s.parent,
                _ => break,
            }
        }
        key
    }
}

//! Decoding a recorder snapshot into what happened: polls, span entries, spawns, blocking jobs
//! and OS samples, with times in Unix nanoseconds.
//!
//! One pass over every ring. Span and task metadata (creation, OTel ids, spawn sites) are kept
//! from the whole ring, because a long-lived task's spawn may be far older than the window;
//! intervals (polls, span entries, parks) only from `window_start` on.

use super::idmap::{IdMap, IdSet};
use std::panic::Location;

use tracing::Metadata;

use crate::clock::Calibration;
use crate::recorder::record::{
    COUNTERS_FOLLOW, OFF_CPU_OPEN, OFF_CPU_PREEMPTED, OFF_CPU_TID, SPAN_ID_FOLLOWS,
};
use crate::recorder::{Kind, Record, RecorderSnapshot};

/// A recorded field value.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    Bool(bool),
    I64(i64),
    F64(f64),
    Str(String),
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
}

impl ThreadActivity {
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
    /// Spans by recorder key.
    pub spans: IdMap<u64, SpanInfo>,
    /// Recorder span key by OpenTelemetry span id.
    pub by_otel_id: IdMap<u64, u64>,
    /// Tasks by tokio task id.
    pub tasks: IdMap<u64, TaskInfo>,
    /// `granular::spawn_blocking` jobs by job id.
    pub jobs: IdMap<u64, Job>,
    /// Each thread's parks, polls, span entries and jobs.
    pub threads: Vec<ThreadActivity>,
    /// Per OS thread id: (time, cumulative on-CPU ns, cumulative run-queue wait ns).
    pub os_samples: IdMap<u64, Vec<(u64, u64, u64)>>,
    /// Per OS thread id: exact off-CPU intervals from perf (start, end, preempted), when the
    /// perf source recorded any for that thread, sorted and disjoint. Between one interval's
    /// end and the next one's start (or the snapshot) the thread was on CPU; before the first
    /// it is unknown. An interval still open at the snapshot ends there.
    pub off_cpu: IdMap<u64, Vec<(u64, u64, bool)>>,
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
    /// Oldest time still covered by every ring that lost records (None: nothing lost).
    pub complete_since: Option<u64>,
    /// Time of the snapshot (end of every open interval).
    pub taken_at: u64,
    /// The clock mapping used.
    pub calibration: Calibration,
    /// A light decode ([`decode_spans`]): only the chosen traces' spans and the thread-level
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

/// Number of payload records after the header `r`: fixed per kind, or told by a flag in the
/// header or in its first payload `first` (see each kind's doc in `recorder/record.rs`).
fn payloads(kind: Kind, r: Record, first: Option<&Record>) -> usize {
    let first_arg = first.map_or(0, Record::arg);
    match kind {
        Kind::PollStart | Kind::PollEnd | Kind::SpanEnter | Kind::SpanExit => {
            usize::from(r.arg() & COUNTERS_FOLLOW != 0)
        }
        Kind::SpanNew if first_arg & SPAN_ID_FOLLOWS != 0 => 2,
        Kind::SpanIds => match first_arg {
            1 => 3,
            3 => 4,
            _ => 1,
        },
        Kind::Field => first.map_or(1, |p| crate::capture::fields::payload_records(p.arg())),
        Kind::ThreadStart
        | Kind::SpanNew
        | Kind::BlockingQueued
        | Kind::OsSample
        | Kind::OffCpu
        | Kind::Event => 1,
        Kind::TaskSpawn => 2,
        Kind::Park
        | Kind::Unpark
        | Kind::TaskTerminate
        | Kind::SpanClose
        | Kind::BlockingStart
        | Kind::BlockingEnd
        | Kind::Payload => 0,
    }
}

/// Decodes `snap`; intervals that ended before `window_start` (Unix ns) are skipped.
pub fn decode(
    snap: &RecorderSnapshot,
    cal: &Calibration,
    window_start: u64,
    taken_at: u64,
) -> Decoded {
    decode_keeping(snap, cal, window_start, taken_at, None)
}

/// A light decode of the spans under the local roots `roots`: their creation, ids, fields,
/// events, entries and ends, plus what a breakdown needs of their threads (parks, allocation
/// counters, off-CPU intervals, OS samples, blocking-pool jobs); not the polls of tasks or the
/// entries of other spans. Enough to rebuild those traces and break their time down, not to
/// name a culprit. A few ns a record instead of ~40: what an overloaded analyzer falls back to.
pub fn decode_spans_of(
    snap: &RecorderSnapshot,
    cal: &Calibration,
    window_start: u64,
    taken_at: u64,
    roots: &[u64],
) -> Decoded {
    let keys = descendants(snap, roots);
    decode_spans(snap, cal, window_start, taken_at, &keys)
}

/// [`decode_spans_of`] when the spans' keys are known already (the span-recording path notes
/// them per trace): one pass over the records instead of two or more.
pub fn decode_spans(
    snap: &RecorderSnapshot,
    cal: &Calibration,
    window_start: u64,
    taken_at: u64,
    keys: &IdSet<u64>,
) -> Decoded {
    decode_keeping(
        snap,
        cal,
        window_start,
        taken_at,
        Some(&KeyFilter::new(keys)),
    )
}

/// A set of span keys with a 4,096-bit filter in front: most records of a busy ring belong to
/// other spans, and the bitmap (one L1-resident word) turns them away before a hash lookup.
struct KeyFilter<'a> {
    bits: [u64; 64],
    keys: &'a IdSet<u64>,
}

impl<'a> KeyFilter<'a> {
    fn new(keys: &'a IdSet<u64>) -> Self {
        let mut bits = [0u64; 64];
        for &k in keys {
            let b = Self::bit(k);
            bits[b / 64] |= 1 << (b % 64);
        }
        KeyFilter { bits, keys }
    }

    fn bit(key: u64) -> usize {
        (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 52) as usize
    }

    fn contains(&self, key: u64) -> bool {
        let b = Self::bit(key);
        self.bits[b / 64] & (1 << (b % 64)) != 0 && self.keys.contains(&key)
    }
}

/// [`decode_spans_of`] for spans known by their OpenTelemetry span ids (spans that
/// `tracing-opentelemetry` built): their keys are found from their id records first.
pub fn decode_spans_by_otel_id(
    snap: &RecorderSnapshot,
    cal: &Calibration,
    window_start: u64,
    taken_at: u64,
    otel_ids: &IdSet<u64>,
) -> Decoded {
    let mut roots = Vec::new();
    for t in &snap.threads {
        for w in t.records().windows(3) {
            let id = match (w[0].kind(), w[1].kind(), w[2].kind()) {
                (Some(Kind::SpanIds), Some(Kind::Payload), _) => w[1].w0,
                (Some(Kind::SpanNew), Some(Kind::Payload), Some(Kind::Payload))
                    if w[1].arg() & SPAN_ID_FOLLOWS != 0 =>
                {
                    w[2].w0
                }
                _ => continue,
            };
            if otel_ids.contains(&id) {
                roots.push(w[0].arg());
            }
        }
    }
    decode_spans_of(snap, cal, window_start, taken_at, &roots)
}

/// `roots` and every span created beneath them in `snap`. Parents are created before their
/// children, so one pass finds a ring's own chains; passes repeat while spans on one ring
/// turn out to be children of spans found on another.
fn descendants(snap: &RecorderSnapshot, roots: &[u64]) -> IdSet<u64> {
    let mut keys: IdSet<u64> = roots.iter().copied().collect();
    loop {
        let before = keys.len();
        for t in &snap.threads {
            for w in t.records().windows(2) {
                if w[0].kind() == Some(Kind::SpanNew)
                    && w[1].kind() == Some(Kind::Payload)
                    && keys.contains(&(w[1].arg() & !SPAN_ID_FOLLOWS))
                {
                    keys.insert(w[0].arg());
                }
            }
        }
        if keys.len() == before {
            return keys;
        }
    }
}

/// [`decode`], or with `only` the records of those spans alone.
fn decode_keeping(
    snap: &RecorderSnapshot,
    cal: &Calibration,
    window_start: u64,
    taken_at: u64,
    only: Option<&KeyFilter<'_>>,
) -> Decoded {
    let mut d = Decoded {
        spans: IdMap::default(),
        by_otel_id: IdMap::default(),
        tasks: IdMap::default(),
        jobs: IdMap::default(),
        threads: Vec::new(),
        os_samples: IdMap::default(),
        off_cpu: IdMap::default(),
        worker_tids: IdSet::default(),
        alloc_counted: crate::capture::alloc::installed(),
        threads_observed: crate::capture::os::sampling() || crate::capture::perf::enabled(),
        lost_records: snap.lost(),
        complete_since: None,
        taken_at,
        calibration: *cal,
        light: only.is_some(),
        thread_names: IdMap::default(),
        children: IdMap::default(),
        spawned_in_span: IdMap::default(),
        spawned_by_task: IdMap::default(),
    };
    let mut later = SpanUpdates::default();
    for t in &snap.threads {
        for o in &t.owners {
            if let Some(name) = &o.name {
                d.thread_names.insert(o.tid, name.clone());
            }
            if o.worker > 0 {
                d.worker_tids.insert(o.tid);
            }
        }
        if t.lost() > 0 {
            let oldest = t
                .records()
                .first()
                .map_or(taken_at, |r| cal.to_unix_ns(r.ts()));
            d.complete_since = Some(d.complete_since.map_or(oldest, |c: u64| c.max(oldest)));
        }
        let owner_tid = |seq: u64| {
            t.owners
                .iter()
                .rev()
                .find(|o| o.since_seq <= seq)
                .or(t.owners.first())
                .map_or((0, 0), |o| (o.tid, o.worker))
        };
        let (tid, worker) = owner_tid(t.first_seq());
        let mut act = ThreadActivity {
            tid,
            worker: worker.checked_sub(1).map(|w| w as usize),
            ..ThreadActivity::default()
        };
        let mut decoder = ThreadDecoder::default();
        let recs = t.records();
        // Records before `cut` are older than the window: only what names spans and tasks is
        // read from them (a long-lived task's spawn site, a culprit's span name), not the
        // polls, entries and samples whose intervals ended long ago. `cut` is the last header
        // stamped before the window, found by a binary search over the headers.
        let window_ticks = cal.unix_to_ticks(window_start);
        let first_in_window = t
            .copy
            .seq_for_time(window_ticks)
            .map_or(0, |seq| (seq - t.first_seq()) as usize);
        let cut = recs[..first_in_window]
            .iter()
            .rposition(|r| r.kind().is_some_and(|k| k != Kind::Payload))
            .unwrap_or(0);
        let mut i = 0;
        while i < recs.len() {
            let r = recs[i];
            i += 1;
            let Some(kind) = r.kind() else { continue };
            if kind == Kind::Payload {
                continue; // its header was overwritten
            }
            // Allocation counters ride on poll and span boundaries, whoever's they are: they
            // move this thread's last-known counters even when the boundary is skipped.
            if let Some(c) = boundary_counters(kind, r, recs.get(i)) {
                decoder.last_alloc = Some(c);
                d.alloc_counted = true;
            }
            // A skipped header's payloads are passed over one by one, as stray payloads.
            if only.is_some_and(|keys| decoder.skips(kind, r, keys)) {
                continue;
            }
            let n = payloads(kind, r, recs.get(i));
            if i + n > recs.len()
                || recs[i..i + n]
                    .iter()
                    .any(|p| p.kind() != Some(Kind::Payload))
            {
                continue; // cut short by the snapshot or torn by overwrite
            }
            let p = &recs[i..i + n];
            i += n;
            if i <= cut && !names_things(kind, p) {
                continue;
            }
            let ts = cal.to_unix_ns(r.ts());
            if kind == Kind::ThreadStart {
                // A new owner: flush what the previous one left open, start a fresh activity.
                decoder.close_all(&mut act, ts);
                d.threads.push(std::mem::take(&mut act));
                act.tid = r.arg();
                act.worker = p[0].w0.checked_sub(1).map(|w| w as usize);
                decoder.park_seen = false;
                continue;
            }
            decoder.apply(kind, r, p, ts, window_start, &mut act, &mut d, &mut later);
        }
        decoder.close_all(&mut act, taken_at);
        d.threads.push(act);
    }
    later.apply(&mut d.spans);
    d.threads
        .retain(|t| !(t.polls.is_empty() && t.entries.is_empty() && t.parks.is_empty()));
    for samples in d.os_samples.values_mut() {
        samples.sort_unstable_by_key(|s| s.0);
    }
    for iv in d.off_cpu.values_mut() {
        close_open_intervals(iv, taken_at);
    }
    // Indexed once, so finding one request's spans and tasks costs that request's size.
    for (k, s) in &d.spans {
        d.children.entry(s.parent).or_default().push(*k);
    }
    for (id, t) in &d.tasks {
        match t.parent_span {
            0 => d
                .spawned_by_task
                .entry(t.parent_task)
                .or_default()
                .push(*id),
            span => d.spawned_in_span.entry(span).or_default().push(*id),
        }
    }
    // Sorted by start once, so the analyzer can binary-search instead of scanning.
    for t in &mut d.threads {
        t.polls.sort_unstable_by_key(|p| p.start);
        t.entries.sort_unstable_by_key(|e| e.start);
        let mut reach = 0;
        t.entry_reach = t
            .entries
            .iter()
            .map(|e| {
                reach = reach.max(e.end);
                reach
            })
            .collect();
        t.parks.sort_unstable_by_key(|p| p.0);
    }
    d
}

/// Sorts a thread's off-CPU intervals and settles the open ones (end `u64::MAX`): one that a
/// complete interval with the same switch-out time closed later is dropped; any other lasted
/// until the thread's next interval began, or the snapshot.
fn close_open_intervals(iv: &mut Vec<(u64, u64, bool)>, taken_at: u64) {
    iv.sort_unstable_by_key(|x| (x.0, x.1));
    if iv.iter().all(|x| x.1 != u64::MAX) {
        return;
    }
    let mut out: Vec<(u64, u64, bool)> = Vec::with_capacity(iv.len());
    for (i, &(a, b, preempted)) in iv.iter().enumerate() {
        if b != u64::MAX {
            out.push((a, b, preempted));
        } else if out.last().is_none_or(|l| l.0 != a) {
            let next = iv[i + 1..].iter().map(|x| x.0).find(|&x| x > a);
            out.push((a, next.unwrap_or(taken_at).max(a), preempted));
        }
    }
    *iv = out;
}

/// What the records that follow a span's creation say about it (its ids, fields, events and
/// close), gathered from every ring and applied once all are decoded. A span created on one
/// thread is entered, recorded, logged in and closed on whichever threads its future runs on,
/// and the rings are decoded one after another: applied as they came, the records on a ring
/// decoded before the one holding the span's creation found no span and were dropped, so the
/// span was taken for still open and not exported, and a trace none of whose spans closed on
/// its root's ring was lost whole (issue #17). Ids and closes are applied at once when the
/// span is known (the common case), kept for the end otherwise; fields and events are all
/// kept, and put in time order per span at the end: a field recorded again on another thread
/// keeps its last value.
#[derive(Default)]
struct SpanUpdates {
    /// Ids and closes found before their span's creation (on a ring decoded earlier).
    early: Vec<(u64, Early)>,
    /// Every field recorded on a span: (span, time, name, value).
    fields: Vec<(u64, u64, &'static str, FieldValue)>,
    /// Every event inside a span: (span, event).
    events: Vec<(u64, EventInfo)>,
}

/// A span's ids as its `SpanIds` record gives them.
#[derive(Debug, Clone, Copy)]
struct Ids {
    span_id: u64,
    /// Local roots only.
    trace_id: Option<u128>,
    /// Local roots whose parent came over the wire.
    remote_parent: Option<u64>,
}

impl Ids {
    fn set(self, s: &mut SpanInfo) {
        s.otel_span_id = self.span_id;
        s.trace_id = self.trace_id.or(s.trace_id);
        s.remote_parent = self.remote_parent.or(s.remote_parent);
    }
}

/// A record about a span found before the span's creation.
enum Early {
    Ids(Ids),
    End(u64),
}

impl SpanUpdates {
    /// The span's ids, now if its creation was decoded, else at [`Self::apply`].
    fn ids(&mut self, spans: &mut IdMap<u64, SpanInfo>, key: u64, ids: Ids) {
        match spans.get_mut(&key) {
            Some(s) => ids.set(s),
            None => self.early.push((key, Early::Ids(ids))),
        }
    }

    /// The span's close, now if its creation was decoded, else at [`Self::apply`].
    fn end(&mut self, spans: &mut IdMap<u64, SpanInfo>, key: u64, at: u64) {
        match spans.get_mut(&key) {
            Some(s) => s.end = Some(at),
            None => self.early.push((key, Early::End(at))),
        }
    }

    /// Applies what is left to the spans whose creation was decoded; the rest (spans created
    /// before the window) is dropped.
    fn apply(mut self, spans: &mut IdMap<u64, SpanInfo>) {
        for (key, early) in self.early {
            if let Some(s) = spans.get_mut(&key) {
                match early {
                    Early::Ids(ids) => ids.set(s),
                    Early::End(at) => s.end = Some(at),
                }
            }
        }
        // Stable: fields recorded together (one clock reading) keep their order.
        self.fields.sort_by_key(|f| (f.0, f.1));
        let mut span: Option<(u64, Option<&mut SpanInfo>)> = None;
        for (key, _, name, value) in self.fields {
            if span.as_ref().is_none_or(|(k, _)| *k != key) {
                span = Some((key, spans.get_mut(&key)));
            }
            if let Some((_, Some(s))) = &mut span {
                s.fields.push((name, value));
            }
        }
        self.events.sort_by_key(|e| (e.0, e.1.at));
        let mut span: Option<(u64, Option<&mut SpanInfo>)> = None;
        for (key, event) in self.events {
            if span.as_ref().is_none_or(|(k, _)| *k != key) {
                span = Some((key, spans.get_mut(&key)));
            }
            if let Some((_, Some(s))) = &mut span {
                s.events.push(event);
            }
        }
    }
}

#[derive(Default)]
struct ThreadDecoder {
    polls: Vec<Poll>,
    entries: Vec<Entry>,
    park: Option<u64>,
    /// Whether this owner's parks were seen in the window: an unpark before any park ends a
    /// park that began before the window.
    park_seen: bool,
    /// The thread's cumulative (allocations, bytes) as of the last boundary that carried them.
    last_alloc: Option<(u64, u64)>,
    /// Where in [`SpanUpdates::events`] the event is that the next owner-less field belongs
    /// to.
    last_event: Option<usize>,
}

/// The allocation counters (allocations, bytes) a poll or span boundary carries, read from
/// the payload `next` when the boundary says one follows.
fn boundary_counters(kind: Kind, r: Record, next: Option<&Record>) -> Option<(u64, u64)> {
    let boundary = matches!(
        kind,
        Kind::PollStart | Kind::PollEnd | Kind::SpanEnter | Kind::SpanExit
    );
    if !boundary || payloads(kind, r, next) == 0 {
        return None;
    }
    next.filter(|p| p.kind() == Some(Kind::Payload))
        .map(|p| (p.arg(), p.w0))
}

/// Whether a record outside the window is still needed: it names a span or a task.
fn names_things(kind: Kind, p: &[Record]) -> bool {
    match kind {
        Kind::ThreadStart | Kind::SpanNew | Kind::SpanIds | Kind::TaskSpawn => true,
        Kind::Field => {
            let len = (p[0].arg() & 0xffff) as usize;
            // SAFETY: as in `decode_field`: the address and length of a `&'static str`.
            let name = unsafe { std::slice::from_raw_parts(p[0].w0 as *const u8, len) };
            name == b"otel.name"
        }
        _ => false,
    }
}

/// A field's name and value from its payload records (see [`Kind::Field`]).
fn decode_field(p: &[Record]) -> Option<(&'static str, FieldValue)> {
    use crate::capture::fields::{ValueKind, decode_string};
    let meta = p[0].arg();
    let name_len = (meta & 0xffff) as usize;
    // SAFETY: w0 is the address of a field name, a `&'static str` of `name_len` bytes, written
    // by the field writer; the record passed the payload-kind and tearing checks.
    let name: &'static str = unsafe {
        std::str::from_utf8_unchecked(std::slice::from_raw_parts(p[0].w0 as *const u8, name_len))
    };
    let value = match ValueKind::from_u8(((meta >> 16) & 0xff) as u8)? {
        ValueKind::Bool => FieldValue::Bool(p[1].w0 != 0),
        ValueKind::I64 => FieldValue::I64(p[1].w0 as i64),
        ValueKind::F64 => FieldValue::F64(f64::from_bits(p[1].w0)),
        ValueKind::Str => {
            let words: Vec<(u64, u64)> = p[1..].iter().map(|r| (r.w0, r.w1)).collect();
            FieldValue::Str(decode_string(&words, (meta >> 24) as usize))
        }
    };
    Some((name, value))
}

impl ThreadDecoder {
    /// Whether a light decode of `keys` passes over this record: polls, spawns and other
    /// spans' records. Fields without an owner belong to the last event, kept only if that
    /// event was.
    fn skips(&mut self, kind: Kind, r: Record, keys: &KeyFilter<'_>) -> bool {
        match kind {
            Kind::ThreadStart
            | Kind::Park
            | Kind::Unpark
            | Kind::OffCpu
            | Kind::OsSample
            | Kind::BlockingQueued
            | Kind::BlockingStart
            | Kind::BlockingEnd => false,
            Kind::Field if r.arg() == 0 => self.last_event.is_none(),
            Kind::SpanEnter | Kind::SpanExit => !keys.contains(r.arg() & !COUNTERS_FOLLOW),
            Kind::SpanNew | Kind::SpanIds | Kind::SpanClose | Kind::Field => {
                !keys.contains(r.arg())
            }
            Kind::Event => {
                let skip = !keys.contains(r.arg());
                if skip {
                    self.last_event = None;
                }
                skip
            }
            Kind::PollStart
            | Kind::PollEnd
            | Kind::TaskSpawn
            | Kind::TaskTerminate
            | Kind::Payload => true,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn apply(
        &mut self,
        kind: Kind,
        r: Record,
        p: &[Record],
        ts: u64,
        window_start: u64,
        act: &mut ThreadActivity,
        d: &mut Decoded,
        later: &mut SpanUpdates,
    ) {
        // The boundary's own counters, if it carried any, are already in `last_alloc`: the
        // allocator's counters are recorded only when they changed.
        let arg = r.arg() & !COUNTERS_FOLLOW;
        match kind {
            Kind::PollStart => {
                self.polls.push(Poll {
                    task: arg,
                    start: ts,
                    end: ts,
                    sched_latency: 0,
                    alloc: self.last_alloc.map(|a| (a, a)),
                    open: true,
                });
            }
            Kind::PollEnd => {
                if let Some(mut poll) = self.polls.pop() {
                    poll.end = ts;
                    poll.open = false;
                    poll.sched_latency = arg;
                    if let (Some(a), Some(b)) = (poll.alloc.map(|x| x.0), self.last_alloc) {
                        poll.alloc = Some((a, b));
                    }
                    if poll.end >= window_start {
                        act.polls.push(poll);
                    }
                }
            }
            Kind::SpanEnter => {
                self.entries.push(Entry {
                    span: arg,
                    start: ts,
                    end: ts,
                    alloc: self.last_alloc.map(|a| (a, a)),
                });
            }
            Kind::SpanExit => {
                if let Some(pos) = self.entries.iter().rposition(|e| e.span == arg) {
                    let mut e = self.entries.remove(pos);
                    e.end = ts;
                    if let (Some(a), Some(b)) = (e.alloc.map(|x| x.0), self.last_alloc) {
                        e.alloc = Some((a, b));
                    }
                    if e.end >= window_start {
                        act.entries.push(e);
                    }
                }
            }
            Kind::Park => {
                self.park = Some(ts);
                self.park_seen = true;
            }
            Kind::Unpark => {
                let start = match self.park.take() {
                    Some(start) => Some(start),
                    None if !self.park_seen => Some(window_start.min(ts)),
                    None => None,
                };
                self.park_seen = true;
                if let Some(start) = start.filter(|_| ts >= window_start) {
                    act.parks.push((start, ts));
                }
            }
            Kind::SpanNew => {
                // SAFETY: the payload is the address of a `&'static Metadata` written by the
                // layer; the record passed the payload-kind and tearing checks, and metadata
                // lives for the whole program.
                let meta: &'static Metadata<'static> =
                    unsafe { &*(p[0].w0 as *const Metadata<'static>) };
                // A recorded child carries its span id here rather than in a SpanIds record.
                let otel_span_id = p.get(1).map_or(0, |ids| ids.w0);
                if otel_span_id != 0 {
                    d.by_otel_id.insert(otel_span_id, r.arg());
                }
                d.spans.insert(
                    r.arg(),
                    SpanInfo {
                        name: meta.name(),
                        meta,
                        parent: p[0].arg() & !SPAN_ID_FOLLOWS,
                        otel_span_id,
                        trace_id: None,
                        remote_parent: None,
                        start: ts,
                        end: None,
                        tid: act.tid,
                        fields: Vec::new(),
                        events: Vec::new(),
                    },
                );
                self.last_event = None;
            }
            Kind::SpanIds => {
                let ids = Ids {
                    span_id: p[0].w0,
                    trace_id: (p.len() >= 3)
                        .then(|| (u128::from(p[1].w0) << 64) | u128::from(p[2].w0)),
                    remote_parent: p.get(3).map(|parent| parent.w0),
                };
                d.by_otel_id.insert(ids.span_id, r.arg());
                later.ids(&mut d.spans, r.arg(), ids);
            }
            Kind::SpanClose => later.end(&mut d.spans, r.arg(), ts),
            Kind::Event => {
                // SAFETY: as for SpanNew: a `&'static Metadata` address written by the layer.
                let meta: &'static Metadata<'static> =
                    unsafe { &*(p[0].w0 as *const Metadata<'static>) };
                later.events.push((
                    r.arg(),
                    EventInfo {
                        at: ts,
                        meta,
                        fields: Vec::new(),
                    },
                ));
                self.last_event = Some(later.events.len() - 1);
            }
            Kind::Field => {
                let Some((name, value)) = decode_field(p) else {
                    return;
                };
                if r.arg() != 0 {
                    later.fields.push((r.arg(), ts, name, value));
                } else if let Some((_, event)) =
                    self.last_event.and_then(|i| later.events.get_mut(i))
                {
                    event.fields.push((name, value));
                }
            }
            Kind::TaskSpawn => {
                let loc = p[1].w0;
                // SAFETY: written by the spawn hook from tokio's `&'static Location`.
                let spawned_at = (loc != 0).then(|| unsafe { &*(loc as *const Location<'static>) });
                d.tasks.insert(
                    r.arg(),
                    TaskInfo {
                        parent_task: p[0].w0,
                        parent_span: p[0].arg(),
                        spawned_at,
                    },
                );
            }
            Kind::BlockingQueued => {
                d.jobs.insert(
                    r.arg(),
                    Job {
                        task: p[0].w0,
                        span: p[0].arg(),
                        queued: ts,
                        ..Job::default()
                    },
                );
            }
            Kind::BlockingStart => {
                if let Some(j) = d.jobs.get_mut(&r.arg()) {
                    j.started = Some(ts);
                    j.tid = act.tid;
                }
            }
            Kind::BlockingEnd => {
                if let Some(j) = d.jobs.get_mut(&r.arg()) {
                    j.ended = Some(ts);
                }
            }
            Kind::OsSample => {
                d.os_samples
                    .entry(r.arg())
                    .or_default()
                    .push((ts, p[0].w0, p[0].arg()));
            }
            Kind::OffCpu => {
                let out = d.calibration.mono_to_unix_ns(p[0].w0);
                // Open until settled by `close_open_intervals`.
                let end = if r.arg() & OFF_CPU_OPEN != 0 {
                    u64::MAX
                } else {
                    out + p[0].arg()
                };
                d.off_cpu.entry(r.arg() & OFF_CPU_TID).or_default().push((
                    out,
                    end,
                    r.arg() & OFF_CPU_PREEMPTED != 0,
                ));
            }
            Kind::ThreadStart | Kind::TaskTerminate | Kind::Payload => {}
        }
    }

    /// Ends whatever is still open at `at` (the snapshot time or the next owner's start).
    fn close_all(&mut self, act: &mut ThreadActivity, at: u64) {
        for mut poll in self.polls.drain(..) {
            poll.end = at;
            act.polls.push(poll);
        }
        for mut e in self.entries.drain(..) {
            e.end = at;
            act.entries.push(e);
        }
        if let Some(start) = self.park.take() {
            act.parks.push((start, at));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recorder::ring::Ring;
    use crate::recorder::{Owner, ThreadRecords};

    /// A header's kind and argument, and its one payload's two words if any.
    type Written = (Kind, u64, Option<(u64, u64)>);

    /// A one-thread snapshot of `records` (headers stamped 1, 2, 3… clock ticks).
    fn snapshot(records: &[Written]) -> RecorderSnapshot {
        let ring = Ring::new(64);
        for (n, &(kind, arg, payload)) in records.iter().enumerate() {
            ring.push(Record::header(kind, n as u64 + 1, arg));
            if let Some((w0, w1)) = payload {
                ring.push(Record::payload(w0, w1));
            }
        }
        RecorderSnapshot {
            threads: vec![ThreadRecords {
                ring: 0,
                owners: vec![Owner::default()],
                copy: ring.snapshot(0),
            }],
            ..RecorderSnapshot::default()
        }
    }

    #[test]
    fn allocation_counters_ride_on_boundaries_and_carry_forward() {
        let (ours, other) = (7, 9);
        let with = |key: u64| key | COUNTERS_FOLLOW;
        // (bytes, allocations): the other span's exit changes them; our entry starts from
        // those (no payload: unchanged) and ends with its own.
        let snap = snapshot(&[
            (Kind::SpanEnter, with(other), Some((100, 1))),
            (Kind::SpanExit, with(other), Some((500, 5))),
            (Kind::SpanEnter, ours, None),
            (Kind::SpanExit, with(ours), Some((700, 7))),
        ]);
        let cal = Calibration::now();
        let full = decode(&snap, &cal, 0, u64::MAX);
        let keys: IdSet<u64> = [ours].into_iter().collect();
        let light = decode_spans(&snap, &cal, 0, u64::MAX, &keys);
        for d in [&full, &light] {
            let entry = d.threads[0]
                .entries
                .iter()
                .find(|e| e.span == ours)
                .expect("our entry, its key without the flag");
            assert_eq!(
                entry.alloc,
                Some(((5, 500), (7, 700))),
                "light: {}",
                d.light
            );
        }
        assert_eq!(
            light.threads[0].entries.len(),
            1,
            "the other span is skipped"
        );
    }

    /// A worker parked since before the window shows its unpark first: the park is kept
    /// (from the window's start), or the worker would look busy until then.
    #[test]
    fn an_unpark_before_any_park_ends_a_park_from_before_the_window() {
        let snap = snapshot(&[
            (Kind::Unpark, 0, None),
            (Kind::Park, 0, None),
            (Kind::Unpark, 0, None),
            (Kind::Park, 0, None),
        ]);
        let d = decode(&snap, &Calibration::identity(0), 0, 10);
        assert_eq!(d.threads[0].parks, vec![(0, 1), (2, 3), (4, 10)]);
    }

    /// Off-CPU intervals from perf: one recorded open at a drain and closed later keeps its
    /// closed form; one never closed lasts until the thread's next interval, or the snapshot.
    #[test]
    fn open_off_cpu_intervals_end_at_their_pair_the_next_one_or_the_snapshot() {
        let tid = 42;
        let open = tid | OFF_CPU_OPEN;
        let snap = snapshot(&[
            (Kind::OffCpu, tid, Some((100, 0))), // registration: on CPU from 100
            (Kind::OffCpu, open, Some((200, 0))),
            (Kind::OffCpu, tid | OFF_CPU_PREEMPTED, Some((200, 50))),
            (Kind::OffCpu, open, Some((300, 0))), // its pair was lost
            (Kind::OffCpu, tid, Some((400, 10))),
            (Kind::OffCpu, open, Some((500, 0))), // the thread exited
        ]);
        let d = decode(&snap, &Calibration::identity(0), 0, 1_000);
        assert_eq!(
            d.off_cpu[&tid],
            vec![
                (100, 100, false),
                (200, 250, true),
                (300, 400, false),
                (400, 410, false),
                (500, 1_000, false),
            ]
        );
    }
}

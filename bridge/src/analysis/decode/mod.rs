//! Decoding a recorder snapshot into what happened: polls, span entries, spawns, blocking jobs
//! and OS samples, with times in Unix nanoseconds.
//!
//! One pass over every ring, reading its typed events (`recorder::codec`). Span and task
//! metadata (creation, OTel ids, spawn sites) are kept from the whole ring, because a
//! long-lived task's spawn may be far older than the window; intervals (polls, span entries,
//! parks) only from `window_start` on.
//!
//! | module | holds |
//! |---|---|
//! | `decoded` | what a decode gives ([`Decoded`], [`ThreadActivity`], [`SpanInfo`], …) |
//! | `thread` | one ring's events into its threads' activity and the snapshot's tables |
//! | `span_table` | spans, and what records on any ring say about them, applied at the end |
//! | `light` | what a light decode keeps: spans by key, by local root, by OTel span id |

mod decoded;
mod light;
mod span_table;
mod thread;

#[cfg(test)]
mod tests;

pub use decoded::Decoded;
#[cfg(test)]
pub(crate) use decoded::{Entry, Job, TaskInfo};
pub(crate) use decoded::{
    EventInfo, FaultReading, FieldValue, Poll, SpanInfo, ThreadActivity, Waited,
};

use super::idmap::{IdMap, IdSet};
use crate::clock::Calibration;
use crate::recorder::codec::fields::Field;
use crate::recorder::codec::{self, Event, Located};
use crate::recorder::{Kind, RecorderSnapshot, ThreadRecords};
use light::KeyFilter;
use span_table::SpanUpdates;
use thread::ThreadDecoder;

/// Decodes `snap`; intervals that ended before `window_start` (Unix ns) are skipped.
pub fn decode(
    snap: &RecorderSnapshot,
    cal: &Calibration,
    window_start: u64,
    taken_at: u64,
) -> Decoded {
    decode_keeping(snap, cal, window_start, taken_at, None)
}

/// A full decode of only the records stamped from `from` to `to` (Unix ns): one request's own
/// window of a larger snapshot, at the cost of its records alone. What was created before
/// `from` is not named (a culprit's spawn site, a task's span), and a poll or entry that
/// began before `from` is not seen. For a breakdown and its timeline, not to rebuild spans:
/// of the spans' fields only their names (`otel.name`) are kept, and no `tracing` events.
pub(crate) fn decode_between(
    snap: &RecorderSnapshot,
    cal: &Calibration,
    from: u64,
    to: u64,
) -> Decoded {
    RingPass::between(cal, from, to).decode_all(snap)
}

/// How many records [`decode_between`] would read: what its cost follows.
pub(crate) fn records_between(
    snap: &RecorderSnapshot,
    cal: &Calibration,
    from: u64,
    to: u64,
) -> usize {
    let ring = RingPass::between(cal, from, to);
    snap.threads.iter().map(|t| ring.range(t).len()).sum()
}

/// The records [`decode_between`] would read, copied: to decode on another thread while the
/// snapshot is reused.
pub(crate) fn copy_between(
    snap: &RecorderSnapshot,
    cal: &Calibration,
    from: u64,
    to: u64,
) -> RecorderSnapshot {
    let ring = RingPass::between(cal, from, to);
    let threads = snap
        .threads
        .iter()
        .map(|t| ThreadRecords {
            ring: t.ring,
            owners: t.owners.clone(),
            copy: t.copy.slice(ring.range(t)),
        })
        .collect();
    RecorderSnapshot {
        threads,
        dropped: snap.dropped.clone(),
        overwritten: snap.overwritten,
    }
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
    let keys = light::descendants(snap, roots);
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
    let only = KeyFilter::new(keys);
    decode_keeping(snap, cal, window_start, taken_at, Some(&only))
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
    let roots = light::keys_by_otel_id(snap, otel_ids);
    decode_spans_of(snap, cal, window_start, taken_at, &roots)
}

/// [`decode`], or with `only` the records of those spans alone.
fn decode_keeping(
    snap: &RecorderSnapshot,
    cal: &Calibration,
    window_start: u64,
    taken_at: u64,
    only: Option<&KeyFilter<'_>>,
) -> Decoded {
    let ring = RingPass {
        cal,
        window_start,
        taken_at,
        only,
        between: false,
    };
    ring.decode_all(snap)
}

/// What every ring's pass shares.
struct RingPass<'a> {
    cal: &'a Calibration,
    window_start: u64,
    taken_at: u64,
    only: Option<&'a KeyFilter<'a>>,
    /// Only the records stamped from `window_start` to `taken_at`: none read before the
    /// window for names, none after it; and only what a breakdown reads ([`breakdown_reads`]).
    between: bool,
}

impl<'a> RingPass<'a> {
    /// The pass of [`decode_between`].
    fn between(cal: &'a Calibration, from: u64, to: u64) -> Self {
        RingPass {
            cal,
            window_start: from,
            taken_at: to,
            only: None,
            between: true,
        }
    }

    /// Indices of the records of `t` the pass reads.
    fn range(&self, t: &ThreadRecords) -> std::ops::Range<usize> {
        if self.between {
            let cut = self.window_cut(t);
            cut..self.window_end(t).max(cut)
        } else {
            0..t.records().len()
        }
    }

    /// Decodes every ring of `snap`.
    fn decode_all(&self, snap: &RecorderSnapshot) -> Decoded {
        // A window's records are mostly whole requests': sized for them, the span table is not
        // grown (and copied) a dozen times on the way.
        let spans = if self.between {
            let records: usize = snap.threads.iter().map(|t| self.range(t).len()).sum();
            records / RECORDS_PER_SPAN
        } else {
            0
        };
        let mut d = Decoded {
            spans: IdMap::with_capacity_and_hasher(spans, Default::default()),
            by_otel_id: IdMap::default(),
            tasks: IdMap::default(),
            jobs: IdMap::default(),
            threads: Vec::new(),
            os_samples: IdMap::default(),
            off_cpu: IdMap::default(),
            waits: IdMap::default(),
            page_faults: IdMap::default(),
            alive_tasks: Vec::new(),
            worker_tids: IdSet::default(),
            alloc_counted: crate::capture::alloc::installed(),
            threads_observed: crate::capture::os::sampling() || crate::capture::perf::enabled(),
            lost_records: snap.lost(),
            complete_since: None,
            taken_at: self.taken_at,
            calibration: *self.cal,
            light: self.only.is_some(),
            thread_names: IdMap::default(),
            children: IdMap::default(),
            spawned_in_span: IdMap::default(),
            spawned_by_task: IdMap::default(),
        };
        let mut later = SpanUpdates::default();
        for t in &snap.threads {
            self.decode(t, &mut d, &mut later);
        }
        later.apply(&mut d.spans);
        index(&mut d);
        d
    }

    /// Decodes one ring's records into `d`.
    fn decode(&self, t: &ThreadRecords, d: &mut Decoded, later: &mut SpanUpdates) {
        for o in &t.owners {
            if let Some(name) = &o.name {
                d.thread_names.insert(o.tid, name.clone());
            }
            if o.worker > 0 {
                d.worker_tids.insert(o.tid);
            }
        }
        if t.lost() > 0 {
            // Just after the oldest header's stamp: records overwritten before it may share
            // that stamp (a span's creation and its fields do). A stray payload before it
            // (its header overwritten) carries a value of its event in word 0, not a time.
            let complete = t
                .records()
                .iter()
                .find(|r| r.kind().is_some_and(|k| k != Kind::Payload))
                .map_or(self.taken_at, |r| self.cal.to_unix_ns(r.ts()) + 1);
            d.complete_since = Some(d.complete_since.map_or(complete, |c: u64| c.max(complete)));
        }
        let range = self.range(t);
        let first = range.start;
        // A window between two times starts at its cut: nothing before it is read.
        let cut = if self.between {
            first
        } else {
            self.window_cut(t)
        };
        let first_seq = t.first_seq() + first as u64;
        let first_owner = t
            .owners
            .iter()
            .rev()
            .find(|o| o.since_seq <= first_seq)
            .or(t.owners.first());
        let (tid, worker) = first_owner.map_or((0, 0), |o| (o.tid, o.worker));
        let worker = worker.checked_sub(1).map(|w| w as usize);
        let mut decoder = ThreadDecoder::new(self.window_start, tid, worker);
        let records = &t.records()[range];
        for (i, Located { at, ts, event, .. }) in codec::events(records).enumerate() {
            crate::background::every(i);
            decoder.note_boundary(&event, d, || self.cal.to_unix_ns(ts));
            if self.only.is_some_and(|keys| !decoder.keeps(&event, keys)) {
                continue;
            }
            if first + at < cut && !names_things(&event) {
                continue;
            }
            if self.between && !breakdown_reads(&event) {
                continue;
            }
            decoder.apply(event, self.cal.to_unix_ns(ts), d, later);
        }
        decoder.finish(self.taken_at, d);
    }

    /// Index of the last header stamped before the window (a binary search over the
    /// headers): the events before it are older than the window, and only what names spans
    /// and tasks is read from them (a long-lived task's spawn site, a culprit's span name),
    /// not the polls, entries and samples whose intervals ended long ago.
    fn window_cut(&self, t: &ThreadRecords) -> usize {
        let recs = t.records();
        let window_ticks = self.cal.unix_to_ticks(self.window_start);
        let first_in_window = t
            .copy
            .seq_for_time(window_ticks)
            .map_or(0, |seq| (seq - t.first_seq()) as usize);
        recs[..first_in_window]
            .iter()
            .rposition(|r| r.kind().is_some_and(|k| k != Kind::Payload))
            .unwrap_or(0)
    }

    /// Index of the first header stamped after the window (`taken_at`), or the end.
    fn window_end(&self, t: &ThreadRecords) -> usize {
        let recs = t.records();
        let after = self.cal.unix_to_ticks(self.taken_at).saturating_add(1);
        let from = t
            .copy
            .seq_for_time(after)
            .map_or(recs.len(), |seq| (seq - t.first_seq()) as usize);
        recs[from..]
            .iter()
            .position(|r| r.kind().is_some_and(|k| k != Kind::Payload))
            .map_or(recs.len(), |i| from + i)
    }
}

/// Whether an event from before the window is still needed: it names a span or a task.
fn names_things(event: &Event<'_>) -> bool {
    match event {
        Event::ThreadStart(_) | Event::SpanNew(_) | Event::SpanIds(_) | Event::TaskSpawn(_) => true,
        Event::Field(Field { name, .. }) => *name == "otel.name",
        _ => false,
    }
}

/// Whether a breakdown or its timeline reads `event`: not a span's fields other than its name,
/// nor a `tracing` event (or its fields), which only a rebuilt span carries.
fn breakdown_reads(event: &Event<'_>) -> bool {
    match event {
        Event::TracingEvent(_) => false,
        Event::Field(Field { owner, name, .. }) => *owner != 0 && *name == "otel.name",
        _ => true,
    }
}

/// Records a request writes per span, about (creation, ids, fields, entries, exits, close):
/// what a window's span table is sized by.
const RECORDS_PER_SPAN: usize = 16;

/// Indexes `d` once, so finding one request's spans and tasks costs that request's size, and
/// sorts what the analyzer binary-searches.
fn index(d: &mut Decoded) {
    d.threads
        .retain(|t| !(t.polls.is_empty() && t.entries.is_empty() && t.parks.is_empty()));
    for samples in d.os_samples.values_mut() {
        samples.sort_unstable_by_key(|s| s.0);
        settle_run_queue_waits(samples);
    }
    for iv in d.off_cpu.values_mut() {
        close_open_intervals(iv, d.taken_at);
    }
    for w in d.waits.values_mut() {
        w.sort_by_key(|w| w.at);
    }
    for f in d.page_faults.values_mut() {
        f.sort_unstable_by_key(|f| f.at);
    }
    d.alive_tasks.sort_unstable_by_key(|a| a.0);
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
    for t in &mut d.threads {
        t.index();
    }
}

/// Puts each run-queue wait of a thread's schedstat samples `s` (time, cumulative on-CPU ns,
/// cumulative run-queue wait ns; sorted by time) where it happened. The kernel adds a wait to
/// `run_delay` only when the thread gets a CPU back, so a sample taken while the thread waits
/// in the queue (always, when the sampler runs on the thread's CPU) does not count that wait
/// yet, and the next sample counts all of it: more waiting than the thread spent off-CPU since
/// the sample before. That excess was waited before the sample, and is moved there (and
/// further back while it exceeds the off-CPU time it would fall in). Read as they came, the
/// samples left the wait before each sample as off-CPU time that is not run-queue wait, and a
/// thread that never blocked was reported blocked for milliseconds.
fn settle_run_queue_waits(s: &mut [(u64, u64, u64)]) {
    for i in (0..s.len().saturating_sub(1)).rev() {
        let (next, here) = (s[i + 1], s[i]);
        let off = (next.0 - here.0).saturating_sub(next.1.saturating_sub(here.1));
        s[i].2 = here.2.max(next.2.saturating_sub(off));
    }
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

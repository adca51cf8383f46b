//! One ring's events, in order, into its threads' activity (polls, span entries, parks) and
//! the snapshot-wide tables (spans, tasks, jobs, OS records).

use super::decoded::{
    Decoded, Entry, EventInfo, FaultReading, Job, Poll, TaskInfo, ThreadActivity, Waited,
};
use super::light::KeyFilter;
use super::span_table::SpanUpdates;
use crate::recorder::codec::Event;
use crate::recorder::codec::blocking::{BlockingEnd, BlockingQueued, BlockingStart};
use crate::recorder::codec::fields::Field;
use crate::recorder::codec::os::{OffCpu, OsSample};
use crate::recorder::codec::span_ids::SpanIds;
use crate::recorder::codec::spans::{SpanClose, SpanEnter, SpanExit, SpanNew};
use crate::recorder::codec::tasks::{PollEnd, PollStart, TaskSpawn};
use crate::recorder::codec::threads::ThreadStart;
use crate::recorder::codec::waits::WaitSample;

/// Decodes one ring: the activity of its current owner, and what is still open.
pub(super) struct ThreadDecoder {
    /// Intervals that ended before this (Unix ns) are not kept.
    window_start: u64,
    /// The current owner's activity.
    act: ThreadActivity,
    /// Polls begun and not ended yet (nested polls stack), by index in `act.polls`: kept
    /// there from their start, so a thread's polls come out in start order.
    polls: Vec<usize>,
    /// Span entries not exited yet, by index in `act.entries` (in start order likewise).
    entries: Vec<usize>,
    park: Option<u64>,
    /// Whether this owner's parks were seen in the window: an unpark before any park ends a
    /// park that began before the window.
    park_seen: bool,
    /// The thread's cumulative (allocations, bytes) as of the last boundary that carried them.
    last_alloc: Option<(u64, u64)>,
    /// Where in the span updates the event is that the next owner-less field belongs to.
    last_event: Option<usize>,
    /// Polls and span entries open on the thread, kept or not, to tell the top-level ones.
    poll_depth: u32,
    entry_depth: u32,
    /// The span of the last outermost exit, while no other outermost entry followed it: an
    /// entry of that span next is the same task coming back to it (`Instrumented` entering it
    /// again to drop the future it wraps, or the task's next poll with no other spanned work
    /// between), not a new tick's start.
    last_outer_exit: Option<u64>,
}

impl ThreadDecoder {
    /// A decoder for a ring whose first owner is `owner` (its OS thread id, worker index).
    pub(super) fn new(window_start: u64, tid: u64, worker: Option<usize>) -> Self {
        ThreadDecoder {
            window_start,
            act: ThreadActivity {
                tid,
                worker,
                ..ThreadActivity::default()
            },
            polls: Vec::new(),
            entries: Vec::new(),
            park: None,
            park_seen: false,
            last_alloc: None,
            last_event: None,
            poll_depth: 0,
            entry_depth: 0,
            last_outer_exit: None,
        }
    }

    /// Notes a poll's or span entry's start or end, kept or not: the allocation counters it
    /// carries, whoever's boundary it is, move this thread's last-known counters, and a
    /// top-level poll start or outermost span entry is counted
    /// ([`ThreadActivity::poll_starts`], `outer_entries`; an outermost entry of the span whose
    /// outermost exit came last is not: see `last_outer_exit`); `at` gives the event's time
    /// (Unix ns), asked only for the starts the counts keep.
    #[inline]
    pub(super) fn note_boundary(
        &mut self,
        event: &Event<'_>,
        d: &mut Decoded,
        at: impl FnOnce() -> u64,
    ) {
        match event {
            Event::PollStart(_) => self.act.poll_starts.open(&mut self.poll_depth, at),
            Event::PollEnd(_) => self.poll_depth = self.poll_depth.saturating_sub(1),
            Event::SpanEnter(SpanEnter { key, .. }) => {
                if self.entry_depth == 0 && self.last_outer_exit.take() == Some(*key) {
                    self.entry_depth = 1;
                } else {
                    self.act.outer_entries.open(&mut self.entry_depth, at);
                }
            }
            Event::SpanExit(SpanExit { key, .. }) => {
                self.entry_depth = self.entry_depth.saturating_sub(1);
                if self.entry_depth == 0 {
                    self.last_outer_exit = Some(*key);
                }
            }
            _ => return,
        }
        if let Some(c) = event.counters() {
            self.last_alloc = Some((c.allocations, c.bytes));
            d.alloc_counted = true;
        }
    }

    /// Whether a light decode of `keys` keeps `event`: the thread-level events a breakdown
    /// needs and the chosen spans' own, not polls, spawns or other spans' records. Fields
    /// without an owner belong to the last event, kept only if that event was.
    #[inline]
    pub(super) fn keeps(&mut self, event: &Event<'_>, keys: &KeyFilter<'_>) -> bool {
        match event {
            Event::ThreadStart(_)
            | Event::Park
            | Event::Unpark
            | Event::AliveTasks(_)
            | Event::OffCpu(_)
            | Event::OsSample(_)
            | Event::WaitSample(_)
            | Event::PageFaults(_)
            | Event::BlockingQueued(_)
            | Event::BlockingStart(_)
            | Event::BlockingEnd(_) => true,
            Event::Field(Field { owner: 0, .. }) => self.last_event.is_some(),
            Event::Field(Field { owner: key, .. })
            | Event::SpanNew(SpanNew { key, .. })
            | Event::SpanIds(SpanIds { key, .. })
            | Event::SpanEnter(SpanEnter { key, .. })
            | Event::SpanExit(SpanExit { key, .. })
            | Event::SpanClose(SpanClose { key, .. }) => keys.contains(*key),
            Event::TracingEvent(e) => {
                let keep = keys.contains(e.span);
                if !keep {
                    self.last_event = None;
                }
                keep
            }
            Event::PollStart(_)
            | Event::PollEnd(_)
            | Event::TaskSpawn(_)
            | Event::TaskTerminate(_) => false,
        }
    }

    /// Applies `event`, stamped `ts` (Unix ns). The boundary's own counters, if it carried
    /// any, are already in `last_alloc` ([`Self::note_boundary`]).
    pub(super) fn apply(
        &mut self,
        event: Event<'_>,
        ts: u64,
        d: &mut Decoded,
        later: &mut SpanUpdates,
    ) {
        match event {
            Event::ThreadStart(start) => self.new_owner(start, ts, d),
            Event::PollStart(PollStart { task, .. }) => {
                self.polls.push(self.act.polls.len());
                self.act.polls.push(Poll {
                    task,
                    start: ts,
                    end: ts,
                    sched_latency: 0,
                    alloc: self.last_alloc.map(|a| (a, a)),
                    open: true,
                });
            }
            Event::PollEnd(end) => self.end_poll(end, ts),
            Event::SpanEnter(SpanEnter { key, .. }) => {
                self.entries.push(self.act.entries.len());
                self.act.entries.push(Entry {
                    span: key,
                    start: ts,
                    end: ts,
                    alloc: self.last_alloc.map(|a| (a, a)),
                });
            }
            Event::SpanExit(exit) => self.exit(exit, ts),
            Event::Park => {
                self.park = Some(ts);
                self.park_seen = true;
            }
            Event::Unpark => self.unpark(ts),
            Event::AliveTasks(a) => d.alive_tasks.push((ts, a.count)),
            Event::SpanNew(new) => {
                later.new_span(d, &new, ts, self.act.tid);
                self.last_event = None;
            }
            Event::SpanIds(ids) => later.ids(d, ids),
            Event::SpanClose(SpanClose { key, .. }) => later.end(&mut d.spans, key, ts),
            Event::TracingEvent(e) => {
                let fields = Vec::new();
                let info = EventInfo {
                    at: ts,
                    meta: e.meta,
                    fields,
                };
                self.last_event = Some(later.event(e.span, info));
            }
            Event::Field(field) => self.field(field, ts, later),
            Event::TaskSpawn(spawn) => task_spawn(spawn, d),
            Event::BlockingQueued(queued) => blocking_queued(queued, ts, d),
            Event::BlockingStart(BlockingStart { job }) => {
                if let Some(j) = d.jobs.get_mut(&job) {
                    j.started = Some(ts);
                    j.tid = self.act.tid;
                }
            }
            Event::BlockingEnd(BlockingEnd { job }) => {
                if let Some(j) = d.jobs.get_mut(&job) {
                    j.ended = Some(ts);
                }
            }
            Event::OsSample(sample) => os_sample(sample, ts, d),
            Event::OffCpu(off) => off_cpu(off, d),
            Event::WaitSample(sample) => wait_sample(sample, ts, d),
            Event::PageFaults(f) => d.page_faults.entry(f.tid).or_default().push(FaultReading {
                at: ts,
                minor: f.minor,
                major: f.major,
                inside: f.inside,
            }),
            Event::TaskTerminate(_) => {}
        }
    }

    /// Ends the activity of the ring's current owner at `at` (the snapshot time) into `d`.
    pub(super) fn finish(mut self, at: u64, d: &mut Decoded) {
        self.close_all(at);
        d.threads.push(self.act);
    }

    /// A new owner took the ring at `ts`: what the previous one left open ends there.
    fn new_owner(&mut self, start: ThreadStart, ts: u64, d: &mut Decoded) {
        self.close_all(ts);
        d.threads.push(std::mem::take(&mut self.act));
        self.act.tid = start.tid;
        self.act.worker = start.worker;
        self.park_seen = false;
        self.poll_depth = 0;
        self.entry_depth = 0;
    }

    fn end_poll(&mut self, end: PollEnd, ts: u64) {
        let Some(poll) = self.polls.pop().and_then(|i| self.act.polls.get_mut(i)) else {
            return;
        };
        poll.end = ts;
        poll.open = false;
        poll.sched_latency = end.schedule_latency_ns;
        if let (Some(a), Some(b)) = (poll.alloc.map(|x| x.0), self.last_alloc) {
            poll.alloc = Some((a, b));
        }
    }

    fn exit(&mut self, exit: SpanExit, ts: u64) {
        let entries = &mut self.act.entries;
        let Some(pos) = self
            .entries
            .iter()
            .rposition(|&i| entries[i].span == exit.key)
        else {
            return;
        };
        let e = &mut entries[self.entries.remove(pos)];
        e.end = ts;
        if let (Some(a), Some(b)) = (e.alloc.map(|x| x.0), self.last_alloc) {
            e.alloc = Some((a, b));
        }
    }

    fn unpark(&mut self, ts: u64) {
        let start = match self.park.take() {
            Some(start) => Some(start),
            None if !self.park_seen => Some(self.window_start.min(ts)),
            None => None,
        };
        self.park_seen = true;
        if let Some(start) = start.filter(|_| ts >= self.window_start) {
            self.act.parks.push((start, ts));
        }
    }

    /// A field of a span, or (owner 0) of the event this thread wrote last.
    fn field(&mut self, field: Field<'_>, ts: u64, later: &mut SpanUpdates) {
        let value = field.value.into();
        if field.owner != 0 {
            later.field(field.owner, ts, field.name, value);
        } else if let Some(event) = self.last_event {
            later.event_field(event, field.name, value);
        }
    }

    /// Ends whatever is still open at `at` (the snapshot time or the next owner's start), and
    /// drops the polls and entries that ended before the window.
    fn close_all(&mut self, at: u64) {
        for i in self.polls.drain(..) {
            self.act.polls[i].end = at;
        }
        for i in self.entries.drain(..) {
            self.act.entries[i].end = at;
        }
        let from = self.window_start;
        self.act.polls.retain(|p| p.end >= from);
        self.act.entries.retain(|e| e.end >= from);
        if let Some(start) = self.park.take() {
            self.act.parks.push((start, at));
        }
    }
}

fn task_spawn(spawn: TaskSpawn, d: &mut Decoded) {
    let task = TaskInfo {
        parent_task: spawn.parent_task,
        parent_span: spawn.parent_span,
        spawned_at: spawn.spawned_at,
    };
    d.tasks.insert(spawn.task, task);
}

fn blocking_queued(queued: BlockingQueued, ts: u64, d: &mut Decoded) {
    let job = Job {
        task: queued.task,
        span: queued.span,
        queued: ts,
        ..Job::default()
    };
    d.jobs.insert(queued.job, job);
}

fn os_sample(sample: OsSample, ts: u64, d: &mut Decoded) {
    let OsSample {
        tid,
        on_cpu_ns,
        run_queue_ns,
    } = sample;
    d.os_samples
        .entry(tid)
        .or_default()
        .push((ts, on_cpu_ns, run_queue_ns));
}

fn wait_sample(sample: WaitSample<'_>, ts: u64, d: &mut Decoded) {
    let text = sample.text.to_string_lossy();
    let (wchan, object) = text.split_once('\t').unwrap_or((&text, ""));
    d.waits.entry(sample.tid).or_default().push(Waited {
        at: ts,
        nr: sample.nr,
        state: sample.state,
        wchan: wchan.to_string(),
        object: object.to_string(),
    });
}

/// An off-CPU interval, open ones ending at `u64::MAX` until `close_open_intervals` settles
/// them.
fn off_cpu(off: OffCpu, d: &mut Decoded) {
    let out = d.calibration.mono_to_unix_ns(off.out_ns);
    let end = off.duration_ns.map_or(u64::MAX, |ns| out + ns);
    d.off_cpu
        .entry(off.tid)
        .or_default()
        .push((out, end, off.preempted));
}

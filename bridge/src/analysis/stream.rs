//! Every local trace's spans rebuilt from the rings as they are written, for
//! `GRANULAR_ALL_FROM=recording`: `all` mode without tracing-opentelemetry on the request path.
//!
//! ```text
//! each ring's new records ─> TraceStream::feed ─> open spans (fields, events, ids, time entered)
//!                                                 └ closed: held by their local trace
//! end of a pass ─> TraceStream::end_pass ─> the spans of traces whose local root closed, and
//!                                           spans closing after it, ready to export
//! ```
//! A trace is held until its local root closes. Its close says whether the source sampler
//! handed the trace to the analyzer ([`SpanClose::to_analyzer`]), which exports it with its
//! breakdown: its spans are dropped here. Every other trace is released: its closed spans are
//! ready at once, and those closing later as they close.
//!
//! Closes, and records about a span found before its creation in a pass (it was created on a
//! ring read later), are applied at the end of the pass, after every ring's creations; what
//! still finds no span waits for the next pass's end, once. What cannot be rebuilt is counted
//! ([`StreamCounters`]), not guessed: records a ring overwrote before they were read (the
//! traces open then are marked `data_loss`), spans whose local root was never read (created
//! before the stream began, or overwritten: no trace id to export them under), spans beyond
//! [`MAX_HELD`]. A trace that missed records may never see some of its closes: when the stream
//! is full, such traces are dropped first, so that losses do not keep it full for good.

use tracing::Metadata;

use super::decode::{EventInfo, FieldValue, SpanInfo};
use super::idmap::{IdMap, IdSet};
use crate::clock::Calibration;
use crate::recorder::Record;
use crate::recorder::codec::fields::Field;
use crate::recorder::codec::span_ids::SpanIds;
use crate::recorder::codec::spans::{SpanClose, SpanNew};
use crate::recorder::codec::{Event, events};

/// Spans held at once at most, open or closed in an unreleased trace: beyond, a new span is
/// not tracked (counted in [`StreamCounters::untracked`]).
pub(crate) const MAX_HELD: usize = 200_000;

/// A closed span ready to export.
#[derive(Debug)]
pub(crate) struct Ready {
    /// Times in Unix ns; `otel_span_id` set.
    pub info: SpanInfo,
    pub end: u64,
    /// Nanoseconds it was entered.
    pub busy: u64,
    /// 0 when its local root's ids were never read.
    pub trace_id: u128,
    /// The parent's span id (for a local root, its remote parent's; 0: none).
    pub parent_span_id: u64,
    /// A local root whose parent came over the wire.
    pub remote_parent: bool,
    /// Records of its trace were overwritten before they were read.
    pub data_loss: bool,
}

/// What the stream could not rebuild, counted since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct StreamCounters {
    /// Records the rings overwrote before they were read.
    pub missed_records: u64,
    /// Spans whose local root was never read (not exported).
    pub orphaned_spans: u64,
    /// Spans not tracked because [`MAX_HELD`] were held, or dropped then with a trace that
    /// had missed records.
    pub untracked: u64,
    /// Spans dropped because the analyzer exports their trace.
    pub to_analyzer: u64,
}

/// An open span.
#[derive(Debug)]
struct Open {
    info: SpanInfo,
    root: u64,
    /// Ticks entered so far, and (while entered) since when and how deep.
    busy_ticks: u64,
    entered_at: u64,
    depth: u32,
}

/// Whether a local trace's root has closed, and what became of the trace.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Fate {
    #[default]
    Held,
    Released,
    ToAnalyzer,
}

/// A local trace, by its root's key.
#[derive(Debug, Default)]
struct Trace {
    fate: Fate,
    trace_id: Option<u128>,
    remote_parent: Option<u64>,
    /// (key, span id) of its spans, for each one's parent: a handful per trace, searched
    /// rather than hashed (a map per trace was a tenth of the stream's allocations).
    span_ids: Vec<(u64, u64)>,
    /// Closed spans held until the root closes: (span, end in Unix ns, ns entered).
    closed: Vec<(SpanInfo, u64, u64)>,
    /// Spans of it still open.
    open: usize,
    data_loss: bool,
}

/// A record about a span not known yet in this pass.
#[derive(Debug)]
enum Later {
    /// Its creation, under a parent not known yet (created on a ring read later).
    New(SpanNew, u64),
    Ids(SpanIds),
    Enter,
    Exit,
    Field(&'static str, FieldValue),
    Event(EventInfo),
    Close(bool),
}

/// Where owner-0 fields go: the event written last on the ring.
#[derive(Debug, Clone, Copy)]
enum LastEvent {
    None,
    /// The newest event of this open span.
    Open(u64),
    /// An event kept for the end of the pass, by index.
    Later(usize),
}

/// One ring as the stream reads it.
#[derive(Debug, Clone, Copy)]
struct RingState {
    tid: u64,
    last_event: LastEvent,
}

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct TraceStream {
    /// Spans held at most ([`MAX_HELD`]).
    max_held: usize,
    open: IdMap<u64, Open>,
    traces: IdMap<u64, Trace>,
    /// Closed spans held by unreleased traces.
    held_closed: usize,
    rings: Vec<RingState>,
    later: Vec<(u64, u64, Later)>,
    /// Records of the last pass that found no span: tried once more at the end of this one
    /// (the span's creation may sit on a ring read before the span was created, in that pass).
    carried: Vec<(u64, u64, Later)>,
    ready: Vec<Ready>,
    counters: StreamCounters,
}

impl TraceStream {
    /// A stream holding at most [`MAX_HELD`] spans.
    pub(crate) fn new() -> Self {
        Self::holding_at_most(MAX_HELD)
    }

    fn holding_at_most(max_held: usize) -> Self {
        TraceStream {
            max_held,
            open: IdMap::default(),
            traces: IdMap::default(),
            held_closed: 0,
            rings: Vec::new(),
            later: Vec::new(),
            carried: Vec::new(),
            ready: Vec::new(),
            counters: StreamCounters::default(),
        }
    }

    /// What it could not rebuild so far.
    pub(crate) fn counters(&self) -> StreamCounters {
        self.counters
    }

    /// Spans held (open, or closed in a trace whose root is open).
    pub(crate) fn held(&self) -> usize {
        self.open.len() + self.held_closed
    }

    /// Ring `ring` is read from here on; `tid` owned it then (later owners announce
    /// themselves with a `ThreadStart`).
    pub(crate) fn start_ring(&mut self, ring: usize, tid: u64) {
        if self.rings.len() <= ring {
            let none = RingState {
                tid: 0,
                last_event: LastEvent::None,
            };
            self.rings.resize(ring + 1, none);
        }
        self.rings[ring].tid = tid;
    }

    /// `ring` overwrote `records` before they were read: every trace open now may miss some.
    pub(crate) fn missed(&mut self, records: u64) {
        self.counters.missed_records += records;
        for t in self.traces.values_mut() {
            t.data_loss = true;
        }
    }

    /// Feeds the events newly read from `ring` (after [`Self::start_ring`]) stamped at tick
    /// `until` or before, in ticks `cal` converts. Returns how many records it used: up to
    /// the first event stamped after `until`, or the last whole one (one whose payloads are
    /// not written yet is read again next time).
    ///
    /// A pass reads every ring to the same `until`: a close waits for the end of the pass in
    /// the table of open spans, so the shorter the stretch of time a pass covers, the smaller
    /// that table (at saturation, passes of everything written in 10 ms held ~6,000 closed
    /// spans there, and its look-ups missed the cache: half the stream's CPU a span more).
    pub(crate) fn feed(
        &mut self,
        ring: usize,
        records: &[Record],
        cal: &Calibration,
        until: u64,
    ) -> usize {
        let Some(mut state) = self.rings.get(ring).copied() else {
            return 0;
        };
        let mut used = 0;
        for (i, e) in events(records).enumerate() {
            crate::background::every(i);
            if e.ts > until {
                break;
            }
            used = e.at + e.len;
            let at = cal.to_unix_ns(e.ts);
            match e.event {
                Event::ThreadStart(start) => {
                    state.tid = start.tid;
                    state.last_event = LastEvent::None;
                }
                Event::SpanNew(new) => {
                    if new.parent == 0 || self.open.contains_key(&new.parent) {
                        self.new_span(&new, at, state.tid);
                    } else {
                        self.later.push((new.key, e.ts, Later::New(new, state.tid)));
                    }
                    state.last_event = LastEvent::None;
                }
                Event::SpanIds(ids) => self.update(ids.key, e.ts, Later::Ids(ids), cal),
                Event::SpanEnter(enter) => self.update(enter.key, e.ts, Later::Enter, cal),
                Event::SpanExit(exit) => self.update(exit.key, e.ts, Later::Exit, cal),
                // Closes wait for the end of the pass, every ring's creations read: a ring read
                // earlier may hold a root's close and one read later its child's creation.
                Event::SpanClose(SpanClose { key, to_analyzer }) => {
                    self.later.push((key, e.ts, Later::Close(to_analyzer)));
                }
                Event::TracingEvent(ev) => {
                    state.last_event = self.event(ev.span, at, ev.meta, e.ts);
                }
                Event::Field(Field { owner, name, value }) => {
                    let value = FieldValue::from(value);
                    match (owner, state.last_event) {
                        (0, LastEvent::Open(key)) => {
                            if let Some(ev) = self
                                .open
                                .get_mut(&key)
                                .and_then(|o| o.info.events.last_mut())
                            {
                                ev.fields.push((name, value));
                            }
                        }
                        (0, LastEvent::Later(i)) => {
                            if let Some((_, _, Later::Event(ev))) = self.later.get_mut(i) {
                                ev.fields.push((name, value));
                            }
                        }
                        (0, LastEvent::None) => {}
                        (key, _) => self.update(key, e.ts, Later::Field(name, value), cal),
                    }
                }
                _ => {}
            }
        }
        self.rings[ring] = state;
        used
    }

    /// Applies what waited for spans created on rings read later in the pass, and what the
    /// last pass could not place; what finds no span for the first time waits for the next
    /// pass, for the second time is dropped. Hands over the spans ready to export.
    pub(crate) fn end_pass(&mut self, cal: &Calibration) -> Vec<Ready> {
        let carried = std::mem::take(&mut self.carried)
            .into_iter()
            .map(|e| (e, true));
        let later = std::mem::take(&mut self.later)
            .into_iter()
            .map(|e| (e, false));
        let all: Vec<((u64, u64, Later), bool)> = carried.chain(later).collect();
        // Creations first, in time order: a parent before its children, whichever rings
        // they are on.
        let mut news: Vec<(u64, &SpanNew, u64, bool)> = all
            .iter()
            .filter_map(|((_, ts, l), old)| match l {
                Later::New(new, tid) => Some((*ts, new, *tid, *old)),
                _ => None,
            })
            .collect();
        news.sort_by_key(|n| n.0);
        let mut unplaced = Vec::new();
        for (ts, new, tid, old) in news {
            if self.open.contains_key(&new.parent) {
                self.new_span(new, cal.to_unix_ns(ts), tid);
            } else if !old {
                unplaced.push((new.key, ts, Later::New(*new, tid)));
            }
        }
        for ((key, ts, l), old) in all {
            if matches!(l, Later::New(..)) {
                continue;
            }
            if self.open.contains_key(&key) {
                self.apply(key, ts, l, cal);
            } else if !old {
                unplaced.push((key, ts, l));
            } else if matches!(l, Later::Close(_)) {
                self.counters.orphaned_spans += 1;
            }
        }
        self.carried = unplaced;
        // Their indices were into this pass's records.
        for r in &mut self.rings {
            if matches!(r.last_event, LastEvent::Later(_)) {
                r.last_event = LastEvent::None;
            }
        }
        std::mem::take(&mut self.ready)
    }

    fn new_span(&mut self, new: &SpanNew, at: u64, tid: u64) {
        if self.held() >= self.max_held {
            self.drop_lossy_traces();
            if self.held() >= self.max_held {
                self.counters.untracked += 1;
                return;
            }
        }
        let root = if new.parent == 0 {
            new.key
        } else {
            match self.open.get(&new.parent) {
                Some(parent) => parent.root,
                // Its local root was never read: no trace id to export it under.
                None => return,
            }
        };
        let trace = self.traces.entry(root).or_default();
        trace.open += 1;
        if let Some(id) = new.span_id {
            trace.span_ids.push((new.key, id));
        }
        let info = SpanInfo {
            name: new.meta.name(),
            meta: new.meta,
            parent: new.parent,
            otel_span_id: new.span_id.unwrap_or(0),
            trace_id: None,
            remote_parent: None,
            start: at,
            end: None,
            tid,
            // Most spans record each field they declare once.
            fields: Vec::with_capacity(new.meta.fields().len()),
            events: Vec::new(),
        };
        let open = Open {
            info,
            root,
            busy_ticks: 0,
            entered_at: 0,
            depth: 0,
        };
        self.open.insert(new.key, open);
    }

    /// Drops the traces that missed records (spans whose close was overwritten would be held
    /// for good), counting their spans as not tracked.
    fn drop_lossy_traces(&mut self) {
        let lossy: IdSet<u64> = (self.traces.iter())
            .filter(|(_, t)| t.data_loss)
            .map(|(root, _)| *root)
            .collect();
        if lossy.is_empty() {
            return;
        }
        let open = self.open.len();
        self.open.retain(|_, o| !lossy.contains(&o.root));
        let mut dropped = open - self.open.len();
        for root in &lossy {
            if let Some(t) = self.traces.remove(root) {
                dropped += t.closed.len();
                self.held_closed -= t.closed.len();
            }
        }
        self.counters.untracked += dropped as u64;
    }

    /// An event inside span `key`; where its fields go.
    fn event(&mut self, key: u64, at: u64, meta: &'static Metadata<'static>, ts: u64) -> LastEvent {
        let info = EventInfo {
            at,
            meta,
            fields: Vec::new(),
        };
        match self.open.get_mut(&key) {
            Some(o) => {
                o.info.events.push(info);
                LastEvent::Open(key)
            }
            None => {
                self.later.push((key, ts, Later::Event(info)));
                LastEvent::Later(self.later.len() - 1)
            }
        }
    }

    /// Applies `later` to span `key` now if it is open, else at the end of the pass.
    fn update(&mut self, key: u64, ts: u64, later: Later, cal: &Calibration) {
        if self.open.contains_key(&key) {
            self.apply(key, ts, later, cal);
        } else {
            self.later.push((key, ts, later));
        }
    }

    fn apply(&mut self, key: u64, ts: u64, later: Later, cal: &Calibration) {
        let Some(o) = self.open.get_mut(&key) else {
            return;
        };
        match later {
            Later::Ids(ids) => {
                o.info.otel_span_id = ids.span_id;
                if let Some(t) = self.traces.get_mut(&o.root) {
                    t.span_ids.push((key, ids.span_id));
                    if let Some(root) = ids.root {
                        t.trace_id = Some(root.trace_id);
                        t.remote_parent = root.remote_parent.or(t.remote_parent);
                    }
                }
            }
            Later::Enter => {
                if o.depth == 0 {
                    o.entered_at = ts;
                }
                o.depth += 1;
            }
            Later::Exit => {
                if o.depth == 1 {
                    o.busy_ticks += ts.saturating_sub(o.entered_at);
                }
                o.depth = o.depth.saturating_sub(1);
            }
            Later::Field(name, value) => o.info.fields.push((name, value)),
            Later::Event(ev) => o.info.events.push(ev),
            Later::Close(to_analyzer) => self.close(key, ts, to_analyzer, cal),
            // Applied by `end_pass` before anything else.
            Later::New(..) => {}
        }
    }

    fn close(&mut self, key: u64, ts: u64, to_analyzer: bool, cal: &Calibration) {
        let Some(mut o) = self.open.remove(&key) else {
            return;
        };
        if o.depth > 0 {
            o.busy_ticks += ts.saturating_sub(o.entered_at);
        }
        let Some(trace) = self.traces.get_mut(&o.root) else {
            return;
        };
        trace.open -= 1;
        let (end, busy) = (cal.to_unix_ns(ts), cal.ticks_to_ns(o.busy_ticks));
        match trace.fate {
            Fate::Held => {
                trace.closed.push((o.info, end, busy));
                self.held_closed += 1;
            }
            Fate::Released => ready(&mut self.ready, trace, o.info, end, busy),
            Fate::ToAnalyzer => self.counters.to_analyzer += 1,
        }
        if key == o.root {
            let closed = std::mem::take(&mut trace.closed);
            self.held_closed -= closed.len();
            if to_analyzer {
                trace.fate = Fate::ToAnalyzer;
                self.counters.to_analyzer += closed.len() as u64;
            } else {
                trace.fate = Fate::Released;
                for (info, end, busy) in closed {
                    ready(&mut self.ready, trace, info, end, busy);
                }
            }
        }
        if trace.open == 0 && trace.fate != Fate::Held {
            self.traces.remove(&o.root);
        }
    }
}

/// Hands `info` of the released `trace` over for export.
fn ready(out: &mut Vec<Ready>, trace: &Trace, info: SpanInfo, end: u64, busy: u64) {
    let root = info.parent == 0;
    let parent_span_id = if root {
        trace.remote_parent.unwrap_or(0)
    } else {
        let parent = trace.span_ids.iter().rev().find(|(k, _)| *k == info.parent);
        parent.map_or(0, |&(_, id)| id)
    };
    out.push(Ready {
        end,
        busy,
        trace_id: trace.trace_id.unwrap_or(0),
        parent_span_id,
        remote_parent: root && trace.remote_parent.is_some(),
        data_loss: trace.data_loss,
        info,
    });
}

#[cfg(test)]
mod tests;

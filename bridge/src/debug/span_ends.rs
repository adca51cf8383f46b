//! Every span's end, read from the flight recorder's rings off the request path.
//!
//! The request path already writes each span's creation, fields, ids and close into its
//! thread's ring (both `GRANULAR_SAMPLE` modes); nothing is added there for the debug endpoint.
//! [`RingSpanEnds`] keeps its own place in each ring and, every time it is read, copies what
//! was written since (a [`RingCursor`] per ring, holding only the unread records), pairs each
//! `SpanClose` with its `SpanNew` and yields the span's name (`otel.name`, else the callsite's),
//! `http.route` (recorded where Granular records spans: tracing-opentelemetry keeps the other
//! fields), its trace id (its local root's) and its duration.
//!
//! What it cannot see is counted, not guessed: records a ring overwrote before they were read
//! (`missed_records`: read more often, or give the rings more memory), closes whose creation
//! was never read (`unmatched_closes`), spans beyond [`MAX_OPEN`] open at once (`untracked`).

use std::collections::HashMap;

use crate::clock::Calibration;
use crate::recorder::FlightRecorder;
use crate::recorder::codec::fields::Value;
use crate::recorder::codec::{Event, events};
use crate::recorder::cursor::RingCursor;
use crate::recorder::ring::Ring;

/// Spans tracked open at once at most (~100 bytes each): beyond, a new span is not counted.
pub(crate) const MAX_OPEN: usize = 200_000;

/// Closes kept for one more read when their span's creation was not read yet (it may sit in
/// a ring read earlier in the same pass).
const MAX_PENDING_CLOSES: usize = 65_536;

/// How far up a span's parents the reader looks for its local root's trace id.
const MAX_DEPTH: usize = 32;

/// A span that ended.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SpanEnd {
    /// `otel.name` when recorded, else the callsite's name.
    pub name: String,
    /// `http.route`, when recorded on the span.
    pub route: Option<String>,
    /// Its local root's trace id, when that root's ids were read.
    pub trace_id: Option<u128>,
    /// It had no local parent.
    pub local_root: bool,
    /// `otel.status_code = "ERROR"` was recorded on it.
    pub error: bool,
    pub duration_ns: u64,
    /// When it ended, Unix ns.
    pub end_unix_ns: u64,
}

/// What a source of span ends could not see, counted since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Missed {
    /// Records overwritten before they were read.
    pub missed_records: u64,
    /// Closes of spans whose creation was never read.
    pub unmatched_closes: u64,
    /// Spans not tracked: [`MAX_OPEN`] were open.
    pub untracked: u64,
}

/// A source of span ends.
///
/// Contract: [`read`](SpanEnds::read) returns each span that ended since the last call exactly
/// once (or counts it in [`missed`](SpanEnds::missed)); it runs on the caller's thread, never
/// on the request path, and its memory is bounded whatever the load.
pub(crate) trait SpanEnds: Send {
    /// The spans that ended since the last call.
    fn read(&mut self) -> Vec<SpanEnd>;
    /// What could not be seen so far.
    fn missed(&self) -> Missed;
}

#[derive(Debug)]
enum Name {
    Callsite(&'static str),
    Recorded(String),
}

#[derive(Debug)]
struct Open {
    start: u64,
    parent: u64,
    name: Name,
    route: Option<String>,
    trace_id: Option<u128>,
    error: bool,
}

/// [`SpanEnds`] read from the flight recorder's rings (see the module documentation).
#[derive(Debug)]
pub(crate) struct RingSpanEnds {
    recorder: &'static FlightRecorder,
    places: Vec<RingCursor>,
    open: HashMap<u64, Open>,
    /// Closes (key, tick) whose creation was not read yet, from the last read.
    pending: Vec<(u64, u64)>,
    missed: Missed,
}

impl RingSpanEnds {
    pub(crate) fn new(recorder: &'static FlightRecorder) -> Self {
        RingSpanEnds {
            recorder,
            places: Vec::new(),
            open: HashMap::new(),
            pending: Vec::new(),
            missed: Missed::default(),
        }
    }

    /// Copies what `ring` holds past `place` and feeds every whole event to `each`, closes
    /// into `closes`; moves `place` past the last whole event.
    fn read_ring(&mut self, ring: &Ring, i: usize, closes: &mut Vec<(u64, u64)>) {
        let place = &mut self.places[i];
        let (missed, records) = place.unread(ring);
        self.missed.missed_records += missed;
        let mut end = 0;
        for e in events(records) {
            end = e.at + e.len;
            match e.event {
                Event::SpanNew(n) => {
                    if self.open.len() >= MAX_OPEN {
                        self.missed.untracked += 1;
                        continue;
                    }
                    self.open.insert(
                        n.key,
                        Open {
                            start: e.ts,
                            parent: n.parent,
                            name: Name::Callsite(n.meta.name()),
                            route: None,
                            trace_id: None,
                            error: false,
                        },
                    );
                }
                Event::SpanIds(ids) => {
                    if let (Some(root), Some(o)) = (ids.root, self.open.get_mut(&ids.key)) {
                        o.trace_id = Some(root.trace_id);
                    }
                }
                Event::Field(f) if f.owner != 0 => {
                    let Value::Str(text) = f.value else { continue };
                    if !matches!(f.name, "otel.name" | "http.route" | "otel.status_code") {
                        continue;
                    }
                    let Some(o) = self.open.get_mut(&f.owner) else {
                        continue;
                    };
                    let text = text.to_string_lossy();
                    match f.name {
                        "otel.name" => o.name = Name::Recorded(text),
                        "http.route" => o.route = Some(text),
                        _ => o.error = text.eq_ignore_ascii_case("error"),
                    }
                }
                Event::SpanClose(c) => closes.push((c.key, e.ts)),
                _ => {}
            }
        }
        place.advance(end);
    }

    /// The trace id of `key`'s local root, looking up its open ancestors.
    fn trace_of(&self, mut key: u64) -> Option<u128> {
        for _ in 0..MAX_DEPTH {
            let o = self.open.get(&key)?;
            if o.trace_id.is_some() || o.parent == 0 {
                return o.trace_id;
            }
            key = o.parent;
        }
        None
    }
}

impl SpanEnds for RingSpanEnds {
    fn read(&mut self) -> Vec<SpanEnd> {
        let rings = self.recorder.rings();
        self.places.resize_with(rings.len(), RingCursor::default);
        // Creations, fields and ids of every ring first, then the closes: a span created on
        // one thread and closed on another is paired whatever order the rings are read in.
        let mut closes = std::mem::take(&mut self.pending);
        let retried = closes.len();
        for (i, ring) in rings.into_iter().enumerate() {
            self.read_ring(ring, i, &mut closes);
        }
        let cal = Calibration::now();
        let mut ends = Vec::new();
        for (n, (key, ts)) in closes.into_iter().enumerate() {
            let Some(trace_id) = self.open.contains_key(&key).then(|| self.trace_of(key)) else {
                if n < retried || self.pending.len() >= MAX_PENDING_CLOSES {
                    self.missed.unmatched_closes += 1;
                } else {
                    self.pending.push((key, ts));
                }
                continue;
            };
            let Some(o) = self.open.remove(&key) else {
                continue;
            };
            let name = match o.name {
                Name::Callsite(s) => s.to_string(),
                Name::Recorded(s) => s,
            };
            ends.push(SpanEnd {
                name,
                route: o.route,
                trace_id: trace_id.or(o.trace_id),
                local_root: o.parent == 0,
                error: o.error,
                duration_ns: cal.ticks_to_ns(ts.saturating_sub(o.start)),
                end_unix_ns: cal.to_unix_ns(ts),
            });
        }
        ends
    }

    fn missed(&self) -> Missed {
        self.missed
    }
}

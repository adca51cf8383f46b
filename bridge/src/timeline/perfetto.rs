//! Renders a [`Timeline`] as a Perfetto protobuf trace.
//!
//! Open the bytes (saved as e.g. `slow-request.pftrace`) at
//! <https://ui.perfetto.dev> → "Open trace file". Everything happens in the
//! browser; nothing is uploaded.
//!
//! # What the trace contains
//!
//! * One process, named after [`Timeline::title`] (pid [`PID`]), holding every
//!   track in the timeline's order.
//! * A thread track per [`TrackKind::Thread`] (a `ThreadDescriptor` with the
//!   real tid, so the row reads as that OS thread) and a named child track of
//!   the process per [`TrackKind::Task`].
//! * Each [`Slice`] as a `TYPE_SLICE_BEGIN`/`TYPE_SLICE_END` pair. Its category
//!   goes in `categories`, its args become debug annotations (shown in the
//!   details panel), and slices of the traced request are marked twice: a
//!   [`HIGHLIGHT_PREFIX`] on the name (the UI colours slices by name, so they
//!   stand out and are easy to search for) and the extra category
//!   [`HIGHLIGHT_CATEGORY`] (for filtering and queries).
//! * Each [`Instant`] as a `TYPE_INSTANT` event.
//! * Each [`Flow`] as an arrow: a fresh flow id in the source slice's
//!   `flow_ids` and in the target slice's `terminating_flow_ids`.
//!
//! # Overlapping slices
//!
//! Perfetto draws a track as a stack of properly nested slices; a slice that
//! starts inside another and ends after it cannot be shown on the same track.
//! Rather than move either slice's edges (which would misreport exactly the
//! durations a user opens the artifact to read), such a slice is put on an
//! extra lane: a sibling track with the same name, rank and merge key, which
//! the UI draws merged with the original row. Slices are placed greedily in
//! order of start (longest first on ties, so a parent precedes its children)
//! on the first lane where they nest.
//!
//! # Timestamps
//!
//! Timestamps are the timeline's absolute Unix-epoch nanoseconds written on
//! the default trace clock (BOOTTIME) — no per-packet `timestamp_clock_id`.
//! The UI shows times relative to the start of the trace, so every offset and
//! duration reads correctly. Stamping packets with the REALTIME clock instead
//! would make trace processor convert them to BOOTTIME, which it cannot do
//! without a real snapshot pairing the two clocks, and it would drop them. To
//! still let the UI show wall-clock time (its "UTC" timestamp format), the
//! trace starts with a `ClockSnapshot` declaring BOOTTIME and REALTIME equal.
//!
//! # Repairs instead of panics
//!
//! [`encode`] accepts any timeline; [`Timeline::validate`] reports what it
//! repairs. A slice ending before it starts is drawn with zero length; a flow
//! or instant referring to a missing track or slice is skipped, as is a flow
//! pointing from a slice to itself or backwards in time (Perfetto infers a
//! flow's direction from time and would drop it anyway; between slices that
//! start at the same nanosecond, the one written first is the source). A thread track whose
//! tid repeats an earlier one or does not fit in an `i32` becomes a plain named
//! track: Perfetto allows one track per thread.

mod proto;

use std::collections::{HashMap, HashSet};

use prost::Message;

use super::model::{Flow, Instant, Slice, SliceRef, Timeline, TrackKind};
use proto::{
    BuiltinClock, ChildTracksOrdering, Clock, ClockSnapshot, Data, DebugAnnotation, EventType,
    ProcessDescriptor, SequenceFlags, SiblingMergeBehavior, ThreadDescriptor, Trace, TracePacket,
    TrackDescriptor, TrackEvent,
};

/// The process id the trace shows. The artifact describes one process, so any
/// fixed value works; the real pid would add nothing and vary between runs.
pub(crate) const PID: i32 = 1;

/// Prepended to the names of slices with [`Slice::highlight`] set.
pub(crate) const HIGHLIGHT_PREFIX: &str = "★ ";

/// Added to the categories of slices with [`Slice::highlight`] set.
pub(crate) const HIGHLIGHT_CATEGORY: &str = "request";

/// All packets form a single writer sequence; the id only has to be non-zero.
const SEQUENCE_ID: u32 = 1;

/// Uuid of the process track. Track uuids only need to be unique within one
/// trace and each artifact is a trace of its own, so they are small counters.
const PROCESS_UUID: u64 = 1;

/// Encodes `timeline` as a serialized Perfetto `Trace` (see the module docs).
pub fn encode(timeline: &Timeline) -> Vec<u8> {
    Trace {
        packet: packets(timeline),
    }
    .encode_to_vec()
}

/// Something that happens at one instant on one lane.
#[derive(Debug, Clone, Copy)]
struct Event {
    at: u64,
    kind: EventKind,
}

#[derive(Debug, Clone, Copy)]
enum EventKind {
    Begin(SliceRef),
    End,
    Instant(usize),
}

/// The slices and instants of one track, split into lanes of properly nested
/// events. Within a lane, events are in the order Perfetto must read them.
#[derive(Debug, Default)]
struct Lanes {
    events: Vec<Vec<Event>>,
    /// Per lane, the ends of the slices still open, innermost last.
    open: Vec<Vec<u64>>,
}

impl Lanes {
    fn lane(&mut self, index: usize) -> (&mut Vec<Event>, &mut Vec<u64>) {
        if self.events.len() <= index {
            self.events.resize_with(index + 1, Vec::new);
            self.open.resize_with(index + 1, Vec::new);
        }
        (&mut self.events[index], &mut self.open[index])
    }

    /// Ends the slices of `lane` that are over by `at`, innermost first.
    fn close_until(&mut self, lane: usize, at: u64) {
        let (events, open) = self.lane(lane);
        while let Some(&end) = open.last().filter(|&&end| end <= at) {
            open.pop();
            events.push(Event {
                at: end,
                kind: EventKind::End,
            });
        }
    }

    /// Opens `slice` on the first lane where it nests inside what is open.
    fn place(&mut self, slice: SliceRef, start: u64, end: u64) {
        let mut lane = 0;
        loop {
            self.close_until(lane, start);
            let (events, open) = self.lane(lane);
            if open.last().is_none_or(|&outer| end <= outer) {
                open.push(end);
                events.push(Event {
                    at: start,
                    kind: EventKind::Begin(slice),
                });
                return;
            }
            lane += 1;
        }
    }

    fn instant(&mut self, index: usize, at: u64) {
        self.close_until(0, at);
        self.lane(0).0.push(Event {
            at,
            kind: EventKind::Instant(index),
        });
    }

    fn finish(mut self) -> Vec<Vec<Event>> {
        for lane in 0..self.events.len() {
            self.close_until(lane, u64::MAX);
        }
        self.events
    }
}

/// A slice's interval, repaired so it never ends before it starts.
fn interval(slice: &Slice) -> (u64, u64) {
    (
        slice.start_unix_ns,
        slice.end_unix_ns.max(slice.start_unix_ns),
    )
}

/// Lays out one track's slices and instants (given as `(index, instant)`).
fn lay_out(track: usize, slices: &[Slice], instants: &[(usize, &Instant)]) -> Vec<Vec<Event>> {
    let mut order: Vec<usize> = (0..slices.len()).collect();
    order.sort_by_key(|&s| {
        let (start, end) = interval(&slices[s]);
        (start, std::cmp::Reverse(end))
    });
    let mut instants = instants.to_vec();
    instants.sort_by_key(|(_, instant)| instant.at_unix_ns);

    let mut lanes = Lanes::default();
    lanes.lane(0); // Every track has its first lane, even when empty.
    let mut pending = instants.into_iter().peekable();
    for s in order {
        let (start, end) = interval(&slices[s]);
        while let Some((index, instant)) = pending.next_if(|(_, i)| i.at_unix_ns <= start) {
            lanes.instant(index, instant.at_unix_ns);
        }
        lanes.place(SliceRef { track, slice: s }, start, end);
    }
    for (index, instant) in pending {
        lanes.instant(index, instant.at_unix_ns);
    }
    lanes.finish()
}

/// Flow ids leaving and ending at each slice, for the flows that can be drawn.
#[derive(Debug, Default)]
struct FlowIds {
    outgoing: HashMap<SliceRef, Vec<u64>>,
    terminating: HashMap<SliceRef, Vec<u64>>,
}

impl FlowIds {
    /// `begins` maps each slice to the position of its BEGIN in the output.
    /// Readers take the first event carrying a flow id as the flow's source,
    /// so a flow is drawable only if its source's BEGIN comes first. Using
    /// output order rather than start times also settles same-time ties, and
    /// rules out missing slices and self-arrows.
    fn new(flows: &[Flow], begins: &HashMap<SliceRef, usize>) -> Self {
        let mut ids = Self::default();
        let drawable = |flow: &Flow| {
            matches!(
                (begins.get(&flow.from), begins.get(&flow.to)),
                (Some(from), Some(to)) if from < to
            )
        };
        // Id 0 is avoided: it reads as "unset" in some tools.
        for (id, flow) in (1..).zip(flows).filter(|(_, flow)| drawable(flow)) {
            ids.outgoing.entry(flow.from).or_default().push(id);
            ids.terminating.entry(flow.to).or_default().push(id);
        }
        ids
    }
}

fn packet(timestamp: Option<u64>, data: Data) -> TracePacket {
    TracePacket {
        timestamp,
        trusted_packet_sequence_id: Some(SEQUENCE_ID),
        sequence_flags: None,
        first_packet_on_sequence: None,
        data: Some(data),
    }
}

fn packets(timeline: &Timeline) -> Vec<TracePacket> {
    let mut instants_by_track: Vec<Vec<(usize, &Instant)>> =
        vec![Vec::new(); timeline.tracks.len()];
    for (index, instant) in timeline.instants.iter().enumerate() {
        if let Some(list) = instants_by_track.get_mut(instant.track) {
            list.push((index, instant));
        }
    }
    let lanes: Vec<Vec<Vec<Event>>> = timeline
        .tracks
        .iter()
        .enumerate()
        .map(|(t, track)| lay_out(t, &track.slices, &instants_by_track[t]))
        .collect();

    let earliest = lanes
        .iter()
        .flatten()
        .flatten()
        .map(|e| e.at)
        .min()
        .unwrap_or(0);
    let mut first = clock_snapshot(earliest);
    // Declares that nothing on this sequence depends on earlier packets, so
    // readers never wait for (or drop data over) missing history.
    first.sequence_flags = Some(SequenceFlags::SeqIncrementalStateCleared as u32);
    first.first_packet_on_sequence = Some(true);
    let mut out = vec![first, process_descriptor(&timeline.title)];

    // Descriptors: every track's first lane, in order, then the extra lanes.
    let mut next_uuid = PROCESS_UUID + 1;
    let mut lane_uuids: Vec<Vec<u64>> = Vec::with_capacity(lanes.len());
    let mut claimed_tids = HashSet::new();
    for (t, track) in timeline.tracks.iter().enumerate() {
        let rank = i32::try_from(t).unwrap_or(i32::MAX);
        let mut base = child_track(&track.name, t, rank, next_uuid);
        let tid = match track.kind {
            // `insert` is false for a tid an earlier track already claimed.
            TrackKind::Thread { tid } => i32::try_from(tid)
                .ok()
                .filter(|&tid| claimed_tids.insert(tid)),
            TrackKind::Task => None,
        };
        base.thread = tid.map(|tid| ThreadDescriptor {
            pid: Some(PID),
            tid: Some(tid),
            thread_name: Some(track.name.clone()),
        });
        out.push(packet(None, Data::TrackDescriptor(base)));
        lane_uuids.push(vec![next_uuid]);
        next_uuid += 1;
    }
    for (t, track) in timeline.tracks.iter().enumerate() {
        let rank = i32::try_from(t).unwrap_or(i32::MAX);
        for _ in 1..lanes[t].len() {
            let lane = child_track(&track.name, t, rank, next_uuid);
            out.push(packet(None, Data::TrackDescriptor(lane)));
            lane_uuids[t].push(next_uuid);
            next_uuid += 1;
        }
    }

    // Events: merged by time. The sort is stable and each lane is already in
    // order, so same-time events on a lane keep their nesting order; readers
    // keep file order for equal timestamps too.
    let mut events: Vec<(u64, Event)> = lanes
        .iter()
        .zip(&lane_uuids)
        .flat_map(|(track, uuids)| track.iter().zip(uuids))
        .flat_map(|(lane, &uuid)| lane.iter().map(move |&event| (uuid, event)))
        .collect();
    events.sort_by_key(|(_, event)| event.at);
    let begins: HashMap<SliceRef, usize> = events
        .iter()
        .enumerate()
        .filter_map(|(position, (_, event))| match event.kind {
            EventKind::Begin(slice) => Some((slice, position)),
            _ => None,
        })
        .collect();
    let flows = FlowIds::new(&timeline.flows, &begins);
    out.extend(
        events
            .into_iter()
            .map(|(uuid, event)| track_event(timeline, &flows, uuid, event)),
    );
    out
}

/// Tells viewers that trace time (BOOTTIME) *is* wall-clock time, which is
/// what the encoder writes; see the module docs.
fn clock_snapshot(at: u64) -> TracePacket {
    let clock = |id: BuiltinClock| Clock {
        clock_id: Some(id as u32),
        timestamp: Some(at),
    };
    packet(
        None,
        Data::ClockSnapshot(ClockSnapshot {
            clocks: vec![clock(BuiltinClock::Boottime), clock(BuiltinClock::Realtime)],
            primary_trace_clock: Some(BuiltinClock::Boottime as i32),
        }),
    )
}

fn process_descriptor(title: &str) -> TracePacket {
    packet(
        None,
        Data::TrackDescriptor(TrackDescriptor {
            uuid: Some(PROCESS_UUID),
            name: Some(title.to_owned()),
            process: Some(ProcessDescriptor {
                pid: Some(PID),
                process_name: Some(title.to_owned()),
            }),
            thread: None,
            parent_uuid: None,
            // Keep the timeline's track order instead of sorting by name.
            child_ordering: Some(ChildTracksOrdering::Explicit as i32),
            sibling_order_rank: None,
            sibling_merge_behavior: None,
            sibling_merge_key: None,
        }),
    )
}

/// A track under the process. The merge key is per timeline track, so its
/// extra lanes merge with it while distinct tracks that happen to share a
/// name (which the UI would merge by default) stay apart.
fn child_track(name: &str, track: usize, rank: i32, uuid: u64) -> TrackDescriptor {
    TrackDescriptor {
        uuid: Some(uuid),
        name: Some(name.to_owned()),
        process: None,
        thread: None,
        parent_uuid: Some(PROCESS_UUID),
        child_ordering: None,
        sibling_order_rank: Some(rank),
        sibling_merge_behavior: Some(SiblingMergeBehavior::BySiblingMergeKey as i32),
        sibling_merge_key: Some(format!("granular-track-{track}")),
    }
}

fn track_event(timeline: &Timeline, flows: &FlowIds, uuid: u64, event: Event) -> TracePacket {
    let mut out = TrackEvent {
        debug_annotations: Vec::new(),
        r#type: None,
        track_uuid: Some(uuid),
        categories: Vec::new(),
        name: None,
        flow_ids: Vec::new(),
        terminating_flow_ids: Vec::new(),
    };
    match event.kind {
        EventKind::End => out.r#type = Some(EventType::SliceEnd as i32),
        EventKind::Instant(index) => {
            out.r#type = Some(EventType::Instant as i32);
            out.name = timeline.instants.get(index).map(|i| i.name.clone());
        }
        EventKind::Begin(at) => {
            out.r#type = Some(EventType::SliceBegin as i32);
            if let Some(slice) = timeline.slice(at) {
                out.name = Some(if slice.highlight {
                    format!("{HIGHLIGHT_PREFIX}{}", slice.name)
                } else {
                    slice.name.clone()
                });
                out.categories.push(slice.category.clone());
                if slice.highlight {
                    out.categories.push(HIGHLIGHT_CATEGORY.to_owned());
                }
                out.debug_annotations = slice
                    .args
                    .iter()
                    .map(|(name, value)| DebugAnnotation {
                        name: Some(name.clone()),
                        string_value: Some(value.clone()),
                    })
                    .collect();
            }
            out.flow_ids = flows.outgoing.get(&at).cloned().unwrap_or_default();
            out.terminating_flow_ids = flows.terminating.get(&at).cloned().unwrap_or_default();
        }
    }
    packet(Some(event.at), Data::TrackEvent(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeline::Track;

    fn slice(name: &str, start: u64, end: u64) -> Slice {
        Slice {
            name: name.into(),
            category: "running".into(),
            start_unix_ns: start,
            end_unix_ns: end,
            highlight: false,
            args: Vec::new(),
        }
    }

    fn track(name: &str, kind: TrackKind, slices: Vec<Slice>) -> Track {
        Track {
            name: name.into(),
            kind,
            slices,
        }
    }

    fn at(track: usize, slice: usize) -> SliceRef {
        SliceRef { track, slice }
    }

    fn decode(timeline: &Timeline) -> Vec<TracePacket> {
        Trace::decode(encode(timeline).as_slice())
            .expect("our output decodes")
            .packet
    }

    fn descriptors(packets: &[TracePacket]) -> Vec<&TrackDescriptor> {
        packets
            .iter()
            .filter_map(|p| match &p.data {
                Some(Data::TrackDescriptor(d)) => Some(d),
                _ => None,
            })
            .collect()
    }

    fn events(packets: &[TracePacket]) -> Vec<(u64, &TrackEvent)> {
        packets
            .iter()
            .filter_map(|p| match &p.data {
                Some(Data::TrackEvent(e)) => Some((p.timestamp.expect("events are timed"), e)),
                _ => None,
            })
            .collect()
    }

    fn uuid_named(packets: &[TracePacket], name: &str) -> Vec<u64> {
        descriptors(packets)
            .into_iter()
            .filter(|d| d.name.as_deref() == Some(name))
            .filter_map(|d| d.uuid)
            .collect()
    }

    /// A slice as Perfetto will reconstruct it: (track uuid, name, start, end, depth).
    type Replayed = (u64, String, u64, u64, usize);

    /// Replays BEGIN/END pairs per track the way trace processor does,
    /// failing on anything it would reject (END without BEGIN, time going
    /// backwards on a track, a slice left open). Output is in BEGIN order.
    fn replay(packets: &[TracePacket]) -> Vec<Replayed> {
        let mut stacks: HashMap<u64, Vec<usize>> = HashMap::new();
        let mut last: HashMap<u64, u64> = HashMap::new();
        let mut out: Vec<Replayed> = Vec::new();
        for (ts, event) in events(packets) {
            let uuid = event.track_uuid.expect("events name their track");
            let previous = last.insert(uuid, ts).unwrap_or(0);
            assert!(ts >= previous, "time went backwards on track {uuid}");
            let stack = stacks.entry(uuid).or_default();
            match EventType::try_from(event.r#type.expect("typed")) {
                Ok(EventType::SliceBegin) => {
                    let name = event.name.clone().expect("begins are named");
                    out.push((uuid, name, ts, u64::MAX, stack.len()));
                    stack.push(out.len() - 1);
                }
                Ok(EventType::SliceEnd) => {
                    let open = stack.pop().expect("END matches a BEGIN");
                    out[open].3 = ts;
                }
                Ok(EventType::Instant) => {}
                Err(e) => panic!("unknown type {e:?}"),
            }
        }
        assert!(
            stacks.values().all(Vec::is_empty),
            "slices left open: {stacks:?}"
        );
        out
    }

    #[test]
    fn empty_timeline_is_a_valid_trace_with_just_the_process() {
        let packets = decode(&Timeline::default());
        assert_eq!(packets.len(), 2);
        assert!(matches!(packets[0].data, Some(Data::ClockSnapshot(_))));
        assert_eq!(packets[0].sequence_flags, Some(1));
        assert_eq!(packets[0].first_packet_on_sequence, Some(true));
        let process = descriptors(&packets)[0];
        assert_eq!(process.uuid, Some(PROCESS_UUID));
        assert_eq!(process.process.as_ref().and_then(|p| p.pid), Some(PID));
        assert!(events(&packets).is_empty());
    }

    #[test]
    fn round_trip_keeps_tracks_slices_and_details() {
        let mut request = slice("GET /report", 100, 900);
        request.highlight = true;
        request.category = "other".into();
        request.args = vec![("trace_id".into(), "4bf92f".into())];
        let timeline = Timeline {
            title: "GET /report · trace 4bf92f".into(),
            tracks: vec![
                track(
                    "worker 0",
                    TrackKind::Thread { tid: 4242 },
                    vec![slice("poll", 150, 300)],
                ),
                track("task 17 (src/report.rs:40)", TrackKind::Task, vec![request]),
            ],
            flows: Vec::new(),
            instants: vec![Instant {
                track: 1,
                name: "span start".into(),
                at_unix_ns: 100,
            }],
        };
        let packets = decode(&timeline);
        assert!(
            packets
                .iter()
                .all(|p| p.trusted_packet_sequence_id == Some(SEQUENCE_ID))
        );

        let process = descriptors(&packets)[0];
        assert_eq!(
            process
                .process
                .as_ref()
                .and_then(|p| p.process_name.as_deref()),
            Some(timeline.title.as_str())
        );
        let worker = descriptors(&packets)[1];
        assert_eq!(worker.name.as_deref(), Some("worker 0"));
        assert_eq!(worker.parent_uuid, Some(PROCESS_UUID));
        let thread = worker.thread.as_ref().expect("worker is a thread track");
        assert_eq!(
            (thread.pid, thread.tid, thread.thread_name.as_deref()),
            (Some(PID), Some(4242), Some("worker 0"))
        );
        let task = descriptors(&packets)[2];
        assert_eq!(task.name.as_deref(), Some("task 17 (src/report.rs:40)"));
        assert_eq!(
            (task.thread.as_ref(), task.parent_uuid),
            (None, Some(PROCESS_UUID))
        );
        assert_eq!(
            (worker.sibling_order_rank, task.sibling_order_rank),
            (Some(0), Some(1))
        );

        let replayed = replay(&packets);
        assert_eq!(
            replayed,
            vec![
                (
                    task.uuid.expect("uuid"),
                    "★ GET /report".to_owned(),
                    100,
                    900,
                    0
                ),
                (worker.uuid.expect("uuid"), "poll".to_owned(), 150, 300, 0),
            ]
        );
        let (_, begin) = events(&packets)
            .into_iter()
            .find(|(_, e)| e.name.as_deref() == Some("★ GET /report"))
            .expect("request slice");
        assert_eq!(begin.categories, ["other", HIGHLIGHT_CATEGORY]);
        assert_eq!(begin.debug_annotations.len(), 1);
        assert_eq!(begin.debug_annotations[0].name.as_deref(), Some("trace_id"));
        assert_eq!(
            begin.debug_annotations[0].string_value.as_deref(),
            Some("4bf92f")
        );
        let instant = events(&packets)
            .into_iter()
            .find(|(_, e)| e.r#type == Some(EventType::Instant as i32))
            .expect("instant");
        assert_eq!(
            (instant.0, instant.1.name.as_deref(), instant.1.track_uuid),
            (100, Some("span start"), task.uuid)
        );
    }

    #[test]
    fn events_are_time_ordered_whatever_the_input_order() {
        let timeline = Timeline {
            title: "t".into(),
            tracks: vec![
                track(
                    "a",
                    TrackKind::Task,
                    vec![slice("late", 50, 60), slice("early", 10, 20)],
                ),
                track("b", TrackKind::Task, vec![slice("middle", 30, 40)]),
            ],
            ..Timeline::default()
        };
        let packets = decode(&timeline);
        let times: Vec<u64> = events(&packets).iter().map(|(ts, _)| *ts).collect();
        assert_eq!(times, [10, 20, 30, 40, 50, 60]);
        let names: Vec<String> = replay(&packets).into_iter().map(|s| s.1).collect();
        assert_eq!(names, ["early", "middle", "late"]);
    }

    #[test]
    fn nested_adjacent_and_empty_slices_share_a_track() {
        let timeline = Timeline {
            title: "t".into(),
            tracks: vec![track(
                "worker 0",
                TrackKind::Thread { tid: 1 },
                vec![
                    slice("child", 20, 30),
                    slice("parent", 10, 50),
                    slice("same as parent", 10, 50),
                    slice("next", 50, 70),
                    slice("empty", 70, 70),
                    slice("after empty", 70, 80),
                ],
            )],
            ..Timeline::default()
        };
        let packets = decode(&timeline);
        assert_eq!(descriptors(&packets).len(), 2, "no extra lane needed");
        let uuid = uuid_named(&packets, "worker 0")[0];
        let by_name: HashMap<String, Replayed> = replay(&packets)
            .into_iter()
            .map(|s| (s.1.clone(), s))
            .collect();
        assert_eq!(by_name["parent"], (uuid, "parent".into(), 10, 50, 0));
        assert_eq!(
            by_name["same as parent"],
            (uuid, "same as parent".into(), 10, 50, 1)
        );
        assert_eq!(by_name["child"], (uuid, "child".into(), 20, 30, 2));
        assert_eq!(by_name["next"], (uuid, "next".into(), 50, 70, 0));
        // Zero-length at the start of a longer slice: nested, like any other child.
        assert_eq!(by_name["empty"], (uuid, "empty".into(), 70, 70, 1));
        assert_eq!(
            by_name["after empty"],
            (uuid, "after empty".into(), 70, 80, 0)
        );
    }

    #[test]
    fn partial_overlap_goes_to_an_extra_lane_unchanged() {
        let timeline = Timeline {
            title: "t".into(),
            tracks: vec![
                track(
                    "task 3",
                    TrackKind::Task,
                    vec![slice("a", 10, 30), slice("b", 20, 40), slice("c", 25, 45)],
                ),
                track("task 4", TrackKind::Task, vec![slice("d", 0, 5)]),
            ],
            ..Timeline::default()
        };
        let packets = decode(&timeline);
        let lanes = uuid_named(&packets, "task 3");
        assert_eq!(lanes.len(), 3, "a, b and c each need their own lane");
        let all = descriptors(&packets);
        let lane_descriptors: Vec<_> = all
            .iter()
            .filter(|d| lanes.contains(&d.uuid.unwrap_or(0)))
            .collect();
        for d in &lane_descriptors {
            assert_eq!(d.parent_uuid, Some(PROCESS_UUID));
            assert_eq!(d.sibling_order_rank, Some(0));
            assert_eq!(d.sibling_merge_key.as_deref(), Some("granular-track-0"));
        }
        let other = all
            .iter()
            .find(|d| d.name.as_deref() == Some("task 4"))
            .expect("task 4");
        assert_eq!(other.sibling_merge_key.as_deref(), Some("granular-track-1"));

        let replayed = replay(&packets);
        let find = |name: &str| {
            replayed
                .iter()
                .find(|s| s.1 == name)
                .expect("slice present")
        };
        assert_eq!((find("a").2, find("a").3), (10, 30));
        assert_eq!((find("b").2, find("b").3), (20, 40));
        assert_eq!((find("c").2, find("c").3), (25, 45));
        let mut used: Vec<u64> = ["a", "b", "c"].iter().map(|n| find(n).0).collect();
        used.sort_unstable();
        used.dedup();
        assert_eq!(used.len(), 3);
    }

    #[test]
    fn flows_join_source_and_target_begins() {
        let flow = |from, to| Flow { from, to };
        let timeline = Timeline {
            title: "t".into(),
            tracks: vec![
                track(
                    "worker 0",
                    TrackKind::Thread { tid: 1 },
                    vec![slice("wake", 10, 20)],
                ),
                track(
                    "worker 1",
                    TrackKind::Thread { tid: 2 },
                    vec![slice("poll", 25, 40), slice("poll again", 50, 60)],
                ),
                track("task 5", TrackKind::Task, vec![slice("same start", 10, 15)]),
            ],
            flows: vec![
                flow(at(0, 0), at(1, 0)),
                flow(at(0, 0), at(1, 1)),
                flow(at(1, 1), at(0, 0)), // backwards in time
                flow(at(1, 0), at(1, 0)), // to itself
                flow(at(0, 5), at(1, 0)), // missing slice
                flow(at(0, 0), at(7, 0)), // missing track
                flow(at(2, 0), at(0, 0)), // same start, source written last
                flow(at(0, 0), at(2, 0)), // same start, source written first
            ],
            instants: Vec::new(),
        };
        let packets = decode(&timeline);
        let begin = |name: &str| {
            let (_, event) = events(&packets)
                .into_iter()
                .find(|(_, e)| e.name.as_deref() == Some(name))
                .expect("slice");
            (event.flow_ids.clone(), event.terminating_flow_ids.clone())
        };
        assert_eq!(begin("wake"), (vec![1, 2, 8], vec![]));
        assert_eq!(begin("poll"), (vec![], vec![1]));
        assert_eq!(begin("poll again"), (vec![], vec![2]));
        assert_eq!(begin("same start"), (vec![], vec![8]));
        let ends_carry_no_flows = events(&packets)
            .iter()
            .filter(|(_, e)| e.r#type == Some(EventType::SliceEnd as i32))
            .all(|(_, e)| e.flow_ids.is_empty() && e.terminating_flow_ids.is_empty());
        assert!(ends_carry_no_flows);
    }

    #[test]
    fn bad_input_is_repaired_not_fatal() {
        let timeline = Timeline {
            title: "t".into(),
            tracks: vec![
                track(
                    "worker 0",
                    TrackKind::Thread { tid: 9 },
                    vec![slice("backwards", 50, 10)],
                ),
                track("imposter", TrackKind::Thread { tid: 9 }, Vec::new()),
                track("huge tid", TrackKind::Thread { tid: u32::MAX }, Vec::new()),
            ],
            flows: vec![Flow {
                from: at(usize::MAX, usize::MAX),
                to: at(0, 0),
            }],
            instants: vec![
                Instant {
                    track: 99,
                    name: "lost".into(),
                    at_unix_ns: 5,
                },
                Instant {
                    track: 0,
                    name: "kept".into(),
                    at_unix_ns: 5,
                },
            ],
        };
        assert!(timeline.validate().is_err());
        let packets = decode(&timeline);
        let replayed = replay(&packets);
        assert_eq!(replayed.len(), 1);
        assert_eq!(
            (replayed[0].2, replayed[0].3),
            (50, 50),
            "drawn with zero length"
        );
        let instants: Vec<_> = events(&packets)
            .into_iter()
            .filter(|(_, e)| e.r#type == Some(EventType::Instant as i32))
            .map(|(_, e)| e.name.clone())
            .collect();
        assert_eq!(instants, [Some("kept".to_owned())]);
        let tids: Vec<Option<i32>> = descriptors(&packets)[1..]
            .iter()
            .map(|d| d.thread.as_ref().and_then(|t| t.tid))
            .collect();
        assert_eq!(
            tids,
            [Some(9), None, None],
            "one track per thread; i32 tids only"
        );
        assert!(
            events(&packets)
                .iter()
                .all(|(_, e)| e.flow_ids.is_empty() && e.terminating_flow_ids.is_empty())
        );
    }

    /// Any text in names, categories and args, any tids, times and references.
    fn any_timeline() -> impl proptest::strategy::Strategy<Value = Timeline> {
        use proptest::prelude::*;
        let text = || prop_oneof![any::<String>(), "\\PC{0,300}", Just(String::new())];
        let a_slice = (text(), text(), 0u64..2_000, 0u64..2_000, any::<bool>()).prop_flat_map(
            move |(name, category, start, end, highlight)| {
                proptest::collection::vec((text(), text()), 0..3).prop_map(move |args| Slice {
                    name: name.clone(),
                    category: category.clone(),
                    start_unix_ns: start,
                    end_unix_ns: end,
                    highlight,
                    args,
                })
            },
        );
        let kind = prop_oneof![
            Just(TrackKind::Task),
            any::<u32>().prop_map(|tid| TrackKind::Thread { tid }),
            (0u32..3).prop_map(|tid| TrackKind::Thread { tid }),
        ];
        let a_track = (text(), kind, proptest::collection::vec(a_slice, 0..6))
            .prop_map(|(name, kind, slices)| Track { name, kind, slices });
        let a_ref = (0usize..5, 0usize..7).prop_map(|(track, slice)| SliceRef { track, slice });
        (
            text(),
            proptest::collection::vec(a_track, 0..5),
            proptest::collection::vec((a_ref.clone(), a_ref), 0..5),
            proptest::collection::vec((0usize..6, text(), 0u64..2_000), 0..4),
        )
            .prop_map(|(title, tracks, flows, instants)| Timeline {
                title,
                tracks,
                flows: flows
                    .into_iter()
                    .map(|(from, to)| Flow { from, to })
                    .collect(),
                instants: instants
                    .into_iter()
                    .map(|(track, name, at_unix_ns)| Instant {
                        track,
                        name,
                        at_unix_ns,
                    })
                    .collect(),
            })
    }

    proptest::proptest! {
        /// Whatever the timeline holds, the encoder writes a trace that decodes and that trace
        /// processor would accept, with every slice in it once, under its own name and times
        /// (a slice ending before it starts drawn with zero length).
        #[test]
        fn any_timeline_encodes_to_a_trace_perfetto_accepts(timeline in any_timeline()) {
            let packets = decode(&timeline);
            let mut replayed: Vec<(String, u64, u64)> = replay(&packets)
                .into_iter()
                .map(|(_, name, start, end, _)| (name, start, end))
                .collect();
            let mut expected: Vec<(String, u64, u64)> = timeline
                .tracks
                .iter()
                .flat_map(|t| &t.slices)
                .map(|s| {
                    let name = if s.highlight {
                        format!("{HIGHLIGHT_PREFIX}{}", s.name)
                    } else {
                        s.name.clone()
                    };
                    (name, s.start_unix_ns, s.end_unix_ns.max(s.start_unix_ns))
                })
                .collect();
            replayed.sort();
            expected.sort();
            proptest::prop_assert_eq!(replayed, expected);
        }
    }
}

//! The viewer-independent model of a slow request's runtime timeline.
//!
//! A [`Timeline`] is what the recorder knows about one window of time: what
//! every worker thread did, what the request's tasks did, which slices caused
//! which, and a few point-in-time markers. It deliberately knows nothing about
//! any trace format, so the same model can be rendered as a Perfetto trace
//! (see [`crate::timeline::encode_perfetto`]) or summarised in text.
//!
//! All times are absolute Unix-epoch nanoseconds, the clock OpenTelemetry spans
//! use, so a timeline lines up with the span that triggered it.

use std::collections::HashMap;

/// A runtime timeline: what every worker thread and the request's tasks did during a window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Timeline {
    /// Shown as the process name in the viewer, e.g. "GET /messages · trace 4bf92f…".
    pub title: String,
    /// One row per thread or task, in the order they should be displayed.
    pub tracks: Vec<Track>,
    /// Causal arrows between slices (e.g. wake → poll).
    pub flows: Vec<Flow>,
    /// Instant markers (span start/end, data loss...).
    pub instants: Vec<Instant>,
}

/// One row of the timeline: an OS thread or a tokio task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Track {
    /// Display name, e.g. "worker 0", "task 17 (src/report.rs:40)", "blocking-3".
    pub name: String,
    /// Whether the row is an OS thread or a task.
    pub kind: TrackKind,
    /// What happened on this row. Slices may nest (a child must lie within its
    /// parent); partially overlapping slices are allowed and are rendered on an
    /// extra lane by the encoder rather than distorted.
    pub slices: Vec<Slice>,
}

/// What a [`Track`] stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackKind {
    /// An OS thread (a runtime worker or a blocking-pool thread). The tid lets
    /// the viewer line the row up with OS-level data about the same thread.
    Thread {
        /// The OS thread id.
        tid: u32,
    },
    /// A tokio task: a logical row that hops between threads.
    Task,
}

/// A span of time on one track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slice {
    /// What was happening: "poll", "scheduler wait", "blocked in poll", "GET /report".
    pub name: String,
    /// One of "running", "scheduler_wait", "os_wait", "blocked_in_poll",
    /// "blocking_pool", "idle" (a breakdown category), "other" (anyone's work),
    /// "culprit" (the work of a culprit the breakdown names), "span" (one of the
    /// request's spans). Viewers can filter and colour by it.
    pub category: String,
    /// Start, Unix-epoch nanoseconds.
    pub start_unix_ns: u64,
    /// End, Unix-epoch nanoseconds; must not be before `start_unix_ns`.
    pub end_unix_ns: u64,
    /// The slice belongs to the traced request (shown highlighted, e.g. via a name prefix or category).
    pub highlight: bool,
    /// Free-form details shown when the slice is selected, e.g.
    /// ("trace_id", "..."), ("spawn_site", "src/report.rs:40").
    pub args: Vec<(String, String)>,
}

/// A causal arrow from one slice to another, e.g. the slice that woke a task
/// to the poll that the wake caused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    /// The cause.
    pub from: SliceRef,
    /// The effect; it must not start before `from` starts.
    pub to: SliceRef,
}

/// Addresses a slice as `timeline.tracks[track].slices[slice]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SliceRef {
    /// Index into [`Timeline::tracks`].
    pub track: usize,
    /// Index into that track's [`Track::slices`].
    pub slice: usize,
}

/// A point-in-time marker on a track (span start/end, data loss...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instant {
    /// Index into [`Timeline::tracks`].
    pub track: usize,
    /// What happened, e.g. "span start".
    pub name: String,
    /// When, Unix-epoch nanoseconds.
    pub at_unix_ns: u64,
}

impl Timeline {
    /// Looks up a slice by reference; `None` if either index is out of range.
    pub fn slice(&self, at: SliceRef) -> Option<&Slice> {
        self.tracks.get(at.track)?.slices.get(at.slice)
    }

    /// Checks the invariants a faithful rendering relies on, reporting every
    /// violation (one per line) rather than just the first.
    ///
    /// Encoders never panic on an invalid timeline; they repair or drop what
    /// they cannot render (see [`crate::timeline::encode_perfetto`]). This
    /// exists so producers can catch their own bugs in tests instead of
    /// shipping artifacts with silently missing arrows or markers.
    ///
    /// Checked: every slice ends no earlier than it starts; flow and instant
    /// references are in range; a flow does not point from a slice to itself
    /// or backwards in time (viewers infer a flow's direction from time, so
    /// such an arrow could not be drawn); no two thread tracks claim the same
    /// tid, and every tid fits the 31-bit range trace formats use.
    pub fn validate(&self) -> Result<(), String> {
        let mut problems = Vec::new();
        let mut tids: HashMap<u32, usize> = HashMap::new();
        for (t, track) in self.tracks.iter().enumerate() {
            if let TrackKind::Thread { tid } = track.kind {
                if i32::try_from(tid).is_err() {
                    problems.push(format!("track {t} ({}): tid {tid} exceeds i32", track.name));
                }
                if let Some(first) = tids.insert(tid, t) {
                    problems.push(format!(
                        "track {t} ({}): tid {tid} already used by track {first}",
                        track.name
                    ));
                }
            }
            for (s, slice) in track.slices.iter().enumerate() {
                if slice.end_unix_ns < slice.start_unix_ns {
                    problems.push(format!(
                        "track {t} slice {s} ({}): ends at {} before it starts at {}",
                        slice.name, slice.end_unix_ns, slice.start_unix_ns
                    ));
                }
            }
        }
        for (f, flow) in self.flows.iter().enumerate() {
            match (self.slice(flow.from), self.slice(flow.to)) {
                (Some(from), Some(to)) => {
                    if flow.from == flow.to {
                        problems.push(format!("flow {f}: points from a slice to itself"));
                    } else if to.start_unix_ns < from.start_unix_ns {
                        problems.push(format!(
                            "flow {f}: target starts at {} before its source at {}",
                            to.start_unix_ns, from.start_unix_ns
                        ));
                    }
                }
                (from, to) => {
                    for (end, found, at) in [("from", from, flow.from), ("to", to, flow.to)] {
                        if found.is_none() {
                            problems.push(format!(
                                "flow {f}: {end} refers to missing slice {}/{}",
                                at.track, at.slice
                            ));
                        }
                    }
                }
            }
        }
        for (i, instant) in self.instants.iter().enumerate() {
            if instant.track >= self.tracks.len() {
                problems.push(format!(
                    "instant {i} ({}): refers to missing track {}",
                    instant.name, instant.track
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("\n"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slice(start: u64, end: u64) -> Slice {
        Slice {
            name: "poll".into(),
            category: "running".into(),
            start_unix_ns: start,
            end_unix_ns: end,
            highlight: false,
            args: Vec::new(),
        }
    }

    fn at(track: usize, slice: usize) -> SliceRef {
        SliceRef { track, slice }
    }

    #[test]
    fn empty_and_well_formed_timelines_validate() {
        assert_eq!(Timeline::default().validate(), Ok(()));
        let timeline = Timeline {
            title: "t".into(),
            tracks: vec![Track {
                name: "worker 0".into(),
                kind: TrackKind::Thread { tid: 7 },
                slices: vec![slice(10, 20), slice(20, 20)],
            }],
            flows: vec![Flow {
                from: at(0, 0),
                to: at(0, 1),
            }],
            instants: vec![Instant {
                track: 0,
                name: "span start".into(),
                at_unix_ns: 10,
            }],
        };
        assert_eq!(timeline.validate(), Ok(()));
    }

    #[test]
    fn validate_reports_every_problem() {
        let thread = |tid| Track {
            name: "w".into(),
            kind: TrackKind::Thread { tid },
            slices: vec![slice(30, 20), slice(5, 6)],
        };
        let timeline = Timeline {
            title: "t".into(),
            tracks: vec![thread(1), thread(1), thread(u32::MAX)],
            flows: vec![
                Flow {
                    from: at(0, 0),
                    to: at(9, 0),
                },
                Flow {
                    from: at(0, 0),
                    to: at(0, 1),
                },
                Flow {
                    from: at(0, 1),
                    to: at(0, 1),
                },
            ],
            instants: vec![Instant {
                track: 3,
                name: "lost".into(),
                at_unix_ns: 1,
            }],
        };
        let err = timeline.validate().expect_err("invalid timeline");
        for needle in [
            "track 0 slice 0 (poll): ends at 20 before it starts at 30",
            "track 1 (w): tid 1 already used by track 0",
            "tid 4294967295 exceeds i32",
            "flow 0: to refers to missing slice 9/0",
            "flow 1: target starts at 5 before its source at 30",
            "flow 2: points from a slice to itself",
            "instant 0 (lost): refers to missing track 3",
        ] {
            assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
        }
    }
}

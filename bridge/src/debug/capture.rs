//! `GET /debug/granular/trace?seconds=N`: the whole process's last N seconds as a Perfetto
//! trace, from what the flight recorder's rings still hold (no waiting: the data is there).
//!
//! Drawn as an artifact draws other requests' work (one track per thread, polls and span
//! entries gathered into runs, parks), with a first track, `granular capture`, whose one slice
//! spans what the rings held of the window and says how much of it that was. One capture
//! runs at a time ([`Captures`]): it copies the window out of the rings (at most the recorder's
//! memory) and decodes it, which a second one at once would double.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::analysis::decode;
use crate::analyzer::artifacts::draw::draw_process;
use crate::clock::{self, Calibration};
use crate::recorder::{FlightRecorder, Kind, RecorderSnapshot};
use crate::timeline::{Slice, Track, TrackKind, encode_perfetto};

/// The longest window a capture takes, seconds.
pub(crate) const MAX_SECONDS: u64 = 60;

/// A capture's result.
#[derive(Debug)]
pub(crate) struct Capture {
    /// The Perfetto trace.
    pub bytes: Vec<u8>,
    /// The window asked for, Unix ns.
    pub from: u64,
    pub to: u64,
    /// Where what the rings held of it begins (`from` when they held all of it), Unix ns.
    pub held_from: u64,
}

impl Capture {
    /// Seconds of the window the rings held.
    pub(crate) fn held_seconds(&self) -> f64 {
        (self.to - self.held_from) as f64 / 1e9
    }
}

/// Why a capture was not made.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum CaptureError {
    /// Another capture is running.
    Busy,
    /// Nothing is recorded (Granular is off).
    NoRecorder,
}

/// Takes captures one at a time.
#[derive(Debug, Default)]
pub(crate) struct Captures {
    running: AtomicBool,
}

impl Captures {
    /// The process's last `seconds` (1..=[`MAX_SECONDS`], checked by the caller), or
    /// [`CaptureError::Busy`] while another capture runs.
    pub(crate) fn take(&self, seconds: u64) -> Result<Capture, CaptureError> {
        if self.running.swap(true, Ordering::Acquire) {
            return Err(CaptureError::Busy);
        }
        let result = FlightRecorder::get()
            .ok_or(CaptureError::NoRecorder)
            .map(|r| capture(r, seconds));
        self.running.store(false, Ordering::Release);
        result
    }
}

fn capture(recorder: &FlightRecorder, seconds: u64) -> Capture {
    let cal = Calibration::now();
    let to = cal.to_unix_ns(clock::now());
    let from = to.saturating_sub(seconds * 1_000_000_000);
    let snap = recorder.snapshot_since(cal.unix_to_ticks(from), RecorderSnapshot::default());
    // A ring that overwrote part of the window holds it from its oldest record on.
    let held_from = snap
        .threads
        .iter()
        .filter(|t| t.lost() > 0)
        .filter_map(|t| {
            t.records()
                .iter()
                .find(|r| r.kind().is_some_and(|k| k != Kind::Payload))
        })
        .map(|r| cal.to_unix_ns(r.ts()))
        .max()
        .unwrap_or(from)
        .clamp(from, to);
    let d = decode(&snap, &cal, from, to);
    drop(snap);
    let mut timeline = draw_process(
        &d,
        from,
        to,
        format!("granular capture: the process's last {seconds} s"),
    );
    let held = (to - held_from) as f64 / 1e9;
    timeline.tracks.insert(
        0,
        Track {
            name: "granular capture".into(),
            kind: TrackKind::Task,
            slices: vec![Slice {
                name: format!("the rings held {held:.3} s of the {seconds} s asked for"),
                category: "other".into(),
                start_unix_ns: held_from,
                end_unix_ns: to,
                highlight: false,
                args: vec![
                    ("asked_seconds".into(), seconds.to_string()),
                    ("held_seconds".into(), format!("{held:.3}")),
                ],
            }],
        },
    );
    Capture {
        bytes: encode_perfetto(&timeline),
        from,
        to,
        held_from,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One capture at a time: a second while one runs is refused, not queued.
    #[test]
    fn a_second_capture_while_one_runs_is_busy() {
        let c = Captures::default();
        c.running.store(true, Ordering::Relaxed);
        assert_eq!(c.take(1).unwrap_err(), CaptureError::Busy);
        c.running.store(false, Ordering::Relaxed);
        assert_ne!(c.take(1).err(), Some(CaptureError::Busy));
    }
}

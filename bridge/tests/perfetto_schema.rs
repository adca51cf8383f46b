//! Checks the Perfetto artifact against Perfetto's OFFICIAL schema.
//!
//! The encoder's unit tests decode its output with its own hand-written prost
//! structs, which cannot notice a field number or wire type that is wrong in
//! both places. This test decodes a realistic artifact with the generated
//! Python module shipped in the `perfetto` PyPI package
//! (`tests/support/check_perfetto.py`) and asserts on the JSON summary it
//! prints: names, counts, flows, and that no field is unknown to the schema.
//!
//! Needs a Python with `perfetto` installed: `GRANULAR_PYTHON` if set (a
//! relative path is taken from the workspace root), else `python3`. Without
//! it the test fails, saying how to install it; it never skips.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use granular::__internal::timeline::{
    Flow, Instant, Slice, SliceRef, Timeline, Track, TrackKind, encode_perfetto,
};
use serde_json::{Value, json};

const INSTALL_HINT: &str = "install the official schema: `pip install perfetto`, or \
    `python3 -m venv .cache/venv && .cache/venv/bin/pip install perfetto==0.59.1` \
    and run with GRANULAR_PYTHON=.cache/venv/bin/python";

/// 2023-11-14T22:13:20Z: a plausible wall-clock base for the window.
const T0: u64 = 1_700_000_000_000_000_000;
const US: u64 = 1_000;

fn slice(name: &str, category: &str, start_us: u64, end_us: u64, highlight: bool) -> Slice {
    Slice {
        name: name.into(),
        category: category.into(),
        start_unix_ns: T0 + start_us * US,
        end_unix_ns: T0 + end_us * US,
        highlight,
        args: Vec::new(),
    }
}

fn with_args(mut slice: Slice, args: &[(&str, &str)]) -> Slice {
    slice.args = args.iter().map(|&(k, v)| (k.into(), v.into())).collect();
    slice
}

/// A request whose task was woken early but waited ~5 ms for a worker,
/// because the only free worker was stuck in another task's blocking poll.
fn slow_request() -> Timeline {
    let worker0 = Track {
        name: "worker 0".into(),
        kind: TrackKind::Thread { tid: 4101 },
        slices: vec![
            slice("poll", "running", 0, 200, true),
            slice("idle", "idle", 200, 300, false),
            with_args(
                slice("blocked in poll", "blocked_in_poll", 300, 5_300, false),
                &[("task", "31"), ("spawn_site", "src/cache.rs:88")],
            ),
        ],
    };
    let worker1 = Track {
        name: "worker 1".into(),
        kind: TrackKind::Thread { tid: 4102 },
        slices: vec![slice("io driver", "running", 250, 300, false)],
    };
    let request = Track {
        name: "task 17 (src/report.rs:40)".into(),
        kind: TrackKind::Task,
        slices: vec![
            with_args(
                slice("GET /report", "other", 0, 6_000, true),
                &[
                    ("trace_id", "4bf92f3577b34da6a3ce929d0e0e4736"),
                    ("spawn_site", "src/report.rs:40"),
                ],
            ),
            slice("poll", "running", 0, 200, true),
            slice("scheduler wait", "scheduler_wait", 280, 5_300, true),
            slice("poll", "running", 5_300, 5_500, true),
        ],
    };
    Timeline {
        title: "GET /report · trace 4bf92f…".into(),
        tracks: vec![worker0, worker1, request],
        // The I/O driver's wake (worker 1) → the poll it finally caused.
        flows: vec![Flow {
            from: SliceRef { track: 1, slice: 0 },
            to: SliceRef { track: 2, slice: 3 },
        }],
        instants: vec![
            Instant {
                track: 2,
                name: "span start".into(),
                at_unix_ns: T0,
            },
            Instant {
                track: 2,
                name: "span end".into(),
                at_unix_ns: T0 + 6_000 * US,
            },
        ],
    }
}

fn python() -> PathBuf {
    let Some(configured) = std::env::var_os("GRANULAR_PYTHON") else {
        return PathBuf::from("python3");
    };
    let configured = PathBuf::from(configured);
    if configured.is_relative() && configured.components().count() > 1 {
        // cargo runs tests from the package directory; the documented
        // `.cache/venv/bin/python` is relative to the workspace root.
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(configured)
    } else {
        configured
    }
}

fn check_with_official_schema(trace: &[u8]) -> Value {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let file =
        std::env::temp_dir().join(format!("granular-{}-{nanos}.pftrace", std::process::id()));
    std::fs::write(&file, trace).expect("write the trace to a temp file");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/check_perfetto.py");
    let python = python();
    let output = Command::new(&python)
        .arg(&script)
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}; {INSTALL_HINT}", python.display()));
    let stderr = String::from_utf8_lossy(&output.stderr);
    match output.status.code() {
        Some(0) => {}
        // The script's message already says how to install the package.
        Some(3) => panic!("{} lacks the perfetto package: {stderr}", python.display()),
        _ => panic!(
            "check_perfetto.py failed on {} ({}): {stderr}",
            file.display(),
            output.status
        ),
    }
    let summary = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("check_perfetto.py printed no JSON ({e}): {stderr}"));
    // Kept on failure (the panics above) so the trace can be inspected.
    let _ = std::fs::remove_file(&file);
    summary
}

#[test]
fn artifact_decodes_with_the_official_perfetto_schema() {
    let timeline = slow_request();
    assert_eq!(timeline.validate(), Ok(()));
    let summary = check_with_official_schema(&encode_perfetto(&timeline));

    assert_eq!(
        summary["errors"],
        json!([]),
        "structural errors: {summary:#}"
    );
    assert_eq!(
        summary["unknown_fields"],
        json!([]),
        "fields unknown to the official schema"
    );
    assert_eq!(
        summary["process"],
        json!({ "pid": 1, "name": "GET /report · trace 4bf92f…" })
    );

    let tracks: Vec<(Value, Value)> = summary["tracks"]
        .as_array()
        .expect("tracks array")
        .iter()
        .map(|t| (t["name"].clone(), t["tid"].clone()))
        .collect();
    assert_eq!(
        tracks,
        [
            (json!("worker 0"), json!(4101)),
            (json!("worker 1"), json!(4102)),
            (json!("task 17 (src/report.rs:40)"), Value::Null),
        ],
        "one track per timeline track, no extra lanes: {summary:#}"
    );
    assert_eq!(
        summary["slices_by_track"],
        json!({ "worker 0": 3, "worker 1": 1, "task 17 (src/report.rs:40)": 4 })
    );
    assert_eq!(summary["slice_count"], 8);
    assert_eq!(summary["instant_count"], 2);
    assert_eq!(summary["flow_count"], 1);
    let mut highlighted: Vec<&str> = summary["highlighted"]
        .as_array()
        .expect("highlighted array")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    highlighted.sort_unstable();
    assert_eq!(
        highlighted,
        [
            "★ GET /report",
            "★ poll",
            "★ poll",
            "★ poll",
            "★ scheduler wait"
        ]
    );
    assert_eq!(
        summary["categories"],
        json!({
            "running": 4, "idle": 1, "blocked_in_poll": 1, "scheduler_wait": 1,
            "other": 1, "request": 5
        })
    );
    assert_eq!(
        summary["annotations"]["blocked in poll"],
        json!({ "task": "31", "spawn_site": "src/cache.rs:88" })
    );
    assert_eq!(
        summary["annotations"]["★ GET /report"]["trace_id"],
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    // BOOTTIME (6) and REALTIME (1) declared equal at the first event.
    assert_eq!(summary["clocks"], json!([[6, T0], [1, T0]]));
}

/// Extra lanes and repaired input must decode just as cleanly.
#[test]
fn overlaps_and_bad_references_still_decode_cleanly() {
    let mut timeline = slow_request();
    // Partially overlaps the first poll on the request task: needs a lane.
    timeline.tracks[2]
        .slices
        .push(slice("late wake", "other", 150, 400, false));
    // Ends before it starts: drawn with zero length.
    timeline.tracks[1]
        .slices
        .push(slice("clock skew", "other", 900, 800, false));
    timeline.flows.push(Flow {
        from: SliceRef { track: 0, slice: 0 },
        to: SliceRef { track: 9, slice: 0 },
    });
    timeline.instants.push(Instant {
        track: 9,
        name: "lost".into(),
        at_unix_ns: T0,
    });
    assert!(timeline.validate().is_err());
    let summary = check_with_official_schema(&encode_perfetto(&timeline));

    assert_eq!(
        summary["errors"],
        json!([]),
        "structural errors: {summary:#}"
    );
    assert_eq!(summary["unknown_fields"], json!([]));
    let task_lanes = summary["tracks"]
        .as_array()
        .expect("tracks array")
        .iter()
        .filter(|t| t["name"] == "task 17 (src/report.rs:40)")
        .count();
    assert_eq!(task_lanes, 2, "the overlapping slice got its own lane");
    assert_eq!(summary["slices_by_track"]["task 17 (src/report.rs:40)"], 5);
    assert_eq!(summary["slices_by_track"]["worker 1"], 2);
    assert_eq!(summary["flow_count"], 1, "the dangling flow is skipped");
    assert_eq!(
        summary["instant_count"], 2,
        "the dangling instant is skipped"
    );
}

//! loom models of the ring's publication protocol (see the module docs of
//! `bridge/src/recorder/ring.rs`): one writer overwriting a capacity-2 ring while a reader takes
//! snapshots. Every returned record must be untorn (its two words written by the same push) and
//! numbered correctly, nothing may be returned that was not written, and once the writer is done
//! every record written is either returned or counted as lost.
//!
//! Run: `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p granular-loom --release`
//!
//! Shape matters: the reader is a spawned thread and the writer runs on the model's main thread.
//! With both on spawned threads, loom 0.7.3 explored only ~100 executions of the one-snapshot
//! models and missed a deleted `fence(Release)` in `push`; in this shape it explores thousands
//! and catches every mutation listed in docs/benchmarks.md. [`model`] asserts a floor on the
//! number of executions so a change that collapses the exploration does not pass silently.
#![cfg(loom)]

use std::sync::atomic::{AtomicUsize, Ordering};

use granular_loom::recorder::record::Record;
use granular_loom::recorder::ring::{Ring, RingCopy};
use loom::thread;

/// Record number `seq` as the writer pushes it: word 1 is a function of word 0, and neither is
/// ever 0, so a torn record or a never-written slot (all zeros) fails the checks.
fn rec(seq: u64) -> Record {
    let w0 = seq + 1;
    Record {
        w0,
        w1: w0.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5555,
    }
}

/// Checks a snapshot taken with `from_seq` while at most `written` records had been pushed.
fn check(snap: &RingCopy, from_seq: u64, written: u64) {
    for (n, r) in snap.records().iter().enumerate() {
        let seq = snap.first_seq() + n as u64;
        assert_eq!(
            rec(r.w0.wrapping_sub(1)),
            *r,
            "torn record at #{seq}: {r:?}"
        );
        assert_eq!(*r, rec(seq), "record #{seq} out of sequence: {r:?}");
    }
    assert!(
        snap.first_seq() >= from_seq,
        "{snap:?} starts before {from_seq}"
    );
    assert_eq!(snap.lost(), snap.first_seq() - from_seq, "{snap:?}");
    assert!(
        snap.first_seq() + snap.records().len() as u64 <= written,
        "{snap:?} returns records never written ({written} were)"
    );
}

/// Runs `reader` on a spawned thread while the main thread pushes `pushes` records into a
/// capacity-2 ring; then checks a quiescent snapshot. Returns the number of executions explored.
fn model(pushes: u64, reader: impl Fn(&Ring) + Send + Sync + 'static) -> usize {
    let reader = std::sync::Arc::new(reader);
    let runs = std::sync::Arc::new(AtomicUsize::new(0));
    let counted = runs.clone();
    loom::model(move || {
        counted.fetch_add(1, Ordering::Relaxed);
        let ring = loom::sync::Arc::new(Ring::new(2));
        assert_eq!(ring.capacity(), 2);
        let reading = {
            let (ring, reader) = (ring.clone(), reader.clone());
            thread::spawn(move || reader(&ring))
        };
        for seq in 0..pushes {
            ring.push(rec(seq));
        }
        reading.join().unwrap();
        // The reader ran concurrently; now, with the writer done, everything written is either
        // returned or counted as lost.
        let last = ring.snapshot(0);
        check(&last, 0, pushes);
        assert_eq!(
            last.lost() + last.records().len() as u64,
            pushes,
            "{last:?}"
        );
        assert_eq!(last.records().len(), 2, "{last:?}");
    });
    let runs = runs.load(Ordering::Relaxed);
    eprintln!("explored {runs} executions");
    runs
}

/// One snapshot racing a writer that wraps the ring (3 pushes into 2 slots).
#[test]
fn snapshot_racing_three_pushes() {
    assert!(model(3, |ring| check(&ring.snapshot(0), 0, 3)) >= 1_000);
}

/// One snapshot racing a writer that wraps the ring twice (4 pushes into 2 slots).
#[test]
fn snapshot_racing_four_pushes() {
    assert!(model(4, |ring| check(&ring.snapshot(0), 0, 4)) >= 10_000);
}

/// Two snapshots in a row, the second incremental (from where the first ended), racing 3
/// pushes: the second never goes back before the first's end, and counts what it skipped.
#[test]
fn incremental_snapshots_racing_three_pushes() {
    let runs = model(3, |ring| {
        let first = ring.snapshot(0);
        check(&first, 0, 3);
        let from = first.first_seq() + first.records().len() as u64;
        let next = ring.snapshot(from);
        check(&next, from, 3);
    });
    assert!(runs >= 10_000);
}

/// One copy refreshed twice racing 3 pushes: what the second read appends to the first must
/// be as intact and in sequence as a fresh read, and the copy stays contiguous.
#[test]
fn refreshed_copy_racing_three_pushes() {
    let runs = model(3, |ring| {
        let mut copy = RingCopy::default();
        ring.refresh(0, &mut copy);
        check(&copy, 0, 3);
        let from = copy.first_seq();
        ring.refresh(from, &mut copy);
        check(&copy, from, 3);
    });
    assert!(runs >= 10_000);
}

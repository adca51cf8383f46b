use super::*;
use crate::recorder::record::Kind;

fn rec(i: u64) -> Record {
    Record::header(Kind::PollStart, i, i * 7)
}

#[test]
fn reach_extrapolates_the_recent_rate() {
    let ring = Ring::new(64);
    assert_eq!(ring.reach(100), None);
    // One record every 10 ticks: the ring holds 640 ticks at this rate.
    for i in 0..32 {
        ring.push(Record::header(Kind::PollStart, 10 * i, 0));
    }
    assert_eq!(ring.reach(320), Some(640));
    // Ten times faster from now on: the reach follows the new rate once a sixty-fourth
    // is written at it, wrapped or not.
    for i in 0..100 {
        ring.push(Record::header(Kind::PollStart, 320 + i, 0));
    }
    assert_eq!(ring.reach(420), Some(64));
}

#[test]
fn a_window_older_than_what_is_held_is_reported_incomplete() {
    // Timestamps are record numbers: the ring holds 13..21, records 0..13 are overwritten.
    let ring = Ring::new(8);
    for i in 0..21 {
        ring.push(rec(i));
    }
    let empty = RingCopy::default();
    assert_eq!(ring.window_from(15, &empty), 15, "held: complete");
    let from = ring.window_from(5, &empty);
    assert_eq!(
        from, 12,
        "5..13 were overwritten: one record before the oldest"
    );
    assert_eq!(
        ring.snapshot(from).lost(),
        1,
        "so the copy says the window lost records"
    );
    assert_eq!(ring.snapshot(from).first_seq(), 13);

    // A copy taken earlier still holds 10..13: it covers a window from 11, not from 5.
    let ring = Ring::new(8);
    let mut copy = RingCopy::default();
    for i in 0..18 {
        ring.push(rec(i));
    }
    ring.refresh(10, &mut copy);
    for i in 18..21 {
        ring.push(rec(i));
    }
    assert_eq!(ring.window_from(11, &copy), 11);
    let from = ring.window_from(5, &copy);
    assert_eq!(from, 9);
    ring.refresh(from, &mut copy);
    assert_eq!((copy.first_seq(), copy.lost()), (10, 1));

    // A ring that never wrapped holds everything since it began.
    let ring = Ring::new(64);
    for i in 10..20 {
        ring.push(rec(i));
    }
    assert_eq!(ring.window_from(5, &RingCopy::default()), 0);
}

#[test]
fn keeps_everything_until_full() {
    let ring = Ring::new(8);
    for i in 0..5 {
        ring.push(rec(i));
    }
    let snap = ring.snapshot(0);
    assert_eq!(snap.records(), (0..5).map(rec).collect::<Vec<_>>());
    assert_eq!(snap.lost(), 0);
}

#[test]
fn wraparound_overwrites_oldest_and_counts_the_loss() {
    let ring = Ring::new(8);
    for i in 0..21 {
        ring.push(rec(i));
    }
    let snap = ring.snapshot(0);
    assert_eq!(snap.records(), (13..21).map(rec).collect::<Vec<_>>());
    assert_eq!(snap.first_seq(), 13);
    assert_eq!(snap.lost(), 13);
    assert_eq!(ring.overwritten(), 13);
    // Timestamps are the record numbers here: from time 17, records 17..21.
    let from = ring.seq_for_time(17);
    assert_eq!(
        ring.snapshot(from).records(),
        (17..21).map(rec).collect::<Vec<_>>()
    );
    assert_eq!(
        ring.seq_for_time(0),
        13,
        "older than the ring: its oldest record"
    );
}

#[test]
fn incremental_snapshot_reads_only_new_records() {
    let ring = Ring::new(8);
    for i in 0..6 {
        ring.push(rec(i));
    }
    let first = ring.snapshot(0);
    for i in 6..9 {
        ring.push(rec(i));
    }
    let next = ring.snapshot(first.first_seq() + first.records().len() as u64);
    assert_eq!(next.records(), (6..9).map(rec).collect::<Vec<_>>());
    assert_eq!(next.lost(), 0);
}

#[test]
fn a_sliding_window_moves_each_record_about_once() {
    let ring = Ring::new(1024);
    let mut copy = RingCopy::default();
    let (window, step, reads) = (256u64, 16u64, 200u64);
    let mut moved = 0;
    for read in 0..reads {
        for i in read * step..(read + 1) * step {
            ring.push(rec(i));
        }
        let end = (read + 1) * step;
        ring.refresh(end.saturating_sub(window), &mut copy);
        // Records were dropped from the front at this read, yet none are left before
        // `start`: the live ones were moved to the front.
        if end > window && copy.start == 0 {
            moved += window;
        }
        assert_eq!(copy.first_seq(), end.saturating_sub(window));
        assert_eq!(copy.records().len() as u64, end.min(window));
    }
    assert!(
        moved <= 2 * reads * step,
        "{moved} records moved by compaction for {} appended",
        reads * step
    );
    assert!(
        copy.capacity() <= 3 * window as usize,
        "{}",
        copy.capacity()
    );

    // A window as long as the ring: the slack stops at half the ring.
    let mut copy = RingCopy::default();
    for read in reads..reads + 200 {
        for i in read * step..(read + 1) * step {
            ring.push(rec(i));
        }
        ring.refresh(((read + 1) * step).saturating_sub(1024), &mut copy);
    }
    assert_eq!(copy.records().len(), 1024);
    assert!(copy.capacity() <= 1024 + 512 + 16, "{}", copy.capacity());
}

#[test]
fn a_copy_keeps_at_most_two_rings_and_counts_the_rest_lost() {
    let ring = Ring::new(1024);
    let mut copy = RingCopy::default();
    // A reader that keeps asking for everything since record 0, every 100 records.
    for read in 0..40u64 {
        for i in read * 100..(read + 1) * 100 {
            ring.push(rec(i));
        }
        ring.refresh(0, &mut copy);
        let end = (read + 1) * 100;
        let kept = end.min(2048);
        assert_eq!(copy.records().len() as u64, kept, "read {read}");
        assert_eq!(copy.first_seq(), end - kept);
        assert_eq!(copy.lost(), end - kept, "what it asked for and lacks");
        assert_eq!(copy.records()[0], rec(end - kept), "the newest are kept");
        assert!(copy.capacity() <= 2560, "{}", copy.capacity());
    }
}

#[test]
fn a_long_windows_memory_is_given_back_once_windows_are_short_again() {
    let ring = Ring::new(16384);
    let mut copy = RingCopy::default();
    // An analyzer that fell behind: its windows reach back as far as the copy keeps.
    for i in 0..3 * 16384 {
        ring.push(rec(i));
        if i % 1000 == 999 {
            ring.refresh(0, &mut copy);
        }
    }
    let long = copy.capacity();
    assert!(long > 2 * 16384, "two rings of history: {long}");
    let mut emptied = copy.clone();
    // Caught up: windows of the last 512 records, read every 64 records.
    let mut end = 3 * 16384;
    for _ in 0..100 {
        for i in end..end + 64 {
            ring.push(rec(i));
        }
        end += 64;
        ring.refresh(end - 512, &mut copy);
        assert_eq!(
            copy.records(),
            (end - 512..end).map(rec).collect::<Vec<_>>()
        );
    }
    // At most four times what a read needs, or than the 4096 records never shrunk.
    assert!(
        copy.capacity() <= 4 * 4096,
        "{} records kept for a window of 512 (the long window's {long})",
        copy.capacity()
    );
    // A window past everything written empties a copy, which keeps a buffer.
    ring.refresh(end + 10, &mut emptied);
    assert!(emptied.records().is_empty());
    assert_eq!(emptied.capacity(), 4096, "shrunk, not freed");
}

#[test]
fn refresh_extends_a_copy_and_drops_what_the_window_left() {
    let mut copy = RingCopy::default();
    let one = Ring::new(8);
    one.push(rec(0));
    one.refresh(1, &mut copy);
    assert_eq!(
        (copy.records().len(), copy.first_seq()),
        (0, 1),
        "nothing from 1 on yet"
    );
    one.refresh(0, &mut copy);
    assert_eq!(copy.records(), [rec(0)]);

    let ring = Ring::new(8);
    copy = RingCopy::default();
    for i in 0..5 {
        ring.push(rec(i));
    }
    ring.refresh(0, &mut copy);
    assert_eq!(copy.records(), (0..5).map(rec).collect::<Vec<_>>());
    for i in 5..10 {
        ring.push(rec(i));
    }
    // Records 0 and 1 were overwritten, but the copy holds them: asking from 3 drops 0..3.
    ring.refresh(3, &mut copy);
    assert_eq!(copy.records(), (3..10).map(rec).collect::<Vec<_>>());
    assert_eq!((copy.first_seq(), copy.lost()), (3, 0));
    // Asking for older records than the copy holds reads afresh what the ring still has.
    ring.refresh(0, &mut copy);
    assert_eq!(copy.records(), (2..10).map(rec).collect::<Vec<_>>());
    assert_eq!(copy.lost(), 2);
    // Records the ring overwrote since the copy took them stay in the copy.
    for i in 10..14 {
        ring.push(rec(i));
    }
    ring.refresh(3, &mut copy);
    assert_eq!(copy.records(), (3..14).map(rec).collect::<Vec<_>>());
    assert_eq!(copy.lost(), 0);
    // Timestamps are record numbers: time 4 is found in the copy, though the ring lost it.
    assert_eq!(copy.seq_for_time(4), Some(4));
    assert_eq!(ring.seq_for_time(4), 6);
    assert_eq!(
        copy.seq_for_time(2),
        Some(3),
        "every record of the copy is in the window"
    );
    assert_eq!(RingCopy::default().seq_for_time(2), None);
    // A copy the ring has lapped is read afresh too.
    for i in 14..34 {
        ring.push(rec(i));
    }
    ring.refresh(12, &mut copy);
    assert_eq!(copy.records(), (26..34).map(rec).collect::<Vec<_>>());
    assert_eq!(copy.lost(), 14);
}

#[test]
fn concurrent_reader_never_sees_a_torn_record() {
    let ring = std::sync::Arc::new(Ring::new(64));
    let writer = {
        let ring = ring.clone();
        std::thread::spawn(move || {
            for i in 0..2_000_000u64 {
                ring.push(rec(i));
            }
        })
    };
    let mut reads = 0;
    while !writer.is_finished() || reads == 0 {
        let snap = ring.snapshot(0);
        for (n, r) in snap.records().iter().enumerate() {
            assert_eq!(r.arg(), (r.ts() * 7) & crate::recorder::record::ARG_MASK);
            assert_eq!(r.ts(), snap.first_seq() + n as u64, "records out of order");
        }
        reads += 1;
    }
    writer.join().unwrap();
}

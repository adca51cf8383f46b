//! loom models of the span slab's reference protocol (see the module docs of
//! `bridge/src/capture/slab.rs`): a span's last reference released on one thread while another
//! thread looks the span up by its id, re-inserts into the freed slot, or clones the id. A
//! lookup must find the value intact or nothing, never another value; every value must be
//! dropped exactly once; a freed slot must be reused under a new id.
//!
//! Mutations these models catch (each checked by hand, 2026-11-26): no generation bump when a
//! slot is freed; a reference taken from a count of zero; a relaxed decrement in `Ref::drop`;
//! taking the value before the count reaches zero; an untagged free-stack head (the ABA model);
//! a tag read that does not check the generation again after reading the tag; a relaxed store
//! of the tag at insert.
//! Not caught: a relaxed store publishing an inserted value, because every model hands ids
//! between threads through a spawn or a join, which already orders the write.
//!
//! Run: `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p granular-loom --release`
#![cfg(loom)]

use granular_loom::slab::{Released, Slab};
use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;

/// A value that counts its drops.
#[derive(Debug)]
struct Counted {
    v: u64,
    drops: Arc<AtomicUsize>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::Relaxed);
    }
}

/// Runs `f` under loom on a fresh slab and drop counter, asserting a floor on the executions
/// explored so a change that collapses the exploration does not pass silently.
fn model(floor: usize, f: impl Fn(Arc<Slab<Counted>>, Arc<AtomicUsize>) + Send + Sync + 'static) {
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = runs.clone();
    loom::model(move || {
        counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        f(Arc::new(Slab::default()), Arc::new(AtomicUsize::new(0)));
    });
    let runs = runs.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!("explored {runs} executions");
    assert!(
        runs >= floor,
        "only {runs} executions explored (expected at least {floor})"
    );
}

fn counted(v: u64, drops: &Arc<AtomicUsize>) -> Counted {
    Counted {
        v,
        drops: drops.clone(),
    }
}

#[test]
fn a_lookup_racing_the_last_release_sees_the_value_or_nothing() {
    model(20, |slab, drops| {
        let id = slab.insert(counted(7, &drops), 0).unwrap();
        let looking = {
            let slab = slab.clone();
            thread::spawn(move || slab.get(id).map(|r| r.v))
        };
        let closed = matches!(slab.release(id), Released::Last(_));
        let seen = looking.join().unwrap();
        assert!(seen.is_none() || seen == Some(7), "{seen:?}");
        assert!(slab.get(id).is_none());
        // Whoever dropped the count to zero dropped the value: exactly once, in either order.
        assert_eq!(drops.load(Ordering::Relaxed), 1);
        assert!(
            closed || seen == Some(7),
            "the release was the last unless the lookup held on"
        );
    });
}

#[test]
fn a_reused_slot_never_answers_to_the_old_id() {
    model(50, |slab, drops| {
        let old = slab.insert(counted(1, &drops), 0).unwrap();
        let stale = {
            let slab = slab.clone();
            thread::spawn(move || slab.get(old).map(|r| r.v))
        };
        // Last, or shared with the stale lookup, whose reference then frees the slot.
        assert!(!matches!(slab.release(old), Released::Unknown));
        let new = slab.insert(counted(2, &drops), 0).unwrap();
        assert_ne!(new, old);
        let seen = stale.join().unwrap();
        assert!(seen != Some(2), "a stale id found the slot's next value");
        assert_eq!(slab.get(new).map(|r| r.v), Some(2));
        assert!(slab.get(old).is_none());
    });
}

#[test]
fn concurrent_inserts_and_releases_hand_out_distinct_live_slots() {
    model(100, |slab, drops| {
        let first = slab.insert(counted(0, &drops), 0).unwrap();
        let other = {
            let (slab, drops) = (slab.clone(), drops.clone());
            thread::spawn(move || {
                let id = slab.insert(counted(1, &drops), 0).unwrap();
                assert_eq!(slab.get(id).map(|r| r.v), Some(1));
                id
            })
        };
        assert!(matches!(slab.release(first), Released::Last(c) if c.v == 0));
        let mine = slab.insert(counted(2, &drops), 0).unwrap();
        let theirs = other.join().unwrap();
        assert_ne!(mine, theirs);
        assert_eq!(slab.get(mine).map(|r| r.v), Some(2));
        assert_eq!(slab.get(theirs).map(|r| r.v), Some(1));
        assert_eq!(drops.load(Ordering::Relaxed), 1);
    });
}

#[test]
fn a_tag_read_racing_reuse_answers_for_its_own_id_only() {
    model(50, |slab, drops| {
        let old = slab.insert(counted(1, &drops), 1).unwrap();
        let reading = {
            let slab = slab.clone();
            thread::spawn(move || slab.tag(old))
        };
        assert!(matches!(slab.release(old), Released::Last(_)));
        let new = slab.insert(counted(2, &drops), 2).unwrap();
        let seen = reading.join().unwrap();
        assert!(seen.is_none() || seen == Some(1), "{seen:?}");
        assert_eq!(slab.tag(new), Some(2));
        assert_eq!(slab.tag(old), None);
    });
}

#[test]
fn a_clone_racing_the_last_release_keeps_the_value_or_fails() {
    model(20, |slab, drops| {
        let id = slab.insert(counted(5, &drops), 0).unwrap();
        let cloning = {
            let slab = slab.clone();
            thread::spawn(move || slab.add_ref(id))
        };
        let first = matches!(slab.release(id), Released::Last(_));
        let cloned = cloning.join().unwrap();
        assert!(
            cloned != first,
            "either the clone came first and kept it, or it failed"
        );
        if cloned {
            assert_eq!(slab.get(id).map(|r| r.v), Some(5));
            assert!(matches!(slab.release(id), Released::Last(c) if c.v == 5));
        }
        assert_eq!(drops.load(Ordering::Relaxed), 1);
    });
}

#[test]
fn the_free_stack_survives_a_pop_racing_pop_pop_push() {
    // The ABA case: one thread reads the free stack's head (a) and its next (b), another pops
    // a and b and pushes a back; an untagged head would then let the first thread install b,
    // which is in use, and hand one slot out twice.
    model(1200, |slab, drops| {
        let a = slab.insert(counted(0, &drops), 0).unwrap();
        let b = slab.insert(counted(0, &drops), 0).unwrap();
        drop(slab.release(b));
        drop(slab.release(a));
        let racing = {
            let (slab, drops) = (slab.clone(), drops.clone());
            thread::spawn(move || slab.insert(counted(1, &drops), 0).unwrap())
        };
        let y = slab.insert(counted(2, &drops), 0).unwrap();
        let z = slab.insert(counted(3, &drops), 0).unwrap();
        drop(slab.release(y));
        let x = racing.join().unwrap();
        let w = slab.insert(counted(4, &drops), 0).unwrap();
        for (id, v) in [(x, 1), (z, 3), (w, 4)] {
            assert_eq!(slab.get(id).map(|r| r.v), Some(v), "{id:#x} lost its value");
        }
    });
}

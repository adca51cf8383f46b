//! Span storage for [`GranularSubscriber`](super::subscriber::GranularSubscriber): values in
//! lazily allocated pages of slots, addressed by ids that carry the slot's generation, so a
//! stale id (a closed span's) finds nothing rather than another span.
//!
//! No locks. A slot's generation and reference count share one atomic word: a reference is
//! taken only while the generation matches and the count is non-zero, and the thread that
//! drops the count to zero owns the value, takes it out, bumps the generation and pushes the
//! slot on a lock-free free stack (ABA-tagged). Capacity is fixed ([`CAPACITY`] live values);
//! [`Slab::insert`] returns `None` beyond it and nothing else is affected.
//!
//! Each value also has a *tag*, one word read without taking a reference ([`Slab::tag`]): a
//! seqlock read (generation, tag, generation again) that answers for the id's own value or
//! not at all. It serves the hottest lookups (a span's entry and exit need only its recorder
//! key) without two atomic read-modify-writes on a shared line.
//!
//! This file is also compiled by `bridge/loom/` under `--cfg loom` (with two pages of two
//! slots) to model-check the protocol.

// `pub` (not `pub(crate)`): the loom crate compiles this file as a module of its own and its
// models, in another crate, use these items.
#![allow(unreachable_pub)]

use std::mem::MaybeUninit;
use std::ptr;

#[cfg(loom)]
use loom::cell::UnsafeCell;
#[cfg(loom)]
use loom::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering, fence};
#[cfg(not(loom))]
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering, fence};

#[cfg(not(loom))]
const PAGE: usize = 1024;
#[cfg(not(loom))]
const PAGES: usize = 4096;
#[cfg(loom)]
const PAGE: usize = 2;
#[cfg(loom)]
const PAGES: usize = 2;

/// `std::cell::UnsafeCell` with loom's closure-style access, so the same code runs under both.
#[cfg(not(loom))]
#[derive(Debug)]
struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

#[cfg(not(loom))]
impl<T> UnsafeCell<T> {
    fn new(v: T) -> Self {
        UnsafeCell(std::cell::UnsafeCell::new(v))
    }
    fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }
    fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}
/// Most values alive at once.
pub const CAPACITY: usize = PAGE * PAGES;

const REFS: u64 = 0xffff_ffff;

/// What every lookup of a slot reads, 16 bytes, kept apart from the values so that the heads
/// of the live values stay in cache however large the values are.
struct Head {
    /// `generation << 32 | references`; no references = free, or being filled.
    state: AtomicU64,
    /// The value's tag (see [`Slab::tag`]); stored with `Release` before the value is
    /// published, so a reader that sees a later value's tag also sees the generation change.
    tag: AtomicU64,
}

/// [`PAGE`] slots: their heads, free-stack links and values, each in its own array.
struct Page<T> {
    heads: Box<[Head]>,
    /// The next free slot's index + 1 while this one is on the free stack.
    next_free: Box<[AtomicU32]>,
    values: Box<[UnsafeCell<MaybeUninit<T>>]>,
}

/// Fixed-capacity, lock-free storage of reference-counted values under generation-checked ids.
pub struct Slab<T> {
    pages: Box<[AtomicPtr<Page<T>>]>,
    /// Slots handed out so far by bump allocation.
    next: AtomicU32,
    /// Free stack head: `tag << 32 | (index + 1)`, 0 in the low half when empty.
    free: AtomicU64,
}

// SAFETY: values are reached from any thread through `Ref`s (shared) and moved out by the one
// thread that drops the last reference; `T: Send + Sync` covers both.
unsafe impl<T: Send + Sync> Sync for Slab<T> {}
// SAFETY: as above; the slab owns its pages.
unsafe impl<T: Send + Sync> Send for Slab<T> {}

impl<T> std::fmt::Debug for Slab<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slab")
            .field("slots", &self.next.load(Ordering::Relaxed))
            .finish()
    }
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            pages: (0..PAGES)
                .map(|_| AtomicPtr::new(ptr::null_mut()))
                .collect(),
            next: AtomicU32::new(0),
            free: AtomicU64::new(0),
        }
    }
}

/// What releasing a reference did.
#[derive(Debug)]
pub enum Released<T> {
    /// The id names no live value.
    Unknown,
    /// Other references remain.
    Shared,
    /// That was the last reference: the value, now out of the slab.
    Last(T),
}

/// A shared reference to a value; keeps it in the slab until dropped.
#[derive(Debug)]
pub struct Ref<'a, T> {
    slab: &'a Slab<T>,
    index: usize,
}

impl<T> std::ops::Deref for Ref<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: this reference keeps the count above zero, so the value is initialised and
        // nobody takes it out while `self` lives.
        self.slab
            .value(self.index)
            .with(|v| unsafe { (*v).assume_init_ref() })
    }
}

impl<T> Ref<'_, T> {
    /// Leaves this reference counted in the slab (released later with [`Slab::release`]):
    /// a lookup that becomes a held reference without a second atomic update.
    pub fn keep(this: Self) {
        std::mem::forget(this);
    }
}

impl<T> Drop for Ref<'_, T> {
    fn drop(&mut self) {
        // This reference keeps the generation: no need to check it, one decrement does.
        let before = self
            .slab
            .head(self.index)
            .state
            .fetch_sub(1, Ordering::AcqRel);
        if before & REFS == 1 {
            drop(self.slab.take(self.index, before >> 32));
        }
    }
}

impl<T> Slab<T> {
    /// Stores `value` with one reference and its `tag`; `None` when [`CAPACITY`] values are
    /// alive.
    pub fn insert(&self, value: T, tag: u64) -> Option<u64> {
        let index = match self.pop_free() {
            Some(i) => i,
            None => {
                let i = self.next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= CAPACITY {
                    self.next.fetch_sub(1, Ordering::Relaxed);
                    return None;
                }
                self.ensure_page(i / PAGE);
                i
            }
        };
        let head = self.head(index);
        let generation = head.state.load(Ordering::Acquire) >> 32;
        // SAFETY: the slot came off the free stack or the bump counter, so no reference to it
        // exists and the count of zero keeps `get` out until the store below publishes it.
        self.value(index).with_mut(|v| unsafe { (*v).write(value) });
        head.tag.store(tag, Ordering::Release);
        head.state.store(generation << 32 | 1, Ordering::Release);
        Some(generation << 32 | (index as u64 + 1))
    }

    /// A reference to the value under `id`, if it is alive.
    pub fn get(&self, id: u64) -> Option<Ref<'_, T>> {
        let index = self.acquire(id)?;
        Some(Ref { slab: self, index })
    }

    /// The tag of the value under `id`, if it is alive; no reference is taken, nothing is
    /// written. A value freed meanwhile answers `None`, never another value's tag.
    pub fn tag(&self, id: u64) -> Option<u64> {
        let head = self.head(self.index_of(id)?);
        let generation = id >> 32;
        let live = |s: u64| s >> 32 == generation && s & REFS != 0;
        if !live(head.state.load(Ordering::Acquire)) {
            return None;
        }
        let tag = head.tag.load(Ordering::Relaxed);
        // Pairs with the `Release` store of a later value's tag: having read it, this thread
        // sees the generation bump that preceded it, and rejects the read.
        fence(Ordering::Acquire);
        live(head.state.load(Ordering::Relaxed)).then_some(tag)
    }

    /// Clears `bits` in the tag of the value `r` refers to.
    pub fn clear_tag_bits(&self, r: &Ref<'_, T>, bits: u64) {
        self.head(r.index).tag.fetch_and(!bits, Ordering::Relaxed);
    }

    /// Adds a reference to the value under `id` (released by [`Slab::release`]); false if the
    /// id names no live value.
    pub fn add_ref(&self, id: u64) -> bool {
        self.acquire(id).is_some()
    }

    /// Drops one reference; the last one takes the value out and frees the slot.
    pub fn release(&self, id: u64) -> Released<T> {
        let Some(index) = self.index_of(id) else {
            return Released::Unknown;
        };
        let state = &self.head(index).state;
        let generation = id >> 32;
        let mut s = state.load(Ordering::Acquire);
        loop {
            if s >> 32 != generation || s & REFS == 0 {
                return Released::Unknown;
            }
            match state.compare_exchange_weak(s, s - 1, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => break,
                Err(now) => s = now,
            }
        }
        if s & REFS > 1 {
            return Released::Shared;
        }
        Released::Last(self.take(index, generation))
    }

    /// Moves the value out of the slot at `index`, whose count this thread just dropped to
    /// zero under `generation`, and frees the slot.
    fn take(&self, index: usize, generation: u64) -> T {
        // SAFETY: the count is zero under this generation: no reference exists and none can
        // be taken, so this thread owns the value.
        let value = self
            .value(index)
            .with_mut(|v| unsafe { (*v).assume_init_read() });
        let next_generation = (generation + 1) & REFS;
        self.head(index)
            .state
            .store(next_generation << 32, Ordering::Release);
        self.push_free(index);
        value
    }

    fn acquire(&self, id: u64) -> Option<usize> {
        let index = self.index_of(id)?;
        let state = &self.head(index).state;
        let generation = id >> 32;
        let mut s = state.load(Ordering::Acquire);
        loop {
            if s >> 32 != generation || s & REFS == 0 || s & REFS == REFS {
                return None;
            }
            match state.compare_exchange_weak(s, s + 1, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Some(index),
                Err(now) => s = now,
            }
        }
    }

    /// The slot index of `id` if that slot exists.
    fn index_of(&self, id: u64) -> Option<usize> {
        let index = ((id & REFS) as usize).checked_sub(1)?;
        // `next` may pass CAPACITY for a moment while a full slab refuses an insert: the page
        // lookup is bounds-checked as well.
        let page = self.pages.get(index / PAGE)?;
        let exists = index < self.next.load(Ordering::Acquire) as usize
            && !page.load(Ordering::Acquire).is_null();
        exists.then_some(index)
    }

    /// The page holding slot `index`, which must exist.
    fn page(&self, index: usize) -> &Page<T> {
        let page = self.pages[index / PAGE].load(Ordering::Acquire);
        debug_assert!(!page.is_null());
        // SAFETY: pages are allocated before any index in them is handed out and never freed
        // before the slab.
        unsafe { &*page }
    }

    fn head(&self, index: usize) -> &Head {
        &self.page(index).heads[index % PAGE]
    }

    fn value(&self, index: usize) -> &UnsafeCell<MaybeUninit<T>> {
        &self.page(index).values[index % PAGE]
    }

    fn next_free(&self, index: usize) -> &AtomicU32 {
        &self.page(index).next_free[index % PAGE]
    }

    fn ensure_page(&self, p: usize) {
        if !self.pages[p].load(Ordering::Acquire).is_null() {
            return;
        }
        let page = Box::new(Page {
            heads: (0..PAGE)
                .map(|_| Head {
                    state: AtomicU64::new(0),
                    tag: AtomicU64::new(0),
                })
                .collect(),
            next_free: (0..PAGE).map(|_| AtomicU32::new(0)).collect(),
            values: (0..PAGE)
                .map(|_| UnsafeCell::new(MaybeUninit::uninit()))
                .collect(),
        });
        let raw = Box::into_raw(page);
        if self.pages[p]
            .compare_exchange(ptr::null_mut(), raw, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            // SAFETY: `raw` came from the box above and was not published.
            drop(unsafe { Box::from_raw(raw) });
        }
    }

    fn pop_free(&self) -> Option<usize> {
        let mut head = self.free.load(Ordering::Acquire);
        loop {
            let top = (head & REFS) as usize;
            if top == 0 {
                return None;
            }
            let next = u64::from(self.next_free(top - 1).load(Ordering::Relaxed));
            let new = ((head >> 32).wrapping_add(1) << 32) | next;
            match self
                .free
                .compare_exchange_weak(head, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Some(top - 1),
                Err(now) => head = now,
            }
        }
    }

    fn push_free(&self, index: usize) {
        let link = self.next_free(index);
        let mut head = self.free.load(Ordering::Acquire);
        loop {
            link.store((head & REFS) as u32, Ordering::Relaxed);
            let new = ((head >> 32).wrapping_add(1) << 32) | (index as u64 + 1);
            match self
                .free
                .compare_exchange_weak(head, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return,
                Err(now) => head = now,
            }
        }
    }
}

impl<T> Drop for Slab<T> {
    fn drop(&mut self) {
        for page in self.pages.iter() {
            let raw = page.load(Ordering::Acquire);
            if raw.is_null() {
                continue;
            }
            // SAFETY: `&mut self`: no other access; the page came from `ensure_page`.
            let page = unsafe { Box::from_raw(raw) };
            for (head, value) in page.heads.iter().zip(page.values.iter()) {
                if head.state.load(Ordering::Acquire) & REFS != 0 {
                    // SAFETY: a non-zero count means the value is initialised.
                    value.with_mut(|v| unsafe { (*v).assume_init_drop() });
                }
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn ids_find_their_value_until_the_last_release() {
        let slab = Slab::default();
        let id = slab.insert(String::from("a"), 0).unwrap();
        assert_eq!(slab.get(id).as_deref().map(String::as_str), Some("a"));
        assert!(slab.add_ref(id));
        assert!(matches!(slab.release(id), Released::Shared));
        match slab.release(id) {
            Released::Last(v) => assert_eq!(v, "a"),
            other => panic!("expected the value back, got {other:?}"),
        }
        assert!(slab.get(id).is_none());
        assert!(matches!(slab.release(id), Released::Unknown));
    }

    #[test]
    fn a_kept_lookup_holds_the_value_until_released() {
        let slab = Slab::default();
        let id = slab.insert(3u32, 0).unwrap();
        Ref::keep(slab.get(id).unwrap());
        assert!(matches!(slab.release(id), Released::Shared));
        assert!(matches!(slab.release(id), Released::Last(3)));
    }

    #[test]
    fn a_reused_slot_does_not_answer_to_the_old_id() {
        let slab = Slab::default();
        let old = slab.insert(1u32, 10).unwrap();
        assert_eq!(slab.tag(old), Some(10));
        assert!(matches!(slab.release(old), Released::Last(1)));
        assert_eq!(slab.tag(old), None, "freed");
        let new = slab.insert(2u32, 20).unwrap();
        assert_eq!(old & REFS, new & REFS, "the slot is reused");
        assert_ne!(old, new);
        assert!(slab.get(old).is_none());
        assert!(!slab.add_ref(old));
        assert_eq!(slab.tag(old), None, "the old id names nothing");
        assert_eq!(slab.get(new).map(|r| *r), Some(2));
        assert_eq!(slab.tag(new), Some(20));
    }

    #[test]
    fn tag_bits_clear_under_a_reference() {
        let slab = Slab::default();
        let id = slab.insert(1u32, 0b1101).unwrap();
        let r = slab.get(id).unwrap();
        slab.clear_tag_bits(&r, 0b1000);
        drop(r);
        assert_eq!(slab.tag(id), Some(0b0101));
        assert_eq!(slab.tag(CAPACITY as u64 + 1), None);
    }

    #[test]
    fn a_reference_outliving_the_last_release_drops_the_value() {
        let slab = Slab::default();
        let value = Arc::new(());
        let id = slab.insert(value.clone(), 0).unwrap();
        let r = slab.get(id).unwrap();
        assert!(matches!(slab.release(id), Released::Shared));
        assert_eq!(Arc::strong_count(&value), 2);
        drop(r);
        assert_eq!(
            Arc::strong_count(&value),
            1,
            "dropped with the last reference"
        );
        assert!(slab.get(id).is_none());
    }

    #[test]
    fn ids_that_were_never_handed_out_find_nothing() {
        let slab: Slab<u8> = Slab::default();
        assert!(slab.get(0).is_none());
        assert!(slab.get(1).is_none());
        assert!(slab.get(u64::MAX).is_none());
        assert!(slab.get(CAPACITY as u64 + 1).is_none());
        assert!(slab.get(u64::from(u32::MAX) - 1).is_none());
        assert!(matches!(slab.release(7), Released::Unknown));
    }

    #[test]
    fn live_values_are_dropped_with_the_slab() {
        let value = Arc::new(());
        let slab = Slab::default();
        for _ in 0..3 {
            slab.insert(value.clone(), 0).unwrap();
        }
        drop(slab);
        assert_eq!(Arc::strong_count(&value), 1);
    }

    #[test]
    fn threads_inserting_and_releasing_never_share_a_live_slot() {
        let slab = Arc::new(Slab::default());
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                let slab = slab.clone();
                std::thread::spawn(move || {
                    let mut live = Vec::new();
                    for i in 0..20_000u64 {
                        let v = t << 32 | i;
                        live.push((slab.insert(v, 0).unwrap(), v));
                        if i % 3 != 0 {
                            let (id, v) = live.swap_remove((i as usize * 7) % live.len());
                            assert_eq!(slab.get(id).map(|r| *r), Some(v));
                            assert!(matches!(slab.release(id), Released::Last(x) if x == v));
                        }
                    }
                    for (id, v) in live {
                        assert_eq!(slab.get(id).map(|r| *r), Some(v));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!((slab.next.load(Ordering::Relaxed) as usize) < 4 * 20_000);
    }
}

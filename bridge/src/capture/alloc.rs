//! Allocation counters: a [`GlobalAlloc`] wrapper that counts per thread.
//!
//! ```text
//! #[global_allocator]
//! static ALLOC: granular::Alloc = granular::Alloc::system();
//! ```
//! Each allocation bumps three thread-local `Cell`s (no atomics shared between threads, so no
//! contention). The recorder stores the cumulative counters at poll and span boundaries; the
//! analyzer subtracts them. Not installed: nothing is counted and nothing is recorded.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::recorder::codec::counters::Counters;

/// Counting wrapper around any global allocator.
#[derive(Debug, Default)]
pub struct Alloc<A = System> {
    inner: A,
}

impl Alloc<System> {
    /// Wraps the system allocator.
    pub const fn system() -> Self {
        Alloc { inner: System }
    }
}

impl<A> Alloc<A> {
    /// Wraps `inner`.
    pub const fn new(inner: A) -> Self {
        Alloc { inner }
    }
}

/// One thread's running totals.
struct ThreadCounts {
    count: Cell<u64>,
    bytes: Cell<u64>,
    frees: Cell<u64>,
    /// (count, bytes) as last written to the recorder.
    written: Cell<(u64, u64)>,
}

thread_local! {
    // const and without Drop: usable from inside the allocator, never registers a destructor.
    static COUNTERS: ThreadCounts = const {
        ThreadCounts {
            count: Cell::new(0),
            bytes: Cell::new(0),
            frees: Cell::new(0),
            written: Cell::new((0, 0)),
        }
    };
}

static INSTALLED: AtomicBool = AtomicBool::new(false);

#[inline]
fn count_alloc(size: usize) {
    let _ = COUNTERS.try_with(|c| {
        c.count.set(c.count.get() + 1);
        c.bytes.set(c.bytes.get() + size as u64);
    });
}

// SAFETY: every method forwards to the wrapped allocator unchanged; the counting touches only
// const thread-locals without destructors, which never allocate.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Alloc<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_alloc(layout.size());
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.inner.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_alloc(layout.size());
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.inner.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let _ = COUNTERS.try_with(|c| c.frees.set(c.frees.get() + 1));
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.inner.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // A growing realloc counts as an allocation of the growth.
        if new_size > layout.size() {
            count_alloc(new_size - layout.size());
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.inner.realloc(ptr, layout, new_size) }
    }
}

/// Whether the wrapper is the global allocator (probed once with a test allocation).
pub(crate) fn installed() -> bool {
    if !INSTALLED.load(Ordering::Relaxed) {
        // Any allocation through the wrapper bumps this thread's counter: allocate once and look.
        let before = COUNTERS.try_with(|c| c.count.get()).unwrap_or(0);
        drop(std::hint::black_box(Box::new(0u64)));
        let after = COUNTERS.try_with(|c| c.count.get()).unwrap_or(0);
        if after > before {
            INSTALLED.store(true, Ordering::Relaxed);
        }
    }
    INSTALLED.load(Ordering::Relaxed)
}

/// This thread's cumulative counters, for the poll or span boundary about to be recorded, when
/// the wrapper is installed and they changed since the last boundary took them (they then count
/// as written): unchanged counters would tell the decoder nothing (it carries the last values
/// forward). They ride on the boundary's header: as separate records they were a sixth of a
/// busy service's records and a clock read each.
#[inline]
pub(crate) fn changed_counters() -> Option<Counters> {
    if !INSTALLED.load(Ordering::Relaxed) {
        return None;
    }
    COUNTERS
        .try_with(|c| {
            let now = (c.count.get(), c.bytes.get());
            (c.written.replace(now) != now).then_some(Counters {
                allocations: now.0,
                bytes: now.1,
            })
        })
        .ok()
        .flatten()
}

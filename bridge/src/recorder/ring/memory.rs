//! A ring's slots in pages mapped for it alone, on 2 MiB huge pages where the kernel allows.
//!
//! A worker's ring (16 MiB by default) is written a record at a time, one lap every fraction
//! of a second at saturation: on 4 KiB pages that is 4,096 pages, and each new page the writer
//! reaches has fallen out of the TLB since the last lap, a page walk on the request path (a
//! two-level one in a virtual machine). On 2 MiB pages a 16 MiB ring takes eight TLB entries.
//! The mapping is aligned to 2 MiB and advised `MADV_HUGEPAGE`, which transparent huge pages
//! honour in their default `madvise` mode without any privilege. Where the kernel has them off
//! (`never`) or lacks them, the advice does nothing and the ring stays on 4 KiB pages.
//!
//! The pages are the kernel's zeroed anonymous memory, so the ring becomes resident as its
//! writer reaches them: in 2 MiB steps on huge pages (each step's first write zeroes 2 MiB, once
//! in the ring's life), in 4 KiB steps otherwise. The application's global allocator is not
//! involved: a counting allocator does not count a ring as the allocation of whatever span was
//! open when its thread first wrote.

use std::ops::Deref;
use std::ptr::NonNull;

use super::Slot;

/// The huge page size the mapping is aligned to and advised for.
pub(super) const HUGE_PAGE: usize = 2 << 20;

/// `len` zeroed slots in a mapping of their own, unmapped when dropped.
#[derive(Debug)]
pub(super) struct SlotMemory {
    slots: NonNull<Slot>,
    len: usize,
}

// SAFETY: the memory is owned by this value alone and a `Slot` is two atomics, shared between
// threads by design (`Slot` is `Sync`).
unsafe impl Send for SlotMemory {}
// SAFETY: as above: only `&[Slot]` is handed out.
unsafe impl Sync for SlotMemory {}

impl SlotMemory {
    /// Maps `len` (at least 1) zeroed slots; rings of at least [`HUGE_PAGE`] bytes are aligned
    /// to it and advised for huge pages. Aborts as a failed allocation does when the address
    /// space is exhausted.
    pub(super) fn zeroed(len: usize) -> SlotMemory {
        let bytes = len.max(1) * size_of::<Slot>();
        let huge = bytes >= HUGE_PAGE;
        let slots = if huge { map_aligned(bytes) } else { map(bytes) };
        let Some(slots) = slots else {
            let layout = std::alloc::Layout::array::<Slot>(len.max(1))
                .unwrap_or(std::alloc::Layout::new::<Slot>());
            std::alloc::handle_alloc_error(layout);
        };
        if huge {
            advise_huge(slots, bytes);
        }
        SlotMemory {
            slots: slots.cast(),
            len: len.max(1),
        }
    }

    fn bytes(&self) -> usize {
        self.len * size_of::<Slot>()
    }
}

impl Deref for SlotMemory {
    type Target = [Slot];

    fn deref(&self) -> &[Slot] {
        // SAFETY: `slots` points to `len` slots mapped readable and writable for the life of
        // `self`; all-zero bytes (the kernel's fresh pages) are a valid `Slot` (two 0 atomics).
        unsafe { std::slice::from_raw_parts(self.slots.as_ptr(), self.len) }
    }
}

impl Drop for SlotMemory {
    fn drop(&mut self) {
        // SAFETY: `slots` and `bytes()` are exactly the mapping `zeroed` made (trimmed to it for
        // an aligned one), and no reference into it outlives `self`.
        unsafe {
            libc::munmap(self.slots.as_ptr().cast(), self.bytes());
        }
    }
}

/// A fresh private anonymous mapping of `bytes`, or `None`.
fn map(bytes: usize) -> Option<NonNull<u8>> {
    // SAFETY: a new anonymous mapping; no existing memory is touched.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            bytes,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return None;
    }
    NonNull::new(p.cast())
}

/// A mapping of `bytes` (a multiple of the page size) starting on a [`HUGE_PAGE`] boundary: mapped with a huge page's room to spare, and the
/// spare head and tail unmapped.
fn map_aligned(bytes: usize) -> Option<NonNull<u8>> {
    let base = map(bytes + HUGE_PAGE)?.as_ptr() as usize;
    let start = base.next_multiple_of(HUGE_PAGE);
    let (head, tail) = (start - base, base + HUGE_PAGE - start);
    // SAFETY: both ranges lie in the mapping just made, outside `[start, start + bytes)`;
    // `head` and `tail` are multiples of the page size (the mapping's base is page-aligned).
    unsafe {
        if head > 0 {
            libc::munmap(base as *mut libc::c_void, head);
        }
        if tail > 0 {
            libc::munmap((start + bytes) as *mut libc::c_void, tail);
        }
    }
    NonNull::new(start as *mut u8)
}

/// Advises huge pages for the mapping; a kernel without them refuses, and the pages stay small.
fn advise_huge(p: NonNull<u8>, bytes: usize) {
    #[cfg(target_os = "linux")]
    // SAFETY: advice on a mapping this module owns; it changes no contents.
    unsafe {
        libc::madvise(p.as_ptr().cast(), bytes, libc::MADV_HUGEPAGE);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (p, bytes);
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;

    /// The `VmFlags` of the mapping that holds `addr`, from `/proc/self/smaps`.
    fn vm_flags(addr: usize) -> Option<String> {
        let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
        let mut inside = false;
        for line in smaps.lines() {
            if let Some((range, _)) = line.split_once(' ')
                && let Some((lo, hi)) = range.split_once('-')
                && let (Ok(lo), Ok(hi)) =
                    (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
            {
                inside = (lo..hi).contains(&addr);
            } else if inside && let Some(flags) = line.strip_prefix("VmFlags:") {
                return Some(flags.trim().to_owned());
            }
        }
        None
    }

    #[test]
    fn slots_start_zeroed_and_keep_what_is_written() {
        for len in [1, 4, 1 << 10, HUGE_PAGE / size_of::<Slot>() * 2] {
            let m = SlotMemory::zeroed(len);
            assert_eq!(m.len(), len);
            assert!(m.iter().all(|s| s.w0.load(Ordering::Relaxed) == 0));
            m[len - 1].w1.store(7, Ordering::Relaxed);
            assert_eq!(m[len - 1].w1.load(Ordering::Relaxed), 7);
        }
    }

    #[test]
    fn a_ring_of_a_huge_page_or_more_is_aligned_and_advised_for_huge_pages() {
        let m = SlotMemory::zeroed(HUGE_PAGE / size_of::<Slot>() * 4);
        let addr = m.as_ptr() as usize;
        assert_eq!(
            addr % HUGE_PAGE,
            0,
            "ring at {addr:#x} is not 2 MiB-aligned"
        );
        if std::path::Path::new("/sys/kernel/mm/transparent_hugepage").exists() {
            let flags = vm_flags(addr).expect("the ring's mapping is in /proc/self/smaps");
            assert!(
                flags.split(' ').any(|f| f == "hg"),
                "the ring's mapping is not advised for huge pages: VmFlags {flags}"
            );
        }
        let small = SlotMemory::zeroed(64);
        if let Some(flags) = vm_flags(small.as_ptr() as usize) {
            assert!(!flags.split(' ').any(|f| f == "hg"), "VmFlags {flags}");
        }
    }
}

//! Memory Granular maps for itself, beside the application's allocator: the recorder's rings
//! (`recorder/ring/memory.rs`) and the page-fault probe's fresh pages (`capture/waits`).
//! A private anonymous mapping: zeroed by the kernel, resident only as it is touched, unmapped
//! when dropped.

use std::ptr::NonNull;

/// A private anonymous mapping, owned: unmapped on drop.
#[derive(Debug)]
pub(crate) struct Mapping {
    start: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping belongs to this value alone; it hands out only a raw pointer, and what
// is stored there (the rings' atomics, the probe's bytes) says how threads may share it.
unsafe impl Send for Mapping {}
// SAFETY: as above: `&Mapping` gives nothing but the pointer and the length.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// `len` bytes (at least one), readable and writable, zeroed; `None` when the kernel
    /// refuses (the address space is exhausted).
    pub(crate) fn new(len: usize) -> Option<Mapping> {
        let len = len.max(1);
        // SAFETY: a new anonymous mapping; no existing memory is touched.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return None;
        }
        Some(Mapping {
            start: NonNull::new(p.cast())?,
            len,
        })
    }

    /// As [`Mapping::new`], starting on an `align` boundary (a power of two, a multiple of
    /// the page size; `len` a multiple of the page size): mapped with `align` bytes to spare,
    /// the spare head and tail unmapped.
    pub(crate) fn aligned(len: usize, align: usize) -> Option<Mapping> {
        let spare = Mapping::new(len + align)?;
        let base = spare.start.as_ptr() as usize;
        let start = base.next_multiple_of(align);
        let (head, tail) = (start - base, base + align - start);
        std::mem::forget(spare);
        // SAFETY: both ranges lie in the mapping just made, outside `[start, start + len)`,
        // and are multiples of the page size (the mapping's base is page-aligned); the
        // forgotten `spare` no longer unmaps the whole.
        unsafe {
            if head > 0 {
                libc::munmap(base as *mut libc::c_void, head);
            }
            if tail > 0 {
                libc::munmap((start + len) as *mut libc::c_void, tail);
            }
        }
        Some(Mapping {
            start: NonNull::new(start as *mut u8)?,
            len,
        })
    }

    /// The first byte.
    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.start.as_ptr()
    }

    /// Advises huge pages for the bytes from `offset` on (a multiple of the page size); a
    /// kernel without them refuses, and the pages stay small.
    pub(crate) fn advise_huge_from(&self, offset: usize) {
        if offset >= self.len {
            return;
        }
        #[cfg(target_os = "linux")]
        // SAFETY: advice on a range of this mapping; it changes no contents.
        unsafe {
            libc::madvise(
                self.as_ptr().add(offset).cast(),
                self.len - offset,
                libc::MADV_HUGEPAGE,
            );
        }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: exactly the range this value owns; nothing borrows from it past `self`.
        unsafe {
            libc::munmap(self.start.as_ptr().cast(), self.len);
        }
    }
}

//! A ring's slots in pages mapped for it alone, past its first 2 MiB on huge pages where the
//! kernel allows.
//!
//! A worker's ring (16 MiB by default) is written a record at a time, one lap every fraction
//! of a second at saturation: on 4 KiB pages that is 4,096 pages, and each new page the writer
//! reaches has fallen out of the TLB since the last lap, a page walk on the request path (a
//! two-level one in a virtual machine). On 2 MiB pages a 16 MiB ring takes eight TLB entries.
//! A ring larger than [`HUGE_PAGE`] is mapped on a 2 MiB boundary and all of it but its first
//! 2 MiB is advised `MADV_HUGEPAGE`, which transparent huge pages honour in their default
//! `madvise` mode without any privilege. Where the kernel has them off (`never`) or lacks them,
//! the advice does nothing and the ring stays on 4 KiB pages.
//!
//! The pages are the kernel's zeroed anonymous memory, so the ring becomes resident as its
//! writer reaches them. The first 2 MiB stay on 4 KiB pages so that a ring that is barely
//! written (a quiet worker's: 2 MiB is ~130,000 records) stays as small as its records: advised
//! whole, every worker that wrote one record held 2 MiB. A busy ring's writer goes on into huge
//! pages, each zeroed by its first write, once in the ring's life; its first 2 MiB keep
//! costing a TLB miss every 256 records, an eighth of a 16 MiB ring's writes. The application's
//! global allocator is not involved: a counting allocator does not count a ring as the
//! allocation of whatever span was open when its thread first wrote.

use std::ops::Deref;

use super::Slot;
use crate::mapping::Mapping;

/// The huge page size the mapping is aligned to and advised for.
pub(super) const HUGE_PAGE: usize = 2 << 20;

/// `len` zeroed slots in a mapping of their own, unmapped when dropped.
#[derive(Debug)]
pub(super) struct SlotMemory {
    mapping: Mapping,
    len: usize,
}

impl SlotMemory {
    /// Maps `len` (at least 1) zeroed slots; rings larger than [`HUGE_PAGE`] are aligned to it
    /// and advised for huge pages past their first. Aborts as a failed allocation does when the
    /// address space is exhausted.
    pub(super) fn zeroed(len: usize) -> SlotMemory {
        let len = len.max(1);
        let bytes = len * size_of::<Slot>();
        let huge = bytes > HUGE_PAGE;
        let mapping = if huge {
            Mapping::aligned(bytes, HUGE_PAGE)
        } else {
            Mapping::new(bytes)
        };
        let Some(mapping) = mapping else {
            let layout =
                std::alloc::Layout::array::<Slot>(len).unwrap_or(std::alloc::Layout::new::<Slot>());
            std::alloc::handle_alloc_error(layout);
        };
        if huge {
            mapping.advise_huge_from(HUGE_PAGE);
        }
        SlotMemory { mapping, len }
    }
}

impl Deref for SlotMemory {
    type Target = [Slot];

    fn deref(&self) -> &[Slot] {
        // SAFETY: the mapping holds `len` slots (page-aligned, so aligned for a `Slot`), mapped
        // readable and writable for the life of `self`; all-zero bytes (the kernel's fresh
        // pages) are a valid `Slot` (two 0 atomics).
        unsafe { std::slice::from_raw_parts(self.mapping.as_ptr().cast::<Slot>(), self.len) }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;

    /// The `/proc/self/smaps` lines of the mapping that holds `addr`, after its header.
    fn smaps_of(addr: usize) -> Option<Vec<String>> {
        let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
        let mut found: Option<Vec<String>> = None;
        for line in smaps.lines() {
            let range = line.split_once(' ').and_then(|(r, _)| r.split_once('-'));
            if let Some((lo, hi)) = range
                && let (Ok(lo), Ok(hi)) =
                    (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
            {
                if found.is_some() {
                    break;
                }
                if (lo..hi).contains(&addr) {
                    found = Some(Vec::new());
                }
            } else if let Some(lines) = found.as_mut() {
                lines.push(line.to_owned());
            }
        }
        found
    }

    /// Whether the mapping that holds `addr` is advised for huge pages (`hg` in `VmFlags`).
    fn advised(addr: usize) -> bool {
        let lines = smaps_of(addr).expect("the mapping is in /proc/self/smaps");
        let flags = lines.iter().find_map(|l| l.strip_prefix("VmFlags:"));
        flags.is_some_and(|f| f.split_whitespace().any(|f| f == "hg"))
    }

    /// The resident kilobytes of the mapping that holds `addr`.
    fn resident_kb(addr: usize) -> u64 {
        let lines = smaps_of(addr).expect("the mapping is in /proc/self/smaps");
        let rss = lines.iter().find_map(|l| l.strip_prefix("Rss:"));
        rss.and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("an Rss line")
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
    fn a_large_ring_is_aligned_and_advised_for_huge_pages_past_its_first_2_mib() {
        let m = SlotMemory::zeroed(HUGE_PAGE / size_of::<Slot>() * 4);
        let addr = m.as_ptr() as usize;
        assert_eq!(
            addr % HUGE_PAGE,
            0,
            "ring at {addr:#x} is not 2 MiB-aligned"
        );
        assert!(!advised(addr), "the first 2 MiB are advised");
        if std::path::Path::new("/sys/kernel/mm/transparent_hugepage").exists() {
            assert!(advised(addr + HUGE_PAGE), "the rest is not advised");
        }
        let one_huge_page = SlotMemory::zeroed(HUGE_PAGE / size_of::<Slot>());
        assert!(!advised(one_huge_page.as_ptr() as usize));
        let small = SlotMemory::zeroed(64);
        assert!(!advised(small.as_ptr() as usize));
    }

    #[test]
    fn a_barely_written_ring_holds_little_memory() {
        let m = SlotMemory::zeroed(HUGE_PAGE / size_of::<Slot>() * 8);
        m[0].w0.store(1, Ordering::Relaxed);
        let kb = resident_kb(m.as_ptr() as usize);
        assert!(kb <= 64, "one record made {kb} kB of the ring resident");
    }
}

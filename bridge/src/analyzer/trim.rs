//! Giving back to the OS the memory a batch's decode freed.
//!
//! A decode allocates in proportion to its window (a full one ~50 bytes a record: 25 MiB for
//! 500,000 records) and frees it all when the batch is done. glibc's malloc keeps freed memory
//! inside the thread's arena: it unmaps only the top of a heap, and only past a threshold that
//! rises with the largest block it unmapped, so the free memory of one long window (an
//! analyzer that fell behind) stayed resident: in a 600 s soak the analyzer's heap held 42-47
//! MiB resident with 3-5 MiB in use from the 195th second to the end. After a batch, at most
//! every [`TRIM_EVERY`], `malloc_trim` hands the free pages of every arena back
//! (`MADV_DONTNEED`); the next decode faults in again what it uses.
//!
//! `malloc_trim` locks each arena in turn, and on a busy core the analyzer may be preempted
//! while it holds one a worker allocates from: hence rarely. In that soak (debug build, a saturated
//! 2-vCPU VM) a trim took ~1 ms of wall time at the median, 25 ms at the 90th percentile
//! (preempted) and released 3-8 MiB on average; trimming at most every second instead of
//! every ten seconds left RSS swinging as much with the analyzer's lag. Elsewhere than glibc
//! there is nothing to do.

use std::time::{Duration, Instant};

/// How often at most the analyzer gives free memory back.
const TRIM_EVERY: Duration = Duration::from_secs(10);

/// When free memory was last given back.
#[derive(Debug, Default)]
pub(super) struct Trim {
    last: Option<Instant>,
}

impl Trim {
    /// After a batch at `now` (its decode dropped): gives free memory back if
    /// [`TRIM_EVERY`] passed since it last did.
    pub(super) fn after_batch(&mut self, now: Instant) {
        if self.due(now) {
            release_free_memory();
        }
    }

    /// Whether to give memory back at `now`; if so, notes that it does.
    fn due(&mut self, now: Instant) -> bool {
        let due = self
            .last
            .is_none_or(|last| now.saturating_duration_since(last) >= TRIM_EVERY);
        if due {
            self.last = Some(now);
        }
        due
    }
}

/// Hands the free pages of glibc's arenas back to the OS.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn release_free_memory() {
    // SAFETY: malloc_trim has no preconditions; it only releases memory no allocation holds.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_free_memory() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_is_given_back_at_most_every_ten_seconds() {
        let t0 = Instant::now();
        let mut trim = Trim::default();
        assert!(trim.due(t0), "the first batch");
        assert!(!trim.due(t0 + Duration::from_secs(9)));
        assert!(trim.due(t0 + TRIM_EVERY));
        assert!(!trim.due(t0 + TRIM_EVERY + Duration::from_secs(1)));
    }

    /// Pages of a freed block below a live one (which keeps the heap from shrinking) stay
    /// resident until [`release_free_memory`].
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn freed_pages_below_a_live_block_are_handed_back() {
        const BLOCK: usize = 64 << 10;
        let page = 4096;
        // Blocks below the mmap threshold come from the thread's arena, in order; the last one
        // stays allocated above the others.
        let mut blocks: Vec<Vec<u8>> = (0..256).map(|_| vec![1u8; BLOCK]).collect();
        let pin = blocks.pop();
        let middle = blocks[128].as_ptr() as usize;
        drop(blocks);
        // Whole pages inside the middle block, clear of its malloc header.
        let start = (middle + page) & !(page - 1);
        let resident = || {
            let mut vec = vec![0u8; BLOCK / page - 2];
            // SAFETY: the range lies within the arena's heap, which stays mapped; mincore
            // only reads the page tables and writes one byte per page into `vec`.
            let rc = unsafe {
                libc::mincore(
                    start as *mut libc::c_void,
                    vec.len() * page,
                    vec.as_mut_ptr(),
                )
            };
            assert_eq!(rc, 0, "mincore: {}", std::io::Error::last_os_error());
            vec.iter().filter(|&&v| v & 1 == 1).count()
        };
        assert!(resident() > 0, "freed, still resident");
        release_free_memory();
        assert_eq!(resident(), 0, "handed back");
        drop(pin);
    }
}

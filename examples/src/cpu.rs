//! Real CPU work that never yields, shared by the `/report` hog and the `child` pathology.

use std::hash::{DefaultHasher, Hasher};
use std::io;
use std::time::{Duration, Instant};

/// Hashes a 4 KiB buffer over and over until `budget` has elapsed, without ever awaiting.
///
/// Called from async code on purpose: it holds whichever tokio worker runs it for the whole
/// budget, which is the runtime trouble the demo wants Granular to explain. The checksum is
/// returned (and fed back into the buffer) so the optimiser cannot drop the work.
pub fn burn(budget: Duration) -> u64 {
    let start = Instant::now();
    let mut buffer = [0u8; 4096];
    for (i, byte) in buffer.iter_mut().enumerate() {
        *byte = i as u8;
    }
    let mut checksum = 0u64;
    loop {
        let mut hasher = DefaultHasher::new();
        hasher.write(&buffer);
        hasher.write_u64(checksum);
        checksum = hasher.finish();
        buffer[(checksum % buffer.len() as u64) as usize] ^= checksum as u8;
        if start.elapsed() >= budget {
            return checksum;
        }
    }
}

/// The calling thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`): the ground truth the demo reports
/// beside its pathologies, so tests compare Granular's figures with what the kernel counted.
pub fn thread_cpu() -> io::Result<Duration> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burns_for_at_least_the_budget() {
        let start = Instant::now();
        burn(Duration::from_millis(5));
        assert!(start.elapsed() >= Duration::from_millis(5));
    }
}

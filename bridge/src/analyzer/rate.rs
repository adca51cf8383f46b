//! Per-second limits: spans analyzed (`GRANULAR_MAX_ENRICH_PER_SEC`, checked by the processor
//! before it queues a span) and artifacts built (`GRANULAR_ARTIFACTS_PER_SEC`).

use crate::clock;

/// What was taken in the current second of the monotonic clock, against a limit.
#[derive(Debug, Default)]
pub(crate) struct PerSecond {
    second: u64,
    used: u32,
}

impl PerSecond {
    /// How many more fit under `limit` in the second `now` (a new second starts from none).
    pub(crate) fn room(&mut self, now: u64, limit: u32) -> u32 {
        if self.second != now {
            *self = PerSecond {
                second: now,
                used: 0,
            };
        }
        limit.saturating_sub(self.used)
    }

    /// Counts one more taken in the current second.
    pub(crate) fn take(&mut self) {
        self.used += 1;
    }
}

/// The current second of the monotonic clock.
pub(crate) fn current_second() -> u64 {
    clock::monotonic_ns() / 1_000_000_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_holds_within_a_second_and_starts_again_in_the_next() {
        let mut p = PerSecond::default();
        assert_eq!(p.room(7, 2), 2);
        p.take();
        p.take();
        assert_eq!(p.room(7, 2), 0);
        assert_eq!(p.room(8, 2), 2, "a new second");
        assert_eq!(p.room(8, 0), 0, "a limit of 0 takes nothing");
    }
}

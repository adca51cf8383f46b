//! Trace and span ids for spans Granular records itself (`GRANULAR_SAMPLE=violations`).
//!
//! A per-thread xorshift generator seeded from the clock, the thread id and a stack address:
//! ids only need to be unique and non-zero, not unpredictable (the OpenTelemetry SDK's own
//! generator is not cryptographic either), and this costs a few nanoseconds.

use std::cell::Cell;

thread_local! {
    static STATE: Cell<u64> = const { Cell::new(0) };
}

fn seed() -> u64 {
    let local = 0u8;
    let addr = &local as *const u8 as u64;
    let s = crate::clock::monotonic_ns()
        ^ (crate::recorder::current_tid() << 32)
        ^ addr.rotate_left(17);
    s | 1
}

/// A non-zero random 64-bit value.
pub(crate) fn next_u64() -> u64 {
    STATE
        .try_with(|st| {
            let mut x = st.get();
            if x == 0 {
                x = seed();
            }
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            st.set(x);
            x.wrapping_mul(0x2545_F491_4F6C_DD1D)
        })
        .unwrap_or_else(|_| seed())
        .max(1)
}

/// A new span id.
pub(crate) fn span_id() -> u64 {
    next_u64()
}

/// A new trace id.
pub(crate) fn trace_id() -> u128 {
    (u128::from(next_u64()) << 64) | u128::from(next_u64())
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_non_zero_and_distinct() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            let id = super::span_id();
            assert_ne!(id, 0);
            assert!(seen.insert(id));
        }
        assert_ne!(super::trace_id(), super::trace_id());
    }
}

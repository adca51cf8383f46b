//! What the current thread is doing right now: the task being polled and the stack of entered
//! spans. Sources read it to attribute spawns to the span and task that spawned them.

use std::cell::Cell;

const MAX_DEPTH: usize = 32;

thread_local! {
    static TASK: Cell<u64> = const { Cell::new(0) };
    static DEPTH: Cell<usize> = const { Cell::new(0) };
    static SPANS: [Cell<u64>; MAX_DEPTH] = const { [const { Cell::new(0) }; MAX_DEPTH] };
}

/// The tokio task being polled on this thread (0 = none, or unknown without tokio_unstable).
pub fn current_task() -> u64 {
    TASK.try_with(Cell::get).unwrap_or(0)
}

#[cfg_attr(not(tokio_unstable), allow(dead_code))]
pub(crate) fn set_current_task(task: u64) {
    let _ = TASK.try_with(|t| t.set(task));
}

/// The innermost span entered on this thread (0 = none).
pub fn current_span() -> u64 {
    let depth = DEPTH.try_with(Cell::get).unwrap_or(0);
    if depth == 0 {
        return 0;
    }
    SPANS
        .try_with(|s| s[(depth - 1).min(MAX_DEPTH - 1)].get())
        .unwrap_or(0)
}

pub(crate) fn push_span(key: u64) {
    let _ = DEPTH.try_with(|d| {
        let depth = d.get();
        if depth < MAX_DEPTH {
            let _ = SPANS.try_with(|s| s[depth].set(key));
        }
        // Deeper nesting keeps counting so exits stay balanced; the innermost recorded span
        // stands in for deeper ones.
        d.set(depth + 1);
    });
}

pub(crate) fn pop_span() {
    let _ = DEPTH.try_with(|d| d.set(d.get().saturating_sub(1)));
}

/// A tokio task id as an integer. `task::Id` has no accessor; its `Hash` writes the inner
/// `u64` with a single `write_u64`, which this hasher captures. A test pins that against the
/// id's `Display`.
pub fn task_id_u64(id: tokio::task::Id) -> u64 {
    use std::hash::{Hash, Hasher};
    #[derive(Default)]
    struct Capture(u64);
    impl Hasher for Capture {
        fn finish(&self) -> u64 {
            self.0
        }
        fn write(&mut self, bytes: &[u8]) {
            for b in bytes {
                self.0 = (self.0 << 8) | u64::from(*b);
            }
        }
        fn write_u64(&mut self, v: u64) {
            self.0 = v;
        }
    }
    let mut h = Capture::default();
    id.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn task_ids_map_to_their_displayed_number() {
        let handle = tokio::spawn(async { tokio::task::id() });
        let id = handle.await.unwrap();
        assert_eq!(task_id_u64(id).to_string(), id.to_string());
    }

    #[test]
    fn span_stack_tracks_the_innermost_span() {
        assert_eq!(current_span(), 0);
        push_span(5);
        push_span(9);
        assert_eq!(current_span(), 9);
        pop_span();
        assert_eq!(current_span(), 5);
        pop_span();
        assert_eq!(current_span(), 0);
    }
}

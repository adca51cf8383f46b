//! What the current thread is doing right now: the task being polled and the stack of entered
//! spans. Sources read it to attribute spawns to the span and task that spawned them.

use std::cell::Cell;

/// Entries kept per thread; deeper nesting is counted but not kept (see [`push`]).
const MAX_DEPTH: usize = 64;

/// The spans entered on a thread, innermost last: their recorder keys and, for
/// [`GranularSubscriber`](super::subscriber::GranularSubscriber), their `tracing` ids. Const
/// and without a destructor, so every access is a plain thread-local load (a `RefCell<Vec>`
/// of ids beside a stack of keys cost a lazy-initialisation check per enter and exit).
struct Entered {
    depth: Cell<usize>,
    keys: [Cell<u64>; MAX_DEPTH],
    ids: [Cell<u64>; MAX_DEPTH],
}

thread_local! {
    static TASK: Cell<u64> = const { Cell::new(0) };
    static ENTERED: Entered = const {
        Entered {
            depth: Cell::new(0),
            keys: [const { Cell::new(0) }; MAX_DEPTH],
            ids: [const { Cell::new(0) }; MAX_DEPTH],
        }
    };
}

/// The tokio task being polled on this thread (0 = none, or unknown without tokio_unstable).
#[cfg_attr(not(tokio_unstable), allow(dead_code))]
pub(crate) fn current_task() -> u64 {
    TASK.try_with(Cell::get).unwrap_or(0)
}

#[cfg_attr(not(tokio_unstable), allow(dead_code))]
pub(crate) fn set_current_task(task: u64) {
    let _ = TASK.try_with(|t| t.set(task));
}

/// The recorder key of the innermost span entered on this thread (0 = none).
pub(crate) fn current_span() -> u64 {
    innermost(|e, i| e.keys[i].get()).unwrap_or(0)
}

/// The `tracing` id of the innermost span entered on this thread, as [`push`] was given it.
pub(crate) fn current_id() -> Option<u64> {
    innermost(|e, i| e.ids[i].get()).filter(|id| *id != 0)
}

fn innermost(f: impl FnOnce(&Entered, usize) -> u64) -> Option<u64> {
    ENTERED
        .try_with(|e| match e.depth.get() {
            0 => None,
            depth => Some(f(e, (depth - 1).min(MAX_DEPTH - 1))),
        })
        .ok()
        .flatten()
}

/// Notes the entry of the span `key` (`id`: its `tracing` id, or 0 where nobody asks for it).
/// Past [`MAX_DEPTH`] entries are counted, so exits stay balanced, but not kept: the
/// innermost kept span stands in for deeper ones.
pub(crate) fn push(id: u64, key: u64) {
    let _ = ENTERED.try_with(|e| {
        let depth = e.depth.get();
        if depth < MAX_DEPTH {
            e.keys[depth].set(key);
            e.ids[depth].set(id);
        }
        e.depth.set(depth + 1);
    });
}

/// Notes the exit of the innermost span.
pub(crate) fn pop() {
    let _ = ENTERED.try_with(|e| e.depth.set(e.depth.get().saturating_sub(1)));
}

/// Notes the exit of the span `id`, wherever it is on the stack (`tracing` allows exiting a
/// span that is not the innermost), and returns the key it was entered with; an id not kept
/// (nested too deep, or entered on another thread) exits the innermost and returns `None`.
pub(crate) fn pop_id(id: u64) -> Option<u64> {
    ENTERED
        .try_with(|e| {
            let depth = e.depth.get();
            if depth == 0 {
                return None;
            }
            let kept = depth.min(MAX_DEPTH);
            let at = (0..kept).rev().find(|&i| e.ids[i].get() == id);
            let key = at.map(|at| e.keys[at].get());
            if let Some(at) = at {
                for i in at..kept - 1 {
                    e.ids[i].set(e.ids[i + 1].get());
                    e.keys[i].set(e.keys[i + 1].get());
                }
            }
            e.depth.set(depth - 1);
            key
        })
        .ok()
        .flatten()
}

/// A tokio task id as an integer. `task::Id` has no accessor; its `Hash` writes the inner
/// `u64` with a single `write_u64`, which this hasher captures. A test pins that against the
/// id's `Display`.
pub(crate) fn task_id_u64(id: tokio::task::Id) -> u64 {
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
        push(0, 5);
        push(0, 9);
        assert_eq!(current_span(), 9);
        pop();
        assert_eq!(current_span(), 5);
        pop();
        assert_eq!(current_span(), 0);
    }

    #[test]
    fn a_span_exits_from_anywhere_on_the_stack() {
        push(1, 10);
        push(2, 20);
        push(3, 30);
        assert_eq!(pop_id(2), Some(20), "the key it was entered with");
        assert_eq!((current_id(), current_span()), (Some(3), 30));
        assert_eq!(pop_id(3), Some(30));
        assert_eq!((current_id(), current_span()), (Some(1), 10));
        assert_eq!(pop_id(7), None, "not entered here: the innermost exits");
        assert_eq!((current_id(), current_span()), (None, 0));
    }

    #[test]
    fn nesting_past_the_limit_stays_balanced() {
        for i in 1..=MAX_DEPTH as u64 + 3 {
            push(i, i * 10);
        }
        assert_eq!(current_id(), Some(MAX_DEPTH as u64), "the innermost kept");
        for i in (1..=MAX_DEPTH as u64 + 3).rev() {
            let kept = i <= MAX_DEPTH as u64;
            assert_eq!(pop_id(i), kept.then_some(i * 10), "span {i}");
        }
        assert_eq!(current_id(), None);
        assert_eq!(current_span(), 0);
    }
}

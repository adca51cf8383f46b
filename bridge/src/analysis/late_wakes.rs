//! Wake-ups the runtime delayed: the stretch before a resumption of the request's work during
//! which it was (or may have been) ready to run while tokio had not noticed. tokio's
//! wake-to-poll latency (`tokio_unstable`) starts at the wake, so it does not cover this.
//!
//! What tokio 1.54 does (`runtime/scheduler/multi_thread/worker.rs`, `park.rs`): timers and
//! I/O readiness are noticed only when a worker polls the driver. A worker with nothing to do
//! parks (`on_thread_park`). The first to park while the driver is free parks *on* it, and is
//! woken by the next timer or I/O event; a worker that parks while another holds the driver
//! sleeps on a condition variable and is woken only when notified (a task pushed from outside
//! the workers, a worker with surplus work), never by a timer or socket. A worker the driver
//! woke lets go of it and runs what it woke; the driver is polled again only when a worker
//! parks (and, every 61 scheduler ticks, in a busy worker's maintenance, which runs no hook).
//! A worker inside one long poll polls nothing. So a timer that expires while the driver's
//! last holder is busy and the other workers sleep on the condition variable fires only when
//! the busy worker parks again.
//!
//! Two rules recognise such a resumption from the workers' parks, in both builds:
//! - **every worker busy** ([`Late::AllBusy`]): the trailing stretch before the resumption
//!   during which no worker was parked (parks under [`MIN_PARK_NS`] ignored: a park that
//!   returns at once polled the driver and found work). Had the request been ready earlier, a
//!   parked worker would have been there to notice. Busy workers notice too, in their
//!   maintenance: so the stretch starts no earlier than the last [`notice_ticks`] scheduler
//!   ticks of every worker ([`noticed_within`]), when each made that many: 61 to the next
//!   maintenance, and one for each task the run queue may have held ahead (up to 256, fewer
//!   when the runtime's sampled task count says so: [`queue_ahead`]).
//! - **the driver unpolled** ([`Late::DriverUnpolled`]): the request resumes on a worker within
//!   [`RESUME_AFTER_TURN_NS`] of a park of that worker's that returned at once — its turn of
//!   the driver found the request ready — after a busy stretch. A worker that stayed parked
//!   meanwhile did not hold the driver: the request's timer or socket would have woken it when
//!   it became ready. Counted is the stretch since anything last could have polled the
//!   driver: the latest of the request's last work, the resuming worker's previous unpark, and
//!   every other worker's last park or unpark before the turn.
//!
//! Both are upper bounds: when the request became ready within the stretch is not recorded
//! (neither timer deadlines nor socket readiness are), so the whole stretch counts, and a
//! busy worker's maintenance, which no hook sees, may have polled the driver in it (the first
//! rule allows for that only through its tick bound: up to ~1,300 polls of every worker).
//!
//! What the second rule cannot tell: a timer or answer that became ready within
//! [`RESUME_AFTER_TURN_NS`] of the turn, while a parked worker did hold the driver, looks the
//! same (the two coincide rarely); a request the turning worker handed to another worker (its
//! turn woke several tasks, and another took this one) is not recognised; a wait behind
//! work on the same worker with no park in between (the request queued behind a long poll,
//! or woken by that poll itself) is not this rule's: `tokio_unstable` measures it, stable
//! builds count it as idle.

use super::decode::{Decoded, ThreadActivity};

/// Why a stretch before a resumption counts as scheduler wait though tokio did not measure it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Late {
    /// No worker was parked: none was free to notice the request.
    AllBusy,
    /// The request resumed right after `worker`'s turn of the driver, which it was the first
    /// to poll since its busy stretch began; the other workers slept without it.
    DriverUnpolled { worker: usize },
}

/// A stretch before a resumption of the request's work, counted as scheduler wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LateWake {
    pub start: u64,
    pub end: u64,
    pub why: Late,
}

/// A park shorter than this returned at once: the worker polled the driver and found work.
pub(crate) const MIN_PARK_NS: u64 = 500_000;

/// How soon after a turn of the driver the request's work must resume on that worker for the
/// turn to count as what noticed it: the unpark hook, the scheduler's bookkeeping and the
/// poll's start take tens of microseconds in a debug build; a millisecond leaves room for a
/// preempted worker and for another task woken by the same turn polled first.
pub(crate) const RESUME_AFTER_TURN_NS: u64 = 1_000_000;

/// Scheduler ticks between two of a busy worker's polls of the driver: tokio polls it in the
/// worker's maintenance every 61 ticks (`event_interval`).
const MAINTENANCE_TICKS: u64 = 61;

/// Tasks a worker's local run queue holds at most (tokio's `LOCAL_QUEUE_CAPACITY`).
const LOCAL_QUEUE: u64 = 256;

/// Scheduler ticks a busy worker runs between a task becoming ready and its poll, at most,
/// when that worker noticed it: its maintenance polls the driver within
/// [`MAINTENANCE_TICKS`] and pushes what it woke onto its local queue, where each of the
/// `queue` tasks ahead ([`queue_ahead`]) takes a tick before it. A task that became ready
/// earlier than a worker's last that many ticks would have been noticed by that worker's
/// maintenance and polled by now, unless another worker took it sooner.
fn notice_ticks(queue: u64) -> u64 {
    MAINTENANCE_TICKS + queue
}

/// Polls in one tick, at most: the task the tick took and up to three tasks it woke, run from
/// the LIFO slot without a tick of their own (tokio's `MAX_LIFO_POLLS_PER_TICK`).
const POLLS_PER_TICK: u64 = 4;

/// Outermost span entries in one poll, taken as one: a task's poll enters its `Instrumented`
/// span once (the decoder does not count the entry that drops the future, nor any entry of
/// the span whose outermost exit came just before it). A stable build counts ticks from
/// these. A poll that enters several sibling spans with none around them counts each: that
/// makes the bound too tight (see `docs/architecture.md`).
const ENTRIES_PER_POLL: u64 = 1;

/// One of the request's own intervals: a span entry or a poll of its task on a thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct OwnInterval {
    pub start: u64,
    pub end: u64,
    /// Index into [`Decoded::threads`].
    pub thread: usize,
}

/// Late stretches before each resumption of `own` (sorted by start) inside `[lo, hi]`, at most
/// one per rule.
pub(crate) fn late_wakes(d: &Decoded, own: &[OwnInterval], lo: u64, hi: u64) -> Vec<LateWake> {
    let workers: Vec<&ThreadActivity> = d.threads.iter().filter(|t| is_worker(t)).collect();
    if workers.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut covered_until = lo;
    for &OwnInterval {
        start: s,
        end: e,
        thread: ti,
    } in own
    {
        // Work resuming on a thread that is not a worker (a blocking-pool or plain thread)
        // did not wait for a worker: busy workers tell nothing about it.
        if s > covered_until && s <= hi && is_worker(&d.threads[ti]) {
            let queue = queue_ahead(d, covered_until, s);
            let from = all_busy_since(&workers, s)
                .into_iter()
                .chain(noticed_within(&workers, s, queue))
                .fold(covered_until, u64::max);
            if from < s {
                out.push(LateWake {
                    start: from,
                    end: s,
                    why: Late::AllBusy,
                });
            }
            if let Some(w) = driver_unpolled(d, covered_until, s, ti) {
                out.push(w);
            }
        }
        covered_until = covered_until.max(e);
    }
    out
}

/// Whether the thread is a tokio worker: its worker index was recorded when it started, or
/// it parked (only workers run the park hook).
fn is_worker(t: &ThreadActivity) -> bool {
    t.worker.is_some() || !t.parks.is_empty()
}

/// When the last long park before `s` ended, over all workers (at most `s`); `None` when no
/// worker parked at all (then the whole gap counts).
fn all_busy_since(workers: &[&ThreadActivity], s: u64) -> Option<u64> {
    workers
        .iter()
        .filter_map(|t| {
            // Parks are sorted and do not overlap: walk back from the last one that began
            // before `s` to the first long enough to count.
            let upto = t.parks.partition_point(|(a, _)| *a < s);
            t.parks[..upto]
                .iter()
                .rev()
                .find(|(a, b)| b - a >= MIN_PARK_NS)
                .map(|(_, b)| (*b).min(s))
        })
        .max()
}

/// The most tasks a worker's run queue can have held ahead of the request's task while it
/// waited in `[from, s]`: fewer than the runtime held (a queue holds a task once, and the
/// request's own is not ahead of itself), as its sampled task counts around the stretch say
/// (one at or before `from` and one at or after `s` are needed, and the largest between them
/// is taken); [`LOCAL_QUEUE`] where they do not cover it. Sampled every ~10 ms, not at every
/// spawn: a burst of tasks between two samples is missed.
fn queue_ahead(d: &Decoded, from: u64, s: u64) -> u64 {
    let a = &d.alive_tasks;
    let first = a.partition_point(|x| x.0 <= from);
    let last = a.partition_point(|x| x.0 < s);
    if first == 0 || last == a.len() {
        return LOCAL_QUEUE;
    }
    a[first - 1..=last]
        .iter()
        .map(|x| x.1.saturating_sub(1))
        .max()
        .map_or(LOCAL_QUEUE, |q| q.min(LOCAL_QUEUE))
}

/// The earliest of the workers' starts of their last [`notice_ticks`] ticks before `s`: had
/// the request been ready before it, every worker's maintenance would have had the chance to
/// notice it since. Ticks are counted from top-level polls where task hooks record them,
/// else from outermost span entries (polls outside any span are not seen, which only moves
/// the bound earlier). `None` when a worker made too few to tell (one long poll, a blocked
/// worker, a window too short): then nothing bounds the stretch.
fn noticed_within(workers: &[&ThreadActivity], s: u64, queue: u64) -> Option<u64> {
    workers
        .iter()
        .map(|t| {
            let polls = notice_ticks(queue) * POLLS_PER_TICK;
            if t.poll_starts.seen() > 0 {
                t.poll_starts.nth_last_before(s, polls)
            } else {
                t.outer_entries.nth_last_before(s, polls * ENTRIES_PER_POLL)
            }
        })
        .try_fold(u64::MAX, |earliest, start| Some(earliest.min(start?)))
}

/// The second rule for the resumption at `s` on thread `ti`, after the request's work last
/// ended at `gap_start`.
fn driver_unpolled(d: &Decoded, gap_start: u64, s: u64, ti: usize) -> Option<LateWake> {
    let t = &d.threads[ti];
    let worker = t.worker?;
    let upto = t.parks.partition_point(|&(a, _)| a <= s);
    let &(turn, turned) = t.parks[..upto].last()?;
    if turned > s || turned - turn >= MIN_PARK_NS || s - turned > RESUME_AFTER_TURN_NS {
        return None;
    }
    // The worker was busy since its previous park: any park may have polled the driver.
    let busy_since = upto
        .checked_sub(2)
        .map_or(0, |before| t.parks[before].1.min(turn));
    let mut from = gap_start.max(busy_since);
    for (i, o) in d.threads.iter().enumerate() {
        if i == ti || !is_worker(o) {
            continue;
        }
        // Its last park or unpark before the turn; one after it answers the turn (the
        // turning worker notifies another when it woke more than one task).
        let k = o.parks.partition_point(|&(a, _)| a < turn);
        if let Some(&(a, b)) = o.parks[..k].last() {
            from = from.max(if b < turn { b } else { a });
        }
    }
    // Parks lost to overwritten records would hide a worker's turn.
    let complete = d.complete_since.is_none_or(|c| c <= from);
    (complete && from < s).then_some(LateWake {
        start: from,
        end: s,
        why: Late::DriverUnpolled { worker },
    })
}

//! What the OS says a thread did over a time range: on a CPU, runnable and waiting for one, or
//! asleep.
//!
//! In: a thread's OS records in a [`Decoded`] — exact off-CPU intervals from perf context
//! switches where the thread has them, else its schedstat samples (cumulative on-CPU and
//! run-queue wait), interpolated — and a range. Out: how the range divides ([`split`]), or how
//! much of it the thread was busy ([`busy_in`]) or on a CPU ([`on_cpu_in`]). Where the records say nothing, nothing is
//! claimed: the time counts as running for the request's own work, and as not busy for work
//! no one names.

use super::decode::Decoded;

/// How a thread's time over a range divides, ns; the three sum to the range's length.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct OsSplit {
    /// On a CPU (or not known to be off one).
    pub running: u64,
    /// Runnable but not on a CPU: preempted, or waiting in the run queue.
    pub os_wait: u64,
    /// Off-CPU by its own doing: a blocking syscall, a lock, a sleep.
    pub blocked: u64,
}

/// How thread `tid`'s time over `[a, b]` divides: from perf context-switch intervals when the
/// thread has them, else interpolated from its schedstat samples. Time outside the sampled
/// range, or a range with no sample inside it, counts as running: without evidence of being
/// off-CPU none is claimed.
pub(crate) fn split(d: &Decoded, tid: u64, a: u64, b: u64) -> OsSplit {
    let wall = b - a;
    let running = OsSplit {
        running: wall,
        ..OsSplit::default()
    };
    if let Some(iv) = d.off_cpu.get(&tid) {
        // Exact intervals from perf: preempted → OS wait, voluntary → blocked.
        let off = off_cpu_in(iv, a, b);
        let os_wait = off.preempted.min(wall);
        let blocked = off.voluntary.min(wall - os_wait);
        return OsSplit {
            running: wall - os_wait - blocked,
            os_wait,
            blocked,
        };
    }
    let Some(s) = d.os_samples.get(&tid) else {
        return running;
    };
    if s.len() < 2 || !s.iter().any(|x| x.0 >= a && x.0 <= b) {
        return running;
    }
    let (ca, cb) = (a.max(s[0].0), b.min(s[s.len() - 1].0));
    if cb <= ca {
        return running;
    }
    let (c0, w0) = samples_at(s, ca);
    let (c1, w1) = samples_at(s, cb);
    let covered = cb - ca;
    let on_cpu = ((c1 - c0).max(0.0) as u64).min(covered);
    let off = covered - on_cpu;
    let os_wait = ((w1 - w0).max(0.0) as u64).min(off);
    OsSplit {
        running: wall - off,
        os_wait,
        blocked: off - os_wait,
    }
}

/// Time thread `tid` was busy in `[a, b]` — on CPU, or runnable and waiting for a CPU — ns,
/// where its OS records say so: with perf intervals, the time after its first recorded
/// interval that no voluntary off-CPU interval covers; with schedstat samples, the growth of
/// its CPU and run-queue counters between the samples around `[a, b]` (interpolated, within
/// the sampled range). Without either: 0, nothing is claimed.
pub(crate) fn busy_in(d: &Decoded, tid: u64, a: u64, b: u64) -> u64 {
    occupied(d, tid, a, b, true).unwrap_or(0)
}

/// Time thread `tid` was on a CPU in `[a, b]`, ns, as [`busy_in`] reads the same records but
/// without the time it was runnable and waiting; `None` where its OS records do not cover the
/// range (no perf interval before `b`, fewer than two schedstat samples, or none around it).
pub(crate) fn on_cpu_in(d: &Decoded, tid: u64, a: u64, b: u64) -> Option<u64> {
    occupied(d, tid, a, b, false)
}

/// [`busy_in`] (`runnable` counted) or [`on_cpu_in`] (not), `None` where nothing is known.
fn occupied(d: &Decoded, tid: u64, a: u64, b: u64, runnable: bool) -> Option<u64> {
    if let Some(iv) = d.off_cpu.get(&tid) {
        let &(known, _, _) = iv.first()?;
        let (a, b) = (a.max(known), b.min(d.taken_at.max(known)));
        if b <= a {
            return None;
        }
        let off = off_cpu_in(iv, a, b);
        let waiting = if runnable { 0 } else { off.preempted };
        return Some((b - a).saturating_sub(off.voluntary + waiting));
    }
    let s = d.os_samples.get(&tid).filter(|s| s.len() >= 2)?;
    let (a, b) = (a.max(s[0].0), b.min(s[s.len() - 1].0));
    if b <= a {
        return None;
    }
    let ((cpu0, wait0), (cpu1, wait1)) = (samples_at(s, a), samples_at(s, b));
    let waiting = if runnable { wait1 - wait0 } else { 0.0 };
    Some((((cpu1 - cpu0) + waiting).max(0.0) as u64).min(b - a))
}

/// Off-CPU time inside a range, by why the thread left the CPU, ns.
struct OffCpu {
    preempted: u64,
    voluntary: u64,
}

/// The off-CPU time of a thread's perf intervals `iv` (start, end, preempted) inside `[a, b]`.
/// They are sorted by start, and a thread is off-CPU in one interval at a time, so their ends
/// are sorted too: two binary searches find the ones that overlap.
fn off_cpu_in(iv: &[(u64, u64, bool)], a: u64, b: u64) -> OffCpu {
    let from = iv.partition_point(|x| x.1 < a);
    let to = iv.partition_point(|x| x.0 <= b);
    let mut off = OffCpu {
        preempted: 0,
        voluntary: 0,
    };
    for &(x, y, preempted) in &iv[from..to.max(from)] {
        let ov = b.min(y).saturating_sub(a.max(x));
        if preempted {
            off.preempted += ov;
        } else {
            off.voluntary += ov;
        }
    }
    off
}

/// A thread's cumulative (on-CPU, run-queue wait) ns at `t`, interpolated between the two
/// schedstat samples around it (`s` sorted by time, at least two).
fn samples_at(s: &[(u64, u64, u64)], t: u64) -> (f64, f64) {
    let i = s.partition_point(|x| x.0 <= t).clamp(1, s.len() - 1);
    let (p, q) = (s[i - 1], s[i]);
    let f = if q.0 > p.0 {
        (t.saturating_sub(p.0)) as f64 / (q.0 - p.0) as f64
    } else {
        0.0
    };
    let f = f.clamp(0.0, 1.0);
    (
        p.1 as f64 + f * (q.1 as f64 - p.1 as f64),
        p.2 as f64 + f * (q.2 as f64 - p.2 as f64),
    )
}

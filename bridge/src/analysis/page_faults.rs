//! A request's page faults: Rust's answer to "how much did memory cost", beside its
//! allocations. A first touch of a freshly allocated page is a minor fault (the kernel maps a
//! zeroed page, ~2–3 µs here); a fault on file-backed memory that waits for the disk is a major
//! one (its I/O time shows as blocked time, `page_fault` in `granular.blocked.syscall`).
//!
//! In: the thread's cumulative fault counts the wait sampler read while it was inside a
//! request's work ([`Decoded::page_faults`]), and the request's own intervals. Out: the faults
//! in the union of its intervals on each thread, interpolated between readings (resolution:
//! the sampler's look, 10 ms), and an estimate of the time the minor ones took.

use super::breakdown::PageFaults;
use super::decode::{Decoded, FaultReading};
use super::os_time;
use super::ranges::merge;

/// A thread's cumulative (minor, major) faults at `t`, from its readings `r` (sorted, at least
/// two). Faults are taken by code on a CPU, mostly the application's, so between the two
/// readings around `t` they are spread by `weight(a, b)`: the thread's on-CPU time inside
/// recorded work (polls, span entries) in `[a, b]`, `None` where its OS records do not cover
/// the range. A worker that ran the request's poll and then parked, was preempted, or ran the
/// scheduler between polls took its faults in the poll. Where nothing is known, by wall time,
/// except across a change between inside and outside work, where every fault between them is
/// put on the inside side (the readings come ~10 ms apart, and a thread outside work is most
/// often parked).
fn count_at(r: &[FaultReading], t: u64, weight: &impl Fn(u64, u64) -> Option<u64>) -> (f64, f64) {
    let i = r.partition_point(|x| x.at <= t).clamp(1, r.len() - 1);
    let (p, q) = (r[i - 1], r[i]);
    let t = t.clamp(p.at, q.at);
    let f = match weight(p.at, q.at) {
        Some(all) if all > 0 => weight(p.at, t).unwrap_or(0) as f64 / all as f64,
        _ => match (p.inside, q.inside) {
            (false, true) => 0.0,
            (true, false) => 1.0,
            _ if q.at > p.at => (t - p.at) as f64 / (q.at - p.at) as f64,
            _ => 1.0,
        },
    }
    .clamp(0.0, 1.0);
    (
        p.minor as f64 + f * q.minor.saturating_sub(p.minor) as f64,
        p.major as f64 + f * q.major.saturating_sub(p.major) as f64,
    )
}

/// The faults a thread took over `[a, b]`; `None` without readings on both sides.
fn faults_in(
    r: &[FaultReading],
    a: u64,
    b: u64,
    weight: &impl Fn(u64, u64) -> Option<u64>,
) -> Option<(u64, u64)> {
    let (first, last) = (r.first()?, r.last()?);
    let (a, b) = (a.max(first.at), b.min(last.at));
    if b <= a || r.len() < 2 {
        return None;
    }
    let ((m0, j0), (m1, j1)) = (count_at(r, a, weight), count_at(r, b, weight));
    Some((
        (m1 - m0).max(0.0).round() as u64,
        (j1 - j0).max(0.0).round() as u64,
    ))
}

/// The page faults in `own` (thread id, start, end) intervals, each counted once however they
/// nest; `None` where no thread of them has readings around its intervals. `fault_ns` is what
/// one minor fault costs on this machine (measured by the sampler thread as it starts), for
/// the estimate, which never exceeds the time the intervals' threads were on a CPU in them.
pub(crate) fn page_faults(
    d: &Decoded,
    own: &[(u64, u64, u64)],
    fault_ns: Option<u64>,
) -> Option<PageFaults> {
    let mut tids: Vec<u64> = own.iter().map(|o| o.0).collect();
    tids.sort_unstable();
    tids.dedup();
    let mut total: Option<PageFaults> = None;
    let mut on_cpu = 0u64;
    for tid in tids {
        let Some(readings) = d.page_faults.get(&tid).filter(|r| r.len() >= 2) else {
            continue;
        };
        let stretches = merge(
            own.iter()
                .filter(|o| o.0 == tid)
                .map(|o| (o.1, o.2))
                .collect(),
        );
        let cpu = |x: u64, y: u64| os_time::on_cpu_in(d, tid, x, y);
        let work = WorkCpu::new(work_around(d, tid, readings, &stretches), &cpu);
        let weight = |x: u64, y: u64| {
            cpu(x, y)?;
            Some(work.inside(x, y, &cpu))
        };
        for (a, b) in stretches {
            if let Some((minor, major)) = faults_in(readings, a, b, &weight) {
                let t = total.get_or_insert_with(PageFaults::default);
                t.minor += minor;
                t.major += major;
                on_cpu += cpu(a, b).unwrap_or(b - a);
            }
        }
    }
    total.map(|t| PageFaults {
        est_ns: fault_ns.map(|ns| (ns * t.minor).min(on_cpu)),
        ..t
    })
}

/// A thread's recorded work (sorted, disjoint) and its on-CPU time summed along it: the
/// on-CPU time of the work inside a range costs two binary searches and two reads of the OS
/// records, not one read per piece of work (thousands of them around a request on a
/// saturated worker, for each of its stretches).
struct WorkCpu {
    work: Vec<(u64, u64)>,
    /// `before[i]`: the on-CPU time of `work[..i]`.
    before: Vec<u64>,
}

impl WorkCpu {
    fn new(work: Vec<(u64, u64)>, cpu: &impl Fn(u64, u64) -> Option<u64>) -> Self {
        let mut sum = 0;
        let mut before = Vec::with_capacity(work.len() + 1);
        before.push(0);
        for &(a, b) in &work {
            sum += cpu(a, b).unwrap_or(0);
            before.push(sum);
        }
        WorkCpu { work, before }
    }

    /// The on-CPU time (`cpu`) of the work inside `[x, y]`.
    fn inside(&self, x: u64, y: u64, cpu: &impl Fn(u64, u64) -> Option<u64>) -> u64 {
        let from = self.work.partition_point(|w| w.1 <= x);
        let to = self.work.partition_point(|w| w.0 < y);
        if from >= to {
            return 0;
        }
        let part = |(a, b): (u64, u64)| cpu(a.max(x), b.min(y)).unwrap_or(0);
        let first = part(self.work[from]);
        if to - from == 1 {
            return first;
        }
        first + (self.before[to - 1] - self.before[from + 1]) + part(self.work[to - 1])
    }
}

/// Thread `tid`'s recorded work (its polls and span entries, merged) between the readings
/// around `stretches`.
fn work_around(
    d: &Decoded,
    tid: u64,
    r: &[FaultReading],
    stretches: &[(u64, u64)],
) -> Vec<(u64, u64)> {
    let (Some(first), Some(last)) = (stretches.first(), stretches.last()) else {
        return Vec::new();
    };
    let before = r.partition_point(|x| x.at <= first.0).saturating_sub(1);
    let after = r.partition_point(|x| x.at < last.1).min(r.len() - 1);
    let (lo, hi) = (r[before].at.min(first.0), r[after].at.max(last.1));
    let Some(t) = d.threads.iter().find(|t| t.tid == tid) else {
        return Vec::new();
    };
    merge(
        t.polls_overlapping(lo, hi)
            .iter()
            .map(|p| (p.start, p.end))
            .chain(t.entries_overlapping(lo, hi).map(|e| (e.start, e.end)))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::fixtures::{decoded, poll, thread};

    const MS: u64 = 1_000_000;

    /// A reading at `at_ms` of a thread inside work that had taken `minor` faults.
    fn inside_reading(at_ms: u64, minor: u64) -> FaultReading {
        FaultReading {
            at: at_ms * MS,
            minor,
            major: 0,
            inside: true,
        }
    }

    /// The summed form gives what reading each piece of work inside the range gives.
    #[test]
    fn work_cpu_inside_a_range_is_the_sum_over_its_pieces() {
        // On a CPU two thirds of every microsecond, as a sampled thread might read.
        let cpu = |x: u64, y: u64| (x <= y).then(|| (y - x) * 2 / 3);
        let work: Vec<(u64, u64)> = (0..50).map(|i| (i * 1_000, i * 1_000 + 600)).collect();
        let summed = WorkCpu::new(work.clone(), &cpu);
        for (x, y) in [
            (0, 50_000),
            (300, 300),
            (300, 4_500),
            (650, 900),
            (2_100, 2_400),
            (49_000, 60_000),
        ] {
            let each: u64 = work
                .iter()
                .filter(|w| w.0 < y && w.1 > x)
                .map(|w| cpu(w.0.max(x), w.1.min(y)).unwrap_or(0))
                .sum();
            assert_eq!(summed.inside(x, y, &cpu), each, "[{x}, {y}]");
        }
    }

    #[test]
    fn faults_are_counted_once_over_nested_intervals_and_interpolated() {
        let mut d = decoded(Vec::new());
        // 1,000 minor faults between 10 and 20 ms, 2 major ones between 20 and 30 ms.
        let reading = |at_ms: u64, minor, major, inside| FaultReading {
            at: at_ms * MS,
            minor,
            major,
            inside,
        };
        d.page_faults.insert(
            7,
            vec![
                reading(0, 100, 0, true),
                reading(10, 100, 0, true),
                reading(20, 1_100, 0, true),
                reading(30, 1_100, 2, true),
            ],
        );
        let own = [(7, 5 * MS, 25 * MS), (7, 8 * MS, 15 * MS), (9, 0, 30 * MS)];
        let f = page_faults(&d, &own, Some(2_500)).expect("observed");
        assert_eq!(
            (f.minor, f.major),
            (1_000, 1),
            "the outer interval once; half the majors"
        );
        assert_eq!(f.est_ns, Some(2_500_000));
        let half = page_faults(&d, &[(7, 15 * MS, 20 * MS)], None).unwrap();
        assert_eq!((half.minor, half.est_ns), (500, None));
        assert_eq!(
            page_faults(&d, &[(9, 0, 30 * MS)], None),
            None,
            "no readings"
        );
        assert_eq!(
            page_faults(&d, &[(7, 40 * MS, 50 * MS)], None),
            None,
            "after them"
        );

        // Work that began between a reading outside it and the first inside: every fault
        // between them is the work's, not spread over the idle time before.
        d.page_faults.insert(
            8,
            vec![
                reading(0, 100, 0, false),
                reading(1_000, 900, 0, true),
                reading(1_010, 1_000, 0, false),
            ],
        );
        let f = page_faults(&d, &[(8, 995 * MS, 1_005 * MS)], None).unwrap();
        assert_eq!(
            f.minor, 900,
            "the 800 before the first inside reading and the 100 after"
        );
    }

    /// A worker ran the request's poll for the first 10 ms between two readings, then slept:
    /// every fault between the readings is the poll's, not half of them.
    #[test]
    fn faults_follow_the_threads_busy_time_between_readings() {
        let mut d = decoded(vec![thread(
            7,
            Some(0),
            vec![poll(1, 0, 10 * MS)],
            vec![],
            vec![],
        )]);
        d.taken_at = 100 * MS;
        d.off_cpu
            .insert(7, vec![(0, 0, false), (10 * MS, 20 * MS, false)]);
        d.page_faults
            .insert(7, vec![inside_reading(0, 0), inside_reading(20, 1_000)]);
        let poll = page_faults(&d, &[(7, 0, 10 * MS)], None).unwrap();
        assert_eq!(poll.minor, 1_000);
        let asleep = page_faults(&d, &[(7, 10 * MS, 20 * MS)], None).unwrap();
        assert_eq!(asleep.minor, 0);
    }

    /// Between two polls the worker was preempted (a busy machine) and then ran the scheduler:
    /// the faults are the polls', none are put in the time it waited for a CPU or ran outside
    /// any work; and the time estimate never exceeds the time on a CPU.
    #[test]
    fn faults_follow_on_cpu_time_inside_work() {
        let polls = vec![poll(1, 0, 10 * MS), poll(1, 20 * MS, 30 * MS)];
        let mut d = decoded(vec![thread(7, Some(0), polls, vec![], vec![])]);
        d.taken_at = 100 * MS;
        d.off_cpu
            .insert(7, vec![(0, 0, false), (10 * MS, 15 * MS, true)]);
        d.page_faults
            .insert(7, vec![inside_reading(0, 0), inside_reading(30, 1_000)]);
        let polls = [(7, 0, 10 * MS), (7, 20 * MS, 30 * MS)];
        let f = page_faults(&d, &polls, Some(50_000)).unwrap();
        assert_eq!(f.minor, 1_000);
        assert_eq!(
            f.est_ns,
            Some(20 * MS),
            "1,000 faults at 50 µs would be 50 ms, more than the 20 ms on a CPU"
        );
        let between = page_faults(&d, &[(7, 10 * MS, 20 * MS)], None).unwrap();
        assert_eq!(between.minor, 0);
    }
}

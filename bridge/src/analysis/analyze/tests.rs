//! The analysis of hand-built snapshots: each test names the bug or the rule it pins.

use super::*;
use crate::analysis::breakdown::{Allocations, NoCulprit};
use crate::analysis::decode::{Entry, Job, Poll, ThreadActivity};
use crate::analysis::fixtures;

const MS: u64 = 1_000_000;
/// The root span: key 1, OTel id 101; its child: key 2, OTel id 102.
const ROOT: u64 = 1;
const CHILD: u64 = 2;

/// Counters at an interval's (start, end): (allocations, bytes).
type Counters = ((u64, u64), (u64, u64));

/// The request's root and child on `threads`, every allocation counted and every thread's CPU
/// observed, taken at 100 ms.
fn decoded(threads: Vec<ThreadActivity>) -> Decoded {
    let mut d = fixtures::decoded(threads);
    d.by_otel_id = [(101, ROOT), (102, CHILD)].into_iter().collect();
    d.children = [(ROOT, vec![CHILD])].into_iter().collect();
    d.alloc_counted = true;
    d.threads_observed = true;
    d.taken_at = 100 * MS;
    d
}

/// Worker `tid` (index `tid`), with no polls.
fn worker(tid: u64, entries: Vec<Entry>, parks: Vec<(u64, u64)>) -> ThreadActivity {
    fixtures::thread(tid, Some(tid as usize), Vec::new(), entries, parks)
}

fn entry(span: u64, from_ms: u64, to_ms: u64, alloc: Option<Counters>) -> Entry {
    Entry {
        alloc,
        ..fixtures::entry(span, from_ms * MS, to_ms * MS)
    }
}

fn target(otel_span_id: u64, from_ms: u64, to_ms: u64) -> Target {
    Target {
        otel_span_id,
        name: "GET /test".into(),
        start: from_ms * MS,
        end: to_ms * MS,
    }
}

fn alloc(b: &Breakdown) -> (u64, u64) {
    let a = b.alloc.expect("allocations counted");
    (a.count, a.bytes)
}

/// Issue #17, item 3: a root whose child allocated reported twice the child's figure.
/// The child's entries nest inside the root's; another request's entry sits between
/// them on the same thread; the child also ran on a second thread.
#[test]
fn nested_spans_count_each_allocation_once() {
    let t0 = worker(
        0,
        vec![
            entry(ROOT, 0, 10, Some(((0, 0), (100, 100_000)))),
            entry(CHILD, 2, 8, Some(((10, 1_000), (90, 91_000)))),
            entry(9, 12, 18, Some(((100, 100_000), (150, 200_000)))),
            entry(ROOT, 20, 30, Some(((150, 200_000), (250, 500_000)))),
            entry(CHILD, 21, 29, Some(((160, 210_000), (240, 390_000)))),
        ],
        vec![],
    );
    let t1 = worker(
        1,
        vec![entry(CHILD, 40, 45, Some(((0, 0), (5, 5_000))))],
        vec![],
    );
    let d = decoded(vec![t0, t1]);
    let root = analyze(&d, &target(101, 0, 50));
    let child = analyze(&d, &target(102, 2, 45));
    assert_eq!(alloc(&child), (80 + 80 + 5, 90_000 + 180_000 + 5_000));
    assert_eq!(
        alloc(&root),
        (100 + 100 + 5, 100_000 + 300_000 + 5_000),
        "the root counts its child once and the other request's entry not at all"
    );
    assert!(
        root.verdict
            .contains("allocated 395.5 KiB in 205 allocations"),
        "{}",
        root.verdict
    );
}

/// With task hooks, the request's task's polls are its intervals too: an entry inside one
/// adds nothing to the poll's figure.
#[test]
fn entries_inside_the_requests_polls_count_once() {
    let mut t0 = worker(
        0,
        vec![entry(CHILD, 1, 9, Some(((1, 1_000), (9, 9_000))))],
        vec![],
    );
    t0.polls.push(Poll {
        alloc: Some(((0, 0), (10, 10_000))),
        ..fixtures::poll(50, 0, 10 * MS)
    });
    let mut d = decoded(vec![t0]);
    d.spawned_in_span.insert(ROOT, vec![50]);
    assert_eq!(alloc(&analyze(&d, &target(101, 0, 20))), (10, 10_000));
    assert_eq!(alloc(&analyze(&d, &target(102, 1, 9))), (8, 8_000));
}

/// Issue #17, item 4: attributes that were not observed are absent, not 0.
#[test]
fn what_was_not_observed_is_absent() {
    let t0 = worker(0, vec![entry(ROOT, 0, 10, None)], vec![]);
    let mut d = decoded(vec![t0]);
    d.alloc_counted = false;
    let b = analyze(&d, &target(101, 0, 10));
    assert_eq!(b.alloc, None, "no granular::Alloc: no figure");
    assert_eq!(
        b.polls.is_some(),
        TASK_HOOKS,
        "polls are seen with task hooks only"
    );
    d.light = true;
    assert_eq!(
        analyze(&d, &target(101, 0, 10)).polls,
        None,
        "a light decode has none"
    );
    d.alloc_counted = true;
    let b = analyze(&d, &target(101, 0, 10));
    assert_eq!(
        b.alloc,
        Some(Allocations::default()),
        "counted, and none made"
    );
}

/// A request that awaited something for 98 ms while the parts of the window it did not
/// run in are laid out by `busy`: worker 0's unparked stretches outside any span.
fn awaiting(busy: &[(u64, u64)]) -> Decoded {
    let mut parks = Vec::new();
    let mut at = 1;
    for &(a, b) in busy {
        parks.push((at * MS, a * MS));
        at = b;
    }
    parks.push((at * MS, 99 * MS));
    let t0 = worker(
        0,
        vec![entry(ROOT, 0, 1, None), entry(ROOT, 99, 100, None)],
        parks,
    );
    let t1 = worker(1, vec![], vec![(0, 100 * MS)]);
    decoded(vec![t0, t1])
}

#[test]
fn a_quiet_wait_is_idle_with_no_runtime_trouble() {
    let b = analyze(&awaiting(&[]), &target(101, 0, 100));
    assert_eq!(b.dominant, Category::Idle);
    assert_eq!(b.unattributed.workers_ns, Some(0));
    assert_eq!(b.unattributed.pool_busy_ns, Some(0));
    assert!(b.verdict.ends_with("no runtime trouble"), "{}", b.verdict);
}

/// Issue #17, item 4: CPU work in a spawned child task without a span read "idle ...; no
/// runtime trouble" in a stable build.
#[test]
fn a_worker_busy_outside_spans_is_named_in_an_idle_verdict() {
    let b = analyze(&awaiting(&[(30, 90)]), &target(101, 0, 100));
    assert_eq!(b.dominant, Category::Idle);
    assert_eq!(b.unattributed.workers_ns, Some(60 * MS));
    assert!(
        b.verdict
            .contains("the workers were busy 60 ms outside any span")
            && b.verdict.contains("which may be this request's")
            && !b.verdict.contains("no runtime trouble"),
        "{}",
        b.verdict
    );
    assert_eq!(
        b.verdict.contains("--cfg tokio_unstable"),
        !TASK_HOOKS,
        "the remedy where it applies: {}",
        b.verdict
    );
    let event = b
        .intervals
        .iter()
        .find(|i| i.detail.starts_with("worker 0"))
        .expect("a span event where it happened");
    assert_eq!((event.start, event.end), (30 * MS, 90 * MS));
}

/// A light decode keeps no other request's spans, so busy workers cannot be told apart
/// from other requests: the verdict says it did not check, rather than "no runtime trouble".
#[test]
fn a_light_analysis_does_not_claim_a_quiet_runtime() {
    let mut d = awaiting(&[(30, 90)]);
    d.light = true;
    let b = analyze(&d, &target(101, 0, 100));
    assert_eq!(b.unattributed.workers_ns, None);
    assert!(
        b.verdict
            .contains("as far as this analysis sees (work outside spans not checked)")
            && !b.verdict.contains("no runtime trouble"),
        "{}",
        b.verdict
    );
}

/// A little unattributed work during a long wait is mentioned, not made the story; the
/// verdict no longer claims a quiet runtime.
#[test]
fn a_little_unattributed_work_is_added_to_an_idle_verdict() {
    let b = analyze(&awaiting(&[(50, 53)]), &target(101, 0, 100));
    assert!(
        b.verdict.contains(
            "awaiting I/O, timers or downstream calls; meanwhile the workers were busy \
             3.0 ms outside any span"
        ) && b.verdict.contains("which may be this request's")
            && !b.verdict.contains("--cfg tokio_unstable")
            && !b.verdict.contains("no runtime trouble"),
        "{}",
        b.verdict
    );
}

/// Short stretches between spans (a server's connection handling) are not news.
#[test]
fn a_workers_bookkeeping_is_not_counted() {
    let mut d = awaiting(&[]);
    d.threads[0].parks[0].1 -= MS * 9 / 10; // 0.9 ms busy before the request resumes
    let b = analyze(&d, &target(101, 0, 100));
    assert_eq!(b.unattributed.workers_ns, Some(0));
    assert!(b.verdict.ends_with("no runtime trouble"), "{}", b.verdict);
}

/// Issue #17, item 4: `tokio::task::spawn_blocking` work read "idle 30 ms of 30 ms ...; no
/// runtime trouble" in either build. Its pool thread's busy time is seen, from schedstat
/// samples or from perf context switches.
#[test]
fn blocking_pool_work_no_job_names_is_named() {
    let pool = 77;
    let mut sampled = awaiting(&[]);
    sampled.os_samples.insert(
        pool,
        vec![
            (0, 0, 0),
            (10 * MS, 0, 0),
            (40 * MS, 25 * MS, 5 * MS),
            (70 * MS, 50 * MS, 10 * MS),
            (100 * MS, 50 * MS, 10 * MS),
        ],
    );
    let mut switched = awaiting(&[]);
    // Registered at 10 ms (on CPU from there), preempted for 10 ms (busy still: runnable),
    // asleep from 70 ms until the snapshot.
    switched.off_cpu.insert(
        pool,
        vec![
            (10 * MS, 10 * MS, false),
            (20 * MS, 30 * MS, true),
            (70 * MS, 100 * MS, false),
        ],
    );
    for d in [&sampled, &switched] {
        let b = analyze(d, &target(101, 0, 100));
        assert_eq!(b.unattributed.pool_busy_ns, Some(60 * MS));
        assert!(
            b.verdict.contains(
                "by what this build sees: meanwhile the blocking pool was busy 60 ms with \
                 work no span or granular::spawn_blocking job names"
            ) && b.verdict.contains("use granular::spawn_blocking")
                && !b.verdict.contains("no runtime trouble"),
            "{}",
            b.verdict
        );
    }
    // A thread known only since 40 ms: nothing before is claimed.
    let mut late = awaiting(&[]);
    late.off_cpu.insert(pool, vec![(40 * MS, 100 * MS, false)]);
    assert_eq!(
        analyze(&late, &target(101, 0, 100))
            .unattributed
            .pool_busy_ns,
        Some(0)
    );
    let mut unobserved = awaiting(&[]);
    unobserved.threads_observed = false;
    let b = analyze(&unobserved, &target(101, 0, 100));
    assert_eq!(b.unattributed.pool_busy_ns, None);
    assert!(
        b.verdict.contains("blocking-pool threads not observed")
            && !b.verdict.contains("no runtime trouble"),
        "{}",
        b.verdict
    );
}

/// Issue #17, item 4: pool work reached through a spawned task without a span, even with
/// `granular::spawn_blocking`. Stable builds see the job but not whose it is; with task
/// hooks its task leads to its request (here: not this one).
#[test]
fn a_job_queued_outside_any_span_is_named_where_its_request_is_unknown() {
    let mut d = awaiting(&[]);
    d.jobs.insert(
        5,
        Job {
            task: 60,
            queued: 10 * MS,
            started: Some(10 * MS),
            ended: Some(40 * MS),
            tid: 77,
            ..Job::default()
        },
    );
    d.os_samples
        .insert(77, vec![(0, 0, 0), (10 * MS, 0, 0), (40 * MS, 30 * MS, 0)]);
    let b = analyze(&d, &target(101, 0, 100));
    assert_eq!(
        b.unattributed.pool_busy_ns,
        Some(0),
        "the job's time is the job's"
    );
    if TASK_HOOKS {
        assert_eq!(b.unattributed.pool_jobs_ns, 0);
        assert!(b.verdict.ends_with("no runtime trouble"), "{}", b.verdict);
    } else {
        assert_eq!(b.unattributed.pool_jobs_ns, 30 * MS);
        assert!(
            b.verdict
                .contains("granular::spawn_blocking jobs queued outside any span ran 30 ms"),
            "{}",
            b.verdict
        );
    }
}

/// Issue #17, item 4: a scheduler wait without a culprit named nothing and did not say
/// why. Here no worker parked while the request waited, and nothing the worker ran had a
/// span.
#[test]
fn a_scheduler_wait_without_a_culprit_says_why() {
    let t0 = worker(
        0,
        vec![entry(ROOT, 0, 1, None), entry(ROOT, 99, 100, None)],
        vec![],
    );
    let d = decoded(vec![t0]);
    let b = analyze(&d, &target(101, 0, 100));
    assert_eq!(b.dominant, Category::SchedulerWait);
    assert!(b.culprits.is_empty());
    assert_eq!(b.no_culprit, Some(NoCulprit::UnnamedWork(98 * MS)));
    assert!(
        b.verdict
            .contains("no culprit named: the workers were busy 98 ms with work no span"),
        "{}",
        b.verdict
    );
    let b = analyze_with(&d, &target(101, 0, 100), true);
    assert_eq!(b.no_culprit, Some(NoCulprit::Light));
    assert!(
        b.verdict.contains("no culprit named: light analysis"),
        "{}",
        b.verdict
    );
}

const US: u64 = 1_000;
/// Another request's root span: key 9, on another trace.
const OTHER: u64 = 9;
const OTHER_TRACE: u128 = 0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736;

fn at_us(span: u64, from_us: u64, to_us: u64) -> Entry {
    fixtures::entry(span, from_us * US, to_us * US)
}

fn poll_us(task: u64, from_us: u64, to_us: u64) -> Poll {
    fixtures::poll(task, from_us * US, to_us * US)
}

/// Parks in µs.
fn parks_us(p: &[(u64, u64)]) -> Vec<(u64, u64)> {
    p.iter().map(|&(a, b)| (a * US, b * US)).collect()
}

/// A request (root key 1) whose 1 ms timer is due while worker 1 runs another request's
/// 60 ms poll (worker 1 had the driver and woke for that request). Worker 0 sleeps
/// without the driver throughout, so nothing notices the timer until worker 1 parks at
/// 61.9 ms: that turn of the driver finds the request ready at once and worker 1 polls
/// it at 62 ms. `worker0` lays out worker 0's parks, `park` worker 1's after its busy
/// stretch and `resume` when the request's work resumes on worker 1 (µs).
fn late_timer(worker0: &[(u64, u64)], park: (u64, u64), resume: u64) -> Decoded {
    let mut w1 = worker(
        1,
        vec![
            at_us(ROOT, 0, 1_000),
            at_us(OTHER, 2_000, 61_800),
            at_us(ROOT, resume, resume + 2_000),
        ],
        parks_us(&[(1_000, 2_000), park, (resume + 2_000, 200_000)]),
    );
    w1.polls = vec![
        poll_us(50, 0, 1_000),
        poll_us(70, 2_000, 61_800),
        poll_us(50, resume, resume + 2_000),
    ];
    let w0 = worker(0, vec![], parks_us(worker0));
    let mut d = decoded(vec![w0, w1]);
    fixtures::add_root_span(&mut d, OTHER, "GET /other", OTHER_TRACE);
    d
}

/// Issue #17 / accuracy row 8c: the stretch between the busy worker's start and the
/// request's resumption read as idle ("idle 62 ms", "no runtime trouble"), because a
/// worker was parked all along. It sat on a condition variable, not on the driver.
#[test]
fn a_timer_due_while_the_drivers_worker_is_busy_is_scheduler_wait() {
    let d = late_timer(&[(0, 100_000)], (61_900, 61_950), 62_000);
    let b = analyze(&d, &target(101, 0, 64));
    assert_eq!(b.dominant, Category::SchedulerWait, "{:?}", b.parts);
    assert_eq!(
        b.part(Category::SchedulerWait),
        60 * MS,
        "from 2 ms to 62 ms"
    );
    assert_eq!(
        b.part(Category::Idle),
        MS,
        "1 ms to 2 ms: the driver was held"
    );
    assert_eq!(
        b.late_wake,
        Some(LateWakes {
            ns: 60 * MS,
            why: Late::DriverUnpolled { worker: 1 }
        })
    );
    assert!(b.scheduler_wait_estimated, "an upper bound");
    let culprit = b
        .culprits
        .first()
        .expect("the other request is the culprit");
    assert_eq!(
        (
            culprit.span_name.as_deref(),
            culprit.trace_id,
            culprit.worker
        ),
        (Some("GET /other"), Some(OTHER_TRACE), Some(1))
    );
    assert_eq!(culprit.overlap_ns, 59_800 * US);
    assert_eq!(
        culprit.spawned_before_window, TASK_HOOKS,
        "task 70's spawn is unknown"
    );
    assert!(
        b.verdict
            .starts_with("scheduler wait 60 ms of 64 ms: worker 1 busy 60 ms polling GET /other (")
            && b.verdict.contains(
                "up to 60 ms of it the request was ready but unnoticed: worker 1 was busy and \
             no other worker polled tokio's timer and I/O driver"
            ),
        "{}",
        b.verdict
    );
    assert!(
        b.intervals
            .iter()
            .any(|i| i.category == Category::SchedulerWait
                && (i.start, i.end) == (2 * MS, 62 * MS)
                && i.detail.contains("noticed when worker 1 parked")),
        "{:?}",
        b.intervals
    );
}

/// The false positive to avoid: worker 0 held the driver and woke when the request's
/// downstream answered at 40 ms, while worker 1 happened to be busy with another request.
/// The request resumes at once on worker 0: that is idle time, not the runtime's.
#[test]
fn an_answer_while_another_worker_is_busy_stays_idle() {
    let mut w0 = worker(
        0,
        vec![at_us(ROOT, 0, 1_000), at_us(ROOT, 40_050, 42_000)],
        parks_us(&[(1_000, 40_000), (42_000, 100_000)]),
    );
    w0.polls = vec![poll_us(50, 0, 1_000), poll_us(50, 40_050, 42_000)];
    let mut w1 = worker(
        1,
        vec![at_us(OTHER, 2_000, 61_800)],
        parks_us(&[(0, 2_000), (61_900, 61_950), (62_000, 100_000)]),
    );
    w1.polls = vec![poll_us(70, 2_000, 61_800)];
    let mut d = decoded(vec![w0, w1]);
    fixtures::add_root_span(&mut d, OTHER, "GET /other", OTHER_TRACE);
    let b = analyze(&d, &target(101, 0, 42));
    assert_eq!(b.dominant, Category::Idle);
    assert_eq!(
        b.part(Category::SchedulerWait),
        50 * US,
        "worker 0's own wake-up only"
    );
    assert_eq!(b.late_wake, None);
    assert!(b.culprits.is_empty());
    assert!(b.verdict.ends_with("no runtime trouble"), "{}", b.verdict);
}

/// A park that slept is no turn that found the request ready: worker 1 parked after its
/// busy stretch, held the driver, and woke when the request's answer came at 80 ms.
#[test]
fn a_park_that_slept_is_not_a_turn_that_found_the_request() {
    let d = late_timer(&[(0, 100_000)], (61_900, 80_000), 80_050);
    let b = analyze(&d, &target(101, 0, 82));
    assert_eq!(b.dominant, Category::Idle, "{:?}", b.parts);
    assert_eq!(b.late_wake, None);
    assert!(b.verdict.ends_with("no runtime trouble"), "{}", b.verdict);
}

/// Any park or unpark of another worker may have polled the driver: the late stretch
/// starts after worker 0's last one (it woke at 30 ms for something else and parked again
/// at 31 ms, when it could have taken the driver).
#[test]
fn another_workers_park_bounds_a_late_wake() {
    let d = late_timer(&[(0, 30_000), (31_000, 100_000)], (61_900, 61_950), 62_000);
    let b = analyze(&d, &target(101, 0, 64));
    assert_eq!(
        b.late_wake,
        Some(LateWakes {
            ns: 31 * MS,
            why: Late::DriverUnpolled { worker: 1 }
        })
    );
    assert_eq!(b.part(Category::SchedulerWait), 31 * MS);
}

/// Issue #17: a request was named as the culprit of a wait it overlapped for 0.384 ms.
/// Neighbours' sub-millisecond polls are not culprits; the verdict says what ran instead.
#[test]
fn a_sub_millisecond_neighbour_is_not_named_a_culprit() {
    // No worker parks: the request's 1.8 ms gap is all scheduler wait; `others` (span
    // key, task, from, to in µs) ran in it.
    let wait_with = |others: &[(u64, u64, u64, u64)]| {
        let mut entries = vec![at_us(ROOT, 0, 10_000), at_us(ROOT, 11_800, 12_000)];
        let mut polls = vec![poll_us(50, 0, 10_000), poll_us(50, 11_800, 12_000)];
        for &(key, task, a, b) in others {
            entries.push(at_us(key, a, b));
            polls.push(poll_us(task, a, b));
        }
        let mut w0 = worker(0, entries, vec![]);
        polls.sort_by_key(|p| p.start);
        w0.polls = polls;
        let mut d = decoded(vec![w0]);
        for &(key, ..) in others {
            fixtures::add_root_span(&mut d, key, "GET /other", OTHER_TRACE + u128::from(key));
        }
        analyze(&d, &target(101, 0, 12))
    };
    let b = wait_with(&[
        (20, 80, 10_000, 10_400),
        (21, 81, 10_450, 10_850),
        (22, 82, 10_900, 11_300),
        (23, 83, 11_350, 11_750),
    ]);
    assert!(b.culprits.is_empty(), "{:?}", b.culprits);
    assert_eq!(
        b.no_culprit,
        Some(NoCulprit::Scattered {
            count: 4,
            longest_ns: 400 * US
        })
    );
    assert!(
        NoCulprit::Scattered {
            count: 4,
            longest_ns: 400 * US
        }
        .describe()
        .ends_with("held a worker for 1.0 ms of it (4 ran, the longest 0.4 ms)")
    );
    let b = wait_with(&[(20, 80, 10_000, 11_200), (21, 81, 11_250, 11_650)]);
    let named: Vec<u64> = b.culprits.iter().map(|c| c.overlap_ns).collect();
    assert_eq!(named, vec![1_200 * US], "the 0.4 ms neighbour is left out");
}

/// Issue #17: "task 7 (spawn site no longer in the recorder)" read like lost data for a
/// connection task spawned long before the window.
#[test]
fn a_task_spawned_before_the_window_says_so() {
    let mut c = Culprit {
        task: 7,
        spawn_site: None,
        spawned_before_window: true,
        span_name: None,
        trace_id: None,
        worker: Some(0),
        overlap_ns: 5 * MS,
        first_seen: 0,
    };
    assert_eq!(c.describe(), "task 7 (spawned before the recorded window)");
    c.span_name = Some("GET /messages".into());
    c.trace_id = Some(OTHER_TRACE);
    assert_eq!(
        c.describe(),
        format!("GET /messages (trace {OTHER_TRACE:032x})"),
        "the request it served says what it is"
    );
}

/// An idle verdict with a wait for a worker of a millisecond or more does not claim a
/// quiet runtime: the wait and its culprit are told.
#[test]
fn an_idle_verdict_tells_a_wait_for_a_worker() {
    // As the late timer, with the request awaiting longer after it.
    let d = late_timer(&[(0, 200_000)], (61_900, 61_950), 62_000);
    let b = analyze(&d, &target(101, 0, 200));
    assert_eq!(b.dominant, Category::Idle);
    assert!(
        b.verdict.contains(
            "awaiting I/O, timers or downstream calls; it also waited 60 ms for a worker \
             (worker 1 busy 60 ms polling GET /other ("
        ) && !b.verdict.contains("no runtime trouble"),
        "{}",
        b.verdict
    );
    // A light analysis has the parks but names no culprit, and says so once.
    let mut d = d;
    d.light = true;
    let b = analyze(&d, &target(101, 0, 200));
    assert!(
        b.verdict.contains(
            "it also waited 60 ms for a worker; up to 60 ms of it the request was ready but \
             unnoticed"
        ) && b.verdict.matches("light analysis").count() == 1,
        "{}",
        b.verdict
    );
}

/// The culprit's worker is where it held the request up, not where it was first seen: a
/// task that moved from worker 0 (1 ms) to worker 1 (9 ms) is named on worker 1.
#[test]
fn a_culprit_is_named_on_the_worker_it_held_most() {
    let mut w0 = worker(
        0,
        vec![
            at_us(ROOT, 0, 10_000),
            at_us(OTHER, 10_000, 11_000),
            at_us(ROOT, 20_000, 21_000),
        ],
        vec![],
    );
    w0.polls = vec![
        poll_us(50, 0, 10_000),
        poll_us(70, 10_000, 11_000),
        poll_us(50, 20_000, 21_000),
    ];
    let mut w1 = worker(1, vec![at_us(OTHER, 11_000, 20_000)], vec![]);
    w1.polls = vec![poll_us(70, 11_000, 20_000)];
    let mut d = decoded(vec![w0, w1]);
    fixtures::add_root_span(&mut d, OTHER, "GET /other", OTHER_TRACE);
    let b = analyze(&d, &target(101, 0, 21));
    let c = b.culprits.first().expect("a culprit");
    assert_eq!((c.worker, c.overlap_ns), (Some(1), 10 * MS));
}

/// The request's span is entered on a plain thread at 0–1 ms and again at 30–31 ms, while the
/// only worker ran another request throughout, never parked: the gap is the thread's own
/// business, not a wait for a worker.
#[test]
fn work_resuming_off_the_workers_did_not_wait_for_one() {
    let plain = ThreadActivity {
        tid: 7,
        entries: vec![at_us(ROOT, 0, 1_000), at_us(ROOT, 30_000, 31_000)],
        entry_reach: vec![1_000 * US, 31_000 * US],
        ..ThreadActivity::default()
    };
    let mut busy = worker(0, vec![at_us(OTHER, 0, 90_000)], vec![]);
    busy.polls = vec![poll_us(70, 0, 90_000)];
    let mut d = decoded(vec![busy, plain]);
    fixtures::add_root_span(&mut d, OTHER, "GET /other", OTHER_TRACE);
    let b = analyze(&d, &target(101, 0, 31));
    assert_eq!(b.part(Category::SchedulerWait), 0, "{:?}", b.parts);
    assert_eq!(b.late_wake, None);
    assert_eq!(b.dominant, Category::Idle, "{:?}", b.parts);
}

/// Where every worker was busy, that says more than "worker 1 was busy": with worker 0
/// running a third request throughout, both rules count the stretch and the first names it.
#[test]
fn every_worker_busy_is_told_before_one_worker_busy() {
    let mut d = late_timer(&[(0, 1_500)], (61_900, 61_950), 62_000);
    let mut w0 = worker(0, vec![at_us(11, 1_500, 70_000)], parks_us(&[(0, 1_500)]));
    w0.polls = vec![poll_us(71, 1_500, 70_000)];
    d.threads[0] = w0;
    let b = analyze(&d, &target(101, 0, 64));
    assert_eq!(
        b.late_wake,
        Some(LateWakes {
            ns: 60 * MS,
            why: Late::AllBusy
        })
    );
    assert!(
        b.verdict.contains(
            "up to 60 ms of it the request was ready but unnoticed: every worker was busy"
        ),
        "{}",
        b.verdict
    );
}

/// A worker of a saturated service: a poll starts every 10 µs for 70 ms, and it never parks.
fn busy_worker(tid: u64, entries: Vec<Entry>) -> ThreadActivity {
    let mut w = worker(tid, entries, vec![]);
    for k in 0..7_000 {
        w.poll_starts.note(|| k * 10 * US);
    }
    w
}

/// A saturated service: both workers start a poll every 10 µs and never park while the
/// request sleeps on a timer from 1 ms to 61 ms. Busy workers poll the driver in their
/// maintenance, so the timer was noticed within their last 317 ticks (at most 1,268 polls,
/// 12.7 ms here, 13 ms as the thinned counts tell it): that much counts as scheduler wait,
/// not the whole 60 ms, and the sleep stays the cause.
#[test]
fn busy_workers_that_keep_polling_bound_the_wait_for_one() {
    let own = vec![at_us(ROOT, 0, 1_000), at_us(ROOT, 61_000, 62_000)];
    let d = decoded(vec![busy_worker(0, own), busy_worker(1, vec![])]);
    let b = analyze(&d, &target(101, 0, 62));
    assert_eq!(
        b.late_wake,
        Some(LateWakes {
            ns: 13 * MS,
            why: Late::AllBusy
        })
    );
    assert_eq!(b.dominant, Category::Idle, "{:?}", b.parts);

    // One worker inside a single long poll throughout could not have noticed anything: no
    // bound, the whole sleep is an upper bound for the wait.
    let mut hog = worker(1, vec![], vec![]);
    hog.poll_starts.note(|| 0);
    let d = decoded(vec![
        busy_worker(0, vec![at_us(ROOT, 0, 1_000), at_us(ROOT, 61_000, 62_000)]),
        hog,
    ]);
    let b = analyze(&d, &target(101, 0, 62));
    assert_eq!(b.late_wake.map(|l| l.ns), Some(60 * MS));
}

/// The queue ahead of a woken task holds fewer tasks than the runtime had: with 40 sampled
/// around the wait, the bound is 61 + 39 ticks (400 polls) of every worker, not 61 + 256.
#[test]
fn the_runtime_task_count_bounds_the_queue_a_woken_task_waits_behind() {
    let own = vec![at_us(ROOT, 0, 1_000), at_us(ROOT, 61_000, 62_000)];
    let mut d = decoded(vec![busy_worker(0, own), busy_worker(1, vec![])]);
    d.alive_tasks = vec![(500 * US, 40), (30 * MS, 38), (65 * MS, 40)];
    let b = analyze(&d, &target(101, 0, 62));
    // Kept starts are every 64th poll (640 µs apart): 96 precede 61 ms, and 400 polls back
    // from the last of them is the 89th, at 56.32 ms.
    assert_eq!(b.late_wake.map(|l| l.ns), Some(61 * MS - 56_320 * US));

    // Samples that do not reach past the resumption bound nothing: a full queue is assumed.
    d.alive_tasks = vec![(500 * US, 40), (30 * MS, 38)];
    let b = analyze(&d, &target(101, 0, 62));
    assert_eq!(b.late_wake.map(|l| l.ns), Some(13 * MS));
}

/// Issue #18: a blocked poll said "the thread slept inside a poll" and never on what. The
/// root's 60 ms entry is off-CPU for 50 ms; the samples inside it name a sleep.
#[test]
fn a_blocked_poll_names_what_it_waited_in() {
    let blocked = |waits: Vec<crate::analysis::decode::Waited>| {
        let mut d = decoded(vec![worker(0, vec![entry(ROOT, 0, 60, None)], vec![])]);
        d.off_cpu.insert(0, vec![(5 * MS, 55 * MS, false)]);
        d.waits.insert(0, waits);
        analyze(&d, &target(101, 0, 60))
    };
    let sample = |at_ms| crate::analysis::decode::Waited {
        at: at_ms * MS,
        nr: libc::SYS_clock_nanosleep,
        state: b'S',
        wchan: "hrtimer_nanosleep".into(),
        object: "std::thread::sleep (50 ms requested)".into(),
    };
    let b = blocked((10..55).step_by(5).map(sample).collect());
    assert_eq!(b.dominant, Category::BlockedInPoll);
    assert_eq!(b.blocked_on.len(), 1);
    assert_eq!(b.blocked_on[0].ns, 50 * MS);
    assert!(
        b.verdict.starts_with(
            "blocked in poll 50 ms of 60 ms: in clock_nanosleep — std::thread::sleep (50 ms \
             requested), blocking async code"
        ),
        "{}",
        b.verdict
    );
    let event = b
        .intervals
        .iter()
        .find(|i| i.category == Category::BlockedInPoll)
        .expect("a blocked interval");
    assert!(
        event
            .detail
            .ends_with(": clock_nanosleep — std::thread::sleep (50 ms requested)"),
        "{}",
        event.detail
    );
    assert_eq!(event.waited.as_ref(), b.blocked_on.first());

    // Blocked for less than the span's idle time: the verdict leads with idle, and tells the
    // block too.
    let mut d = decoded(vec![worker(0, vec![entry(ROOT, 0, 20, None)], vec![])]);
    d.off_cpu.insert(0, vec![(5 * MS, 15 * MS, false)]);
    d.waits.insert(0, (6..15).step_by(5).map(sample).collect());
    let b = analyze(&d, &target(101, 0, 60));
    assert_eq!(b.dominant, Category::Idle);
    assert!(
        b.verdict
            .contains("; it also blocked 10 ms in clock_nanosleep — std::thread::sleep"),
        "{}",
        b.verdict
    );
    assert!(!b.verdict.contains("no runtime trouble"), "{}", b.verdict);

    let unsampled = blocked(Vec::new());
    assert!(unsampled.blocked_on.is_empty());
    assert!(
        unsampled.verdict.contains("what it waited in"),
        "says it was not sampled: {}",
        unsampled.verdict
    );
}

//! The breakdown in words: the verdict a user reads first, and the details of its span events.
//!
//! In: a [`Breakdown`] (its parts, culprits, unattributed work, late wake-ups, allocations).
//! Out: one sentence that leads with the dominant cause and adds what else a reader needs not
//! to be misled — a wait for a worker behind an idle verdict, work no one names that may be the
//! request's, what the analysis could not check — and the words of each unattributed stretch.

use std::fmt::Write as _;

use super::breakdown::{Breakdown, Category, Culprit, MIN_CULPRIT_WAIT_NS, NoCulprit, bytes, ms};
use super::late_wakes::Late;
use super::unattributed::{Stretch, StretchKind, Unattributed};

/// The verdict on `b` (whose `verdict` it ignores).
pub(crate) fn verdict(b: &Breakdown) -> String {
    let c = b.dominant;
    let head = format!("{} {} of {}", c.words(), ms(b.part(c)), ms(b.end - b.start));
    // Unattributed work that could be most of the idle time is told with its remedy; less of
    // it (on a shared machine a worker's own chores outside spans, or the exporter's, run a
    // few ms at a time) is mentioned without.
    let unattributed = unattributed_clause(&b.unattributed).map(|u| {
        let most = 2 * u.ns >= b.part(Category::Idle);
        match u.remedy.filter(|_| most) {
            Some(remedy) => (format!("{} ({remedy})", u.work), most),
            None => (u.work, most),
        }
    });
    let mut v = match c {
        Category::SchedulerWait => {
            let mut v = match (b.culprits.first(), b.no_culprit) {
                (Some(cu), _) => format!("{head}: {}", held_by(cu)),
                (None, why) => format!(
                    "{head}: runnable but no worker free; no culprit named: {}",
                    why.unwrap_or(NoCulprit::NoneSeen).describe()
                ),
            };
            if let Some(late) = late_clause(b) {
                let _ = write!(v, "; {late}");
            }
            v
        }
        Category::BlockedInPoll => match b.blocked_on.first() {
            Some(w) => format!("{head}: in {}, blocking async code", w.describe()),
            None => format!(
                "{head}: the thread slept inside a poll (blocking syscall, lock or sleep in async \
                 code); {}",
                not_sampled(b.part(Category::BlockedInPoll))
            ),
        },
        Category::OsWait => {
            format!("{head}: preempted by the OS while polling (CPU contention)")
        }
        Category::BlockingPool => match b.pool_blocked_on.first() {
            Some(w) => format!(
                "{head}: spawn_blocking jobs queued for or ran on the blocking pool; they \
                 blocked {} in {}",
                ms(b.pool_blocked_on.iter().map(|w| w.ns).sum()),
                w.describe()
            ),
            None => format!("{head}: spawn_blocking jobs queued for or ran on the blocking pool"),
        },
        Category::Running => format!("{head}: the request's own code was on the CPU"),
        // Unattributed work that could be most of the wait leads the verdict; less of it is
        // added to the usual words, which then claim no quiet runtime; and so does a wait for
        // a worker of a millisecond or more.
        Category::Idle => {
            let mut v = match (&unattributed, unchecked(&b.unattributed)) {
                (Some((work, true)), _) => {
                    format!("{head} by what this build sees: meanwhile {work}")
                }
                (Some((work, _)), _) => {
                    format!("{head}: awaiting I/O, timers or downstream calls; meanwhile {work}")
                }
                (None, Some(unchecked)) => format!(
                    "{head}: awaiting I/O, timers or downstream calls as far as this analysis \
                     sees ({unchecked})"
                ),
                (None, None) => format!("{head}: awaiting I/O, timers or downstream calls"),
            };
            match wait_clause(b) {
                Some(wait) => {
                    let _ = write!(v, "; it also {wait}");
                }
                None if unattributed.is_none()
                    && unchecked(&b.unattributed).is_none()
                    && blocked_clause(b).is_none() =>
                {
                    v.push_str("; no runtime trouble");
                }
                None => {}
            }
            v
        }
    };
    if let Some(blocked) = blocked_clause(b) {
        let _ = write!(v, "; {blocked}");
    }
    if let Some((work, _)) = unattributed.filter(|_| c != Category::Idle) {
        let _ = write!(
            v,
            "; during its {} idle, {work}",
            ms(b.part(Category::Idle))
        );
    }
    if let Some(a) = b.alloc.filter(|a| a.bytes > 0) {
        let _ = write!(
            v,
            "; allocated {} in {} allocations",
            bytes(a.bytes),
            a.count
        );
    }
    if let Some(faults) = faults_clause(b) {
        let _ = write!(v, "{faults}");
    }
    if b.data_loss {
        v.push_str(" (incomplete: recorder data lost)");
    }
    if b.light {
        v.push_str(" (light analysis under load: no culprit search)");
    }
    v
}

/// Blocked time that is not the dominant cause, for the verdict: "it also blocked 12 ms in
/// futex — contended std::sync lock (…)"; `None` under [`MIN_CULPRIT_WAIT_NS`] or unsampled.
fn blocked_clause(b: &Breakdown) -> Option<String> {
    let blocked = b.part(Category::BlockedInPoll);
    if b.dominant == Category::BlockedInPoll || blocked < MIN_CULPRIT_WAIT_NS {
        return None;
    }
    let w = b.blocked_on.first()?;
    Some(format!(
        "it also blocked {} in {}",
        ms(blocked),
        w.describe()
    ))
}

/// Page faults worth a reader's attention: ", 16384 page faults (~41 ms faulting pages in,
/// estimated)" after an allocation clause, "; 16384 page faults (…)" without one; `None` under
/// [`MIN_CULPRIT_WAIT_NS`] of estimated time (or without an estimate).
fn faults_clause(b: &Breakdown) -> Option<String> {
    let f = b.page_faults?;
    let ns = f.est_ns.filter(|ns| *ns >= MIN_CULPRIT_WAIT_NS)?;
    let lead = if b.alloc.is_some_and(|a| a.bytes > 0) {
        ","
    } else {
        ";"
    };
    let major = if f.major > 0 {
        format!(" and {} major", f.major)
    } else {
        String::new()
    };
    Some(format!(
        "{lead} {} page faults{major} (~{} faulting pages in, estimated)",
        f.minor,
        ms(ns)
    ))
}

/// Why a blocked-in-poll verdict names no syscall, as far as it is known: a block shorter than
/// the sampler's look (two sampling periods) is often missed; a longer one was missed for a
/// reason the analysis cannot see (a thread the sampler does not watch, a rhythm of short
/// blocks between on-CPU stretches).
fn not_sampled(blocked_ns: u64) -> String {
    match crate::capture::waits::period() {
        None => "what it waited in is not sampled (wait sampling off)".into(),
        Some(p) if u128::from(blocked_ns) < 2 * p.as_nanos() => format!(
            "what it waited in was not sampled (blocked less than the wait sampler's {} look)",
            ms(2 * p.as_nanos() as u64)
        ),
        Some(_) => "no wait sample caught what it waited in".into(),
    }
}

/// "worker 1 busy 60 ms polling GET /report (…)".
fn held_by(cu: &Culprit) -> String {
    format!(
        "worker {} busy {} polling {}",
        cu.worker.map_or("?".into(), |w| w.to_string()),
        ms(cu.overlap_ns),
        cu.describe()
    )
}

/// A wake-up the runtime delayed, for the verdict: "up to 59 ms of it the request was ready
/// but unnoticed: worker 1 was busy and no other worker polled tokio's timer and I/O driver";
/// `None` under [`MIN_CULPRIT_WAIT_NS`].
fn late_clause(b: &Breakdown) -> Option<String> {
    let late = b.late_wake.filter(|l| l.ns >= MIN_CULPRIT_WAIT_NS)?;
    let how = match late.why {
        Late::AllBusy => "every worker was busy".to_string(),
        Late::DriverUnpolled { worker } => format!(
            "worker {worker} was busy and no other worker polled tokio's timer and I/O driver"
        ),
    };
    Some(format!(
        "up to {} of it the request was ready but unnoticed: {how}",
        ms(late.ns)
    ))
}

/// A wait for a worker that is not the dominant cause, for an idle verdict: "waited 3.0 ms for
/// a worker (worker 1 busy 3.0 ms polling …)"; `None` under [`MIN_CULPRIT_WAIT_NS`].
fn wait_clause(b: &Breakdown) -> Option<String> {
    let wait = b.part(Category::SchedulerWait);
    if wait < MIN_CULPRIT_WAIT_NS {
        return None;
    }
    let mut v = format!("waited {} for a worker", ms(wait));
    match (b.culprits.first(), b.no_culprit) {
        (Some(cu), _) => {
            let _ = write!(v, " ({})", held_by(cu));
        }
        // A light analysis says so at the end of the verdict.
        (None, Some(why)) if why != NoCulprit::Light => {
            let _ = write!(v, " (no culprit named: {})", why.describe());
        }
        (None, _) => {}
    }
    if let Some(late) = late_clause(b) {
        let _ = write!(v, "; {late}");
    }
    Some(v)
}

/// Unattributed work as the verdict tells it.
struct UnattributedClause {
    /// "the workers were busy 60 ms outside any span, which may be this request's".
    work: String,
    /// What would let the next analysis attribute it, where something would.
    remedy: Option<String>,
    /// How much work that is, ns.
    ns: u64,
}

/// The clause for `u`; `None` when there was too little to report.
fn unattributed_clause(u: &Unattributed) -> Option<UnattributedClause> {
    let stable = !crate::capture::runtime::TASK_HOOKS;
    let (mut work, mut remedies, mut ns) = (Vec::new(), Vec::new(), 0);
    for kind in [
        StretchKind::Worker(0),
        StretchKind::PoolJob,
        StretchKind::PoolBusy,
    ] {
        if u.reported(kind) {
            ns += u.amount(kind);
        }
    }
    if u.reported(StretchKind::Worker(0)) {
        work.push(format!(
            "the workers were busy {} outside any span{}",
            ms(u.workers_ns.unwrap_or(0)),
            if stable { "" } else { " and task poll" }
        ));
    }
    if u.reported(StretchKind::PoolJob) {
        work.push(format!(
            "granular::spawn_blocking jobs queued outside any span ran {}",
            ms(u.pool_jobs_ns)
        ));
    }
    if stable && !work.is_empty() {
        remedies.push(
            "stable builds do not follow spawned tasks: build with --cfg tokio_unstable, or give \
             the task a span",
        );
    }
    if u.reported(StretchKind::PoolBusy) {
        work.push(format!(
            "the blocking pool was busy {} with work no span or granular::spawn_blocking job \
             names",
            ms(u.pool_busy_ns.unwrap_or(0))
        ));
        remedies.push("tokio::task::spawn_blocking is not seen: use granular::spawn_blocking");
    }
    if work.is_empty() {
        return None;
    }
    Some(UnattributedClause {
        work: format!("{}, which may be this request's", work.join(" and ")),
        remedy: (!remedies.is_empty()).then(|| remedies.join("; ")),
        ns,
    })
}

/// What a breakdown could not check for unattributed work, in words; `None` when it checked
/// everything.
fn unchecked(u: &Unattributed) -> Option<String> {
    let mut not = Vec::new();
    if u.workers_ns.is_none() {
        not.push("work outside spans not checked");
    }
    if u.pool_busy_ns.is_none() {
        not.push("blocking-pool threads not observed without schedstat or perf");
    }
    (!not.is_empty()).then(|| not.join("; "))
}

/// A span event's words for one stretch of unattributed work.
pub(crate) fn describe_stretch(s: &Stretch) -> String {
    match s.kind {
        StretchKind::Worker(w) => format!(
            "worker {w} (thread {}) busy {} outside any span: work no span names, may be this \
             request's",
            s.tid,
            ms(s.ns)
        ),
        StretchKind::PoolBusy => format!(
            "blocking-pool thread {} busy {} (on CPU or runnable) with work no span or \
             granular::spawn_blocking job names, may be this request's",
            s.tid,
            ms(s.ns)
        ),
        StretchKind::PoolJob => format!(
            "granular::spawn_blocking job queued outside any span ran {} on thread {}, may be \
             this request's",
            ms(s.ns),
            s.tid
        ),
    }
}

//! The breakdown: the answer to "why was this span slow?", as the analysis gives it.
//!
//! A [`Breakdown`] partitions a span's wall time into [`Category`]s that sum to its duration,
//! names the [`Culprit`]s that held a worker while it waited for one (or says why none is
//! named, [`NoCulprit`]), lists its notable [`Interval`]s (span events), what the build could
//! not attribute, its allocations, and a verdict in words. [`analyze`](super::analyze) builds
//! one; the analyzer attaches it to the span and draws it.

use std::collections::HashMap;
use std::fmt::Write as _;

use super::blocked_on::BlockedOn;
use super::late_wakes::Late;
use super::unattributed::Unattributed;

/// The categories a span's wall time is partitioned into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Category {
    /// The request's work on a worker, on CPU.
    Running,
    /// Ready to run, waiting for a worker (`granular.time.scheduler_wait_us`).
    SchedulerWait,
    /// In a poll, runnable but not on CPU: the OS gave the CPU to something else.
    OsWait,
    /// In a poll, off CPU and not runnable: a blocking call inside async code.
    BlockedInPoll,
    /// The request's `granular::spawn_blocking` jobs, queued or running.
    BlockingPool,
    /// None of the above: awaiting a timer, a socket, a downstream service.
    Idle,
}

impl Category {
    /// Every category, in the order the attributes list them.
    pub const ALL: [Category; 6] = [
        Category::Running,
        Category::SchedulerWait,
        Category::OsWait,
        Category::BlockedInPoll,
        Category::BlockingPool,
        Category::Idle,
    ];

    /// Machine name, used in attribute keys and values (`granular.cause`).
    pub fn key(self) -> &'static str {
        match self {
            Category::Running => "running",
            Category::SchedulerWait => "scheduler_wait",
            Category::OsWait => "os_wait",
            Category::BlockedInPoll => "blocked_in_poll",
            Category::BlockingPool => "blocking_pool",
            Category::Idle => "idle",
        }
    }

    /// Words users read.
    pub fn words(self) -> &'static str {
        match self {
            Category::Running => "running",
            Category::SchedulerWait => "scheduler wait",
            Category::OsWait => "OS wait",
            Category::BlockedInPoll => "blocked in poll",
            Category::BlockingPool => "blocking pool",
            Category::Idle => "idle",
        }
    }
}

/// What the analyzer is asked about.
#[derive(Debug, Clone)]
pub struct Target {
    /// The span's OpenTelemetry id.
    pub otel_span_id: u64,
    /// The span's name.
    pub name: String,
    /// Start, Unix ns.
    pub start: u64,
    /// End, Unix ns.
    pub end: u64,
}

/// Another task that held a worker while the request waited for one.
#[derive(Debug, Clone, PartialEq)]
pub struct Culprit {
    /// tokio task id (0 when only span entries were seen, in stable builds).
    pub task: u64,
    pub spawn_site: Option<String>,
    /// The task's spawn precedes the recorder's oldest records (a long-lived task, such as a
    /// server's connection task): its spawn site and the span it was spawned in are unknown.
    pub spawned_before_window: bool,
    /// The local root span the task was serving, if any.
    pub span_name: Option<String>,
    pub trace_id: Option<u128>,
    pub worker: Option<usize>,
    /// Time it overlapped the request's scheduler wait, ns.
    pub overlap_ns: u64,
    /// When it was first seen holding a worker during the wait.
    pub first_seen: u64,
}

impl Culprit {
    /// "GET /report (src/report.rs:40, trace 4bf92f3577b34da6)"; "task 7 (spawned before the
    /// recorded window)" when neither its spawn nor a span it served was seen.
    pub fn describe(&self) -> String {
        let mut s = self
            .span_name
            .clone()
            .unwrap_or_else(|| format!("task {}", self.task));
        let mut extra = Vec::new();
        if let Some(site) = &self.spawn_site {
            extra.push(site.clone());
        }
        if let Some(t) = self.trace_id {
            extra.push(format!("trace {t:032x}"));
        }
        // The span it served says what it is; a connection task spawned long ago has nothing
        // more to add.
        if self.spawned_before_window && self.span_name.is_none() {
            extra.push("spawned before the recorded window".into());
        }
        if !extra.is_empty() {
            let _ = write!(s, " ({})", extra.join(", "));
        }
        s
    }
}

/// One notable interval inside the window.
#[derive(Debug, Clone, PartialEq)]
pub struct Interval {
    pub category: Category,
    pub start: u64,
    pub end: u64,
    pub detail: String,
    pub kind: IntervalKind,
    /// What the thread waited in for most of a blocked-in-poll interval, when sampled.
    pub waited: Option<BlockedOn>,
}

/// What an [`Interval`] shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntervalKind {
    /// A stretch of the span's time in its category.
    Part,
    /// A culprit holding a worker while the span waited for one: it overlaps the span's
    /// scheduler wait and is reported however short (exported as a `granular.culprit_poll`
    /// event; an artifact draws the culprit's polls on its own thread instead).
    Culprit,
}

/// Allocations made by a request's own work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Allocations {
    pub count: u64,
    pub bytes: u64,
}

/// Page faults taken by a request's own work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PageFaults {
    /// Served without I/O (a first touch of an allocated page).
    pub minor: u64,
    /// Waited for I/O (file-backed memory).
    pub major: u64,
    /// The minor faults' time, estimated from a per-fault cost the sampler measured.
    pub est_ns: Option<u64>,
}

/// Why a scheduler wait names no culprit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoCulprit {
    /// A light analysis searches for none.
    Light,
    /// The wait was under [`MIN_CULPRIT_WAIT_NS`].
    Short,
    /// The workers were busy meanwhile with work no span (or task poll) names, ns.
    UnnamedWork(u64),
    /// Other tasks (or spans) ran meanwhile, none of them for [`MIN_CULPRIT_WAIT_NS`] of the
    /// wait: how many, and the longest's overlap, ns.
    Scattered { count: usize, longest_ns: u64 },
    /// The recorder overwrote records of the window.
    Overwritten,
    /// No other work was seen on the workers meanwhile.
    NoneSeen,
}

impl NoCulprit {
    /// Words for the verdict.
    pub fn describe(self) -> String {
        match self {
            NoCulprit::Light => "light analysis under load (no culprit search)".into(),
            NoCulprit::Short => format!("the wait was under {}", ms(MIN_CULPRIT_WAIT_NS)),
            NoCulprit::UnnamedWork(ns) => format!(
                "the workers were busy {} with work no span{} names",
                ms(ns),
                if crate::capture::runtime::TASK_HOOKS {
                    " or task poll"
                } else {
                    " (stable builds do not see tasks: a task spawned without a span?)"
                }
            ),
            NoCulprit::Scattered { count, longest_ns } => format!(
                "no other {} held a worker for {} of it ({count} ran, the longest {})",
                if crate::capture::runtime::TASK_HOOKS {
                    "task"
                } else {
                    "span"
                },
                ms(MIN_CULPRIT_WAIT_NS),
                ms(longest_ns)
            ),
            NoCulprit::Overwritten => "the recorder overwrote the workers' records of it".into(),
            NoCulprit::NoneSeen => "no other span or task ran on the workers meanwhile".into(),
        }
    }
}

/// The answer to "why was this span slow?".
#[derive(Debug, Clone)]
pub struct Breakdown {
    /// The span's name.
    pub span_name: String,
    /// Start, Unix ns.
    pub start: u64,
    /// End, Unix ns.
    pub end: u64,
    /// ns per category; they sum to `end - start`.
    pub parts: HashMap<Category, u64>,
    /// The category with the most time (`granular.cause`).
    pub dominant: Category,
    /// The request's polls; `None` where polls are not observed (stable builds, a light
    /// decode).
    pub polls: Option<u64>,
    /// `None` where allocations are not counted (`granular::Alloc` not installed).
    pub alloc: Option<Allocations>,
    /// `None` where page faults were not read (wait sampling off, or no reading around the
    /// request's intervals).
    pub page_faults: Option<PageFaults>,
    /// Work during the idle time that no span or task names (see `analysis::unattributed`).
    pub unattributed: Unattributed,
    /// What the blocked-in-poll time was spent in, by syscall and object, largest first
    /// (empty when nothing was sampled: see `analysis::blocked_on`).
    pub blocked_on: Vec<BlockedOn>,
    /// What the request's `granular::spawn_blocking` jobs waited in while their threads were
    /// blocked, largest first (empty when nothing was sampled).
    pub pool_blocked_on: Vec<BlockedOn>,
    /// Who held the workers during scheduler wait, for at least the culprit threshold.
    pub culprits: Vec<Culprit>,
    /// Why a scheduler wait names no culprit (set when there was a wait and no culprit).
    pub no_culprit: Option<NoCulprit>,
    /// The longest intervals, longest first.
    pub intervals: Vec<Interval>,
    /// The answer in one line (`granular.verdict`).
    pub verdict: String,
    /// The span was not found in the recorder, or records of its window were overwritten.
    pub data_loss: bool,
    /// Scheduler wait was estimated: from span entries (no task hooks in this build, or a
    /// light analysis), or in part from the workers' parks, where a wake-up the runtime
    /// delayed is an upper bound (`analysis::late_wakes`).
    pub scheduler_wait_estimated: bool,
    /// How much of the scheduler wait is such a delayed wake-up (at least
    /// `analysis::analyze::MIN_INTERVAL_NS` of it).
    pub late_wake: Option<LateWakes>,
    /// A light analysis (an overloaded analyzer): no culprit search, and from a light decode
    /// the request's own spans and its threads' parks, off-CPU time and allocations, no polls.
    pub light: bool,
    /// Threads whose time this span used (for the artifact).
    pub threads: Vec<u64>,
}

impl Breakdown {
    /// Nanoseconds of `c` (0 when the span had none).
    pub fn part(&self, c: Category) -> u64 {
        self.parts.get(&c).copied().unwrap_or(0)
    }
}

/// The part of a scheduler wait that wake-ups the runtime delayed (`analysis::late_wakes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LateWakes {
    /// How long in all, ns.
    pub ns: u64,
    /// The rule that counted most of it, with the worker whose turn of the driver noticed the
    /// request where one did ([`Late::DriverUnpolled`]).
    pub why: Late,
}

/// Scheduler wait below this names no culprit, and neither does other work that overlapped the
/// wait for less: a sub-millisecond overlap is a neighbour's poll, not what held the request up.
pub(crate) const MIN_CULPRIT_WAIT_NS: u64 = 1_000_000;

/// Bytes, for humans, in the largest binary unit that keeps the figure at least 1: "512 B",
/// "38.5 KiB", "64.0 MiB", "1.2 GiB".
pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 3] = ["KiB", "MiB", "GiB"];
    if n < 1 << 10 {
        return format!("{n} B");
    }
    let (mut v, mut unit) = (n as f64 / 1024.0, 0);
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// Milliseconds, for humans: "83 ms", "0.4 ms".
pub(crate) fn ms(ns: u64) -> String {
    let m = ns as f64 / 1e6;
    if m >= 10.0 {
        format!("{m:.0} ms")
    } else {
        format!("{m:.1} ms")
    }
}

#[cfg(test)]
mod tests {
    use super::bytes;

    /// A verdict once read "allocated 0.0 MiB in 67 allocations": small figures keep a unit
    /// that shows them.
    #[test]
    fn bytes_keep_a_unit_that_shows_them() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(39_424), "38.5 KiB");
        assert_eq!(bytes(64 << 20), "64.0 MiB");
        assert_eq!(bytes(1_288_490_189), "1.2 GiB");
        assert_eq!(bytes(u64::MAX), "17179869184.0 GiB");
    }
}

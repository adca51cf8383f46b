//! Wait sampling: what a runtime thread blocked inside a request's work was waiting in — the
//! syscall, the kernel's wait channel and the object (file, socket, pipe, child process,
//! lock, sleep) — read unprivileged from the process's own `/proc/self/task/<tid>/`.
//!
//! The OS sampler thread calls [`sample`] every period (`GRANULAR_WAIT_SAMPLE_HZ`, 200 Hz by
//! default). For each registered thread it first asks the thread's ring whether the thread is
//! inside a request's work: its newest event is a poll's start, a span's entry or a
//! `granular::spawn_blocking` job's start, or something written inside one. A parked worker,
//! one between polls and an idle pool thread are passed over at the cost of that look. For a
//! thread inside work it reads `syscall`: a running thread reads `running` at once (the kernel
//! neither stops nor signals it). A blocked one is sampled: its state from `stat`, its wait
//! channel, and what its syscall waits on ([`objects`]), named again only when the syscall or
//! its arguments changed or the thread ran since it was named (a new call with the same
//! arguments, e.g. a `read` of a reused fd number, may wait on another object), and written
//! as a [`WaitSample`] to the sampler's ring. Nothing runs on the request path.
//!
//! Each thread opens its files itself at registration and the sampler keeps them:
//! `syscall` of another thread is readable by the same process only while the process is
//! dumpable (a later `prctl(PR_SET_DUMPABLE, 0)` or a uid change closes it, but not files
//! already open), and a kept file reads ESRCH once its thread exits, so a reused thread id
//! cannot be mistaken for it.

pub(crate) mod objects;
pub(crate) mod pace;
pub(crate) mod syscalls;

pub use pace::Seen;

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::thread::Thread;
use std::time::Duration;

use crate::mapping::Mapping;
use crate::recorder::codec::fields::Text;
use crate::recorder::codec::waits::{PageFaults, WaitSample};
use crate::recorder::ring::Ring;
use crate::recorder::{self, FlightRecorder, Kind};

/// One registered thread's kept files.
struct Watched {
    tid: u64,
    syscall: File,
    wchan: File,
    stat: File,
    /// `schedstat`, whose run count tells whether the thread ran between two looks; without
    /// it nothing named is reused.
    schedstat: Option<File>,
    /// The thread's ring, once it took one.
    ring: Option<&'static Ring>,
    /// The last wait named: the syscall line it was named from with the thread's run count
    /// then, and the text.
    named: Option<(String, String)>,
    /// Whether the thread was inside work at the last look, `None` before the first look. Its
    /// page faults are read at the first look, at every look inside work and once after it
    /// leaves: readings on both sides of every stretch of work.
    was_inside: Option<bool>,
}

static WATCHED: Mutex<Vec<Watched>> = Mutex::new(Vec::new());
/// Samples per second; 0 while off.
static HZ: AtomicU32 = AtomicU32::new(0);

/// Whether this process can read its threads' `syscall` files: opens and reads the calling
/// thread's own.
pub(crate) fn available() -> Result<(), String> {
    let f = File::open("/proc/thread-self/syscall")
        .map_err(|e| format!("cannot open /proc/thread-self/syscall: {e}"))?;
    let mut buf = [0u8; 256];
    f.read_at(&mut buf, 0)
        .map_err(|e| format!("cannot read /proc/thread-self/syscall: {e}"))?;
    Ok(())
}

/// Turns sampling on at `hz` samples a second for threads registered from now on.
pub fn enable(hz: u32) -> Result<(), String> {
    available()?;
    HZ.store(hz, Ordering::Relaxed);
    Ok(())
}

/// What one minor page fault cost when the sampler thread measured it at its start, ns.
static FAULT_NS: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();

/// Measures what a page fault costs, once, on the calling thread (the sampler's, as it starts:
/// off the application's start-up path).
pub(crate) fn measure_fault_cost_once() {
    if period().is_some() {
        FAULT_NS.get_or_init(measure_fault_cost);
    }
}

/// What one minor page fault costs on this machine (a first touch of an anonymous page);
/// `None` before the sampler measured it, or where it could not be measured.
pub(crate) fn fault_cost_ns() -> Option<u64> {
    FAULT_NS.get().copied().flatten()
}

/// Touches 256 fresh anonymous pages (1 MiB, about half a millisecond) three times and keeps
/// the cheapest, timed by the thread's CPU clock: time the thread waited for a CPU (a busy
/// machine starting the service) is not the faults' cost.
fn measure_fault_cost() -> Option<u64> {
    (0..3).filter_map(|_| touch_fresh_pages(256)).min()
}

/// The thread CPU time of touching `pages` fresh anonymous pages, ns per page.
fn touch_fresh_pages(pages: usize) -> Option<u64> {
    const PAGE: usize = 4096;
    let cpu_now = || crate::clock::thread_cpu().map(|d| d.as_nanos() as u64);
    let fresh = Mapping::new(pages * PAGE)?;
    let start = cpu_now();
    for i in 0..pages {
        // SAFETY: within the mapping, which `fresh` keeps mapped until the function returns.
        unsafe { std::ptr::write_volatile(fresh.as_ptr().add(i * PAGE), 1) };
    }
    let end = cpu_now();
    Some(end?.checked_sub(start?)? / pages as u64)
}

/// The sampling period while some thread is inside work; `None` while sampling is off.
pub(crate) fn period() -> Option<Duration> {
    let hz = HZ.load(Ordering::Relaxed);
    (hz > 0).then(|| Duration::from_nanos(1_000_000_000 / u64::from(hz)))
}

thread_local! {
    /// Whether this thread has tried to register since sampling was enabled.
    static TRIED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Registers the calling thread if it has not yet: runtime threads started before [`enable`]
/// (a runtime built before `granular::init()`, as a `#[tokio::main]` service that initializes
/// Granular inside it does) catch up at their next park, so their blocked polls are sampled
/// too.
#[inline]
pub(crate) fn ensure_current_thread() {
    if period().is_some() && !TRIED.try_with(std::cell::Cell::get).unwrap_or(true) {
        register_current_thread();
    }
}

/// Opens the calling thread's files for the sampler (runtime `on_thread_start`).
pub fn register_current_thread() {
    if period().is_none() {
        return;
    }
    if TRIED.try_with(|t| t.replace(true)).unwrap_or(true) {
        return;
    }
    let open = |name: &str| File::open(format!("/proc/thread-self/{name}")).ok();
    let (Some(syscall), Some(wchan), Some(stat)) = (open("syscall"), open("wchan"), open("stat"))
    else {
        return;
    };
    let tid = recorder::current_tid();
    if let Ok(mut w) = WATCHED.lock() {
        w.push(Watched {
            tid,
            syscall,
            wchan,
            stat,
            schedstat: open("schedstat"),
            ring: None,
            named: None,
            was_inside: None,
        });
    }
}

/// Closes the calling thread's files (runtime `on_thread_stop`).
pub fn unregister_current_thread() {
    let tid = recorder::current_tid();
    if let Ok(mut w) = WATCHED.lock() {
        w.retain(|x| x.tid != tid);
    }
}

/// Closes every registered thread's files (Granular turned off).
pub(crate) fn forget_threads() {
    if let Ok(mut w) = WATCHED.lock() {
        w.clear();
    }
}

/// Samples every registered thread that is inside work and blocked; says whether any thread
/// was inside work, and whether any was blocked there (the sampler paces itself by it:
/// [`pace`]).
pub fn sample() -> Seen {
    let mut seen = Seen::default();
    let Some(recorder) = FlightRecorder::get() else {
        return seen;
    };
    let Ok(mut watched) = WATCHED.lock() else {
        return seen;
    };
    for w in watched.iter_mut() {
        if w.ring.is_none() {
            w.ring = recorder.ring_of(w.tid);
        }
        let inside = w.ring.is_some_and(inside_work);
        let stat = (inside || w.was_inside != Some(false))
            .then(|| read(&w.stat))
            .flatten();
        if let Some(stat) = &stat {
            page_faults(w.tid, stat, inside);
        }
        w.was_inside = Some(inside);
        if !inside {
            continue;
        }
        seen.inside_work = true;
        seen.blocked |= sample_thread(w, stat.as_deref());
    }
    seen
}

/// Records of a thread's ring [`inside_work`] reads back at most: a poll with a few child
/// spans, their fields and events.
const LOOK_BACK: u64 = 256;

/// Whether a thread's newest events on `ring` leave it inside a request's work.
fn inside_work(ring: &Ring) -> bool {
    let copy = ring.snapshot(ring.written().saturating_sub(LOOK_BACK));
    inside(
        copy.records()
            .iter()
            .rev()
            .filter_map(|r| r.kind().filter(|k| *k != Kind::Payload)),
    )
}

/// Whether events read newest first leave their thread inside a request's work: in a poll or a
/// `granular::spawn_blocking` job, or in a span entered and not exited — after a child span's
/// exit the parent's entry may still be open, so exits and entries are paired going back. A
/// park, a poll's or job's end, or the thread's start, reached first, say it is not.
fn inside(newest_first: impl Iterator<Item = Kind>) -> bool {
    let mut exits = 0u32;
    let mut wrote_inside = false;
    for kind in newest_first {
        match kind {
            Kind::PollStart | Kind::BlockingStart => return true,
            Kind::SpanEnter if exits == 0 => return true,
            Kind::SpanEnter => exits -= 1,
            Kind::SpanExit => exits += 1,
            Kind::PollEnd
            | Kind::Park
            | Kind::Unpark
            | Kind::BlockingEnd
            | Kind::ThreadStart
            | Kind::TaskTerminate => return false,
            // Written inside a span (or, in a stable build, a poll the ring does not show).
            Kind::SpanNew | Kind::SpanIds | Kind::Field | Kind::Event | Kind::TaskSpawn
                if exits == 0 =>
            {
                wrote_inside = true;
            }
            _ => {}
        }
    }
    // Nothing decisive in reach: what was written last says.
    wrote_inside
}

/// Reads one thread (`stat`: its `stat` line read at this look); writes a sample and returns
/// true when it is blocked.
fn sample_thread(w: &mut Watched, stat: Option<&str>) -> bool {
    let Some(line) = read(&w.syscall) else {
        return false;
    };
    let Some((nr, args)) = parse_syscall(&line) else {
        return false; // running
    };
    let Some(state) = stat.and_then(parse_state) else {
        return false;
    };
    if state != b'S' && state != b'D' {
        return false;
    }
    // The same call: the same syscall and arguments, and the thread has not run since (a
    // new call with the same arguments may wait on another object: a reused fd number).
    let call = |line: &str| Some(format!("{} runs {}", syscall_key(line), runs(w)?));
    let key = call(&line);
    let text = match (&w.named, &key) {
        (Some((k, text)), Some(key)) if k == key => text.clone(),
        _ => {
            let wchan = read(&w.wchan).unwrap_or_default();
            let object = objects::describe(nr, &args, state);
            // The arguments named may have been stale: keep the name only if the thread is
            // still in the same call.
            let now = read(&w.syscall);
            if now.as_deref().map(syscall_key) != Some(syscall_key(&line)) {
                return false;
            }
            let text = format!("{}\t{object}", wchan.trim());
            w.named = match (key, now.as_deref().and_then(call)) {
                (Some(before), Some(after)) if before == after => Some((before, text.clone())),
                _ => None,
            };
            text
        }
    };
    recorder::write(&WaitSample {
        tid: w.tid,
        state,
        nr,
        text: Text::Given(&text),
    });
    true
}

/// How many times the thread was scheduled in (`schedstat`'s third field).
fn runs(w: &Watched) -> Option<u64> {
    let text = read(w.schedstat.as_ref()?)?;
    text.split_whitespace().nth(2)?.parse().ok()
}

/// A kept `/proc` file's text.
fn read(f: &File) -> Option<String> {
    let mut buf = [0u8; 512];
    let n = f.read_at(&mut buf, 0).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// The syscall number and arguments of a `syscall` line (`nr a0 .. a5 sp pc`, or `-1 sp pc`
/// outside a syscall); `None` for `running` or anything else.
fn parse_syscall(line: &str) -> Option<(i64, [u64; 6])> {
    let mut it = line.split_whitespace();
    let nr: i64 = it.next()?.parse().ok()?;
    let mut args = [0u64; 6];
    if nr >= 0 {
        for a in &mut args {
            *a = u64::from_str_radix(it.next()?.trim_start_matches("0x"), 16).ok()?;
        }
    }
    Some((nr, args))
}

/// The part of a `syscall` line that stays the same through one call (number and arguments,
/// not the stack and instruction pointers).
fn syscall_key(line: &str) -> String {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let keep = if fields.first() == Some(&"-1") {
        fields.len()
    } else {
        fields.len().min(7)
    };
    fields[..keep].join(" ")
}

/// Records thread `tid`'s cumulative page faults, from its `stat` line.
fn page_faults(tid: u64, stat: &str, inside: bool) {
    if let Some((minor, major)) = parse_faults(stat) {
        recorder::write(&PageFaults {
            tid,
            minor,
            major,
            inside,
        });
    }
}

/// The fields of a `stat` line after the command (whose name may hold spaces and
/// parentheses): the state letter first.
fn after_comm(stat: &str) -> Option<std::str::SplitWhitespace<'_>> {
    Some(stat[stat.rfind(')')? + 1..].split_whitespace())
}

/// `minflt` and `majflt` of a `stat` line (fields 10 and 12).
fn parse_faults(stat: &str) -> Option<(u64, u64)> {
    let mut after = after_comm(stat)?.skip(7);
    let minor = after.next()?.parse().ok()?;
    let major = after.nth(1)?.parse().ok()?;
    Some((minor, major))
}

/// The state letter of a `stat` line.
fn parse_state(stat: &str) -> Option<u8> {
    after_comm(stat)?.next()?.bytes().next()
}

/// The sampler thread, for [`wake_sampler`].
static SAMPLER: std::sync::OnceLock<Thread> = std::sync::OnceLock::new();
/// Set while the sampler sleeps longer than a wait-sampling period.
static RESTING: AtomicBool = AtomicBool::new(false);

/// Called by the sampler thread once, so a worker that unparks can wake it.
pub(crate) fn set_sampler(t: Thread) {
    let _ = SAMPLER.set(t);
}

/// Sleeps for `how_long`; when `rest`, a worker's unpark ends the sleep early (see [`pace`]).
/// Returns whether it did.
pub(crate) fn sleep(how_long: Duration, rest: bool) -> bool {
    if !rest {
        std::thread::sleep(how_long);
        return false;
    }
    RESTING.store(true, Ordering::SeqCst);
    std::thread::park_timeout(how_long);
    // Still set: the time ran out; cleared: an unpark took it.
    !RESTING.swap(false, Ordering::AcqRel)
}

/// A worker unparked (runtime `on_thread_unpark`): wakes a resting sampler. One load of a
/// shared, rarely written flag when it is not resting.
#[inline]
pub(crate) fn wake_sampler() {
    if RESTING.load(Ordering::Relaxed) && RESTING.swap(false, Ordering::AcqRel) {
        if let Some(t) = SAMPLER.get() {
            t.unpark();
        }
    }
}

#[cfg(test)]
mod tests;

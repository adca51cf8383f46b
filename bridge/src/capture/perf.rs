//! Context-switch records from `perf_event_open`: exact off-CPU intervals per runtime thread,
//! voluntary (blocked) or involuntary (preempted), where the kernel allows it unprivileged.
//!
//! Each runtime thread opens, for itself, a software "dummy" event with `context_switch = 1`,
//! `exclude_kernel = 1` (what `perf_event_paranoid = 2` permits) and times on
//! `CLOCK_MONOTONIC`, and maps its ring buffer. The OS sampler thread drains every ring each
//! period and records one [`OffCpu`] per switch-out/switch-in pair. The cost is in the
//! kernel, about 1 µs per context switch of a runtime thread; nothing runs per poll.
//!
//! A pair is complete only at the switch-in, which for a thread asleep in the blocking pool
//! may come seconds later. So that a reader can tell such a thread's on-CPU time (between a
//! switch-in and the next switch-out) from its sleep, three more records are written, each
//! once: when a thread's recording began (a closed interval of length 0: on CPU from there),
//! a switch-out still open at a drain (no duration yet; the complete pair follows later with
//! the same switch-out time) and a thread's exit (open, never closed).
//! Denied (Docker's default seccomp profile, `perf_event_paranoid = 3`, no kernel support):
//! [`probe`] says why, and the schedstat sampler is the fallback.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering, fence};

use crate::recorder;
use crate::recorder::codec::os::OffCpu;

const PAGE: usize = 4096;
/// Data pages per thread (a power of two): 64 KiB holds ~2,000 switches between drains.
const DATA_PAGES: usize = 16;

const PERF_TYPE_SOFTWARE: u32 = 1;
const PERF_COUNT_SW_DUMMY: u64 = 9;
const PERF_SAMPLE_TID: u64 = 1 << 1;
const PERF_SAMPLE_TIME: u64 = 1 << 2;
const PERF_RECORD_SWITCH: u32 = 14;
const PERF_RECORD_LOST: u32 = 2;
const MISC_SWITCH_OUT: u16 = 0x2000;
const MISC_SWITCH_OUT_PREEMPT: u16 = 0x4000;

/// `struct perf_event_attr` up to `PERF_ATTR_SIZE_VER5` (112 bytes).
#[repr(C)]
#[derive(Default)]
struct PerfEventAttr {
    type_: u32,
    size: u32,
    config: u64,
    sample_period: u64,
    sample_type: u64,
    read_format: u64,
    flags: u64,
    wakeup_events: u32,
    bp_type: u32,
    config1: u64,
    config2: u64,
    branch_sample_type: u64,
    sample_regs_user: u64,
    sample_stack_user: u32,
    clockid: i32,
    sample_regs_intr: u64,
    aux_watermark: u32,
    sample_max_stack: u16,
    reserved: u16,
}

// Bit positions in perf_event_attr.flags.
const EXCLUDE_KERNEL: u64 = 1 << 5;
const EXCLUDE_HV: u64 = 1 << 6;
const SAMPLE_ID_ALL: u64 = 1 << 18;
const USE_CLOCKID: u64 = 1 << 25;
const CONTEXT_SWITCH: u64 = 1 << 26;

/// One thread's event: its fd and mapped ring.
struct ThreadEvent {
    tid: u64,
    fd: i32,
    base: *mut u8,
    len: usize,
    /// Switch-out waiting for its switch-in: (monotonic ns, preempted).
    pending_out: Option<(u64, bool)>,
    /// Whether `pending_out` was recorded as an open interval already.
    announced: bool,
    /// When the thread registered (monotonic ns), until a drain records it.
    registered_at: Option<u64>,
}

// SAFETY: the mapping is only touched under the EVENTS mutex.
unsafe impl Send for ThreadEvent {}

impl Drop for ThreadEvent {
    fn drop(&mut self) {
        // SAFETY: base/len come from a successful mmap and fd from perf_event_open; both are
        // released once, here.
        unsafe {
            libc::munmap(self.base.cast(), self.len);
            libc::close(self.fd);
        }
    }
}

static EVENTS: Mutex<Vec<ThreadEvent>> = Mutex::new(Vec::new());
/// Context-switch records the kernel dropped because a thread's buffer was full between two
/// drains (`PERF_RECORD_LOST`): off-CPU time there is missing from the recorder.
static LOST: AtomicU64 = AtomicU64::new(0);

/// Context-switch records the kernel dropped so far, over all threads; `None` while the source
/// is off (nothing could be lost).
pub(crate) fn lost_records() -> Option<u64> {
    enabled().then(|| LOST.load(Ordering::Relaxed))
}
static ENABLED: AtomicBool = AtomicBool::new(false);

/// Probes, and when permitted turns the source on for threads registered from now on.
pub(crate) fn enable() -> Result<(), String> {
    probe()?;
    ENABLED.store(true, Ordering::Relaxed);
    Ok(())
}

/// Whether [`enable`] succeeded.
pub(crate) fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

fn open_for_current_thread() -> Result<(i32, *mut u8, usize), String> {
    let attr = PerfEventAttr {
        type_: PERF_TYPE_SOFTWARE,
        size: std::mem::size_of::<PerfEventAttr>() as u32,
        config: PERF_COUNT_SW_DUMMY,
        sample_period: 1,
        sample_type: PERF_SAMPLE_TID | PERF_SAMPLE_TIME,
        flags: EXCLUDE_KERNEL | EXCLUDE_HV | SAMPLE_ID_ALL | USE_CLOCKID | CONTEXT_SWITCH,
        clockid: libc::CLOCK_MONOTONIC,
        ..PerfEventAttr::default()
    };
    // SAFETY: attr is a valid perf_event_attr of the size it declares; pid 0 = this thread,
    // cpu -1 = any CPU, no group, no flags.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            &attr as *const PerfEventAttr,
            0,
            -1,
            -1,
            0,
        )
    };
    if fd < 0 {
        let err = std::io::Error::last_os_error();
        let paranoid =
            std::fs::read_to_string("/proc/sys/kernel/perf_event_paranoid").unwrap_or_default();
        return Err(format!(
            "perf_event_open denied ({err}; perf_event_paranoid={})",
            paranoid.trim()
        ));
    }
    let fd = fd as i32;
    let len = PAGE * (1 + DATA_PAGES);
    // SAFETY: mapping a perf fd read-write shared is how its ring buffer is read.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd,
            0,
        )
    };
    if base == libc::MAP_FAILED {
        let err = std::io::Error::last_os_error();
        // SAFETY: fd is ours.
        unsafe { libc::close(fd) };
        return Err(format!("cannot map the perf ring buffer ({err})"));
    }
    Ok((fd, base.cast(), len))
}

/// Whether this process may open context-switch events (tried once on the calling thread).
pub fn probe() -> Result<(), String> {
    let (fd, base, len) = open_for_current_thread()?;
    drop(ThreadEvent {
        tid: 0,
        fd,
        base,
        len,
        pending_out: None,
        announced: false,
        registered_at: None,
    });
    Ok(())
}

thread_local! {
    /// Whether this thread has tried to open its event (so it does it once).
    static TRIED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Opens the calling thread's event if it has not yet: runtime threads started before
/// [`enable`] (a runtime built before `granular::init()`) catch up at their next park.
#[inline]
pub(crate) fn ensure_current_thread() {
    if enabled() && !TRIED.try_with(std::cell::Cell::get).unwrap_or(true) {
        register_current_thread();
    }
}

/// Opens the calling thread's event (runtime `on_thread_start`). Failures are silent here:
/// [`probe`] reported them once at init.
pub(crate) fn register_current_thread() {
    if !enabled() {
        return;
    }
    if TRIED.try_with(|t| t.replace(true)).unwrap_or(true) {
        return;
    }
    if let Ok((fd, base, len)) = open_for_current_thread() {
        let tid = recorder::current_tid();
        if let Ok(mut events) = EVENTS.lock() {
            events.push(ThreadEvent {
                tid,
                fd,
                base,
                len,
                pending_out: None,
                announced: false,
                registered_at: Some(crate::clock::monotonic_ns()),
            });
        }
    }
}

/// Closes the calling thread's event (runtime `on_thread_stop`), after a last drain, and
/// records the thread off CPU from now on: nothing will close that interval, and a reader
/// must not take the exited thread for one still running since its last switch-in.
pub(crate) fn unregister_current_thread() {
    if !enabled() {
        return;
    }
    let tid = recorder::current_tid();
    let found = EVENTS.lock().is_ok_and(|mut events| {
        let mut found = false;
        for ev in events.iter_mut().filter(|e| e.tid == tid) {
            drain(ev);
            found = true;
        }
        events.retain(|e| e.tid != tid);
        found
    });
    if found {
        recorder::write(&OffCpu {
            tid,
            preempted: false,
            out_ns: crate::clock::monotonic_ns(),
            duration_ns: None,
        });
    }
}

/// Drains every thread's ring into the recorder (called by the OS sampler thread and before
/// each analyzer snapshot); returns the fullest ring's fill before the drain, as a fraction
/// of its size (what the sampler paces its drains by).
pub(crate) fn drain_all() -> f64 {
    let Ok(mut events) = EVENTS.lock() else {
        return 0.0;
    };
    let most = events.iter_mut().map(drain).max().unwrap_or(0);
    most as f64 / (PAGE * DATA_PAGES) as f64
}

/// Drains one thread's ring; returns the bytes it held.
fn drain(ev: &mut ThreadEvent) -> u64 {
    // Offsets of data_head / data_tail in struct perf_event_mmap_page.
    const HEAD: usize = 1024;
    const TAIL: usize = 1032;
    let data_len = (PAGE * DATA_PAGES) as u64;
    // SAFETY: HEAD and TAIL are 8-aligned u64 fields inside the first (metadata) page of a
    // live mapping; the kernel writes data_head, we write data_tail, as the perf ABI specifies.
    let (head_ptr, tail_ptr) = unsafe {
        (
            &*(ev.base.add(HEAD) as *const AtomicU64),
            &*(ev.base.add(TAIL) as *const AtomicU64),
        )
    };
    if let Some(at) = ev.registered_at.take() {
        recorder::write(&OffCpu {
            tid: ev.tid,
            preempted: false,
            out_ns: at,
            duration_ns: Some(0),
        });
    }
    let head = head_ptr.load(Ordering::Acquire);
    let mut tail = tail_ptr.load(Ordering::Relaxed);
    let held = head.saturating_sub(tail);
    let data = ev.base.wrapping_add(PAGE);
    let read = |off: u64, buf: &mut [u8]| {
        for (i, b) in buf.iter_mut().enumerate() {
            // SAFETY: the offset is reduced modulo the data area's size.
            *b = unsafe { *data.add(((off + i as u64) % data_len) as usize) };
        }
    };
    while tail + 8 <= head {
        let mut hdr = [0u8; 8];
        read(tail, &mut hdr);
        let kind = u32::from_ne_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]);
        let misc = u16::from_ne_bytes([hdr[4], hdr[5]]);
        let size = u16::from_ne_bytes([hdr[6], hdr[7]]) as u64;
        if size < 8 || tail + size > head {
            break;
        }
        // The records read here are 24 bytes; larger ones are passed over unread.
        let mut buf = [0u8; 56];
        let body = buf.get_mut(..(size - 8) as usize).unwrap_or_default();
        read(tail + 8, body);
        tail += size;
        match kind {
            PERF_RECORD_SWITCH if body.len() >= 16 => {
                // sample_id: u32 pid, u32 tid, u64 time.
                let time = u64::from_ne_bytes(body[8..16].try_into().unwrap_or([0; 8]));
                if misc & MISC_SWITCH_OUT != 0 {
                    ev.pending_out = Some((time, misc & MISC_SWITCH_OUT_PREEMPT != 0));
                    ev.announced = false;
                } else if let Some((out_ns, preempted)) = ev.pending_out.take() {
                    recorder::write(&OffCpu {
                        tid: ev.tid,
                        preempted,
                        out_ns,
                        duration_ns: Some(time.saturating_sub(out_ns)),
                    });
                }
            }
            PERF_RECORD_LOST if body.len() >= 16 => {
                let n = u64::from_ne_bytes(body[8..16].try_into().unwrap_or([0; 8]));
                LOST.fetch_add(n, Ordering::Relaxed);
                ev.pending_out = None;
            }
            _ => {}
        }
    }
    fence(Ordering::Release);
    tail_ptr.store(tail, Ordering::Release);
    if let Some((out_ns, preempted)) = ev.pending_out.filter(|_| !ev.announced) {
        recorder::write(&OffCpu {
            tid: ev.tid,
            preempted,
            out_ns,
            duration_ns: None,
        });
        ev.announced = true;
    }
    held
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attr_has_the_ver5_layout() {
        assert_eq!(std::mem::size_of::<PerfEventAttr>(), 112);
    }

    /// A thread that switches more often than its buffer holds between two drains loses
    /// records, and the count says so (the kernel's count was once kept and reported nowhere).
    #[test]
    fn records_the_kernel_drops_are_counted() {
        match probe() {
            Err(why) => assert!(why.contains("perf_event_open"), "{why}"),
            Ok(()) => {
                ENABLED.store(true, Ordering::Relaxed);
                crate::recorder::FlightRecorder::install(crate::recorder::RecorderSize::default());
                let before = lost_records().expect("the source is on");
                std::thread::spawn(|| {
                    register_current_thread();
                    // Two switch records a sleep; the 64 KiB buffer holds about 1,400.
                    for _ in 0..4_000 {
                        std::thread::sleep(std::time::Duration::from_micros(1));
                    }
                    drain_all();
                    // The kernel writes its count of lost records with the next record that
                    // fits, once the drain made room.
                    std::thread::sleep(std::time::Duration::from_millis(1));
                    drain_all();
                    unregister_current_thread();
                })
                .join()
                .unwrap();
                let after = lost_records().expect("the source is on");
                assert!(
                    after > before,
                    "no lost record counted: {before} -> {after}"
                );
            }
        }
    }

    /// Runs wherever perf is permitted (it is here, at perf_event_paranoid=2); elsewhere it
    /// checks that the refusal is explained. A reader must be able to tell a sleeping thread
    /// from a running one at any time: from its registration on, through a sleep a drain
    /// catches half-way (open, then closed with the same switch-out time), and after it exits.
    #[test]
    fn a_sleep_shows_up_as_a_voluntary_off_cpu_interval() {
        use crate::recorder::codec::{self, Event};
        match probe() {
            Err(why) => assert!(why.contains("perf_event_open"), "{why}"),
            Ok(()) => {
                ENABLED.store(true, Ordering::Relaxed);
                crate::recorder::FlightRecorder::install(crate::recorder::RecorderSize::default());
                let (registered, asleep) = std::sync::mpsc::channel();
                let handle = std::thread::spawn(move || {
                    register_current_thread();
                    registered.send(recorder::current_tid()).unwrap();
                    std::thread::sleep(std::time::Duration::from_millis(30));
                    std::thread::sleep(std::time::Duration::from_millis(1));
                    drain_all();
                    unregister_current_thread();
                });
                let tid = asleep.recv().unwrap();
                std::thread::sleep(std::time::Duration::from_millis(10));
                drain_all(); // half-way through the 30 ms sleep
                handle.join().unwrap();
                let snap = crate::recorder::FlightRecorder::get().unwrap().snapshot();
                // (switch-out, duration, open) of the thread's records.
                let intervals: Vec<(u64, u64, bool)> = snap
                    .threads
                    .iter()
                    .flat_map(|t| codec::events(t.records()))
                    .filter_map(|e| match e.event {
                        Event::OffCpu(off) if off.tid == tid => Some((
                            off.out_ns,
                            off.duration_ns.unwrap_or(0),
                            off.duration_ns.is_none(),
                        )),
                        _ => None,
                    })
                    .collect();
                let (out, longest) = intervals
                    .iter()
                    .filter(|i| !i.2)
                    .map(|i| (i.0, i.1))
                    .max_by_key(|i| i.1)
                    .unwrap_or_default();
                assert!(
                    longest >= 29_000_000,
                    "longest off-CPU interval {longest} ns for a 30 ms sleep: {intervals:?}"
                );
                assert!(
                    intervals.contains(&(out, 0, true)),
                    "the drain during the sleep recorded it open: {intervals:?}"
                );
                let first = intervals.first().copied().unwrap_or_default();
                assert!(
                    first.1 == 0 && !first.2 && first.0 < out,
                    "the registration comes first, closed and of length 0: {intervals:?}"
                );
                let last = intervals.last().copied().unwrap_or_default();
                assert!(
                    last.2 && last.0 > out + longest,
                    "the exit comes last, open: {intervals:?}"
                );
            }
        }
    }
}

//! Real threads blocked in real syscalls, sampled from this process's `/proc`.

use std::sync::mpsc;
use std::time::Duration;

use super::*;
use crate::recorder::codec::tasks::PollStart;
use crate::recorder::codec::threads::Park;
use crate::recorder::codec::{self, Event};
use crate::recorder::{FlightRecorder, RecorderSize};

/// The wait samples recorded for thread `tid`: (syscall name, state, wait channel, object).
fn samples_of(tid: u64) -> Vec<(String, u8, String, String)> {
    let snap = FlightRecorder::get().expect("installed").snapshot();
    snap.threads
        .iter()
        .flat_map(|t| codec::events(t.records()))
        .filter_map(|e| match e.event {
            Event::WaitSample(s) if s.tid == tid => {
                let text = s.text.to_string_lossy();
                let (wchan, object) = text.split_once('\t').unwrap_or_default();
                Some((
                    syscalls::name(s.nr),
                    s.state,
                    wchan.to_string(),
                    object.to_string(),
                ))
            }
            _ => None,
        })
        .collect()
}

/// Runs `block` on a registered thread that first writes `first` (so its ring says where it
/// is), samples it a few times while it blocks, and returns its samples.
fn sampled_while(
    inside: bool,
    block: impl FnOnce() + Send + 'static,
) -> Vec<(String, u8, String, String)> {
    FlightRecorder::install(RecorderSize::default());
    HZ.store(200, Ordering::Relaxed);
    let (ready, registered) = mpsc::channel();
    let handle = std::thread::spawn(move || {
        register_current_thread();
        if inside {
            recorder::write(&PollStart {
                task: 1,
                counters: None,
            });
        } else {
            recorder::write(&Park);
        }
        ready.send(recorder::current_tid()).unwrap();
        block();
        unregister_current_thread();
    });
    let tid = registered.recv().unwrap();
    for _ in 0..8 {
        std::thread::sleep(Duration::from_millis(10));
        sample();
    }
    handle.join().unwrap();
    samples_of(tid)
}

#[test]
fn a_sleep_inside_work_is_named_with_its_requested_time() {
    let samples = sampled_while(true, || std::thread::sleep(Duration::from_millis(150)));
    assert!(samples.len() >= 4, "{samples:?}");
    for (syscall, state, wchan, object) in &samples {
        assert_eq!(syscall, "clock_nanosleep");
        assert_eq!(*state, b'S');
        assert!(wchan.contains("nanosleep"), "{wchan}");
        assert_eq!(object, "std::thread::sleep (150 ms requested)");
    }
}

#[test]
fn a_parked_thread_is_not_sampled() {
    let samples = sampled_while(false, || std::thread::sleep(Duration::from_millis(150)));
    assert!(samples.is_empty(), "{samples:?}");
}

#[test]
fn a_contended_std_mutex_is_named() {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let (locked, holding) = mpsc::channel();
    let release = std::thread::spawn(move || {
        let _guard = LOCK.lock().unwrap();
        locked.send(()).unwrap();
        std::thread::sleep(Duration::from_millis(150));
    });
    holding.recv().unwrap();
    let samples = sampled_while(true, || drop(LOCK.lock().unwrap()));
    release.join().unwrap();
    let address = format!("{:#x}", &LOCK as *const _ as usize);
    assert!(samples.len() >= 4, "{samples:?}");
    for (syscall, _, _, object) in &samples {
        assert_eq!(syscall, "futex");
        assert!(
            object.starts_with("contended std::sync lock (futex 0x"),
            "{object}"
        );
        assert!(
            object.contains(&address[..address.len() - 2]),
            "{object} vs {address}"
        );
    }
}

#[test]
fn a_child_process_output_is_named_by_its_pipes() {
    let samples = sampled_while(true, || {
        std::process::Command::new("sleep")
            .arg("0.15")
            .output()
            .unwrap();
    });
    assert!(samples.len() >= 4, "{samples:?}");
    let named = samples
        .iter()
        .filter(|s| s.0 == "poll" || s.0 == "ppoll")
        .filter(|s| s.3.starts_with("pipes of child ") && s.3.contains("(sleep)"))
        .count();
    assert!(named * 4 >= samples.len() * 3, "{samples:?}");
}

#[test]
fn a_socket_read_is_named_by_its_peer() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        std::thread::sleep(Duration::from_millis(150));
        s.write_all(b"x").unwrap();
    });
    let samples = sampled_while(true, move || {
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        let mut b = [0u8; 1];
        c.read_exact(&mut b).unwrap();
    });
    server.join().unwrap();
    assert!(samples.len() >= 4, "{samples:?}");
    for (syscall, _, _, object) in &samples {
        assert_eq!(syscall, "recvfrom");
        assert!(
            object.starts_with(&format!("socket {addr} (local 127.0.0.1:")),
            "{object}"
        );
    }
}

#[test]
fn parses_the_kernels_lines() {
    assert_eq!(parse_syscall("running\n"), None);
    assert_eq!(
        parse_syscall("230 0x1 0x0 0x7f 0x7f 0x0 0x0 0x7ffd 0x7f12\n"),
        Some((230, [1, 0, 0x7f, 0x7f, 0, 0]))
    );
    assert_eq!(
        parse_syscall("-1 0x7f437ca65c30 0x5606c0261680\n"),
        Some((-1, [0; 6]))
    );
    assert_eq!(parse_syscall("230 0x1\n"), None);
    assert_eq!(
        syscall_key("230 0x1 0x0 0x7f 0x7f 0x0 0x0 0x7ffd 0x7f12\n"),
        "230 0x1 0x0 0x7f 0x7f 0x0 0x0"
    );
    assert_eq!(parse_state("12 (tokio (rt) w) S 1 2 3"), Some(b'S'));
    assert_eq!(
        parse_faults("12 (tokio (rt) w) S 1 2 3 0 -1 4194624 4242 0 7 0 5 1"),
        Some((4242, 7))
    );
    assert_eq!(parse_faults("12 (w) S 1 2"), None);
    assert_eq!(parse_state("no parenthesis"), None);
}

#[test]
fn a_thread_is_inside_work_until_its_outermost_entry_exits() {
    use Kind::*;
    let at = |newest_first: &[Kind]| inside(newest_first.iter().copied());
    assert!(at(&[PollStart]));
    assert!(at(&[SpanEnter, Unpark]));
    // A child span came and went; the handler's entry is still open.
    assert!(at(&[
        SpanClose, SpanExit, SpanEnter, SpanIds, SpanNew, SpanEnter, Unpark
    ]));
    // The handler's entry closed at the end of its poll.
    assert!(!at(&[SpanExit, SpanEnter, Unpark]));
    assert!(!at(&[Park, SpanExit, SpanEnter]));
    assert!(!at(&[PollEnd, SpanExit, SpanEnter, PollStart]));
    assert!(at(&[BlockingStart, BlockingQueued]));
    assert!(!at(&[BlockingEnd, BlockingStart]));
    assert!(!at(&[ThreadStart]));
    assert!(!at(&[]));
    // A long field value, nothing decisive in reach: written inside a span.
    assert!(at(&[Field]));
}

/// A runtime thread started before sampling was enabled (a runtime built before
/// `granular::init()`) registered nothing at its start; its next park registers it. Before,
/// such threads, the demo's workers among them, were never sampled.
#[test]
fn a_thread_not_registered_at_its_start_is_registered_at_its_next_park() {
    FlightRecorder::install(RecorderSize::default());
    HZ.store(200, Ordering::Relaxed);
    let (ready, registered) = mpsc::channel();
    let handle = std::thread::spawn(move || {
        ensure_current_thread(); // what on_thread_park does
        recorder::write(&PollStart {
            task: 1,
            counters: None,
        });
        ready.send(recorder::current_tid()).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        unregister_current_thread();
    });
    let tid = registered.recv().unwrap();
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(10));
        sample();
    }
    handle.join().unwrap();
    let samples = samples_of(tid);
    assert!(samples.len() >= 3, "{samples:?}");
    assert!(
        samples.iter().all(|s| s.0 == "clock_nanosleep"),
        "{samples:?}"
    );
}

/// Two blocking reads with the same syscall line (same fd number, reused; same buffer and
/// length) wait on different fifos: the second is named by its own fifo. Before, the name of
/// the first was reused for the second (the demo's fifo and socket requests were named after
/// the previous request's fifo or peer).
#[test]
fn a_new_call_with_the_same_arguments_is_named_again() {
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;
    use std::os::unix::ffi::OsStrExt;
    const SAME_FD: i32 = 1000;
    FlightRecorder::install(RecorderSize::default());
    HZ.store(200, Ordering::Relaxed);
    let dir = std::env::temp_dir();
    let paths: Vec<std::path::PathBuf> = ["a", "b"]
        .iter()
        .map(|n| dir.join(format!("granular-waits-{}-{n}.fifo", std::process::id())))
        .collect();
    for p in &paths {
        let _ = std::fs::remove_file(p);
        let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    }
    let (opened, fds) = mpsc::channel();
    let reader_paths = paths.clone();
    let reader = std::thread::spawn(move || {
        register_current_thread();
        recorder::write(&PollStart {
            task: 1,
            counters: None,
        });
        let tid = recorder::current_tid();
        let mut buf = [0u8; 1];
        for p in &reader_paths {
            // Read-write: opening never blocks, and the read waits for data.
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(p)
                .unwrap();
            // The same fd number both times, whatever other tests open meanwhile.
            // SAFETY: dup2 onto a number this test alone uses; the File below owns it.
            assert_eq!(unsafe { libc::dup2(f.as_raw_fd(), SAME_FD) }, SAME_FD);
            drop(f);
            // SAFETY: SAME_FD is open (dup2 above) and owned by nothing else.
            let mut f = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(SAME_FD) };
            opened.send((tid, f.as_raw_fd())).unwrap();
            f.read_exact(&mut buf).unwrap();
        }
        unregister_current_thread();
    });
    let mut tid = 0;
    let mut fd_numbers = Vec::new();
    for p in &paths {
        let (t, fd) = fds.recv().unwrap();
        tid = t;
        fd_numbers.push(fd);
        for _ in 0..3 {
            std::thread::sleep(Duration::from_millis(10));
            sample();
        }
        std::fs::OpenOptions::new()
            .write(true)
            .open(p)
            .unwrap()
            .write_all(b"x")
            .unwrap();
    }
    reader.join().unwrap();
    for p in &paths {
        let _ = std::fs::remove_file(p);
    }
    assert_eq!(fd_numbers[0], fd_numbers[1], "the fd number was reused");
    let objects: Vec<String> = samples_of(tid).into_iter().map(|s| s.3).collect();
    let named = |p: &std::path::PathBuf| {
        let want = format!("fifo {}", p.display());
        objects.iter().filter(|o| **o == want).count()
    };
    // With the bug every sample of the second read named the first fifo (unless another
    // test's sampling caught the thread between the reads, in another call).
    assert!(named(&paths[0]) >= 2, "{objects:?}");
    assert!(named(&paths[1]) >= 2, "{objects:?}");
}

/// A fault's cost is timed on the thread's CPU clock: some nanoseconds to some microseconds
/// per page, whatever else the machine runs meanwhile.
#[test]
fn a_fresh_page_costs_a_fault_of_thread_cpu_time() {
    let ns = super::touch_fresh_pages(64).expect("an anonymous mapping and a CPU clock");
    assert!((50..1_000_000).contains(&ns), "{ns} ns per fresh page");
}

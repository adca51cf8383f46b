//! What wait sampling costs the sampler thread per registered thread and period, by what the
//! thread is doing: parked (its ring says so: nothing read), inside work and running (`syscall`
//! reads `running`), inside work and blocked (a sample written; its object named once), and
//! what naming an object costs when the syscall changes. The request path pays none of it.
//! Run: `cargo bench -p granular --bench waits -- --warm-up-time 1 --measurement-time 3`;
//! results in docs/benchmarks.md ("Wait sampling").

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use granular::__internal::capture::{
    describe_wait, enable_wait_sampling, register_for_wait_sampling, sample_waits,
    unregister_from_wait_sampling,
};
use granular::__internal::recorder::codec::tasks::PollStart;
use granular::__internal::recorder::codec::threads::Park;
use granular::__internal::recorder::{FlightRecorder, write};
use granular::RecorderSize;

/// A registered thread doing `what` until the returned guard is dropped.
struct Subject {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Subject {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

fn subject(inside_work: bool, what: fn(&AtomicBool)) -> Subject {
    let stop = Arc::new(AtomicBool::new(false));
    let (ready, started) = std::sync::mpsc::channel();
    let flag = stop.clone();
    let thread = std::thread::spawn(move || {
        register_for_wait_sampling();
        if inside_work {
            write(&PollStart {
                task: 1,
                counters: None,
            });
        } else {
            write(&Park);
        }
        ready.send(()).unwrap();
        what(&flag);
        unregister_from_wait_sampling();
    });
    started.recv().unwrap();
    std::thread::sleep(Duration::from_millis(20));
    Subject {
        stop,
        thread: Some(thread),
    }
}

fn sleeping(stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn spinning(stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        std::hint::spin_loop();
    }
}

fn bench(c: &mut Criterion) {
    FlightRecorder::install(RecorderSize::default());
    enable_wait_sampling(200).expect("/proc/thread-self/syscall is readable");
    let mut g = c.benchmark_group("wait sampling, one registered thread");
    {
        let _s = subject(false, sleeping);
        g.bench_function("parked (ring says so)", |b| b.iter(sample_waits));
    }
    {
        let _s = subject(true, spinning);
        g.bench_function("inside work, running", |b| b.iter(sample_waits));
    }
    {
        let _s = subject(true, sleeping);
        g.bench_function("inside work, blocked (sample written)", |b| {
            b.iter(sample_waits)
        });
    }
    g.finish();
    let mut g = c.benchmark_group("naming a wait's object");
    let ts: [i64; 2] = [0, 80_000_000];
    g.bench_function("clock_nanosleep (reads the timespec)", |b| {
        b.iter(|| {
            describe_wait(
                libc::SYS_clock_nanosleep,
                &[1, 0, ts.as_ptr() as u64, 0, 0, 0],
                b'S',
            )
        })
    });
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&client) as u64;
    g.bench_function(
        "recvfrom on a TCP socket (readlink, fstat, peer and local address)",
        |b| b.iter(|| describe_wait(libc::SYS_recvfrom, &[fd, 0, 1, 0, 0, 0], b'S')),
    );
    g.bench_function("futex", |b| {
        b.iter(|| describe_wait(libc::SYS_futex, &[0x1000, 0x89, 2, 0, 0, 0], b'S'))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

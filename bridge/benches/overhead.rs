//! Side-by-side runtime-instrumentation overhead: the same workload on a 2-worker multi-thread
//! tokio runtime, once per configuration, in one process.
//!
//! Workloads: (a) `yield_now` polls spread over 8 tasks, (b) tiny `tokio::spawn`s awaited in
//! batches of 100,000. Configurations:
//!
//! | name | what | needs |
//! |---|---|---|
//! | `none` | plain runtime | |
//! | `tokio-sched-latency` | only tokio's `track_task_schedule_latency()` (part of Granular's setup) | `--cfg tokio_unstable` |
//! | `granular` | `instrument_runtime` + `install_recorder(&Config::default())` | |
//! | `tokio-metrics` | every spawned future wrapped in one `TaskMonitor` | |
//! | `console` | console-subscriber's layer as the default subscriber on the runtime's threads | `--cfg tokio_unstable --cfg granular_compare` |
//! | `dial9` | dial9 recorder (64 MiB in-memory buffer) attached to the runtime, tasks spawned with `dial9::spawn` | `--cfg tokio_unstable --cfg granular_compare` |
//!
//! `granular_compare` is this bench's own cfg: it brings in console-subscriber and dial9 (see
//! bridge/Cargo.toml for why they are not in every tokio_unstable build).
//!
//! The cost measured is the process's CPU time (`CLOCK_PROCESS_CPUTIME_ID`: both workers, the
//! driver, and every background thread a tool starts) per poll or spawn; wall time per poll is
//! printed too but swings with how evenly the two workers happen to share the tasks.
//!
//! Two measurements, both printed:
//! 1. an alternating run: rounds that each run every configuration once (order rotated per
//!    round), minimum and median per configuration, with ns added over `none` and ratios. This is the table
//!    for docs/benchmarks.md: alternating keeps a noisy shared machine's drift out of the ratios;
//! 2. criterion, one benchmark per (workload, configuration); one criterion iteration is one
//!    yield poll or one spawn and the time criterion sees is process CPU time, so its slope is
//!    CPU ns per poll / per spawn.
//!
//! Then the recorder's bytes per event on each workload.
//!
//! ```text
//! cargo bench -p granular --bench overhead -- --warm-up-time 1 --measurement-time 5
//! RUSTFLAGS="--cfg tokio_unstable" CARGO_TARGET_DIR=target/unstable cargo bench -p granular --bench overhead -- --warm-up-time 1 --measurement-time 5
//! RUSTFLAGS="--cfg tokio_unstable --cfg granular_compare" CARGO_TARGET_DIR=target/compare cargo bench -p granular --bench overhead -- --warm-up-time 1 --measurement-time 5
//! ```
//! `-- --test` runs every benchmark once and a single alternating round (smoke test).
//! `GRANULAR_OVERHEAD_ROUNDS` sets the number of alternating rounds (default 30).

use std::future::Future;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::Criterion;
use granular::__internal::recorder::{FlightRecorder, Kind, RECORD_BYTES};
use tokio::runtime::{Builder, Runtime};

const WORKERS: usize = 2;
const YIELD_TASKS: u64 = 8;
/// Spawns are awaited in batches of this many.
const SPAWN_BATCH: u64 = 100_000;
/// Alternating run: yield polls and spawns per run.
const ALT_YIELDS: u64 = 200_000;
const ALT_SPAWNS: u64 = 50_000;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Workload {
    /// `n` yield polls over [`YIELD_TASKS`] tasks.
    Yield(u64),
    /// `n` tiny spawns, awaited in batches.
    Spawn(u64),
}

/// How a configuration spawns tasks.
#[derive(Clone)]
enum Spawner {
    Tokio,
    Metrics(tokio_metrics::TaskMonitor),
    #[cfg(all(tokio_unstable, granular_compare))]
    Dial9,
}

impl Spawner {
    fn spawn<F>(&self, f: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match self {
            Spawner::Tokio => tokio::spawn(f),
            Spawner::Metrics(m) => tokio::spawn(m.instrument(f)),
            #[cfg(all(tokio_unstable, granular_compare))]
            Spawner::Dial9 => dial9::spawn(f),
        }
    }
}

async fn driver(sp: Spawner, w: Workload) {
    match w {
        Workload::Yield(n) => {
            let per_task = n.div_ceil(YIELD_TASKS);
            let tasks: Vec<_> = (0..YIELD_TASKS)
                .map(|_| {
                    sp.spawn(async move {
                        for _ in 0..per_task {
                            tokio::task::yield_now().await;
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
        }
        Workload::Spawn(n) => {
            let mut left = n;
            let mut handles = Vec::with_capacity(n.min(SPAWN_BATCH) as usize);
            while left > 0 {
                let batch = left.min(SPAWN_BATCH);
                left -= batch;
                for i in 0..batch {
                    handles.push(sp.spawn(async move {
                        black_box(i);
                    }));
                }
                for h in handles.drain(..) {
                    h.await.unwrap();
                }
            }
        }
    }
}

/// CPU time of the whole process so far.
fn process_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_PROCESS_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// What one run cost.
#[derive(Clone, Copy, Debug)]
struct Sample {
    wall: Duration,
    cpu: Duration,
}

/// CPU ns per operation over a configuration's runs: (minimum, median, median wall ns).
/// Interference from other processes only ever adds time, so the minimum is the steadiest
/// estimate of the intrinsic cost on a shared machine; the median is shown beside it.
fn per_op(samples: &[Sample], ops: u64) -> (f64, f64, f64) {
    let mut cpu: Vec<f64> = samples
        .iter()
        .map(|s| s.cpu.as_nanos() as f64 / ops as f64)
        .collect();
    let mut wall: Vec<f64> = samples
        .iter()
        .map(|s| s.wall.as_nanos() as f64 / ops as f64)
        .collect();
    let min = cpu.iter().copied().fold(f64::INFINITY, f64::min);
    (min, median(&mut cpu), median(&mut wall))
}

/// One configuration: its runtime and how it spawns.
struct Setup {
    name: &'static str,
    rt: Runtime,
    spawner: Spawner,
    /// Subscriber for the thread that calls `block_on` (console: its spans start there).
    dispatch: Option<tracing::Dispatch>,
    /// Whatever must live as long as the runtime (dial9's recorder).
    _keep: Option<Box<dyn std::any::Any>>,
}

impl Setup {
    fn plain(name: &'static str, builder: &mut Builder, spawner: Spawner) -> Setup {
        Setup {
            name,
            rt: builder.build().expect("runtime"),
            spawner,
            dispatch: None,
            _keep: None,
        }
    }

    /// Runs `w` once, from a driver task on the runtime.
    fn run(&self, w: Workload) -> Sample {
        let sp = self.spawner.clone();
        let go = || {
            self.rt.block_on(async move {
                let (wall, cpu) = (Instant::now(), process_cpu());
                sp.clone().spawn(driver(sp, w)).await.unwrap();
                Sample {
                    wall: wall.elapsed(),
                    cpu: process_cpu() - cpu,
                }
            })
        };
        match &self.dispatch {
            Some(d) => tracing::dispatcher::with_default(d, go),
            None => go(),
        }
    }
}

fn runtime_builder() -> Builder {
    let mut b = Builder::new_multi_thread();
    b.worker_threads(WORKERS).enable_all();
    b
}

fn none() -> Setup {
    Setup::plain("none", &mut runtime_builder(), Spawner::Tokio)
}

#[cfg(tokio_unstable)]
fn sched_latency_only() -> Setup {
    let mut b = runtime_builder();
    b.track_task_schedule_latency();
    Setup::plain("tokio-sched-latency", &mut b, Spawner::Tokio)
}

fn granular() -> Setup {
    let sources = granular::install_recorder(&granular::Config::default());
    eprintln!("granular sources: {sources}");
    let mut b = runtime_builder();
    granular::instrument_runtime(&mut b);
    Setup::plain("granular", &mut b, Spawner::Tokio)
}

fn tokio_metrics() -> Setup {
    Setup::plain(
        "tokio-metrics",
        &mut runtime_builder(),
        Spawner::Metrics(tokio_metrics::TaskMonitor::new()),
    )
}

#[cfg(all(tokio_unstable, granular_compare))]
fn console() -> Setup {
    use tracing_subscriber::layer::SubscriberExt;
    // A free loopback port for its gRPC server (the default 6669 may be taken).
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free loopback port");
    // Completed tasks are kept 1 h by default; millions of benchmark spawns would grow memory
    // without bound, so keep 10 s.
    let layer = console_subscriber::ConsoleLayer::builder()
        .server_addr(addr)
        .retention(Duration::from_secs(10))
        .spawn();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    let mut b = runtime_builder();
    let on_threads = dispatch.clone();
    // Not a global default (one per process, and it would see the other configurations'
    // runtimes): the default on this runtime's threads only, for their whole life.
    b.on_thread_start(move || std::mem::forget(tracing::dispatcher::set_default(&on_threads)));
    Setup {
        dispatch: Some(dispatch),
        ..Setup::plain("console", &mut b, Spawner::Tokio)
    }
}

#[cfg(all(tokio_unstable, granular_compare))]
fn dial9() -> Setup {
    use dial9::Dial9HandleTokioExt;
    // Same memory as Granular's default recorder, kept in process (no disk, no upload).
    let writer = dial9::MemoryBuffer::new(64 << 20).expect("dial9 memory buffer");
    let recorder = dial9::recorder(writer).build();
    let rt = recorder
        .handle()
        .attach_tokio_runtime(
            runtime_builder(),
            dial9::TokioAttachOptions::builder()
                .task_tracking_enabled(true)
                .build(),
        )
        .expect("dial9 runtime");
    Setup {
        name: "dial9",
        rt,
        spawner: Spawner::Dial9,
        dispatch: None,
        _keep: Some(Box::new(recorder)),
    }
}

fn setups() -> Vec<Setup> {
    let mut v = vec![none()];
    #[cfg(tokio_unstable)]
    v.push(sched_latency_only());
    v.push(granular());
    v.push(tokio_metrics());
    #[cfg(all(tokio_unstable, granular_compare))]
    {
        v.push(console());
        v.push(dial9());
    }
    v
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The alternating run; prints a markdown table. `before`: `none`'s runs before Granular's
/// recorder (and its process-wide sampler thread) was installed.
fn alternating(setups: &[Setup], rounds: usize, before: (&[Sample], &[Sample])) {
    let n = setups.len();
    let mut yields = vec![Vec::new(); n];
    let mut spawns = vec![Vec::new(); n];
    for s in setups {
        // Warm-up, not counted: threads, allocator arenas, the recorder's rings.
        s.run(Workload::Yield(ALT_YIELDS));
        s.run(Workload::Spawn(ALT_SPAWNS));
    }
    for r in 0..rounds {
        for k in 0..n {
            let i = (r + k) % n;
            yields[i].push(setups[i].run(Workload::Yield(ALT_YIELDS)));
            spawns[i].push(setups[i].run(Workload::Spawn(ALT_SPAWNS)));
        }
    }
    let y: Vec<(f64, f64, f64)> = yields.iter().map(|v| per_op(v, ALT_YIELDS)).collect();
    let s: Vec<(f64, f64, f64)> = spawns.iter().map(|v| per_op(v, ALT_SPAWNS)).collect();
    println!();
    println!(
        "alternating run: {rounds} rounds x {n} configurations; per run {ALT_YIELDS} yield polls \
         ({YIELD_TASKS} tasks) and {ALT_SPAWNS} spawns; {WORKERS} workers; tokio_unstable: {}",
        cfg!(tokio_unstable)
    );
    println!(
        "process CPU ns per operation (all threads), minimum over rounds (median); added and \
         ratio from the minimums; wall = median wall-clock ns per operation"
    );
    println!();
    println!(
        "| configuration | CPU ns/poll | added | ratio | wall ns/poll | CPU ns/spawn | added | ratio | wall ns/spawn |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    type Op = (f64, f64, f64);
    let row = |name: &str, y: Op, s: Op, y0: Op, s0: Op| {
        println!(
            "| {name} | {:.0} ({:.0}) | {:+.0} | {:.2} | {:.0} | {:.0} ({:.0}) | {:+.0} | {:.2} | {:.0} |",
            y.0,
            y.1,
            y.0 - y0.0,
            y.0 / y0.0,
            y.2,
            s.0,
            s.1,
            s.0 - s0.0,
            s.0 / s0.0,
            s.2
        )
    };
    if !before.0.is_empty() {
        row(
            "none, before Granular was installed",
            per_op(before.0, ALT_YIELDS),
            per_op(before.1, ALT_SPAWNS),
            y[0],
            s[0],
        );
    }
    for i in 0..n {
        row(setups[i].name, y[i], s[i], y[0], s[0]);
    }
    println!();
}

/// Records and events (headers) the recorder holds beyond `marks` (per ring: records written).
fn recorder_growth(marks: &[(usize, u64)]) -> (u64, u64, Vec<(Kind, u64)>) {
    let snap = FlightRecorder::get().expect("recorder").snapshot();
    let (mut records, mut events) = (0, 0);
    let mut kinds = vec![0u64; 256];
    for t in &snap.threads {
        let from = marks
            .iter()
            .find(|(r, _)| *r == t.ring)
            .map_or(0, |(_, m)| *m);
        for (n, r) in t.records().iter().enumerate() {
            if t.first_seq() + n as u64 >= from {
                records += 1;
                if r.kind() != Some(Kind::Payload) {
                    events += 1;
                    kinds[r.kind_byte() as usize] += 1;
                }
            }
        }
    }
    let kinds = kinds
        .iter()
        .enumerate()
        .filter(|(_, c)| **c > 0)
        .filter_map(|(k, c)| Some((Kind::from_u8(k as u8)?, *c)))
        .collect();
    (records, events, kinds)
}

fn ring_marks() -> Vec<(usize, u64)> {
    FlightRecorder::get()
        .expect("recorder")
        .snapshot()
        .threads
        .iter()
        .map(|t| (t.ring, t.first_seq() + t.records().len() as u64))
        .collect()
}

/// Bytes per event the recorder keeps for one run of each workload on `granular`.
fn bytes_per_event(g: &Setup) {
    println!("recorder bytes per event (records x {RECORD_BYTES} / events, all rings):");
    for w in [Workload::Yield(100_000), Workload::Spawn(20_000)] {
        let marks = ring_marks();
        g.run(w);
        let (records, events, kinds) = recorder_growth(&marks);
        println!(
            "  {w:?}: {events} events in {records} records = {:.1} B/event; by kind: {kinds:?}",
            (records * RECORD_BYTES as u64) as f64 / events.max(1) as f64
        );
    }
    println!();
}

fn criterion_benches(c: &mut Criterion, setups: &[Setup]) {
    for (group, make) in [
        (
            "overhead/yield_poll",
            Workload::Yield as fn(u64) -> Workload,
        ),
        ("overhead/spawn", Workload::Spawn as fn(u64) -> Workload),
    ] {
        let mut g = c.benchmark_group(group);
        g.sample_size(10);
        for s in setups {
            // One criterion iteration = one poll (or spawn): `iters` of them per sample, so the
            // regression slope is the per-poll cost without the per-run task setup.
            g.bench_function(s.name, |b| b.iter_custom(|iters| s.run(make(iters)).cpu));
        }
        g.finish();
    }
}

fn main() {
    let test_mode = std::env::args().any(|a| a == "--test");
    let rounds: usize = if test_mode {
        1
    } else {
        std::env::var("GRANULAR_OVERHEAD_ROUNDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(30)
    };
    // `none` alone first, before Granular's process-wide sampler thread exists.
    let before = none();
    before.run(Workload::Yield(ALT_YIELDS));
    before.run(Workload::Spawn(ALT_SPAWNS));
    let (mut by, mut bs) = (Vec::new(), Vec::new());
    for _ in 0..rounds.div_ceil(3) {
        by.push(before.run(Workload::Yield(ALT_YIELDS)));
        bs.push(before.run(Workload::Spawn(ALT_SPAWNS)));
    }
    drop(before);

    let setups = setups();
    alternating(&setups, rounds, (&by, &bs));
    let g = setups
        .iter()
        .find(|s| s.name == "granular")
        .expect("granular setup");
    bytes_per_event(g);

    let mut c = Criterion::default().configure_from_args();
    criterion_benches(&mut c, &setups);
    c.final_summary();
}

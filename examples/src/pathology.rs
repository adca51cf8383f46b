//! The ways a `/messages` request can be made slow on purpose, each a real one.
//!
//! Every pathology really does what it says (blocks a worker, does blocking I/O, allocates,
//! queues on the blocking pool, waits on a downstream hop, burns CPU in an unspanned child task
//! or on the blocking pool where no span follows it, fans out to spanned tasks, closes spans on
//! blocking-pool threads, waits for a lock another request holds, blocks the worker in a
//! syscall on a known object: [`waits`]), because Granular is meant to tell these apart from
//! what the runtime actually saw, and to export the traces they make whole.

pub mod waits;

use std::collections::VecDeque;
use std::fmt;
use std::fs::File;
use std::hint::black_box;
use std::io::{self, Read, Write};
use std::net::ToSocketAddrs;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::task::JoinError;
use tracing::Instrument;

use crate::error::AppError;
use crate::params::bounded;
use crate::rng::SplitMix64;

/// A pathology by name only: what `DEMO_PATHOLOGY`, `x-pathology`, `?pathology=` and the load
/// driver's `--mix` refer to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathologyKind {
    /// A healthy request.
    None,
    /// `std::thread::sleep` inside the handler: the worker thread is blocked.
    Block,
    /// Blocking file I/O (write, fsync, read) and a blocking DNS lookup inside the handler.
    BlockFile,
    /// Many short-lived allocations of 4–64 KiB inside the handler.
    Alloc,
    /// A batch of `spawn_blocking` jobs that queue for the small blocking pool.
    SpawnBlocking,
    /// An awaited HTTP call to a slow downstream: idle time, not runtime trouble.
    Downstream,
    /// The db step's work runs as CPU in a spawned child task that has no span of its own.
    Child,
    /// An awaited timer in the handler: slow, yet nothing is wrong with the runtime (idle).
    Sleep,
    /// CPU work on the blocking pool through `tokio::task::spawn_blocking`, which no tokio hook
    /// reports: Granular sees the pool's CPU but not whose it is.
    TokioBlocking,
    /// CPU work through `granular::spawn_blocking`, queued from a spawned child task that has no
    /// span: without task hooks the job is seen but not whose it is.
    ChildBlocking,
    /// An allocation storm in a child span (`alloc.Storm`), in 1 KiB pieces kept across
    /// `yield_now`s and freed at the end: the root's figure must count it once.
    NestedAlloc,
    /// The work spread over spawned tasks, each in its own span (`fanout.task`), which close
    /// on whichever worker runs them.
    Fanout,
    /// Jobs on tokio's own `spawn_blocking` (which Granular's hooks do not see), each in a span
    /// (`blocking.job`) the handler creates and the blocking-pool thread enters and closes.
    BlockingSpans,
    /// A process-wide async lock held across an awaited timer (`lock.held`), which a concurrent
    /// `lock` request waits for (`lock.wait`).
    Lock,
    /// A process-wide `std::sync::Mutex` locked and held over a `std::thread::sleep` of `ms`
    /// (0: released at once): a concurrent `std_lock` request blocks its worker in a futex wait.
    StdLock,
    /// `std::process::Command` output of `sleep` in the handler: blocked in `poll` on the child's
    /// pipes.
    Command,
    /// `std::process::Child::wait` on `sleep` in the handler: blocked in `wait4`.
    CommandStatus,
    /// A blocking `read` of a named pipe a helper thread writes only after `ms`.
    Fifo,
    /// A blocking `TcpStream::read` of a loopback peer that answers only after `ms`.
    Socket,
    /// `mib` MiB read with `O_DIRECT` in blocking 1 MiB reads: the worker waits for the disk.
    DiskRead,
}

impl PathologyKind {
    /// Every kind, in the order error messages list them.
    pub const ALL: [PathologyKind; 20] = [
        Self::None,
        Self::Block,
        Self::BlockFile,
        Self::Alloc,
        Self::SpawnBlocking,
        Self::Downstream,
        Self::Child,
        Self::Sleep,
        Self::TokioBlocking,
        Self::ChildBlocking,
        Self::NestedAlloc,
        Self::Fanout,
        Self::BlockingSpans,
        Self::Lock,
        Self::StdLock,
        Self::Command,
        Self::CommandStatus,
        Self::Fifo,
        Self::Socket,
        Self::DiskRead,
    ];

    /// The name used on the wire and in the response JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Block => "block",
            Self::BlockFile => "blockfile",
            Self::Alloc => "alloc",
            Self::SpawnBlocking => "spawn_blocking",
            Self::Downstream => "downstream",
            Self::Child => "child",
            Self::Sleep => "sleep",
            Self::TokioBlocking => "tokio_blocking",
            Self::ChildBlocking => "child_blocking",
            Self::NestedAlloc => "nested_alloc",
            Self::Fanout => "fanout",
            Self::BlockingSpans => "blocking_spans",
            Self::Lock => "lock",
            Self::StdLock => "std_lock",
            Self::Command => "command",
            Self::CommandStatus => "command_status",
            Self::Fifo => "fifo",
            Self::Socket => "socket",
            Self::DiskRead => "disk_read",
        }
    }

    /// The valid names, comma-separated, for error messages.
    pub fn valid_names() -> String {
        Self::ALL.map(Self::name).join(", ")
    }
}

impl fmt::Display for PathologyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not a pathology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownPathology(pub String);

impl fmt::Display for UnknownPathology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown pathology {:?}: expected one of {}",
            self.0,
            PathologyKind::valid_names()
        )
    }
}

impl std::error::Error for UnknownPathology {}

impl FromStr for PathologyKind {
    type Err = UnknownPathology;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.name() == s)
            .ok_or_else(|| UnknownPathology(s.to_owned()))
    }
}

/// The raw tuning parameters of a request (`ms`, `mib`, `jobs` from the query string).
#[derive(Debug, Default, Clone, Copy)]
pub struct RawParams<'a> {
    /// Milliseconds: how long to block, sleep, burn or delay.
    pub ms: Option<&'a str>,
    /// Mebibytes: how much to allocate or write.
    pub mib: Option<&'a str>,
    /// How many `spawn_blocking` jobs to submit, or tasks to fan out to.
    pub jobs: Option<&'a str>,
}

/// Upper bound for every `ms` parameter: long enough for any demo, short enough not to hang it.
const MAX_MS: u64 = 10_000;

/// A pathology with its parameters resolved, ready to be applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pathology {
    /// See [`PathologyKind::None`].
    None,
    /// See [`PathologyKind::Block`].
    Block { sleep: Duration },
    /// See [`PathologyKind::BlockFile`].
    BlockFile { mib: u64 },
    /// See [`PathologyKind::Alloc`].
    Alloc { mib: u64 },
    /// See [`PathologyKind::SpawnBlocking`].
    SpawnBlocking { jobs: u64, sleep: Duration },
    /// See [`PathologyKind::Downstream`].
    Downstream { delay: Duration },
    /// See [`PathologyKind::Child`].
    Child { cpu: Duration },
    /// See [`PathologyKind::Sleep`].
    Sleep { delay: Duration },
    /// See [`PathologyKind::TokioBlocking`].
    TokioBlocking { cpu: Duration },
    /// See [`PathologyKind::ChildBlocking`].
    ChildBlocking { cpu: Duration },
    /// See [`PathologyKind::NestedAlloc`].
    NestedAlloc { mib: u64 },
    /// See [`PathologyKind::Fanout`].
    Fanout { tasks: u64, delay: Duration },
    /// See [`PathologyKind::BlockingSpans`].
    BlockingSpans { jobs: u64, sleep: Duration },
    /// See [`PathologyKind::Lock`].
    Lock { hold: Duration },
    /// See [`PathologyKind::StdLock`].
    StdLock { hold: Duration },
    /// See [`PathologyKind::Command`].
    Command { wait: Duration },
    /// See [`PathologyKind::CommandStatus`].
    CommandStatus { wait: Duration },
    /// See [`PathologyKind::Fifo`].
    Fifo { delay: Duration },
    /// See [`PathologyKind::Socket`].
    Socket { delay: Duration },
    /// See [`PathologyKind::DiskRead`].
    DiskRead { mib: u64 },
}

impl Pathology {
    /// Resolves `kind`'s parameters from `raw`, using the documented defaults for absent ones.
    pub fn new(kind: PathologyKind, raw: RawParams<'_>) -> Result<Self, AppError> {
        let ms = |default| bounded(raw.ms, "ms", default, MAX_MS).map(Duration::from_millis);
        Ok(match kind {
            PathologyKind::None => Self::None,
            PathologyKind::Block => Self::Block { sleep: ms(50)? },
            PathologyKind::BlockFile => Self::BlockFile {
                mib: bounded(raw.mib, "mib", 4, 64)?,
            },
            PathologyKind::Alloc => Self::Alloc {
                mib: bounded(raw.mib, "mib", 64, 1024)?,
            },
            PathologyKind::SpawnBlocking => Self::SpawnBlocking {
                jobs: bounded(raw.jobs, "jobs", 16, 1024)?,
                sleep: ms(30)?,
            },
            PathologyKind::Downstream => Self::Downstream { delay: ms(80)? },
            PathologyKind::Child => Self::Child { cpu: ms(20)? },
            PathologyKind::Sleep => Self::Sleep { delay: ms(100)? },
            PathologyKind::TokioBlocking => Self::TokioBlocking { cpu: ms(30)? },
            PathologyKind::ChildBlocking => Self::ChildBlocking { cpu: ms(30)? },
            PathologyKind::NestedAlloc => Self::NestedAlloc {
                mib: bounded(raw.mib, "mib", 64, 1024)?,
            },
            PathologyKind::Fanout => Self::Fanout {
                tasks: bounded(raw.jobs, "jobs", 4, 64)?,
                delay: ms(2)?,
            },
            PathologyKind::BlockingSpans => Self::BlockingSpans {
                jobs: bounded(raw.jobs, "jobs", 2, 64)?,
                sleep: ms(5)?,
            },
            PathologyKind::Lock => Self::Lock { hold: ms(20)? },
            PathologyKind::StdLock => Self::StdLock { hold: ms(20)? },
            PathologyKind::Command => Self::Command { wait: ms(50)? },
            PathologyKind::CommandStatus => Self::CommandStatus { wait: ms(50)? },
            PathologyKind::Fifo => Self::Fifo { delay: ms(50)? },
            PathologyKind::Socket => Self::Socket { delay: ms(50)? },
            PathologyKind::DiskRead => Self::DiskRead {
                mib: bounded(raw.mib, "mib", 32, waits::DISK_FILE_MIB)?,
            },
        })
    }

    /// Which kind this is.
    pub fn kind(self) -> PathologyKind {
        match self {
            Self::None => PathologyKind::None,
            Self::Block { .. } => PathologyKind::Block,
            Self::BlockFile { .. } => PathologyKind::BlockFile,
            Self::Alloc { .. } => PathologyKind::Alloc,
            Self::SpawnBlocking { .. } => PathologyKind::SpawnBlocking,
            Self::Downstream { .. } => PathologyKind::Downstream,
            Self::Child { .. } => PathologyKind::Child,
            Self::Sleep { .. } => PathologyKind::Sleep,
            Self::TokioBlocking { .. } => PathologyKind::TokioBlocking,
            Self::ChildBlocking { .. } => PathologyKind::ChildBlocking,
            Self::NestedAlloc { .. } => PathologyKind::NestedAlloc,
            Self::Fanout { .. } => PathologyKind::Fanout,
            Self::BlockingSpans { .. } => PathologyKind::BlockingSpans,
            Self::Lock { .. } => PathologyKind::Lock,
            Self::StdLock { .. } => PathologyKind::StdLock,
            Self::Command { .. } => PathologyKind::Command,
            Self::CommandStatus { .. } => PathologyKind::CommandStatus,
            Self::Fifo { .. } => PathologyKind::Fifo,
            Self::Socket { .. } => PathologyKind::Socket,
            Self::DiskRead { .. } => PathologyKind::DiskRead,
        }
    }
}

/// Blocks the current thread, which inside async code is a tokio worker.
pub fn block_worker(sleep: Duration) {
    std::thread::sleep(sleep);
}

/// Source of unique temp file names, so concurrent requests never share a file.
static NEXT_FILE: AtomicU64 = AtomicU64::new(0);

/// Removes the temp file however the I/O ends, so the demo never leaves files behind.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A temp path no other request uses: `granular-demo-<pid>-<n>.<ext>`.
fn temp_path(ext: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "granular-demo-{}-{}.{ext}",
        std::process::id(),
        NEXT_FILE.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Writes `mib` MiB to a temp file, fsyncs it, reads it back, deletes it, then resolves
/// `localhost` — all with blocking std calls, as careless async code does.
pub fn blocking_file_and_dns(mib: u64) -> io::Result<()> {
    let path = temp_path("bin");
    let _cleanup = RemoveOnDrop(path.clone());
    let chunk = vec![0xA5u8; 1 << 20];
    let mut file = File::create(&path)?;
    for _ in 0..mib {
        file.write_all(&chunk)?;
    }
    file.sync_all()?;
    drop(file);
    let mut back = Vec::with_capacity(chunk.len() * mib as usize);
    File::open(&path)?.read_to_end(&mut back)?;
    if back.len() as u64 != mib << 20 {
        return Err(io::Error::other("the temp file read back short"));
    }
    ("localhost", 80).to_socket_addrs()?;
    Ok(())
}

/// How many of the storm's allocations stay alive at once: enough to churn the allocator's free
/// lists, few enough that peak memory stays around 0.5 MiB whatever `mib` is.
const LIVE_ALLOCATIONS: usize = 8;

/// Allocates `mib` MiB in 4–64 KiB pieces, writing every byte so the pages are really touched,
/// and returns the bytes allocated (a little over `mib` MiB, as the last piece is not trimmed).
pub fn allocation_storm(mib: u64) -> u64 {
    let target = mib << 20;
    let mut sizes = SplitMix64::new(mib);
    let mut live = VecDeque::with_capacity(LIVE_ALLOCATIONS);
    let mut total = 0u64;
    while total < target {
        let size = 4096 + (sizes.next_u64() % (60 * 1024 + 1)) as usize;
        let piece = vec![(total as u8) | 1; size];
        if live.len() == LIVE_ALLOCATIONS {
            black_box(live.pop_front());
        }
        live.push_back(black_box(piece));
        total += size as u64;
    }
    total
}

/// Submits `jobs` blocking sleeps to the blocking pool at once and awaits them all; with a small
/// pool most of them queue for a thread, which is the point.
pub async fn queue_on_blocking_pool(jobs: u64, sleep: Duration) -> Result<(), JoinError> {
    let handles: Vec<_> = (0..jobs)
        .map(|_| granular::spawn_blocking(move || std::thread::sleep(sleep)))
        .collect();
    for handle in handles {
        handle.await?;
    }
    Ok(())
}

/// Burns `cpu` worth of CPU on the blocking pool through tokio's own `spawn_blocking` and
/// awaits it.
pub async fn cpu_on_tokio_blocking_pool(cpu: Duration) -> Result<u64, JoinError> {
    tokio::task::spawn_blocking(move || crate::cpu::burn(cpu)).await
}

/// Burns `cpu` worth of CPU through `granular::spawn_blocking`, queued from a plainly spawned
/// child task (no span), and awaits it.
pub async fn cpu_on_blocking_pool_from_unspanned_child(cpu: Duration) -> Result<u64, JoinError> {
    tokio::spawn(async move { granular::spawn_blocking(move || crate::cpu::burn(cpu)).await })
        .await?
}

/// Pieces of the nested storm: 1 KiB each, a yield after every MiB.
const NESTED_PIECE: usize = 1024;

/// Minor page faults the process took so far (`getrusage(RUSAGE_SELF)`).
pub fn process_minor_faults() -> u64 {
    // SAFETY: getrusage writes into the zeroed struct it is given.
    unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage.ru_minflt as u64
    }
}

/// Allocates `mib` MiB in 1 KiB pieces inside the span `alloc.Storm`, yielding to the runtime
/// after every MiB and keeping every piece until the end; returns the bytes allocated,
/// including the list that holds the pieces.
pub async fn nested_allocation_storm(mib: u64) -> u64 {
    async move {
        let pieces = (mib << 20) as usize / NESTED_PIECE;
        let mut kept: Vec<Vec<u8>> = Vec::with_capacity(pieces);
        for i in 0..pieces {
            kept.push(black_box(vec![(i as u8) | 1; NESTED_PIECE]));
            if (i + 1) % ((1 << 20) / NESTED_PIECE) == 0 {
                tokio::task::yield_now().await;
            }
        }
        let list = (kept.capacity() * std::mem::size_of::<Vec<u8>>()) as u64;
        black_box(kept.len() as u64 * NESTED_PIECE as u64 + list)
    }
    .instrument(tracing::info_span!("alloc.Storm"))
    .await
}

/// Burns `cpu` worth of CPU in a plainly spawned child task (no span, no instrumentation) and
/// awaits it: the parent's span sees only an idle wait unless Granular follows the spawn.
pub async fn cpu_in_unspanned_child(cpu: Duration) -> Result<u64, JoinError> {
    tokio::spawn(async move { crate::cpu::burn(cpu) }).await
}

/// Spawns `tasks` child tasks, each in its own `fanout.task` span (a child of the current one)
/// awaiting a timer of `delay`, and awaits them all: the spans are created here and entered and
/// closed on whichever worker runs each task.
pub async fn fan_out(tasks: u64, delay: Duration) -> Result<(), JoinError> {
    let handles: Vec<_> = (0..tasks)
        .map(|task| {
            let span = tracing::info_span!("fanout.task", task = task as i64);
            tokio::spawn(tokio::time::sleep(delay).instrument(span))
        })
        .collect();
    for handle in handles {
        handle.await?;
    }
    Ok(())
}

/// Runs `jobs` blocking sleeps on tokio's own `spawn_blocking`, each in a `blocking.job` span
/// created here (a child of the current one) and entered and closed on the blocking-pool thread.
pub async fn blocking_jobs_with_spans(jobs: u64, sleep: Duration) -> Result<(), JoinError> {
    let handles: Vec<_> = (0..jobs)
        .map(|job| {
            let span = tracing::info_span!("blocking.job", job = job as i64);
            tokio::task::spawn_blocking(move || span.in_scope(|| std::thread::sleep(sleep)))
        })
        .collect();
    for handle in handles {
        handle.await?;
    }
    Ok(())
}

/// The lock the `lock` pathology contends for.
static LOCK: Mutex<()> = Mutex::const_new(());

/// Waits for the process-wide lock (span `lock.wait`), then holds it across an awaited timer of
/// `hold` (span `lock.held`), as a handler that keeps a lock over an `.await` does.
pub async fn hold_lock(hold: Duration) {
    let guard = LOCK
        .lock()
        .instrument(tracing::info_span!("lock.wait"))
        .await;
    tokio::time::sleep(hold)
        .instrument(tracing::info_span!("lock.held"))
        .await;
    drop(guard);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for kind in PathologyKind::ALL {
            assert_eq!(kind.name().parse::<PathologyKind>(), Ok(kind));
        }
    }

    #[test]
    fn unknown_name_lists_the_valid_ones() {
        let err = "slow"
            .parse::<PathologyKind>()
            .expect_err("not a pathology")
            .to_string();
        assert!(err.contains("\"slow\""), "{err}");
        assert!(
            err.contains("block, blockfile, alloc, spawn_blocking"),
            "{err}"
        );
    }

    #[test]
    fn defaults_and_params() {
        let none = RawParams::default();
        assert_eq!(
            Pathology::new(PathologyKind::Block, none).ok(),
            Some(Pathology::Block {
                sleep: Duration::from_millis(50)
            })
        );
        let raw = RawParams {
            ms: Some("5"),
            jobs: Some("3"),
            ..none
        };
        assert_eq!(
            Pathology::new(PathologyKind::SpawnBlocking, raw).ok(),
            Some(Pathology::SpawnBlocking {
                jobs: 3,
                sleep: Duration::from_millis(5)
            })
        );
        let too_big = RawParams {
            mib: Some("65"),
            ..none
        };
        assert!(Pathology::new(PathologyKind::BlockFile, too_big).is_err());
    }

    #[test]
    fn allocation_storm_reports_what_it_allocated() {
        let total = allocation_storm(2);
        assert!((2 << 20..(2 << 20) + 64 * 1024).contains(&total), "{total}");
        assert_eq!(allocation_storm(0), 0);
    }

    #[tokio::test]
    async fn nested_storm_reports_what_it_allocated() {
        let list = (1 << 10) * std::mem::size_of::<Vec<u8>>() as u64;
        assert_eq!(nested_allocation_storm(1).await, (1 << 20) + list);
    }

    #[test]
    fn blocking_file_cleans_up() {
        blocking_file_and_dns(1).expect("temp file and localhost lookup");
    }
}

//! Blocking calls in async code that each wait on one known thing — a contended std mutex, a
//! child process, a fifo, a socket, the disk — and say what it was ([`WaitTruth`]), so a test can
//! compare Granular's `granular.blocked.syscall` and `.object` with the truth.
//!
//! Each runs on the request's tokio worker, inside its span, as careless async code does; each
//! is bounded by its parameter (a helper thread or child ends the wait) and leaves no file,
//! fifo, socket or process behind.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{RemoveOnDrop, temp_path};

/// What a blocking pathology waited on and for how long, as the handler knows it: the ground
/// truth returned in the `/messages` answer (`waited_on`).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct WaitTruth {
    /// Wall time of the blocking call(s), µs, measured around them by the handler.
    pub waited_us: u64,
    /// The handler thread's CPU time during them, µs (`disk_read`: the part that was not a wait).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_us: Option<u64>,
    /// The child process waited for (`command`, `command_status`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Its command name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<&'static str>,
    /// The fifo or file read (`fifo`, `disk_read`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The socket's peer and local addresses (`socket`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local: Option<String>,
    /// The contended mutex's address, `0x…` (`std_lock`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mutex: Option<String>,
}

fn micros(d: Duration) -> u64 {
    d.as_micros().try_into().unwrap_or(u64::MAX)
}

/// The std mutex `std_lock` requests contend for.
static STD_LOCK: Mutex<()> = Mutex::new(());

/// Locks the process-wide std mutex and keeps it while `std::thread::sleep`ing `hold`: a
/// `std_lock` request with `hold` 0 on another worker meanwhile blocks in `lock()` (a futex wait)
/// until this one lets go.
pub fn std_lock(hold: Duration) -> WaitTruth {
    let start = Instant::now();
    let guard = STD_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
    if !hold.is_zero() {
        std::thread::sleep(hold);
    }
    drop(guard);
    WaitTruth {
        waited_us: micros(start.elapsed()),
        mutex: Some(format!("{:#x}", &STD_LOCK as *const Mutex<()> as usize)),
        ..WaitTruth::default()
    }
}

/// `sleep`'s argument for `d`: seconds with millisecond decimals.
fn sleep_arg(d: Duration) -> String {
    format!("{}.{:03}", d.as_secs(), d.subsec_millis())
}

/// Runs `sleep <wait>` and collects its output as `Command::output` does: the thread blocks in
/// `poll` on the child's stdout and stderr pipes until it exits.
pub fn command_output(wait: Duration) -> io::Result<WaitTruth> {
    let start = Instant::now();
    let child = Command::new("sleep")
        .arg(sleep_arg(wait))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let pid = child.id();
    let output = child.wait_with_output()?;
    if !output.status.success() {
        return Err(io::Error::other(format!("sleep failed: {}", output.status)));
    }
    Ok(WaitTruth {
        waited_us: micros(start.elapsed()),
        pid: Some(pid),
        command: Some("sleep"),
        ..WaitTruth::default()
    })
}

/// Runs `sleep <wait>` and waits for it as `Command::status` does: the thread blocks in `wait4`
/// on the child.
pub fn command_status(wait: Duration) -> io::Result<WaitTruth> {
    let start = Instant::now();
    let mut child = Command::new("sleep")
        .arg(sleep_arg(wait))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let pid = child.id();
    let status = child.wait()?;
    if !status.success() {
        return Err(io::Error::other(format!("sleep failed: {status}")));
    }
    Ok(WaitTruth {
        waited_us: micros(start.elapsed()),
        pid: Some(pid),
        command: Some("sleep"),
        ..WaitTruth::default()
    })
}

/// A helper thread that writes `data` to `to` after `delay`, then closes it.
fn write_later<W: Write + Send + 'static>(
    mut to: W,
    delay: Duration,
    data: &'static [u8],
) -> io::Result<JoinHandle<io::Result<()>>> {
    std::thread::Builder::new()
        .name("demo-writer".into())
        .spawn(move || {
            std::thread::sleep(delay);
            to.write_all(data)
        })
}

/// Reads until `data`'s length or end of stream, timing the blocking reads.
fn read_timed(from: &mut impl Read, len: usize) -> io::Result<(usize, Duration)> {
    let start = Instant::now();
    let mut buf = [0u8; 64];
    let mut got = 0;
    while got < len {
        match from.read(&mut buf[got..len])? {
            0 => break,
            n => got += n,
        }
    }
    Ok((got, start.elapsed()))
}

/// What the helper writes; the handler reads exactly this much.
const READY: &[u8] = b"ready\n";

/// Joins a helper writer, turning its failure (or panic) into an error.
fn joined(helper: JoinHandle<io::Result<()>>) -> io::Result<()> {
    helper
        .join()
        .map_err(|_| io::Error::other("the helper thread panicked"))?
}

/// Makes a named pipe and reads from it with a blocking `read` while a helper thread writes to
/// it only after `delay`; the fifo is removed afterwards.
pub fn fifo(delay: Duration) -> io::Result<WaitTruth> {
    let path = temp_path("fifo");
    let c_path = CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
    // SAFETY: `c_path` is a valid NUL-terminated string for the duration of the call.
    if unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let _cleanup = RemoveOnDrop(path.clone());
    // Opening either end alone would block until the other is opened; the reader opens
    // non-blocking first, so the writer's open succeeds at once, then the reader blocks again.
    let mut reader = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&path)?;
    let writer = OpenOptions::new().write(true).open(&path)?;
    set_blocking(&reader)?;
    let helper = write_later(writer, delay, READY)?;
    let (got, waited) = read_timed(&mut reader, READY.len())?;
    joined(helper)?;
    if got != READY.len() {
        return Err(io::Error::other("the fifo closed before its writer wrote"));
    }
    Ok(WaitTruth {
        waited_us: micros(waited),
        path: Some(path.display().to_string()),
        ..WaitTruth::default()
    })
}

/// Clears `O_NONBLOCK` on `file`.
fn set_blocking(file: &File) -> io::Result<()> {
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on an fd this function's caller owns, with integer arguments only.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    // SAFETY: as above.
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Connects to a loopback listener whose helper thread accepts and answers only after
/// `delay`, and reads the answer with a blocking `TcpStream::read` (a `recvfrom`).
pub fn socket(delay: Duration) -> io::Result<WaitTruth> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let peer = listener.local_addr()?;
    // The connection completes in the listener's backlog, before anyone accepts it.
    let mut stream = TcpStream::connect(peer)?;
    let local = stream.local_addr()?;
    let (accepted, _) = listener.accept()?;
    drop(listener);
    let helper = write_later(accepted, delay, READY)?;
    let (got, waited) = read_timed(&mut stream, READY.len())?;
    joined(helper)?;
    if got != READY.len() {
        return Err(io::Error::other("the socket closed before its peer wrote"));
    }
    Ok(WaitTruth {
        waited_us: micros(waited),
        peer: Some(peer.to_string()),
        local: Some(local.to_string()),
        ..WaitTruth::default()
    })
}

/// Size of the file `disk_read` reads from, MiB: the largest `mib` it accepts.
pub const DISK_FILE_MIB: u64 = 128;
/// `O_DIRECT` reads need buffers, offsets and lengths aligned to the device's block size;
/// 4 KiB covers the common ones.
const DIRECT_ALIGN: usize = 4096;
const CHUNK: usize = 1 << 20;

/// The file `disk_read` reads: written once per process, dropped from the page cache, and
/// unlinked at once so it never outlives the process (the open fd keeps it). Its path is kept
/// for the answer.
static DISK_FILE: Mutex<Option<(PathBuf, File)>> = Mutex::new(None);

/// Reads the first `mib` MiB of the demo's disk file with `O_DIRECT` (bypassing the page
/// cache), in 1 MiB blocking `read`s: on a real disk the thread waits for the device (state D)
/// in each. The first call writes the file (`DISK_FILE_MIB` MiB, fsynced) before the timed
/// reads. On a filesystem without `O_DIRECT` (tmpfs) it fails with the OS's error.
pub fn disk_read(mib: u64) -> io::Result<WaitTruth> {
    let (path, mut file) = open_disk_file()?;
    let mut buf = vec![0u8; CHUNK + DIRECT_ALIGN];
    let offset = buf.as_ptr().align_offset(DIRECT_ALIGN);
    let chunk = &mut buf[offset..offset + CHUNK];
    let cpu_before = crate::cpu::thread_cpu()?;
    let start = Instant::now();
    for _ in 0..mib {
        file.read_exact(chunk)?;
    }
    let waited = start.elapsed();
    let cpu = crate::cpu::thread_cpu()?.saturating_sub(cpu_before);
    Ok(WaitTruth {
        waited_us: micros(waited),
        cpu_us: Some(micros(cpu)),
        path: Some(path.display().to_string()),
        ..WaitTruth::default()
    })
}

/// A fresh `O_DIRECT` descriptor of the disk file (its own offset), writing the file first if
/// this process has none yet.
fn open_disk_file() -> io::Result<(PathBuf, File)> {
    let mut kept = DISK_FILE.lock().unwrap_or_else(PoisonError::into_inner);
    if kept.is_none() {
        *kept = Some(write_disk_file()?);
    }
    let Some((path, keeper)) = kept.as_ref() else {
        return Err(io::Error::other("the disk file was not kept"));
    };
    let direct = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(format!("/proc/self/fd/{}", keeper.as_raw_fd()))?;
    Ok((path.clone(), direct))
}

fn write_disk_file() -> io::Result<(PathBuf, File)> {
    let path = temp_path("disk");
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    let _unlink = RemoveOnDrop(path.clone());
    let mut piece = vec![0u8; CHUNK];
    for (i, b) in piece.iter_mut().enumerate() {
        *b = (i * 31 % 251) as u8;
    }
    for _ in 0..DISK_FILE_MIB {
        file.write_all(&piece)?;
    }
    file.sync_all()?;
    // SAFETY: fadvise on an fd this function owns, with integer arguments only.
    let advised = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    if advised != 0 {
        return Err(io::Error::from_raw_os_error(advised));
    }
    Ok((path, file))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(30);

    fn at_least(truth: &WaitTruth, wait: Duration) {
        assert!(truth.waited_us >= micros(wait), "{truth:?}");
        assert!(truth.waited_us < micros(wait) + 2_000_000, "{truth:?}");
    }

    #[test]
    fn a_held_std_lock_makes_the_other_request_wait() {
        let holder = std::thread::spawn(|| std_lock(Duration::from_millis(80)));
        std::thread::sleep(Duration::from_millis(10));
        let waiter = std_lock(Duration::ZERO);
        let holder = holder.join().expect("holder");
        assert!(waiter.waited_us >= 50_000, "{waiter:?}");
        assert_eq!(waiter.mutex, holder.mutex);
        assert!(waiter.mutex.as_deref().is_some_and(|m| m.starts_with("0x")));
    }

    #[test]
    fn commands_wait_for_their_child() {
        for truth in [command_output(MS), command_status(MS)] {
            let truth = truth.expect("sleep runs");
            at_least(&truth, MS);
            assert!(truth.pid.is_some_and(|p| p > 0), "{truth:?}");
        }
    }

    #[test]
    fn fifo_waits_for_its_writer_and_is_removed() {
        let truth = fifo(MS).expect("fifo");
        at_least(&truth, MS);
        let path = truth.path.expect("path");
        assert!(!std::path::Path::new(&path).exists(), "{path} removed");
    }

    #[test]
    fn socket_waits_for_its_peer() {
        let truth = socket(MS).expect("socket");
        at_least(&truth, MS);
        assert!(truth.peer.is_some_and(|p| p.starts_with("127.0.0.1:")));
    }

    #[test]
    fn disk_read_reads_without_leaving_the_file() {
        match disk_read(2) {
            Ok(truth) => {
                let path = truth.path.expect("path");
                assert!(!std::path::Path::new(&path).exists(), "{path} unlinked");
                assert!(truth.cpu_us.is_some());
            }
            // tmpfs has no O_DIRECT: the error must name the OS's reason.
            Err(e) => assert_eq!(e.raw_os_error(), Some(libc::EINVAL), "{e}"),
        }
    }
}

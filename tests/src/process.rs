//! Child processes with a log file, readiness waits and guaranteed cleanup.
//!
//! stdout and stderr of the child go, line by line, to one log file under
//! [`crate::log_dir`]. The child runs in its own process group; dropping the
//! [`Process`] stops the whole group (SIGTERM, then SIGKILL after a grace
//! period). On Linux the child is also SIGKILLed if the thread that spawned
//! it dies without dropping the guard (e.g. the test binary is interrupted),
//! so keep the guard on the spawning thread; a service several tests use is
//! started on a thread that lives as long as the binary ([`crate::shared`]).

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use crate::{Error, Result};

/// How long a process gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// Lines of log shown when something fails.
const TAIL_LINES: usize = 40;
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Configures a child process; [`ProcessBuilder::spawn`] starts it.
#[derive(Debug)]
pub struct ProcessBuilder {
    name: String,
    command: Command,
}

impl ProcessBuilder {
    /// `name` identifies the process in messages and in its log file's name.
    pub fn new(name: impl Into<String>, program: impl AsRef<OsStr>) -> Self {
        Self {
            name: name.into(),
            command: Command::new(program),
        }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.command.arg(arg);
        self
    }

    pub fn args(mut self, args: impl IntoIterator<Item = impl AsRef<OsStr>>) -> Self {
        self.command.args(args);
        self
    }

    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.command.env(key, value);
        self
    }

    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Self {
        self.command.env_remove(key);
        self
    }

    /// Starts the process. Returns once it is spawned, not once it is ready:
    /// follow with [`Process::wait_for_line`] or [`Process::wait_until`].
    pub fn spawn(mut self) -> Result<Process> {
        let log_path = new_log_path(&self.name)?;
        let mut log = File::create(&log_path)
            .map_err(|e| Error::new(format!("cannot create {}: {e}", log_path.display())))?;
        let header = format!("$ {}\n", redacted(&self.command));
        log.write_all(header.as_bytes())
            .map_err(|e| Error::new(format!("cannot write {}: {e}", log_path.display())))?;

        self.command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        #[cfg(target_os = "linux")]
        // SAFETY: the closure runs between fork and exec; it only calls
        // prctl(2), which is async-signal-safe, and allocates nothing.
        unsafe {
            self.command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = self.command.spawn().map_err(|e| {
            Error::new(format!(
                "cannot start {} ({:?}): {e}",
                self.name,
                self.command.get_program()
            ))
        })?;

        let log = Arc::new(Mutex::new(log));
        if let Some(stdout) = child.stdout.take() {
            copy_lines(stdout, Arc::clone(&log));
        }
        if let Some(stderr) = child.stderr.take() {
            copy_lines(stderr, log);
        }
        Ok(Process {
            name: self.name,
            child,
            log_path,
            scanned: header.len() as u64,
            tail_shown: false,
            stopped: false,
        })
    }
}

/// A running child process; stopped (with its process group) on drop.
#[derive(Debug)]
pub struct Process {
    name: String,
    child: Child,
    log_path: PathBuf,
    /// Bytes of the log already examined by `wait_for_line`.
    scanned: u64,
    /// The log tail was already part of an error message.
    tail_shown: bool,
    stopped: bool,
}

impl Process {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Waits for an output line (stdout or stderr) that satisfies `matches`,
    /// looking only at lines not examined by earlier calls, and returns it.
    /// `what` completes "did not ..." in the error message.
    pub fn wait_for_line(
        &mut self,
        what: &str,
        timeout: Duration,
        mut matches: impl FnMut(&str) -> bool,
    ) -> Result<String> {
        self.poll(what, timeout, |process| {
            process.next_line_matching(&mut matches)
        })
    }

    /// Waits until `ready` returns true, failing early if the process exits.
    pub fn wait_until(
        &mut self,
        what: &str,
        timeout: Duration,
        mut ready: impl FnMut() -> bool,
    ) -> Result<()> {
        self.poll(what, timeout, |_| ready().then_some(()))
    }

    /// Waits until something accepts TCP connections on `addr`.
    pub fn wait_for_port(&mut self, addr: SocketAddr, timeout: Duration) -> Result<()> {
        self.wait_until(&format!("accept connections on {addr}"), timeout, || {
            TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
        })
    }

    /// Waits for the process to exit on its own (e.g. a start-up failure)
    /// and returns its status, once its output has reached the log. Fails,
    /// showing the log tail, if it is still running after `timeout`.
    pub fn wait_for_exit(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    // Let the reader threads drain the pipes.
                    thread::sleep(Duration::from_millis(200));
                    return Ok(status);
                }
                Ok(None) => {}
                Err(e) => return Err(self.failure(&format!("cannot be waited for: {e}"))),
            }
            if Instant::now() >= deadline {
                return Err(self.failure(&format!("did not exit within {timeout:?}")));
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// Sends `signal` to the process alone (not its group) and waits up to `timeout` for it
    /// to exit: its status and how long after the signal it exited (measured to within
    /// a few ms, before the log is drained). Fails, showing the log tail, if it does not exit.
    pub fn signal_and_wait(
        &mut self,
        signal: libc::c_int,
        timeout: Duration,
    ) -> Result<(ExitStatus, Duration)> {
        let pid = libc::pid_t::try_from(self.pid())
            .map_err(|_| Error::new(format!("pid {} out of range", self.pid())))?;
        let sent = Instant::now();
        // SAFETY: kill(2) has no memory-safety preconditions; the pid is our child's, not
        // yet reaped (we reap it below), so it cannot name another process.
        if unsafe { libc::kill(pid, signal) } != 0 {
            let e = io::Error::last_os_error();
            return Err(self.failure(&format!("cannot be sent signal {signal}: {e}")));
        }
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    let after = sent.elapsed();
                    self.stopped = true;
                    // Let the reader threads drain the pipes.
                    thread::sleep(Duration::from_millis(200));
                    return Ok((status, after));
                }
                Ok(None) => {}
                Err(e) => return Err(self.failure(&format!("cannot be waited for: {e}"))),
            }
            if sent.elapsed() >= timeout {
                return Err(self.failure(&format!(
                    "did not exit within {timeout:?} of signal {signal}"
                )));
            }
            thread::sleep(Duration::from_millis(2));
        }
    }

    /// The whole log so far (the command line, then stdout and stderr).
    pub fn log(&self) -> String {
        match std::fs::read(&self.log_path) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) => format!("(cannot read {}: {e})", self.log_path.display()),
        }
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = match std::fs::read(&self.log_path) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) => return format!("(cannot read {}: {e})", self.log_path.display()),
        };
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// A failure report: `problem`, where the log is, and its tail.
    /// Marks the tail as shown, so the drop guard does not repeat it.
    pub fn failure(&mut self, problem: &str) -> Error {
        self.tail_shown = true;
        Error::new(format!(
            "{} (pid {}) {problem}\n---- last {TAIL_LINES} lines of {} ----\n{}\n----",
            self.name,
            self.pid(),
            self.log_path.display(),
            self.log_tail(TAIL_LINES)
        ))
    }

    /// Marks the log tail as not shown yet: a new test starts using a
    /// process that earlier tests used ([`crate::shared`]).
    pub(crate) fn begin_test(&mut self) {
        self.tail_shown = false;
    }

    /// During a panic, prints the log tail unless an error already showed
    /// it; what the guard does on drop before it stops the process.
    pub(crate) fn show_tail_if_panicking(&mut self) {
        if thread::panicking() && !self.tail_shown {
            eprintln!("{}", self.failure("was running when the test failed"));
        }
    }

    /// Stops the process group: SIGTERM, then SIGKILL after a grace period.
    /// Idempotent; also done on drop.
    pub fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let group = self.child.id();
        signal_group(group, libc::SIGTERM);
        let deadline = Instant::now() + STOP_GRACE;
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            thread::sleep(POLL_INTERVAL);
        }
        // Whatever is left of the group: the leader if it ignored SIGTERM,
        // or children it left behind.
        signal_group(group, libc::SIGKILL);
        // Reaps the leader; an error means it was reaped already.
        let _ = self.child.wait();
    }

    fn poll<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut(&mut Self) -> Option<T>,
    ) -> Result<T> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(value) = check(self) {
                return Ok(value);
            }
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    // Let the reader threads drain the pipes before reporting.
                    thread::sleep(Duration::from_millis(200));
                    return Err(self.failure(&format!("exited ({status}) and did not {what}")));
                }
                Ok(None) => {}
                Err(e) => return Err(self.failure(&format!("cannot be waited for: {e}"))),
            }
            if Instant::now() >= deadline {
                return Err(self.failure(&format!("did not {what} within {timeout:?}")));
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// The first complete, not yet examined log line satisfying `matches`.
    fn next_line_matching(&mut self, matches: &mut impl FnMut(&str) -> bool) -> Option<String> {
        let mut file = File::open(&self.log_path).ok()?;
        file.seek(SeekFrom::Start(self.scanned)).ok()?;
        let mut fresh = Vec::new();
        file.read_to_end(&mut fresh).ok()?;
        for line in fresh.split_inclusive(|&b| b == b'\n') {
            if !line.ends_with(b"\n") {
                break; // incomplete: look again next time
            }
            self.scanned += line.len() as u64;
            let line = String::from_utf8_lossy(line);
            let line = line.trim_end();
            if matches(line) {
                return Some(line.to_owned());
            }
        }
        None
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.show_tail_if_panicking();
        self.stop();
    }
}

/// Copies `output` into `log` line by line on a background thread, until
/// the pipe closes.
fn copy_lines(output: impl Read + Send + 'static, log: Arc<Mutex<File>>) {
    thread::spawn(move || {
        let mut reader = BufReader::new(output);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if !line.ends_with(b"\n") {
                line.push(b'\n');
            }
            let mut log = log.lock().unwrap_or_else(PoisonError::into_inner);
            if log.write_all(&line).is_err() {
                return;
            }
        }
    });
}

/// `<log dir>/<thread>-<name>-<pid>.<n>.log`; the thread name is the test's name.
fn new_log_path(name: &str) -> Result<PathBuf> {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let dir = crate::log_dir()?;
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::new(format!("cannot create {}: {e}", dir.display())))?;
    let thread = thread::current().name().unwrap_or("thread").to_owned();
    let file = format!(
        "{}-{}-{}.{}.log",
        sanitize(&thread),
        sanitize(name),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    Ok(dir.join(file))
}

fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn signal_group(group: u32, signal: libc::c_int) {
    let Ok(group) = libc::pid_t::try_from(group) else {
        return;
    };
    // SAFETY: kill(2) has no memory-safety preconditions; a negative pid
    // addresses the process group, which the child leads (process_group(0)).
    unsafe {
        libc::kill(-group, signal);
    }
}

/// The command line as the log's first line shows it: the variables set for it, then the
/// program and its arguments, with the values of secret-bearing variables (OTLP headers,
/// anything named like a key, token, secret or password) replaced by `<redacted>`.
fn redacted(command: &Command) -> String {
    let secret = |name: &str| {
        let n = name.to_ascii_uppercase();
        ["HEADERS", "KEY", "TOKEN", "SECRET", "PASSWORD"]
            .iter()
            .any(|s| n.contains(s))
    };
    let mut line = String::new();
    for (k, v) in command.get_envs() {
        let (k, Some(v)) = (k.to_string_lossy(), v) else {
            continue;
        };
        let v = if secret(&k) {
            "<redacted>".into()
        } else {
            v.to_string_lossy()
        };
        line.push_str(&format!("{k}={v:?} "));
    }
    line.push_str(&format!("{:?}", command.get_program()));
    for a in command.get_args() {
        line.push_str(&format!(" {a:?}"));
    }
    line
}

/// The TCP addresses process `pid` listens on, from its socket fds and the namespace's
/// `/proc/net/tcp{,6}` tables.
pub fn listening_addresses(pid: u32) -> Result<Vec<std::net::SocketAddr>> {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map_err(|e| Error::new(format!("cannot list /proc/{pid}/fd: {e}")))?;
    let inodes: std::collections::HashSet<String> = fds
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|link| {
            let link = link.to_string_lossy().into_owned();
            Some(link.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
        })
        .collect();
    let mut out = Vec::new();
    for (table, v6) in [("/proc/net/tcp", false), ("/proc/net/tcp6", true)] {
        let text = std::fs::read_to_string(table)
            .map_err(|e| Error::new(format!("cannot read {table}: {e}")))?;
        for row in text.lines().skip(1) {
            let f: Vec<&str> = row.split_whitespace().collect();
            // sl local rem st tx:rx tr:tm retrnsmt uid timeout inode
            if f.len() < 10 || f[3] != "0A" || !inodes.contains(f[9]) {
                continue;
            }
            if let Some(addr) = parse_proc_addr(f[1], v6) {
                out.push(addr);
            }
        }
    }
    Ok(out)
}

/// `0100007F:1F90` (IPv4) or the 32-digit IPv6 form, as `/proc/net/tcp*` writes them: each
/// 32-bit word in host (little-endian) order.
fn parse_proc_addr(field: &str, v6: bool) -> Option<std::net::SocketAddr> {
    let (ip, port) = field.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let words: Vec<u32> = (0..ip.len() / 8)
        .map(|i| u32::from_str_radix(&ip[i * 8..i * 8 + 8], 16).map(u32::from_be))
        .collect::<std::result::Result<_, _>>()
        .ok()?;
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
    let ip: std::net::IpAddr = if v6 {
        <[u8; 16]>::try_from(bytes)
            .ok()
            .map(std::net::IpAddr::from)?
    } else {
        <[u8; 4]>::try_from(bytes)
            .ok()
            .map(std::net::IpAddr::from)?
    };
    Some(std::net::SocketAddr::new(ip, port))
}

//! What a blocked syscall waits on, in words, from its arguments: the file, pipe, socket or
//! device behind a file descriptor, the sleep's requested time, the kind of futex wait, the
//! child process waited for, the path being opened.
//!
//! Everything is read from this process's own `/proc` entries, its own file descriptors
//! (`getpeername`, `fstat`) and its own memory (`process_vm_readv`, which fails cleanly rather
//! than faulting when an address is gone), so no privilege is needed. The thread keeps
//! running meanwhile: an argument may be stale by the time it is read (a closed fd, a reused
//! one, a pointer into a stack frame that returned). The fd's inode is checked against the one
//! `/proc` named, and the caller re-reads the syscall after naming and keeps the name only if
//! the syscall did not change.

use std::fmt::Write as _;
use std::os::unix::fs::FileTypeExt;

use super::syscalls::{self, Waits};

/// Words for what syscall `nr` with arguments `args` waits on; empty when nothing is known.
pub fn describe(nr: i64, args: &[u64; 6], state: u8) -> String {
    if nr == syscalls::NOT_IN_SYSCALL {
        return if state == b'D' {
            "a page fault waiting for I/O (a major fault on file-backed memory)".into()
        } else {
            "outside a syscall".into()
        };
    }
    let Some((_, waits)) = syscalls::lookup(nr) else {
        return String::new();
    };
    match waits {
        Waits::Fd(i) => fd(args[i] as i32),
        Waits::Sleep { req, flags } => sleep(args[req], flags.map(|f| args[f])),
        Waits::Futex => futex(args[0], args[1], args[2] as u32),
        Waits::Poll => poll(args[0], args[1]),
        Waits::Select => format!("select on {} fds", args[0] as i32),
        Waits::Wait4 => child_wait(args[0] as i32 as i64),
        Waits::Waitid => match args[0] {
            // P_PID
            1 => child_wait(args[1] as i32 as i64),
            _ => child_wait(-1),
        },
        Waits::Path(i) => open(args[i]),
        Waits::Nothing => String::new(),
    }
}

/// "std::thread::sleep (80 ms requested)".
fn sleep(req: u64, flags: Option<u64>) -> String {
    const TIMER_ABSTIME: u64 = 1;
    if flags.is_some_and(|f| f & TIMER_ABSTIME != 0) {
        return "a sleep until a set time".into();
    }
    let mut ts = [0u8; 16];
    if !read_memory(req, &mut ts) {
        return "a sleep (std::thread::sleep)".into();
    }
    let secs = i64::from_ne_bytes(ts[..8].try_into().unwrap_or_default());
    let nanos = i64::from_ne_bytes(ts[8..].try_into().unwrap_or_default());
    if !(0..1_000_000_000).contains(&nanos) || !(0..1_000_000).contains(&secs) {
        return "a sleep (std::thread::sleep)".into();
    }
    let ms = secs as f64 * 1e3 + nanos as f64 / 1e6;
    format!("std::thread::sleep ({ms:.0} ms requested)")
}

/// A futex wait, by what std's primitives leave in the word when they wait on it.
fn futex(uaddr: u64, op: u64, val: u32) -> String {
    const CMD_MASK: u64 = 0x7f;
    const LOCK_PI: u64 = 6;
    const LOCK_PI2: u64 = 13;
    match op & CMD_MASK {
        LOCK_PI | LOCK_PI2 => format!("a priority-inheritance lock (futex {uaddr:#x})"),
        // std's futex Mutex waits with the word at 2 (locked, waiters).
        _ if val == 2 => format!("contended std::sync lock (futex {uaddr:#x})"),
        // std's thread parker waits with the word at -1 (PARKED).
        _ if val == u32::MAX => format!(
            "a parked thread (thread::park: a channel, OnceLock or join wait) (futex {uaddr:#x})"
        ),
        _ => format!("futex {uaddr:#x} (a std::sync Condvar or RwLock, or another lock)"),
    }
}

/// The fds a `poll` waits on: "pipes of child 4242 (sleep)" when they are pipes a child
/// process writes, else each fd's name.
fn poll(fds: u64, nfds: u64) -> String {
    let n = (nfds as usize).min(8);
    let mut raw = [0u8; 64];
    if n == 0 || !read_memory(fds, &mut raw[..n * 8]) {
        return format!("{nfds} fds");
    }
    let named: Vec<(i32, String)> = raw[..n * 8]
        .chunks(8)
        .map(|c| i32::from_ne_bytes(c[..4].try_into().unwrap_or_default()))
        .filter(|fd| *fd >= 0)
        .map(|fd| (fd, fd_name(fd)))
        .collect();
    let pipes: Vec<u64> = named.iter().filter_map(|(_, n)| pipe_inode(n)).collect();
    if !pipes.is_empty()
        && pipes.len() == named.len()
        && let Some((pid, comm)) = child_writing(&pipes)
    {
        return format!("pipes of child {pid} ({comm}): std::process::Command output");
    }
    let mut s = String::new();
    for (i, (fd, _)) in named.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(&self::fd(*fd));
    }
    if nfds as usize > n {
        let _ = write!(s, " and {} more", nfds as usize - n);
    }
    s
}

/// `/proc/self/fd/<fd>`'s link, or "" when it cannot be read.
fn fd_name(fd: i32) -> String {
    std::fs::read_link(format!("/proc/self/fd/{fd}"))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The inode in a "pipe:[123]" link.
fn pipe_inode(link: &str) -> Option<u64> {
    link.strip_prefix("pipe:[")?.strip_suffix(']')?.parse().ok()
}

/// The inode in a "socket:[123]" link.
fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// What fd `fd` is, for a syscall that waits on it: "socket 127.0.0.1:40095 (local
/// 127.0.0.1:49562)", "fifo /tmp/x", "file /var/a.json", "pipe from child 4242 (sleep)",
/// "eventfd", ...; "fd 7 (closed)" when it is not open any more.
fn fd(fd: i32) -> String {
    let link = fd_name(fd);
    if link.is_empty() {
        return format!("fd {fd} (closed)");
    }
    if let Some(ino) = socket_inode(&link) {
        return socket(fd, ino);
    }
    if let Some(ino) = pipe_inode(&link) {
        return match child_writing(&[ino]) {
            Some((pid, comm)) => format!("pipe from child {pid} ({comm})"),
            None => "a pipe".into(),
        };
    }
    if let Some(anon) = link.strip_prefix("anon_inode:") {
        return match anon.trim_matches(|c| c == '[' || c == ']') {
            "eventpoll" => {
                "an epoll instance (an event loop inside the poll: a blocking client, or \
                 block_on in async code)"
                    .into()
            }
            other => other.to_string(),
        };
    }
    match std::fs::metadata(format!("/proc/self/fd/{fd}")).map(|m| m.file_type()) {
        Ok(t) if t.is_fifo() => format!("fifo {link}"),
        Ok(t) if t.is_file() => format!("file {link}"),
        Ok(t) if t.is_dir() => format!("directory {link}"),
        Ok(t) if t.is_char_device() || t.is_block_device() => format!("device {link}"),
        _ => link,
    }
}

/// A socket by its peer and local addresses, checked to still be the socket `/proc` named.
fn socket(fd: i32, ino: u64) -> String {
    // SAFETY: fstat writes into a zeroed stat of the right type.
    let same = unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        libc::fstat(fd, &mut st) == 0 && st.st_ino == ino
    };
    if !same {
        return "a socket (closed)".into();
    }
    let peer = address(fd, libc::getpeername);
    let local = address(fd, libc::getsockname);
    match (peer, local) {
        (Some(p), Some(l)) if p.ends_with(":53") => format!("DNS query to {p} (local {l})"),
        (Some(p), Some(l)) => format!("socket {p} (local {l})"),
        (None, Some(l)) => format!("socket {l} (no peer: listening or unconnected)"),
        _ => "a socket".into(),
    }
}

type AddrFn = unsafe extern "C" fn(i32, *mut libc::sockaddr, *mut libc::socklen_t) -> i32;

/// A socket's address from `getpeername` or `getsockname`, as text.
fn address(fd: i32, f: AddrFn) -> Option<String> {
    // SAFETY: the storage is large enough for any address family and its length says so.
    let (ss, len) = unsafe {
        let mut ss: libc::sockaddr_storage = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        if f(
            fd,
            (&mut ss as *mut libc::sockaddr_storage).cast(),
            &mut len,
        ) != 0
        {
            return None;
        }
        (ss, len as usize)
    };
    match i32::from(ss.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let a = unsafe { *(&ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = std::net::Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(format!("{ip}:{}", u16::from_be(a.sin_port)))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let a = unsafe { *(&ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            let ip = std::net::Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(format!("[{ip}]:{}", u16::from_be(a.sin6_port)))
        }
        libc::AF_UNIX => {
            // SAFETY: the family says the storage holds a sockaddr_un.
            let a = unsafe { *(&ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_un>() };
            let offset = std::mem::size_of::<libc::sa_family_t>();
            let path: Vec<u8> = a.sun_path[..len.saturating_sub(offset).min(a.sun_path.len())]
                .iter()
                .map(|c| *c as u8)
                .collect();
            Some(match path.split_first() {
                None => "unix (unnamed)".into(),
                Some((0, abstract_name)) => {
                    format!("unix @{}", String::from_utf8_lossy(abstract_name))
                }
                Some(_) => format!(
                    "unix {}",
                    String::from_utf8_lossy(path.split(|b| *b == 0).next().unwrap_or_default())
                ),
            })
        }
        _ => None,
    }
}

/// The child process (pid, command) holding one of `pipes` open, among this process's
/// children.
fn child_writing(pipes: &[u64]) -> Option<(i32, String)> {
    for pid in children().into_iter().take(32) {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        let holds = fds.flatten().take(256).any(|e| {
            std::fs::read_link(e.path())
                .ok()
                .and_then(|l| pipe_inode(&l.to_string_lossy()))
                .is_some_and(|ino| pipes.contains(&ino))
        });
        if holds {
            return Some((pid, comm(pid)));
        }
    }
    None
}

/// This process's children, from every thread's `children` list.
fn children() -> Vec<i32> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    let mut pids: Vec<i32> = tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|s| {
            s.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// A process's command name.
fn comm(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim_end().to_string())
        .unwrap_or_else(|_| "exited".into())
}

/// "child 4242 (sleep)"; for a wait on any child, the children there are.
fn child_wait(pid: i64) -> String {
    if pid > 0 {
        return format!(
            "child {pid} ({}): std::process::Child::wait",
            comm(pid as i32)
        );
    }
    let kids: Vec<String> = children()
        .into_iter()
        .take(4)
        .map(|p| format!("{p} ({})", comm(p)))
        .collect();
    if kids.is_empty() {
        "any child".into()
    } else {
        format!("any child: {}", kids.join(", "))
    }
}

/// The path an `open` waits on (a fifo waits for its other end).
fn open(path: u64) -> String {
    let mut buf = [0u8; 256];
    if !read_memory(path, &mut buf) {
        // The path may end within a page boundary short of 256 bytes: try a shorter read.
        if !read_memory(path, &mut buf[..64]) {
            return "a path".into();
        }
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    let p = String::from_utf8_lossy(&buf[..end]).into_owned();
    let fifo = std::fs::metadata(&p).is_ok_and(|m| m.file_type().is_fifo());
    if fifo {
        format!("fifo {p} (waiting for its other end to open)")
    } else {
        format!("open of {p}")
    }
}

/// Reads `buf.len()` bytes of this process's memory at `addr`; false when they are not
/// mapped (or `process_vm_readv` is denied, as some seccomp profiles do).
fn read_memory(addr: u64, buf: &mut [u8]) -> bool {
    if addr == 0 {
        return false;
    }
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: the local iovec covers `buf`; the kernel checks the remote range and fails
    // with EFAULT where it is not mapped instead of faulting.
    let n = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
    n == buf.len() as isize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn futex_waits_are_told_by_the_word_std_leaves() {
        assert!(futex(0x10, 0x89, 2).starts_with("contended std::sync lock (futex 0x10)"));
        assert!(futex(0x10, 0x89, u32::MAX).starts_with("a parked thread"));
        assert!(futex(0x10, 0x89, 7).contains("Condvar"));
        assert!(futex(0x10, 6 | 128, 0).contains("priority-inheritance"));
    }

    #[test]
    fn a_sleep_reads_its_requested_time() {
        let ts: [i64; 2] = [0, 80_000_000];
        assert_eq!(
            sleep(ts.as_ptr() as u64, Some(0)),
            "std::thread::sleep (80 ms requested)"
        );
        assert_eq!(
            sleep(ts.as_ptr() as u64, Some(1)),
            "a sleep until a set time"
        );
        assert_eq!(sleep(0, None), "a sleep (std::thread::sleep)");
    }

    #[test]
    fn fds_are_named_by_what_they_are() {
        use std::os::fd::AsRawFd;
        let file = std::fs::File::open("/proc/self/status").unwrap();
        assert_eq!(
            fd(file.as_raw_fd()),
            "file /proc/self/status".replace("self", &std::process::id().to_string())
        );
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let client = std::net::TcpStream::connect(addr).unwrap();
        let local = client.local_addr().unwrap();
        assert_eq!(
            fd(client.as_raw_fd()),
            format!("socket {addr} (local {local})")
        );
        assert!(fd(listener.as_raw_fd()).contains("no peer"));
        assert_eq!(fd(9_999), "fd 9999 (closed)");
        // SAFETY: epoll_create1 has no preconditions; the fd is closed below.
        let epoll = unsafe { libc::epoll_create1(0) };
        assert!(fd(epoll).starts_with("an epoll instance (an event loop inside the poll"));
        // SAFETY: ours, closed once.
        unsafe { libc::close(epoll) };
    }

    #[test]
    fn a_pipe_to_a_child_names_the_child() {
        use std::os::fd::AsRawFd;
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let out = child.stdout.as_ref().unwrap().as_raw_fd();
        let named = fd(out);
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(named, format!("pipe from child {} (sleep)", child.id()));
    }
}

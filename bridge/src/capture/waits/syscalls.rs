//! The syscalls a blocked thread is seen in, by this architecture's numbers (libc's): their
//! names and which argument says what they wait on.

/// Which of a syscall's arguments names what it waits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Waits {
    /// A file descriptor, the argument at this index.
    Fd(usize),
    /// A relative sleep whose `timespec` is at argument `req`; `flags` is the argument holding
    /// `TIMER_ABSTIME`, if the syscall has one.
    Sleep { req: usize, flags: Option<usize> },
    /// `futex(uaddr, op, val, ...)`.
    Futex,
    /// `poll`/`ppoll(fds, nfds, ...)`.
    Poll,
    /// `select`/`pselect6(nfds, ...)`.
    Select,
    /// `wait4(pid, ...)`.
    Wait4,
    /// `waitid(idtype, id, ...)`.
    Waitid,
    /// A path, the argument at this index.
    Path(usize),
    /// Nothing the sampler names.
    Nothing,
}

/// The syscall number of a thread blocked outside any syscall (`syscall` reads `-1 sp pc`):
/// in a page fault waiting for I/O, in practice.
pub(crate) const NOT_IN_SYSCALL: i64 = -1;

/// The name of syscall `nr` on this architecture ("syscall 123" for one not in the table,
/// `page_fault` for [`NOT_IN_SYSCALL`]).
pub(crate) fn name(nr: i64) -> String {
    if nr == NOT_IN_SYSCALL {
        return "page_fault".into();
    }
    lookup(nr).map_or_else(|| format!("syscall {nr}"), |(n, _)| n.to_string())
}

/// Syscall `nr`'s name and what it waits on, if it is one a thread blocks in.
pub(crate) fn lookup(nr: i64) -> Option<(&'static str, Waits)> {
    TABLE
        .iter()
        .chain(LEGACY)
        .find(|e| e.0 == nr)
        .map(|e| (e.1, e.2))
}

use Waits::*;

/// Syscalls every Linux architecture has, by libc's numbers for this one.
const TABLE: &[(i64, &str, Waits)] = &[
    (libc::SYS_read, "read", Fd(0)),
    (libc::SYS_write, "write", Fd(0)),
    (libc::SYS_ioctl, "ioctl", Fd(0)),
    (libc::SYS_pread64, "pread64", Fd(0)),
    (libc::SYS_pwrite64, "pwrite64", Fd(0)),
    (libc::SYS_readv, "readv", Fd(0)),
    (libc::SYS_writev, "writev", Fd(0)),
    (libc::SYS_preadv, "preadv", Fd(0)),
    (libc::SYS_sendfile, "sendfile", Fd(1)),
    (libc::SYS_splice, "splice", Fd(0)),
    (libc::SYS_copy_file_range, "copy_file_range", Fd(0)),
    (libc::SYS_connect, "connect", Fd(0)),
    (libc::SYS_accept, "accept", Fd(0)),
    (libc::SYS_accept4, "accept4", Fd(0)),
    (libc::SYS_sendto, "sendto", Fd(0)),
    (libc::SYS_recvfrom, "recvfrom", Fd(0)),
    (libc::SYS_sendmsg, "sendmsg", Fd(0)),
    (libc::SYS_recvmsg, "recvmsg", Fd(0)),
    (libc::SYS_sendmmsg, "sendmmsg", Fd(0)),
    (libc::SYS_recvmmsg, "recvmmsg", Fd(0)),
    (libc::SYS_flock, "flock", Fd(0)),
    (libc::SYS_fsync, "fsync", Fd(0)),
    (libc::SYS_fdatasync, "fdatasync", Fd(0)),
    (libc::SYS_epoll_pwait, "epoll_pwait", Fd(0)),
    (libc::SYS_epoll_pwait2, "epoll_pwait2", Fd(0)),
    (libc::SYS_io_uring_enter, "io_uring_enter", Fd(0)),
    (libc::SYS_ppoll, "ppoll", Poll),
    (libc::SYS_pselect6, "pselect6", Select),
    (libc::SYS_futex, "futex", Futex),
    (libc::SYS_futex_waitv, "futex_waitv", Nothing),
    (
        libc::SYS_nanosleep,
        "nanosleep",
        Sleep {
            req: 0,
            flags: None,
        },
    ),
    (
        libc::SYS_clock_nanosleep,
        "clock_nanosleep",
        Sleep {
            req: 2,
            flags: Some(1),
        },
    ),
    (libc::SYS_wait4, "wait4", Wait4),
    (libc::SYS_waitid, "waitid", Waitid),
    (libc::SYS_openat, "openat", Path(1)),
    (libc::SYS_rt_sigtimedwait, "rt_sigtimedwait", Nothing),
    (libc::SYS_getrandom, "getrandom", Nothing),
];

/// The older syscalls x86_64 keeps beside their newer forms.
#[cfg(target_arch = "x86_64")]
const LEGACY: &[(i64, &str, Waits)] = &[
    (libc::SYS_open, "open", Path(0)),
    (libc::SYS_poll, "poll", Poll),
    (libc::SYS_select, "select", Select),
    (libc::SYS_pause, "pause", Nothing),
    (libc::SYS_epoll_wait, "epoll_wait", Fd(0)),
];

#[cfg(not(target_arch = "x86_64"))]
const LEGACY: &[(i64, &str, Waits)] = &[];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_unique_and_names_known() {
        let all: Vec<_> = TABLE.iter().chain(LEGACY).collect();
        for (i, a) in all.iter().enumerate() {
            assert!(
                all[i + 1..].iter().all(|b| b.0 != a.0 && b.1 != a.1),
                "{a:?} twice"
            );
        }
        assert_eq!(name(NOT_IN_SYSCALL), "page_fault");
        assert_eq!(name(100_000), "syscall 100000");
        assert_eq!(name(libc::SYS_futex), "futex");
        assert_eq!(name(libc::SYS_clock_nanosleep), "clock_nanosleep");
        assert_eq!(name(libc::SYS_read), "read");
    }
}

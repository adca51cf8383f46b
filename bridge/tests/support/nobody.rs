//! Running a program as user `nobody` (uid and gid 65534, no supplementary groups) through
//! `setpriv` (util-linux): how the tests check that Granular needs no privilege.
//!
//! Shared by `bridge/tests/wait_samples_unprivileged.rs` and the end-to-end harness
//! (`granular_e2e::nobody`, which includes this file with `#[path]`: the harness builds on the
//! library, so the library's tests cannot use the harness), so it uses std and libc only.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// nobody's uid and gid.
pub const NOBODY: u32 = 65534;

/// Whether this process runs as root, the one user that can switch to nobody. Tests run as
/// another user are unprivileged already, and check in place.
pub fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// `setpriv`'s arguments that run the rest of its command line as nobody: uid and gid
/// [`NOBODY`], no supplementary groups, and SIGKILL when the parent dies (the kernel clears
/// a parent-death signal set before the change of uid, so `setpriv` sets it again after it).
pub fn setpriv_args() -> [String; 4] {
    [
        format!("--reuid={NOBODY}"),
        format!("--regid={NOBODY}"),
        "--clear-groups".to_owned(),
        "--pdeathsig=KILL".to_owned(),
    ]
}

/// Why nobody could not run `program`: the first directory on its (canonical) path that
/// nobody may not search, or the file itself when nobody may not read and execute it, with
/// its mode and owner. `None` when nobody may. Judged by the mode bits as the kernel applies
/// them to uid and gid [`NOBODY`] without supplementary groups (ACLs are not read: a
/// permission they take away shows when the program fails to start).
pub fn cannot_run(program: &Path) -> Option<String> {
    let path = match program.canonicalize() {
        Ok(path) => path,
        Err(e) => return Some(format!("{}: {e}", program.display())),
    };
    let dirs: Vec<&Path> = path.ancestors().skip(1).collect();
    for dir in dirs.into_iter().rev() {
        if let Some(why) = lacks(dir, 0o1, "search (x)") {
            return Some(why);
        }
    }
    lacks(&path, 0o5, "read and execute (r-x)")
}

/// Why nobody lacks the permission bits `wanted` (others' position: 4 read, 1 execute) on
/// `path`, or `None`.
fn lacks(path: &Path, wanted: u32, what: &str) -> Option<String> {
    let meta = match path.metadata() {
        Ok(meta) => meta,
        Err(e) => return Some(format!("cannot stat {}: {e}", path.display())),
    };
    let mode = meta.mode();
    let bits = if meta.uid() == NOBODY {
        mode >> 6
    } else if meta.gid() == NOBODY {
        mode >> 3
    } else {
        mode
    } & 0o7;
    (bits & wanted != wanted).then(|| {
        format!(
            "nobody (uid {NOBODY}) may not {what} {} (mode {:04o}, owner {}:{})",
            path.display(),
            mode & 0o7777,
            meta.uid(),
            meta.gid()
        )
    })
}

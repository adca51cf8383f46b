//! CPU contention on purpose: a process's threads pinned to one CPU beside busy loops, so that
//! the kernel preempts them (what Granular reports as OS wait).

use std::process::Command;
use std::thread;
use std::time::Duration;

use crate::bench::procfs;
use crate::process::{Process, ProcessBuilder};
use crate::{Error, Result};

/// How long the loops get to take the CPU before [`pin_beside_busy_loops`] returns.
const SETTLE: Duration = Duration::from_millis(300);

/// Busy loops sharing one CPU with a pinned process; they stop when this is dropped.
#[derive(Debug)]
pub struct Contention {
    _loops: Vec<Process>,
}

/// Pins every thread of `pid` to the last CPU this process may use (`taskset -a -p`,
/// util-linux) and starts `loops` shell busy loops there, each ended after 60 s at the latest:
/// a runnable thread of `pid` then gets about 1/(loops + 1) of the CPU. Returns once the loops
/// have had [`SETTLE`] to take it.
pub fn pin_beside_busy_loops(pid: u32, loops: usize) -> Result<Contention> {
    let cpu = *procfs::allowed_cpus()
        .last()
        .ok_or_else(|| Error::new("this process may run on no CPU (sched_getaffinity)"))?;
    let pinned = Command::new("taskset")
        .args(["-a", "-p", "-c", &cpu.to_string(), &pid.to_string()])
        .output()
        .map_err(|e| Error::new(format!("cannot run taskset (util-linux): {e}")))?;
    if !pinned.status.success() {
        return Err(Error::new(format!(
            "taskset -a -p -c {cpu} {pid} failed: {pinned:?}"
        )));
    }
    let loops = (0..loops)
        .map(|k| {
            ProcessBuilder::new(format!("busy-{k}"), "taskset")
                .args(["-c", &cpu.to_string(), "timeout", "60"])
                .args(["sh", "-c", "while :; do :; done"])
                .spawn()
        })
        .collect::<Result<Vec<_>>>()?;
    thread::sleep(SETTLE);
    Ok(Contention { _loops: loops })
}

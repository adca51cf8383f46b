//! What `/proc` says about a process and the machine: CPU time, memory, per-thread scheduling
//! counters, per-CPU busy time; and pinning this process to a CPU.

use std::fs;

use crate::{Error, Result};

fn read(path: &str) -> Result<String> {
    fs::read_to_string(path).map_err(|e| Error::new(format!("cannot read {path}: {e}")))
}

/// User + system CPU time of process `pid` (all its threads, exited ones included), in
/// seconds, from `/proc/<pid>/stat` (clock-tick resolution, usually 10 ms).
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = read(&format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| Error::new(format!("unexpected /proc/{pid}/stat: {stat}")))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime and stime are fields 14 and 15.
    let tick = |i: usize| -> Result<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| Error::new(format!("no field {} in /proc/{pid}/stat", i + 3)))
    };
    let ticks = tick(11)? + tick(12)?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    Ok(ticks as f64 / hz.max(1) as f64)
}

/// Resident memory of `pid`: (peak `VmHWM`, current `VmRSS`), in KiB.
pub fn memory_kib(pid: u32) -> Result<(u64, u64)> {
    let status = read(&format!("/proc/{pid}/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| Error::new(format!("no {name} in /proc/{pid}/status")))
    };
    Ok((field("VmHWM:")?, field("VmRSS:")?))
}

/// One thread's scheduler counters (`/proc/<pid>/task/<tid>/schedstat`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadSched {
    pub tid: u32,
    /// `comm`, at most 15 bytes (`tokio-runtime-w` for tokio workers).
    pub name: String,
    /// Time on a CPU, ns.
    pub run_ns: u64,
    /// Time runnable but waiting for a CPU (run-queue delay), ns.
    pub wait_ns: u64,
}

/// The scheduler counters of every live thread of `pid`.
pub fn threads(pid: u32) -> Result<Vec<ThreadSched>> {
    let dir = format!("/proc/{pid}/task");
    let entries = fs::read_dir(&dir).map_err(|e| Error::new(format!("cannot list {dir}: {e}")))?;
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let Some(tid) = entry.file_name().to_str().and_then(|t| t.parse().ok()) else {
            continue;
        };
        // A thread may exit between listing and reading: skip it.
        let (Ok(sched), Ok(comm)) = (
            fs::read_to_string(format!("{dir}/{tid}/schedstat")),
            fs::read_to_string(format!("{dir}/{tid}/comm")),
        ) else {
            continue;
        };
        let mut f = sched
            .split_whitespace()
            .map(|v| v.parse::<u64>().unwrap_or(0));
        let (run_ns, wait_ns) = (f.next().unwrap_or(0), f.next().unwrap_or(0));
        out.push(ThreadSched {
            tid,
            name: comm.trim().to_owned(),
            run_ns,
            wait_ns,
        });
    }
    out.sort_by_key(|t| t.tid);
    Ok(out)
}

/// Busy and total jiffies per CPU, from `/proc/stat`.
#[derive(Debug, Clone, Default)]
pub struct CpuTimes(Vec<(u64, u64)>);

impl CpuTimes {
    pub fn now() -> Self {
        let Ok(stat) = fs::read_to_string("/proc/stat") else {
            return Self::default();
        };
        let mut cpus = Vec::new();
        for line in stat.lines() {
            let Some(rest) = line.strip_prefix("cpu") else {
                continue;
            };
            if !rest.starts_with(|c: char| c.is_ascii_digit()) {
                continue;
            }
            let v: Vec<u64> = rest
                .split_whitespace()
                .skip(1)
                .filter_map(|x| x.parse().ok())
                .collect();
            let total: u64 = v.iter().take(8).sum();
            // idle + iowait
            let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
            cpus.push((total - idle, total));
        }
        Self(cpus)
    }

    /// Fraction of each CPU's time that was busy since `earlier`.
    pub fn busy_since(&self, earlier: &CpuTimes) -> Vec<f64> {
        self.0
            .iter()
            .zip(&earlier.0)
            .map(|(&(b1, t1), &(b0, t0))| {
                let total = t1.saturating_sub(t0);
                if total == 0 {
                    0.0
                } else {
                    b1.saturating_sub(b0) as f64 / total as f64
                }
            })
            .collect()
    }
}

/// The CPUs this process may run on.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; sched_getaffinity writes at most its size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&cpu| libc::CPU_ISSET(cpu, &set))
            .collect()
    }
}

/// Pins the calling thread, and so every thread and process it starts afterwards, to `cpu`.
pub fn pin_current_thread(cpu: usize) -> Result<()> {
    // SAFETY: the set is initialised by CPU_ZERO/CPU_SET before use; pid 0 is this thread.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(Error::new(format!(
            "cannot pin to CPU {cpu}: {}",
            std::io::Error::last_os_error()
        )))
    }
}

/// The machine, for the header of a results table.
#[derive(Debug, Clone)]
pub struct Machine {
    pub nproc: usize,
    pub cpu_model: String,
    pub kernel: String,
    pub memory_gib: f64,
}

impl Machine {
    pub fn describe() -> Self {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or_else(|| "unknown CPU".to_owned(), |(_, m)| m.trim().to_owned());
        let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
            .map_or_else(|_| "unknown".to_owned(), |k| k.trim().to_owned());
        let memory_gib = fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            })
            .map_or(0.0, |kib| kib / (1024.0 * 1024.0));
        Self {
            nproc: std::thread::available_parallelism().map_or(0, usize::from),
            cpu_model,
            kernel,
            memory_gib,
        }
    }

    /// `2 CPUs (AMD EPYC), Linux 6.18.44, 24 GiB`.
    pub fn summary(&self) -> String {
        format!(
            "{} CPUs ({}), Linux {}, {:.0} GiB",
            self.nproc, self.cpu_model, self.kernel, self.memory_gib
        )
    }
}

/// The 1-minute load average (how busy the shared machine was).
pub fn load_average() -> f64 {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let pid = std::process::id();
        assert!(cpu_seconds(pid).expect("stat") >= 0.0);
        let (hwm, rss) = memory_kib(pid).expect("status");
        assert!(hwm >= rss && rss > 0);
        let threads = threads(pid).expect("threads");
        assert!(threads.iter().any(|t| t.tid == pid));
        assert!(!allowed_cpus().is_empty());
        assert!(Machine::describe().nproc > 0);
    }
}

//! What a process costs over time, from `/proc`, sampled on a thread of its own: resident
//! memory (`VmRSS`), threads, open file descriptors and the CPU time of Granular's analyzer
//! thread. For tests that a fault or a long run leaves these bounded (a plateau, not growth).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// The analyzer thread's name as `/proc/<pid>/task/<tid>/comm` shows it: `granular-analyzer`
/// cut to the kernel's 15 bytes.
pub const ANALYZER_COMM: &str = "granular-analyz";

/// One look at the process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcSample {
    /// Since the sampler started.
    pub at: Duration,
    pub rss_kib: u64,
    /// The anonymous part of `rss_kib` (`RssAnon`: heap, stacks, the recorder's rings), without
    /// pages of the binary and libraries mapped from files.
    pub anon_kib: u64,
    pub threads: u64,
    pub fds: u64,
    /// The analyzer thread's user + system CPU time, s (`None`: no such thread).
    pub analyzer_cpu_s: Option<f64>,
}

/// Reads one [`ProcSample`] of `pid`; `None` once the process is gone.
pub fn sample(pid: u32, at: Duration) -> Option<ProcSample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    Some(ProcSample {
        at,
        rss_kib: field("VmRSS:")?,
        anon_kib: field("RssAnon:")?,
        threads: field("Threads:")?,
        fds,
        analyzer_cpu_s: thread_cpu_seconds(pid, ANALYZER_COMM),
    })
}

/// utime + stime of `pid`'s first thread named `comm`, in seconds.
fn thread_cpu_seconds(pid: u32, comm: &str) -> Option<f64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    for task in tasks.flatten() {
        let dir = task.path();
        let name = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if name.trim() != comm {
            continue;
        }
        let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        // After the name: field 3 (state) is index 0; utime and stime are fields 14 and 15.
        let ticks: u64 =
            fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1);
        return Some(ticks as f64 / hz as f64);
    }
    None
}

/// Samples a process every `every` until [`ProcSampler::finish`] (or the process exits).
#[derive(Debug)]
pub struct ProcSampler {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Vec<ProcSample>>,
}

impl ProcSampler {
    pub fn start(pid: u32, every: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = thread::spawn(move || {
            let start = Instant::now();
            let mut samples = Vec::new();
            let mut next = start;
            while !flag.load(Ordering::Relaxed) {
                match sample(pid, start.elapsed()) {
                    Some(s) => samples.push(s),
                    None => break,
                }
                next += every;
                while Instant::now() < next {
                    if flag.load(Ordering::Relaxed) {
                        return samples;
                    }
                    thread::sleep(Duration::from_millis(20).min(every));
                }
            }
            samples
        });
        Self { stop, handle }
    }

    /// Stops sampling; what was sampled.
    pub fn finish(self) -> Samples {
        self.stop.store(true, Ordering::Relaxed);
        Samples(self.handle.join().unwrap_or_default())
    }
}

/// A run's samples, oldest first, and what they say.
#[derive(Debug, Clone, Default)]
pub struct Samples(pub Vec<ProcSample>);

impl Samples {
    pub fn max_rss_kib(&self) -> u64 {
        self.0.iter().map(|s| s.rss_kib).max().unwrap_or(0)
    }

    /// The samples from `fraction` of the run on (0.5: its last half).
    fn tail_from(&self, fraction: f64) -> &[ProcSample] {
        let i = ((self.0.len() as f64) * fraction) as usize;
        &self.0[i.min(self.0.len())..]
    }

    /// Growth of resident memory over the last half of the run, as a fraction (0.03 = 3 %):
    /// the median RSS of the run's last tenth against the median of the tenth around its
    /// middle. Medians of windows rather than single samples: RSS moves by several MiB from
    /// one second to the next as the allocator takes and returns memory.
    pub fn rss_growth_last_half(&self) -> f64 {
        let n = self.0.len();
        let w = (n / 10).max(1);
        if n < 2 * w {
            return 0.0;
        }
        let median = |s: &[ProcSample]| {
            let mut v: Vec<u64> = s.iter().map(|s| s.rss_kib).collect();
            v.sort_unstable();
            v[v.len() / 2]
        };
        let mid = n / 2 - w / 2;
        let (middle, end) = (median(&self.0[mid..mid + w]), median(&self.0[n - w..]));
        if middle == 0 {
            return 0.0;
        }
        end as f64 / middle as f64 - 1.0
    }

    /// (at the start of the last half, most in the last half) of `what`.
    fn last_half(&self, what: fn(&ProcSample) -> u64) -> (u64, u64) {
        let half = self.tail_from(0.5);
        (
            half.first().map_or(0, what),
            half.iter().map(what).max().unwrap_or(0),
        )
    }

    /// Open fds at the start of the last half, and the most in it.
    pub fn fds_last_half(&self) -> (u64, u64) {
        self.last_half(|s| s.fds)
    }

    /// Threads at the start of the last half, and the most in it.
    pub fn threads_last_half(&self) -> (u64, u64) {
        self.last_half(|s| s.threads)
    }

    /// The analyzer thread's CPU over the run, as a share of one core (0.05 = 5 %).
    pub fn analyzer_cpu_share(&self) -> Option<f64> {
        let first = self.0.iter().find(|s| s.analyzer_cpu_s.is_some())?;
        let last = self.0.iter().rev().find(|s| s.analyzer_cpu_s.is_some())?;
        let wall = (last.at - first.at).as_secs_f64();
        let cpu = last.analyzer_cpu_s? - first.analyzer_cpu_s?;
        (wall > 0.0).then_some(cpu / wall)
    }

    /// RSS and its anonymous part in MiB at each tenth of the run (11 values each, start and
    /// end included).
    pub fn rss_profile(&self) -> Vec<(f64, f64)> {
        if self.0.is_empty() {
            return Vec::new();
        }
        let last = self.0.len() - 1;
        let mib = |kib: u64| kib as f64 / 1024.0;
        (0..=10)
            .map(|i| self.0[last * i / 10])
            .map(|s| (mib(s.rss_kib), mib(s.anon_kib)))
            .collect()
    }

    /// One line: `RSS max 61.2 MiB (+1.2 % over the last half), fds 40→41, threads 12→12,
    /// analyzer 3.1 % of a core, 60 samples`.
    pub fn summary(&self) -> String {
        let (fd0, fd1) = self.fds_last_half();
        let (th0, th1) = self.threads_last_half();
        format!(
            "RSS max {:.1} MiB ({:+.1} % over the last half), fds {fd0}→{fd1} and threads \
             {th0}→{th1} over the last half, analyzer {}, {} samples; RSS (anonymous) MiB by \
             tenths of the run: {}",
            self.max_rss_kib() as f64 / 1024.0,
            self.rss_growth_last_half() * 100.0,
            self.analyzer_cpu_share()
                .map_or("not found".to_owned(), |s| format!(
                    "{:.1} % of a core",
                    s * 100.0
                )),
            self.0.len(),
            self.rss_profile()
                .iter()
                .map(|(rss, anon)| format!("{rss:.0} ({anon:.0})"))
                .collect::<Vec<_>>()
                .join(" ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_this_process() {
        let s = sample(std::process::id(), Duration::ZERO).expect("this process");
        assert!(s.rss_kib > 0 && s.threads >= 1 && s.fds >= 3);
        assert_eq!(s.analyzer_cpu_s, None);
    }

    #[test]
    fn plateau_figures() {
        let at = |i: u64, rss: u64, fds: u64| ProcSample {
            at: Duration::from_secs(i),
            rss_kib: rss,
            anon_kib: rss,
            threads: 10,
            fds,
            analyzer_cpu_s: Some(i as f64 * 0.1),
        };
        let samples = Samples(vec![
            at(0, 100, 5),
            at(1, 200, 6),
            at(2, 200, 7),
            at(3, 210, 7),
        ]);
        assert_eq!(samples.max_rss_kib(), 210);
        // Windows of one sample: the middle one (200) against the last (210).
        assert!((samples.rss_growth_last_half() - 0.05).abs() < 1e-9);
        assert_eq!(samples.fds_last_half(), (7, 7));
        assert!((samples.analyzer_cpu_share().unwrap() - 0.1).abs() < 1e-9);
    }
}

//! What a request's blocked-in-poll time was spent in: the wait samples (`capture::waits`)
//! taken on its threads while its own work was off-CPU, grouped by syscall and object.
//!
//! In: the [`Decoded`] wait samples of a thread, a stretch of the request's own work on it and
//! how much of that stretch the OS says the thread was blocked. Out: that blocked time divided
//! among the (syscall, object) pairs the samples inside the stretch name, in proportion to how
//! many samples each has. The resolution is one sampling period: a block shorter than that
//! may carry no sample, and then nothing is named for it.

use super::decode::Decoded;
use crate::capture::waits::syscalls;

/// Blocked time spent in one syscall on one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockedOn {
    /// The syscall's name (`page_fault` when blocked outside one).
    pub syscall: String,
    /// What it waited on, in words (may be empty: not told by its arguments).
    pub object: String,
    /// The kernel's wait channel.
    pub wchan: String,
    /// Blocked time attributed to it, ns.
    pub ns: u64,
    /// Samples that named it.
    pub samples: u32,
}

impl BlockedOn {
    /// "clock_nanosleep — std::thread::sleep (80 ms requested)"; the wait channel where the
    /// object is not known.
    pub fn describe(&self) -> String {
        match (self.object.is_empty(), self.wchan.is_empty()) {
            (false, _) => format!("{} — {}", self.syscall, self.object),
            (true, false) => format!("{} (kernel wait channel {})", self.syscall, self.wchan),
            (true, true) => self.syscall.clone(),
        }
    }
}

/// Thread `tid`'s `blocked` ns inside `[a, b]`, divided among what its wait samples there
/// name; empty when no sample fell inside.
pub(crate) fn in_stretch(d: &Decoded, tid: u64, a: u64, b: u64, blocked: u64) -> Vec<BlockedOn> {
    let Some(samples) = d.waits.get(&tid) else {
        return Vec::new();
    };
    let from = samples.partition_point(|s| s.at < a);
    let to = samples.partition_point(|s| s.at <= b);
    let inside = &samples[from..to.max(from)];
    let mut groups: Vec<BlockedOn> = Vec::new();
    for s in inside {
        let syscall = syscalls::name(s.nr);
        match groups
            .iter_mut()
            .find(|g| g.syscall == syscall && g.object == s.object)
        {
            Some(g) => g.samples += 1,
            None => groups.push(BlockedOn {
                syscall,
                object: s.object.clone(),
                wchan: s.wchan.clone(),
                ns: 0,
                samples: 1,
            }),
        }
    }
    let total = inside.len() as u64;
    for g in &mut groups {
        g.ns = blocked * u64::from(g.samples) / total.max(1);
    }
    groups
}

/// Adds `more` into `all`, one entry per (syscall, object), largest first.
pub(crate) fn merge(all: &mut Vec<BlockedOn>, more: Vec<BlockedOn>) {
    for m in more {
        match all
            .iter_mut()
            .find(|g| g.syscall == m.syscall && g.object == m.object)
        {
            Some(g) => {
                g.ns += m.ns;
                g.samples += m.samples;
            }
            None => all.push(m),
        }
    }
    all.sort_by(|x, y| y.ns.cmp(&x.ns).then_with(|| x.syscall.cmp(&y.syscall)));
}

/// "clock_nanosleep 80.1 ms; futex 2.0 ms": time per syscall, largest first, for the span's
/// `granular.blocked.syscalls`.
pub(crate) fn table(all: &[BlockedOn]) -> String {
    let mut per: Vec<(&str, u64)> = Vec::new();
    for g in all {
        match per.iter_mut().find(|p| p.0 == g.syscall) {
            Some(p) => p.1 += g.ns,
            None => per.push((&g.syscall, g.ns)),
        }
    }
    per.sort_by_key(|p| std::cmp::Reverse(p.1));
    per.iter()
        .map(|(s, ns)| format!("{s} {:.1} ms", *ns as f64 / 1e6))
        .collect::<Vec<_>>()
        .join("; ")
}

//! What a request's blocked-in-poll time was spent in: the wait samples (`capture::waits`)
//! taken on its threads while its own work was off-CPU, grouped by syscall and object.
//!
//! In: the [`Decoded`] wait samples of a thread, a stretch of the request's own work on it and
//! how much of that stretch the OS says the thread was blocked. Out: that blocked time divided
//! among the (syscall, object) pairs the samples inside the stretch name, in proportion to how
//! many samples each has. The resolution is one sampling period: a block shorter than that
//! may carry no sample, and then nothing is named for it.

use super::decode::{Decoded, Waited};
use super::idmap::IdSet;
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
    /// The thread first seen waiting, and its first and last sample's times (Unix ns).
    pub seen: (u64, u64, u64),
    /// For a contended lock: the other request that likely held it (see [`name_holder`]).
    pub holder: Option<String>,
}

impl BlockedOn {
    /// "clock_nanosleep — std::thread::sleep (80 ms requested)"; the wait channel where the
    /// object is not known.
    pub fn describe(&self) -> String {
        match (self.object.is_empty(), self.wchan.is_empty()) {
            (false, _) => match &self.holder {
                Some(h) => format!("{} — {}, likely held by {h}", self.syscall, self.object),
                None => format!("{} — {}", self.syscall, self.object),
            },
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
    let inside: &[Waited] = &samples[from..to.max(from)];
    let mut groups: Vec<BlockedOn> = Vec::new();
    for s in inside {
        let syscall = syscalls::name(s.nr);
        match groups
            .iter_mut()
            .find(|g| g.syscall == syscall && g.object == s.object)
        {
            Some(g) => {
                g.samples += 1;
                g.seen.2 = s.at;
            }
            None => groups.push(BlockedOn {
                syscall,
                object: s.object.clone(),
                wchan: s.wchan.clone(),
                ns: 0,
                samples: 1,
                seen: (tid, s.at, s.at),
                holder: None,
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
                if g.seen.0 == m.seen.0 {
                    g.seen.2 = g.seen.2.max(m.seen.2);
                }
            }
            None => all.push(m),
        }
    }
    all.sort_by(|x, y| y.ns.cmp(&x.ns).then_with(|| x.syscall.cmp(&y.syscall)));
}

/// How long after a lock wait's last sample its holder may have left the span it held it in:
/// the wait's end is known to a sampling period, and the holder's poll returns just after the
/// release.
const HOLDER_SLACK_NS: u64 = 2_000_000;

/// Names, on a contended std lock wait, the request that likely held the lock: a span entry
/// on another thread, of a request other than this one (`own` are its spans), that covered
/// every sample of the wait and ended within a sampling period (plus [`HOLDER_SLACK_NS`]) of
/// the last one — the holder released it there and the waiter woke. The futex word holds no
/// owner, so this is an inference from the timeline, and said as "likely".
pub(crate) fn name_holder(d: &Decoded, own: &IdSet<u64>, wait: &mut BlockedOn, period_ns: u64) {
    if wait.syscall != "futex" || !wait.object.starts_with("contended std::sync lock") {
        return;
    }
    let (tid, first, last) = wait.seen;
    let holder = d
        .threads
        .iter()
        .filter(|t| t.tid != tid)
        .flat_map(|t| t.entries_overlapping(first, last))
        .filter(|e| !own.contains(&e.span) && e.start <= first && e.end >= last)
        .filter(|e| e.end - last <= period_ns + HOLDER_SLACK_NS)
        .min_by_key(|e| e.end - last);
    wait.holder = holder.map(|e| {
        let root = d.local_root(e.span);
        match d.spans.get(&root).and_then(|s| s.trace_id) {
            Some(t) => format!("{} (trace {t:032x})", d.span_name(root)),
            None => d.span_name(root).to_string(),
        }
    });
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::decode::Waited;
    use crate::analysis::fixtures::{add_root_span, decoded, entry, thread};

    const MS: u64 = 1_000_000;

    fn waited(at_ms: u64, nr: i64, object: &str) -> Waited {
        Waited {
            at: at_ms * MS,
            nr,
            state: b'S',
            wchan: "futex_do_wait".into(),
            object: object.into(),
        }
    }

    const LOCK: &str = "contended std::sync lock (futex 0x10)";

    #[test]
    fn blocked_time_is_divided_by_what_the_samples_in_the_stretch_name() {
        let mut d = decoded(Vec::new());
        let samples = vec![
            waited(1, libc::SYS_futex, LOCK),
            waited(10, libc::SYS_futex, LOCK),
            waited(15, libc::SYS_futex, LOCK),
            waited(
                20,
                libc::SYS_clock_nanosleep,
                "std::thread::sleep (5 ms requested)",
            ),
            waited(50, libc::SYS_futex, LOCK),
        ];
        d.waits.insert(7, samples);
        let on = in_stretch(&d, 7, 5 * MS, 30 * MS, 24 * MS);
        assert_eq!(on.len(), 2, "{on:?}");
        assert_eq!(
            (on[0].syscall.as_str(), on[0].ns, on[0].samples),
            ("futex", 16 * MS, 2)
        );
        assert_eq!(on[0].seen, (7, 10 * MS, 15 * MS), "only the samples inside");
        assert_eq!(
            (on[1].syscall.as_str(), on[1].ns),
            ("clock_nanosleep", 8 * MS)
        );
        assert!(in_stretch(&d, 7, 60 * MS, 70 * MS, MS).is_empty());
        assert!(
            in_stretch(&d, 8, 0, 70 * MS, MS).is_empty(),
            "another thread"
        );

        let mut all = Vec::new();
        merge(&mut all, on);
        merge(&mut all, in_stretch(&d, 7, 45 * MS, 55 * MS, 10 * MS));
        assert_eq!((all[0].ns, all[0].samples), (26 * MS, 3));
        assert_eq!(table(&all), "futex 26.0 ms; clock_nanosleep 8.0 ms");
        assert_eq!(
            all[0].describe(),
            "futex — contended std::sync lock (futex 0x10)"
        );
    }

    #[test]
    fn the_holder_is_the_other_request_in_its_span_until_the_wait_ended() {
        let holder = thread(
            1,
            None,
            Vec::new(),
            vec![entry(100, 0, 31 * MS)],
            Vec::new(),
        );
        let bystander = thread(
            2,
            None,
            Vec::new(),
            vec![entry(200, 0, 90 * MS)],
            Vec::new(),
        );
        let mut d = decoded(vec![holder, bystander]);
        add_root_span(&mut d, 100, "GET /holder", 0xab);
        add_root_span(&mut d, 200, "GET /slow", 0xcd);
        d.waits.insert(
            7,
            vec![
                waited(10, libc::SYS_futex, LOCK),
                waited(30, libc::SYS_futex, LOCK),
            ],
        );
        let mut wait = in_stretch(&d, 7, 0, 40 * MS, 30 * MS).remove(0);
        name_holder(&d, &IdSet::default(), &mut wait, 5 * MS);
        assert_eq!(
            wait.holder.as_deref(),
            Some("GET /holder (trace 000000000000000000000000000000ab)")
        );
        let own: IdSet<u64> = [100].into_iter().collect();
        name_holder(&d, &own, &mut wait, 5 * MS);
        assert_eq!(
            wait.holder, None,
            "the request's own span holds nothing from it"
        );
        let mut sleep = in_stretch(&d, 7, 0, 40 * MS, 30 * MS).remove(0);
        sleep.object = "std::thread::sleep (30 ms requested)".into();
        name_holder(&d, &IdSet::default(), &mut sleep, 5 * MS);
        assert_eq!(sleep.holder, None, "only lock waits have holders");
    }
}

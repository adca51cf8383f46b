//! The linked artifact: the span's window as a Perfetto timeline, put in an
//! [`ArtifactStore`]: a local directory ([`DirStore`], one host) or an OTLP log record linked to
//! the span ([`OtlpArtifacts`], many hosts: the Collector side stores it).
//!
//! Timeline contents: one track per thread that did anything in the window (workers named
//! `worker N`), the request's own polls as slices named after the span they served
//! (highlighted, prefixed `▶`) and its span entries; other work gathered into runs (one slice
//! per stretch with gaps under 1 ms, named after its longest poll or entry: a culprit keeps its
//! name and spawn site); parked intervals; a `request` track with the breakdown's
//! intervals (scheduler wait, blocked in poll...), and flows from each scheduler-wait interval
//! to the poll that ended it.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::analysis::breakdown::RequestWork;
use crate::analysis::decode::Poll;
use crate::analysis::{Breakdown, Decoded};
use crate::timeline::{Flow, Instant, Slice, SliceRef, Timeline, Track, TrackKind};

/// Other work closer together than this on one thread is drawn as one slice: on a busy worker
/// the window holds thousands of other requests' polls, and one slice per poll made artifacts
/// of ~1 MB that cost more to build than the analysis.
const MERGE_GAP_NS: u64 = 1_000_000;

/// A stretch of other work on one thread, named after its longest member.
struct Run<T> {
    start: u64,
    end: u64,
    count: usize,
    longest: T,
    longest_ns: u64,
}

/// Gathers other work into [`Run`]s; items must come sorted by start.
struct Runs<T> {
    open: Option<Run<T>>,
}

impl<T> Runs<T> {
    fn new() -> Self {
        Runs { open: None }
    }

    /// Adds `[a, z]`; returns the run it closed, if it starts a new one.
    fn add(&mut self, a: u64, z: u64, item: T) -> Option<Run<T>> {
        if let Some(r) = &mut self.open {
            if a <= r.end.saturating_add(MERGE_GAP_NS) {
                r.end = r.end.max(z);
                r.count += 1;
                if z - a > r.longest_ns {
                    r.longest_ns = z - a;
                    r.longest = item;
                }
                return None;
            }
        }
        self.open.replace(Run {
            start: a,
            end: z,
            count: 1,
            longest: item,
            longest_ns: z - a,
        })
    }

    fn take(&mut self) -> Option<Run<T>> {
        self.open.take()
    }
}

/// The slice of a run: named after its longest member, `(+N more)` when it holds others.
fn run_slice<T>(run: Run<T>, what: &str, name: String, mut args: Vec<(String, String)>) -> Slice {
    let name = match run.count {
        1 => name,
        n => format!("{name} (+{} more {what})", n - 1),
    };
    args.push((what.to_string(), run.count.to_string()));
    Slice {
        name,
        category: "other".into(),
        start_unix_ns: run.start,
        end_unix_ns: run.end,
        highlight: false,
        args,
    }
}

/// Builds the timeline of `b`'s window from the decoded snapshot.
pub fn timeline(d: &Decoded, b: &Breakdown, work: &RequestWork, trace_id: u128) -> Timeline {
    let (lo, hi) = (b.start, b.end);
    let clip = |a: u64, z: u64| (a.max(lo), z.min(hi).max(a.max(lo)));
    let mut tracks = Vec::new();
    let mut poll_refs: Vec<(u64, SliceRef)> = Vec::new();
    for t in &d.threads {
        let mut slices = Vec::new();
        let polls = t.polls_overlapping(lo, hi);
        let poll_slice = |p: &Poll, ours: bool| {
            let entered = t.entries_starting_in(p.start, p.end);
            let served = entered.first().map(|e| d.span_name(d.local_root(e.span)));
            let mark = if ours { "▶ " } else { "" };
            let name = match served {
                Some(n) => format!("{mark}{n}"),
                None => format!("{mark}poll task {}", p.task),
            };
            let mut args = vec![("task".to_string(), p.task.to_string())];
            if let Some(l) = d.tasks.get(&p.task).and_then(|i| i.spawned_at) {
                args.push(("spawn_site".into(), format!("{}:{}", l.file(), l.line())));
            }
            if p.sched_latency > 0 {
                args.push((
                    "wake_to_poll_us".into(),
                    (p.sched_latency / 1000).to_string(),
                ));
            }
            (name, args)
        };
        let mut runs = Runs::new();
        let close_run = |run: Option<Run<&Poll>>, slices: &mut Vec<Slice>| {
            if let Some(run) = run {
                let (name, args) = poll_slice(run.longest, false);
                slices.push(run_slice(run, "polls", name, args));
            }
        };
        for p in polls {
            let (a, z) = clip(p.start, p.end);
            let ours = work.tasks.contains(&p.task)
                || t.entries_starting_in(p.start, p.end)
                    .iter()
                    .any(|e| work.spans.contains(&e.span));
            if !ours {
                let closed = runs.add(a, z, p);
                close_run(closed, &mut slices);
                continue;
            }
            close_run(runs.take(), &mut slices);
            let (name, args) = poll_slice(p, true);
            poll_refs.push((
                p.start,
                SliceRef {
                    track: tracks.len(),
                    slice: slices.len(),
                },
            ));
            slices.push(Slice {
                name,
                category: "running".into(),
                start_unix_ns: a,
                end_unix_ns: z,
                highlight: true,
                args,
            });
        }
        close_run(runs.take(), &mut slices);
        // With polls on the track, other requests' entries sit inside the polls drawn above;
        // without task hooks the entries are all there is, gathered into runs the same way.
        let mut runs = Runs::new();
        let close_run = |run: Option<Run<u64>>, slices: &mut Vec<Slice>| {
            if let Some(run) = run {
                let name = d.span_name(d.local_root(run.longest)).to_string();
                slices.push(run_slice(run, "entries", name, Vec::new()));
            }
        };
        for e in t
            .entries_overlapping(lo, hi)
            .filter(|e| e.end > lo && e.start < hi)
        {
            let (a, z) = clip(e.start, e.end);
            if !work.spans.contains(&e.span) {
                if polls.is_empty() {
                    let closed = runs.add(a, z, e.span);
                    close_run(closed, &mut slices);
                }
                continue;
            }
            close_run(runs.take(), &mut slices);
            slices.push(Slice {
                name: d.span_name(e.span).to_string(),
                category: "running".into(),
                start_unix_ns: a,
                end_unix_ns: z,
                highlight: true,
                args: vec![],
            });
        }
        close_run(runs.take(), &mut slices);
        for &(a, z) in t.parks.iter().filter(|(a, z)| *z > lo && *a < hi) {
            let (a, z) = clip(a, z);
            slices.push(Slice {
                name: "parked".into(),
                category: "idle".into(),
                start_unix_ns: a,
                end_unix_ns: z,
                highlight: false,
                args: vec![],
            });
        }
        if slices.is_empty() {
            continue;
        }
        let name = match t.worker {
            Some(w) => format!("worker {w} (tid {})", t.tid),
            None => format!("thread {}", t.tid),
        };
        tracks.push(Track {
            name,
            kind: TrackKind::Thread { tid: t.tid as u32 },
            slices,
        });
    }
    let req = tracks.len();
    let mut slices = Vec::new();
    let mut flows = Vec::new();
    for i in &b.intervals {
        let (a, z) = clip(i.start, i.end);
        if i.detail.starts_with("culprit") {
            continue;
        }
        let idx = slices.len();
        slices.push(Slice {
            name: i.category.words().into(),
            category: i.category.key().into(),
            start_unix_ns: a,
            end_unix_ns: z,
            highlight: true,
            args: vec![("detail".into(), i.detail.clone())],
        });
        if i.category == crate::analysis::Category::SchedulerWait {
            if let Some((_, to)) = poll_refs
                .iter()
                .find(|(s, _)| s.abs_diff(i.end) < 1_000_000)
            {
                flows.push(Flow {
                    from: SliceRef {
                        track: req,
                        slice: idx,
                    },
                    to: *to,
                });
            }
        }
    }
    let instants = vec![
        Instant {
            track: req,
            name: format!("{} start", b.span_name),
            at_unix_ns: lo,
        },
        Instant {
            track: req,
            name: format!("{} end", b.span_name),
            at_unix_ns: hi,
        },
    ];
    tracks.push(Track {
        name: format!("request: {}", b.span_name),
        kind: TrackKind::Task,
        slices,
    });
    Timeline {
        title: format!("{} · trace {trace_id:032x}", b.span_name),
        tracks,
        flows,
        instants,
    }
}

/// Where artifacts go.
///
/// # Contract
/// Called from the analyzer thread only, never on the request path; `put` may do local I/O but
/// must not wait on the network (hand off instead). It returns the link put on the span as
/// `granular.artifact`, or an error message (counted, logged once, the span is exported
/// without a link).
pub trait ArtifactStore: Send + std::fmt::Debug {
    fn put(&self, id: &str, trace_id: u128, span_id: u64, bytes: Vec<u8>)
    -> Result<String, String>;
}

/// A bounded directory of artifacts: files are 0600, the directory keeps at most `max_bytes`
/// (oldest removed first) and nothing older than `retention` (checked at least once a second).
#[derive(Debug)]
pub struct DirStore {
    dir: PathBuf,
    max_bytes: u64,
    retention: Duration,
    /// Links become `<base>/<id>.perfetto-trace`; `file://` paths without it.
    base_url: Option<String>,
    /// Bytes in the directory as of the last scan plus those written since, and when that
    /// scan was: the directory is listed only when the cap may be exceeded or a second has
    /// passed, not on every write.
    usage: std::sync::Mutex<(u64, Option<std::time::Instant>)>,
}

/// How often the directory is listed for expired files at most.
const PRUNE_EVERY: Duration = Duration::from_secs(1);

impl DirStore {
    pub fn new(
        dir: PathBuf,
        max_bytes: u64,
        retention: Duration,
        base_url: Option<String>,
    ) -> std::io::Result<DirStore> {
        fs::create_dir_all(&dir)?;
        Ok(DirStore {
            dir,
            max_bytes,
            retention,
            base_url,
            usage: std::sync::Mutex::new((0, None)),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `bytes` as `<id>.perfetto-trace`; returns the file's path.
    pub fn write(&self, id: &str, bytes: &[u8]) -> std::io::Result<PathBuf> {
        let path = self.dir.join(format!("{id}.perfetto-trace"));
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)?;
        f.write_all(bytes)?;
        let mut usage = self.usage.lock().unwrap_or_else(|e| e.into_inner());
        usage.0 += bytes.len() as u64;
        if usage.0 > self.max_bytes || usage.1.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
            *usage = (self.prune(), Some(std::time::Instant::now()));
        }
        Ok(path)
    }

    /// Removes expired files, then the oldest until the directory holds at most 90 % of the
    /// cap (so the next writes need no listing); returns the bytes left.
    fn prune(&self) -> u64 {
        let Ok(rd) = fs::read_dir(&self.dir) else {
            return 0;
        };
        let mut files: Vec<(SystemTime, u64, PathBuf)> = rd
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "perfetto-trace"))
            .filter_map(|e| {
                let m = e.metadata().ok()?;
                Some((m.modified().ok()?, m.len(), e.path()))
            })
            .collect();
        files.sort();
        let now = SystemTime::now();
        let mut total: u64 = files.iter().map(|f| f.1).sum();
        let keep = self.max_bytes / 10 * 9;
        for (modified, len, path) in files {
            let expired = now
                .duration_since(modified)
                .is_ok_and(|age| age > self.retention);
            if (expired || total > keep) && fs::remove_file(&path).is_ok() {
                total -= len;
            }
        }
        total
    }
}

impl ArtifactStore for DirStore {
    fn put(&self, id: &str, _trace: u128, _span: u64, bytes: Vec<u8>) -> Result<String, String> {
        let path = self
            .write(id, &bytes)
            .map_err(|e| format!("cannot write artifact {id}: {e}"))?;
        Ok(match &self.base_url {
            Some(base) => format!("{}/{id}.perfetto-trace", base.trim_end_matches('/')),
            None => format!("file://{}", path.display()),
        })
    }
}

/// Artifacts as OTLP log records: trace and span ids set, event name `granular.artifact`,
/// attributes `granular.artifact.id` and `granular.artifact.format = perfetto-protobuf`, the
/// trace bytes as the body. The SDK's batch processor sends them (never blocking here). Links
/// are `<base>/artifacts/<id>`, the path the Collector's `granular_artifacts` extension serves.
pub struct OtlpArtifacts {
    logger: opentelemetry_sdk::logs::SdkLogger,
    base_url: String,
}

impl std::fmt::Debug for OtlpArtifacts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpArtifacts")
            .field("base_url", &self.base_url)
            .finish()
    }
}

impl OtlpArtifacts {
    pub fn new(logger: opentelemetry_sdk::logs::SdkLogger, base_url: String) -> Self {
        OtlpArtifacts { logger, base_url }
    }
}

impl ArtifactStore for OtlpArtifacts {
    fn put(&self, id: &str, trace: u128, span: u64, bytes: Vec<u8>) -> Result<String, String> {
        use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _};
        use opentelemetry::trace::{SpanId, TraceFlags, TraceId};
        let mut rec = self.logger.create_log_record();
        rec.set_event_name("granular.artifact");
        rec.set_timestamp(SystemTime::now());
        rec.set_trace_context(
            TraceId::from_bytes(trace.to_be_bytes()),
            SpanId::from_bytes(span.to_be_bytes()),
            Some(TraceFlags::SAMPLED),
        );
        rec.add_attribute("event.name", "granular.artifact");
        rec.add_attribute("granular.artifact.id", id.to_string());
        rec.add_attribute("granular.artifact.format", "perfetto-protobuf");
        rec.set_body(AnyValue::Bytes(Box::new(bytes)));
        self.logger.emit(rec);
        Ok(format!(
            "{}/artifacts/{id}",
            self.base_url.trim_end_matches('/')
        ))
    }
}

/// The artifact's id: trace and span id, so it is unique and easy to find by hand.
pub fn artifact_id(trace_id: u128, span_id: u64) -> String {
    format!("{trace_id:032x}-{span_id:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_writes_private_files_and_enforces_the_size_cap() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("granular-store-test-{}", std::process::id()));
        let store = DirStore::new(dir.clone(), 2500, Duration::from_secs(3600), None).unwrap();
        let p = store.write("a", &[0u8; 1000]).unwrap();
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        std::thread::sleep(Duration::from_millis(20));
        store.write("b", &[0u8; 1000]).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        store.write("c", &[0u8; 1000]).unwrap();
        assert!(
            !dir.join("a.perfetto-trace").exists(),
            "oldest file should be pruned"
        );
        assert!(dir.join("c.perfetto-trace").exists());
        fs::remove_dir_all(dir).unwrap();
    }
}

//! Where artifacts go: the [`ArtifactStore`] seam, a bounded local directory ([`DirStore`], one
//! host) and OTLP log records linked to the span ([`OtlpArtifacts`], many hosts: the
//! Collector side stores them).

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Where artifacts go.
///
/// # Contract
/// Called from the analyzer thread only, never on the request path; `put` may do local I/O but
/// must not wait on the network (hand off instead). It returns the link put on the span as
/// `granular.artifact`, or an error message (counted, logged once, the span is exported
/// without a link).
pub trait ArtifactStore: Send + std::fmt::Debug {
    /// Keeps `bytes`, the Perfetto timeline of span `span_id` in trace `trace_id`, under `id`
    /// (unique, usable as a file name); returns the link, or why it could not.
    fn put(&self, id: &str, trace_id: u128, span_id: u64, bytes: Vec<u8>)
    -> Result<String, String>;
}

/// A bounded directory of artifacts: files are 0600, the directory keeps at most `max_bytes`
/// (oldest removed first) and nothing older than `retention` (checked at least once a second).
///
/// Private to the process's user: the directory is created 0700 and refused when it is a
/// symlink, belongs to another user or others may write it (a directory someone else created
/// under a shared `/tmp` first); each file is created new (`O_EXCL | O_NOFOLLOW`: a file or
/// symlink already at its path is an error, never followed or overwritten), and ids are
/// checked to be plain file names.
#[derive(Debug)]
pub(crate) struct DirStore {
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
    pub(crate) fn new(
        dir: PathBuf,
        max_bytes: u64,
        retention: Duration,
        base_url: Option<String>,
    ) -> std::io::Result<DirStore> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)?;
        check_private(&dir)?;
        Ok(DirStore {
            dir,
            max_bytes,
            retention,
            base_url,
            usage: std::sync::Mutex::new((0, None)),
        })
    }

    /// Writes `bytes` as a new file `<id>.perfetto-trace`; returns its path.
    pub(crate) fn write(&self, id: &str, bytes: &[u8]) -> std::io::Result<PathBuf> {
        check_id(id)?;
        check_file_size_limit(bytes.len() as u64)?;
        let path = self.dir.join(format!("{id}.perfetto-trace"));
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
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

/// Longest artifact id accepted: a trace id, a span id and a separator, with room to spare.
const MAX_ID_LEN: usize = 128;

/// An id is a plain file name: ASCII letters, digits, `-` and `_`, at most [`MAX_ID_LEN`].
fn check_id(id: &str) -> std::io::Result<()> {
    let plain = id
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_');
    if id.is_empty() || id.len() > MAX_ID_LEN || !plain {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "artifact id {id:?} is not a plain name (1 to {MAX_ID_LEN} ASCII letters, \
                 digits, '-' or '_')"
            ),
        ));
    }
    Ok(())
}

/// Refuses a file longer than the process's `RLIMIT_FSIZE`: writing past it raises SIGXFSZ,
/// whose default action ends the process — the application's, not only Granular's.
fn check_file_size_limit(len: u64) -> std::io::Result<()> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_FSIZE, &mut limit) } != 0
        || limit.rlim_cur == libc::RLIM_INFINITY
        || len <= limit.rlim_cur
    {
        return Ok(());
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::FileTooLarge,
        format!(
            "{len} bytes is over the process's file size limit (RLIMIT_FSIZE {} bytes), \
             past which a write would raise SIGXFSZ and end the process",
            limit.rlim_cur
        ),
    ))
}

/// Refuses an artifact directory that is not this user's alone: a symlink, not a directory,
/// owned by another user, or writable by group or others.
fn check_private(dir: &Path) -> std::io::Result<()> {
    let m = fs::symlink_metadata(dir)?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    let problem = if m.file_type().is_symlink() {
        Some("is a symlink".to_string())
    } else if !m.is_dir() {
        Some("is not a directory".to_string())
    } else if m.uid() != me {
        Some(format!(
            "belongs to uid {}, not this process's {me}",
            m.uid()
        ))
    } else if m.mode() & 0o022 != 0 {
        Some(format!(
            "is writable by others (mode {:o})",
            m.mode() & 0o7777
        ))
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some(p) => Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "{} {p}: artifacts go only to a directory this user alone can write \
                 (GRANULAR_ARTIFACT_DIR; a new one is created 0700)",
                dir.display()
            ),
        )),
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

/// The configured directory, refused or not creatable: every artifact fails with why, so each
/// violating span says `granular.artifact.skipped=store_error` and the reason is logged.
#[derive(Debug)]
pub(crate) struct Unusable {
    pub(crate) why: String,
}

impl ArtifactStore for Unusable {
    fn put(&self, id: &str, _: u128, _: u64, _: Vec<u8>) -> Result<String, String> {
        Err(format!("artifact {id} not written: {}", self.why))
    }
}

/// Artifacts as OTLP log records (`GRANULAR_ARTIFACTS=otlp`): trace and span ids set, event
/// name `granular.artifact`, attributes `granular.artifact.id` and
/// `granular.artifact.format = perfetto-protobuf`, the trace bytes as the body. The logger's
/// batch processor sends them (never blocking the analyzer). Links are `<base>/artifacts/<id>`,
/// the path the Collector's `granular_artifacts` extension serves.
///
/// [`init`](fn@crate::init) sets one up; a stack composed by hand passes one to
/// [`GranularProcessor::with_artifact_store`](crate::GranularProcessor::with_artifact_store),
/// with a logger of its own OTLP log pipeline.
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
    /// Artifacts sent through `logger`, linked under `cfg.artifact_base_url`
    /// (`GRANULAR_ARTIFACT_BASE_URL`), else the Collector extension's default loopback address.
    pub fn new(logger: opentelemetry_sdk::logs::SdkLogger, cfg: &crate::config::Config) -> Self {
        let base_url = cfg
            .artifact_base_url
            .clone()
            .unwrap_or_else(|| DEFAULT_ARTIFACT_SERVER.to_string());
        OtlpArtifacts { logger, base_url }
    }
}

/// Where `granular.artifact` links point with `GRANULAR_ARTIFACTS=otlp` unless
/// `GRANULAR_ARTIFACT_BASE_URL` says otherwise: the Collector's `granular_artifacts` extension
/// on its default loopback address.
const DEFAULT_ARTIFACT_SERVER: &str = "http://127.0.0.1:16700";

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

    /// A fresh directory path under the temp dir, not created.
    fn fresh(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("granular-{name}-{}", std::process::id()))
    }

    #[test]
    fn the_directory_is_created_private_and_a_shared_or_foreign_one_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = fresh("store-private");
        let _ = fs::remove_dir_all(&dir);
        DirStore::new(dir.clone(), 1 << 20, Duration::from_secs(60), None).unwrap();
        assert_eq!(
            fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
        let e = DirStore::new(dir.clone(), 1 << 20, Duration::from_secs(60), None).unwrap_err();
        assert!(
            e.to_string().contains("writable by others (mode 777)"),
            "{e}"
        );
        let link = fresh("store-link");
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        let e = DirStore::new(link.clone(), 1 << 20, Duration::from_secs(60), None).unwrap_err();
        assert!(e.to_string().contains("is a symlink"), "{e}");
        fs::remove_file(link).unwrap();
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_write_never_follows_or_replaces_what_is_at_its_path() {
        let dir = fresh("store-nofollow");
        let _ = fs::remove_dir_all(&dir);
        let store = DirStore::new(dir.clone(), 1 << 20, Duration::from_secs(60), None).unwrap();
        let target = fresh("store-target");
        fs::write(&target, b"precious").unwrap();
        std::os::unix::fs::symlink(&target, dir.join("t-s.perfetto-trace")).unwrap();
        assert!(store.write("t-s", b"artifact").is_err());
        assert_eq!(fs::read(&target).unwrap(), b"precious");
        store.write("u-v", b"one").unwrap();
        assert!(
            store.write("u-v", b"two").is_err(),
            "an existing file is kept"
        );
        assert_eq!(fs::read(dir.join("u-v.perfetto-trace")).unwrap(), b"one");
        for bad in ["../escape", "a/b", "", ".hidden", "a b", &"x".repeat(129)] {
            let e = store.write(bad, b"x").unwrap_err();
            assert!(
                e.to_string().contains("is not a plain name"),
                "{bad:?}: {e}"
            );
        }
        assert!(!dir.parent().unwrap().join("escape.perfetto-trace").exists());
        fs::remove_file(target).unwrap();
        fs::remove_dir_all(dir).unwrap();
    }
}

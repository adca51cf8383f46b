//! Where artifacts go: the [`ArtifactStore`] seam, a bounded local directory ([`DirStore`], one
//! host) and OTLP log records linked to the span ([`OtlpArtifacts`], many hosts: the
//! Collector side stores them).

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
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
        fs::create_dir_all(&dir)?;
        Ok(DirStore {
            dir,
            max_bytes,
            retention,
            base_url,
            usage: std::sync::Mutex::new((0, None)),
        })
    }

    /// Writes `bytes` as `<id>.perfetto-trace`; returns the file's path.
    pub(crate) fn write(&self, id: &str, bytes: &[u8]) -> std::io::Result<PathBuf> {
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
}

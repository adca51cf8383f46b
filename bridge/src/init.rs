//! Setting Granular up: [`init`] for the common case, [`install_recorder`] and the parts
//! ([`RecorderLayer`], [`GranularProcessor`]) for users who compose their
//! own subscriber and tracer provider.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::logs::LoggerProvider as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::{BatchSpanProcessor, SdkTracerProvider, SpanProcessor as _};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::analyzer::artifacts::OtlpArtifacts;
use crate::capture::layer::RecorderLayer;
use crate::capture::subscriber::GranularSubscriber;
use crate::capture::{alloc, os, perf, runtime, waits};
use crate::config::{AllFrom, ArtifactSink, Config, ConfigError, OtlpSignal, SampleMode};
use crate::export::delivery::{CountedQueue, CountingExporter};
use crate::export::otlp::{self, ExporterError};
use crate::export::{GranularProcessor, health};
use crate::recorder::FlightRecorder;
use crate::slo::Stats;

/// Why [`init`] failed.
#[derive(Debug)]
pub enum Error {
    /// A `GRANULAR_*` or `OTEL_*` variable has a bad value.
    Config(ConfigError),
    /// The OTLP exporter could not be built.
    Exporter(String),
    /// A global `tracing` subscriber was already installed.
    Subscriber(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(e) => write!(f, "granular: {e}"),
            Error::Exporter(e) => write!(f, "granular: cannot build the OTLP span exporter: {e}"),
            Error::Subscriber(e) => write!(f, "granular: {e}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Self {
        Error::Config(e)
    }
}

impl From<ExporterError> for Error {
    fn from(e: ExporterError) -> Self {
        Error::Exporter(e.0)
    }
}

/// How often the sampler thread drains the perf rings when schedstat is not sampled: each
/// 64 KiB ring holds ~1,300 switches, so 100 Hz keeps up with 100,000 switches/s per thread.
const PERF_DRAIN_HZ: u32 = 100;

/// Every source [`install_recorder`] reports on, in its order.
const SOURCES: [&str; 8] = [
    "tokio.workers",
    "tokio.tasks",
    "tracing.spans",
    "os.schedstat",
    "perf.context_switches",
    "os.wait_samples",
    "alloc",
    "blocking_pool",
];

/// Which event sources are recording, and why the others are not.
#[derive(Debug, Clone)]
pub struct Sources {
    /// Each source's name (as in `granular.sources`) and whether it records: `Err` says why
    /// not.
    pub entries: Vec<(&'static str, Result<(), String>)>,
}

impl Sources {
    /// The active sources, comma separated (the `granular.sources` attribute).
    pub fn active(&self) -> String {
        let v: Vec<&str> = self
            .entries
            .iter()
            .filter(|(_, r)| r.is_ok())
            .map(|(n, _)| *n)
            .collect();
        v.join(",")
    }
}

impl fmt::Display for Sources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (name, r)) in self.entries.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            match r {
                Ok(()) => write!(f, "{name}: active")?,
                Err(why) => write!(f, "{name}: inactive ({why})")?,
            }
        }
        Ok(())
    }
}

/// Installs the flight recorder and starts the background sources the configuration asks for.
/// Idempotent. Returns what is active.
///
/// With `cfg.enabled` false (`GRANULAR_ENABLED=false`, `OTEL_SDK_DISABLED=true`) it installs
/// nothing, turns Granular off for the process (every source returns at once) and reports every
/// source inactive with the reason.
pub fn install_recorder(cfg: &Config) -> Sources {
    if !cfg.enabled {
        crate::capture::switch::turn_off();
        // A runtime built before the configuration was read registered its threads for
        // sampling: their schedstat files are closed.
        os::forget_threads();
        let why = if cfg.sdk_disabled {
            "OTEL_SDK_DISABLED=true"
        } else {
            "GRANULAR_ENABLED=false"
        };
        return Sources {
            entries: SOURCES.iter().map(|&n| (n, Err(why.to_string()))).collect(),
        };
    }
    FlightRecorder::install(cfg.recorder);
    let mut entries: Vec<(&'static str, Result<(), String>)> = vec![
        ("tokio.workers", Ok(())),
        (
            "tokio.tasks",
            if runtime::TASK_HOOKS {
                Ok(())
            } else {
                Err("built without --cfg tokio_unstable: no polls, spawns or wake latency; scheduler wait is estimated from span entries".into())
            },
        ),
        ("tracing.spans", Ok(())),
    ];
    let perf = if cfg.perf {
        perf::enable()
    } else {
        Err("GRANULAR_PERF=off".to_string())
    };
    // With perf, off-CPU intervals are exact and schedstat adds nothing but a 1 kHz wake-up;
    // it is the fallback where perf is denied.
    let schedstat = if perf.is_ok() {
        Err("not needed: perf context switches give exact off-CPU intervals".to_string())
    } else if cfg.os_sample_hz == 0 {
        Err("GRANULAR_OS_SAMPLE_HZ=0".to_string())
    } else {
        os::available()
    };
    let waits = if cfg.wait_sample_hz == 0 {
        Err("GRANULAR_WAIT_SAMPLE_HZ=0".to_string())
    } else {
        waits::enable(cfg.wait_sample_hz)
    };
    // One sampler thread serves all three: it reads schedstat (at GRANULAR_OS_SAMPLE_HZ) or only
    // drains the perf rings (at PERF_DRAIN_HZ while they fill, slower while they stay nearly
    // empty; the analyzer also drains before each snapshot), and samples threads blocked inside
    // a request's work (at GRANULAR_WAIT_SAMPLE_HZ while some thread is inside one).
    let sampler = match (&schedstat, &perf, &waits) {
        (Ok(()), _, _) => os::start(cfg.os_sample_hz, true),
        (Err(_), Ok(()), _) | (Err(_), Err(_), Ok(())) => os::start(PERF_DRAIN_HZ, false),
        (Err(_), Err(_), Err(_)) => Ok(()),
    };
    entries.push(("os.schedstat", schedstat.and(sampler.clone())));
    entries.push(("perf.context_switches", perf.and(sampler.clone())));
    entries.push(("os.wait_samples", waits.and(sampler)));
    entries.push((
        "alloc",
        if alloc::installed() {
            Ok(())
        } else {
            Err("granular::Alloc is not the global allocator".into())
        },
    ));
    entries.push(("blocking_pool", Ok(())));
    Sources { entries }
}

/// Guard returned by [`init`]: flushes pending spans and shuts exporters down when dropped.
#[derive(Debug)]
pub struct Granular {
    provider: SdkTracerProvider,
    /// Carries artifacts when `GRANULAR_ARTIFACTS=otlp`; shut down after the spans.
    artifact_logs: Option<SdkLoggerProvider>,
    /// Exports Granular's health counters (`GRANULAR_METRICS`); shut down last, so the final
    /// export carries the spans' last counts.
    metrics: Option<SdkMeterProvider>,
    stats: Arc<Stats>,
    sources: Sources,
    warnings: Vec<ConfigError>,
}

impl Granular {
    /// The bad configuration values [`init`] reported and ignored (each was logged as a
    /// warning); empty after [`init_with`].
    pub fn config_warnings(&self) -> &[ConfigError] {
        &self.warnings
    }

    /// What the processor did so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Which sources are active.
    pub fn sources(&self) -> &Sources {
        &self.sources
    }

    /// Flushes spans, artifacts and health metrics and shuts the exporters down, all within
    /// `timeout` (dropping the guard does the same within 5 s). What a backend that does not
    /// answer in time leaves undelivered is counted (`export_undelivered_spans`).
    pub fn shutdown(self, timeout: Duration) {
        self.shut_down(timeout);
    }

    /// One deadline for the providers, in order: spans, artifacts, then the health metrics,
    /// whose final export carries the spans' last counts. With a backend that never answers,
    /// the first takes the whole deadline and the others get what is left.
    fn shut_down(&self, timeout: Duration) {
        let deadline = std::time::Instant::now() + timeout;
        let left = || deadline.saturating_duration_since(std::time::Instant::now());
        let _ = self.provider.shutdown_with_timeout(left());
        if let Some(logs) = &self.artifact_logs {
            let _ = logs.shutdown_with_timeout(left());
        }
        if let Some(metrics) = &self.metrics {
            health::shut_down_within(metrics, left());
        }
    }
}

impl Drop for Granular {
    fn drop(&mut self) {
        // Idempotent: after `shutdown` the providers answer at once.
        self.shut_down(Duration::from_secs(5));
        let s = &self.stats;
        use std::sync::atomic::Ordering::Relaxed;
        let snapshot = FlightRecorder::get()
            .map(FlightRecorder::snapshot)
            .unwrap_or_default();
        tracing::info!(
            enriched = s.enriched.load(Relaxed),
            skipped_rate_limit = s.skipped_rate_limit.load(Relaxed),
            skipped_queue_full = s.skipped_queue_full.load(Relaxed),
            light_analyzed = s.light_analyzed.load(Relaxed),
            chosen_traces = s.chosen_traces.load(Relaxed),
            exported_traces = s.exported_traces.load(Relaxed),
            partial_traces = s.partial_traces.load(Relaxed),
            unfinished_traces = s.unfinished_traces.load(Relaxed),
            lost_traces = s.lost_traces.load(Relaxed),
            not_found_traces = s.not_found_traces.load(Relaxed),
            rebuild_errors = s.rebuild_errors.load(Relaxed),
            dropped_traces = s.dropped_traces.load(Relaxed),
            streamed_spans = s.streamed_spans.load(Relaxed),
            stream_unexported_spans = s.stream_unexported_spans.load(Relaxed),
            dropped_healthy_spans = s.dropped_healthy_spans.load(Relaxed),
            unfinished_spans = s.unfinished_spans.load(Relaxed),
            hold_overflow = s.hold_overflow.load(Relaxed),
            analysis_errors = s.analysis_errors.load(Relaxed),
            artifact_errors = s.artifact_errors.load(Relaxed),
            export_delivered_spans = s.export_delivered_spans.load(Relaxed),
            export_failed_spans = s.export_failed_spans.load(Relaxed),
            export_undelivered_spans = s.export_undelivered_spans(),
            recorder_lost_records = snapshot.lost(),
            perf_lost_records = crate::capture::perf::lost_records().unwrap_or(0),
            overwritten_records = snapshot.overwritten,
            dropped_by_kind = ?snapshot.dropped,
            "granular: shut down"
        );
    }
}

/// One-line setup: reads `GRANULAR_*` and `OTEL_*` from the environment, installs the flight
/// recorder, the global `tracing` subscriber (env filter + fmt + OpenTelemetry + Granular's
/// layer; with `GRANULAR_SAMPLE=violations`, [`GranularSubscriber`] instead), the W3C
/// propagator and an OTLP exporter (gRPC, or HTTP/protobuf when `OTEL_EXPORTER_OTLP_PROTOCOL`
/// says so; compressed as `OTEL_EXPORTER_OTLP_COMPRESSION` says) behind [`GranularProcessor`].
/// Call it inside a tokio runtime built with [`instrument_runtime`](crate::instrument_runtime).
///
/// Configuration never stops the service: as the OpenTelemetry specification asks, a bad value
/// is logged as one warning (variable, value, expected form, what is used instead) and
/// ignored ([`Config::from_env_lenient`]; [`Granular::config_warnings`] lists them). For an
/// error instead, use [`init_with`]`(`[`Config::from_env`]`()?)`.
///
/// `GRANULAR_ENABLED=false`: spans are exported untouched by a plain tracing-opentelemetry
/// stack; no recorder, sampler thread or perf event; the runtime hooks return at once.
/// `OTEL_SDK_DISABLED=true`: no telemetry at all — only the log output (env filter + fmt
/// layer) is installed, no tracer provider, exporter or propagator.
pub fn init() -> Result<Granular, Error> {
    let (cfg, warnings) = Config::from_env_lenient();
    start(cfg, warnings)
}

/// [`init`] with an explicit configuration: the strict counterpart, for a
/// [`Config::from_env`] (which fails on the first bad value) or one built in code.
pub fn init_with(cfg: Config) -> Result<Granular, Error> {
    start(cfg, Vec::new())
}

/// The log output every setup installs: `RUST_LOG`'s filter (else `info`) and the fmt layer.
fn log_filter() -> tracing_subscriber::EnvFilter {
    tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into())
}

fn subscriber_error(e: impl fmt::Display) -> Error {
    Error::Subscriber(format!(
        "a global tracing subscriber is already installed: {e}"
    ))
}

fn start(cfg: Config, mut warnings: Vec<ConfigError>) -> Result<Granular, Error> {
    let sources = install_recorder(&cfg);
    if cfg.sdk_disabled {
        tracing_subscriber::registry()
            .with(log_filter())
            .with(tracing_subscriber::fmt::layer())
            .try_init()
            .map_err(subscriber_error)?;
        return Ok(finish(
            SdkTracerProvider::builder().build(),
            None,
            Arc::default(),
            sources,
            warnings,
            None,
        ));
    }
    let exporter = otlp_exporter(&cfg)?;
    if !cfg.enabled {
        // Spans untouched: the plain tracing-opentelemetry stack, no Granular part in it.
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .build();
        set_globals(&provider);
        tracing_subscriber::registry()
            .with(log_filter())
            .with(tracing_subscriber::fmt::layer())
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("granular")))
            .try_init()
            .map_err(subscriber_error)?;
        return Ok(finish(
            provider,
            None,
            Arc::default(),
            sources,
            warnings,
            None,
        ));
    }
    // Only now: with Granular off there are no background threads to place.
    if let Err(problem) = crate::background::run_on(&cfg.background_cpus) {
        let cpus: Vec<String> = cfg.background_cpus.iter().map(usize::to_string).collect();
        warnings.push(ConfigError {
            variable: "GRANULAR_BACKGROUND_CPUS".into(),
            value: cpus.join(","),
            problem,
            using: "unset (the application's CPUs)".into(),
        });
    }
    let resource = Resource::builder()
        .with_attribute(KeyValue::new("granular.sources", sources.active()))
        .build();
    let artifact_logs = match cfg.artifacts {
        ArtifactSink::Otlp => Some(
            SdkLoggerProvider::builder()
                .with_batch_exporter(otlp::log_exporter(cfg.otlp_logs)?)
                .with_resource(resource.clone())
                .build(),
        ),
        _ => None,
    };
    let artifact_store = artifact_logs
        .as_ref()
        .map(|logs| OtlpArtifacts::new(logs.logger("granular"), &cfg));
    let violations = cfg.sample == SampleMode::Violations;
    // Granular's own subscriber records the spans: in `violations` mode, and in `all` mode
    // exporting from the recording.
    let records_spans = violations || cfg.all_from == AllFrom::Recording;
    // Started once the subscriber is in place, so that where it listens is logged.
    let debug = cfg.debug_addr.is_some().then(|| cfg.clone());
    let health_export = cfg.metrics.then_some((cfg.otlp_metrics, cfg.sample));
    let stats = Arc::new(Stats::default());
    // In violations mode the exporter sends a small share of the spans: its thread can run in
    // the background. In `all` mode it sends every span and keeps the priority the SDK gave it.
    let exporter = CountingExporter::new(exporter, stats.clone()).in_background(violations);
    let mut batch = CountedQueue::new(BatchSpanProcessor::builder(exporter).build(), stats.clone());
    // Set here: once the analyzer thread shares the processor, the SDK's own set_resource
    // call cannot reach it.
    batch.set_resource(&resource);
    let mut processor =
        GranularProcessor::new(batch, cfg, sources.active()).with_stats(stats.clone());
    if let Some(store) = artifact_store {
        processor = processor.with_artifact_store(Box::new(store));
    }
    // GRANULAR_SAMPLE=violations: Granular records spans itself and builds OTel spans only
    // for exported traces; GRANULAR_ALL_FROM=recording: and builds every other trace's on a
    // thread of its own; otherwise tracing-opentelemetry builds every span.
    let sampler = records_spans.then(|| processor.source_sampler());
    processor.stream_every_trace();
    let health = health_export.map(|(signal, mode)| HealthExport {
        signal,
        mode,
        resource: resource.clone(),
    });
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_resource(resource)
        .build();
    set_globals(&provider);
    let installed = match sampler {
        Some(sampler) => {
            let (filter, warning) = crate::capture::subscriber::filter_from_env();
            let set = GranularSubscriber::new(sampler, filter)
                .try_init()
                .map_err(|e| e.to_string());
            if let (Ok(()), Some(w)) = (&set, warning) {
                tracing::warn!("{w}");
            }
            set
        }
        None => tracing_subscriber::registry()
            .with(log_filter())
            .with(tracing_subscriber::fmt::layer())
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("granular")))
            .with(RecorderLayer::new())
            .try_init()
            .map_err(|e| e.to_string()),
    };
    installed.map_err(subscriber_error)?;
    if let Some(cfg) = debug {
        crate::debug::start(&cfg);
    }
    Ok(finish(
        provider,
        artifact_logs,
        stats,
        sources,
        warnings,
        health,
    ))
}

/// The W3C propagator and the global tracer provider.
fn set_globals(provider: &SdkTracerProvider) {
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    opentelemetry::global::set_tracer_provider(provider.clone());
}

/// Logs the configuration warnings and the sources (the subscriber is in place), starts the
/// health metrics (`health`) and builds the guard.
fn finish(
    provider: SdkTracerProvider,
    artifact_logs: Option<SdkLoggerProvider>,
    stats: Arc<Stats>,
    sources: Sources,
    warnings: Vec<ConfigError>,
    health: Option<HealthExport>,
) -> Granular {
    for w in &warnings {
        tracing::warn!("granular: {}", w.warning());
    }
    tracing::info!("granular: sources: {sources}");
    let cpus = crate::background::cpus();
    if !cpus.is_empty() {
        tracing::info!("granular: background threads run on CPUs {cpus:?}");
    }
    let metrics = health.and_then(|h| health_metrics(stats.clone(), h));
    Granular {
        provider,
        artifact_logs,
        metrics,
        stats,
        sources,
        warnings,
    }
}

/// Where and how Granular's health counters are exported.
struct HealthExport {
    signal: OtlpSignal,
    mode: SampleMode,
    /// The service's resource.
    resource: Resource,
}

/// The meter provider exporting Granular's health counters, or `None` (with a warning) when
/// the OTLP metric exporter cannot be built: the spans matter more than the counters.
fn health_metrics(stats: Arc<Stats>, h: HealthExport) -> Option<SdkMeterProvider> {
    match otlp::metric_exporter(h.signal).map_err(Error::from) {
        Ok(exporter) => Some(health::start(stats, h.mode, h.resource, exporter)),
        Err(e) => {
            tracing::warn!("{e}; Granular's health metrics are not exported");
            None
        }
    }
}

/// The OTLP span exporter `cfg.otlp_traces` asks for (endpoint, headers and timeout from
/// `OTEL_EXPORTER_OTLP_*`).
pub fn otlp_exporter(cfg: &Config) -> Result<opentelemetry_otlp::SpanExporter, Error> {
    Ok(otlp::span_exporter(cfg.otlp_traces)?)
}

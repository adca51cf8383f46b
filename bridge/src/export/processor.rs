//! [`GranularProcessor`]: the OpenTelemetry `SpanProcessor` that wraps the exporting processor.
//! It judges each span the SDK ends ([`Judge`]) and hands those that want a breakdown to the
//! [analyzer thread](crate::analyzer), which passes them on enriched; the rest go on at once.
//!
//! ```text
//! span ends ─> on_end: judge (globs, a comparison) ─ healthy ────────────────────> inner.on_end
//!                                                  └ violating ─> bounded queue ─> analyzer
//!                                                      ─> breakdown, events, artifact ─> inner.on_end
//! ```
//! Nothing on the request path blocks: a full queue or the rate limit exports the span plain,
//! marked `granular.skipped`, and counts it. With `GRANULAR_SAMPLE=violations` every span goes
//! through the queue and the analyzer holds each trace's spans (bounded) until its local root
//! ends, then exports the trace only if a span violated (or the trace is in the baseline).

use std::sync::atomic::Ordering;
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use opentelemetry::Context;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{Span, SpanData, SpanProcessor};

use crate::analyzer::artifacts::{ArtifactStore, DirStore, Unusable};
use crate::analyzer::rate::{PerSecond, current_second};
use crate::analyzer::{self, Analyzer, enrich};
use crate::config::{AllFrom, ArtifactSink, Config, SampleMode};
use crate::export::streamer::Streamer;
use crate::slo::message::Msg;
use crate::slo::{Judge, Judgement, SourceSampler, Stats};

/// See the module documentation.
#[derive(Debug)]
pub struct GranularProcessor<P: SpanProcessor + 'static> {
    inner: Arc<P>,
    cfg: Arc<Config>,
    judge: Arc<Judge>,
    sources: Arc<str>,
    stats: Arc<Stats>,
    tx: OnceLock<SyncSender<Msg>>,
    /// Spans sent for analysis this second, for `GRANULAR_MAX_ENRICH_PER_SEC`.
    limiter: Mutex<PerSecond>,
    /// Handed to the analyzer thread when it starts.
    store: Mutex<Option<Box<dyn ArtifactStore>>>,
    /// The thread exporting traces from the recording, once started (`None`: it could not).
    streamer: OnceLock<Option<Streamer>>,
}

impl<P: SpanProcessor + 'static> GranularProcessor<P> {
    /// Wraps `inner` (typically a `BatchSpanProcessor` with an OTLP exporter). `sources` is the
    /// description of active event sources put on enriched spans.
    pub fn new(inner: P, cfg: Config, sources: impl Into<Arc<str>>) -> Self {
        GranularProcessor {
            inner: Arc::new(inner),
            judge: Arc::new(Judge::new(
                cfg.slo.clone(),
                cfg.errors_violate,
                cfg.baseline,
            )),
            cfg: Arc::new(cfg),
            sources: sources.into(),
            stats: Arc::new(Stats::default()),
            tx: OnceLock::new(),
            limiter: Mutex::new(PerSecond::default()),
            store: Mutex::new(None),
            streamer: OnceLock::new(),
        }
        .with_default_store()
    }

    /// The store `GRANULAR_ARTIFACTS=dir` asks for; `otlp` needs a logger: pass an
    /// [`OtlpArtifacts`](crate::OtlpArtifacts) to [`with_artifact_store`](Self::with_artifact_store)
    /// (what [`crate::init()`] does), or spans carry no artifact link and the analyzer says so
    /// once when it starts.
    fn with_default_store(self) -> Self {
        let store: Option<Box<dyn ArtifactStore>> = match &self.cfg.artifacts {
            ArtifactSink::Dir(dir) => match DirStore::new(
                dir.clone(),
                self.cfg.artifact_max_bytes,
                self.cfg.artifact_retention,
                self.cfg.artifact_base_url.clone(),
            ) {
                Ok(s) => Some(Box::new(s)),
                Err(e) => {
                    let why = format!("artifact directory {} unusable ({e})", dir.display());
                    tracing::warn!(
                        "granular: {why}; violating spans carry granular.artifact.skipped=store_error"
                    );
                    Some(Box::new(Unusable { why }))
                }
            },
            ArtifactSink::None | ArtifactSink::Otlp => None,
        };
        self.with_store(store)
    }

    /// Sends artifacts to `store` instead of what the configuration names.
    pub fn with_artifact_store(self, store: Box<dyn ArtifactStore>) -> Self {
        self.with_store(Some(store))
    }

    fn with_store(self, store: Option<Box<dyn ArtifactStore>>) -> Self {
        if let Ok(mut s) = self.store.lock() {
            *s = store;
        }
        self
    }

    /// Counts into `stats` instead of counters of its own: [`crate::init()`] shares them with
    /// the exporter it wraps (`export::delivery`). Before [`source_sampler`](Self::source_sampler)
    /// or the first span, which hand the counters on.
    pub(crate) fn with_stats(mut self, stats: Arc<Stats>) -> Self {
        self.stats = stats;
        self
    }

    /// What the processor, its source sampler and its analyzer did, counted.
    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    /// The handle [`RecorderLayer::recording_spans`](crate::RecorderLayer::recording_spans)
    /// needs. Starts the analyzer thread: set the inner processor's resource before calling
    /// this (the SDK's `set_resource` cannot reach it afterwards), as [`crate::init()`] does.
    pub fn source_sampler(&self) -> Arc<SourceSampler> {
        Arc::new(SourceSampler::new(
            self.judge.clone(),
            self.sender().clone(),
            self.stats.clone(),
            !self.streams(),
        ))
    }

    /// Whether every trace the analyzer does not take is exported from the recording:
    /// `GRANULAR_SAMPLE=all` with `GRANULAR_ALL_FROM=recording`.
    fn streams(&self) -> bool {
        self.cfg.sample == SampleMode::All && self.cfg.all_from == AllFrom::Recording
    }

    /// With `GRANULAR_ALL_FROM=recording` in `all` mode, starts the thread that exports, from
    /// the flight recorder's rings, every trace the analyzer does not (see
    /// [`export::streamer`](crate::export::streamer)); otherwise nothing. Call it once the
    /// recorder is installed, with the source sampler's subscriber.
    pub fn stream_every_trace(&self) {
        if !self.streams() {
            return;
        }
        let Some(recorder) = crate::recorder::FlightRecorder::get() else {
            tracing::warn!(
                "granular: GRANULAR_ALL_FROM=recording, but the flight recorder is not installed: only violating traces are exported. Call granular::install_recorder before stream_every_trace"
            );
            return;
        };
        self.streamer.get_or_init(|| {
            Streamer::start(
                recorder,
                self.inner.clone(),
                self.judge.clone(),
                self.stats.clone(),
            )
        });
    }

    fn sender(&self) -> &SyncSender<Msg> {
        self.tx.get_or_init(|| {
            let store = self.store.lock().ok().and_then(|mut s| s.take());
            if store.is_none() && self.cfg.artifacts == ArtifactSink::Otlp {
                tracing::warn!("{OTLP_ARTIFACTS_UNSET}");
            }
            let analyzer = Analyzer::new(
                self.inner.clone(),
                &self.cfg,
                self.judge.clone(),
                self.sources.clone(),
                self.stats.clone(),
                store,
            );
            analyzer::start(analyzer, self.cfg.queue)
        })
    }

    /// Whether one more span may be sent for analysis this second.
    fn allow(&self) -> bool {
        let Ok(mut l) = self.limiter.lock() else {
            return false;
        };
        if l.room(current_second(), self.cfg.max_enrich_per_sec) == 0 {
            return false;
        }
        l.take();
        true
    }

    fn send(&self, msg: Msg) -> Result<(), Msg> {
        match self.sender().try_send(msg) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(m) | TrySendError::Disconnected(m)) => Err(m),
        }
    }

    /// A judged span a full queue turned away: counted, annotated with its judgement and
    /// exported as it is, never lost; `skipped` says why a violating span carries no breakdown.
    fn export_turned_away(&self, mut span: SpanData, j: &Judgement, skipped: Option<&'static str>) {
        self.stats
            .skipped_queue_full
            .fetch_add(1, Ordering::Relaxed);
        self.judge.annotate(&mut span, j);
        if let Some(reason) = skipped {
            enrich::mark_skipped(&mut span, reason);
        }
        self.inner.on_end(span);
    }

    fn wait_idle(&self, timeout: Duration) -> OTelSdkResult {
        if let Some(Some(streamer)) = self.streamer.get() {
            streamer.flush(timeout);
        }
        let Some(tx) = self.tx.get() else {
            return Ok(());
        };
        let (ack_tx, ack_rx) = sync_channel(1);
        tx.send(Msg::Flush(ack_tx))
            .map_err(|_| OTelSdkError::AlreadyShutdown)?;
        ack_rx
            .recv_timeout(timeout)
            .map_err(|_| OTelSdkError::Timeout(timeout))
    }
}

impl<P: SpanProcessor + 'static> SpanProcessor for GranularProcessor<P> {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, mut span: SpanData) {
        if !self.cfg.enabled {
            return self.inner.on_end(span);
        }
        let j = self.judge.judge_span_data(&span);
        if self.cfg.sample == SampleMode::Violations {
            if let Err(Msg::Hold(span, j) | Msg::Enrich(span, j)) =
                self.send(Msg::Hold(Box::new(span), j))
            {
                // Its trace goes undecided.
                self.export_turned_away(*span, &j, None);
            }
            return;
        }
        if !j.wants_detail() {
            if j.rule.is_some() {
                self.judge.annotate(&mut span, &j);
            }
            return self.inner.on_end(span);
        }
        if !self.allow() {
            self.stats
                .skipped_rate_limit
                .fetch_add(1, Ordering::Relaxed);
            self.judge.annotate(&mut span, &j);
            enrich::mark_skipped(&mut span, "rate_limit");
            return self.inner.on_end(span);
        }
        if let Err(Msg::Enrich(span, j) | Msg::Hold(span, j)) =
            self.send(Msg::Enrich(Box::new(span), j))
        {
            self.export_turned_away(*span, &j, Some("queue_full"));
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.wait_idle(Duration::from_secs(5))?;
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let started = Instant::now();
        let _ = self.wait_idle(timeout);
        self.inner
            .shutdown_with_timeout(timeout.saturating_sub(started.elapsed()))
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        // Called while the provider is built, before any span: the analyzer thread (the only
        // other owner of `inner`) starts lazily on the first span, so this is the sole owner.
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.set_resource(resource);
        }
    }
}

/// The warning for `GRANULAR_ARTIFACTS=otlp` in a stack composed without an artifact store.
const OTLP_ARTIFACTS_UNSET: &str = "granular: GRANULAR_ARTIFACTS=otlp, but no artifact store was \
     given: spans carry no granular.artifact link. Pass granular::OtlpArtifacts::new(logger, &cfg) \
     to GranularProcessor::with_artifact_store (granular::init() does)";

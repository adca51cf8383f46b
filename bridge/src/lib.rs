//! Granular: why was this span slow?
//!
//! A flight recorder keeps the last seconds of runtime events (tokio polls, wakes, worker
//! parks, OS scheduling, allocations, blocking-pool jobs) in fixed memory, keyed by the
//! request (trace) they served. When a span violates its SLO, the recorded window becomes a
//! breakdown of its wall time into causes (running, scheduler wait, OS wait, blocked in poll,
//! blocking pool, idle), with the culprit named, attached to the span as `granular.*`
//! attributes, span events and a Perfetto artifact, and exported over OTLP.
//!
//! ```text
//! tokio hooks ─┐ tracing layer ─┐ OS sampler ─┐ allocator ─┐
//!              └────────────────┴─────────────┴────────────┴─> recorder (per-thread rings)
//! span ends ─> GranularProcessor: judge ─ healthy ─────────────────────────> OTLP exporter
//!                                       └ slow ─> analyzer thread ─> enrich ─┘
//! ```
//!
//! ```no_run
//! let mut builder = tokio::runtime::Builder::new_multi_thread();
//! let rt = granular::instrument_runtime(&mut builder).enable_all().build()?;
//! rt.block_on(async {
//!     let _granular = granular::init()?; // reads GRANULAR_* and OTEL_*
//!     // ... serve
//!     Ok::<_, granular::Error>(())
//! })?;
//! # Ok::<_, Box<dyn std::error::Error>>(())
//! ```
//!
//! # The API
//!
//! Everything is at the crate root, as the README shows it:
//!
//! - **Set up**: [`init()`] (reads `GRANULAR_*` and `OTEL_*`, logging a bad value and going on)
//!   or [`init_with`] a [`Config`] (from [`Config::from_env`], strict, or built in code); both
//!   return a [`Granular`] guard that flushes on drop, or an [`Error`].
//! - **Instrument the runtime**: [`instrument_runtime`], or [`instrument_runtime_with`] your
//!   own [`RuntimeHooks`]; optionally [`Alloc`] as the global allocator and
//!   [`spawn_blocking`] for blocking-pool accounting.
//! - **Compose your own stack**: [`install_recorder`] (returns the active [`Sources`]),
//!   [`GranularProcessor`] around any span processor, [`RecorderLayer`] in a
//!   `tracing-subscriber` registry; for `GRANULAR_SAMPLE=violations`, [`GranularSubscriber`]
//!   with [`filter_from_env`] and the processor's [`SourceSampler`]; [`otlp_exporter`] builds
//!   the span exporter the configuration asks for; [`OtlpArtifacts`] (or your own
//!   [`ArtifactStore`]) sends timelines through your OTLP log pipeline.
//! - **Propagate**: [`SpanExt`], with either stack.
//! - **Configure in code**: [`Config`]'s fields and their types ([`SloRules`], [`SampleMode`],
//!   [`Detail`], [`ArtifactSink`], [`RecorderSize`], [`OtlpSignal`]); [`ConfigError`] names a
//!   bad value.
//! - **Observe Granular**: [`Stats`] ([`Granular::stats`]).
//!
//! Composed by hand, as the README shows it (these examples are compiled by `cargo test`, so
//! the README's paths stay the API's):
//!
//! ```no_run
//! use opentelemetry::trace::TracerProvider as _;
//! use opentelemetry_sdk::trace::{BatchSpanProcessor, SdkTracerProvider};
//! use tracing_subscriber::layer::SubscriberExt as _;
//! use tracing_subscriber::util::SubscriberInitExt as _;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let cfg = granular::Config::from_env()?;
//! let sources = granular::install_recorder(&cfg); // recorder + OS sampler
//! let exporter = granular::otlp_exporter(&cfg)?;
//! let processor = granular::GranularProcessor::new(
//!     BatchSpanProcessor::builder(exporter).build(),
//!     cfg,
//!     sources.active(),
//! );
//! let provider = SdkTracerProvider::builder().with_span_processor(processor).build();
//! tracing_subscriber::registry()
//!     .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("app")))
//!     .with(granular::RecorderLayer::new()) // above the OTel layer
//!     .init();
//! # Ok(())
//! # }
//! ```
//!
//! With `GRANULAR_SAMPLE=violations`, Granular's own subscriber records the spans:
//!
//! ```no_run
//! use opentelemetry_sdk::trace::{BatchSpanProcessor, SdkTracerProvider};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let cfg = granular::Config {
//!     sample: granular::SampleMode::Violations,
//!     slo: granular::SloRules::parse("GET /messages=100ms,*=1s")?,
//!     ..granular::Config::default()
//! };
//! let sources = granular::install_recorder(&cfg);
//! let batch = BatchSpanProcessor::builder(granular::otlp_exporter(&cfg)?).build();
//! let processor = granular::GranularProcessor::new(batch, cfg, sources.active());
//! let sampler = processor.source_sampler();
//! let _provider = SdkTracerProvider::builder().with_span_processor(processor).build();
//! let (filter, warning) = granular::filter_from_env();
//! if let Some(w) = warning {
//!     eprintln!("{w}"); // RUST_LOG had span/field directives
//! }
//! tracing::subscriber::set_global_default(granular::GranularSubscriber::new(sampler, filter))?;
//! # Ok(())
//! # }
//! ```

// Every `pub` item is part of the API (or of `__internal`), and every one is documented.
#![warn(missing_docs, unreachable_pub)]

mod analysis;
mod analyzer;
mod background;
mod capture;
mod clock;
mod config;
mod debug;
mod export;
mod init;
mod mapping;
mod propagation;
mod recorder;
mod slo;
mod timeline;
pub mod viewer;

pub use analyzer::artifacts::store::{ArtifactStore, OtlpArtifacts};
pub use capture::alloc::Alloc;
pub use capture::blocking::spawn_blocking;
pub use capture::layer::RecorderLayer;
pub use capture::runtime::{RuntimeHooks, instrument_runtime, instrument_runtime_with};
pub use capture::subscriber::{GranularSubscriber, filter_from_env};
pub use config::{
    AllFrom, ArtifactSink, Config, ConfigError, Detail, OtlpCompression, OtlpProtocol, OtlpSignal,
    SampleMode,
};
pub use export::processor::GranularProcessor;
pub use init::{Error, Granular, Sources, init, init_with, install_recorder, otlp_exporter};
pub use propagation::SpanExt;
pub use recorder::RecorderSize;
pub use slo::rules::{SloParseError, SloRules};
pub use slo::sampler::SourceSampler;
pub use slo::stats::Stats;

/// Not part of the API; no stability promise.
///
/// Internals the crate's own benchmarks (`bridge/benches`) and integration tests
/// (`bridge/tests`) reach: the recorder, the clock, the analysis steps and the timeline
/// encoder. Nothing outside this repository should use them.
#[doc(hidden)]
pub mod __internal {
    /// The flight recorder: install, write (typed events, [`codec`](crate::recorder::codec)),
    /// snapshot.
    pub mod recorder {
        pub use crate::recorder::record::Kind;
        pub use crate::recorder::{
            FlightRecorder, RECORD_BYTES, RecorderSnapshot, codec, next_span_key, write,
        };
    }

    /// The recorder's clock and its calibration to wall time.
    pub mod clock {
        pub use crate::clock::{Calibration, now};
    }

    /// From a recorder snapshot to a breakdown, and spans rebuilt from the recorder.
    pub mod analysis {
        pub use crate::analysis::idmap::IdSet;
        pub use crate::analysis::rebuild::rebuild;
        // By their modules' paths: `crate::analysis::analyze` (and `decode`) names a module as
        // well as a function, and a `use` takes both.
        pub use crate::analysis::analyze::analyze;
        pub use crate::analysis::decode::{
            Decoded, decode, decode_spans, decode_spans_by_otel_id, decode_spans_of,
        };
        pub use crate::analysis::{Breakdown, Category, Target};
        pub use crate::analyzer::enrich::{Extras, enrich};
    }

    /// The runtime hooks Granular installs, and the sources' probes.
    pub mod capture {
        pub use crate::capture::perf::probe;
        pub use crate::capture::runtime::{TASK_HOOKS, on_thread_park, on_thread_unpark};
        pub use crate::capture::waits::objects::describe as describe_wait;
        pub use crate::capture::waits::{
            Seen, enable as enable_wait_sampling,
            register_current_thread as register_for_wait_sampling, sample as sample_waits,
            unregister_current_thread as unregister_from_wait_sampling,
        };
    }

    /// Faults tests inject: a panic in the analysis of spans with a given name.
    pub mod faults {
        pub use crate::analyzer::fault::panic_in_analysis_of;
    }

    /// The viewer-independent timeline model and its Perfetto encoder.
    pub mod timeline {
        pub use crate::timeline::{
            Flow, Instant, Slice, SliceRef, Timeline, Track, TrackKind, encode_perfetto,
        };
    }
}

//! Granular: why was this span slow?
//!
//! A flight recorder keeps the last seconds of runtime events (tokio polls, wakes, worker
//! parks, OS scheduling, allocations, blocking-pool jobs) in fixed memory, keyed by the
//! request (trace) they served. When a span violates its SLO, the recorded window becomes a
//! [`Breakdown`](analysis::Breakdown) of its wall time into causes, with the culprit named,
//! attached to the span as `granular.*` attributes, span events and a Perfetto artifact, and
//! exported over OTLP.
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

pub mod analysis;
pub mod analyzer;
pub mod capture;
pub mod clock;
pub mod config;
pub mod export;
mod init;
pub mod propagation;
pub mod recorder;
pub mod slo;
pub mod timeline;

pub use capture::alloc::Alloc;
pub use capture::blocking::spawn_blocking;
pub use capture::layer::RecorderLayer;
pub use capture::runtime::{RuntimeHooks, instrument_runtime, instrument_runtime_with};
pub use capture::subscriber::GranularSubscriber;
pub use config::Config;
pub use export::GranularProcessor;
pub use init::{Error, Granular, Sources, init, init_with, install_recorder, otlp_exporter};
pub use propagation::SpanExt;

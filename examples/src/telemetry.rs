//! `DEMO_TELEMETRY`: which telemetry stack `demo-service` sets up at start-up, so one binary can
//! be measured with and without Granular (tests/src/bench, `overhead` binary).
//!
//! | value | tokio runtime | `tracing` subscriber | allocations counted |
//! |---|---|---|---|
//! | `granular` (default) | [`granular::instrument_runtime`] | [`granular::init_with`] of a strict [`granular::Config::from_env`] | yes |
//! | `otel` | plain | env filter + fmt + tracing-opentelemetry, batch OTLP exporter (`OTEL_*`) | no |
//! | `logs` | plain | env filter + fmt (what any `tracing` service pays before exporting) | no |
//! | `none` | plain | none | no |
//! | `dial9` | dial9 recorder attached (64 MiB in memory) | as `otel` | no |
//! | `console` | plain | console-subscriber's layer (`TOKIO_CONSOLE_*`) + as `otel` | no |
//!
//! `dial9` and `console` exist only in builds with
//! `RUSTFLAGS="--cfg tokio_unstable --cfg granular_compare"`; elsewhere they are refused at
//! start-up with that instruction.

use std::alloc::{GlobalAlloc, Layout, System};
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The telemetry stack of a `demo-service` process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Telemetry {
    /// Granular's one-line setup (its runtime hooks, recorder, processor, OTLP export).
    Granular,
    /// Plain tracing-opentelemetry with a batch OTLP exporter: what Granular is added to.
    Otel,
    /// The env filter and fmt layer alone: the floor any `tracing` subscriber costs.
    Logs,
    /// No subscriber at all.
    None,
    /// `otel` plus dial9-tokio-telemetry's recorder on the runtime.
    Dial9,
    /// `otel` plus tokio-console's instrumentation layer.
    Console,
}

/// Why the comparison stacks are missing from a build.
const COMPARE_BUILD: &str = "a build with RUSTFLAGS=\"--cfg tokio_unstable --cfg granular_compare\" \
     (e.g. CARGO_TARGET_DIR=target/compare cargo build --release -p granular-examples)";

impl Telemetry {
    /// Every value, in the order error messages list them.
    pub const ALL: [Telemetry; 6] = [
        Self::Granular,
        Self::Otel,
        Self::Logs,
        Self::None,
        Self::Dial9,
        Self::Console,
    ];

    /// The `DEMO_TELEMETRY` value.
    pub fn name(self) -> &'static str {
        match self {
            Self::Granular => "granular",
            Self::Otel => "otel",
            Self::Logs => "logs",
            Self::None => "none",
            Self::Dial9 => "dial9",
            Self::Console => "console",
        }
    }

    /// The valid values, comma-separated.
    pub fn valid_names() -> String {
        Self::ALL.map(Self::name).join(", ")
    }

    /// Whether this build can set the stack up; `Err` says which build can.
    pub fn available(self) -> Result<(), String> {
        match self {
            Self::Dial9 | Self::Console if !cfg!(all(tokio_unstable, granular_compare)) => Err(
                format!("DEMO_TELEMETRY={} needs {COMPARE_BUILD}", self.name()),
            ),
            _ => Ok(()),
        }
    }

    /// Builds the runtime from `builder` (already sized and `enable_all`ed), with this stack's
    /// runtime instrumentation. Call before any other thread exists: it also switches the
    /// demo's allocator to counting for `granular`.
    pub fn runtime(self, mut builder: tokio::runtime::Builder) -> Result<Runtime, String> {
        self.available()?;
        let built = |r: std::io::Result<tokio::runtime::Runtime>| {
            r.map_err(|e| format!("cannot build the tokio runtime: {e}"))
        };
        match self {
            Self::Granular => {
                COUNT_ALLOCATIONS.store(true, Ordering::Relaxed);
                let runtime = built(granular::instrument_runtime(&mut builder).build())?;
                Ok(Runtime::new(runtime))
            }
            #[cfg(all(tokio_unstable, granular_compare))]
            Self::Dial9 => compare::dial9_runtime(builder),
            _ => Ok(Runtime::new(built(builder.build())?)),
        }
    }

    /// Installs the `tracing` subscriber and exporters; call inside the runtime. The guard
    /// flushes and shuts them down when dropped.
    pub fn install(self) -> Result<Guard, String> {
        self.available()?;
        match self {
            // The strict path: a bad GRANULAR_* or OTEL_* value stops the demo with its name
            // (granular::init() would warn and go on).
            Self::Granular => granular::Config::from_env()
                .map_err(granular::Error::from)
                .and_then(granular::init_with)
                .map(|g| Guard::Granular(Box::new(g)))
                .map_err(|e| e.to_string()),
            Self::None => Ok(Guard::Nothing),
            Self::Logs => {
                tracing_subscriber::registry()
                    .with(filter())
                    .with(tracing_subscriber::fmt::layer())
                    .try_init()
                    .map_err(|e| format!("cannot install the tracing subscriber: {e}"))?;
                Ok(Guard::Nothing)
            }
            Self::Otel | Self::Dial9 => {
                let provider = provider()?;
                tracing_subscriber::registry()
                    .with(filter())
                    .with(tracing_subscriber::fmt::layer())
                    .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("demo")))
                    .try_init()
                    .map_err(|e| format!("cannot install the tracing subscriber: {e}"))?;
                Ok(Guard::Otel(provider))
            }
            #[cfg(all(tokio_unstable, granular_compare))]
            Self::Console => compare::console(provider()?),
            #[cfg(not(all(tokio_unstable, granular_compare)))]
            Self::Console => Err(format!("DEMO_TELEMETRY=console needs {COMPARE_BUILD}")),
        }
    }
}

impl fmt::Display for Telemetry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Telemetry {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| format!("one of {}", Self::valid_names()))
    }
}

/// The runtime and whatever must outlive it (dial9's recorder).
pub struct Runtime {
    /// The runtime to `block_on`.
    pub runtime: tokio::runtime::Runtime,
    _keep: Option<Box<dyn std::any::Any>>,
}

impl Runtime {
    fn new(runtime: tokio::runtime::Runtime) -> Self {
        Self {
            runtime,
            _keep: None,
        }
    }
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("runtime", &self.runtime)
            .finish_non_exhaustive()
    }
}

/// Flushes and shuts the stack's exporters down on drop.
#[derive(Debug)]
pub enum Guard {
    Granular(Box<granular::Granular>),
    Otel(SdkTracerProvider),
    Nothing,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Guard::Otel(provider) = self {
            let _ = provider.shutdown_with_timeout(Duration::from_secs(5));
        }
    }
}

/// `RUST_LOG`, else `info`: the filter `granular::init` uses, so the stacks differ only in
/// what is measured.
fn filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into())
}

/// A tracer provider with a batch processor and the OTLP span exporter `OTEL_*` asks for
/// (`grpc`, the default, or `http/protobuf`), the W3C propagator and the global provider set.
fn provider() -> Result<SdkTracerProvider, String> {
    let protocol = [
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ]
    .into_iter()
    .find_map(|v| std::env::var(v).ok().filter(|p| !p.is_empty()))
    .unwrap_or_else(|| "grpc".into());
    let builder = opentelemetry_otlp::SpanExporter::builder();
    let exporter = match protocol.as_str() {
        "grpc" => builder.with_tonic().build(),
        "http/protobuf" => builder.with_http().build(),
        other => {
            return Err(format!(
                "OTEL_EXPORTER_OTLP_PROTOCOL={other:?} is invalid: expected grpc or http/protobuf"
            ));
        }
    };
    let exporter = exporter.map_err(|e| format!("cannot build the OTLP span exporter: {e}"))?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .build();
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    opentelemetry::global::set_tracer_provider(provider.clone());
    Ok(provider)
}

/// The dial9 and console stacks (`--cfg tokio_unstable --cfg granular_compare` only).
#[cfg(all(tokio_unstable, granular_compare))]
mod compare {
    use super::*;
    use tracing_subscriber::Layer as _;

    /// dial9's recorder attached to the runtime, writing to a 64 MiB in-memory buffer (the
    /// size of Granular's default recorder; no disk, no upload), task tracking on.
    pub(super) fn dial9_runtime(builder: tokio::runtime::Builder) -> Result<Runtime, String> {
        use dial9::Dial9HandleTokioExt;
        let writer = dial9::MemoryBuffer::new(64 << 20)
            .map_err(|e| format!("cannot allocate dial9's buffer: {e}"))?;
        let recorder = dial9::recorder(writer).build();
        let runtime = recorder
            .handle()
            .attach_tokio_runtime(
                builder,
                dial9::TokioAttachOptions::builder()
                    .task_tracking_enabled(true)
                    .build(),
            )
            .map_err(|e| format!("cannot attach dial9 to the tokio runtime: {e}"))?;
        Ok(Runtime {
            runtime,
            _keep: Some(Box::new(recorder)),
        })
    }

    /// console-subscriber's layer (its own filter on tokio's instrumentation; server address
    /// and retention from `TOKIO_CONSOLE_*`) next to the `otel` stack's layers, which keep the
    /// `info` filter per layer so tokio's trace-level spans reach only the console layer.
    pub(super) fn console(provider: SdkTracerProvider) -> Result<Guard, String> {
        let console = console_subscriber::ConsoleLayer::builder()
            .with_default_env()
            .spawn();
        tracing_subscriber::registry()
            .with(console)
            .with(tracing_subscriber::fmt::layer().with_filter(filter()))
            .with(
                tracing_opentelemetry::layer()
                    .with_tracer(provider.tracer("demo"))
                    .with_filter(filter()),
            )
            .try_init()
            .map_err(|e| format!("cannot install the tracing subscriber: {e}"))?;
        Ok(Guard::Otel(provider))
    }
}

/// Whether [`SwitchAlloc`] counts (set once, before the runtime's threads exist).
static COUNT_ALLOCATIONS: AtomicBool = AtomicBool::new(false);

/// The demo's global allocator: [`granular::Alloc`] (per-thread allocation counters) with
/// `DEMO_TELEMETRY=granular`, the plain system allocator otherwise, so the other stacks do not
/// pay for Granular's counting. Both forward to [`System`], so memory allocated before the
/// switch is freed correctly after it.
#[derive(Debug)]
pub struct SwitchAlloc {
    counting: granular::Alloc,
}

impl SwitchAlloc {
    /// Not counting until [`Telemetry::runtime`] says so.
    pub const fn new() -> Self {
        Self {
            counting: granular::Alloc::system(),
        }
    }
}

impl Default for SwitchAlloc {
    fn default() -> Self {
        Self::new()
    }
}

fn counting() -> bool {
    COUNT_ALLOCATIONS.load(Ordering::Relaxed)
}

// SAFETY: every method forwards to `granular::Alloc<System>` or `System` with the caller's
// guarantees; both hand out and take back `System` memory, so either may free what the other
// allocated.
unsafe impl GlobalAlloc for SwitchAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe {
            if counting() {
                self.counting.alloc(layout)
            } else {
                System.alloc(layout)
            }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe {
            if counting() {
                self.counting.alloc_zeroed(layout)
            } else {
                System.alloc_zeroed(layout)
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe {
            if counting() {
                self.counting.dealloc(ptr, layout)
            } else {
                System.dealloc(ptr, layout)
            }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe {
            if counting() {
                self.counting.realloc(ptr, layout, new_size)
            } else {
                System.realloc(ptr, layout, new_size)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_errors_list_the_values() {
        for t in Telemetry::ALL {
            assert_eq!(t.name().parse::<Telemetry>(), Ok(t));
        }
        let err = "loud".parse::<Telemetry>().expect_err("not a stack");
        assert!(
            err.contains("granular, otel, logs, none, dial9, console"),
            "{err}"
        );
    }

    #[test]
    fn comparison_stacks_need_their_build() {
        for t in [
            Telemetry::Granular,
            Telemetry::Otel,
            Telemetry::Logs,
            Telemetry::None,
        ] {
            assert_eq!(t.available(), Ok(()));
        }
        for t in [Telemetry::Dial9, Telemetry::Console] {
            let available = t.available();
            if cfg!(all(tokio_unstable, granular_compare)) {
                assert_eq!(available, Ok(()));
            } else {
                let err = available.expect_err("not in this build");
                assert!(err.contains("--cfg granular_compare"), "{err}");
            }
        }
    }
}

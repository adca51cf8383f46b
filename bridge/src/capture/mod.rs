//! Event sources: everything that writes into the flight recorder.
//!
//! | source | module | needs |
//! |---|---|---|
//! | worker park/unpark, thread start/stop | [`runtime`] | stable tokio API |
//! | how many tasks the runtime holds (sampled by the analyzer) | [`runtime_tasks`] | stable tokio API |
//! | task spawn/terminate, every poll, wake-to-poll latency | [`runtime`] | `--cfg tokio_unstable` |
//! | span new/enter/exit/close, OTel ids, fields, events | [`spans`], through [`layer`] or [`subscriber`] | our layer in a `tracing-subscriber` registry, or our own subscriber |
//! | on-CPU time and run-queue wait per thread | [`os`] | `/proc` (unprivileged) |
//! | exact off-CPU intervals, voluntary or preempted | [`perf`] | `perf_event_open` permitted (paranoid ≤ 2, no seccomp block) |
//! | the syscall, wait channel and object a thread blocked inside work waits on | [`waits`] | `/proc` (unprivileged, own threads) |
//! | allocations per thread | [`alloc`] | `granular::Alloc` as the global allocator |
//! | blocking-pool queueing and running | [`blocking`] | `granular::spawn_blocking` |

pub(crate) mod alloc;
pub(crate) mod blocking;
pub(crate) mod context;
pub(crate) mod fields;
pub(crate) mod ids;
pub(crate) mod layer;
pub(crate) mod log_line;
pub(crate) mod os;
pub(crate) mod otel_ext;
pub(crate) mod perf;
pub(crate) mod runtime;
pub(crate) mod runtime_tasks;
pub mod slab;
pub(crate) mod spans;
pub(crate) mod subscriber;
pub(crate) mod switch;
pub(crate) mod waits;

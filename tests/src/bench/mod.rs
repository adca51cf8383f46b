//! Measurement helpers for the harnesses that write docs: the service-overhead benchmark
//! (`overhead` binary → docs/benchmarks.md, "Service overhead") and the accuracy suite
//! (tests/tests/accuracy.rs → docs/accuracy.md).
//!
//! * [`load`]: an HTTP/1.1 load generator on plain sockets, fixed rate (open loop, latency
//!   from each request's scheduled time) or saturation (closed loop), with trace ids it mints;
//! * [`procfs`]: CPU time, memory and thread scheduling counters of a process, the machine;
//! * [`docs`]: markdown tables and rewriting one marked section of a document;
//! * [`stats`]: medians and percentiles;
//! * [`overhead`]: the service-overhead benchmark itself.

pub mod docs;
pub mod load;
pub mod overhead;
pub mod procfs;
pub mod stats;

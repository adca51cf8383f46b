//! The demo service and load driver that show Granular at work.
//!
//! `demo-service` is an axum service shaped like the talk "Tracing for granularity": `GET /messages`
//! runs `auth.AccessToken`, `cache.Lookup` and `db.Query` steps and can be made slow on purpose
//! by a named [`pathology`]. `load-driver` sends a mix of normal and pathological requests and
//! prints the trace ids of the ones it slowed, so a test or a person can look exactly those up.
//!
//! The binaries are thin: everything they do lives in these modules so it can be unit-tested.

pub mod config;
pub mod cpu;
pub mod downstream;
pub mod error;
pub mod http_trace;
pub mod load;
pub mod messages;
pub mod params;
pub mod pathology;
pub mod report;
pub mod rng;
pub mod service;
pub mod steps;
pub mod telemetry;

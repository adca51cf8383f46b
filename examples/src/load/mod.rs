//! The load driver: sends a seeded mix of normal and pathological requests to the demo service at
//! a fixed rate and reports which trace ids it slowed on purpose.
//!
//! The driver mints every request's trace id itself (in `traceparent`), so it knows the ids of
//! the slow requests without trusting the service's answers; tests then check what Granular said
//! about exactly those traces.

pub mod args;
pub mod mix;
pub mod run;
pub mod summary;

//! The `granular` command line: look at Granular's answers without a UI.
//!
//! - `granular explain <trace-id>…` reads traces from Jaeger's query API ([`jaeger`]) and prints
//!   each as a span tree with its `granular.*` attributes and events ([`trace`]), then where to
//!   open each violating span's timeline in the viewer ([`explain`]).
//!
//! The library half is what the project's end-to-end tests read Jaeger with, so what the
//! command prints is what the tests check.

use std::fmt;

pub mod explain;
pub mod jaeger;
pub mod text;
pub mod trace;

/// A harness failure, carrying a message meant for a human reading test output.
#[derive(Clone, PartialEq, Eq)]
pub struct Error(String);

impl Error {
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Same as `Display`: `expect` and `main` print errors with `{:?}`, and the
/// message (often multi-line, with log tails) should stay readable.
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

pub type Result<T, E = Error> = std::result::Result<T, E>;

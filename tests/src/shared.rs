//! Services shared by the tests of one test binary.
//!
//! libtest runs each test on a thread of its own, which ends with the test,
//! and [`crate::process`] ties every child process to the thread that
//! spawned it (`PR_SET_PDEATHSIG`): a service started from a test's thread
//! dies when that test ends. A [`Shared`] service is started on a thread of
//! its own instead, which stays parked until the binary exits: the service
//! outlives the test that asked for it first, serves every later test, and
//! still dies with the binary however that ends (every test done, a test
//! panicking, the binary interrupted or killed), with no process left behind.
//!
//! The service's guard is never dropped: the kernel's SIGKILL at exit is its
//! only stop, so share only what needs no orderly shutdown (Jaeger's
//! in-memory store; a demo service whose spans the tests have read already).
//! Its log stays under [`crate::log_dir`], named after the thread:
//! `shared-<name>-<pid>.<n>.log`.

use std::sync::{OnceLock, mpsc};
use std::thread;

use crate::{Error, Result};

/// A service started once per test binary, on first use (a `static`).
#[derive(Debug)]
pub struct Shared<T> {
    service: OnceLock<Result<T>>,
}

impl<T: Send + Sync + 'static> Shared<T> {
    pub const fn new() -> Self {
        Self {
            service: OnceLock::new(),
        }
    }

    /// The service: started with `start` for the first caller, the same one
    /// for every later caller (callers that come while it starts wait for
    /// it). When the start failed, every caller gets that error, which says
    /// what is missing.
    pub fn get_or_start(
        &'static self,
        start: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> Result<&'static T> {
        self.service
            .get_or_init(|| start_on_keeper_thread(start))
            .as_ref()
            .map_err(Clone::clone)
    }
}

impl<T: Send + Sync + 'static> Default for Shared<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// Runs `start` on a new thread named `shared` and returns its result. On
/// success the thread parks for the rest of the binary's life, so that the
/// processes `start` spawned stay alive until the binary exits.
fn start_on_keeper_thread<T: Send + 'static>(
    start: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    let (started, result) = mpsc::channel();
    thread::Builder::new()
        .name("shared".to_owned())
        .spawn(move || {
            let service = start();
            let failed = service.is_err();
            // The receiver waits for this send; it cannot have gone.
            let _ = started.send(service);
            if failed {
                return;
            }
            loop {
                thread::park();
            }
        })
        .map_err(|e| Error::new(format!("cannot start a thread for a shared service: {e}")))?;
    result.recv().unwrap_or_else(|_| {
        Err(Error::new(
            "starting a shared service panicked (its message is above)",
        ))
    })
}

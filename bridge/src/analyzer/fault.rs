//! A test-only fault: the analysis of spans with a given name panics, so tests can check that
//! a panic inside analysis is caught, counted, and costs only that span its breakdown
//! (`bridge/tests/analysis_panic.rs`). Off unless a test arms it; when off, one relaxed load
//! per analysis on the analyzer thread.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

static ARMED: AtomicBool = AtomicBool::new(false);
static SPAN_NAME: Mutex<Option<String>> = Mutex::new(None);

/// Makes the analysis of every span named `name` panic; `None` disarms.
pub fn panic_in_analysis_of(name: Option<&str>) {
    if let Ok(mut n) = SPAN_NAME.lock() {
        *n = name.map(str::to_string);
    }
    ARMED.store(name.is_some(), Ordering::Release);
}

/// Panics when armed for `span_name`.
#[inline]
pub(crate) fn check(span_name: &str) {
    if !ARMED.load(Ordering::Relaxed) {
        return;
    }
    let hit = SPAN_NAME
        .lock()
        .is_ok_and(|n| n.as_deref() == Some(span_name));
    if hit {
        panic!("injected panic analysing {span_name:?} (granular test fault)");
    }
}

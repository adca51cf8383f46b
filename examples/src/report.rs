//! `GET /report?ms=N`: the CPU hog.
//!
//! Building the "report" hashes data for N ms without a single await, so it holds a tokio worker
//! the whole time and every other request scheduled there waits. The work is spawned from this
//! file on purpose: the spawn site (this file and line) is what Granular shows as the culprit
//! when other requests' spans report time spent waiting for a worker.

use std::time::Duration;

use axum::Json;
use axum::extract::Query;
use serde::Deserialize;
use serde_json::{Value, json};
use tracing::{Instrument, Span};

use crate::error::AppError;
use crate::http_trace;
use crate::params::bounded;

/// Query of `GET /report`.
#[derive(Debug, Deserialize)]
pub struct ReportQuery {
    ms: Option<String>,
}

/// `GET /report?ms=N` (default 100, at most 60000): burns N ms (wall) of CPU on a worker, then
/// answers `{"trace_id": "...", "burned_ms": N, "burn_cpu_us": ..., "checksum": ...}`, where
/// `burn_cpu_us` is the CPU time the kernel gave the worker during the burn (less than N when
/// other threads share its CPU).
pub async fn report(Query(query): Query<ReportQuery>) -> Result<Json<Value>, AppError> {
    let ms = bounded(query.ms.as_deref(), "ms", 100, 60_000)?;
    let budget = Duration::from_millis(ms);
    let (checksum, cpu) =
        tokio::spawn(build_report(budget).instrument(tracing::info_span!("report.Build")))
            .await?
            .map_err(|e| {
                AppError::internal(format!("the worker's CPU time cannot be read: {e}"))
            })?;
    Ok(Json(json!({
        "trace_id": http_trace::trace_id(&Span::current()),
        "burned_ms": ms,
        "burn_cpu_us": cpu.as_micros() as u64,
        "checksum": checksum,
    })))
}

/// The hog itself: async code that never awaits. Returns the checksum and the worker's CPU
/// time over the burn.
async fn build_report(budget: Duration) -> std::io::Result<(u64, Duration)> {
    let before = crate::cpu::thread_cpu()?;
    let checksum = crate::cpu::burn(budget);
    Ok((checksum, crate::cpu::thread_cpu()?.saturating_sub(before)))
}

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

/// `GET /report?ms=N` (default 100, at most 60000): burns N ms of CPU on a worker, then answers
/// `{"trace_id": "...", "burned_ms": N, "checksum": ...}`.
pub async fn report(Query(query): Query<ReportQuery>) -> Result<Json<Value>, AppError> {
    let ms = bounded(query.ms.as_deref(), "ms", 100, 60_000)?;
    let budget = Duration::from_millis(ms);
    let checksum =
        tokio::spawn(build_report(budget).instrument(tracing::info_span!("report.Build"))).await?;
    Ok(Json(json!({
        "trace_id": http_trace::trace_id(&Span::current()),
        "burned_ms": ms,
        "checksum": checksum,
    })))
}

/// The hog itself: async code that never awaits.
async fn build_report(budget: Duration) -> u64 {
    crate::cpu::burn(budget)
}

//! The slow-downstream hop: `GET /downstream?delay_ms=N` waits on a timer, and [`call`] reaches
//! it over HTTP with the trace context injected, so one trace spans both processes.
//!
//! The wait is idle time — nothing is wrong with the runtime — which Granular must tell apart
//! from a worker that was busy or blocked.

use std::time::Duration;

use axum::Json;
use axum::extract::Query;
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};
use tracing::field::Empty;
use tracing::{Instrument, Span};

use crate::error::AppError;
use crate::http_trace::{self, TRACE_ID_HEADER};
use crate::params::bounded;

/// Query of `GET /downstream`.
#[derive(Debug, Deserialize)]
pub struct DownstreamQuery {
    delay_ms: Option<String>,
}

/// `GET /downstream?delay_ms=N` (default 0, at most 60000): awaits a tokio timer, then answers
/// `{"delay_ms": N, "trace_id": "..."}`.
pub async fn downstream(Query(query): Query<DownstreamQuery>) -> Result<Json<Value>, AppError> {
    let delay_ms = bounded(query.delay_ms.as_deref(), "delay_ms", 0, 60_000)?;
    tokio::time::sleep(Duration::from_millis(delay_ms)).await;
    Ok(Json(json!({
        "delay_ms": delay_ms,
        "trace_id": http_trace::trace_id(&Span::current()),
    })))
}

/// Calls `{base}/downstream?delay_ms=…` inside a client span `GET /downstream` and returns the
/// trace id the downstream reported in `x-trace-id` (equal to ours when propagation works).
pub async fn call(
    client: &reqwest::Client,
    base: &str,
    delay: Duration,
) -> Result<String, AppError> {
    let url = format!(
        "{}/downstream?delay_ms={}",
        base.trim_end_matches('/'),
        delay.as_millis()
    );
    let span = tracing::info_span!(
        "GET /downstream",
        otel.kind = "client",
        http.request.method = "GET",
        url.full = %url,
        http.response.status_code = Empty,
        otel.status_code = Empty,
    );
    async {
        let mut headers = HeaderMap::new();
        http_trace::inject(&Span::current(), &mut headers);
        let failed = |e: &dyn std::fmt::Display| {
            Span::current().record("otel.status_code", "ERROR");
            AppError::bad_gateway(format!("downstream call to {url} failed: {e}"))
        };
        let response = client
            .get(&url)
            .headers(headers)
            .send()
            .await
            .map_err(|e| failed(&e))?;
        let status = response.status();
        Span::current().record("http.response.status_code", i64::from(status.as_u16()));
        if !status.is_success() {
            return Err(failed(&status));
        }
        let trace_id = response
            .headers()
            .get(TRACE_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        response.bytes().await.map_err(|e| failed(&e))?;
        Ok(trace_id)
    }
    .instrument(span)
    .await
}

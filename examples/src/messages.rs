//! `GET /messages`: the request the talk traces, and where pathologies are applied.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use tracing::Span;

use crate::downstream;
use crate::error::AppError;
use crate::http_trace;
use crate::pathology::waits::{self, WaitTruth};
use crate::pathology::{self, Pathology, PathologyKind, RawParams};
use crate::service::AppState;
use crate::steps::{self, Message};

/// Header that selects a pathology when the query string does not.
pub const PATHOLOGY_HEADER: &str = "x-pathology";

/// Query of `GET /messages`; numbers stay strings until [`Pathology::new`] checks them.
#[derive(Debug, Deserialize)]
pub struct MessagesQuery {
    pathology: Option<String>,
    ms: Option<String>,
    mib: Option<String>,
    jobs: Option<String>,
    /// `timers` (default) or `yield`: see [`steps::Pace`].
    steps: Option<String>,
}

/// Body of a `/messages` answer.
#[derive(Debug, Serialize)]
pub struct MessagesResponse {
    trace_id: String,
    messages: Vec<Message>,
    pathology: &'static str,
    /// Bytes the `alloc` and `nested_alloc` pathologies allocated.
    #[serde(skip_serializing_if = "Option::is_none")]
    allocated_bytes: Option<u64>,
    /// Minor page faults the whole process took during the `nested_alloc` pathology
    /// (`getrusage(RUSAGE_SELF)`: its task may move between workers at each yield).
    #[serde(skip_serializing_if = "Option::is_none")]
    minor_faults: Option<u64>,
    /// Trace id the downstream hop reported: equal to `trace_id` when propagation works.
    #[serde(skip_serializing_if = "Option::is_none")]
    downstream_trace_id: Option<String>,
    /// What the blocking pathologies of [`waits`] waited on, and how long.
    #[serde(skip_serializing_if = "Option::is_none")]
    waited_on: Option<WaitTruth>,
}

/// Picks the pathology: `?pathology=` wins over `x-pathology:`, which wins over the service-wide
/// default from `DEMO_PATHOLOGY`.
pub fn select(
    query: Option<&str>,
    headers: &HeaderMap,
    default: PathologyKind,
) -> Result<PathologyKind, AppError> {
    let name = match (query, headers.get(PATHOLOGY_HEADER)) {
        (Some(name), _) => name,
        (None, Some(value)) => value.to_str().map_err(|_| {
            AppError::bad_request(format!("header `{PATHOLOGY_HEADER}` is not valid text"))
        })?,
        (None, None) => return Ok(default),
    };
    name.parse()
        .map_err(|e: pathology::UnknownPathology| AppError::bad_request(e.to_string()))
}

/// `GET /messages`: auth, cache, the pathology if any, then db.
pub async fn messages(
    State(state): State<Arc<AppState>>,
    Query(query): Query<MessagesQuery>,
    headers: HeaderMap,
) -> Result<Json<MessagesResponse>, AppError> {
    let kind = select(
        query.pathology.as_deref(),
        &headers,
        state.default_pathology,
    )?;
    let pathology = Pathology::new(
        kind,
        RawParams {
            ms: query.ms.as_deref(),
            mib: query.mib.as_deref(),
            jobs: query.jobs.as_deref(),
        },
    )?;

    let pace = steps::Pace::parse(query.steps.as_deref()).map_err(AppError::bad_request)?;
    let token = steps::access_token(pace).await;
    let cached = steps::cache_lookup(token, pace).await;

    let mut allocated_bytes = None;
    let mut minor_faults = None;
    let mut downstream_trace_id = None;
    let mut child_cpu = None;
    let mut waited_on = None;
    let failed = |what: &str| {
        let what = what.to_owned();
        move |e: std::io::Error| AppError::internal(format!("{what} failed: {e}"))
    };
    match pathology {
        Pathology::None => {}
        Pathology::Block { sleep } => pathology::block_worker(sleep),
        Pathology::BlockFile { mib } => pathology::blocking_file_and_dns(mib)
            .map_err(|e| AppError::internal(format!("blocking file I/O failed: {e}")))?,
        Pathology::Alloc { mib } => allocated_bytes = Some(pathology::allocation_storm(mib)),
        Pathology::SpawnBlocking { jobs, sleep } => {
            pathology::queue_on_blocking_pool(jobs, sleep).await?
        }
        Pathology::Downstream { delay } => {
            downstream_trace_id =
                Some(downstream::call(&state.client, &state.downstream_url, delay).await?);
        }
        Pathology::Child { cpu } => child_cpu = Some(cpu),
        Pathology::Sleep { delay } => tokio::time::sleep(delay).await,
        Pathology::TokioBlocking { cpu } => {
            pathology::cpu_on_tokio_blocking_pool(cpu).await?;
        }
        Pathology::ChildBlocking { cpu } => {
            pathology::cpu_on_blocking_pool_from_unspanned_child(cpu).await?;
        }
        Pathology::NestedAlloc { mib } => {
            let before = pathology::process_minor_faults();
            allocated_bytes = Some(pathology::nested_allocation_storm(mib).await);
            minor_faults = Some(pathology::process_minor_faults().saturating_sub(before));
        }
        Pathology::Fanout { tasks, delay } => pathology::fan_out(tasks, delay).await?,
        Pathology::BlockingSpans { jobs, sleep } => {
            pathology::blocking_jobs_with_spans(jobs, sleep).await?
        }
        Pathology::Lock { hold } => pathology::hold_lock(hold).await,
        Pathology::StdLock { hold } => waited_on = Some(waits::std_lock(hold)),
        Pathology::Command { wait } => {
            waited_on = Some(waits::command_output(wait).map_err(failed("running `sleep`"))?);
        }
        Pathology::CommandStatus { wait } => {
            waited_on = Some(waits::command_status(wait).map_err(failed("running `sleep`"))?);
        }
        Pathology::Fifo { delay } => {
            waited_on = Some(waits::fifo(delay).map_err(failed("reading the fifo"))?);
        }
        Pathology::Socket { delay } => {
            waited_on = Some(waits::socket(delay).map_err(failed("reading the socket"))?);
        }
        Pathology::DiskRead { mib } => {
            waited_on = Some(waits::disk_read(mib).map_err(failed("the O_DIRECT read"))?);
        }
    }

    let messages = match cached {
        Some(messages) => messages,
        None => steps::db_query(token, child_cpu, pace).await?,
    };
    Ok(Json(MessagesResponse {
        trace_id: http_trace::trace_id(&Span::current()),
        messages,
        pathology: pathology.kind().name(),
        allocated_bytes,
        minor_faults,
        downstream_trace_id,
        waited_on,
    }))
}

//! `otel-propagation`: a service written the way opentelemetry-rust's examples write one, run
//! under Granular unchanged, whichever `GRANULAR_SAMPLE` mode is set.
//!
//! - Middleware extracts the caller's W3C context with the global propagator and attaches it as
//!   the current OpenTelemetry `Context` *before* the handler's span exists: with
//!   `FutureExt::with_context` on `/front`, with `Context::attach` around the span's creation on
//!   `/leaf`.
//! - Handlers are `#[instrument]`ed; their spans are local roots that take their parent from
//!   that context (tracing-opentelemetry does this, and so does Granular's own span recording).
//! - `/front` calls `/leaf` on this same process over HTTP, injecting `traceparent` from its
//!   client span with [`granular::SpanExt::otel_context`] (which works with either stack).
//! - `/legacy` reads its span's context with tracing-opentelemetry's `OpenTelemetrySpanExt`,
//!   which only tracing-opentelemetry's layer can answer: with `GRANULAR_SAMPLE=violations`
//!   Granular warns once and names the replacement.
//!
//! Prints `listening on http://ADDR` when ready; `DEMO_LISTEN` sets the address (default
//! `127.0.0.1:0`). `tests/tests/propagation.rs` checks the resulting traces in Jaeger.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use granular::SpanExt;
use granular_examples::http_trace::{HeaderExtractor, HeaderInjector};
use opentelemetry::trace::FutureExt;
use tracing::Instrument;

struct App {
    client: reqwest::Client,
    base_url: String,
}

fn main() -> ExitCode {
    let listen: SocketAddr = match std::env::var("DEMO_LISTEN")
        .unwrap_or_else(|_| "127.0.0.1:0".into())
        .parse()
    {
        Ok(addr) => addr,
        Err(e) => {
            return fail(&format!(
                "DEMO_LISTEN is not an address like 127.0.0.1:0: {e}"
            ));
        }
    };
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    let runtime = match granular::instrument_runtime(&mut builder)
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail(&format!("cannot build the tokio runtime: {e}")),
    };
    runtime.block_on(async {
        let _granular = match granular::init() {
            Ok(guard) => guard,
            Err(e) => return fail(&e),
        };
        match serve(listen).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&format!("cannot serve: {e}")),
        }
    })
}

async fn serve(listen: SocketAddr) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let app = Arc::new(App {
        client: reqwest::Client::builder()
            .no_proxy()
            .build()
            .map_err(std::io::Error::other)?,
        base_url: format!("http://{addr}"),
    });
    let router = Router::new()
        .route("/front", get(front))
        .route("/legacy", get(legacy))
        .layer(middleware::from_fn(with_callers_context))
        .merge(
            Router::new()
                .route("/leaf", get(leaf))
                .layer(middleware::from_fn(attach_callers_context)),
        )
        .with_state(app);
    println!("listening on http://{addr}");
    axum::serve(listener, router)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}

/// The caller's context, as the global propagator extracts it from the request's headers.
fn callers_context(headers: &HeaderMap) -> opentelemetry::Context {
    opentelemetry::global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(headers)))
}

/// Runs the rest of the request inside the caller's context (`FutureExt::with_context`).
async fn with_callers_context(request: Request, next: Next) -> Response {
    let cx = callers_context(request.headers());
    next.run(request).with_context(cx).await
}

/// Creates the request's server span while the caller's context is attached
/// (`Context::attach`), and runs the rest of the request in that span.
async fn attach_callers_context(request: Request, next: Next) -> Response {
    let span = {
        let _attached = callers_context(request.headers()).attach();
        tracing::info_span!("GET /leaf", otel.kind = "server")
    };
    next.run(request).instrument(span).await
}

#[tracing::instrument(name = "front", skip_all, fields(otel.kind = "server"))]
async fn front(State(app): State<Arc<App>>) -> Result<String, String> {
    let call = tracing::info_span!("call /leaf", otel.kind = "client");
    let mut headers = HeaderMap::new();
    let cx = call.otel_context();
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(&cx, &mut HeaderInjector(&mut headers))
    });
    let url = format!("{}/leaf", app.base_url);
    let response = app
        .client
        .get(&url)
        .headers(headers)
        .send()
        .instrument(call)
        .await
        .map_err(|e| format!("GET {url} failed: {e}"))?;
    response
        .text()
        .await
        .map_err(|e| format!("GET {url} failed: {e}"))
}

#[tracing::instrument(name = "leaf", skip_all)]
async fn leaf() -> &'static str {
    "leaf"
}

#[tracing::instrument(name = "legacy", skip_all, fields(otel.kind = "server"))]
async fn legacy() -> String {
    use opentelemetry::trace::TraceContextExt;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let cx = OpenTelemetrySpanExt::context(&tracing::Span::current());
    cx.span().span_context().trace_id().to_string()
}

/// Reports a start-up failure the way scripts expect: one line on stderr, exit status 2.
fn fail(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(2)
}

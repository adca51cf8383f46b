//! The demo service: routes, shared state, binding and serving.

use std::io::{self, Write};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::middleware;
use axum::routing::get;
use tokio::net::TcpListener;

use crate::config::ServiceConfig;
use crate::pathology::PathologyKind;
use crate::{downstream, http_trace, messages, report};

/// What every handler shares.
#[derive(Debug)]
pub struct AppState {
    /// HTTP client for the downstream hop (connection pool shared by all requests).
    pub client: reqwest::Client,
    /// Base URL of the downstream service.
    pub downstream_url: String,
    /// Pathology of requests that do not pick one.
    pub default_pathology: PathologyKind,
}

impl AppState {
    /// State for a service whose downstream hop goes to `downstream_url`.
    pub fn new(
        downstream_url: String,
        default_pathology: PathologyKind,
    ) -> Result<Self, reqwest::Error> {
        // No proxy: the hop must go exactly where it is told (loopback in every demo), whatever
        // HTTP_PROXY says. The timeout bounds a request even if the downstream hangs.
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(70))
            .build()?;
        Ok(Self {
            client,
            downstream_url,
            default_pathology,
        })
    }
}

/// `GET /messages`, `GET /report`, `GET /downstream`, each wrapped in a server span.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/messages", get(messages::messages))
        .route("/report", get(report::report))
        .route("/downstream", get(downstream::downstream))
        .layer(middleware::from_fn(http_trace::server_span))
        .with_state(state)
}

/// Binds `config.listen`, prints `listening on http://ADDR` (the readiness signal test harnesses
/// wait for), and serves until SIGINT or SIGTERM, then lets in-flight requests finish so the
/// caller can flush telemetry.
pub async fn run(config: ServiceConfig) -> io::Result<()> {
    let listener = TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    let downstream_url = config
        .downstream_url
        .unwrap_or_else(|| format!("http://{addr}"));
    let state = AppState::new(downstream_url, config.pathology).map_err(io::Error::other)?;
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "listening on http://{addr}")?;
    stdout.flush()?;
    drop(stdout);
    axum::serve(listener, router(Arc::new(state)))
        .with_graceful_shutdown(shutdown_signal())
        .await
}

/// Resolves on the first SIGINT or SIGTERM (the latter is what process supervisors and test
/// harnesses send). A signal that cannot be watched simply never fires.
async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry::trace::{SpanKind, Status};
    use opentelemetry_sdk::error::OTelSdkResult;
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use opentelemetry_sdk::trace::{SpanData, SpanExporter};
    use serde_json::Value;
    use std::sync::Mutex;
    use tracing::subscriber::DefaultGuard;
    use tracing_subscriber::layer::SubscriberExt;

    /// Every span the test's tracer ended, in the order they ended.
    #[derive(Debug, Clone, Default)]
    struct Collected(Arc<Mutex<Vec<SpanData>>>);

    impl SpanExporter for Collected {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            self.0.lock().expect("collector lock").extend(batch);
            Ok(())
        }
    }

    impl Collected {
        fn named(&self, name: &str) -> Vec<SpanData> {
            let spans = self.0.lock().expect("collector lock");
            spans.iter().filter(|s| s.name == name).cloned().collect()
        }
    }

    fn attribute(span: &SpanData, key: &str) -> Option<opentelemetry::Value> {
        span.attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| kv.value.clone())
    }

    /// Installs an OTel layer for this thread only, as `granular::init` would globally, so spans
    /// get real trace ids and can be inspected. `#[tokio::test]` runs every task on this thread.
    fn telemetry() -> (DefaultGuard, Collected) {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        let collected = Collected::default();
        let tracer = SdkTracerProvider::builder()
            .with_simple_exporter(collected.clone())
            .build()
            .tracer("test");
        let guard = tracing::subscriber::set_default(
            tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(tracer)),
        );
        (guard, collected)
    }

    /// Serves the router on an ephemeral loopback port, its downstream hop pointing at itself.
    async fn serve() -> String {
        serve_with_downstream(None).await
    }

    /// Like [`serve`], with the downstream hop going to `downstream` when given.
    async fn serve_with_downstream(downstream: Option<String>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("local address"));
        let downstream = downstream.unwrap_or_else(|| base.clone());
        let state = AppState::new(downstream, PathologyKind::None).expect("HTTP client");
        tokio::spawn(axum::serve(listener, router(Arc::new(state))).into_future());
        base
    }

    /// GETs `url` and returns the status, the `x-trace-id` header and the body.
    async fn get(url: &str, headers: &[(&str, &str)]) -> (u16, String, String) {
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client");
        let mut request = client.get(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("response");
        let status = response.status().as_u16();
        let trace_id = response
            .headers()
            .get(http_trace::TRACE_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        (status, trace_id, response.text().await.expect("body"))
    }

    fn json(body: &str) -> Value {
        serde_json::from_str(body).expect("JSON body")
    }

    #[tokio::test]
    async fn messages_answers_with_its_trace_id_and_rejects_unknown_pathologies() {
        let (_telemetry, _) = telemetry();
        let base = serve().await;

        let (status, trace_id, body) = get(&format!("{base}/messages"), &[]).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(trace_id.len(), 32, "{trace_id:?}");
        assert!(trace_id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(trace_id, "0".repeat(32));
        let body = json(&body);
        assert_eq!(body["trace_id"], trace_id.as_str());
        assert_eq!(body["pathology"], "none");
        assert_eq!(body["messages"].as_array().map(Vec::len), Some(2));

        let (status, _, body) = get(&format!("{base}/messages?pathology=bogus"), &[]).await;
        assert_eq!(status, 400);
        assert!(
            body.contains("\"bogus\"") && body.contains("spawn_blocking"),
            "{body}"
        );

        let (status, _, body) = get(&format!("{base}/messages?pathology=block&ms=x"), &[]).await;
        assert_eq!(status, 400);
        assert!(body.contains("`ms`"), "{body}");
    }

    #[tokio::test]
    async fn spans_have_the_documented_names_fields_and_parents() {
        let (_telemetry, spans) = telemetry();
        let base = serve().await;
        let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
        let traceparent = format!("00-{trace}-00f067aa0ba902b7-01");

        let url = format!("{base}/messages?pathology=downstream&ms=1");
        let (status, trace_id, body) = get(&url, &[("traceparent", &traceparent)]).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(trace_id, trace);
        assert_eq!(json(&body)["downstream_trace_id"], trace);

        let [server] = &spans.named("GET /messages")[..] else {
            panic!("one GET /messages span");
        };
        assert_eq!(server.span_kind, SpanKind::Server);
        assert_eq!(server.span_context.trace_id().to_string(), trace);
        assert_eq!(server.parent_span_id.to_string(), "00f067aa0ba902b7");
        assert!(server.parent_span_is_remote);
        for (key, value) in [
            ("http.request.method", "GET"),
            ("http.route", "/messages"),
            ("url.path", "/messages"),
        ] {
            assert_eq!(attribute(server, key), Some(value.into()), "{key}");
        }
        assert_eq!(
            attribute(server, "http.response.status_code"),
            Some(200i64.into())
        );
        for step in ["auth.AccessToken", "cache.Lookup", "db.Query"] {
            let [span] = &spans.named(step)[..] else {
                panic!("one {step} span");
            };
            assert_eq!(span.parent_span_id, server.span_context.span_id(), "{step}");
        }

        // The hop: a client span under the server span, then the downstream's own server span
        // (same name, as the route is /downstream) under the client span, all in one trace.
        let hop = spans.named("GET /downstream");
        let client = hop.iter().find(|s| s.span_kind == SpanKind::Client);
        let client = client.expect("client span");
        assert_eq!(client.parent_span_id, server.span_context.span_id());
        let downstream = hop.iter().find(|s| s.span_kind == SpanKind::Server);
        let downstream = downstream.expect("downstream server span");
        assert_eq!(downstream.parent_span_id, client.span_context.span_id());
        assert_eq!(downstream.span_context.trace_id().to_string(), trace);
    }

    #[tokio::test]
    async fn fanout_blocking_spans_and_lock_make_their_spans_under_the_request() {
        let (_telemetry, spans) = telemetry();
        let base = serve().await;
        for (query, span, count) in [
            ("pathology=fanout&jobs=3&ms=1", "fanout.task", 3),
            ("pathology=blocking_spans&jobs=2&ms=1", "blocking.job", 2),
            ("pathology=lock&ms=1", "lock.wait", 1),
            ("pathology=lock&ms=1", "lock.held", 1),
        ] {
            let (status, trace_id, body) = get(&format!("{base}/messages?{query}"), &[]).await;
            assert_eq!(status, 200, "{query}: {body}");
            let of_request = |name: &str| -> Vec<SpanData> {
                spans
                    .named(name)
                    .into_iter()
                    .filter(|s| s.span_context.trace_id().to_string() == trace_id)
                    .collect()
            };
            // The server span itself may end after the response (and, with this test's
            // thread-local subscriber, never once a span closed on a blocking-pool thread:
            // the registry releases a parent through the thread's default subscriber), so the
            // request's span is found as its auth.AccessToken's parent.
            let [auth] = &of_request("auth.AccessToken")[..] else {
                panic!("{query}: one auth.AccessToken span");
            };
            let made = of_request(span);
            assert_eq!(made.len(), count, "{query}: {span}");
            for s in made {
                assert_eq!(s.parent_span_id, auth.parent_span_id, "{query}: {span}");
            }
        }
    }

    #[tokio::test]
    async fn server_errors_mark_the_span() {
        let (_telemetry, spans) = telemetry();
        // A port nobody listens on: bind one, then free it.
        let dead = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let dead_url = format!("http://{}", dead.local_addr().expect("local address"));
        drop(dead);
        let base = serve_with_downstream(Some(dead_url)).await;

        let url = format!("{base}/messages?pathology=downstream&ms=1");
        let (status, _, body) = get(&url, &[]).await;
        assert_eq!(status, 502, "{body}");
        let [server] = &spans.named("GET /messages")[..] else {
            panic!("one GET /messages span");
        };
        assert_eq!(
            attribute(server, "http.response.status_code"),
            Some(502i64.into())
        );
        assert!(
            matches!(server.status, Status::Error { .. }),
            "{:?}",
            server.status
        );
    }

    #[tokio::test]
    async fn every_pathology_runs() {
        let (_telemetry, _) = telemetry();
        let base = serve().await;
        for (query, pathology) in [
            ("pathology=block&ms=1", "block"),
            ("pathology=blockfile&mib=1", "blockfile"),
            ("pathology=alloc&mib=1", "alloc"),
            ("pathology=spawn_blocking&jobs=3&ms=1", "spawn_blocking"),
            ("pathology=child&ms=1", "child"),
            ("pathology=sleep&ms=1", "sleep"),
            ("pathology=fanout&jobs=2&ms=1", "fanout"),
            ("pathology=blocking_spans&jobs=2&ms=1", "blocking_spans"),
            ("pathology=lock&ms=1", "lock"),
            ("pathology=std_lock&ms=1", "std_lock"),
            ("pathology=command&ms=1", "command"),
            ("pathology=command_status&ms=1", "command_status"),
            ("pathology=fifo&ms=1", "fifo"),
            ("pathology=socket&ms=1", "socket"),
        ] {
            let (status, _, body) = get(&format!("{base}/messages?{query}"), &[]).await;
            assert_eq!(status, 200, "{query}: {body}");
            assert_eq!(json(&body)["pathology"], pathology);
        }
        // The blocking pathologies say what they waited on.
        for (query, truth) in [
            ("pathology=std_lock&ms=1", "mutex"),
            ("pathology=command&ms=1", "pid"),
            ("pathology=command_status&ms=1", "pid"),
            ("pathology=fifo&ms=1", "path"),
            ("pathology=socket&ms=1", "peer"),
        ] {
            let (_, _, body) = get(&format!("{base}/messages?{query}"), &[]).await;
            let waited_on = &json(&body)["waited_on"];
            assert!(!waited_on[truth].is_null(), "{query}: {body}");
            assert!(
                waited_on["waited_us"].as_u64() >= Some(1000),
                "{query}: {body}"
            );
        }
        let (status, _, body) =
            get(&format!("{base}/messages?pathology=disk_read&mib=129"), &[]).await;
        assert_eq!(status, 400, "{body}");
        assert!(
            body.contains("`mib` must be a whole number from 0 to 128"),
            "{body}"
        );
        let (_, _, body) = get(&format!("{base}/messages?pathology=alloc&mib=1"), &[]).await;
        assert!(json(&body)["allocated_bytes"].as_u64() >= Some(1 << 20));

        let header = [("x-pathology", "child")];
        let (_, _, body) = get(&format!("{base}/messages?ms=1"), &header).await;
        assert_eq!(json(&body)["pathology"], "child");
        let (_, _, body) = get(&format!("{base}/messages?pathology=none"), &header).await;
        assert_eq!(json(&body)["pathology"], "none");

        let (status, _, body) = get(&format!("{base}/report?ms=1"), &[]).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(json(&body)["burned_ms"], 1);
    }
}

//! Secrets stay secret: the values of `OTEL_EXPORTER_OTLP_HEADERS` (API keys, bearer tokens)
//! never appear in the service's logs, even while every export fails, and a request's own
//! headers (`Authorization`, `Cookie`) are copied neither into its spans' attributes nor into
//! its Perfetto artifact. Real demo service, real Jaeger.

use std::time::Duration;

use granular_e2e::demo::Demo;
use granular_e2e::jaeger::Jaeger;
use granular_e2e::perfetto;
use granular_e2e::ports::free_port;

const SLO: &str = "GET /messages=20ms,*=10s";
/// `?pathology=block&ms=60`: a request that violates the SLO, so it is analysed and gets an
/// artifact.
const SLOW: &str = "/messages?pathology=block&ms=60";

#[test]
fn otlp_header_values_never_reach_the_logs() {
    const SECRET: &str = "granular-secret-4242";
    // Nothing listens there: every export fails, and says so in the log.
    let closed = format!("http://127.0.0.1:{}", free_port().expect("a free port"));
    for headers in [
        format!("authorization=Bearer {SECRET},x-api-key={SECRET}"),
        // Malformed: a header without a value, and one whose value is not valid in a header.
        format!("authorization=Bearer {SECRET},broken,x-api-key={SECRET}\u{7f}"),
    ] {
        let mut demo = Demo::builder("secrets-otlp-headers")
            .otlp_grpc(&closed)
            .env("OTEL_EXPORTER_OTLP_HEADERS", &headers)
            .env("GRANULAR_SLO", SLO)
            .env("GRANULAR_ARTIFACTS", "none")
            .env("RUST_LOG", "info,opentelemetry=debug,granular=debug")
            .start()
            .expect("demo");
        for _ in 0..3 {
            assert_eq!(demo.get(SLOW).expect("GET").status, 200);
        }
        // The batch processor's delay is 100 ms: give the exports time to fail and be logged.
        std::thread::sleep(Duration::from_secs(2));
        let log = demo.process().log();
        assert!(
            !log.contains(SECRET),
            "a header value from OTEL_EXPORTER_OTLP_HEADERS ({headers:?}) is in the log:\n{}",
            log.lines()
                .filter(|l| l.contains(SECRET))
                .collect::<Vec<_>>()
                .join("\n")
        );
        assert!(
            log.to_lowercase().contains("export"),
            "the failing exports left no trace in the log, so this proves nothing:\n{log}"
        );
    }
}

#[test]
fn request_headers_stay_out_of_spans_and_artifacts() {
    const SECRET: &str = "granular-secret-5151";
    let jaeger = Jaeger::shared().expect("Jaeger");
    let artifacts = granular_e2e::artifact_dir("secrets-request-headers").expect("artifact dir");
    let mut demo = Demo::builder("secrets-request-headers")
        .otlp_grpc(&jaeger.otlp_grpc_endpoint())
        .env("GRANULAR_SLO", SLO)
        .env("GRANULAR_DETAIL", "events")
        .env("GRANULAR_ARTIFACT_DIR", &artifacts.to_string_lossy())
        .start()
        .expect("demo");
    let response = demo
        .get_with(
            SLOW,
            &[
                ("authorization", &format!("Bearer {SECRET}")),
                ("cookie", &format!("session={SECRET}")),
                ("x-api-key", SECRET),
            ],
        )
        .expect("GET");
    let trace_id = response.trace_id().expect("trace id");
    let trace = jaeger
        .fetch_trace(&trace_id, Duration::from_secs(30), |t| {
            t.span_by_name("GET /messages")
                .is_some_and(|s| s.tag_str("granular.artifact").is_some())
        })
        .expect("the violating trace, with its artifact link");
    let stored = jaeger
        .fetch_trace_otlp(&trace_id, Duration::from_secs(5))
        .expect("the trace as OTLP/JSON")
        .to_string();
    assert!(
        !stored.contains(SECRET),
        "a request header's value is in the stored trace:\n{}",
        trace.render()
    );
    let link = trace
        .span_by_name("GET /messages")
        .and_then(|s| s.tag_str("granular.artifact"))
        .expect("granular.artifact");
    let path = perfetto::file_url_path(link).expect("a file:// artifact");
    let bytes = std::fs::read(&path).expect("the artifact");
    assert!(bytes.len() > 100, "{} bytes", bytes.len());
    assert!(
        !bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
        "a request header's value is in the artifact {}",
        path.display()
    );
}

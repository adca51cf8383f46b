//! The demo's spans reach Jaeger as the right tree: names, parents,
//! services, and durations no shorter than the latencies the demo injects.
//!
//! The tests share one Jaeger, and the first two one pair of services
//! (`messages`, calling `inventory` for the downstream pathology).
//!
//! Needs the Jaeger binary (deploy/jaeger/build.sh) and the demo binaries
//! built for this target dir and profile (tests/run.sh does both).

use std::time::Duration;

use granular_e2e::demo::{Demo, DemoLease, Response, SharedDemo};
use granular_e2e::jaeger::Jaeger;
use granular_e2e::trace::{Span, Trace};
use serde_json::Value;

const TRACE_TIMEOUT: Duration = Duration::from_secs(30);
/// Jaeger keeps µs; a start and a duration each lose up to 1 µs.
const ROUNDING_US: u64 = 2;
/// Steps of `GET /messages` in order, with the least each one sleeps.
const STEPS: [(&str, u64); 3] = [
    ("auth.AccessToken", 2_000),
    ("cache.Lookup", 1_000),
    ("db.Query", 5_000),
];

/// Sends `GET /messages` and reads its trace back from Jaeger once its four spans arrived.
/// Returns the trace id the service answered with, and the trace.
fn messages_trace(jaeger: &Jaeger, demo: &mut Demo) -> (String, Trace) {
    let trace_id = ok(demo.get("/messages").expect("GET /messages")).expect("trace id");
    let trace = jaeger
        .fetch_trace(&trace_id, TRACE_TIMEOUT, |t| {
            t.spans.len() >= 4 && t.is_connected()
        })
        .expect("the /messages trace in Jaeger");
    (trace_id, trace)
}

fn jaeger() -> &'static Jaeger {
    Jaeger::shared().expect("start Jaeger")
}

/// `messages`, exporting over OTLP/gRPC, its downstream hop going to
/// `inventory` (started with it): the OTLP/gRPC tests share them.
fn messages() -> DemoLease {
    static MESSAGES: SharedDemo = SharedDemo::new();
    let endpoint = jaeger().otlp_grpc_endpoint();
    MESSAGES
        .lease(move || {
            let inventory = inventory(&endpoint)?;
            Ok(Demo::builder("messages")
                .otlp_grpc(&endpoint)
                .downstream(inventory.url()))
        })
        .expect("start the messages and inventory demo-services")
}

/// The downstream of [`messages`]; only `messages` calls it.
fn inventory(endpoint: &str) -> granular_e2e::Result<DemoLease> {
    static INVENTORY: SharedDemo = SharedDemo::new();
    let endpoint = endpoint.to_owned();
    INVENTORY.lease(move || Ok(Demo::builder("inventory").otlp_grpc(&endpoint)))
}

#[test]
fn messages_span_tree_over_otlp_grpc() {
    let jaeger = jaeger();
    let mut demo = messages();

    let (_, trace) = messages_trace(jaeger, &mut demo);

    assert_eq!(trace.spans.len(), 4, "{}", trace.render());
    assert_eq!(trace.services(), ["messages"], "{}", trace.render());
    let root = single_root(&trace);
    assert_messages_request(&trace, root, &[]);
}

#[test]
fn downstream_hop_joins_two_services_in_one_trace() {
    let jaeger = jaeger();
    let mut messages = messages();
    // Held, so that a failure shows its log as well.
    let _inventory = inventory(&jaeger.otlp_grpc_endpoint()).expect("the inventory demo-service");
    assert_downstream_hop(jaeger, &mut messages, "messages");
}

/// `all` mode with the spans recorded by Granular and every trace rebuilt from the recording
/// (`GRANULAR_ALL_FROM=recording`): the same tree, the same hop to a downstream service that
/// builds its spans with tracing-opentelemetry, every healthy trace exported.
#[test]
fn all_from_the_recording_exports_the_same_tree() {
    let jaeger = jaeger();
    let endpoint = jaeger.otlp_grpc_endpoint();
    let inventory = inventory(&endpoint).expect("the inventory demo-service");
    let mut messages = Demo::builder("messages-recorded")
        .otlp_grpc(&endpoint)
        .env("GRANULAR_ALL_FROM", "recording")
        .downstream(inventory.url())
        .start()
        .expect("start demo-service with GRANULAR_ALL_FROM=recording");

    let (_, trace) = messages_trace(jaeger, &mut messages);
    assert_eq!(trace.spans.len(), 4, "{}", trace.render());
    assert_messages_request(&trace, single_root(&trace), &[]);
    assert_downstream_hop(jaeger, &mut messages, "messages-recorded");
}

/// `GET /messages?pathology=downstream` on `messages` (service `service`) reaches Jaeger as one
/// trace across it and `inventory`.
fn assert_downstream_hop(jaeger: &Jaeger, messages: &mut Demo, service: &str) {
    let response = messages
        .get("/messages?pathology=downstream&ms=80")
        .expect("GET /messages?pathology=downstream");
    let trace_id = ok(response.clone()).expect("trace id");
    let body: Value = serde_json::from_str(&response.body).expect("JSON body");
    assert_eq!(
        body["downstream_trace_id"].as_str(),
        Some(trace_id.as_str()),
        "the downstream saw another trace: {body}"
    );

    let trace = jaeger
        .fetch_trace(&trace_id, TRACE_TIMEOUT, |t| {
            t.spans.len() >= 6 && t.is_connected()
        })
        .expect("the two-service trace in Jaeger");
    let tree = trace.render();
    assert_eq!(trace.spans.len(), 6, "{tree}");
    assert_eq!(trace.services(), ["inventory", service], "{tree}");

    let root = single_root(&trace);
    let client = trace
        .span_in(service, "GET /downstream")
        .unwrap_or_else(|| panic!("no client span GET /downstream in {service}\n{tree}"));
    let server = trace
        .span_in("inventory", "GET /downstream")
        .unwrap_or_else(|| panic!("no server span GET /downstream in inventory\n{tree}"));
    assert_messages_request(&trace, root, &[client]);

    assert_eq!(client.kind(), Some("client"), "{tree}");
    assert_eq!(server.kind(), Some("server"), "{tree}");
    assert_eq!(
        trace.parent_of(server).map(|s| &s.span_id),
        Some(&client.span_id),
        "the downstream server span is not the client span's child\n{tree}"
    );
    assert!(status_200(server), "{tree}");
    assert!(client.duration >= 80_000, "hop shorter than 80 ms\n{tree}");
    assert!(
        server.duration >= 80_000,
        "downstream wait shorter than 80 ms\n{tree}"
    );
    // Both processes read the same clock, so the server's span lies within
    // the client's.
    assert_within(server, client, &tree);
    assert!(
        root.duration >= 80_000 + STEPS.iter().map(|(_, us)| us).sum::<u64>(),
        "{tree}"
    );
}

#[test]
fn otlp_http_protobuf_export() {
    let jaeger = jaeger();
    let mut demo = Demo::builder("messages-http")
        .otlp_http(&jaeger.otlp_http_endpoint())
        .start()
        .expect("start demo-service");

    let (trace_id, trace) = messages_trace(jaeger, &mut demo);
    assert_eq!(trace.services(), ["messages-http"], "{}", trace.render());
    assert_messages_request(&trace, single_root(&trace), &[]);

    // The same trace as OTLP/JSON: the resource and span kinds as exported.
    let otlp = jaeger
        .fetch_trace_otlp(&trace_id, TRACE_TIMEOUT)
        .expect("the trace from Jaeger's OTLP API");
    let resource_spans = otlp["resourceSpans"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(resource_spans.len(), 1, "{otlp:#}");
    let service = resource_spans[0]["resource"]["attributes"]
        .as_array()
        .and_then(|attributes| {
            attributes
                .iter()
                .find(|a| a["key"] == "service.name")
                .and_then(|a| a["value"]["stringValue"].as_str())
        });
    assert_eq!(service, Some("messages-http"), "{otlp:#}");
    let spans: Vec<&Value> = resource_spans[0]["scopeSpans"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|scope| scope["spans"].as_array().into_iter().flatten())
        .collect();
    let root = spans
        .iter()
        .find(|span| span["name"] == "GET /messages")
        .unwrap_or_else(|| panic!("no GET /messages span: {otlp:#}"));
    assert_eq!(root["kind"], 2, "SPAN_KIND_SERVER expected: {root:#}");
    assert_eq!(root["traceId"], trace_id.as_str(), "{root:#}");
}

/// The response was a 200; its trace id.
fn ok(response: Response) -> Result<String, String> {
    if response.status != 200 {
        return Err(format!("status {}: {}", response.status, response.body));
    }
    response.trace_id().map_err(|e| e.to_string())
}

fn single_root(trace: &Trace) -> &Span {
    match trace.roots()[..] {
        [root] => root,
        _ => panic!("expected one root span\n{}", trace.render()),
    }
}

/// `root` is the server span of a `/messages` request whose children are
/// the three steps, in order, each at least as long as its sleep, with
/// `extra` children (from a pathology) between cache and db.
fn assert_messages_request(trace: &Trace, root: &Span, extra: &[&Span]) {
    let tree = trace.render();
    let service = trace.service_of(root);
    assert_eq!(root.operation_name, "GET /messages", "{tree}");
    assert_eq!(root.kind(), Some("server"), "{tree}");
    assert_eq!(
        root.tag("http.route"),
        Some(&Value::from("/messages")),
        "{tree}"
    );
    assert!(status_200(root), "{tree}");

    let children = trace.children_of(root);
    let names: Vec<&str> = children.iter().map(|s| s.operation_name.as_str()).collect();
    let mut expected: Vec<&str> = STEPS.iter().map(|(name, _)| *name).collect();
    expected.splice(2..2, extra.iter().map(|s| s.operation_name.as_str()));
    assert_eq!(
        names, expected,
        "children of GET /messages in start order\n{tree}"
    );

    for (name, least_us) in STEPS {
        let step = trace
            .span_by_name(name)
            .unwrap_or_else(|| panic!("no {name} span\n{tree}"));
        assert_eq!(trace.service_of(step), service, "{tree}");
        assert!(
            step.duration >= least_us,
            "{name} took {} µs, less than its {least_us} µs sleep\n{tree}",
            step.duration
        );
    }
    // The steps run one after another inside the request.
    for pair in children.windows(2) {
        assert!(
            pair[1].start_time + ROUNDING_US >= pair[0].end_time(),
            "{} started before {} ended\n{tree}",
            pair[1].operation_name,
            pair[0].operation_name
        );
    }
    for child in &children {
        assert_within(child, root, &tree);
    }
    let children_us: u64 = children.iter().map(|s| s.duration).sum();
    let least_us: u64 = STEPS.iter().map(|(_, us)| us).sum();
    assert!(
        root.duration + ROUNDING_US * children.len() as u64 >= children_us.max(least_us),
        "GET /messages ({} µs) is shorter than its sequential steps ({children_us} µs, at least {least_us} µs)\n{tree}",
        root.duration
    );
}

/// `http.response.status_code` is 200. The demo records it after the span
/// started, which tracing-opentelemetry exports as the string "200" rather
/// than an int; accept both.
fn status_200(span: &Span) -> bool {
    span.tag("http.response.status_code")
        .is_some_and(|status| status == 200 || status == "200")
}

fn assert_within(inner: &Span, outer: &Span, tree: &str) {
    assert!(
        inner.start_time + ROUNDING_US >= outer.start_time
            && inner.end_time() <= outer.end_time() + ROUNDING_US,
        "{} does not lie within {}\n{tree}",
        inner.operation_name,
        outer.operation_name
    );
}

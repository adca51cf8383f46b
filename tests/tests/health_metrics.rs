//! Granular's health as OpenTelemetry metrics, end to end: the demo service exports its
//! counters over OTLP to the same endpoint as its spans.
//!
//! * Through the real Collector (`deploy/collector/single.yaml`, whose metrics pipeline logs
//!   what it receives with the debug exporter): `granular.traces.exported` arrives and counts
//!   exactly the violating traces the test sent (`granular.traces.chosen` as many, all whole);
//!   the loss counters arrive as well, so an SRE can alert on them.
//! * Straight to Jaeger, which takes no metrics: the service says so once and goes on, rather
//!   than logging an export error every interval; its spans still arrive.

use std::time::{Duration, Instant};

use granular_e2e::collector::Collector;
use granular_e2e::demo::{Demo, DemoBuilder};
use granular_e2e::jaeger::Jaeger;

/// Every request sleeps past the SLO: each trace violates and is exported.
const SLOW: &str = "/messages?pathology=sleep&ms=40";
const SLO: &str = "GET /messages=20ms,*=10s";
const REQUESTS: usize = 4;
const METRIC_INTERVAL_MS: &str = "300";
const WAIT: Duration = Duration::from_secs(30);

fn demo(name: &str, endpoint: &str) -> DemoBuilder {
    Demo::builder(name)
        .otlp_grpc(endpoint)
        .env("GRANULAR_SAMPLE", "violations")
        .env("GRANULAR_SLO", SLO)
        .env("GRANULAR_ARTIFACTS", "none")
        .env("OTEL_METRIC_EXPORT_INTERVAL", METRIC_INTERVAL_MS)
}

/// The value of the last data point of metric `name` (with an attribute line containing
/// `attribute`, if given) in the debug exporter's detailed log, if any.
fn last_value(log: &str, name: &str, attribute: Option<&str>) -> Option<f64> {
    let mut value = None;
    let mut in_metric = false;
    let mut attribute_seen = attribute.is_none();
    for line in log.lines() {
        let line = line.trim();
        if let Some(n) = line.strip_prefix("-> Name: ") {
            in_metric = n == name;
            attribute_seen = attribute.is_none();
        } else if in_metric && attribute.is_some_and(|a| line.contains(a)) {
            attribute_seen = true;
        } else if let Some(v) = line.strip_prefix("Value: ") {
            if in_metric && attribute_seen {
                value = v.trim().parse().ok();
            }
            attribute_seen = attribute.is_none();
        }
    }
    value
}

#[test]
fn health_counters_reach_a_collector_as_metrics() {
    let jaeger = Jaeger::shared().expect("start Jaeger");
    let mut collector = Collector::start(
        "single.yaml",
        &[
            ("JAEGER_OTLP_GRPC", &jaeger.otlp_grpc_endpoint()),
            ("GRANULAR_SLO", "*=10s"),
            ("GRANULAR_METRICS_VERBOSITY", "detailed"),
        ],
    )
    .expect("start granularcol");
    let mut demo = demo("health-metrics", &collector.otlp_grpc_endpoint())
        .start()
        .expect("start demo-service");
    for _ in 0..REQUESTS {
        demo.get(SLOW).expect("GET /messages");
    }
    let deadline = Instant::now() + WAIT;
    let exported = loop {
        let log = collector.process().log();
        let exported = last_value(&log, "granular.traces.exported", None);
        if exported == Some(REQUESTS as f64) || Instant::now() > deadline {
            break exported;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let log = collector.process().log();
    assert_eq!(
        exported,
        Some(REQUESTS as f64),
        "granular.traces.exported should count the {REQUESTS} violating traces; collector log: {}",
        collector.process().log_path().display()
    );
    assert_eq!(
        last_value(&log, "granular.traces.chosen", None),
        Some(REQUESTS as f64),
        "every violating trace chosen, every one exported whole"
    );
    for (name, attribute) in [
        ("granular.traces.dropped", None),
        ("granular.traces.incomplete", Some("queue_full")),
        ("granular.spans.skipped", Some("rate_limit")),
        ("granular.spans.analyzed", Some("full")),
    ] {
        assert!(
            last_value(&log, name, attribute).is_some(),
            "{name} ({attribute:?}) missing from the metrics the collector received ({})",
            collector.process().log_path().display()
        );
    }
    drop(demo);
    collector.stop();
}

#[test]
fn an_endpoint_without_metrics_is_reported_once_and_spans_still_arrive() {
    let jaeger = Jaeger::shared().expect("start Jaeger");
    let mut demo = demo("health-metrics-jaeger", &jaeger.otlp_grpc_endpoint())
        .start()
        .expect("start demo-service");
    let trace_id = demo
        .get(SLOW)
        .and_then(|r| r.trace_id())
        .expect("GET /messages");
    jaeger
        .fetch_trace(&trace_id, WAIT, |t| !t.spans.is_empty())
        .expect("the violating trace in Jaeger");
    // Several metric intervals: one warning, no stream of export errors.
    std::thread::sleep(Duration::from_millis(
        5 * METRIC_INTERVAL_MS.parse::<u64>().unwrap(),
    ));
    demo.get(SLOW).expect("GET /messages");
    std::thread::sleep(Duration::from_secs(1));
    let log = demo.process().log();
    let said = log.matches("takes no metrics").count();
    let errors = log
        .lines()
        .filter(|l| l.contains("ERROR") && l.to_lowercase().contains("metric"))
        .count();
    assert_eq!(
        (said, errors),
        (1, 0),
        "expected one warning and no metric export errors; log: {}",
        demo.process().log_path().display()
    );
}

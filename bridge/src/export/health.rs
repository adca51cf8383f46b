//! The library's health as OpenTelemetry metrics: what the shutdown line counts (spans
//! analyzed, traces exported, dropped and lost by reason, spans skipped, records overwritten,
//! the analyzer's CPU time), exported over OTLP to the same endpoint as the spans, so an SRE
//! can alert on Granular losing data rather than read it in a log at exit.
//!
//! ```text
//! Stats (atomics, written by the request path and the analyzer)
//!   FlightRecorder::counters (per ring, read under the ring list's lock)
//!     └─> observable counters, read only when the periodic reader collects
//!         (OTEL_METRIC_EXPORT_INTERVAL, default 60 s) ─> OTLP metric exporter
//! ```
//!
//! Nothing is counted twice and nothing runs on the request path: the instruments are
//! callbacks over counters that exist anyway. An endpoint that takes no metrics (Jaeger
//! accepts only traces) answers the first export with "unimplemented" or HTTP 404: the exporter
//! then says so once and stops exporting, rather than logging an error every interval.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Meter, MeterProvider as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider, Temporality};

use crate::config::SampleMode;
use crate::recorder::FlightRecorder;
use crate::slo::Stats;

/// The instrumentation scope of Granular's own metrics.
pub(crate) const METER_NAME: &str = "granular";

/// Builds a meter provider that exports Granular's health counters through `exporter`
/// (periodically, at `OTEL_METRIC_EXPORT_INTERVAL`), with `resource` (the service's).
pub(crate) fn start<E: PushMetricExporter>(
    stats: Arc<Stats>,
    mode: SampleMode,
    resource: Resource,
    exporter: E,
) -> SdkMeterProvider {
    let reader = PeriodicReader::builder(StopWhenRefused::new(exporter)).build();
    let provider = SdkMeterProvider::builder()
        .with_reader(reader)
        .with_resource(resource)
        .build();
    register(&provider.meter(METER_NAME), stats, mode);
    provider
}

/// Shuts `provider` down, waiting at most `timeout`: opentelemetry_sdk 0.33's periodic reader
/// ignores the timeout it is given and waits up to 5 s for its final export, so with a backend
/// that never answers the application's exit would wait that long. The shutdown runs on its own
/// thread; past `timeout` it is left to finish, or to end with the process.
pub(crate) fn shut_down_within(provider: &SdkMeterProvider, timeout: Duration) {
    let (done, finished) = std::sync::mpsc::sync_channel(1);
    let provider = provider.clone();
    let spawned = std::thread::Builder::new()
        .name("granular-metrics-shutdown".into())
        .spawn(move || {
            let _ = provider.shutdown_with_timeout(timeout);
            let _ = done.send(());
        });
    if spawned.is_ok() {
        let _ = finished.recv_timeout(timeout);
    }
}

/// A data point: its value and at most one attribute.
type Point = (u64, Option<(&'static str, &'static str)>);

/// One counter over [`Stats`]: what it is called, its unit and meaning, and its points.
struct Counter {
    name: &'static str,
    unit: &'static str,
    description: &'static str,
    points: fn(&Stats, SampleMode) -> Vec<Point>,
}

fn read(n: &AtomicU64) -> u64 {
    n.load(Ordering::Relaxed)
}

/// The counters over [`Stats`]. For the traces a `violations` decision chose for export,
/// `granular.traces.chosen` = `granular.traces.exported` + the sum of
/// `granular.traces.incomplete` over its reasons.
const COUNTERS: &[Counter] = &[
    Counter {
        name: "granular.spans.analyzed",
        unit: "{span}",
        description: "violating (or baseline) spans given a breakdown, by analysis (full, or light under load)",
        points: |s, _| {
            vec![
                (read(&s.enriched), Some(("analysis", "full"))),
                (read(&s.light_analyzed), Some(("analysis", "light"))),
            ]
        },
    },
    Counter {
        name: "granular.spans.skipped",
        unit: "{span}",
        description: "violating spans exported without a breakdown, by reason",
        points: |s, mode| {
            let mut v = vec![
                (read(&s.skipped_rate_limit), Some(("reason", "rate_limit"))),
                (read(&s.analysis_errors), Some(("reason", "analysis_error"))),
            ];
            // With `violations`, a full queue turns whole traces away: counted below.
            if mode == SampleMode::All {
                v.push((read(&s.skipped_queue_full), Some(("reason", "queue_full"))));
            }
            v
        },
    },
    Counter {
        name: "granular.spans.export_failed",
        unit: "{span}",
        description: "spans in batches the exporter failed to deliver (endpoint down, refusing or too slow)",
        points: |s, _| vec![(read(&s.export_failed_spans), None)],
    },
    Counter {
        name: "granular.spans.streamed",
        unit: "{span}",
        description: "spans GRANULAR_ALL_FROM=recording exported from the recording, and spans it could not (no local root read)",
        points: |s, _| {
            vec![
                (read(&s.streamed_spans), Some(("outcome", "exported"))),
                (
                    read(&s.stream_unexported_spans),
                    Some(("outcome", "unexported")),
                ),
            ]
        },
    },
    Counter {
        name: "granular.spans.unfinished",
        unit: "{span}",
        description: "spans still open when their trace was exported (not exported)",
        points: |s, _| vec![(read(&s.unfinished_spans), None)],
    },
    Counter {
        name: "granular.traces.chosen",
        unit: "{trace}",
        description: "traces a GRANULAR_SAMPLE=violations decision chose for export",
        points: |s, _| vec![(read(&s.chosen_traces), None)],
    },
    Counter {
        name: "granular.traces.exported",
        unit: "{trace}",
        description: "chosen traces exported whole",
        points: |s, _| vec![(read(&s.exported_traces), None)],
    },
    Counter {
        name: "granular.traces.incomplete",
        unit: "{trace}",
        description: "chosen traces exported without some of their spans, or not at all, by reason",
        points: |s, mode| {
            let mut v = vec![
                (
                    read(&s.partial_traces),
                    Some(("reason", "partly_overwritten")),
                ),
                (read(&s.lost_traces), Some(("reason", "overwritten"))),
                (read(&s.unfinished_traces), Some(("reason", "unfinished"))),
                (read(&s.not_found_traces), Some(("reason", "not_found"))),
                (read(&s.rebuild_errors), Some(("reason", "rebuild_error"))),
            ];
            if mode == SampleMode::Violations {
                v.push((read(&s.skipped_queue_full), Some(("reason", "queue_full"))));
            }
            v
        },
    },
    Counter {
        name: "granular.traces.dropped",
        unit: "{trace}",
        description: "healthy traces a GRANULAR_SAMPLE=violations decision did not export (by design)",
        points: |s, _| vec![(read(&s.dropped_traces), None)],
    },
    Counter {
        name: "granular.artifacts.failed",
        unit: "{artifact}",
        description: "timelines the artifact store failed to keep",
        points: |s, _| vec![(read(&s.artifact_errors), None)],
    },
];

/// The counters over [`Stats`], the recorder's loss counters and the analyzer's CPU time.
fn register(meter: &Meter, stats: Arc<Stats>, mode: SampleMode) {
    for c in COUNTERS {
        let s = stats.clone();
        meter
            .u64_observable_counter(c.name)
            .with_unit(c.unit)
            .with_description(c.description)
            .with_callback(move |o| {
                for (value, attribute) in (c.points)(&s, mode) {
                    match attribute {
                        Some((k, v)) => o.observe(value, &[KeyValue::new(k, v)]),
                        None => o.observe(value, &[]),
                    }
                }
            })
            .build();
    }
    meter
        .f64_observable_counter("granular.analyzer.cpu_time")
        .with_unit("s")
        .with_description("CPU time the analyzer thread spent decoding, analyzing and exporting")
        .with_callback(move |o| {
            // Absent, not 0, where schedstat cannot be read.
            let ns = read(&stats.analyzer_cpu_ns);
            if ns > 0 {
                o.observe(ns as f64 / 1e9, &[]);
            }
        })
        .build();
    meter
        .u64_observable_counter("granular.recorder.records.overwritten")
        .with_unit("{record}")
        .with_description("records the flight recorder's rings overwrote (the oldest, as designed)")
        .with_callback(|o| {
            if let Some(r) = FlightRecorder::get() {
                o.observe(r.counters().overwritten, &[]);
            }
        })
        .build();
    meter
        .u64_observable_counter("granular.perf.records.lost")
        .with_unit("{record}")
        .with_description(
            "context-switch records the kernel dropped (perf buffer full): off-CPU time missing",
        )
        .with_callback(|o| {
            // Absent, not 0, where the perf source is off.
            if let Some(n) = crate::capture::perf::lost_records() {
                o.observe(n, &[]);
            }
        })
        .build();
    meter
        .u64_observable_counter("granular.recorder.records.dropped")
        .with_unit("{record}")
        .with_description("records not written because their thread had no ring, by kind")
        .with_callback(|o| {
            if let Some(r) = FlightRecorder::get() {
                for (kind, n) in r.counters().dropped {
                    o.observe(n, &[KeyValue::new("kind", format!("{kind:?}"))]);
                }
            }
        })
        .build();
}

/// A metric exporter that stops for good, saying so once, when the endpoint answers that it
/// takes no metrics; any other failure is returned (the SDK logs it) and retried next time.
#[derive(Debug)]
struct StopWhenRefused<E> {
    inner: E,
    refused: AtomicBool,
}

impl<E> StopWhenRefused<E> {
    fn new(inner: E) -> Self {
        StopWhenRefused {
            inner,
            refused: AtomicBool::new(false),
        }
    }
}

/// Whether an export error says the endpoint has no metrics service (gRPC `Unimplemented`,
/// HTTP 404 or 405), as opposed to a failure worth retrying.
fn takes_no_metrics(error: &str) -> bool {
    let e = error.to_ascii_lowercase();
    e.contains("unimplemented") || e.contains("status code: 404") || e.contains("status code: 405")
}

impl<E: PushMetricExporter> PushMetricExporter for StopWhenRefused<E> {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        if self.refused.load(Ordering::Relaxed) {
            return Ok(());
        }
        let result = self.inner.export(metrics).await;
        if let Err(e) = &result {
            let text = e.to_string();
            if takes_no_metrics(&text) && !self.refused.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    "granular: the OTLP endpoint takes no metrics ({text}); Granular's health \
                     metrics are not exported (send them to a Collector with a metrics pipeline, \
                     or set GRANULAR_METRICS=off to not build them)"
                );
                return Ok(());
            }
        }
        result
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> Temporality {
        self.inner.temporality()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_sdk::metrics::InMemoryMetricExporter;
    use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};

    /// (metric name, attributes, value) of every data point exported.
    fn points(exporter: &InMemoryMetricExporter) -> Vec<(String, Vec<String>, f64)> {
        let mut out = Vec::new();
        for rm in exporter.get_finished_metrics().unwrap() {
            for sm in rm.scope_metrics() {
                for m in sm.metrics() {
                    let mut push = |attrs: Vec<String>, v: f64| {
                        out.push((m.name().to_string(), attrs, v));
                    };
                    match m.data() {
                        AggregatedMetrics::U64(MetricData::Sum(sum)) => {
                            for p in sum.data_points() {
                                let attrs = p
                                    .attributes()
                                    .map(|kv| format!("{}={}", kv.key, kv.value))
                                    .collect();
                                push(attrs, p.value() as f64);
                            }
                        }
                        AggregatedMetrics::F64(MetricData::Sum(sum)) => {
                            for p in sum.data_points() {
                                let attrs = p
                                    .attributes()
                                    .map(|kv| format!("{}={}", kv.key, kv.value))
                                    .collect();
                                push(attrs, p.value());
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
        out
    }

    #[test]
    fn the_shutdown_lines_counters_are_exported_by_reason() {
        let stats = Arc::new(Stats::default());
        stats.enriched.store(3, Ordering::Relaxed);
        stats.skipped_queue_full.store(2, Ordering::Relaxed);
        stats.exported_traces.store(5, Ordering::Relaxed);
        stats.export_failed_spans.store(7, Ordering::Relaxed);
        stats
            .analyzer_cpu_ns
            .store(1_500_000_000, Ordering::Relaxed);
        let exporter = InMemoryMetricExporter::default();
        let provider = start(
            stats,
            SampleMode::Violations,
            Resource::builder().build(),
            exporter.clone(),
        );
        provider.force_flush().unwrap();
        let got = points(&exporter);
        let value = |name: &str, attr: Option<&str>| {
            got.iter()
                .find(|(n, a, _)| n == name && attr.is_none_or(|x| a.iter().any(|s| s == x)))
                .map(|p| p.2)
        };
        assert_eq!(
            value("granular.spans.analyzed", Some("analysis=full")),
            Some(3.0)
        );
        assert_eq!(
            value("granular.spans.analyzed", Some("analysis=light")),
            Some(0.0)
        );
        assert_eq!(
            value("granular.traces.incomplete", Some("reason=queue_full")),
            Some(2.0),
            "with violations, a full queue turns traces away"
        );
        assert_eq!(
            value("granular.spans.skipped", Some("reason=queue_full")),
            None
        );
        assert_eq!(value("granular.traces.exported", None), Some(5.0));
        assert_eq!(value("granular.spans.export_failed", None), Some(7.0));
        assert_eq!(value("granular.analyzer.cpu_time", None), Some(1.5));
        let _ = provider.shutdown();
    }

    #[test]
    fn an_endpoint_without_metrics_is_told_apart_from_a_failure() {
        assert!(takes_no_metrics(
            "Metrics export failed: status: Unimplemented, message: \"unknown service\""
        ));
        assert!(takes_no_metrics("HTTP export failed with status code: 404"));
        assert!(!takes_no_metrics(
            "HTTP export failed: network error (http://127.0.0.1:14048)"
        ));
        assert!(!takes_no_metrics("transport error: connection refused"));
    }
}

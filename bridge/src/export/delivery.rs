//! Spans the exporter failed to deliver, counted: the OpenTelemetry SDK's batch processor logs
//! an export error and drops the batch (the endpoint down, refusing, or answering past
//! `OTEL_EXPORTER_OTLP_TIMEOUT`), and nothing else in the process counts what was lost.
//! [`CountingExporter`] wraps the span exporter [`init`](fn@crate::init) builds and adds the
//! size of every failed batch to [`Stats::export_failed_spans`], which the shutdown line and
//! the `granular.spans.export_failed` health metric report.
//!
//! It runs on the batch processor's thread, never on the request path, and changes nothing
//! else: the batch, the result and every other call pass through.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

use crate::slo::Stats;

/// A span exporter that counts the spans of the batches `inner` failed to export.
#[derive(Debug)]
pub(crate) struct CountingExporter<E> {
    inner: E,
    stats: Arc<Stats>,
}

impl<E> CountingExporter<E> {
    pub(crate) fn new(inner: E, stats: Arc<Stats>) -> Self {
        Self { inner, stats }
    }
}

impl<E: SpanExporter> SpanExporter for CountingExporter<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = batch.len() as u64;
        let result = self.inner.export(batch).await;
        if result.is_err() {
            self.stats
                .export_failed_spans
                .fetch_add(spans, Ordering::Relaxed);
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_sdk::error::OTelSdkError;
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SpanData};
    use std::sync::atomic::{AtomicBool, Ordering};

    /// Fails every export while `down` is set.
    #[derive(Debug, Default)]
    struct Flaky {
        down: Arc<AtomicBool>,
        delivered: InMemorySpanExporter,
    }

    impl SpanExporter for Flaky {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            if self.down.load(Ordering::Relaxed) {
                Err(OTelSdkError::InternalFailure("connection refused".into()))
            } else {
                self.delivered.export(batch).await
            }
        }
    }

    fn spans(n: usize) -> Vec<SpanData> {
        use opentelemetry::trace::{SpanContext, SpanKind, Status};
        use std::time::SystemTime;
        (0..n)
            .map(|_| SpanData {
                span_context: SpanContext::empty_context(),
                parent_span_id: opentelemetry::trace::SpanId::INVALID,
                parent_span_is_remote: false,
                span_kind: SpanKind::Internal,
                name: "s".into(),
                start_time: SystemTime::UNIX_EPOCH,
                end_time: SystemTime::UNIX_EPOCH,
                attributes: Vec::new(),
                dropped_attributes_count: 0,
                events: Default::default(),
                links: Default::default(),
                status: Status::Unset,
                instrumentation_scope: Default::default(),
            })
            .collect()
    }

    /// Export failures were logged by the SDK and counted nowhere: an endpoint that was down
    /// for a minute left no figure of what it cost.
    #[test]
    fn counts_the_spans_of_failed_batches_only() {
        let stats = Arc::new(Stats::default());
        let flaky = Flaky::default();
        let (down, delivered) = (flaky.down.clone(), flaky.delivered.clone());
        let exporter = CountingExporter::new(flaky, stats.clone());
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let run = |n| rt.block_on(exporter.export(spans(n)));
        assert!(run(3).is_ok());
        down.store(true, Ordering::Relaxed);
        assert!(run(5).is_err());
        assert!(run(2).is_err());
        down.store(false, Ordering::Relaxed);
        assert!(run(4).is_ok());
        assert_eq!(stats.export_failed_spans.load(Ordering::Relaxed), 7);
        assert_eq!(delivered.get_finished_spans().expect("spans").len(), 7);
    }
}

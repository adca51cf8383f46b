//! What became of the spans handed to the exporting processor, counted: the OpenTelemetry
//! SDK's batch processor logs an export error and drops the batch (the endpoint down,
//! refusing, or answering past `OTEL_EXPORTER_OTLP_TIMEOUT`), drops spans its full queue
//! turns away (one warning, at shutdown), and leaves behind what is still queued or in flight
//! when its shutdown times out; nothing else in the process counted any of it.
//!
//! ```text
//! GranularProcessor ─> CountedQueue (export_queued_spans) ─> BatchSpanProcessor
//!     ─> CountingExporter (export_delivered_spans | export_failed_spans) ─> OTLP
//! ```
//!
//! [`init`](fn@crate::init) wraps its batch processor and its exporter so. The spans queued
//! but neither delivered nor failed are the ones the queue dropped or that were still queued
//! or in flight: the shutdown line prints them as `export_undelivered_spans`. Both wrappers
//! pass every call, span and result through unchanged; the queue's count is one relaxed
//! atomic add on the request path, the exporter's runs on the batch processor's thread.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use opentelemetry::Context;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};

use crate::slo::Stats;

/// A span processor that counts the spans handed to `inner` (the exporting batch processor)
/// in [`Stats::export_queued_spans`].
#[derive(Debug)]
pub(crate) struct CountedQueue<P> {
    inner: P,
    stats: Arc<Stats>,
}

impl<P> CountedQueue<P> {
    pub(crate) fn new(inner: P, stats: Arc<Stats>) -> Self {
        Self { inner, stats }
    }
}

impl<P: SpanProcessor> SpanProcessor for CountedQueue<P> {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        self.stats
            .export_queued_spans
            .fetch_add(1, Ordering::Relaxed);
        self.inner.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// A span exporter that counts the spans of the batches `inner` delivered and failed to
/// deliver.
#[derive(Debug)]
pub(crate) struct CountingExporter<E> {
    inner: E,
    stats: Arc<Stats>,
    /// Whether the thread exporting makes itself a background thread (`crate::background`)
    /// at its first export.
    background: bool,
}

impl<E> CountingExporter<E> {
    pub(crate) fn new(inner: E, stats: Arc<Stats>) -> Self {
        Self {
            inner,
            stats,
            background: false,
        }
    }

    /// Exports from a background thread (pausing, `crate::background`), for an exporter whose
    /// share of the spans is small (`GRANULAR_SAMPLE=violations`), so that its batches' encoding does
    /// not hold a core the application needs.
    pub(crate) fn in_background(mut self, background: bool) -> Self {
        self.background = background;
        self
    }
}

impl<E: SpanExporter> SpanExporter for CountingExporter<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        if self.background {
            crate::background::become_background();
        }
        let spans = batch.len() as u64;
        let result = self.inner.export(batch).await;
        let counter = match result {
            Ok(()) => &self.stats.export_delivered_spans,
            Err(_) => &self.stats.export_failed_spans,
        };
        counter.fetch_add(spans, Ordering::Relaxed);
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

    /// Spans the SDK's queue still held at exit were counted nowhere: with a backend that
    /// stalls, most of what a service sent in its last seconds vanished without a figure.
    #[test]
    fn spans_handed_on_and_never_exported_are_told_apart() {
        let stats = Arc::new(Stats::default());
        let exporter = InMemorySpanExporter::default();
        let queue = CountedQueue::new(
            opentelemetry_sdk::trace::SimpleSpanProcessor::new(exporter.clone()),
            stats.clone(),
        );
        for span in spans(3) {
            queue.on_end(span);
        }
        assert_eq!(stats.export_queued_spans.load(Ordering::Relaxed), 3);
        // None went through a CountingExporter: all three are undelivered by its count.
        assert_eq!(stats.export_undelivered_spans(), 3);
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
        assert_eq!(stats.export_delivered_spans.load(Ordering::Relaxed), 7);
        assert_eq!(delivered.get_finished_spans().expect("spans").len(), 7);
    }
}

package granularprocessor

import (
	"errors"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/granular-dev/granular/collector-plugin/internal/plugintest"
)

// TestMetadataTelemetry drives the processor to every outcome, eviction
// reason, late-span decision and artifact result, and holds the metrics it
// emitted to metadata.yaml: names, descriptions, units, kinds, attributes
// and every value of their enums.
func TestMetadataTelemetry(t *testing.T) {
	late := func(trace byte) spec { return spec{service: "api", name: "late", trace: trace, span: 9, dur: ms} }
	scenarios := []struct {
		name   string
		store  bool
		mutate func(*Config)
		drive  func(h *harness, store *fakeStore)
	}{
		{"store, healthy stripped", true, nil, func(h *harness, store *fakeStore) {
			h.consume(violatingTrace(1))                                  // violated
			h.consumeLogs(artifactLog(1, 1, "kept", []byte("x")))         // stored
			h.consume(healthyTrace(2))                                    // healthy_stripped, stripped_*
			h.consumeLogs(artifactLog(2, 1, "healthy", []byte("x")))      // dropped
			h.consumeLogs(artifactLog(3, 1, "no-spans", []byte("x")))     // no_spans
			h.consumeLogs(noTraceID(artifactLog(4, 1, "x", []byte("x")))) // no_trace_id
			store.maxBytes = 4
			h.consumeLogs(artifactLog(1, 3, "big", []byte("12345"))) // too_large
			h.advance(5 * time.Second)
			h.consume(makeTraces(late(1), late(2))) // late keep, late strip
			store.err = errors.New("disk full")
			h.consumeLogs(artifactLog(1, 2, "late", []byte("x"))) // store_failed
		}},
		{"no store, healthy dropped", false, func(c *Config) { c.Healthy = HealthyDrop }, func(h *harness, _ *fakeStore) {
			h.consume(violatingTrace(1))
			h.consumeLogs(artifactLog(1, 1, "a", []byte("x"))) // forwarded
			h.consume(healthyTrace(2))                         // healthy_dropped
			h.advance(5 * time.Second)
			h.consume(makeTraces(late(2))) // late drop
		}},
		{"sampled out", false, func(c *Config) { c.Healthy, c.HealthySamplePercent = HealthySample, 0 }, func(h *harness, _ *fakeStore) {
			h.consume(healthyTrace(1))
			h.advance(5 * time.Second)
		}},
		{"max_traces", false, func(c *Config) { c.MaxTraces = 1 }, func(h *harness, _ *fakeStore) {
			h.consume(healthyTrace(1))
			h.consume(healthyTrace(2))
		}},
		{"max_spans_per_trace", false, func(c *Config) { c.MaxSpansPerTrace = 2 }, func(h *harness, _ *fakeStore) {
			h.consume(healthyTrace(1))
		}},
		{"max_buffered_spans", false, func(c *Config) { c.MaxBufferedSpans = 3 }, func(h *harness, _ *fakeStore) {
			h.consume(healthyTrace(1))
			h.consume(healthyTrace(2))
		}},
	}
	var runs [][]metricdata.Metrics
	for _, sc := range scenarios {
		var h *harness
		var store *fakeStore
		if sc.store {
			h, store = newHarnessWithStore(t, sc.mutate)
		} else {
			h = newHarness(t, sc.mutate, nil)
		}
		sc.drive(h, store)
		runs = append(runs, h.metrics())
	}
	plugintest.LoadMetadata(t).CheckTelemetry(t, runs...)
}

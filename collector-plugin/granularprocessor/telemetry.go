package granularprocessor // import "github.com/granular-dev/granular/collector-plugin/granularprocessor"

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

const scopeName = "github.com/granular-dev/granular/collector-plugin/granularprocessor"

// Metric names follow the Collector convention otelcol_processor_<type>_<name>;
// the Collector serves them on its Prometheus endpoint (service.telemetry).
const (
	metricDecisions          = "otelcol_processor_granular_decisions"
	metricEvicted            = "otelcol_processor_granular_traces_evicted"
	metricLateSpans          = "otelcol_processor_granular_late_spans"
	metricStrippedBytes      = "otelcol_processor_granular_stripped_bytes"
	metricStrippedAttributes = "otelcol_processor_granular_stripped_attributes"
	metricStrippedEvents     = "otelcol_processor_granular_stripped_events"
	metricStrippedSpans      = "otelcol_processor_granular_stripped_spans"
	metricArtifacts          = "otelcol_processor_granular_artifacts"
	metricBufferedTraces     = "otelcol_processor_granular_buffered_traces"
	metricBufferedSpans      = "otelcol_processor_granular_buffered_spans"
)

// Decision outcomes as recorded in the "outcome" attribute.
const (
	outcomeViolated    = "violated"
	outcomeStripped    = "healthy_stripped"
	outcomeSampledOut  = "healthy_sampled_out"
	outcomeDropped     = "healthy_dropped"
	outcomeNoSpans     = "no_spans"
	reasonMaxTraces    = "max_traces"
	reasonMaxSpans     = "max_spans_per_trace"
	reasonMaxBuffered  = "max_buffered_spans"
	artifactStored     = "stored"
	artifactForwarded  = "forwarded"
	artifactDropped    = "dropped"
	artifactFailed     = "store_failed"
	artifactNoTraceID  = "no_trace_id"
	artifactTooLarge   = "too_large"
	attrOutcome        = "outcome"
	attrReason         = "reason"
	attrDecision       = "decision"
	attrArtifactResult = "result"
)

type telemetry struct {
	decisions, evicted, lateSpans                           metric.Int64Counter
	strippedBytes, strippedAttrs, strippedEvents, strippedS metric.Int64Counter
	artifacts                                               metric.Int64Counter
	registration                                            metric.Registration
}

func newTelemetry(mp metric.MeterProvider, c *core) (*telemetry, error) {
	m := mp.Meter(scopeName)
	t := &telemetry{}
	var errs, err error
	counter := func(name, unit, desc string) metric.Int64Counter {
		var ctr metric.Int64Counter
		ctr, err = m.Int64Counter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = errors.Join(errs, err)
		return ctr
	}
	t.decisions = counter(metricDecisions, "{traces}", "Traces judged, by outcome.")
	t.evicted = counter(metricEvicted, "{traces}", "Traces judged before decision_wait because a buffer bound was reached, by reason.")
	t.lateSpans = counter(metricLateSpans, "{spans}", "Spans arriving after their trace was decided, by decision.")
	t.strippedBytes = counter(metricStrippedBytes, "By", "Encoded bytes removed from healthy traces by stripping Granular detail.")
	t.strippedAttrs = counter(metricStrippedAttributes, "{attributes}", "granular.* attributes removed from healthy traces.")
	t.strippedEvents = counter(metricStrippedEvents, "{events}", "granular.* span events removed from healthy traces.")
	t.strippedS = counter(metricStrippedSpans, "{spans}", "Synthetic Granular spans removed from healthy traces.")
	t.artifacts = counter(metricArtifacts, "{records}", "granular.artifact log records, by result.")
	bufTraces, err := m.Int64ObservableGauge(metricBufferedTraces, metric.WithUnit("{traces}"), metric.WithDescription("Traces waiting for a decision."))
	errs = errors.Join(errs, err)
	bufSpans, err := m.Int64ObservableGauge(metricBufferedSpans, metric.WithUnit("{spans}"), metric.WithDescription("Spans and artifact records waiting for a decision."))
	errs = errors.Join(errs, err)
	if errs != nil {
		return nil, errs
	}
	t.registration, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		traces, spans := c.bufferedCounts()
		o.ObserveInt64(bufTraces, int64(traces))
		o.ObserveInt64(bufSpans, int64(spans))
		return nil
	}, bufTraces, bufSpans)
	if err != nil {
		return nil, err
	}
	return t, nil
}

func (t *telemetry) add(ctr metric.Int64Counter, n int64, key, value string) {
	if n == 0 {
		return
	}
	ctr.Add(context.Background(), n, metric.WithAttributes(attribute.String(key, value)))
}

func (t *telemetry) addPlain(ctr metric.Int64Counter, n int64) {
	if n == 0 {
		return
	}
	ctr.Add(context.Background(), n)
}

func (t *telemetry) shutdown() {
	if t.registration != nil {
		_ = t.registration.Unregister()
	}
}

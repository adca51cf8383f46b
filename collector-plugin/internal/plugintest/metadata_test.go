package plugintest

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"gopkg.in/yaml.v3"
)

// recorder collects the failures a check reports instead of failing the test.
type recorder struct {
	testing.TB
	failures []string
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.failures = append(r.failures, fmt.Sprintf(format, args...))
}

const telemetryYAML = `
attributes:
  outcome:
    description: d
    type: string
    enum: [kept, dropped]
telemetry:
  metrics:
    processor_x_decisions:
      enabled: true
      stability: development
      description: Decisions, by outcome.
      unit: "{traces}"
      sum:
        value_type: int
        monotonic: true
      attributes: [outcome]
    processor_x_buffered:
      enabled: true
      stability: development
      description: Buffered traces.
      unit: "{traces}"
      gauge:
        value_type: int
        async: true
`

func decisions(description string, outcomes ...string) metricdata.Metrics {
	sum := metricdata.Sum[int64]{IsMonotonic: true}
	for _, o := range outcomes {
		sum.DataPoints = append(sum.DataPoints, metricdata.DataPoint[int64]{Attributes: attribute.NewSet(attribute.String("outcome", o)), Value: 1})
	}
	return metricdata.Metrics{Name: "otelcol_processor_x_decisions", Description: description, Unit: "{traces}", Data: sum}
}

var buffered = metricdata.Metrics{
	Name: "otelcol_processor_x_buffered", Description: "Buffered traces.", Unit: "{traces}",
	Data: metricdata.Gauge[int64]{DataPoints: []metricdata.DataPoint[int64]{{Value: 3}}},
}

// TestCheckTelemetryReportsEachDifference pins that the check behind every
// component's TestMetadataTelemetry fails on what it claims to check.
func TestCheckTelemetryReportsEachDifference(t *testing.T) {
	var md Metadata
	if err := yaml.Unmarshal([]byte(telemetryYAML), &md); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		runs [][]metricdata.Metrics
		want int // failures reported
	}{
		{"in step, values over two runs", [][]metricdata.Metrics{{decisions("Decisions, by outcome.", "kept"), buffered}, {decisions("Decisions, by outcome.", "dropped")}}, 0},
		{"a metric not emitted", [][]metricdata.Metrics{{decisions("Decisions, by outcome.", "kept", "dropped")}}, 1},
		{"a metric not declared", [][]metricdata.Metrics{{decisions("Decisions, by outcome.", "kept", "dropped"), buffered, {Name: "otelcol_processor_x_new", Data: metricdata.Sum[int64]{}}}}, 1},
		{"another description", [][]metricdata.Metrics{{decisions("Decisions.", "kept", "dropped"), buffered}}, 1},
		{"an enum value never emitted", [][]metricdata.Metrics{{decisions("Decisions, by outcome.", "kept"), buffered}}, 1},
		{"a value outside the enum", [][]metricdata.Metrics{{decisions("Decisions, by outcome.", "kept", "dropped", "lost"), buffered}}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &recorder{TB: t}
			md.CheckTelemetry(r, tc.runs...)
			assert.Len(t, r.failures, tc.want, "%q", r.failures)
		})
	}
}

package plugintest

import (
	"bytes"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"gopkg.in/yaml.v3"
)

// Metadata is a component's metadata.yaml. LoadMetadata refuses keys that
// are not here, so a key added to the file is added here too, and to the
// checks when it says something about the code.
type Metadata struct {
	Type   string `yaml:"type"`
	Status struct {
		Class string `yaml:"class"`
		// Stability maps a level (alpha, beta, ...) to the signals at it.
		Stability     map[string][]string `yaml:"stability"`
		Distributions []string            `yaml:"distributions"`
		Codeowners    struct {
			Active []string `yaml:"active"`
		} `yaml:"codeowners"`
	} `yaml:"status"`
	Tests struct {
		// Config is the configuration the lifecycle tests create the
		// component with, on top of its defaults.
		Config map[string]any `yaml:"config"`
	} `yaml:"tests"`
	Attributes map[string]Attribute `yaml:"attributes"`
	Telemetry  struct {
		Metrics map[string]Metric `yaml:"metrics"`
	} `yaml:"telemetry"`
}

// Attribute is an attribute the component's own metrics carry.
type Attribute struct {
	Description string   `yaml:"description"`
	Type        string   `yaml:"type"`
	Enum        []string `yaml:"enum"`
}

// Metric is one of the component's own metrics. Its name in metadata.yaml
// lacks the "otelcol_" prefix the Collector's metrics carry.
type Metric struct {
	Enabled     bool   `yaml:"enabled"`
	Description string `yaml:"description"`
	Unit        string `yaml:"unit"`
	Stability   string `yaml:"stability"`
	Sum         *struct {
		ValueType string `yaml:"value_type"`
		Monotonic bool   `yaml:"monotonic"`
	} `yaml:"sum"`
	Gauge *struct {
		ValueType string `yaml:"value_type"`
		Async     bool   `yaml:"async"`
	} `yaml:"gauge"`
	Attributes []string `yaml:"attributes"`
}

// LoadMetadata reads metadata.yaml of the package under test.
func LoadMetadata(t testing.TB) Metadata {
	t.Helper()
	data, err := os.ReadFile("metadata.yaml")
	require.NoError(t, err)
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var md Metadata
	require.NoError(t, dec.Decode(&md), "metadata.yaml")
	return md
}

// TestsConfig returns the factory's default configuration with tests.config
// unmarshalled onto it, as mdatagen's generated lifecycle tests create it.
func (md Metadata) TestsConfig(t testing.TB, f component.Factory) component.Config {
	t.Helper()
	cfg := f.CreateDefaultConfig()
	require.NoError(t, confmap.NewFromStringMap(md.Tests.Config).Unmarshal(cfg))
	return cfg
}

// CheckFactory checks what every factory of this module must hold against
// the package's metadata.yaml: the type, the class and, for every signal
// the component's kind has, the stability the factory reports (signals maps
// each of them, "traces", "metrics", "logs" or "extension", to the factory's
// level; a signal metadata.yaml does not list must be undefined); and that
// the default configuration passes CheckConfigStruct and validates.
func CheckFactory(t testing.TB, f component.Factory, class string, signals map[string]component.StabilityLevel) {
	t.Helper()
	md := LoadMetadata(t)
	assert.Equal(t, md.Type, f.Type().String(), "metadata.yaml type")
	assert.Equal(t, class, md.Status.Class, "metadata.yaml status.class")
	declared := map[string]component.StabilityLevel{}
	for text, names := range md.Status.Stability {
		var level component.StabilityLevel
		require.NoError(t, level.UnmarshalText([]byte(text)), "metadata.yaml status.stability")
		for _, name := range names {
			require.Contains(t, signals, name, "metadata.yaml lists a signal a %s does not have", class)
			declared[name] = level
		}
	}
	for name, level := range signals {
		assert.Equal(t, declared[name].String(), level.String(), "stability of %s: metadata.yaml against the factory", name)
	}
	cfg := f.CreateDefaultConfig()
	assert.NoError(t, componenttest.CheckConfigStruct(cfg))
	assert.NoError(t, confmap.Validate(cfg), "the default configuration")
}

// CheckTelemetry checks telemetry.metrics against the metrics a component
// emitted, gathered from one or more runs: the same names, and for each its
// description, unit, kind (int sum or int gauge), monotonicity, the
// attribute keys its points carry and, for attributes with an enum, the
// values seen, which must be exactly the enum's (so the runs must produce
// every value once).
func (md Metadata) CheckTelemetry(t testing.TB, runs ...[]metricdata.Metrics) {
	t.Helper()
	emitted := map[string]metricdata.Metrics{}
	values := map[string]map[string]bool{} // attribute key -> values seen
	for _, run := range runs {
		for _, m := range run {
			emitted[m.Name] = m
			for _, set := range pointAttributes(t, m) {
				keys := []string{}
				for _, kv := range set.ToSlice() {
					keys = append(keys, string(kv.Key))
					if values[string(kv.Key)] == nil {
						values[string(kv.Key)] = map[string]bool{}
					}
					values[string(kv.Key)][kv.Value.Emit()] = true
				}
				declared := md.Telemetry.Metrics[yamlName(m.Name)].Attributes
				assert.Subset(t, declared, keys, "%s: attributes emitted but not declared", m.Name)
			}
		}
	}
	var names []string
	for name := range emitted {
		names = append(names, yamlName(name))
	}
	assert.ElementsMatch(t, mapKeys(md.Telemetry.Metrics), names, "metrics in metadata.yaml against metrics emitted")
	for name, want := range md.Telemetry.Metrics {
		got, ok := emitted["otelcol_"+name]
		if !ok {
			continue
		}
		assert.True(t, want.Enabled, "%s: enabled", name)
		assert.Equal(t, want.Description, got.Description, "%s: description", name)
		assert.Equal(t, want.Unit, got.Unit, "%s: unit", name)
		checkKind(t, name, want, got)
		for _, key := range want.Attributes {
			require.Contains(t, md.Attributes, key, "%s: attribute %s is not under attributes:", name, key)
		}
	}
	for key, attr := range md.Attributes {
		if len(attr.Enum) > 0 {
			assert.ElementsMatch(t, attr.Enum, mapKeys(values[key]), "attribute %s: enum against the values emitted", key)
		}
	}
}

func checkKind(t testing.TB, name string, want Metric, got metricdata.Metrics) {
	t.Helper()
	switch data := got.Data.(type) {
	case metricdata.Sum[int64]:
		if assert.NotNil(t, want.Sum, "%s is an int sum", name) {
			assert.Equal(t, "int", want.Sum.ValueType, name)
			assert.Equal(t, want.Sum.Monotonic, data.IsMonotonic, "%s: monotonic", name)
		}
	case metricdata.Gauge[int64]:
		if assert.NotNil(t, want.Gauge, "%s is an int gauge", name) {
			assert.Equal(t, "int", want.Gauge.ValueType, name)
		}
	default:
		t.Errorf("%s: %T is neither an int sum nor an int gauge", name, data)
	}
}

func pointAttributes(t testing.TB, m metricdata.Metrics) []attribute.Set {
	var out []attribute.Set
	switch data := m.Data.(type) {
	case metricdata.Sum[int64]:
		for _, dp := range data.DataPoints {
			out = append(out, dp.Attributes)
		}
	case metricdata.Gauge[int64]:
		for _, dp := range data.DataPoints {
			out = append(out, dp.Attributes)
		}
	default:
		t.Errorf("%s: %T is neither an int sum nor an int gauge", m.Name, data)
	}
	return out
}

// yamlName is a metric's name as metadata.yaml has it, without the
// "otelcol_" prefix; a name lacking the prefix matches nothing there.
func yamlName(name string) string {
	if rest, ok := strings.CutPrefix(name, "otelcol_"); ok {
		return rest
	}
	return "(lacks the otelcol_ prefix) " + name
}

func mapKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

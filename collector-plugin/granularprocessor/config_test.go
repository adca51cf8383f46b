package granularprocessor

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"

	"github.com/granular-dev/granular/collector-plugin/internal/plugintest"
)

func loadConfig(t *testing.T, id component.ID) *Config {
	t.Helper()
	return plugintest.LoadConfig(t, NewFactory(), id).(*Config)
}

// TestConfigGolden loads testdata/config.yaml; the default values themselves
// are pinned to the README by TestDefaultConfigIsTheREADMEs.
func TestConfigGolden(t *testing.T) {
	artifacts := component.MustNewID("granular_artifacts")
	tests := []struct {
		id       component.ID
		expected *Config
	}{
		{id: component.NewID(Type), expected: createDefaultConfig().(*Config)},
		{
			id: component.NewIDWithName(Type, "custom"),
			expected: &Config{
				DecisionWait:         2 * time.Second,
				MaxTraces:            1000,
				MaxSpansPerTrace:     200,
				MaxBufferedSpans:     20000,
				DecisionCacheSize:    5000,
				SLO:                  "GET /messages=100ms,auth.*=20ms,route:/users/*=250ms,*=500ms",
				Services:             map[string]string{"checkout": "charge=1.5s,*=300ms"},
				ErrorsViolate:        false,
				Healthy:              HealthySample,
				HealthySamplePercent: 2.5,
				Artifacts:            ArtifactsConfig{Extension: &artifacts, Forward: true},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.id.String(), func(t *testing.T) {
			cfg := loadConfig(t, tt.id)
			assert.Equal(t, tt.expected, cfg)
			assert.NoError(t, confmap.Validate(cfg))
		})
	}
}

func TestConfigInvalid(t *testing.T) {
	tests := []struct {
		name string
		err  string
	}{
		{"invalid_slo", `slo: SLO rule "auth.*": no '='; ` + ruleForm},
		{"invalid_duration", `slo: SLO rule "*=fast": duration "fast" does not start with a number` + durationTail},
		{"invalid_service", `services[checkout]: SLO rule "*=-5ms": duration "-5ms" is negative` + durationTail},
		{"invalid_limits", "decision_wait must be positive, got 0s\n" +
			"max_traces must be positive, got 0\n" +
			"max_spans_per_trace must be positive, got -1\n" +
			"max_buffered_spans must be positive, got 0\n" +
			"decision_cache_size must not be negative, got -1"},
		{"invalid_healthy", "healthy must be one of strip, sample, drop; got \"keep\"\n" +
			"healthy_sample_percent must be between 0 and 100, got 101"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := loadConfig(t, component.NewIDWithName(Type, tt.name))
			err := confmap.Validate(cfg)
			require.Error(t, err)
			assert.Equal(t, tt.err, err.Error())
		})
	}
}

func TestParseSLORules(t *testing.T) {
	rules, err := parseSLORules(" GET /messages = 100ms , auth.*=20ms,route:/users/*=1.5s,*=250us")
	require.NoError(t, err)
	require.Len(t, rules, 4)
	cases := []struct {
		name, route string
		hasRoute    bool
		want        time.Duration
	}{
		{"GET /messages", "", false, 100 * time.Millisecond},
		{"auth.login", "", false, 20 * time.Millisecond},
		{"GET /users/:id", "/users/{id}", true, 1500 * time.Millisecond},
		{"GET /users/:id", "", false, 250 * time.Microsecond}, // route rules need an http.route
		{"anything", "", false, 250 * time.Microsecond},
	}
	for _, c := range cases {
		r := rules.matching(c.name, c.route, c.hasRoute)
		if assert.NotNil(t, r, c.name) {
			assert.Equal(t, c.want, r.threshold, c.name)
		}
	}
	none, err := parseSLORules("")
	require.NoError(t, err)
	assert.Nil(t, none.matching("x", "", false))
}

// durationTail is what every duration error of a rule ends with.
const durationTail = "; " + durationForm + "; " + ruleForm

// TestParseSLORulesSharedTable pins parseSLORules to the table the Rust library's
// SloRules::parse is tested against (rules_match_the_shared_table): the same rules from the
// same text, and the same error texts. It pins the differences there were: an empty item
// ("a=1ms,,b=2ms", a trailing comma) failed here and was skipped there, and "route:=1ms"
// (an empty route glob) was accepted there.
func TestParseSLORulesSharedTable(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "slo_rules.json"))
	require.NoError(t, err)
	type rule struct {
		Pattern     string `json:"pattern"`
		OnRoute     bool   `json:"on_route"`
		ThresholdNs int64  `json:"threshold_ns"`
	}
	var rows []struct {
		Input string  `json:"input"`
		Rules *[]rule `json:"rules"`
		Error *string `json:"error"`
	}
	require.NoError(t, json.Unmarshal(data, &rows))
	require.GreaterOrEqual(t, len(rows), 30)
	for _, row := range rows {
		parsed, err := parseSLORules(row.Input)
		switch {
		case row.Rules != nil && row.Error == nil:
			if assert.NoError(t, err, "input %q", row.Input) {
				got := []rule{}
				for _, r := range parsed {
					got = append(got, rule{r.pattern, r.onRoute, int64(r.threshold)})
				}
				assert.Equal(t, *row.Rules, got, "input %q", row.Input)
			}
		case row.Error != nil && row.Rules == nil:
			if assert.Error(t, err, "input %q", row.Input) {
				assert.Equal(t, *row.Error, err.Error())
			}
		default:
			t.Fatalf("row %q needs rules or error", row.Input)
		}
	}
}

// TestParseDurationSharedTable pins parseDuration to the table the Rust library's
// granular::slo::parse_duration is tested against (durations_match_the_shared_table): the
// same durations accepted, to the nanosecond, and the same error texts.
func TestParseDurationSharedTable(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "durations.json"))
	require.NoError(t, err)
	var rows []struct {
		Input string  `json:"input"`
		Ns    *int64  `json:"ns"`
		Error *string `json:"error"`
	}
	require.NoError(t, json.Unmarshal(data, &rows))
	require.GreaterOrEqual(t, len(rows), 20)
	for _, row := range rows {
		got, err := parseDuration(row.Input)
		switch {
		case row.Ns != nil && row.Error == nil:
			if assert.NoError(t, err, "input %q", row.Input) {
				assert.Equal(t, *row.Ns, int64(got), "input %q", row.Input)
			}
		case row.Error != nil && row.Ns == nil:
			if assert.Error(t, err, "input %q", row.Input) {
				assert.Equal(t, *row.Error, err.Error())
			}
		default:
			t.Fatalf("row %q needs ns or error", row.Input)
		}
	}
}

func TestGlobMatch(t *testing.T) {
	for _, c := range []struct {
		p, s string
		want bool
	}{
		{"*", "", true},
		{"*", "anything", true},
		{"auth.*", "auth.login", true},
		{"auth.*", "xauth.login", false},
		{"*.query", "db.query", true},
		{"a*b*c", "aXXbYYc", true},
		{"a*b*c", "aXXbYY", false},
		{"GET /messages", "GET /messages", true},
		{"GET /messages", "GET /messages/1", false},
		{"a**", "a", true},
		{"", "", true},
		{"", "x", false},
		{"*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false},
	} {
		assert.Equal(t, c.want, glob(c.p, c.s), "%q ~ %q", c.p, c.s)
	}
}

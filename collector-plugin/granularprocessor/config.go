package granularprocessor // import "github.com/granular-dev/granular/collector-plugin/granularprocessor"

import (
	"errors"
	"fmt"
	"sort"
	"time"

	"go.opentelemetry.io/collector/component"
)

// HealthyMode says what happens to a trace that met its SLO.
type HealthyMode string

const (
	// HealthyStrip forwards the trace without Granular detail (default).
	HealthyStrip HealthyMode = "strip"
	// HealthySample forwards healthy_sample_percent of healthy traces, stripped.
	HealthySample HealthyMode = "sample"
	// HealthyDrop drops healthy traces.
	HealthyDrop HealthyMode = "drop"
)

// Config is the configuration of the granular processor.
type Config struct {
	// DecisionWait is how long after a trace's first span the trace is judged.
	DecisionWait time.Duration `mapstructure:"decision_wait"`
	// MaxTraces bounds the traces buffered while waiting for a decision; the
	// oldest trace is judged early when the bound is reached.
	MaxTraces int `mapstructure:"max_traces"`
	// MaxSpansPerTrace bounds one trace's buffered spans and artifact records;
	// a trace reaching it is judged at once and later spans follow that decision.
	MaxSpansPerTrace int `mapstructure:"max_spans_per_trace"`
	// MaxBufferedSpans bounds spans and artifact records buffered across all
	// traces; the oldest traces are judged early when it is exceeded.
	MaxBufferedSpans int `mapstructure:"max_buffered_spans"`
	// DecisionCacheSize is how many decided trace IDs are remembered so late
	// spans follow the decision of their trace.
	DecisionCacheSize int `mapstructure:"decision_cache_size"`
	// SLO holds the rules shared with the library's GRANULAR_SLO variable.
	SLO string `mapstructure:"slo"`
	// Services maps a service.name to rules tried before SLO for its spans.
	Services map[string]string `mapstructure:"services"`
	// ErrorsViolate makes a judged span (one a rule matches, or a local root
	// of its service) with error status violate the trace's SLO.
	ErrorsViolate bool `mapstructure:"errors_violate"`
	// Healthy is what happens to traces that met their SLO: strip, sample or drop.
	Healthy HealthyMode `mapstructure:"healthy"`
	// HealthySamplePercent is the share (0-100) of healthy traces kept when
	// Healthy is "sample"; chosen deterministically from the trace ID.
	HealthySamplePercent float64 `mapstructure:"healthy_sample_percent"`
	// Artifacts configures what happens to granular.artifact log records.
	Artifacts ArtifactsConfig `mapstructure:"artifacts"`

	// prevent unkeyed literal initialization
	_ struct{}
}

// ArtifactsConfig configures artifact handling in the logs pipeline.
type ArtifactsConfig struct {
	// Extension is the ID of a granular_artifacts extension that stores the
	// artifacts of violating traces. Without it they are forwarded downstream.
	Extension *component.ID `mapstructure:"extension"`
	// Forward also sends stored artifact records down the logs pipeline.
	Forward bool `mapstructure:"forward"`

	// prevent unkeyed literal initialization
	_ struct{}
}

var _ component.Config = (*Config)(nil)

// Validate checks the configuration, including every SLO rule.
func (cfg *Config) Validate() error {
	var errs []error
	if cfg.DecisionWait <= 0 {
		errs = append(errs, fmt.Errorf("decision_wait must be positive, got %s", cfg.DecisionWait))
	}
	if cfg.MaxTraces <= 0 {
		errs = append(errs, fmt.Errorf("max_traces must be positive, got %d", cfg.MaxTraces))
	}
	if cfg.MaxSpansPerTrace <= 0 {
		errs = append(errs, fmt.Errorf("max_spans_per_trace must be positive, got %d", cfg.MaxSpansPerTrace))
	}
	if cfg.MaxBufferedSpans <= 0 {
		errs = append(errs, fmt.Errorf("max_buffered_spans must be positive, got %d", cfg.MaxBufferedSpans))
	}
	if cfg.DecisionCacheSize < 0 {
		errs = append(errs, fmt.Errorf("decision_cache_size must not be negative, got %d", cfg.DecisionCacheSize))
	}
	if _, err := parseSLORules(cfg.SLO); err != nil {
		errs = append(errs, fmt.Errorf("slo: %w", err))
	}
	names := make([]string, 0, len(cfg.Services))
	for name := range cfg.Services {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if name == "" {
			errs = append(errs, errors.New("services: empty service name"))
			continue
		}
		if _, err := parseSLORules(cfg.Services[name]); err != nil {
			errs = append(errs, fmt.Errorf("services[%s]: %w", name, err))
		}
	}
	switch cfg.Healthy {
	case HealthyStrip, HealthySample, HealthyDrop:
	default:
		errs = append(errs, fmt.Errorf("healthy must be one of strip, sample, drop; got %q", cfg.Healthy))
	}
	if cfg.HealthySamplePercent < 0 || cfg.HealthySamplePercent > 100 || cfg.HealthySamplePercent != cfg.HealthySamplePercent {
		errs = append(errs, fmt.Errorf("healthy_sample_percent must be between 0 and 100, got %v", cfg.HealthySamplePercent))
	}
	return errors.Join(errs...)
}

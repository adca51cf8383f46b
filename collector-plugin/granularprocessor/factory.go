// Package granularprocessor implements the "granular" OpenTelemetry Collector
// processor: it groups spans by trace, judges each trace against SLO rules,
// keeps violating traces whole with a rollup on their root span, and strips,
// samples or drops healthy ones. See README.md.
package granularprocessor // import "github.com/granular-dev/granular/collector-plugin/granularprocessor"

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/processor"
)

const typeStr = "granular"

// Type is the component type of the processor.
var Type = component.MustNewType(typeStr)

const stability = component.StabilityLevelAlpha

// NewFactory returns the factory of the granular processor.
func NewFactory() processor.Factory {
	return newFactory(realClock{})
}

// newFactory lets tests inject a clock.
func newFactory(clk clock) processor.Factory {
	f := &factory{clock: clk, cores: map[component.ID]*core{}}
	return processor.NewFactory(Type, createDefaultConfig,
		processor.WithTraces(f.createTraces, stability),
		processor.WithLogs(f.createLogs, stability),
	)
}

func createDefaultConfig() component.Config {
	return &Config{
		DecisionWait:         5 * time.Second,
		MaxTraces:            50000,
		MaxSpansPerTrace:     5000,
		MaxBufferedSpans:     1000000,
		DecisionCacheSize:    100000,
		SLO:                  "*=500ms",
		ErrorsViolate:        true,
		Healthy:              HealthyStrip,
		HealthySamplePercent: 10,
	}
}

// factory shares one core between the traces and logs instances of the same
// configured processor, so artifact records meet the spans of their trace.
type factory struct {
	clock clock
	mu    sync.Mutex
	cores map[component.ID]*core
}

// acquire returns the core of set.ID, creating it for the first instance,
// and connects the new instance's next consumer with connect. connect runs
// under the core's lock and reports false when the core already has a
// consumer for that signal: one configured processor serves one pipeline
// per signal.
func (f *factory) acquire(set processor.Settings, cfg *Config, signal string, connect func(*core) bool) (*core, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.cores[set.ID]
	if !ok || c.cfg != cfg {
		var err error
		if c, err = newCore(set.ID, cfg, set.TelemetrySettings, f.clock); err != nil {
			return nil, err
		}
		c.release = func() {
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.cores[set.ID] == c {
				delete(f.cores, set.ID)
			}
		}
		f.cores[set.ID] = c
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !connect(c) {
		return nil, fmt.Errorf("processor %q is used in more than one %s pipeline; give each pipeline its own instance (e.g. granular/a, granular/b)", set.ID, signal)
	}
	c.instances++
	return c, nil
}

func (f *factory) createTraces(_ context.Context, set processor.Settings, cfg component.Config, next consumer.Traces) (processor.Traces, error) {
	c, err := f.acquire(set, cfg.(*Config), "traces", func(c *core) bool { return attach(&c.nextTraces, next) })
	if err != nil {
		return nil, err
	}
	return &tracesProcessor{instance{core: c}}, nil
}

func (f *factory) createLogs(_ context.Context, set processor.Settings, cfg component.Config, next consumer.Logs) (processor.Logs, error) {
	c, err := f.acquire(set, cfg.(*Config), "logs", func(c *core) bool { return attach(&c.nextLogs, next) })
	if err != nil {
		return nil, err
	}
	return &logsProcessor{instance{core: c}}, nil
}

// attach puts next in an empty slot; it reports false when the slot holds
// a consumer already.
func attach[T comparable](slot *T, next T) bool {
	var empty T
	if *slot != empty {
		return false
	}
	*slot = next
	return true
}

package granularprocessor

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/processor/processortest"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/granular-dev/granular/collector-plugin/granularartifactsextension"
	"github.com/granular-dev/granular/collector-plugin/internal/pdatawalk"
)

var baseTime = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// fakeClock is advanced by tests; its tickers fire only when advanced.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	tickers []*fakeTicker
}

type fakeTicker struct{ ch chan time.Time }

func (t *fakeTicker) C() <-chan time.Time { return t.ch }
func (t *fakeTicker) Stop()               {}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTicker(time.Duration) ticker {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTicker{ch: make(chan time.Time)}
	c.tickers = append(c.tickers, t)
	return t
}

// harness is a started granular processor with sinks on both pipelines.
type harness struct {
	t        *testing.T
	clock    *fakeClock
	traces   processor.Traces
	logs     processor.Logs
	core     *core
	sink     *consumertest.TracesSink
	logSink  *consumertest.LogsSink
	tel      *componenttest.Telemetry
	warnings *observer.ObservedLogs // what the processor logged at warn and above
	tickDone chan struct{}
}

func newHarness(t *testing.T, mutate func(*Config), host component.Host) *harness {
	t.Helper()
	h := &harness{
		t:        t,
		clock:    &fakeClock{now: baseTime},
		sink:     new(consumertest.TracesSink),
		logSink:  new(consumertest.LogsSink),
		tel:      componenttest.NewTelemetry(),
		tickDone: make(chan struct{}),
	}
	f := newFactory(h.clock)
	cfg := f.CreateDefaultConfig().(*Config)
	if mutate != nil {
		mutate(cfg)
	}
	require.NoError(t, cfg.Validate())
	set := processortest.NewNopSettings(Type)
	set.TelemetrySettings = h.tel.NewTelemetrySettings()
	logged, warnings := observer.New(zap.WarnLevel)
	set.Logger, h.warnings = zap.New(logged), warnings
	var err error
	h.traces, err = f.CreateTraces(context.Background(), set, cfg, h.sink)
	require.NoError(t, err)
	h.logs, err = f.CreateLogs(context.Background(), set, cfg, h.logSink)
	require.NoError(t, err)
	h.core = h.traces.(*tracesProcessor).core
	require.Same(t, h.core, h.logs.(*logsProcessor).core)
	h.core.afterTick = func() { h.tickDone <- struct{}{} }
	if host == nil {
		host = componenttest.NewNopHost()
	}
	require.NoError(t, h.traces.Start(context.Background(), host))
	require.NoError(t, h.logs.Start(context.Background(), host))
	t.Cleanup(func() {
		h.shutdown()
		require.NoError(t, h.tel.Shutdown(context.Background()))
	})
	return h
}

// advance moves the clock and waits until the processor handled the tick.
func (h *harness) advance(d time.Duration) {
	h.clock.mu.Lock()
	h.clock.now = h.clock.now.Add(d)
	now, tickers := h.clock.now, h.clock.tickers
	h.clock.mu.Unlock()
	for _, tk := range tickers {
		tk.ch <- now
		<-h.tickDone
	}
}

func (h *harness) shutdown() {
	require.NoError(h.t, h.traces.Shutdown(context.Background()))
	require.NoError(h.t, h.logs.Shutdown(context.Background()))
}

func (h *harness) consume(td ptrace.Traces) {
	require.NoError(h.t, h.traces.ConsumeTraces(context.Background(), td))
}

func (h *harness) consumeLogs(ld plog.Logs) {
	require.NoError(h.t, h.logs.ConsumeLogs(context.Background(), ld))
}

// counter returns the sum of a counter's points whose attribute key has value
// (or of all points when key is "").
func (h *harness) counter(name, key, value string) int64 {
	h.t.Helper()
	m, err := h.tel.GetMetric(name)
	if err != nil {
		return 0
	}
	var total int64
	sum, ok := m.Data.(metricdata.Sum[int64])
	require.True(h.t, ok, "%s is not an int64 sum", name)
	for _, dp := range sum.DataPoints {
		if key != "" {
			v, ok := dp.Attributes.Value(attributeKey(key))
			if !ok || v.AsString() != value {
				continue
			}
		}
		total += dp.Value
	}
	return total
}

// metrics returns every metric the processor has emitted.
func (h *harness) metrics() []metricdata.Metrics {
	h.t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(h.t, h.tel.Reader.Collect(context.Background(), &rm))
	var out []metricdata.Metrics
	for _, sm := range rm.ScopeMetrics {
		out = append(out, sm.Metrics...)
	}
	return out
}

// spec describes one span of a fixture trace.
type spec struct {
	service       string
	name          string
	trace         byte
	span          byte
	parent        byte
	start, dur    time.Duration
	attrs         map[string]any
	events        []string
	errorStatus   bool
	resourceAttrs map[string]any
}

func traceID(b byte) pcommon.TraceID {
	return pcommon.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, b}
}
func spanID(b byte) pcommon.SpanID { return pcommon.SpanID{0, 0, 0, 0, 0, 0, 1, b} }

// makeTraces builds one ResourceSpans per span so that grouping is exercised.
func makeTraces(specs ...spec) ptrace.Traces {
	td := ptrace.NewTraces()
	for _, s := range specs {
		rs := td.ResourceSpans().AppendEmpty()
		if s.service != "" {
			rs.Resource().Attributes().PutStr("service.name", s.service)
		}
		_ = rs.Resource().Attributes().FromRaw(mergeRaw(rs.Resource().Attributes().AsRaw(), s.resourceAttrs))
		ss := rs.ScopeSpans().AppendEmpty()
		ss.Scope().SetName("granular-test")
		sp := ss.Spans().AppendEmpty()
		sp.SetName(s.name)
		sp.SetTraceID(traceID(s.trace))
		sp.SetSpanID(spanID(s.span))
		if s.parent != 0 {
			sp.SetParentSpanID(spanID(s.parent))
		}
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(baseTime.Add(s.start)))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(baseTime.Add(s.start + s.dur)))
		if s.attrs != nil {
			if err := sp.Attributes().FromRaw(s.attrs); err != nil {
				panic(err)
			}
		}
		for _, ev := range s.events {
			sp.Events().AppendEmpty().SetName(ev)
		}
		if s.errorStatus {
			sp.Status().SetCode(ptrace.StatusCodeError)
		}
	}
	return td
}

func mergeRaw(a, b map[string]any) map[string]any {
	for k, v := range b {
		a[k] = v
	}
	return a
}

// receivedSpans flattens all spans the sink received, in order.
func receivedSpans(sink *consumertest.TracesSink) []ptrace.Span {
	var out []ptrace.Span
	for _, td := range sink.AllTraces() {
		for _, span := range pdatawalk.Spans(td) {
			out = append(out, span)
		}
	}
	return out
}

// spansByName indexes the received spans by name.
func spansByName(sink *consumertest.TracesSink) map[string]ptrace.Span {
	out := map[string]ptrace.Span{}
	for _, span := range receivedSpans(sink) {
		out[span.Name()] = span
	}
	return out
}

func attrKeys(s ptrace.Span) map[string]any { return s.Attributes().AsRaw() }

// artifactLog builds a granular.artifact record for a trace.
func artifactLog(trace, span byte, id string, body []byte) plog.Logs {
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr("service.name", "api")
	lr := rl.ScopeLogs().AppendEmpty().LogRecords().AppendEmpty()
	lr.SetTraceID(traceID(trace))
	lr.SetSpanID(spanID(span))
	lr.SetEventName("granular.artifact")
	lr.Attributes().PutStr("event.name", "granular.artifact")
	lr.Attributes().PutStr("granular.artifact.id", id)
	lr.Attributes().PutStr("granular.artifact.format", "perfetto-protobuf")
	lr.Body().SetEmptyBytes().FromRaw(body)
	return ld
}

// noTraceID clears the trace ID of the first record of ld.
func noTraceID(ld plog.Logs) plog.Logs {
	ld.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(0).SetTraceID(pcommon.NewTraceIDEmpty())
	return ld
}

// fakeStore records artifacts; it stands in for the extension.
type fakeStore struct {
	mu    sync.Mutex
	items map[string][]byte
	err   error
	// maxBytes is MaxArtifactBytes; 0: 64 MiB, the extension's default.
	maxBytes int64
}

func (s *fakeStore) MaxArtifactBytes() int64 {
	if s.maxBytes == 0 {
		return 64 << 20
	}
	return s.maxBytes
}

func (s *fakeStore) PutArtifact(_ context.Context, a granularartifactsextension.Artifact) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return "", s.err
	}
	if s.items == nil {
		s.items = map[string][]byte{}
	}
	s.items[a.ID] = a.Data
	return "http://127.0.0.1:16700/artifacts/" + a.ID, nil
}

func (*fakeStore) Start(context.Context, component.Host) error { return nil }
func (*fakeStore) Shutdown(context.Context) error              { return nil }

// newHarnessWithStore is a harness whose processor stores artifacts in a
// fakeStore, registered as the granular_artifacts extension.
func newHarnessWithStore(t *testing.T, mutate func(*Config)) (*harness, *fakeStore) {
	t.Helper()
	store := &fakeStore{}
	extID := component.MustNewID("granular_artifacts")
	host := hostWithExtensions{exts: map[component.ID]component.Component{extID: store}}
	return newHarness(t, func(c *Config) {
		c.Artifacts.Extension = &extID
		if mutate != nil {
			mutate(c)
		}
	}, host), store
}

type hostWithExtensions struct {
	exts map[component.ID]component.Component
}

func (h hostWithExtensions) GetExtensions() map[component.ID]component.Component { return h.exts }

func attributeKey(k string) attribute.Key { return attribute.Key(k) }

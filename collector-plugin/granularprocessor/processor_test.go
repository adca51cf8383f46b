package granularprocessor

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/extension/extensiontest"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/granular-dev/granular/collector-plugin/granularartifactsextension"
)

const ms = time.Millisecond

// violatingTrace is GET /messages taking 800ms against *=500ms, with a
// database child dominated by scheduler wait and a synthetic child.
func violatingTrace(id byte) ptrace.Traces {
	return makeTraces(
		spec{service: "api", name: "GET /messages", trace: id, span: 1, dur: 800 * ms, attrs: map[string]any{
			"http.route":                      "/messages",
			"granular.cause":                  "running",
			"granular.time.running_us":        int64(50000),
			"granular.time.scheduler_wait_us": int64(10000),
			"granular.culprit":                "handler::render",
			"granular.verdict":                "mostly running",
		}},
		spec{service: "api", name: "db.query", trace: id, span: 2, parent: 1, start: 10 * ms, dur: 400 * ms, attrs: map[string]any{
			"granular.cause":                  "scheduler_wait",
			"granular.time.scheduler_wait_us": int64(300000),
			"granular.time.running_us":        int64(1000),
			"granular.culprit":                "tokio::spawn at src/db.rs:42",
			"granular.polls":                  int64(12),
		}, events: []string{"granular.scheduler_wait", "granular.culprit_poll", "db.retry"}},
		spec{service: "api", name: "poll", trace: id, span: 3, parent: 2, start: 20 * ms, dur: 5 * ms, attrs: map[string]any{
			"granular.synthetic":       true,
			"granular.time.running_us": int64(900000), // synthetic detail does not count when real detail exists
		}},
	)
}

// healthyTrace is fast but carries Granular detail.
func healthyTrace(id byte) ptrace.Traces {
	return makeTraces(
		spec{service: "api", name: "GET /health", trace: id, span: 1, dur: 20 * ms, attrs: map[string]any{
			"http.route":               "/health",
			"granular.cause":           "running",
			"granular.slo.violated":    false,
			"granular.time.running_us": int64(15000),
			"granular.verdict":         "fine",
			"granular.artifact":        "abc",
		}, events: []string{"granular.blocked_in_poll", "app.event"}},
		spec{service: "api", name: "poll", trace: id, span: 2, parent: 1, dur: 1 * ms, attrs: map[string]any{"granular.synthetic": true}},
	)
}

func TestViolatingTraceKeptWithRollup(t *testing.T) {
	h := newHarness(t, nil, nil)
	h.consume(violatingTrace(1))
	assert.Equal(t, 0, h.sink.SpanCount(), "nothing leaves before decision_wait")
	h.advance(4 * time.Second)
	assert.Equal(t, 0, h.sink.SpanCount())
	h.advance(time.Second)
	require.Equal(t, 3, h.sink.SpanCount(), "violating traces keep every span, synthetic ones too")

	spans := spansByName(h.sink)
	root := attrKeys(spans["GET /messages"])
	assert.Equal(t, "scheduler_wait", root["granular.trace.cause"])
	assert.Equal(t, "tokio::spawn at src/db.rs:42", root["granular.trace.culprit"])
	assert.Equal(t, "api: GET /messages", root["granular.trace.slow_span"])
	assert.Equal(t, int64(1), root["granular.trace.violations"])
	assert.Equal(t, 500.0, root["granular.trace.slo_ms"])
	assert.Equal(t, "mostly running", root["granular.verdict"], "detail is kept")
	assert.Equal(t, 3, spans["db.query"].Events().Len())
	assert.NotContains(t, attrKeys(spans["db.query"]), "granular.trace.cause", "rollup only on the root")
	assert.Equal(t, int64(1), h.counter(metricDecisions, attrOutcome, outcomeViolated))
}

func TestRollupWithoutRuntimeDetailIsLatency(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.SLO = "db.*=20ms,*=1s" }, nil)
	h.consume(makeTraces(
		spec{service: "api", name: "GET /x", trace: 1, span: 1, dur: 200 * ms},
		spec{service: "db", name: "db.query", trace: 1, span: 2, parent: 1, dur: 150 * ms},
	))
	h.advance(5 * time.Second)
	root := attrKeys(spansByName(h.sink)["GET /x"])
	assert.Equal(t, "latency", root["granular.trace.cause"])
	assert.Equal(t, "db: db.query", root["granular.trace.slow_span"])
	assert.Equal(t, 20.0, root["granular.trace.slo_ms"])
	assert.Equal(t, int64(1), root["granular.trace.violations"])
	assert.NotContains(t, root, "granular.trace.culprit")
}

func TestHealthyTraceStripped(t *testing.T) {
	h := newHarness(t, nil, nil)
	h.consume(healthyTrace(1))
	h.advance(5 * time.Second)
	require.Equal(t, 1, h.sink.SpanCount(), "synthetic span removed")
	span := spansByName(h.sink)["GET /health"]
	assert.Equal(t, map[string]any{
		"http.route":            "/health",
		"granular.cause":        "running",
		"granular.slo.violated": false,
	}, attrKeys(span))
	require.Equal(t, 1, span.Events().Len())
	assert.Equal(t, "app.event", span.Events().At(0).Name())

	assert.Equal(t, int64(1), h.counter(metricDecisions, attrOutcome, outcomeStripped))
	assert.Equal(t, int64(3), h.counter(metricStrippedAttributes, "", ""))
	assert.Equal(t, int64(1), h.counter(metricStrippedEvents, "", ""))
	assert.Equal(t, int64(1), h.counter(metricStrippedSpans, "", ""))
	assert.Positive(t, h.counter(metricStrippedBytes, "", ""))
}

func TestHealthyTraceDropped(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Healthy = HealthyDrop }, nil)
	h.consume(healthyTrace(1))
	h.consume(violatingTrace(2))
	h.advance(5 * time.Second)
	assert.Equal(t, 3, h.sink.SpanCount(), "only the violating trace is forwarded")
	assert.Equal(t, int64(1), h.counter(metricDecisions, attrOutcome, outcomeDropped))
}

func TestHealthyTraceSampledDeterministically(t *testing.T) {
	const n = 200
	run := func() (kept map[byte]bool) {
		h := newHarness(t, func(c *Config) {
			c.Healthy = HealthySample
			c.HealthySamplePercent = 25
		}, nil)
		for i := 1; i <= n; i++ {
			h.consume(healthyTrace(byte(i)))
		}
		h.advance(5 * time.Second)
		kept = map[byte]bool{}
		for _, sp := range receivedSpans(h.sink) {
			assert.NotContains(t, attrKeys(sp), "granular.verdict", "sampled traces are stripped")
			kept[sp.TraceID()[15]] = true
		}
		assert.Equal(t, int64(len(kept)), h.counter(metricDecisions, attrOutcome, outcomeStripped))
		assert.Equal(t, int64(n-len(kept)), h.counter(metricDecisions, attrOutcome, outcomeSampledOut))
		return kept
	}
	first, second := run(), run()
	assert.Equal(t, first, second, "the same trace IDs are kept every time")
	assert.Greater(t, len(first), n/10)
	assert.Less(t, len(first), n/2)
	for i := 1; i <= n; i++ {
		assert.Equal(t, sampled(traceID(byte(i)), 25), first[byte(i)])
	}
}

func TestServiceAndRouteRules(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.SLO = "route:/slow/*=2s,*=500ms"
		c.Services = map[string]string{"auth": "auth.*=20ms"}
	}, nil)
	h.consume(makeTraces(
		// auth.check at 30ms violates the auth service rule
		spec{service: "auth", name: "auth.check", trace: 1, span: 1, dur: 30 * ms},
		// the same span name in another service follows the global rule
		spec{service: "api", name: "auth.check", trace: 2, span: 1, dur: 30 * ms},
		// the route rule allows 2s
		spec{service: "api", name: "GET /slow/{id}", trace: 3, span: 1, dur: 1500 * ms, attrs: map[string]any{"http.route": "/slow/{id}"}},
		// an auth span not matched by the auth rules falls back to the global rules
		spec{service: "auth", name: "token.refresh", trace: 4, span: 1, dur: 600 * ms},
	))
	h.advance(5 * time.Second)
	spans := map[byte]ptrace.Span{}
	for _, sp := range receivedSpans(h.sink) {
		spans[sp.TraceID()[15]] = sp
	}
	require.Len(t, spans, 4)
	assert.Contains(t, attrKeys(spans[1]), "granular.trace.cause")
	assert.Equal(t, 20.0, attrKeys(spans[1])["granular.trace.slo_ms"])
	assert.NotContains(t, attrKeys(spans[2]), "granular.trace.cause")
	assert.NotContains(t, attrKeys(spans[3]), "granular.trace.cause")
	assert.Equal(t, "auth: token.refresh", attrKeys(spans[4])["granular.trace.slow_span"])
}

func TestFlagAndErrorViolations(t *testing.T) {
	for _, errorsViolate := range []bool{true, false} {
		t.Run(fmt.Sprint("errors_violate=", errorsViolate), func(t *testing.T) {
			h := newHarness(t, func(c *Config) { c.ErrorsViolate = errorsViolate }, nil)
			h.consume(makeTraces(
				spec{service: "api", name: "flagged", trace: 1, span: 1, dur: ms, attrs: map[string]any{
					"granular.slo.violated":     true,
					"granular.slo.threshold_ms": 0.5,
				}},
				spec{service: "api", name: "failed", trace: 2, span: 1, dur: ms, errorStatus: true},
			))
			h.advance(5 * time.Second)
			spans := spansByName(h.sink)
			flagged := attrKeys(spans["flagged"])
			assert.Equal(t, "api: flagged", flagged["granular.trace.slow_span"])
			assert.Equal(t, 500.0, flagged["granular.trace.slo_ms"], "the matching rule's threshold wins")
			_, failedViolated := attrKeys(spans["failed"])["granular.trace.violations"]
			assert.Equal(t, errorsViolate, failedViolated)
		})
	}
}

// An error violates only a judged span, as in the library: a failed child no rule names,
// whose parent is of its service, leaves its trace healthy; the same child under another
// service's span is that service's local root and makes its trace violate. (Any error span
// used to make its trace violate here, while the library called it healthy.)
func TestErrorsViolateOnlyJudgedSpans(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.SLO = "GET /messages=100ms" }, nil)
	h.consume(makeTraces(
		spec{service: "api", name: "GET /messages", trace: 1, span: 1, dur: ms},
		spec{service: "api", name: "db.retry", trace: 1, span: 2, parent: 1, dur: ms / 2, errorStatus: true},
		spec{service: "api", name: "GET /messages", trace: 2, span: 1, dur: ms},
		spec{service: "auth", name: "auth.check", trace: 2, span: 2, parent: 1, dur: ms / 2, errorStatus: true},
	))
	h.advance(5 * time.Second)
	roots := map[byte]ptrace.Span{}
	for _, sp := range receivedSpans(h.sink) {
		if sp.ParentSpanID().IsEmpty() {
			roots[sp.TraceID()[15]] = sp
		}
	}
	require.Len(t, roots, 2)
	assert.NotContains(t, attrKeys(roots[1]), "granular.trace.violations", "an unjudged child's error")
	assert.Equal(t, "auth: auth.check", attrKeys(roots[2])["granular.trace.slow_span"], "a local root's error")
}

func TestLateSpansFollowDecision(t *testing.T) {
	for _, tc := range []struct {
		mode     HealthyMode
		trace    func(byte) ptrace.Traces
		kept     bool
		stripped bool
		decision string
	}{
		{HealthyStrip, violatingTrace, true, false, "keep"},
		{HealthyStrip, healthyTrace, true, true, "strip"},
		{HealthyDrop, healthyTrace, false, false, "drop"},
	} {
		t.Run(tc.decision, func(t *testing.T) {
			h := newHarness(t, func(c *Config) { c.Healthy = tc.mode }, nil)
			h.consume(tc.trace(7))
			h.advance(5 * time.Second)
			before := h.sink.SpanCount()
			h.sink.Reset()
			// a late child with detail, arriving after the decision
			h.consume(makeTraces(spec{service: "api", name: "late", trace: 7, span: 9, parent: 1, dur: ms, attrs: map[string]any{
				"granular.verdict": "late detail", "granular.cause": "idle",
			}}))
			if !tc.kept {
				assert.Equal(t, 0, before)
				assert.Equal(t, 0, h.sink.SpanCount())
			} else {
				require.Equal(t, 1, h.sink.SpanCount(), "late spans leave at once")
				late := attrKeys(spansByName(h.sink)["late"])
				assert.Equal(t, "idle", late["granular.cause"])
				_, hasVerdict := late["granular.verdict"]
				assert.Equal(t, !tc.stripped, hasVerdict)
			}
			assert.Equal(t, int64(1), h.counter(metricLateSpans, attrDecision, tc.decision))
			traces, _ := h.core.bufferedCounts()
			assert.Equal(t, 0, traces, "late spans are not buffered")
		})
	}
}

func TestSpansOfOneTraceAcrossBatchesAreGrouped(t *testing.T) {
	h := newHarness(t, nil, nil)
	full := violatingTrace(1)
	// deliver each span in its own batch, a second apart
	for i := 0; i < full.ResourceSpans().Len(); i++ {
		td := ptrace.NewTraces()
		full.ResourceSpans().At(i).CopyTo(td.ResourceSpans().AppendEmpty())
		h.consume(td)
		h.advance(time.Second)
	}
	assert.Equal(t, 0, h.sink.SpanCount())
	h.advance(2 * time.Second)
	require.Equal(t, 3, h.sink.SpanCount())
	assert.Equal(t, "scheduler_wait", attrKeys(spansByName(h.sink)["GET /messages"])["granular.trace.cause"])
}

func TestEvictionAtMaxTraces(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxTraces = 2 }, nil)
	h.consume(violatingTrace(1))
	h.consume(healthyTrace(2))
	assert.Equal(t, 0, h.sink.SpanCount())
	h.consume(healthyTrace(3))
	assert.Equal(t, 3, h.sink.SpanCount(), "the oldest trace is judged early")
	assert.Equal(t, int64(1), h.counter(metricEvicted, attrReason, reasonMaxTraces))
	traces, _ := h.core.bufferedCounts()
	assert.Equal(t, 2, traces)
	// the evicted trace's decision is cached
	h.consume(makeTraces(spec{service: "api", name: "late", trace: 1, span: 9, dur: ms}))
	assert.Equal(t, 4, h.sink.SpanCount())
	h.advance(5 * time.Second)
	assert.Equal(t, 6, h.sink.SpanCount())
}

func TestMaxSpansPerTrace(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxSpansPerTrace = 3 }, nil)
	var specs []spec
	for i := byte(1); i <= 5; i++ {
		specs = append(specs, spec{service: "api", name: fmt.Sprint("s", i), trace: 1, span: i, dur: ms})
	}
	h.consume(makeTraces(specs...))
	assert.Equal(t, 5, h.sink.SpanCount(), "decided at the cap; the rest follow as late spans")
	assert.Equal(t, int64(1), h.counter(metricEvicted, attrReason, reasonMaxSpans))
	assert.Equal(t, int64(2), h.counter(metricLateSpans, attrDecision, "strip"))
}

func TestMaxBufferedSpans(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxBufferedSpans = 4 }, nil)
	h.consume(violatingTrace(1)) // 3 spans
	h.consume(healthyTrace(2))   // 2 more: 5 > 4, trace 1 judged early
	assert.Equal(t, 3, h.sink.SpanCount())
	assert.Equal(t, int64(1), h.counter(metricEvicted, attrReason, reasonMaxBuffered))
	_, items := h.core.bufferedCounts()
	assert.Equal(t, 2, items)
}

func TestDecisionCacheIsBounded(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.DecisionCacheSize = 2 }, nil)
	for i := byte(1); i <= 3; i++ {
		h.consume(healthyTrace(i))
	}
	h.advance(5 * time.Second)
	assert.Len(t, h.core.cache.m, 2)
	_, ok := h.core.cache.get(traceID(1))
	assert.False(t, ok, "the oldest decision is forgotten")
	_, ok = h.core.cache.get(traceID(3))
	assert.True(t, ok)
	// a span of the forgotten trace is buffered and judged again
	h.consume(makeTraces(spec{service: "api", name: "again", trace: 1, span: 5, dur: ms}))
	traces, _ := h.core.bufferedCounts()
	assert.Equal(t, 1, traces)
}

func TestSpansWithoutTraceIDJudgedAtOnce(t *testing.T) {
	h := newHarness(t, nil, nil)
	td := makeTraces(spec{service: "api", name: "orphan", span: 1, dur: 900 * ms})
	td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).SetTraceID([16]byte{})
	h.consume(td)
	require.Equal(t, 1, h.sink.SpanCount())
	assert.Equal(t, "latency", attrKeys(spansByName(h.sink)["orphan"])["granular.trace.cause"])
}

func TestShutdownFlushesBufferedTraces(t *testing.T) {
	h := newHarness(t, nil, nil)
	h.consume(violatingTrace(1))
	h.consume(healthyTrace(2))
	h.shutdown()
	assert.Equal(t, 4, h.sink.SpanCount())
	// consuming after shutdown does not buffer and does not lose data
	h.consume(makeTraces(spec{service: "api", name: "after", trace: 3, span: 1, dur: ms}))
	assert.Equal(t, 5, h.sink.SpanCount())
}

func TestArtifactsStoredForViolatingTraces(t *testing.T) {
	h, store := newHarnessWithStore(t, nil)

	h.consume(violatingTrace(1))
	h.consumeLogs(artifactLog(1, 2, "art-1", []byte("perfetto-1")))
	h.consume(healthyTrace(2))
	h.consumeLogs(artifactLog(2, 1, "art-2", []byte("perfetto-2")))
	assert.Empty(t, store.items, "artifacts wait for the decision")
	h.advance(5 * time.Second)

	assert.Equal(t, map[string][]byte{"art-1": []byte("perfetto-1")}, store.items)
	assert.Equal(t, 0, h.logSink.LogRecordCount(), "stored artifacts are not forwarded by default")
	root := attrKeys(spansByName(h.sink)["GET /messages"])
	assert.Equal(t, "http://127.0.0.1:16700/artifacts/art-1", root["granular.trace.artifact"])
	assert.Equal(t, int64(1), h.counter(metricArtifacts, attrArtifactResult, artifactStored))
	assert.Equal(t, int64(1), h.counter(metricArtifacts, attrArtifactResult, artifactDropped))

	// late artifacts follow the decision
	h.consumeLogs(artifactLog(1, 3, "art-3", []byte("late")))
	h.consumeLogs(artifactLog(2, 3, "art-4", []byte("late")))
	assert.Contains(t, store.items, "art-3")
	assert.NotContains(t, store.items, "art-4")

	// an id unfit for a file name is replaced by trace-span
	h.consumeLogs(artifactLog(1, 4, "../../etc/passwd", []byte("x")))
	assert.Contains(t, store.items, traceID(1).String()+"-"+spanID(4).String())

	// a failing store drops the record and counts it
	store.err = errors.New("disk full")
	h.consumeLogs(artifactLog(1, 5, "art-5", []byte("x")))
	assert.Equal(t, int64(1), h.counter(metricArtifacts, attrArtifactResult, artifactFailed))
}

// An artifact larger than the store's max_artifact_bytes (the real
// extension's) is dropped as it arrives, never buffered, and counted
// (too_large, with one warning giving the sizes); its trace passes whole, its
// rollup linked to the trace's artifact that fitted.
func TestArtifactOverTheStoreCapIsDroppedOnArrival(t *testing.T) {
	f := granularartifactsextension.NewFactory()
	cfg := f.CreateDefaultConfig().(*granularartifactsextension.Config)
	cfg.ServerConfig.NetAddr.Endpoint = "127.0.0.1:0"
	cfg.Directory = t.TempDir()
	cfg.MaxArtifactBytes = 1 << 10
	ext, err := f.Create(context.Background(), extensiontest.NewNopSettings(f.Type()), cfg)
	require.NoError(t, err)
	require.NoError(t, ext.Start(context.Background(), componenttest.NewNopHost()))
	t.Cleanup(func() { require.NoError(t, ext.Shutdown(context.Background())) })
	extID := component.NewID(f.Type())
	host := hostWithExtensions{exts: map[component.ID]component.Component{extID: ext}}
	h := newHarness(t, func(c *Config) { c.Artifacts.Extension = &extID }, host)

	trace := violatingTrace(1)
	spans := trace.SpanCount()
	h.consume(trace)
	h.consumeLogs(artifactLog(1, 1, "too-big", make([]byte, 1<<10+1)))
	h.consumeLogs(artifactLog(1, 2, "fits", make([]byte, 1<<10)))
	_, buffered := h.core.bufferedCounts()
	assert.Equal(t, spans+1, buffered, "the spans and the artifact that fits wait; the other is gone")
	h.advance(5 * time.Second)

	assert.Equal(t, int64(1), h.counter(metricArtifacts, attrArtifactResult, artifactTooLarge))
	assert.Equal(t, int64(1), h.counter(metricArtifacts, attrArtifactResult, artifactStored))
	warned := h.warnings.FilterMessage("granular artifacts over the store's max_artifact_bytes dropped").All()
	require.Len(t, warned, 1)
	assert.Equal(t, map[string]any{"records": int64(1), "largest_bytes": int64(1<<10 + 1), "max_artifact_bytes": int64(1 << 10)}, warned[0].ContextMap())
	assert.Equal(t, spans, h.sink.SpanCount(), "the trace passes whole")
	link, _ := attrKeys(spansByName(h.sink)["GET /messages"])["granular.trace.artifact"].(string)
	assert.True(t, strings.HasSuffix(link, "/artifacts/fits"), link)
}

// With baseline enrichment the library sends artifacts for healthy spans
// of a violating trace too; the rollup links the violating span's.
func TestRollupLinksTheSlowSpansArtifact(t *testing.T) {
	h, store := newHarnessWithStore(t, nil)

	h.consume(violatingTrace(1))
	h.consumeLogs(artifactLog(1, 2, "child", []byte("baseline")))
	h.consumeLogs(artifactLog(1, 1, "root", []byte("violation")))
	h.advance(5 * time.Second)

	assert.Len(t, store.items, 2)
	root := attrKeys(spansByName(h.sink)["GET /messages"])
	assert.Equal(t, "api: GET /messages", root["granular.trace.slow_span"])
	assert.Equal(t, "http://127.0.0.1:16700/artifacts/root", root["granular.trace.artifact"])
}

func TestArtifactsForwardedWithoutStore(t *testing.T) {
	h := newHarness(t, nil, nil)
	h.consume(violatingTrace(1))
	ld := artifactLog(1, 2, "art-1", []byte("perfetto"))
	// an ordinary record in the same batch passes at once
	ld.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().AppendEmpty().Body().SetStr("app log")
	h.consumeLogs(ld)
	require.Equal(t, 1, h.logSink.LogRecordCount())
	assert.Equal(t, "app log", h.logSink.AllLogs()[0].ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(0).Body().Str())
	h.advance(5 * time.Second)
	assert.Equal(t, 2, h.logSink.LogRecordCount())
	assert.Equal(t, int64(1), h.counter(metricArtifacts, attrArtifactResult, artifactForwarded))
}

func TestArtifactWithoutTraceIDDropped(t *testing.T) {
	h := newHarness(t, nil, nil)
	h.consumeLogs(noTraceID(artifactLog(1, 2, "a", []byte("x"))))
	assert.Equal(t, 0, h.logSink.LogRecordCount())
	assert.Equal(t, int64(1), h.counter(metricArtifacts, attrArtifactResult, artifactNoTraceID))
}

func TestArtifactsOnlyTraceIsKeptButNotCached(t *testing.T) {
	h := newHarness(t, nil, nil)
	h.consumeLogs(artifactLog(1, 2, "a", []byte("x")))
	h.advance(5 * time.Second)
	assert.Equal(t, 1, h.logSink.LogRecordCount())
	assert.Equal(t, int64(1), h.counter(metricDecisions, attrOutcome, outcomeNoSpans))
	_, cached := h.core.cache.get(traceID(1))
	assert.False(t, cached)
}

// blockedTrace is GET /x (800ms against *=500ms) with two children blocked in poll: the
// larger blocked time is in lock, which names its wait only when named is set. The root,
// dominated by running, names a read it was briefly blocked in.
func blockedTrace(id byte, named bool) ptrace.Traces {
	lock := map[string]any{
		"granular.cause":                   "blocked_in_poll",
		"granular.time.blocked_in_poll_us": int64(60000),
		"granular.time.running_us":         int64(1000),
	}
	if named {
		lock["granular.blocked.syscall"] = "futex"
		lock["granular.blocked.object"] = "contended std::sync lock (futex 0x55d0c0a1b2c8)"
	}
	return makeTraces(
		spec{service: "api", name: "GET /x", trace: id, span: 1, dur: 800 * ms, attrs: map[string]any{
			"granular.cause":                   "running",
			"granular.time.running_us":         int64(50000),
			"granular.time.blocked_in_poll_us": int64(2000),
			"granular.blocked.syscall":         "read",
			"granular.blocked.object":          "file /etc/hosts",
		}},
		spec{service: "api", name: "lock", trace: id, span: 2, parent: 1, start: 10 * ms, dur: 70 * ms, attrs: lock},
		spec{service: "api", name: "sleep", trace: id, span: 3, parent: 1, start: 100 * ms, dur: 90 * ms, attrs: map[string]any{
			"granular.cause":                   "blocked_in_poll",
			"granular.time.blocked_in_poll_us": int64(20000),
			"granular.blocked.syscall":         "clock_nanosleep",
			"granular.blocked.object":          "std::thread::sleep (20 ms requested)",
		}},
	)
}

// The root gets the syscall and object of the span the trace's cause comes from (the one
// with the most time in it), so Jaeger search finds granular.trace.blocked.syscall=futex;
// not those of a span with less of that time, nor of a span with another cause.
func TestRollupNamesWhatTheCauseSpanWasBlockedIn(t *testing.T) {
	h := newHarness(t, nil, nil)
	h.consume(blockedTrace(1, true))
	h.advance(5 * time.Second)
	root := attrKeys(spansByName(h.sink)["GET /x"])
	assert.Equal(t, "blocked_in_poll", root["granular.trace.cause"])
	assert.Equal(t, "futex", root["granular.trace.blocked.syscall"])
	assert.Equal(t, "contended std::sync lock (futex 0x55d0c0a1b2c8)", root["granular.trace.blocked.object"])
	assert.Equal(t, "read", root["granular.blocked.syscall"], "the root's own detail is kept")
}

// When the span the cause comes from names no wait (nothing was sampled), the root gets no
// granular.trace.blocked.*: another span's syscall would describe a different wait.
func TestRollupBlockedDetailOnlyFromTheCauseSpan(t *testing.T) {
	h := newHarness(t, nil, nil)
	h.consume(blockedTrace(1, false))
	h.advance(5 * time.Second)
	root := attrKeys(spansByName(h.sink)["GET /x"])
	assert.Equal(t, "blocked_in_poll", root["granular.trace.cause"])
	assert.NotContains(t, root, "granular.trace.blocked.syscall")
	assert.NotContains(t, root, "granular.trace.blocked.object")
}

package granularprocessor

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// fuzzSeeds are the traces the seed corpus in testdata/fuzz/FuzzConsumeTraces
// is made from (GRANULAR_WRITE_FUZZ_SEEDS=1 go test -run TestWriteFuzzSeeds).
func fuzzSeeds() map[string]ptrace.Traces {
	seeds := map[string]ptrace.Traces{
		"violating": violatingTrace(1),
		"healthy":   healthyTrace(2),
		"empty":     ptrace.NewTraces(),
	}

	odd := makeTraces(
		spec{name: "no-resource", trace: 3, span: 1, dur: -time.Second},
		spec{service: "api", name: "weird-values", trace: 3, span: 2, parent: 1, attrs: map[string]any{
			"granular.time.running_us":         math.NaN(),
			"granular.time.idle_us":            math.Inf(1),
			"granular.time.os_wait_us":         int64(math.MaxInt64),
			"granular.time.blocking_us":        int64(-5),
			"granular.time._us":                int64(1),
			"granular.time.x_us":               map[string]any{"nested": []any{1, "a", nil}},
			"granular.slo.violated":            "TRUE",
			"granular.slo.threshold_ms":        "fast",
			"granular.culprit":                 []any{"not", "a", "string"},
			"granular.cause":                   []byte{0xff, 0x00},
			"granular.synthetic":               int64(1),
			"http.route":                       int64(42),
			"granular.artifact":                strings.Repeat("A", 1<<16),
			strings.Repeat("k", 4096):          "long key",
			"granular." + string([]byte{0xff}): "invalid utf8",
		}},
	)
	rs := odd.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutEmptyMap("service.name").PutStr("a", "b")
	sp := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	sp.SetTraceID(traceID(3))
	sp.SetName("service-name-is-a-map")
	sp.Status().SetCode(ptrace.StatusCodeError)
	odd.ResourceSpans().AppendEmpty()                            // resource with no scopes
	odd.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty() // scope with no spans
	seeds["odd_values"] = odd

	orphan := makeTraces(spec{service: "api", name: "orphan", span: 1, dur: time.Hour})
	orphan.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).SetTraceID([16]byte{})
	seeds["zero_trace_id"] = orphan

	many := ptrace.NewTraces()
	for i := 0; i < 40; i++ {
		violatingTrace(byte(i % 5)).ResourceSpans().MoveAndAppendTo(many.ResourceSpans())
	}
	seeds["many_spans"] = many
	return seeds
}

func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("GRANULAR_WRITE_FUZZ_SEEDS") == "" {
		t.Skip("set GRANULAR_WRITE_FUZZ_SEEDS=1 to regenerate testdata/fuzz/FuzzConsumeTraces")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzConsumeTraces")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	var m ptrace.ProtoMarshaler
	for name, td := range fuzzSeeds() {
		b, err := m.MarshalTraces(td)
		require.NoError(t, err)
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644))
	}
	// bytes that are not a valid message
	require.NoError(t, os.WriteFile(filepath.Join(dir, "garbage"), []byte("go test fuzz v1\n[]byte(\"\\n\\xff\\xff\\xff\\x0f\")\n"), 0o644))
}

// FuzzConsumeTraces feeds arbitrary OTLP protobuf through a small processor:
// as traces, and as logs, then decides everything. It must never panic and
// never leave data buffered after shutdown. In CI only the seed corpus runs.
func FuzzConsumeTraces(f *testing.F) {
	var m ptrace.ProtoMarshaler
	for _, td := range fuzzSeeds() {
		b, err := m.MarshalTraces(td)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var tu ptrace.ProtoUnmarshaler
		td, err := tu.UnmarshalTraces(data)
		if err != nil {
			return
		}
		var lu plog.ProtoUnmarshaler
		ld, lerr := lu.UnmarshalLogs(data)

		h := newHarness(t, func(c *Config) {
			c.MaxTraces = 3
			c.MaxSpansPerTrace = 7
			c.MaxBufferedSpans = 11
			c.DecisionCacheSize = 5
			c.SLO = "db.*=1ms,route:/x/*=2ms,*=100ms"
			c.Services = map[string]string{"api": "GET *=50ms"}
		}, nil)
		in := ptrace.NewTraces()
		td.CopyTo(in)
		h.consume(in)
		if lerr == nil {
			h.consumeLogs(ld)
		}
		h.advance(2 * time.Second)
		h.consume(td) // the same spans again: late or re-buffered
		h.advance(10 * time.Second)
		traces, items := h.core.bufferedCounts()
		require.Zero(t, traces)
		require.Zero(t, items)
		require.LessOrEqual(t, len(h.core.cache.m), 5)
	})
}

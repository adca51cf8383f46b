package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"

	"github.com/granular-dev/granular/collector-plugin/internal/pdatawalk"
	"github.com/granular-dev/granular/collector-plugin/internal/plugintest"
)

// fakeJaeger is an OTLP gRPC trace endpoint standing in for Jaeger.
type fakeJaeger struct {
	ptraceotlp.UnimplementedGRPCServer
	mu    sync.Mutex
	spans map[string]ptrace.Span
}

// startFakeJaeger serves a fakeJaeger on a free loopback port until the
// test ends and returns it with its address.
func startFakeJaeger(t *testing.T) (*fakeJaeger, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	jaeger := &fakeJaeger{spans: map[string]ptrace.Span{}}
	srv := grpc.NewServer()
	ptraceotlp.RegisterGRPCServer(srv, jaeger)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return jaeger, ln.Addr().String()
}

func (j *fakeJaeger) Export(_ context.Context, req ptraceotlp.ExportRequest) (ptraceotlp.ExportResponse, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, span := range pdatawalk.Spans(req.Traces()) {
		s := ptrace.NewSpan()
		span.CopyTo(s)
		j.spans[s.Name()] = s
	}
	return ptraceotlp.NewExportResponse(), nil
}

func (j *fakeJaeger) span(name string) (ptrace.Span, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	s, ok := j.spans[name]
	return s, ok
}

// TestSingleDeploymentEndToEnd runs granularcol in-process with
// deploy/collector/single.yaml, sends OTLP over HTTP like an instrumented
// service, and checks what reaches a fake Jaeger and the artifact store.
func TestSingleDeploymentEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a whole collector")
	}
	jaeger, jaegerAddr := startFakeJaeger(t)
	httpPort, artifactsPort, metricsPort := freePort(t), freePort(t), freePort(t)
	t.Setenv("JAEGER_OTLP_GRPC", jaegerAddr)
	t.Setenv("GRANULAR_OTLP_GRPC_PORT", freePort(t))
	t.Setenv("GRANULAR_OTLP_HTTP_PORT", httpPort)
	t.Setenv("GRANULAR_ARTIFACTS_PORT", artifactsPort)
	t.Setenv("GRANULAR_METRICS_PORT", metricsPort)
	t.Setenv("GRANULAR_ARTIFACT_DIR", filepath.Join(t.TempDir(), "artifacts"))
	t.Setenv("GRANULAR_DECISION_WAIT", "300ms")
	t.Setenv("GRANULAR_SLO", "GET /messages=100ms,*=500ms")
	t.Setenv("GRANULAR_LOG_LEVEL", "warn")
	runCollector(t, "single.yaml")

	postTraces(t, httpPort, chatTraces(t))
	postLogs(t, httpPort, chatArtifacts(map[byte]string{1: "chat-violation-1", 2: "chat-healthy-2"}))

	waitFor(t, "both traces in Jaeger", func() bool {
		_, a := jaeger.span("GET /messages")
		_, b := jaeger.span("GET /health")
		return a && b
	})
	artifacts := "http://127.0.0.1:" + artifactsPort + "/artifacts/"
	checkChatTracesInJaeger(t, jaeger, artifacts+"chat-violation-1")

	resp, body := plugintest.Get(t, artifacts+"chat-violation-1")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "application/octet-stream", resp.Header.Get("Content-Type"))
	assert.Equal(t, "perfetto:chat-violation-1", string(body))
	resp, _ = plugintest.Get(t, artifacts+"chat-healthy-2")
	assert.Equal(t, http.StatusNotFound, resp.StatusCode, "artifacts of healthy traces are dropped")

	var metrics string
	waitFor(t, "processor metrics", func() bool {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%s/metrics", metricsPort))
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		metrics = string(b)
		return strings.Contains(metrics, "otelcol_processor_granular_decisions")
	}, func() string { return metrics })
	assert.Contains(t, metrics, `outcome="violated"`)
	assert.Contains(t, metrics, `outcome="healthy_stripped"`)
	assert.Contains(t, metrics, "otelcol_processor_granular_artifacts")
}

func chatTraceID(trace byte) pcommon.TraceID {
	return pcommon.TraceID{9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, trace}
}

// chatTraces are two traces of service "chat": trace 1 violates
// GET /messages=100ms, mostly waiting on the scheduler; trace 2 is healthy.
// Both have a synthetic child.
func chatTraces(t *testing.T) ptrace.Traces {
	base := time.Now().Add(-time.Minute)
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "chat")
	spans := rs.ScopeSpans().AppendEmpty().Spans()
	add := func(trace byte, span, parent byte, name string, dur time.Duration, attrs map[string]any) {
		s := spans.AppendEmpty()
		s.SetTraceID(chatTraceID(trace))
		s.SetSpanID(pcommon.SpanID{1, 1, 1, 1, 1, 1, trace, span})
		if parent != 0 {
			s.SetParentSpanID(pcommon.SpanID{1, 1, 1, 1, 1, 1, trace, parent})
		}
		s.SetName(name)
		s.SetStartTimestamp(pcommon.NewTimestampFromTime(base))
		s.SetEndTimestamp(pcommon.NewTimestampFromTime(base.Add(dur)))
		require.NoError(t, s.Attributes().FromRaw(attrs))
	}
	add(1, 1, 0, "GET /messages", 250*time.Millisecond, map[string]any{
		"granular.cause": "scheduler_wait", "granular.time.scheduler_wait_us": int64(200000),
		"granular.time.running_us": int64(30000), "granular.culprit": "chat::load_history",
		"granular.verdict": "waited 200ms for a worker",
	})
	add(1, 2, 1, "poll", time.Millisecond, map[string]any{"granular.synthetic": true})
	add(2, 1, 0, "GET /health", 5*time.Millisecond, map[string]any{
		"granular.cause": "running", "granular.verdict": "fine", "granular.time.running_us": int64(4000),
	})
	add(2, 2, 1, "health-poll", time.Millisecond, map[string]any{"granular.synthetic": true})
	return td
}

// chatArtifacts are granular.artifact records, one per trace, with the
// given artifact ids and body "perfetto:<id>".
func chatArtifacts(ids map[byte]string) plog.Logs {
	ld := plog.NewLogs()
	recs := ld.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty().LogRecords()
	for trace, id := range ids {
		lr := recs.AppendEmpty()
		lr.SetTraceID(chatTraceID(trace))
		lr.SetSpanID(pcommon.SpanID{1, 1, 1, 1, 1, 1, trace, 1})
		lr.SetEventName("granular.artifact")
		lr.Attributes().PutStr("event.name", "granular.artifact")
		lr.Attributes().PutStr("granular.artifact.id", id)
		lr.Attributes().PutStr("granular.artifact.format", "perfetto-protobuf")
		lr.Body().SetEmptyBytes().FromRaw([]byte("perfetto:" + id))
	}
	return ld
}

// checkChatTracesInJaeger: the violating trace arrives whole with its
// rollup (artifactURL its artifact's), the healthy one stripped.
func checkChatTracesInJaeger(t *testing.T, jaeger *fakeJaeger, artifactURL string) {
	t.Helper()
	root, _ := jaeger.span("GET /messages")
	attrs := root.Attributes().AsRaw()
	assert.Equal(t, "scheduler_wait", attrs["granular.trace.cause"])
	assert.Equal(t, "chat::load_history", attrs["granular.trace.culprit"])
	assert.Equal(t, "chat: GET /messages", attrs["granular.trace.slow_span"])
	assert.Equal(t, 100.0, attrs["granular.trace.slo_ms"])
	assert.Equal(t, artifactURL, attrs["granular.trace.artifact"])
	assert.Equal(t, "waited 200ms for a worker", attrs["granular.verdict"])
	_, ok := jaeger.span("poll")
	assert.True(t, ok, "violating traces keep synthetic spans")

	healthy, _ := jaeger.span("GET /health")
	assert.Equal(t, map[string]any{"granular.cause": "running"}, healthy.Attributes().AsRaw())
	_, ok = jaeger.span("health-poll")
	assert.False(t, ok, "healthy traces lose synthetic spans")
}

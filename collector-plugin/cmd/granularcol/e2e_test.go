package main

import (
	"bytes"
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
	"go.opentelemetry.io/collector/otelcol"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
)

// fakeJaeger is an OTLP gRPC trace endpoint standing in for Jaeger.
type fakeJaeger struct {
	ptraceotlp.UnimplementedGRPCServer
	mu    sync.Mutex
	spans map[string]ptrace.Span
}

func (j *fakeJaeger) Export(_ context.Context, req ptraceotlp.ExportRequest) (ptraceotlp.ExportResponse, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	rss := req.Traces().ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		sss := rss.At(i).ScopeSpans()
		for k := 0; k < sss.Len(); k++ {
			for n := 0; n < sss.At(k).Spans().Len(); n++ {
				s := ptrace.NewSpan()
				sss.At(k).Spans().At(n).CopyTo(s)
				j.spans[s.Name()] = s
			}
		}
	}
	return ptraceotlp.NewExportResponse(), nil
}

func (j *fakeJaeger) span(name string) (ptrace.Span, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	s, ok := j.spans[name]
	return s, ok
}

// waitFor polls cond: the collector runs on real time here.
func waitFor(t *testing.T, what string, cond func() bool, explain ...func() string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			for _, e := range explain {
				t.Log(e())
			}
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func post(t *testing.T, url, body string, payload []byte) {
	t.Helper()
	resp, err := http.Post(url, body, bytes.NewReader(payload))
	require.NoError(t, err)
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(msg))
}

// TestSingleDeploymentEndToEnd runs granularcol in-process with
// deploy/collector/single.yaml, sends OTLP over HTTP like an instrumented
// service, and checks what reaches a fake Jaeger and the artifact store.
func TestSingleDeploymentEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a whole collector")
	}
	jaegerLn, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	jaeger := &fakeJaeger{spans: map[string]ptrace.Span{}}
	srv := grpc.NewServer()
	ptraceotlp.RegisterGRPCServer(srv, jaeger)
	go func() { _ = srv.Serve(jaegerLn) }()
	defer srv.Stop()

	httpPort, artifactsPort, metricsPort := freePort(t), freePort(t), freePort(t)
	t.Setenv("JAEGER_OTLP_GRPC", jaegerLn.Addr().String())
	t.Setenv("GRANULAR_OTLP_GRPC_PORT", freePort(t))
	t.Setenv("GRANULAR_OTLP_HTTP_PORT", httpPort)
	t.Setenv("GRANULAR_ARTIFACTS_PORT", artifactsPort)
	t.Setenv("GRANULAR_METRICS_PORT", metricsPort)
	t.Setenv("GRANULAR_ARTIFACT_DIR", filepath.Join(t.TempDir(), "artifacts"))
	t.Setenv("GRANULAR_DECISION_WAIT", "300ms")
	t.Setenv("GRANULAR_SLO", "GET /messages=100ms,*=500ms")
	t.Setenv("GRANULAR_LOG_LEVEL", "warn")

	col, err := otelcol.NewCollector(withConfig(filepath.Join(deployDir, "single.yaml")))
	require.NoError(t, err)
	runErr := make(chan error, 1)
	go func() { runErr <- col.Run(context.Background()) }()
	waitFor(t, "collector running", func() bool {
		select {
		case err := <-runErr:
			t.Fatalf("collector exited: %v", err)
		default:
		}
		return col.GetState() == otelcol.StateRunning
	})
	defer func() {
		col.Shutdown()
		require.NoError(t, <-runErr)
	}()

	base := time.Now().Add(-time.Minute)
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "chat")
	spans := rs.ScopeSpans().AppendEmpty().Spans()
	add := func(trace byte, span, parent byte, name string, dur time.Duration, attrs map[string]any) {
		s := spans.AppendEmpty()
		s.SetTraceID(pcommon.TraceID{9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, trace})
		s.SetSpanID(pcommon.SpanID{1, 1, 1, 1, 1, 1, trace, span})
		if parent != 0 {
			s.SetParentSpanID(pcommon.SpanID{1, 1, 1, 1, 1, 1, trace, parent})
		}
		s.SetName(name)
		s.SetStartTimestamp(pcommon.NewTimestampFromTime(base))
		s.SetEndTimestamp(pcommon.NewTimestampFromTime(base.Add(dur)))
		require.NoError(t, s.Attributes().FromRaw(attrs))
	}
	// trace 1 violates GET /messages=100ms, mostly waiting on the scheduler
	add(1, 1, 0, "GET /messages", 250*time.Millisecond, map[string]any{
		"granular.cause": "scheduler_wait", "granular.time.scheduler_wait_us": int64(200000),
		"granular.time.running_us": int64(30000), "granular.culprit": "chat::load_history",
		"granular.verdict": "waited 200ms for a worker",
	})
	add(1, 2, 1, "poll", time.Millisecond, map[string]any{"granular.synthetic": true})
	// trace 2 is healthy
	add(2, 1, 0, "GET /health", 5*time.Millisecond, map[string]any{
		"granular.cause": "running", "granular.verdict": "fine", "granular.time.running_us": int64(4000),
	})
	add(2, 2, 1, "health-poll", time.Millisecond, map[string]any{"granular.synthetic": true})
	body, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	require.NoError(t, err)
	otlpHTTP := "http://127.0.0.1:" + httpPort
	post(t, otlpHTTP+"/v1/traces", "application/x-protobuf", body)

	ld := plog.NewLogs()
	recs := ld.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty().LogRecords()
	for trace, id := range map[byte]string{1: "chat-violation-1", 2: "chat-healthy-2"} {
		lr := recs.AppendEmpty()
		lr.SetTraceID(pcommon.TraceID{9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, trace})
		lr.SetSpanID(pcommon.SpanID{1, 1, 1, 1, 1, 1, trace, 1})
		lr.SetEventName("granular.artifact")
		lr.Attributes().PutStr("event.name", "granular.artifact")
		lr.Attributes().PutStr("granular.artifact.id", id)
		lr.Attributes().PutStr("granular.artifact.format", "perfetto-protobuf")
		lr.Body().SetEmptyBytes().FromRaw([]byte("perfetto:" + id))
	}
	body, err = plogotlp.NewExportRequestFromLogs(ld).MarshalProto()
	require.NoError(t, err)
	post(t, otlpHTTP+"/v1/logs", "application/x-protobuf", body)

	waitFor(t, "both traces in Jaeger", func() bool {
		_, a := jaeger.span("GET /messages")
		_, b := jaeger.span("GET /health")
		return a && b
	})
	root, _ := jaeger.span("GET /messages")
	attrs := root.Attributes().AsRaw()
	assert.Equal(t, "scheduler_wait", attrs["granular.trace.cause"])
	assert.Equal(t, "chat::load_history", attrs["granular.trace.culprit"])
	assert.Equal(t, "chat: GET /messages", attrs["granular.trace.slow_span"])
	assert.Equal(t, 100.0, attrs["granular.trace.slo_ms"])
	artifactURL := "http://127.0.0.1:" + artifactsPort + "/artifacts/chat-violation-1"
	assert.Equal(t, artifactURL, attrs["granular.trace.artifact"])
	assert.Equal(t, "waited 200ms for a worker", attrs["granular.verdict"])
	_, ok := jaeger.span("poll")
	assert.True(t, ok, "violating traces keep synthetic spans")

	healthy, _ := jaeger.span("GET /health")
	assert.Equal(t, map[string]any{"granular.cause": "running"}, healthy.Attributes().AsRaw())
	_, ok = jaeger.span("health-poll")
	assert.False(t, ok, "healthy traces lose synthetic spans")

	resp, err := http.Get(artifactURL)
	require.NoError(t, err)
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "application/octet-stream", resp.Header.Get("Content-Type"))
	assert.Equal(t, "perfetto:chat-violation-1", string(got))

	resp, err = http.Get("http://127.0.0.1:" + artifactsPort + "/artifacts/chat-healthy-2")
	require.NoError(t, err)
	resp.Body.Close()
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

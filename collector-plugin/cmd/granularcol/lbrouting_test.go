package main

import (
	"context"
	"fmt"
	"iter"
	"maps"
	"net"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"

	"github.com/granular-dev/granular/collector-plugin/internal/pdatawalk"
)

// tier2Backend is an OTLP gRPC endpoint for traces and logs standing in for
// a tier-2 collector; it records which trace IDs it saw in each signal.
type tier2Backend struct {
	mu     sync.Mutex
	spans  map[pcommon.TraceID]int
	logs   map[pcommon.TraceID]int
	server *grpc.Server
	addr   string
}

type tier2Traces struct {
	ptraceotlp.UnimplementedGRPCServer
	b *tier2Backend
}

func (s *tier2Traces) Export(_ context.Context, req ptraceotlp.ExportRequest) (ptraceotlp.ExportResponse, error) {
	count(s.b, s.b.spans, pdatawalk.Spans(req.Traces()))
	return ptraceotlp.NewExportResponse(), nil
}

type tier2Logs struct {
	plogotlp.UnimplementedGRPCServer
	b *tier2Backend
}

func (s *tier2Logs) Export(_ context.Context, req plogotlp.ExportRequest) (plogotlp.ExportResponse, error) {
	count(s.b, s.b.logs, pdatawalk.LogRecords(req.Logs()))
	return plogotlp.NewExportResponse(), nil
}

// count adds one to seen for the trace of every item a pdatawalk walk yields.
func count[S any, I interface{ TraceID() pcommon.TraceID }](b *tier2Backend, seen map[pcommon.TraceID]int, items iter.Seq2[S, I]) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, item := range items {
		seen[item.TraceID()]++
	}
}

func startTier2Backend(t *testing.T) *tier2Backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	b := &tier2Backend{spans: map[pcommon.TraceID]int{}, logs: map[pcommon.TraceID]int{}, server: grpc.NewServer(), addr: ln.Addr().String()}
	ptraceotlp.RegisterGRPCServer(b.server, &tier2Traces{b: b})
	plogotlp.RegisterGRPCServer(b.server, &tier2Logs{b: b})
	go func() { _ = b.server.Serve(ln) }()
	t.Cleanup(b.server.Stop)
	return b
}

func (b *tier2Backend) counts() (spans, logs map[pcommon.TraceID]int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return maps.Clone(b.spans), maps.Clone(b.logs)
}

// TestTier1RoutesLogsWithTheirTrace runs deploy/collector/tier1-loadbalancer.yaml
// in-process in front of two fake tier-2 backends and checks that every
// trace's granular.artifact log record reaches the backend that got its
// spans (see third_party/loadbalancingexporter/PATCHES.md: upstream v0.161.0
// hashes a different key for logs than for spans).
func TestTier1RoutesLogsWithTheirTrace(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a whole collector")
	}
	const traces = 64
	backends := []*tier2Backend{startTier2Backend(t), startTier2Backend(t)}
	httpPort := freePort(t)
	t.Setenv("GRANULAR_TIER2_ENDPOINTS", fmt.Sprintf("[%s, %s]", backends[0].addr, backends[1].addr))
	t.Setenv("GRANULAR_OTLP_GRPC_PORT", freePort(t))
	t.Setenv("GRANULAR_OTLP_HTTP_PORT", httpPort)
	t.Setenv("GRANULAR_METRICS_PORT", freePort(t))
	t.Setenv("GRANULAR_LOG_LEVEL", "warn")

	runCollector(t, "tier1-loadbalancer.yaml")

	traceID := func(i int) pcommon.TraceID {
		return pcommon.TraceID{0x4b, 0xf9, 0x2f, byte(i), 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, byte(i * 37), byte(i)}
	}
	td := ptrace.NewTraces()
	spans := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans()
	ld := plog.NewLogs()
	recs := ld.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty().LogRecords()
	for i := range traces {
		s := spans.AppendEmpty()
		s.SetTraceID(traceID(i))
		s.SetSpanID(pcommon.SpanID{1, 2, 3, 4, 5, 6, 7, byte(i)})
		s.SetName("GET /messages")
		lr := recs.AppendEmpty()
		lr.SetTraceID(traceID(i))
		lr.SetSpanID(pcommon.SpanID{1, 2, 3, 4, 5, 6, 7, byte(i)})
		lr.SetEventName("granular.artifact")
		lr.Body().SetEmptyBytes().FromRaw([]byte("perfetto"))
	}
	postTraces(t, httpPort, td)
	postLogs(t, httpPort, ld)

	total := func() (spans, logs int) {
		for _, b := range backends {
			s, l := b.counts()
			spans += len(s)
			logs += len(l)
		}
		return spans, logs
	}
	waitFor(t, "every span and log record at a backend", func() bool {
		s, l := total()
		return s == traces && l == traces
	}, func() string { s, l := total(); return fmt.Sprintf("traces with spans %d, with logs %d", s, l) })

	var split []string
	for i, b := range backends {
		spans, logs := b.counts()
		assert.NotEmpty(t, spans, "backend %d got no trace: routing did not spread", i)
		for id := range spans {
			if logs[id] == 0 {
				split = append(split, fmt.Sprintf("trace %s: spans at backend %d, its log record elsewhere", id, i))
			}
		}
	}
	assert.Empty(t, split, "%d of %d traces split between backends", len(split), traces)
}

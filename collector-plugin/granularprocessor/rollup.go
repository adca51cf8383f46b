package granularprocessor // import "github.com/granular-dev/granular/collector-plugin/granularprocessor"

import (
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/granular-dev/granular/collector-plugin/internal/pdatawalk"
)

// rootSpan is the span without a parent (the earliest if several), or else
// the earliest span of td. ok is false for a trace with no spans.
func rootSpan(td ptrace.Traces) (root ptrace.Span, ok bool) {
	var anyRoot bool
	for _, s := range pdatawalk.Spans(td) {
		isRoot := s.ParentSpanID().IsEmpty()
		switch {
		case !ok:
		case isRoot && !anyRoot:
		case isRoot == anyRoot && s.StartTimestamp() < root.StartTimestamp():
		default:
			continue
		}
		root, ok, anyRoot = s, true, isRoot
	}
	return root, ok
}

// rollup writes the trace-level summary onto the root span.
func rollup(td ptrace.Traces, v verdict, artifactURL string) {
	root, ok := rootSpan(td)
	if !ok {
		return
	}
	a := root.Attributes()
	a.PutStr(attrTraceCause, v.cause)
	if v.culprit != "" {
		a.PutStr(attrTraceCulprit, v.culprit)
	}
	if v.blocked.syscall != "" {
		a.PutStr(attrTraceBlkSys, v.blocked.syscall)
	}
	if v.blocked.object != "" {
		a.PutStr(attrTraceBlkObj, v.blocked.object)
	}
	if v.slowSpan != "" {
		a.PutStr(attrTraceSlowSpan, v.slowSpan)
	}
	a.PutInt(attrTraceViol, int64(v.violations))
	if v.hasSLO {
		a.PutDouble(attrTraceSLOMs, v.sloMs)
	}
	if artifactURL != "" {
		a.PutStr(attrTraceArtifact, artifactURL)
	}
}

package granularprocessor // import "github.com/granular-dev/granular/collector-plugin/granularprocessor"

import (
	"hash/fnv"
	"strings"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/granular-dev/granular/collector-plugin/internal/pdatawalk"
)

type stripStats struct {
	bytes, attributes, events, spans int64
}

// keptWhenStripped are the granular.* attributes kept as a compact summary.
func keptWhenStripped(key string) bool {
	return key == attrCause || key == attrSLOViolated
}

// strip removes Granular detail from td in place.
func strip(td ptrace.Traces) stripStats {
	var st stripStats
	var m ptrace.ProtoMarshaler
	before := m.TracesSize(td)
	pdatawalk.RemoveSpansIf(td, func(_ pdatawalk.SpanScope, s ptrace.Span) bool {
		if isSynthetic(s) {
			st.spans++
			return true
		}
		s.Events().RemoveIf(func(e ptrace.SpanEvent) bool {
			if strings.HasPrefix(e.Name(), attrPrefix) {
				st.events++
				return true
			}
			return false
		})
		s.Attributes().RemoveIf(func(k string, _ pcommon.Value) bool {
			if strings.HasPrefix(k, attrPrefix) && !keptWhenStripped(k) {
				st.attributes++
				return true
			}
			return false
		})
		return false
	})
	if st.spans+st.events+st.attributes > 0 {
		st.bytes = int64(before - m.TracesSize(td))
	}
	return st
}

// sampled reports whether a healthy trace is inside the kept percentage; the
// choice depends only on the trace ID, so every tier-2 collector agrees.
func sampled(id pcommon.TraceID, percent float64) bool {
	if percent >= 100 {
		return true
	}
	if percent <= 0 {
		return false
	}
	h := fnv.New64a()
	_, _ = h.Write(id[:])
	return h.Sum64()%10000 < uint64(percent*100)
}

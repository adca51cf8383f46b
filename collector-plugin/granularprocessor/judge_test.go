package granularprocessor

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// judgementRow is one span case of testdata/judgements.json, the table the Rust library's
// Judge is tested against too (judgements_match_the_shared_table).
type judgementRow struct {
	Case          string  `json:"case"`
	Rules         string  `json:"rules"`
	ErrorsViolate bool    `json:"errors_violate"`
	Name          string  `json:"name"`
	Route         *string `json:"route"`
	DurationNs    int64   `json:"duration_ns"`
	Error         bool    `json:"error"`
	LocalRoot     bool    `json:"local_root"`
	// Parent is how a local root is one here: "none" (the default: no parent),
	// "other_service" (its parent is a span of another service) or "missing" (its parent
	// is not in the trace). A span that is not a local root has a parent of its service.
	Parent   string `json:"parent"`
	Violated bool   `json:"violated"`
	Rule     *int   `json:"rule"`
}

// trace builds the row's span (service "svc", span 2) in a trace, with the parent the
// row asks for; the parent (span 1) lasts 0 and has no error, so it never violates.
func (row judgementRow) trace(t *testing.T) (ptrace.Traces, ptrace.Span) {
	t.Helper()
	td := ptrace.NewTraces()
	scope := func(service string) ptrace.SpanSlice {
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr(attrServiceName, service)
		return rs.ScopeSpans().AppendEmpty().Spans()
	}
	spans := scope("svc")
	span := spans.AppendEmpty()
	span.SetTraceID(traceID(1))
	span.SetSpanID(spanID(2))
	span.SetName(row.Name)
	span.SetStartTimestamp(pcommon.NewTimestampFromTime(baseTime))
	span.SetEndTimestamp(pcommon.NewTimestampFromTime(baseTime.Add(time.Duration(row.DurationNs))))
	if row.Route != nil {
		span.Attributes().PutStr(attrHTTPRoute, *row.Route)
	}
	if row.Error {
		span.Status().SetCode(ptrace.StatusCodeError)
	}
	addParent := func(to ptrace.SpanSlice) {
		p := to.AppendEmpty()
		p.SetTraceID(traceID(1))
		p.SetSpanID(spanID(1))
		p.SetName("parent")
		p.SetStartTimestamp(pcommon.NewTimestampFromTime(baseTime))
		p.SetEndTimestamp(pcommon.NewTimestampFromTime(baseTime))
	}
	switch {
	case !row.LocalRoot:
		require.Empty(t, row.Parent, "%s: a span that is not a local root has a parent of its service", row.Case)
		addParent(spans)
	case row.Parent == "" || row.Parent == "none":
		return td, span
	case row.Parent == "other_service":
		addParent(scope("other"))
	case row.Parent == "missing":
	default:
		t.Fatalf("%s: unknown parent %q", row.Case, row.Parent)
	}
	span.SetParentSpanID(spanID(1))
	return td, span
}

// TestJudgementsSharedTable pins the judge to the library's rule on the shared table: a
// span is judged when a rule matches it or it is a local root of its service, and an error
// violates only a judged span. It pins the difference there was: any error span made the
// trace violate here, an error a child of the same service handled (no rule naming it) did
// not there. The local root is found from the trace, as judgeTrace finds it.
func TestJudgementsSharedTable(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "judgements.json"))
	require.NoError(t, err)
	var rows []judgementRow
	require.NoError(t, json.Unmarshal(data, &rows))
	require.GreaterOrEqual(t, len(rows), 20)
	for _, row := range rows {
		j, err := newJudge(&Config{SLO: row.Rules, ErrorsViolate: row.ErrorsViolate})
		require.NoError(t, err, row.Case)
		td, span := row.trace(t)
		isLocalRoot := localRoots(td)
		assert.Equal(t, row.LocalRoot, isLocalRoot("svc", span), row.Case)
		jd := j.judgeSpan("svc", span, isLocalRoot)
		assert.Equal(t, row.Violated, jd.violated, row.Case)
		var rule *int
		for i := range j.global {
			if jd.rule == &j.global[i] {
				rule = &i
			}
		}
		assert.Equal(t, row.Rule, rule, row.Case)
		v := j.judgeTrace(td)
		assert.Equal(t, row.Violated, v.violated, "%s: the trace", row.Case)
	}
}

// A span whose flags say whether its parent is remote (the library's exporter sets them) is
// a local root exactly when it says so, as the library judged it; without the flags, the
// trace decides: a parent of another service, or not in the trace, makes a local root.
func TestLocalRootsFollowTheParentIsRemoteFlags(t *testing.T) {
	for _, c := range []struct {
		name          string
		parentService string // "" when the parent is not in the trace
		flags         uint32
		want          bool
	}{
		{"same service, no flags", "svc", 0, false},
		{"other service, no flags", "other", 0, true},
		{"missing, no flags", "", 0, true},
		{"same service, flagged remote", "svc", flagHasIsRemote | flagIsRemote, true},
		{"other service, flagged local", "other", flagHasIsRemote, false},
		{"missing, flagged local", "", flagHasIsRemote, false},
		{"missing, flagged remote", "", flagHasIsRemote | flagIsRemote, true},
		{"same service, is-remote bit without has-is-remote", "svc", flagIsRemote, false},
	} {
		td := ptrace.NewTraces()
		add := func(service string, id, parent byte) ptrace.Span {
			rs := td.ResourceSpans().AppendEmpty()
			rs.Resource().Attributes().PutStr(attrServiceName, service)
			sp := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
			sp.SetTraceID(traceID(1))
			sp.SetSpanID(spanID(id))
			if parent != 0 {
				sp.SetParentSpanID(spanID(parent))
			}
			return sp
		}
		if c.parentService != "" {
			add(c.parentService, 1, 0)
		}
		span := add("svc", 2, 1)
		span.SetFlags(c.flags)
		assert.Equal(t, c.want, localRoots(td)("svc", span), c.name)
	}
}

package pdatawalk

import (
	"fmt"
	"iter"
	"testing"

	"github.com/stretchr/testify/assert"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// shape is resources of scopes of item names. Resource i gets schema URL
// "r<i>"; the scope numbered n in the whole shape is named "s<n>" with
// schema URL "u<n>".
var shape = [][][]string{
	{{"a", "b"}, {}, {"c"}},
	{},
	{{"d"}, {"e", "f", "g"}},
}

// signal is what the tests need of one signal, so that both are held to
// the same expectations.
type signal[T any, R resource, S scope, I any] struct {
	layout   layout[R, S, I]
	new      func() T
	roots    func(T) Slice[R]
	walk     func(T) iter.Seq2[Scope[R, S, I], I]
	removeIf func(T, func(Scope[R, S, I], I) bool)
	name     func(I) string
	setName  func(I, string)
}

var (
	spanSignal = signal[ptrace.Traces, ptrace.ResourceSpans, ptrace.ScopeSpans, ptrace.Span]{
		layout: spans, new: ptrace.NewTraces, roots: func(td ptrace.Traces) Slice[ptrace.ResourceSpans] { return td.ResourceSpans() },
		walk: Spans, removeIf: RemoveSpansIf,
		name: ptrace.Span.Name, setName: ptrace.Span.SetName,
	}
	logSignal = signal[plog.Logs, plog.ResourceLogs, plog.ScopeLogs, plog.LogRecord]{
		layout: logRecords, new: plog.NewLogs, roots: func(ld plog.Logs) Slice[plog.ResourceLogs] { return ld.ResourceLogs() },
		walk: LogRecords, removeIf: RemoveLogRecordsIf,
		name:    func(lr plog.LogRecord) string { return lr.Body().Str() },
		setName: func(lr plog.LogRecord, s string) { lr.Body().SetStr(s) },
	}
)

func (sig signal[T, R, S, I]) build() T {
	root := sig.new()
	n := 0
	for i, scopes := range shape {
		r := sig.roots(root).AppendEmpty()
		r.SetSchemaUrl(fmt.Sprint("r", i))
		r.Resource().Attributes().PutInt("i", int64(i))
		for _, items := range scopes {
			s := sig.layout.scopes(r).AppendEmpty()
			s.Scope().SetName(fmt.Sprint("s", n))
			s.SetSchemaUrl(fmt.Sprint("u", n))
			n++
			for _, name := range items {
				sig.setName(sig.layout.items(s).AppendEmpty(), name)
			}
		}
	}
	return root
}

// visit is how an item was seen: "<item>@<resource schema URL>/<scope name>#<Seq>".
func (sig signal[T, R, S, I]) visit(at Scope[R, S, I], item I) string {
	return fmt.Sprintf("%s@%s/%s#%d", sig.name(item), at.Resource.SchemaUrl(), at.Scope.Scope().Name(), at.Seq)
}

func (sig signal[T, R, S, I]) visits(root T) []string {
	var out []string
	for at, item := range sig.walk(root) {
		out = append(out, sig.visit(at, item))
	}
	return out
}

var everyItem = []string{"a@r0/s0#0", "b@r0/s0#0", "c@r0/s2#2", "d@r2/s3#3", "e@r2/s4#4", "f@r2/s4#4", "g@r2/s4#4"}

func forBothSignals(t *testing.T, spanTest func(*testing.T), logTest func(*testing.T)) {
	t.Run("spans", spanTest)
	t.Run("logs", logTest)
}

func TestWalksYieldEveryItemInOrderWithItsScope(t *testing.T) {
	forBothSignals(t, spanSignal.testWalk, logSignal.testWalk)
}

func (sig signal[T, R, S, I]) testWalk(t *testing.T) {
	assert.Equal(t, everyItem, sig.visits(sig.build()))
	n := 0
	for _, item := range sig.walk(sig.build()) {
		n++
		if sig.name(item) == "d" {
			break
		}
	}
	assert.Equal(t, 4, n, "the walk stops when the loop breaks")
}

// Removing b, c and d empties scopes s2 and s3 and so resource r2 keeps one
// scope; s1 and r1 came in empty and go too. Seq counts every scope.
func TestRemovalWalksPruneEmptiedScopesAndResources(t *testing.T) {
	forBothSignals(t, spanSignal.testRemoveIf, logSignal.testRemoveIf)
}

func (sig signal[T, R, S, I]) testRemoveIf(t *testing.T) {
	root := sig.build()
	var seen []string
	sig.removeIf(root, func(at Scope[R, S, I], item I) bool {
		seen = append(seen, sig.visit(at, item))
		name := sig.name(item)
		return name == "b" || name == "c" || name == "d"
	})
	assert.Equal(t, everyItem, seen)
	assert.Equal(t, []string{"a@r0/s0#0", "e@r2/s4#1", "f@r2/s4#1", "g@r2/s4#1"}, sig.visits(root))
	assert.Equal(t, 2, sig.roots(root).Len())
}

func TestCopyToCopiesResourceAndScopeNotItems(t *testing.T) {
	forBothSignals(t, spanSignal.testCopyTo, logSignal.testCopyTo)
}

func (sig signal[T, R, S, I]) testCopyTo(t *testing.T) {
	src, dst := sig.build(), sig.new()
	copies := ScopeCopies[R, S, I]{}
	for at, item := range sig.walk(src) {
		if at.Seq >= 3 {
			sig.setName(copies.In(sig.roots(dst), "dst", at).AppendEmpty(), sig.name(item))
		}
	}
	assert.Equal(t, []string{"d@r2/s3#0", "e@r2/s4#1", "f@r2/s4#1", "g@r2/s4#1"}, sig.visits(dst),
		"one copy of a scope per destination, however many items")
	for at := range sig.walk(dst) {
		assert.Equal(t, "u"+at.Scope.Scope().Name()[1:], at.Scope.SchemaUrl())
		assert.Equal(t, map[string]any{"i": int64(2)}, at.Resource.Resource().Attributes().AsRaw())
	}
	assert.Equal(t, 2, sig.roots(dst).Len(), "a copy per scope, each in its own resource")
}

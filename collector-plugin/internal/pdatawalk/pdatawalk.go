// Package pdatawalk visits the spans of a ptrace.Traces and the log records
// of a plog.Logs together with the resource and scope each one stands in, so
// the three nested loops of the OTLP layout (resource, scope, item) are
// written once for the whole module, for both signals.
package pdatawalk // import "github.com/granular-dev/granular/collector-plugin/internal/pdatawalk"

import (
	"iter"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// Slice is what a pdata slice offers at each level of the layout
// (ptrace.ResourceSpansSlice, ptrace.ScopeSpansSlice, ptrace.SpanSlice and
// their plog counterparts).
type Slice[E any] interface {
	Len() int
	At(i int) E
	AppendEmpty() E
	RemoveIf(remove func(E) bool)
}

// resource and scope are what the two outer levels offer in every signal.
type resource interface {
	Resource() pcommon.Resource
	SchemaUrl() string
	SetSchemaUrl(url string)
}

type scope interface {
	Scope() pcommon.InstrumentationScope
	SchemaUrl() string
	SetSchemaUrl(url string)
}

// layout is how one signal nests: a resource holds scopes, a scope items.
type layout[R resource, S scope, I any] struct {
	scopes func(R) Slice[S]
	items  func(S) Slice[I]
}

var (
	spans = layout[ptrace.ResourceSpans, ptrace.ScopeSpans, ptrace.Span]{
		scopes: func(rs ptrace.ResourceSpans) Slice[ptrace.ScopeSpans] { return rs.ScopeSpans() },
		items:  func(ss ptrace.ScopeSpans) Slice[ptrace.Span] { return ss.Spans() },
	}
	logRecords = layout[plog.ResourceLogs, plog.ScopeLogs, plog.LogRecord]{
		scopes: func(rl plog.ResourceLogs) Slice[plog.ScopeLogs] { return rl.ScopeLogs() },
		items:  func(sl plog.ScopeLogs) Slice[plog.LogRecord] { return sl.LogRecords() },
	}
)

// Scope is where an item stands: its resource and its scope.
type Scope[R resource, S scope, I any] struct {
	Resource R
	Scope    S
	// Seq numbers the scopes of one walk from 0, in order, counting the
	// ones a removal walk removes too: within one walk it tells scopes apart.
	Seq    int
	layout layout[R, S, I]
}

// SpanScope is where a span stands.
type SpanScope = Scope[ptrace.ResourceSpans, ptrace.ScopeSpans, ptrace.Span]

// LogScope is where a log record stands.
type LogScope = Scope[plog.ResourceLogs, plog.ScopeLogs, plog.LogRecord]

// CopyTo appends to resources a copy of the resource holding a copy of the
// scope (schema URLs included, items left out) and returns the new scope's
// empty items.
func (at Scope[R, S, I]) CopyTo(resources Slice[R]) Slice[I] {
	r := resources.AppendEmpty()
	at.Resource.Resource().CopyTo(r.Resource())
	r.SetSchemaUrl(at.Resource.SchemaUrl())
	s := at.layout.scopes(r).AppendEmpty()
	at.Scope.Scope().CopyTo(s.Scope())
	s.SetSchemaUrl(at.Scope.SchemaUrl())
	return at.layout.items(s)
}

// ScopeCopies remembers, for one walk, the copy of each scope made in each
// destination, so a destination receives one copy of a resource and scope
// however many of their items go there.
type ScopeCopies[R resource, S scope, I any] map[scopeCopy]Slice[I]

type scopeCopy struct {
	seq  int
	dest any
}

// SpanCopies are the ScopeCopies of a walk over spans.
type SpanCopies = ScopeCopies[ptrace.ResourceSpans, ptrace.ScopeSpans, ptrace.Span]

// LogCopies are the ScopeCopies of a walk over log records.
type LogCopies = ScopeCopies[plog.ResourceLogs, plog.ScopeLogs, plog.LogRecord]

// In returns the items of the copy of at in resources, copying the resource
// and scope there on first use. dest names the destination: any comparable
// value that tells the walk's destinations apart.
func (c ScopeCopies[R, S, I]) In(resources Slice[R], dest any, at Scope[R, S, I]) Slice[I] {
	k := scopeCopy{seq: at.Seq, dest: dest}
	if items, ok := c[k]; ok {
		return items
	}
	items := at.CopyTo(resources)
	c[k] = items
	return items
}

// Spans yields every span of td with its scope, in order. td must not gain
// or lose resources, scopes or spans during the walk.
func Spans(td ptrace.Traces) iter.Seq2[SpanScope, ptrace.Span] {
	return spans.all(td.ResourceSpans())
}

// LogRecords yields every log record of ld with its scope, in order. ld
// must not gain or lose resources, scopes or records during the walk.
func LogRecords(ld plog.Logs) iter.Seq2[LogScope, plog.LogRecord] {
	return logRecords.all(ld.ResourceLogs())
}

// RemoveSpansIf removes from td every span for which remove returns true,
// then every scope left without spans and every resource left without
// scopes (empty ones that came in empty as well). remove is called once per
// span, in order.
func RemoveSpansIf(td ptrace.Traces, remove func(SpanScope, ptrace.Span) bool) {
	spans.removeIf(td.ResourceSpans(), remove)
}

// RemoveLogRecordsIf is RemoveSpansIf for the log records of ld.
func RemoveLogRecordsIf(ld plog.Logs, remove func(LogScope, plog.LogRecord) bool) {
	logRecords.removeIf(ld.ResourceLogs(), remove)
}

func (l layout[R, S, I]) all(resources Slice[R]) iter.Seq2[Scope[R, S, I], I] {
	return func(yield func(Scope[R, S, I], I) bool) {
		seq := 0
		for i := 0; i < resources.Len(); i++ {
			r := resources.At(i)
			scopes := l.scopes(r)
			for k := 0; k < scopes.Len(); k++ {
				at := Scope[R, S, I]{Resource: r, Scope: scopes.At(k), Seq: seq, layout: l}
				seq++
				items := l.items(at.Scope)
				for n := 0; n < items.Len(); n++ {
					if !yield(at, items.At(n)) {
						return
					}
				}
			}
		}
	}
}

func (l layout[R, S, I]) removeIf(resources Slice[R], remove func(Scope[R, S, I], I) bool) {
	seq := 0
	resources.RemoveIf(func(r R) bool {
		scopes := l.scopes(r)
		scopes.RemoveIf(func(s S) bool {
			at := Scope[R, S, I]{Resource: r, Scope: s, Seq: seq, layout: l}
			seq++
			items := l.items(s)
			items.RemoveIf(func(item I) bool { return remove(at, item) })
			return items.Len() == 0
		})
		return scopes.Len() == 0
	})
}

package granularprocessor // import "github.com/granular-dev/granular/collector-plugin/granularprocessor"

import (
	"context"
	"errors"
	"fmt"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.uber.org/zap"

	"github.com/granular-dev/granular/collector-plugin/granularartifactsextension"
)

const (
	artifactEventName  = "granular.artifact"
	attrEventName      = "event.name"
	attrArtifactID     = "granular.artifact.id"
	attrArtifactFormat = "granular.artifact.format"
)

// spanDest caches, for one ConsumeTraces call, where spans from one incoming
// scope go in one destination, so each destination gets one copy of the
// resource and scope rather than one per span.
type spanDestKey struct {
	rs, ss int
	dest   any
}

type spanDests map[spanDestKey]ptrace.SpanSlice

func (m spanDests) slice(dest ptrace.Traces, key any, rsIdx, ssIdx int, rs ptrace.ResourceSpans, ss ptrace.ScopeSpans) ptrace.SpanSlice {
	k := spanDestKey{rs: rsIdx, ss: ssIdx, dest: key}
	if s, ok := m[k]; ok {
		return s
	}
	nrs := dest.ResourceSpans().AppendEmpty()
	rs.Resource().CopyTo(nrs.Resource())
	nrs.SetSchemaUrl(rs.SchemaUrl())
	nss := nrs.ScopeSpans().AppendEmpty()
	ss.Scope().CopyTo(nss.Scope())
	nss.SetSchemaUrl(ss.SchemaUrl())
	m[k] = nss.Spans()
	return nss.Spans()
}

// consumeTraces buffers spans by trace ID; spans of decided traces follow
// the cached decision at once.
func (c *core) consumeTraces(ctx context.Context, td ptrace.Traces) error {
	lateKeep, lateStrip, orphans := ptrace.NewTraces(), ptrace.NewTraces(), ptrace.NewTraces()
	var lateDropped int64
	dests := spanDests{}
	var ready []decided

	c.mu.Lock()
	now := c.clock.Now()
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		rs := rss.At(i)
		sss := rs.ScopeSpans()
		for k := 0; k < sss.Len(); k++ {
			ss := sss.At(k)
			spans := ss.Spans()
			for n := 0; n < spans.Len(); n++ {
				span := spans.At(n)
				id := span.TraceID()
				if id.IsEmpty() {
					span.CopyTo(dests.slice(orphans, "orphans", i, k, rs, ss).AppendEmpty())
					continue
				}
				if d, ok := c.cache.get(id); ok {
					switch d {
					case decisionKeepAll:
						span.CopyTo(dests.slice(lateKeep, "keep", i, k, rs, ss).AppendEmpty())
					case decisionKeepStripped:
						span.CopyTo(dests.slice(lateStrip, "strip", i, k, rs, ss).AppendEmpty())
					default:
						lateDropped++
					}
					continue
				}
				e := c.entryLocked(id, now, &ready)
				span.CopyTo(dests.slice(e.traces, e, i, k, rs, ss).AppendEmpty())
				e.spans++
				c.bufferedItems++
				if e.spans+e.records >= c.cfg.MaxSpansPerTrace {
					ready = append(ready, c.decideLocked(e, reasonMaxSpans))
				}
			}
		}
	}
	ready = c.enforceBufferedLocked(ready)
	if !c.running {
		ready = append(ready, c.drainLocked()...)
	}
	c.mu.Unlock()

	c.tel.add(c.tel.lateSpans, int64(lateKeep.SpanCount()), attrDecision, decisionKeepAll.String())
	c.tel.add(c.tel.lateSpans, int64(lateStrip.SpanCount()), attrDecision, decisionKeepStripped.String())
	c.tel.add(c.tel.lateSpans, lateDropped, attrDecision, decisionDrop.String())
	c.recordStrip(strip(lateStrip))
	lateStrip.ResourceSpans().MoveAndAppendTo(lateKeep.ResourceSpans())

	if orphans.SpanCount() > 0 {
		// Spans without a trace ID cannot be grouped: judge them as one trace now.
		d := decided{traces: orphans, verdict: c.judge.judge(orphans)}
		c.tel.add(c.tel.decisions, 1, attrOutcome, c.classify(&d))
		ready = append(ready, d)
	}
	return errors.Join(c.emit(ctx, ready), c.forward(ctx, lateKeep, plog.NewLogs()))
}

// enforceBufferedLocked keeps the total of buffered spans and records at
// most max_buffered_spans by judging the oldest traces early.
func (c *core) enforceBufferedLocked(ready []decided) []decided {
	for c.bufferedItems > c.cfg.MaxBufferedSpans && c.order.Len() > 0 {
		ready = append(ready, c.decideLocked(c.order.Front().Value.(*traceEntry), reasonMaxBuffered))
	}
	return ready
}

func isArtifact(lr plog.LogRecord) bool {
	if lr.EventName() == artifactEventName {
		return true
	}
	v, ok := lr.Attributes().Get(attrEventName)
	return ok && v.Type() == pcommon.ValueTypeStr && v.Str() == artifactEventName
}

type logDestKey struct {
	rl, sl int
	dest   any
}

type logDests map[logDestKey]plog.LogRecordSlice

func (m logDests) slice(dest plog.Logs, key any, rlIdx, slIdx int, rl plog.ResourceLogs, sl plog.ScopeLogs) plog.LogRecordSlice {
	k := logDestKey{rl: rlIdx, sl: slIdx, dest: key}
	if s, ok := m[k]; ok {
		return s
	}
	nrl := dest.ResourceLogs().AppendEmpty()
	rl.Resource().CopyTo(nrl.Resource())
	nrl.SetSchemaUrl(rl.SchemaUrl())
	nsl := nrl.ScopeLogs().AppendEmpty()
	sl.Scope().CopyTo(nsl.Scope())
	nsl.SetSchemaUrl(sl.SchemaUrl())
	m[k] = nsl.LogRecords()
	return nsl.LogRecords()
}

// consumeLogs passes ordinary log records through and holds
// granular.artifact records until their trace is decided.
func (c *core) consumeLogs(ctx context.Context, ld plog.Logs) error {
	lateKeep := plog.NewLogs()
	var lateDropped, noTrace int64
	dests := logDests{}
	var ready []decided

	c.mu.Lock()
	now := c.clock.Now()
	rls := ld.ResourceLogs()
	for i := 0; i < rls.Len(); i++ {
		rl := rls.At(i)
		sls := rl.ScopeLogs()
		for k := 0; k < sls.Len(); k++ {
			sl := sls.At(k)
			sl.LogRecords().RemoveIf(func(lr plog.LogRecord) bool {
				if !isArtifact(lr) {
					return false
				}
				id := lr.TraceID()
				if id.IsEmpty() {
					noTrace++
					return true
				}
				if d, ok := c.cache.get(id); ok {
					if d == decisionKeepAll {
						lr.CopyTo(dests.slice(lateKeep, "keep", i, k, rl, sl).AppendEmpty())
					} else {
						lateDropped++
					}
					return true
				}
				e := c.entryLocked(id, now, &ready)
				lr.CopyTo(dests.slice(e.logs, e, i, k, rl, sl).AppendEmpty())
				e.records++
				c.bufferedItems++
				if e.spans+e.records >= c.cfg.MaxSpansPerTrace {
					ready = append(ready, c.decideLocked(e, reasonMaxSpans))
				}
				return true
			})
		}
	}
	ready = c.enforceBufferedLocked(ready)
	if !c.running {
		ready = append(ready, c.drainLocked()...)
	}
	c.mu.Unlock()

	c.tel.add(c.tel.artifacts, noTrace, attrArtifactResult, artifactNoTraceID)
	c.tel.add(c.tel.artifacts, lateDropped, attrArtifactResult, artifactDropped)
	out := plog.NewLogs()
	if lateKeep.LogRecordCount() > 0 {
		c.handleArtifacts(ctx, decisionKeepAll, lateKeep, out, pcommon.SpanID{})
	}
	// What is left of ld is ordinary logs: pass them on.
	rls.RemoveIf(func(rl plog.ResourceLogs) bool {
		rl.ScopeLogs().RemoveIf(func(sl plog.ScopeLogs) bool { return sl.LogRecords().Len() == 0 })
		return rl.ScopeLogs().Len() == 0
	})
	rls.MoveAndAppendTo(out.ResourceLogs())
	return errors.Join(c.emit(ctx, ready), c.forward(ctx, ptrace.NewTraces(), out))
}

// handleArtifacts stores (or forwards into out) the artifact records of a
// kept trace and drops those of other traces. It returns the URL of the
// artifact of span prefer (the trace's slowest violating span) if one was
// stored, else of the first one stored.
func (c *core) handleArtifacts(ctx context.Context, d decision, ld plog.Logs, out plog.Logs, prefer pcommon.SpanID) string {
	if d != decisionKeepAll {
		c.tel.add(c.tel.artifacts, int64(ld.LogRecordCount()), attrArtifactResult, artifactDropped)
		return ""
	}
	firstURL, preferredURL := "", ""
	ld.ResourceLogs().RemoveIf(func(rl plog.ResourceLogs) bool {
		rl.ScopeLogs().RemoveIf(func(sl plog.ScopeLogs) bool {
			sl.LogRecords().RemoveIf(func(lr plog.LogRecord) bool {
				if c.store == nil {
					c.tel.add(c.tel.artifacts, 1, attrArtifactResult, artifactForwarded)
					return false
				}
				url, err := c.store.PutArtifact(ctx, artifactOf(lr))
				if err != nil {
					c.tel.add(c.tel.artifacts, 1, attrArtifactResult, artifactFailed)
					c.logger.Warn("granular artifact not stored", zap.Error(err), zap.String("trace_id", lr.TraceID().String()))
					return true
				}
				c.tel.add(c.tel.artifacts, 1, attrArtifactResult, artifactStored)
				if firstURL == "" {
					firstURL = url
				}
				if preferredURL == "" && !prefer.IsEmpty() && lr.SpanID() == prefer {
					preferredURL = url
				}
				return !c.cfg.Artifacts.Forward
			})
			return sl.LogRecords().Len() == 0
		})
		return rl.ScopeLogs().Len() == 0
	})
	ld.ResourceLogs().MoveAndAppendTo(out.ResourceLogs())
	if preferredURL != "" {
		return preferredURL
	}
	return firstURL
}

// artifactOf turns a granular.artifact record into a store entry. An id
// missing or unfit for a file name is replaced by <trace id>-<span id>.
func artifactOf(lr plog.LogRecord) granularartifactsextension.Artifact {
	a := granularartifactsextension.Artifact{TraceID: lr.TraceID().String(), SpanID: lr.SpanID().String()}
	if v, ok := lr.Attributes().Get(attrArtifactID); ok && v.Type() == pcommon.ValueTypeStr && granularartifactsextension.ValidID(v.Str()) {
		a.ID = v.Str()
	} else {
		a.ID = fmt.Sprintf("%s-%s", a.TraceID, a.SpanID)
	}
	if v, ok := lr.Attributes().Get(attrArtifactFormat); ok {
		a.Format = v.AsString()
	}
	switch body := lr.Body(); body.Type() {
	case pcommon.ValueTypeBytes:
		a.Data = body.Bytes().AsRaw()
	case pcommon.ValueTypeStr:
		a.Data = []byte(body.Str())
	default:
		a.Data = []byte(body.AsString())
	}
	return a
}

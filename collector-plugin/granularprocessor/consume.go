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
	"github.com/granular-dev/granular/collector-plugin/internal/pdatawalk"
)

const (
	artifactEventName  = "granular.artifact"
	attrEventName      = "event.name"
	attrArtifactID     = "granular.artifact.id"
	attrArtifactFormat = "granular.artifact.format"
)

// consumeTraces buffers spans by trace ID; spans of decided traces follow
// the cached decision at once.
func (c *core) consumeTraces(ctx context.Context, td ptrace.Traces) error {
	lateKeep, lateStrip, orphans := ptrace.NewTraces(), ptrace.NewTraces(), ptrace.NewTraces()
	var lateDropped int64
	copies := pdatawalk.SpanCopies{}
	var ready []decided

	c.mu.Lock()
	now := c.clock.Now()
	for at, span := range pdatawalk.Spans(td) {
		id := span.TraceID()
		if id.IsEmpty() {
			span.CopyTo(copies.In(orphans.ResourceSpans(), "orphans", at).AppendEmpty())
			continue
		}
		if d, ok := c.cache.get(id); ok {
			switch d {
			case decisionKeepAll:
				span.CopyTo(copies.In(lateKeep.ResourceSpans(), "keep", at).AppendEmpty())
			case decisionKeepStripped:
				span.CopyTo(copies.In(lateStrip.ResourceSpans(), "strip", at).AppendEmpty())
			default:
				lateDropped++
			}
			continue
		}
		e := c.entryLocked(id, now, &ready)
		span.CopyTo(copies.In(e.traces.ResourceSpans(), e, at).AppendEmpty())
		e.spans++
		ready = c.bufferedLocked(e, ready)
	}
	ready = c.settleLocked(ready)
	c.mu.Unlock()

	c.tel.add(c.tel.lateSpans, int64(lateKeep.SpanCount()), attrDecision, decisionKeepAll.String())
	c.tel.add(c.tel.lateSpans, int64(lateStrip.SpanCount()), attrDecision, decisionKeepStripped.String())
	c.tel.add(c.tel.lateSpans, lateDropped, attrDecision, decisionDrop.String())
	c.recordStrip(strip(lateStrip))
	lateStrip.ResourceSpans().MoveAndAppendTo(lateKeep.ResourceSpans())

	if orphans.SpanCount() > 0 {
		// Spans without a trace ID cannot be grouped: judge them as one trace now.
		d := decided{traces: orphans, verdict: c.judge.judgeTrace(orphans)}
		c.tel.add(c.tel.decisions, 1, attrOutcome, c.classify(&d))
		ready = append(ready, d)
	}
	return errors.Join(c.emit(ctx, ready), c.forward(ctx, lateKeep, plog.NewLogs()))
}

// bufferedLocked counts one more span or record just buffered in e and
// judges e at once when it reached max_spans_per_trace.
func (c *core) bufferedLocked(e *traceEntry, ready []decided) []decided {
	c.bufferedItems++
	if e.spans+e.records >= c.cfg.MaxSpansPerTrace {
		ready = append(ready, c.decideLocked(e, reasonMaxSpans))
	}
	return ready
}

// settleLocked ends a consume call's buffering: it enforces
// max_buffered_spans and, once the processor stopped running (no decision
// loop left to judge them), judges everything buffered.
func (c *core) settleLocked(ready []decided) []decided {
	ready = c.enforceBufferedLocked(ready)
	if !c.running {
		ready = append(ready, c.drainLocked()...)
	}
	return ready
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

// consumeLogs passes ordinary log records through and holds
// granular.artifact records until their trace is decided, but for those
// larger than the artifact store takes, which it drops and counts at once.
func (c *core) consumeLogs(ctx context.Context, ld plog.Logs) error {
	lateKeep := plog.NewLogs()
	var lateDropped, noTrace, tooLarge, largest, maxBytes int64
	copies := pdatawalk.LogCopies{}
	var ready []decided

	c.mu.Lock()
	now := c.clock.Now()
	// What is left of ld is ordinary logs.
	pdatawalk.RemoveLogRecordsIf(ld, func(at pdatawalk.LogScope, lr plog.LogRecord) bool {
		if !isArtifact(lr) {
			return false
		}
		id := lr.TraceID()
		if id.IsEmpty() {
			noTrace++
			return true
		}
		if c.store != nil {
			maxBytes = c.store.MaxArtifactBytes()
			if size := artifactSize(lr); size > maxBytes {
				tooLarge++
				largest = max(largest, size)
				return true
			}
		}
		if d, ok := c.cache.get(id); ok {
			if d == decisionKeepAll {
				lr.CopyTo(copies.In(lateKeep.ResourceLogs(), "keep", at).AppendEmpty())
			} else {
				lateDropped++
			}
			return true
		}
		e := c.entryLocked(id, now, &ready)
		lr.CopyTo(copies.In(e.logs.ResourceLogs(), e, at).AppendEmpty())
		e.records++
		ready = c.bufferedLocked(e, ready)
		return true
	})
	ready = c.settleLocked(ready)
	c.mu.Unlock()

	c.tel.add(c.tel.artifacts, noTrace, attrArtifactResult, artifactNoTraceID)
	c.tel.add(c.tel.artifacts, lateDropped, attrArtifactResult, artifactDropped)
	c.tel.add(c.tel.artifacts, tooLarge, attrArtifactResult, artifactTooLarge)
	if tooLarge > 0 {
		c.logger.Warn("granular artifacts over the store's max_artifact_bytes dropped",
			zap.Int64("records", tooLarge), zap.Int64("largest_bytes", largest), zap.Int64("max_artifact_bytes", maxBytes))
	}
	out := plog.NewLogs()
	if lateKeep.LogRecordCount() > 0 {
		c.handleArtifacts(ctx, decisionKeepAll, lateKeep, out, pcommon.SpanID{})
	}
	ld.ResourceLogs().MoveAndAppendTo(out.ResourceLogs())
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
	pdatawalk.RemoveLogRecordsIf(ld, func(_ pdatawalk.LogScope, lr plog.LogRecord) bool {
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
	ld.ResourceLogs().MoveAndAppendTo(out.ResourceLogs())
	if preferredURL != "" {
		return preferredURL
	}
	return firstURL
}

// artifactSize is the size of the artifact a granular.artifact record
// carries, as artifactOf reads it (without copying it).
func artifactSize(lr plog.LogRecord) int64 {
	if body := lr.Body(); body.Type() == pcommon.ValueTypeBytes {
		return int64(body.Bytes().Len())
	}
	return int64(len(lr.Body().AsString()))
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
	// The bytes, or the text (a string body's AsString is the string itself).
	if body := lr.Body(); body.Type() == pcommon.ValueTypeBytes {
		a.Data = body.Bytes().AsRaw()
	} else {
		a.Data = []byte(body.AsString())
	}
	return a
}

package granularprocessor // import "github.com/granular-dev/granular/collector-plugin/granularprocessor"

import (
	"hash/fnv"
	"math"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// Attribute vocabulary written by the Granular library and by this processor.
const (
	attrPrefix        = "granular."
	attrSLOViolated   = "granular.slo.violated"
	attrSLOThreshold  = "granular.slo.threshold_ms"
	attrCause         = "granular.cause"
	attrCulprit       = "granular.culprit"
	attrSynthetic     = "granular.synthetic"
	attrTimePrefix    = "granular.time."
	attrTimeSuffix    = "_us"
	attrServiceName   = "service.name"
	attrHTTPRoute     = "http.route"
	attrTraceCause    = "granular.trace.cause"
	attrTraceCulprit  = "granular.trace.culprit"
	attrTraceSlowSpan = "granular.trace.slow_span"
	attrTraceViol     = "granular.trace.violations"
	attrTraceSLOMs    = "granular.trace.slo_ms"
	attrTraceArtifact = "granular.trace.artifact"
	causeLatency      = "latency"
)

// judge applies the configured SLO rules to whole traces.
type judge struct {
	global        sloRules
	services      map[string]sloRules
	errorsViolate bool
}

func newJudge(cfg *Config) (*judge, error) {
	j := &judge{errorsViolate: cfg.ErrorsViolate, services: map[string]sloRules{}}
	var err error
	if j.global, err = parseSLO(cfg.SLO); err != nil {
		return nil, err
	}
	for name, rules := range cfg.Services {
		if j.services[name], err = parseSLO(rules); err != nil {
			return nil, err
		}
	}
	return j, nil
}

// threshold returns the SLO of a span: the service's rules first, then the global ones.
func (j *judge) threshold(service, name, route string, hasRoute bool) (time.Duration, bool) {
	if rules, ok := j.services[service]; ok {
		if d, ok := rules.match(name, route, hasRoute); ok {
			return d, true
		}
	}
	return j.global.match(name, route, hasRoute)
}

// verdict is the judgement of one trace plus what the rollup needs.
type verdict struct {
	spans      int
	violated   bool
	violations int
	cause      string
	culprit    string
	slowSpan   string
	// slowSpanID is the span slowSpan names; its artifact is preferred
	// for granular.trace.artifact.
	slowSpanID pcommon.SpanID
	sloMs      float64
	hasSLO     bool
}

type slowCandidate struct {
	found     bool
	byLatency bool
	excess    time.Duration // over the threshold, or the duration when flagged only
	start     pcommon.Timestamp
	label     string
	spanID    pcommon.SpanID
	sloMs     float64
	hasSLO    bool
}

func (c slowCandidate) beats(o slowCandidate) bool {
	if !o.found {
		return true
	}
	if c.byLatency != o.byLatency {
		return c.byLatency
	}
	if c.excess != o.excess {
		return c.excess > o.excess
	}
	return c.start < o.start
}

type culpritCandidate struct {
	culprit string
	times   map[string]float64
	dur     time.Duration
}

func spanDuration(s ptrace.Span) time.Duration {
	start, end := s.StartTimestamp(), s.EndTimestamp()
	if end <= start {
		return 0
	}
	d := uint64(end - start)
	if d > math.MaxInt64 {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(d)
}

func isTrue(v pcommon.Value, ok bool) bool {
	if !ok {
		return false
	}
	switch v.Type() {
	case pcommon.ValueTypeBool:
		return v.Bool()
	case pcommon.ValueTypeStr:
		return strings.EqualFold(v.Str(), "true")
	}
	return false
}

func isSynthetic(s ptrace.Span) bool {
	v, ok := s.Attributes().Get(attrSynthetic)
	return isTrue(v, ok)
}

// numeric returns a finite, non-negative number from an int or double value.
func numeric(v pcommon.Value) (float64, bool) {
	var f float64
	switch v.Type() {
	case pcommon.ValueTypeInt:
		f = float64(v.Int())
	case pcommon.ValueTypeDouble:
		f = v.Double()
	default:
		return 0, false
	}
	if math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
		return 0, false
	}
	return f, true
}

func serviceName(res pcommon.Resource) string {
	if v, ok := res.Attributes().Get(attrServiceName); ok {
		return v.AsString()
	}
	return ""
}

// judge evaluates every span of td.
func (j *judge) judge(td ptrace.Traces) verdict {
	var v verdict
	var slow slowCandidate
	realTimes := map[string]float64{}
	syntheticTimes := map[string]float64{}
	var culprits []culpritCandidate
	fallbackCause, fallbackDur := "", time.Duration(-1)

	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		rs := rss.At(i)
		service := serviceName(rs.Resource())
		sss := rs.ScopeSpans()
		for k := 0; k < sss.Len(); k++ {
			spans := sss.At(k).Spans()
			for n := 0; n < spans.Len(); n++ {
				span := spans.At(n)
				v.spans++
				attrs := span.Attributes()
				dur := spanDuration(span)
				route, hasRoute := "", false
				if rv, ok := attrs.Get(attrHTTPRoute); ok && rv.Type() == pcommon.ValueTypeStr {
					route, hasRoute = rv.Str(), true
				}
				threshold, hasThreshold := j.threshold(service, span.Name(), route, hasRoute)
				overLatency := hasThreshold && dur > threshold
				fv, fok := attrs.Get(attrSLOViolated)
				flagged := isTrue(fv, fok)
				errored := j.errorsViolate && span.Status().Code() == ptrace.StatusCodeError
				synthetic := isSynthetic(span)

				if overLatency || flagged || errored {
					v.violations++
					c := slowCandidate{found: true, byLatency: overLatency, excess: dur, start: span.StartTimestamp(), spanID: span.SpanID()}
					if overLatency {
						c.excess = dur - threshold
					}
					if hasThreshold {
						c.sloMs, c.hasSLO = float64(threshold)/float64(time.Millisecond), true
					} else if tv, ok := attrs.Get(attrSLOThreshold); ok {
						c.sloMs, c.hasSLO = numeric(tv)
					}
					if c.beats(slow) {
						c.label = service + ": " + span.Name()
						if service == "" {
							c.label = "unknown_service: " + span.Name()
						}
						slow = c
					}
				}

				var times map[string]float64
				attrs.Range(func(key string, val pcommon.Value) bool {
					if !strings.HasPrefix(key, attrTimePrefix) || !strings.HasSuffix(key, attrTimeSuffix) {
						return true
					}
					cause := key[len(attrTimePrefix) : len(key)-len(attrTimeSuffix)]
					f, ok := numeric(val)
					if cause == "" || !ok {
						return true
					}
					if times == nil {
						times = map[string]float64{}
					}
					times[cause] += f
					if synthetic {
						syntheticTimes[cause] += f
					} else {
						realTimes[cause] += f
					}
					return true
				})
				if cv, ok := attrs.Get(attrCulprit); ok && cv.Type() == pcommon.ValueTypeStr && cv.Str() != "" {
					culprits = append(culprits, culpritCandidate{culprit: cv.Str(), times: times, dur: dur})
				}
				if cv, ok := attrs.Get(attrCause); ok && cv.Type() == pcommon.ValueTypeStr && cv.Str() != "" && dur > fallbackDur {
					fallbackCause, fallbackDur = cv.Str(), dur
				}
			}
		}
	}
	v.violated = v.violations > 0
	if !v.violated {
		return v
	}
	v.slowSpan, v.slowSpanID, v.sloMs, v.hasSLO = slow.label, slow.spanID, slow.sloMs, slow.hasSLO

	v.cause = dominant(realTimes)
	if v.cause == "" {
		v.cause = dominant(syntheticTimes)
	}
	if v.cause == "" {
		v.cause = fallbackCause
	}
	if v.cause == "" {
		v.cause = causeLatency
	}
	best, bestTime, bestDur := "", -1.0, time.Duration(-1)
	for _, c := range culprits {
		t := c.times[v.cause]
		if t > bestTime || (t == bestTime && c.dur > bestDur) {
			best, bestTime, bestDur = c.culprit, t, c.dur
		}
	}
	v.culprit = best
	return v
}

// dominant returns the cause with the largest summed time ("" if none).
func dominant(sums map[string]float64) string {
	best, bestV := "", 0.0
	for cause, t := range sums {
		if t > bestV || (t == bestV && t > 0 && cause < best) {
			best, bestV = cause, t
		}
	}
	return best
}

// rootSpan is the span without a parent (the earliest if several), or else
// the earliest span of td. ok is false for a trace with no spans.
func rootSpan(td ptrace.Traces) (root ptrace.Span, ok bool) {
	var anyRoot bool
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		sss := rss.At(i).ScopeSpans()
		for k := 0; k < sss.Len(); k++ {
			spans := sss.At(k).Spans()
			for n := 0; n < spans.Len(); n++ {
				s := spans.At(n)
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
		}
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
	td.ResourceSpans().RemoveIf(func(rs ptrace.ResourceSpans) bool {
		rs.ScopeSpans().RemoveIf(func(ss ptrace.ScopeSpans) bool {
			ss.Spans().RemoveIf(func(s ptrace.Span) bool {
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
			return ss.Spans().Len() == 0
		})
		return rs.ScopeSpans().Len() == 0
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

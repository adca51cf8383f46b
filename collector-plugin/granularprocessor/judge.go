package granularprocessor // import "github.com/granular-dev/granular/collector-plugin/granularprocessor"

import (
	"math"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/granular-dev/granular/collector-plugin/internal/pdatawalk"
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
	attrBlockedSys    = "granular.blocked.syscall"
	attrBlockedObj    = "granular.blocked.object"
	attrTraceBlkSys   = "granular.trace.blocked.syscall"
	attrTraceBlkObj   = "granular.trace.blocked.object"
	attrTraceSlowSpan = "granular.trace.slow_span"
	attrTraceViol     = "granular.trace.violations"
	attrTraceSLOMs    = "granular.trace.slo_ms"
	attrTraceArtifact = "granular.trace.artifact"
	causeLatency      = "latency"
)

// judge applies the configured SLO rules to whole traces. Like the
// library's judge (bridge/src/slo/judge.rs) it judges each span against the
// first rule matching its name or http.route, and counts an error only on a
// judged span; unlike it, it sees every service's spans of a trace, so a
// trace violates when any of its spans does. Both are tested against
// testdata/judgements.json.
type judge struct {
	global        sloRules
	services      map[string]sloRules
	errorsViolate bool
}

func newJudge(cfg *Config) (*judge, error) {
	j := &judge{errorsViolate: cfg.ErrorsViolate, services: map[string]sloRules{}}
	var err error
	if j.global, err = parseSLORules(cfg.SLO); err != nil {
		return nil, err
	}
	for name, rules := range cfg.Services {
		if j.services[name], err = parseSLORules(rules); err != nil {
			return nil, err
		}
	}
	return j, nil
}

// matching returns the rule that applies to a span: the first matching rule
// of its service's rules, else of the global ones; nil when none matches.
func (j *judge) matching(service, name, route string, hasRoute bool) *sloRule {
	if r := j.services[service].matching(name, route, hasRoute); r != nil {
		return r
	}
	return j.global.matching(name, route, hasRoute)
}

// judgement is the verdict on one span, as the library's Judgement.
type judgement struct {
	rule     *sloRule // the rule that applied; nil when none matched
	duration time.Duration
	tooSlow  bool // longer than rule's threshold
	flagged  bool // granular.slo.violated=true: the library judged it violating
	failed   bool // error status of a judged span, with errors_violate
	violated bool
}

// judgeSpan judges span, of the given service; isLocalRoot says whether a
// span has no parent or a remote one (localRoots), asked only of an error
// span no rule matches. As in the library, a span is judged when a rule
// matches it or it is a local root, and an error (with errors_violate)
// violates only a judged span: an error on a child no rule names is left to
// its caller. A span no rule matches has no latency SLO. A span the library flagged (granular.slo.violated=true)
// violates whatever the rules here say: the library judged it.
func (j *judge) judgeSpan(service string, span ptrace.Span, isLocalRoot localRootFunc) judgement {
	attrs := span.Attributes()
	route, hasRoute := "", false
	if rv, ok := attrs.Get(attrHTTPRoute); ok && rv.Type() == pcommon.ValueTypeStr {
		route, hasRoute = rv.Str(), true
	}
	jd := judgement{rule: j.matching(service, span.Name(), route, hasRoute), duration: spanDuration(span)}
	jd.tooSlow = jd.rule != nil && jd.duration > jd.rule.threshold
	fv, fok := attrs.Get(attrSLOViolated)
	jd.flagged = isTrue(fv, fok)
	jd.failed = j.errorsViolate && span.Status().Code() == ptrace.StatusCodeError &&
		(jd.rule != nil || isLocalRoot(service, span))
	jd.violated = jd.tooSlow || jd.flagged || jd.failed
	return jd
}

// verdict is the judgement of one trace plus what the rollup needs.
type verdict struct {
	spans      int
	violated   bool
	violations int
	cause      string
	culprit    string
	// blocked is what the span the cause comes from was blocked in, when
	// that span says (granular.blocked.*).
	blocked  blockedDetail
	slowSpan string
	// slowSpanID is the span slowSpan names; its artifact is preferred
	// for granular.trace.artifact.
	slowSpanID pcommon.SpanID
	sloMs      float64
	hasSLO     bool
}

// judgeTrace judges every span of td and, when any violates, chooses what
// the rollup names: the slowest violating span, the cause and the culprit.
func (j *judge) judgeTrace(td ptrace.Traces) verdict {
	var v verdict
	var slow slowCandidate
	evidence := newCauseEvidence()
	isLocalRoot := localRoots(td)
	for at, span := range pdatawalk.Spans(td) {
		service := serviceName(at.Resource.Resource())
		v.spans++
		jd := j.judgeSpan(service, span, isLocalRoot)
		if jd.violated {
			v.violations++
			if c := newSlowCandidate(service, span, jd); c.beats(slow) {
				slow = c
			}
		}
		evidence.add(span, jd.duration)
	}
	v.violated = v.violations > 0
	if !v.violated {
		return v
	}
	v.slowSpan, v.slowSpanID, v.sloMs, v.hasSLO = slow.label, slow.spanID, slow.sloMs, slow.hasSLO
	v.cause = evidence.cause()
	v.culprit = evidence.culprit(v.cause)
	v.blocked = evidence.blocked(v.cause)
	return v
}

// The OTLP span flags (trace.proto SpanFlags) saying whether a span's parent
// is remote, when the sender knows (the library's exporter always sets them).
const (
	flagHasIsRemote = 0x100 // SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK
	flagIsRemote    = 0x200 // SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK
)

// localRootFunc says whether a span of a service in a trace is a local root.
type localRootFunc func(service string, span ptrace.Span) bool

// localRoots says whether a span of a service in td is a local root, as the
// library decides it: it has no parent, or its parent is remote. When the
// span's flags say whether its parent is remote, they decide (they are the
// sender's own answer); otherwise its parent is remote when it is not a span
// of the same service in td: another service's span, or a span not in td
// (lost, or not yet arrived when the trace was judged), judged rather than
// left unjudged. The spans of td are indexed at the first question needing
// them, so a trace with no such question pays nothing.
func localRoots(td ptrace.Traces) localRootFunc {
	var services map[pcommon.SpanID]string
	return func(service string, span ptrace.Span) bool {
		parent := span.ParentSpanID()
		if parent.IsEmpty() {
			return true
		}
		if f := span.Flags(); f&flagHasIsRemote != 0 {
			return f&flagIsRemote != 0
		}
		if services == nil {
			services = make(map[pcommon.SpanID]string, td.SpanCount())
			for at, s := range pdatawalk.Spans(td) {
				services[s.SpanID()] = serviceName(at.Resource.Resource())
			}
		}
		ps, ok := services[parent]
		return !ok || ps != service
	}
}

// slowCandidate is a violating span competing to be the trace's slow span.
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

func newSlowCandidate(service string, span ptrace.Span, jd judgement) slowCandidate {
	c := slowCandidate{found: true, byLatency: jd.tooSlow, excess: jd.duration, start: span.StartTimestamp(), spanID: span.SpanID()}
	if jd.tooSlow {
		c.excess = jd.duration - jd.rule.threshold
	}
	if jd.rule != nil {
		c.sloMs, c.hasSLO = float64(jd.rule.threshold)/float64(time.Millisecond), true
	} else if tv, ok := span.Attributes().Get(attrSLOThreshold); ok {
		c.sloMs, c.hasSLO = numeric(tv)
	}
	if service == "" {
		service = "unknown_service"
	}
	c.label = service + ": " + span.Name()
	return c
}

// beats ranks latency violations above flag/error ones, then the larger
// excess, then the earlier start.
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

// causeEvidence gathers, over the spans of a trace, what its rollup's cause
// and culprit are chosen from.
type causeEvidence struct {
	realTimes      map[string]float64 // granular.time.<cause>_us summed over non-synthetic spans
	syntheticTimes map[string]float64 // the same over synthetic spans
	culprits       []culpritCandidate
	causes         []causeCandidate // spans having a granular.cause
	fallbackCause  string           // granular.cause of the longest span having one
	fallbackDur    time.Duration    // that span's duration; -1 before any
}

type culpritCandidate struct {
	culprit string
	times   map[string]float64
	dur     time.Duration
}

// blockedDetail is a span's granular.blocked.syscall and .object ("" when absent).
type blockedDetail struct {
	syscall string
	object  string
}

// causeCandidate is a span having a granular.cause, competing to be the
// span the trace's cause comes from.
type causeCandidate struct {
	cause   string
	times   map[string]float64
	dur     time.Duration
	blocked blockedDetail
}

func newCauseEvidence() causeEvidence {
	return causeEvidence{realTimes: map[string]float64{}, syntheticTimes: map[string]float64{}, fallbackDur: -1}
}

// add takes in the granular.* detail of one span lasting dur.
func (ev *causeEvidence) add(span ptrace.Span, dur time.Duration) {
	attrs := span.Attributes()
	sums := ev.realTimes
	if isSynthetic(span) {
		sums = ev.syntheticTimes
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
		sums[cause] += f
		return true
	})
	if cv, ok := attrs.Get(attrCulprit); ok && cv.Type() == pcommon.ValueTypeStr && cv.Str() != "" {
		ev.culprits = append(ev.culprits, culpritCandidate{culprit: cv.Str(), times: times, dur: dur})
	}
	if cv, ok := attrs.Get(attrCause); ok && cv.Type() == pcommon.ValueTypeStr && cv.Str() != "" {
		if dur > ev.fallbackDur {
			ev.fallbackCause, ev.fallbackDur = cv.Str(), dur
		}
		ev.causes = append(ev.causes, causeCandidate{cause: cv.Str(), times: times, dur: dur, blocked: blockedDetail{
			syscall: strAttr(attrs, attrBlockedSys),
			object:  strAttr(attrs, attrBlockedObj),
		}})
	}
}

// cause is the cause with the most time over non-synthetic spans, else over
// synthetic ones, else the fallback granular.cause, else "latency".
func (ev *causeEvidence) cause() string {
	for _, c := range []string{dominant(ev.realTimes), dominant(ev.syntheticTimes), ev.fallbackCause} {
		if c != "" {
			return c
		}
	}
	return causeLatency
}

// culprit is the granular.culprit of the span with the most time in cause
// (the longest span on ties); "" when no span names one.
func (ev *causeEvidence) culprit(cause string) string {
	best, bestTime, bestDur := "", -1.0, time.Duration(-1)
	for _, c := range ev.culprits {
		t := c.times[cause]
		if t > bestTime || (t == bestTime && c.dur > bestDur) {
			best, bestTime, bestDur = c.culprit, t, c.dur
		}
	}
	return best
}

// blocked is the granular.blocked.* detail of the span the trace's cause
// comes from: of the spans whose granular.cause is cause, the one with the
// most time in it (the longest on ties). Only that span's detail is taken, so
// the syscall and object always describe the same wait; zero when it has none.
func (ev *causeEvidence) blocked(cause string) blockedDetail {
	var best blockedDetail
	bestTime, bestDur := -1.0, time.Duration(-1)
	for _, c := range ev.causes {
		if c.cause != cause {
			continue
		}
		t := c.times[cause]
		if t > bestTime || (t == bestTime && c.dur > bestDur) {
			best, bestTime, bestDur = c.blocked, t, c.dur
		}
	}
	return best
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

// strAttr is the string attribute key of attrs, "" when absent or not a string.
func strAttr(attrs pcommon.Map, key string) string {
	if v, ok := attrs.Get(key); ok && v.Type() == pcommon.ValueTypeStr {
		return v.Str()
	}
	return ""
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

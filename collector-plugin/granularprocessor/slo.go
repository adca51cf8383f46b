package granularprocessor // import "github.com/granular-dev/granular/collector-plugin/granularprocessor"

import (
	"fmt"
	"math"
	"math/bits"
	"strings"
	"time"
)

// ruleForm ends every rule parse error so a user sees what was expected. The
// library's SloParseError ends with the same text: a rule error reads the same
// from either side (both are tested against testdata/slo_rules.json).
const ruleForm = `expected PATTERN=DURATION, e.g. "GET /messages=100ms", "route:/messages=100ms" or "*=500ms"`

// sloRule is one parsed `PATTERN=DURATION` item of the GRANULAR_SLO syntax
// (the library's SloRule).
type sloRule struct {
	pattern   string
	onRoute   bool // match against the http.route attribute instead of the span name
	threshold time.Duration
}

// sloRules is an ordered rule list; the first matching rule wins (the
// library's SloRules).
type sloRules []sloRule

// parseSLORules parses the comma-separated GRANULAR_SLO syntax, e.g.
// `GET /messages=100ms,auth.*=20ms,*=500ms`, as the library's SloRules::parse
// does, rule for rule and error text for error text (both are tested against
// testdata/slo_rules.json). Items are trimmed; empty ones (",,", a trailing
// comma) are skipped, so an empty string yields no rules. The last '=' splits
// an item; a pattern that is empty, or empty after "route:", is rejected.
func parseSLORules(s string) (sloRules, error) {
	var rules sloRules
	for _, part := range strings.Split(s, ",") {
		raw := strings.TrimSpace(part)
		if raw == "" {
			continue
		}
		fail := func(reason string) (sloRules, error) {
			return nil, fmt.Errorf("SLO rule %q: %s; %s", raw, reason, ruleForm)
		}
		eq := strings.LastIndexByte(raw, '=')
		if eq < 0 {
			return fail("no '='")
		}
		r := sloRule{pattern: strings.TrimSpace(raw[:eq])}
		if rest, ok := strings.CutPrefix(r.pattern, "route:"); ok {
			r.onRoute = true
			r.pattern = strings.TrimSpace(rest)
		}
		if r.pattern == "" {
			return fail("empty pattern")
		}
		d, err := parseDuration(strings.TrimSpace(raw[eq+1:]))
		if err != nil {
			return fail(err.Error())
		}
		r.threshold = d
		rules = append(rules, r)
	}
	return rules, nil
}

// durationForm is quoted in every duration error.
const durationForm = "expected a number followed by us, ms, s, m or h (e.g. 250us, 100ms, 1.5s)"

// durationUnits are the units parseDuration accepts, in nanoseconds.
var durationUnits = map[string]uint64{
	"us": 1_000,
	"ms": 1_000_000,
	"s":  1_000_000_000,
	"m":  60_000_000_000,
	"h":  3_600_000_000_000,
}

// parseDuration parses a duration of the GRANULAR_SLO syntax: a non-negative
// decimal number and a unit, us, ms, s, m or h ("250us", "100ms", "1.5s",
// "2m"), with spaces or tabs allowed around and between them. It follows the
// Rust library's granular::slo::parse_duration rule for rule, error text
// included; both are tested against testdata/durations.json. The value is
// exact to the nanosecond (digits past the 18th after the point are ignored,
// finer ones truncated) and at most math.MaxInt64 ns.
func parseDuration(text string) (time.Duration, error) {
	s := strings.Trim(text, " \t")
	fail := func(reason string) (time.Duration, error) {
		return 0, fmt.Errorf("duration %q %s; %s", s, reason, durationForm)
	}
	if s == "" {
		return fail("is empty")
	}
	if s[0] == '-' {
		return fail("is negative")
	}
	split := len(s)
	for i := 0; i < len(s); i++ {
		if (s[i] < '0' || s[i] > '9') && s[i] != '.' {
			split = i
			break
		}
	}
	number, unit := s[:split], strings.TrimLeft(s[split:], " \t")
	if number == "" {
		return fail("does not start with a number")
	}
	whole, frac, _ := strings.Cut(number, ".")
	if strings.Contains(frac, ".") || (whole == "" && frac == "") {
		return fail(fmt.Sprintf("has a malformed number %q", number))
	}
	if unit == "" {
		return fail("has no unit")
	}
	unitNs, ok := durationUnits[unit]
	if !ok {
		return fail(fmt.Sprintf("has unit %q", unit))
	}
	tooLarge := func() (time.Duration, error) { return fail("is too large (at most 2562047h)") }
	var w uint64
	for i := 0; i < len(whole); i++ {
		w = w*10 + uint64(whole[i]-'0')
		if w > math.MaxInt64 {
			return tooLarge()
		}
	}
	// The fraction's first 18 digits as an integer over 10^digits, times the unit, truncated.
	frac = frac[:min(len(frac), 18)]
	var digits, scale uint64 = 0, 1
	for i := 0; i < len(frac); i++ {
		digits = digits*10 + uint64(frac[i]-'0')
		scale *= 10
	}
	hi, lo := bits.Mul64(digits, unitNs)
	fracNs, _ := bits.Div64(hi, lo, scale) // hi < scale: digits < scale
	hi, ns := bits.Mul64(w, unitNs)
	ns, carry := bits.Add64(ns, fracNs, 0)
	if hi != 0 || carry != 0 || ns > math.MaxInt64 {
		return tooLarge()
	}
	return time.Duration(ns), nil
}

// matching returns the first rule matching a span: a name rule matching
// name or, when the span has an http.route, a route rule matching route;
// nil when none matches.
func (rs sloRules) matching(name, route string, hasRoute bool) *sloRule {
	for i := range rs {
		r := &rs[i]
		if r.onRoute && hasRoute && glob(r.pattern, route) || !r.onRoute && glob(r.pattern, name) {
			return r
		}
	}
	return nil
}

// glob reports whether s matches pattern, where '*' matches any run of
// characters (including none) and every other character matches itself.
// It runs in O(len(pattern)*len(s)) worst case without recursion.
func glob(pattern, s string) bool {
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case p < len(pattern) && pattern[p] == s[i]:
			p++
			i++
		case star >= 0:
			p = star + 1
			mark++
			i = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

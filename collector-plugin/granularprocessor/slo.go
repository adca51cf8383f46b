package granularprocessor // import "github.com/granular-dev/granular/collector-plugin/granularprocessor"

import (
	"fmt"
	"strings"
	"time"
)

// ruleForm is quoted in every rule parse error so a user sees what was expected.
const ruleForm = `expected PATTERN=DURATION, where PATTERN is a span-name glob ("GET /messages", "auth.*", "*") or "route:GLOB" matched against http.route, and DURATION is like "100ms", "1.5s" or "250us"`

// sloRule is one parsed `PATTERN=DURATION` item of the GRANULAR_SLO syntax.
type sloRule struct {
	raw       string
	pattern   string
	route     bool // match against the http.route attribute instead of the span name
	threshold time.Duration
}

// sloRules is an ordered rule list; the first matching rule wins.
type sloRules []sloRule

// parseSLO parses the comma-separated GRANULAR_SLO syntax, e.g.
// `GET /messages=100ms,auth.*=20ms,*=500ms`. An empty string yields no rules.
func parseSLO(s string) (sloRules, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	parts := strings.Split(s, ",")
	rules := make(sloRules, 0, len(parts))
	for i, part := range parts {
		raw := strings.TrimSpace(part)
		if raw == "" {
			return nil, fmt.Errorf("SLO rule %d is empty: %s", i+1, ruleForm)
		}
		eq := strings.LastIndexByte(raw, '=')
		if eq < 0 {
			return nil, fmt.Errorf("invalid SLO rule %q: missing '=': %s", raw, ruleForm)
		}
		pattern := strings.TrimSpace(raw[:eq])
		durText := strings.TrimSpace(raw[eq+1:])
		r := sloRule{raw: raw, pattern: pattern}
		if rest, ok := strings.CutPrefix(pattern, "route:"); ok {
			r.route = true
			r.pattern = strings.TrimSpace(rest)
		}
		if r.pattern == "" {
			return nil, fmt.Errorf("invalid SLO rule %q: empty pattern: %s", raw, ruleForm)
		}
		d, err := time.ParseDuration(durText)
		if err != nil {
			return nil, fmt.Errorf("invalid SLO rule %q: bad duration %q: %s", raw, durText, ruleForm)
		}
		if d <= 0 {
			return nil, fmt.Errorf("invalid SLO rule %q: duration must be positive: %s", raw, ruleForm)
		}
		r.threshold = d
		rules = append(rules, r)
	}
	return rules, nil
}

// match returns the threshold of the first rule matching the span name or
// http.route; ok is false when no rule matches.
func (rs sloRules) match(name, route string, hasRoute bool) (time.Duration, bool) {
	for _, r := range rs {
		if r.route {
			if hasRoute && globMatch(r.pattern, route) {
				return r.threshold, true
			}
			continue
		}
		if globMatch(r.pattern, name) {
			return r.threshold, true
		}
	}
	return 0, false
}

// globMatch reports whether s matches pattern, where '*' matches any run of
// characters (including none) and every other character matches itself.
// It runs in O(len(pattern)*len(s)) worst case without recursion.
func globMatch(pattern, s string) bool {
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

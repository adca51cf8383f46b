//! SLO rules: which spans are judged, against which threshold.
//!
//! Syntax (the `GRANULAR_SLO` variable; the Collector processor reads the same):
//! comma-separated `PATTERN=DURATION`, first match wins. `PATTERN` is a span-name glob (`*`
//! matches any run of characters: `GET /messages`, `auth.*`, `*`) or `route:GLOB`, matched
//! against the span's `http.route` attribute. `DURATION` is a number with `us`, `ms`, `s`, `m`
//! or `h` (`250us`, `100ms`, `1.5s`), see [`parse_duration`].

use std::fmt;
use std::time::Duration;

/// One `PATTERN=DURATION` rule.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SloRule {
    pub pattern: String,
    /// Match `http.route` instead of the span name.
    pub on_route: bool,
    pub threshold: Duration,
}

/// An ordered list of rules.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SloRules {
    rules: Vec<SloRule>,
}

/// A rule that does not parse.
#[derive(Debug, Clone, PartialEq)]
pub struct SloParseError {
    /// The rule as written.
    pub rule: String,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for SloParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SLO rule {:?}: {}; expected PATTERN=DURATION, e.g. \"GET /messages=100ms\", \"route:/messages=100ms\" or \"*=500ms\"",
            self.rule, self.reason
        )
    }
}

impl std::error::Error for SloParseError {}

impl SloRules {
    /// Reads `PATTERN=DURATION,...` (the form of `GRANULAR_SLO`): a pattern is a span-name
    /// glob, or `route:GLOB` on `http.route`; the first rule that matches a span applies.
    /// Items are trimmed and empty ones skipped (`a=1ms,,b=2ms`, a
    /// trailing comma: common where the variable is assembled by a template); the last `=`
    /// splits an item; a pattern empty, or empty after `route:`, is an error. The Collector
    /// processor parses the same way with the same error texts (`parseSLORules`); both are
    /// tested against `collector-plugin/granularprocessor/testdata/slo_rules.json`.
    pub fn parse(text: &str) -> Result<SloRules, SloParseError> {
        let mut rules = Vec::new();
        for raw in text.split(',').map(str::trim).filter(|r| !r.is_empty()) {
            let err = |reason: &str| SloParseError {
                rule: raw.to_string(),
                reason: reason.to_string(),
            };
            let (pattern, dur) = raw.rsplit_once('=').ok_or_else(|| err("no '='"))?;
            let pattern = pattern.trim();
            let (on_route, pattern) = match pattern.strip_prefix("route:") {
                Some(p) => (true, p.trim()),
                None => (false, pattern),
            };
            if pattern.is_empty() {
                return Err(err("empty pattern"));
            }
            let threshold = parse_duration(dur.trim()).map_err(|e| err(&e))?;
            rules.push(SloRule {
                pattern: pattern.to_string(),
                on_route,
                threshold,
            });
        }
        Ok(SloRules { rules })
    }

    /// The first rule matching a span, by name or `http.route`.
    #[cfg(test)]
    pub(crate) fn matching(&self, name: &str, route: Option<&str>) -> Option<&SloRule> {
        self.get(self.matching_index(name, route)?)
    }

    /// The index of the first rule matching a span, by name or `http.route`: the earlier of
    /// [`SloRules::first_on_name`] and [`SloRules::first_on_route`].
    pub(crate) fn matching_index(&self, name: &str, route: Option<&str>) -> Option<usize> {
        let by_route = route.and_then(|r| self.first_on_route(r));
        self.first_on_name(name).into_iter().chain(by_route).min()
    }

    /// The index of the first name rule matching `name`.
    pub(crate) fn first_on_name(&self, name: &str) -> Option<usize> {
        self.rules
            .iter()
            .position(|r| !r.on_route && glob(&r.pattern, name))
    }

    /// The index of the first `route:` rule matching `route`.
    pub(crate) fn first_on_route(&self, route: &str) -> Option<usize> {
        self.rules
            .iter()
            .position(|r| r.on_route && glob(&r.pattern, route))
    }

    /// The rule at `index`, as [`SloRules::matching_index`] and the `first_on_*` methods give it.
    pub(crate) fn get(&self, index: usize) -> Option<&SloRule> {
        self.rules.get(index)
    }
}

impl fmt::Display for SloRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix = if self.on_route { "route:" } else { "" };
        write!(f, "{prefix}{}={:?}", self.pattern, self.threshold)
    }
}

/// What a duration looks like, quoted in every duration error.
pub(crate) const DURATION_FORM: &str =
    "expected a number followed by us, ms, s, m or h (e.g. 250us, 100ms, 1.5s)";

/// Parses a duration: a non-negative decimal number and a unit, `us`, `ms`, `s`, `m` or `h`
/// (`250us`, `100ms`, `1.5s`, `2m`), with spaces or tabs allowed around and between them.
///
/// The Collector processor parses durations with the same rules and the same error texts
/// (`collector-plugin/granularprocessor/slo.go`, `parseDuration`); both are tested against one
/// table, `collector-plugin/granularprocessor/testdata/durations.json`. The value is exact to
/// the nanosecond (digits past the 18th after the point are ignored, finer ones truncated) and
/// at most `i64::MAX` ns, the Collector's limit.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim_matches([' ', '\t']);
    let fail = |reason: String| Err(format!("duration {s:?} {reason}; {DURATION_FORM}"));
    if s.is_empty() {
        return fail("is empty".into());
    }
    if s.starts_with('-') {
        return fail("is negative".into());
    }
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = (&s[..split], s[split..].trim_start_matches([' ', '\t']));
    if number.is_empty() {
        return fail("does not start with a number".into());
    }
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    if frac.contains('.') || (int.is_empty() && frac.is_empty()) {
        return fail(format!("has a malformed number {number:?}"));
    }
    let unit_ns: u64 = match unit {
        "" => return fail("has no unit".into()),
        "us" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        other => return fail(format!("has unit {other:?}")),
    };
    let too_large = || fail("is too large (at most 2562047h)".into());
    let mut whole: u128 = 0;
    for d in int.bytes() {
        whole = whole * 10 + u128::from(d - b'0');
        if whole > i64::MAX as u128 {
            return too_large();
        }
    }
    // The fraction's first 18 digits as an integer over 10^digits, times the unit, truncated.
    let frac = &frac[..frac.len().min(18)];
    let digits = frac
        .bytes()
        .fold(0u128, |n, d| n * 10 + u128::from(d - b'0'));
    let frac_ns = digits * u128::from(unit_ns) / 10u128.pow(frac.len() as u32);
    let ns = whole * u128::from(unit_ns) + frac_ns;
    if ns > i64::MAX as u128 {
        return too_large();
    }
    Ok(Duration::from_nanos(ns as u64))
}

/// `*` matches any run of characters; everything else literally. Allocates nothing: it runs
/// on the request path, for every span that closes.
pub(crate) fn glob(pattern: &str, text: &str) -> bool {
    if !pattern.bytes().any(|b| b == b'*') {
        return pattern == text; // most rules name one span or route
    }
    let mut parts = pattern.split('*').peekable();
    let Some(mut rest) = text.strip_prefix(parts.next().unwrap_or_default()) else {
        return false;
    };
    if parts.peek().is_none() {
        return rest.is_empty();
    }
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            return rest.ends_with(part);
        }
        match rest.find(part) {
            Some(pos) => rest = &rest[pos + part.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_matching_rule_wins() {
        let r =
            SloRules::parse("GET /messages=100ms, auth.*=20ms,route:/api/*=1s,*=500ms").unwrap();
        assert_eq!(
            r.matching("GET /messages", None).unwrap().threshold,
            Duration::from_millis(100)
        );
        assert_eq!(
            r.matching("auth.AccessToken", None).unwrap().threshold,
            Duration::from_millis(20)
        );
        assert_eq!(
            r.matching("GET /x", Some("/api/v1")).unwrap().threshold,
            Duration::from_secs(1)
        );
        assert_eq!(
            r.matching("other", None).unwrap().threshold,
            Duration::from_millis(500)
        );
    }

    #[test]
    fn bad_rules_name_the_rule_and_the_form() {
        let e = SloRules::parse("GET /messages=100").unwrap_err();
        assert_eq!(e.rule, "GET /messages=100");
        assert!(e.to_string().contains("PATTERN=DURATION"), "{e}");
    }

    /// The table the Collector processor's `parseSLORules` is tested against too: the same
    /// rules from the same text, and the same error texts. It pins the differences there
    /// were: the Collector failed on an empty item (`a=1ms,,b=2ms`, a trailing comma) that
    /// the library skipped, and the library accepted `route:=1ms`, an empty route glob.
    #[test]
    fn rules_match_the_shared_table() {
        let rows = crate::slo::shared_table("slo_rules.json", 30);
        for row in rows {
            let input = row["input"].as_str().unwrap();
            let got = SloRules::parse(input).map(|r| {
                r.rules
                    .iter()
                    .map(|r| (r.pattern.clone(), r.on_route, r.threshold.as_nanos() as u64))
                    .collect::<Vec<_>>()
            });
            match (
                row.get("rules").and_then(|v| v.as_array()),
                row.get("error"),
            ) {
                (Some(rules), None) => {
                    let want: Vec<_> = rules
                        .iter()
                        .map(|r| {
                            let pattern = r["pattern"].as_str().unwrap().to_string();
                            let on_route = r["on_route"].as_bool().unwrap();
                            (pattern, on_route, r["threshold_ns"].as_u64().unwrap())
                        })
                        .collect();
                    assert_eq!(got, Ok(want), "input {input:?}");
                }
                (None, Some(e)) => {
                    let got = got.map_err(|e| e.to_string());
                    assert_eq!(got, Err(e.as_str().unwrap().to_string()), "input {input:?}");
                }
                _ => panic!("row {row} needs rules or error"),
            }
        }
    }

    #[test]
    fn globs() {
        assert!(glob("*", ""));
        assert!(glob("a*c", "abbbc"));
        assert!(glob("*.Query", "db.Query"));
        assert!(!glob("auth.*", "db.auth.x"));
        assert!(glob("a*b*c", "a-b-c"));
        assert!(!glob("a*b*c", "a-c"));
        assert!(glob("GET /messages", "GET /messages"));
        assert!(!glob("GET /messages", "GET /messages/1"));
        assert!(!glob("GET", "GE"));
        assert!(glob("a**b", "ab"));
        assert!(!glob("ab*ba", "aba"), "the two ends must not overlap");
        assert!(glob("*x*", "axb"));
    }

    /// The table the Collector processor's `parseDuration` is tested against too: the two
    /// parsers must accept the same durations, to the nanosecond, and fail with the same text.
    #[test]
    fn durations_match_the_shared_table() {
        let rows = crate::slo::shared_table("durations.json", 20);
        for row in rows {
            let input = row["input"].as_str().unwrap();
            let got = parse_duration(input).map(|d| d.as_nanos() as u64);
            match (row.get("ns").and_then(|v| v.as_u64()), row.get("error")) {
                (Some(ns), None) => assert_eq!(got, Ok(ns), "input {input:?}"),
                (None, Some(e)) => assert_eq!(got, Err(e.as_str().unwrap().to_string())),
                _ => panic!("row {row} needs ns or error"),
            }
        }
    }
}

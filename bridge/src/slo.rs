//! SLO rules: which spans are judged, against which threshold.
//!
//! Syntax (the `GRANULAR_SLO` variable; the Collector processor reads the same):
//! comma-separated `PATTERN=DURATION`, first match wins. `PATTERN` is a span-name glob (`*`
//! matches any run of characters: `GET /messages`, `auth.*`, `*`) or `route:GLOB`, matched
//! against the span's `http.route` attribute. `DURATION` is a number with `us`, `ms` or `s`
//! (`250us`, `100ms`, `1.5s`).

use std::fmt;
use std::time::Duration;

/// One `PATTERN=DURATION` rule.
#[derive(Debug, Clone, PartialEq)]
pub struct SloRule {
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
    pub rule: String,
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
    pub fn parse(text: &str) -> Result<SloRules, SloParseError> {
        let mut rules = Vec::new();
        for raw in text.split(',').map(str::trim).filter(|r| !r.is_empty()) {
            let err = |reason: &str| SloParseError {
                rule: raw.to_string(),
                reason: reason.to_string(),
            };
            let (pattern, dur) = raw.rsplit_once('=').ok_or_else(|| err("no '='"))?;
            let pattern = pattern.trim();
            if pattern.is_empty() {
                return Err(err("empty pattern"));
            }
            let threshold = parse_duration(dur.trim()).map_err(|e| err(&e))?;
            let (on_route, pattern) = match pattern.strip_prefix("route:") {
                Some(p) => (true, p.trim().to_string()),
                None => (false, pattern.to_string()),
            };
            rules.push(SloRule {
                pattern,
                on_route,
                threshold,
            });
        }
        Ok(SloRules { rules })
    }

    /// The first rule matching a span, by name or `http.route`.
    pub fn matching(&self, name: &str, route: Option<&str>) -> Option<&SloRule> {
        let by_route = route.and_then(|r| self.first_on_route(r));
        self.first(self.first_on_name(name), by_route)
    }

    /// The index of the first name rule matching `name` (for [`SloRules::first`]).
    pub fn first_on_name(&self, name: &str) -> Option<usize> {
        self.rules
            .iter()
            .position(|r| !r.on_route && glob(&r.pattern, name))
    }

    /// The index of the first `route:` rule matching `route` (for [`SloRules::first`]).
    pub fn first_on_route(&self, route: &str) -> Option<usize> {
        self.rules
            .iter()
            .position(|r| r.on_route && glob(&r.pattern, route))
    }

    /// The rule that applies to a span whose name and route matched these first rules: the
    /// earlier of the two. Lets a span keep two indices, matched when its name and route are
    /// recorded, rather than the strings until it closes.
    pub fn first(&self, on_name: Option<usize>, on_route: Option<usize>) -> Option<&SloRule> {
        self.rules.get(on_name.into_iter().chain(on_route).min()?)
    }

    pub fn rules(&self) -> &[SloRule] {
        &self.rules
    }
}

impl fmt::Display for SloRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix = if self.on_route { "route:" } else { "" };
        write!(f, "{prefix}{}={:?}", self.pattern, self.threshold)
    }
}

/// Parses `100ms`, `1.5s`, `250us`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = s.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else {
        return Err(
            match s.trim_start_matches(|c: char| c.is_ascii_digit() || c == '.') {
                "" => format!("duration {s:?} has no unit (us, ms or s)"),
                unit => format!("duration {s:?} has unit {unit:?}; expected us, ms or s"),
            },
        );
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("duration {s:?} is not a number followed by us, ms or s"))?;
    if !v.is_finite() || v < 0.0 {
        return Err(format!("duration {s:?} must be a non-negative number"));
    }
    Ok(Duration::from_secs_f64(v * unit))
}

/// `*` matches any run of characters; everything else literally. Allocates nothing: it runs
/// on the request path, for every span that closes.
pub fn glob(pattern: &str, text: &str) -> bool {
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
        assert!(SloRules::parse("=1s").is_err());
        assert!(SloRules::parse("x=fast").is_err());
        assert!(SloRules::parse("x").is_err());
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

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert!(parse_duration("-1ms").is_err());
    }
}

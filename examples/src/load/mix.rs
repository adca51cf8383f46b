//! `--mix "block=2%,report=1%"`: which share of requests is made slow, and how.

use std::fmt;
use std::str::FromStr;

use crate::pathology::PathologyKind;

/// How the driver makes a request slow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlowKind {
    /// `/messages?pathology=NAME`: the service slows the request itself.
    Pathology(PathologyKind),
    /// A normal `/messages` request with `/report` CPU hogs sent right behind it, so it waits for
    /// a worker: slow through scheduler wait, caused by another request.
    Report,
}

impl SlowKind {
    /// The name used in `--mix` and in the driver's output.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pathology(kind) => kind.name(),
            Self::Report => "report",
        }
    }
}

impl fmt::Display for SlowKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A share of requests per slow kind; the rest are normal.
#[derive(Debug, Clone, PartialEq)]
pub struct Mix {
    shares: Vec<(SlowKind, f64)>,
}

/// The mix used without `--mix`: a little of everything, so a default run shows every case.
pub const DEFAULT_MIX: &str =
    "block=2%,blockfile=1%,alloc=1%,spawn_blocking=1%,downstream=1%,child=1%,report=1%";

impl Mix {
    /// The kind for a request given a uniform draw `percent` in `[0, 100)`: `None` means normal.
    /// Shares are laid end to end in the order given, so the same draws give the same kinds.
    pub fn pick(&self, percent: f64) -> Option<SlowKind> {
        let mut upper = 0.0;
        for &(kind, share) in &self.shares {
            upper += share;
            if percent < upper {
                return Some(kind);
            }
        }
        None
    }
}

impl FromStr for Mix {
    type Err = String;

    /// Parses `NAME=P%` entries separated by commas (`%` optional, `P` may be fractional, the
    /// empty string means no slow requests). Names are the pathologies other than `none`, plus
    /// `report`; each at most once; shares must add up to at most 100%.
    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let mut shares: Vec<(SlowKind, f64)> = Vec::new();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (name, share) = entry
                .split_once('=')
                .ok_or_else(|| format!("mix entry {entry:?} is not of the form NAME=PERCENT%"))?;
            let kind = match name.trim() {
                "report" => SlowKind::Report,
                other => match other.parse() {
                    Ok(PathologyKind::None) | Err(_) => {
                        return Err(format!(
                            "mix entry {entry:?}: unknown kind {other:?}, expected one of {}",
                            valid_names()
                        ));
                    }
                    Ok(kind) => SlowKind::Pathology(kind),
                },
            };
            let number = share.trim().trim_end_matches('%');
            let share: f64 = match number.parse() {
                Ok(p) if (0.0..=100.0).contains(&p) => p,
                _ => {
                    return Err(format!(
                        "mix entry {entry:?}: share must be a percentage from 0 to 100"
                    ));
                }
            };
            if shares.iter().any(|&(k, _)| k == kind) {
                return Err(format!("mix names {kind} more than once"));
            }
            shares.push((kind, share));
        }
        let total: f64 = shares.iter().map(|&(_, share)| share).sum();
        if total > 100.0 {
            return Err(format!("mix shares add up to {total}%, more than 100%"));
        }
        Ok(Self { shares })
    }
}

/// Names `--mix` accepts, for error messages.
fn valid_names() -> String {
    PathologyKind::ALL
        .into_iter()
        .filter(|&k| k != PathologyKind::None)
        .map(PathologyKind::name)
        .chain(["report"])
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_picks() {
        let mix: Mix = "block=2%, report=1.5 ,child=0%".parse().expect("valid mix");
        assert_eq!(
            mix.pick(0.0),
            Some(SlowKind::Pathology(PathologyKind::Block))
        );
        assert_eq!(
            mix.pick(1.99),
            Some(SlowKind::Pathology(PathologyKind::Block))
        );
        assert_eq!(mix.pick(2.0), Some(SlowKind::Report));
        assert_eq!(mix.pick(3.49), Some(SlowKind::Report));
        assert_eq!(mix.pick(3.5), None);
        assert_eq!(mix.pick(99.9), None);
    }

    #[test]
    fn empty_mix_is_all_normal_and_full_mix_is_all_slow() {
        let none: Mix = "".parse().expect("empty mix");
        assert_eq!(none.pick(0.0), None);
        let all: Mix = "alloc=100%".parse().expect("full mix");
        assert_eq!(
            all.pick(99.999),
            Some(SlowKind::Pathology(PathologyKind::Alloc))
        );
    }

    #[test]
    fn default_mix_is_valid() {
        assert!(DEFAULT_MIX.parse::<Mix>().is_ok());
    }

    #[test]
    fn rejects_bad_specs() {
        for (spec, needle) in [
            ("block", "NAME=PERCENT"),
            ("slow=1%", "unknown kind"),
            ("none=1%", "unknown kind"),
            ("block=x%", "percentage"),
            ("block=101%", "percentage"),
            ("block=-1%", "percentage"),
            ("block=1%,block=2%", "more than once"),
            ("block=60%,alloc=50%", "more than 100%"),
        ] {
            let err = spec.parse::<Mix>().expect_err(spec);
            assert!(err.contains(needle), "{spec}: {err}");
        }
    }
}

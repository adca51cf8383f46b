//! Reading configuration variables: one at a time, each once, under either policy.
//!
//! In: a lookup of variables (the process environment, or a map in tests) that tells a value
//! that is not UTF-8 apart. Out: each setting's parsed value, or — for a bad value — a
//! [`ConfigError`] naming the variable, the value, what is wrong with it (the expected form at
//! least) and the fallback kept in its place. [`Config::from_env_lenient`](super::Config::from_env_lenient) keeps every error
//! and goes on; [`strict`] makes the first one fatal.

/// A `GRANULAR_*` (or `OTEL_*`) variable with a value Granular cannot use.
///
/// [`Config::from_env`](super::Config::from_env) returns the first as an error;
/// [`Config::from_env_lenient`](super::Config::from_env_lenient) (what [`init`](fn@crate::init)
/// uses) collects them all, keeps `using` in place of each and goes on.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    /// The variable, e.g. `GRANULAR_SLO`.
    pub variable: String,
    /// The value as set (a value that is not UTF-8 is shown lossily).
    pub value: String,
    /// What is wrong with it: the expected form ("expected true or false"), after what
    /// a parser found where it can say more (`SLO rule "*=fast": duration "fast" does not …`).
    pub problem: String,
    /// What Granular uses instead when it goes on (the default, or a wider variable's value).
    pub using: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}={:?} is invalid: {}",
            self.variable, self.value, self.problem
        )
    }
}

impl ConfigError {
    /// The warning [`init`](fn@crate::init) logs: the error and what is used instead.
    pub fn warning(&self) -> String {
        format!("{self}; using {} instead", self.using)
    }
}

impl std::error::Error for ConfigError {}

/// Reads variables one at a time, each once, through a lookup that tells a value that is not
/// UTF-8 apart (`Err` with its lossy text). A bad value becomes a [`ConfigError`] and the
/// setting keeps its fallback; the caller decides whether errors are fatal.
pub(super) struct Reader<'a> {
    get: &'a dyn Fn(&str) -> Option<Result<String, String>>,
    errors: Vec<ConfigError>,
}

impl<'a> Reader<'a> {
    pub(super) fn new(get: &'a dyn Fn(&str) -> Option<Result<String, String>>) -> Reader<'a> {
        Reader {
            get,
            errors: Vec::new(),
        }
    }

    /// The errors so far, in the order the variables were read.
    pub(super) fn into_errors(self) -> Vec<ConfigError> {
        self.errors
    }

    /// `name`'s value parsed by `parse` (whose error is the expected form), `None` when the
    /// variable is unset or blank, or bad: then the error is kept with `using`, the fallback
    /// the caller keeps.
    pub(super) fn read<T>(
        &mut self,
        name: &str,
        using: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        self.read_explained(name, using, |v| {
            parse(v).map_err(|expected| format!("expected {expected}"))
        })
    }

    /// As [`Reader::read`], for a parser whose error says itself what is wrong and what was
    /// expected (the whole text after "is invalid: ").
    pub(super) fn read_explained<T>(
        &mut self,
        name: &str,
        using: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let (value, parsed) = match (self.get)(name)? {
            Ok(v) if v.trim().is_empty() => return None,
            Ok(v) => {
                let parsed = parse(v.trim());
                (v, parsed)
            }
            Err(lossy) => (lossy, Err("expected a UTF-8 value".to_string())),
        };
        parsed
            .map_err(|problem| self.reject(name, &value, problem, using))
            .ok()
    }

    fn reject(&mut self, name: &str, value: &str, problem: String, using: &str) {
        self.errors.push(ConfigError {
            variable: name.into(),
            value: value.into(),
            problem,
            using: using.into(),
        });
    }

    /// A whole number, at least `min`, at most `max`.
    pub(super) fn number(
        &mut self,
        name: &str,
        using: &str,
        expected: &str,
        min: u64,
        max: u64,
    ) -> Option<u64> {
        self.read(name, using, |v| {
            v.parse::<u64>()
                .ok()
                .filter(|n| (min..=max).contains(n))
                .ok_or_else(|| expected.to_string())
        })
    }

    /// A boolean in Granular's spelling (`true`/`false`, `1`/`0`, `on`/`off`, `yes`/`no`).
    pub(super) fn flag(&mut self, name: &str, using: &str) -> Option<bool> {
        self.read(name, using, |v| {
            parse_bool(v).ok_or_else(|| "true or false".to_string())
        })
    }

    /// One of `choices` (value, setting).
    pub(super) fn choice<T: Clone>(
        &mut self,
        name: &str,
        using: &str,
        choices: &[(&str, T)],
    ) -> Option<T> {
        self.read(name, using, |v| {
            choices
                .iter()
                .find(|(text, _)| *text == v)
                .map(|(_, t)| t.clone())
                .ok_or_else(|| {
                    let names: Vec<&str> = choices.iter().map(|(text, _)| *text).collect();
                    match names.split_last() {
                        Some((last, [])) => last.to_string(),
                        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
                        None => String::new(),
                    }
                })
        })
    }

    /// An OTLP setting: the signal's variable, else the generic one, else `default`
    /// (`default_text` in a warning).
    pub(super) fn otlp<T: Copy>(
        &mut self,
        setting: &str,
        signal: &str,
        generic: Option<T>,
        (default, default_text): (T, &str),
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> T {
        let var = format!("OTEL_EXPORTER_OTLP_{signal}_{setting}");
        let using = match generic {
            Some(_) => format!("OTEL_EXPORTER_OTLP_{setting}'s value"),
            None => default_text.to_string(),
        };
        self.read(&var, &using, parse)
            .or(generic)
            .unwrap_or(default)
    }
}

/// The strict policy over the lenient reading: the first error, if any.
pub(super) fn strict<T>((c, mut errors): (T, Vec<ConfigError>)) -> Result<T, ConfigError> {
    if errors.is_empty() {
        Ok(c)
    } else {
        Err(errors.swap_remove(0))
    }
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "on" | "yes" => Some(true),
        "0" | "false" | "off" | "no" => Some(false),
        _ => None,
    }
}

//! Log lines for [`GranularSubscriber`](super::subscriber::GranularSubscriber): each event
//! written to standard output the way `tracing-subscriber`'s default fmt layer writes it
//! (RFC 3339 UTC time, level, the names of the spans it is in, target, message and fields),
//! without colours and without the spans' fields, which the subscriber does not keep.

use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::Event;
use tracing::field::{Field, Visit};

/// Formats `event`, inside the spans named by `scope` (outermost first), into one line.
pub(crate) fn format(event: &Event<'_>, scope: &[&str], now: SystemTime) -> String {
    let meta = event.metadata();
    let mut line = String::with_capacity(128);
    write_timestamp(&mut line, now);
    let _ = write!(line, " {:>5} ", meta.level().as_str());
    if !scope.is_empty() {
        line.push_str(&scope.join(":"));
        line.push_str(": ");
    }
    line.push_str(meta.target());
    line.push_str(": ");
    let mut fields = Fields::default();
    event.record(&mut fields);
    line.push_str(&fields.message);
    if !fields.message.is_empty() && !fields.rest.is_empty() {
        line.push(' ');
    }
    line.push_str(&fields.rest);
    line.push('\n');
    line
}

/// Writes `line` to standard output in one call; a failed write is dropped, never retried.
pub(crate) fn write(line: &str) {
    let _ = std::io::stdout().lock().write_all(line.as_bytes());
}

#[derive(Default)]
struct Fields {
    message: String,
    rest: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            self.record_debug(field, &value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let name = field.name();
        if name.starts_with("log.") {
            return;
        }
        if name == "message" {
            let _ = write!(self.message, "{value:?}");
            return;
        }
        if !self.rest.is_empty() {
            self.rest.push(' ');
        }
        let _ = write!(
            self.rest,
            "{}={value:?}",
            name.strip_prefix("r#").unwrap_or(name)
        );
    }
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
fn write_timestamp(out: &mut String, now: SystemTime) {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let s = secs % 86_400;
    let _ = write!(
        out,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:06}Z",
        s / 3600,
        s / 60 % 60,
        s % 60,
        since.subsec_micros()
    );
}

/// The proleptic Gregorian date of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    #[test]
    fn dates_match_known_days() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_783), (2026, 11, 26));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    /// Captures the formatted lines of the events it sees.
    struct Capture(Arc<Mutex<Vec<String>>>);

    impl tracing::Subscriber for Capture {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            tracing::span::Id::from_u64(1)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, event: &Event<'_>) {
            let at = UNIX_EPOCH + Duration::from_micros(1_795_000_000_123_456);
            self.0
                .lock()
                .unwrap()
                .push(format(event, &["req", "db"], at));
        }
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }

    #[test]
    fn lines_read_like_the_fmt_layer() {
        let lines = Arc::new(Mutex::new(Vec::new()));
        tracing::subscriber::with_default(Capture(lines.clone()), || {
            tracing::warn!(target: "app", rows = 3, name = "x", "query {}", "slow");
        });
        assert_eq!(
            lines.lock().unwrap().as_slice(),
            ["2026-11-18T11:06:40.123456Z  WARN req:db: app: query slow rows=3 name=\"x\"\n"]
        );
    }
}

//! Command line of `load-driver`, parsed by hand: a dozen flags do not need a parser crate.

use std::path::PathBuf;
use std::time::Duration;

use super::mix::{DEFAULT_MIX, Mix};

/// Usage text printed by `--help` and after a bad command line.
pub const USAGE: &str = "\
usage: load-driver --url http://127.0.0.1:PORT [options]

  --url URL          base URL of demo-service (required; only this URL is contacted)
  --rate N           requests per second (default 50)
  --duration SECS    how long to send (default 5); in-flight requests are then awaited
  --mix SPEC         share of slow requests, e.g. \"block=2%,report=1%\" (default:
                     block=2%,blockfile=1%,alloc=1%,spawn_blocking=1%,downstream=1%,child=1%,report=1%;
                     \"\" for none). Kinds: block, blockfile, alloc, spawn_blocking, downstream,
                     child, sleep, tokio_blocking, child_blocking, nested_alloc, fanout,
                     blocking_spans, lock, std_lock, command, command_status, fifo, socket,
                     disk_read, report
  --seed N           seed of the request mix (default: random, printed in the summary)
  --concurrency N    most requests in flight (default 64)
  --hogs N           /report hogs sent per `report` request, match DEMO_WORKERS (default 2)
  --report-ms N      CPU each hog burns, in ms (default 100)
  --json PATH        also write the results as JSON to PATH (with every request: kind,
                     trace id, when it was sent and its latency)
  --help             print this text";

/// What the driver was asked to do.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadArgs {
    /// Base URL of the service, without a trailing slash.
    pub url: String,
    /// Requests (events) per second.
    pub rate: f64,
    /// How long to keep sending.
    pub duration: Duration,
    /// Which requests are made slow.
    pub mix: Mix,
    /// Seed of the mix; `None` picks one at random.
    pub seed: Option<u64>,
    /// Most requests in flight at once.
    pub concurrency: usize,
    /// `/report` hogs per `report` request: as many as the service has workers, so every
    /// worker is busy when the victim's timer fires.
    pub hogs: usize,
    /// CPU each hog burns.
    pub report_ms: u64,
    /// Where to write the JSON results.
    pub json: Option<PathBuf>,
}

/// A parsed command line.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Run the load.
    Run(LoadArgs),
    /// Print [`USAGE`].
    Help,
}

/// Parses the arguments after the program name; flags take `--flag value` or `--flag=value`.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    let mut url = None;
    let mut parsed = LoadArgs {
        url: String::new(),
        rate: 50.0,
        duration: Duration::from_secs(5),
        mix: DEFAULT_MIX.parse()?,
        seed: None,
        concurrency: 64,
        hogs: 2,
        report_ms: 100,
        json: None,
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if arg == "--help" || arg == "-h" {
            return Ok(Command::Help);
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag.to_owned(), Some(value.into())),
            _ => (arg, None),
        };
        let value = match inline.or_else(|| args.next()) {
            Some(value) => value,
            None => return Err(format!("{flag} needs a value")),
        };
        match flag.as_str() {
            "--url" => url = Some(parse_url(&value)?),
            "--rate" => parsed.rate = number(&flag, &value, 0.001, 10_000.0)?,
            "--duration" => {
                parsed.duration = Duration::from_secs_f64(number(&flag, &value, 0.001, 86_400.0)?)
            }
            "--mix" => parsed.mix = value.parse()?,
            "--seed" => parsed.seed = Some(whole(&flag, &value, 0, u64::MAX)?),
            "--concurrency" => parsed.concurrency = whole(&flag, &value, 1, 10_000)? as usize,
            "--hogs" => parsed.hogs = whole(&flag, &value, 1, 64)? as usize,
            "--report-ms" => parsed.report_ms = whole(&flag, &value, 1, 60_000)?,
            "--json" => parsed.json = Some(PathBuf::from(value)),
            _ => return Err(format!("unknown argument {flag:?}")),
        }
    }
    parsed.url = url.ok_or("--url is required")?;
    Ok(Command::Run(parsed))
}

/// An `http://` URL (the driver speaks no TLS), returned without a trailing slash.
fn parse_url(value: &str) -> Result<String, String> {
    match reqwest::Url::parse(value) {
        Ok(url) if url.scheme() == "http" && url.has_host() => {
            Ok(value.trim_end_matches('/').to_owned())
        }
        _ => Err(format!(
            "--url {value:?} is invalid: expected an http:// URL such as http://127.0.0.1:8080"
        )),
    }
}

fn number(flag: &str, value: &str, min: f64, max: f64) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!(
            "{flag} {value:?} is invalid: expected a number from {min} to {max}"
        )),
    }
}

fn whole(flag: &str, value: &str, min: u64, max: u64) -> Result<u64, String> {
    match value.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!(
            "{flag} {value:?} is invalid: expected a whole number from {min} to {max}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use crate::pathology::PathologyKind;

    /// The usage text once listed only the kinds there were when it was written.
    #[test]
    fn usage_lists_every_kind_the_mix_accepts() {
        let listed = USAGE
            .split("Kinds:")
            .nth(1)
            .expect("a Kinds: list")
            .split("--seed")
            .next()
            .unwrap_or_default();
        let listed: Vec<&str> = listed
            .split([',', ' ', '\n'])
            .filter(|w| !w.is_empty())
            .collect();
        for kind in PathologyKind::ALL
            .into_iter()
            .filter(|&k| k != PathologyKind::None)
        {
            assert!(
                listed.contains(&kind.name()),
                "{} is not in the usage",
                kind.name()
            );
        }
    }

    use super::*;

    fn run(args: &[&str]) -> Result<LoadArgs, String> {
        match parse(args.iter().map(|a| a.to_string()))? {
            Command::Run(args) => Ok(args),
            Command::Help => Err("help".into()),
        }
    }

    #[test]
    fn defaults() {
        let args = run(&["--url", "http://127.0.0.1:8080/"]).expect("valid");
        assert_eq!(args.url, "http://127.0.0.1:8080");
        assert_eq!(args.rate, 50.0);
        assert_eq!(args.duration, Duration::from_secs(5));
        assert_eq!(args.mix, DEFAULT_MIX.parse().expect("default mix"));
        assert_eq!((args.seed, args.concurrency, args.hogs), (None, 64, 2));
        assert_eq!((args.report_ms, args.json), (100, None));
    }

    #[test]
    fn all_flags() {
        let args = run(&[
            "--url=http://127.0.0.1:1",
            "--rate",
            "20",
            "--duration=0.5",
            "--mix",
            "block=10%",
            "--seed",
            "42",
            "--concurrency",
            "8",
            "--hogs",
            "4",
            "--report-ms",
            "250",
            "--json",
            "out.json",
        ])
        .expect("valid");
        assert_eq!(args.rate, 20.0);
        assert_eq!(args.duration, Duration::from_millis(500));
        assert_eq!(args.mix, "block=10%".parse().expect("mix"));
        assert_eq!((args.seed, args.concurrency, args.hogs), (Some(42), 8, 4));
        assert_eq!(args.report_ms, 250);
        assert_eq!(args.json, Some(PathBuf::from("out.json")));
    }

    #[test]
    fn help_and_errors() {
        assert_eq!(parse(["--help".to_string()]), Ok(Command::Help));
        for (args, needle) in [
            (&[][..], "--url is required"),
            (&["--url"][..], "needs a value"),
            (&["--url", "https://127.0.0.1:1"][..], "http://"),
            (
                &["--url", "http://127.0.0.1:1", "--rate", "0"][..],
                "--rate",
            ),
            (
                &["--url", "http://127.0.0.1:1", "--bogus", "1"][..],
                "unknown",
            ),
            (
                &["--url", "http://127.0.0.1:1", "--mix", "x=1%"][..],
                "unknown kind",
            ),
        ] {
            let err = run(args).expect_err("invalid");
            assert!(err.contains(needle), "{args:?}: {err}");
        }
    }
}

//! `trace-report`: prints traces stored in Jaeger as readable span trees —
//! per span its service, name and duration, then its `granular.*`
//! attributes and its events — instead of raw JSON.

use std::process::ExitCode;
use std::time::Duration;

use granular_e2e::jaeger::QueryClient;
use granular_e2e::trace::Trace;

const USAGE: &str = "\
usage: trace-report [--jaeger URL] [--wait SECS] TRACE_ID...

  --jaeger URL   Jaeger query API base URL (default: $JAEGER_QUERY, as printed
                 by deploy/jaeger/run.sh)
  --wait SECS    how long to wait for each trace to arrive complete (default 10)
  --help         print this text";

struct Args {
    jaeger: String,
    wait: Duration,
    trace_ids: Vec<String>,
}

fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("error: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let query = match QueryClient::new(&args.jaeger) {
        Ok(query) => query,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut status = ExitCode::SUCCESS;
    for (i, trace_id) in args.trace_ids.iter().enumerate() {
        if i > 0 {
            println!();
        }
        match report(&query, trace_id, args.wait) {
            Ok(text) => print!("{text}"),
            Err(e) => {
                eprintln!("error: {e}");
                status = ExitCode::FAILURE;
            }
        }
    }
    status
}

/// The rendered trace; an incomplete one (some parent never arrived) is
/// still shown, with a warning.
fn report(query: &QueryClient, trace_id: &str, wait: Duration) -> granular_e2e::Result<String> {
    match query.fetch_trace(trace_id, wait, Trace::is_connected) {
        Ok(trace) => Ok(trace.render()),
        Err(incomplete) => {
            let trace = query
                .fetch_trace(trace_id, Duration::ZERO, |_| true)
                .map_err(|_| incomplete)?;
            eprintln!(
                "warning: trace {trace_id} is incomplete after {wait:?}; showing what arrived"
            );
            Ok(trace.render())
        }
    }
}

/// `Ok(None)` for `--help`.
fn parse(mut args: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut jaeger = std::env::var("JAEGER_QUERY").ok();
    let mut wait = Duration::from_secs(10);
    let mut trace_ids = Vec::new();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_owned(), Some(value.to_owned()))
            }
            _ => (arg, None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or(format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--help" | "-h" => return Ok(None),
            "--jaeger" => jaeger = Some(value()?),
            "--wait" => {
                let text = value()?;
                let secs: f64 = text
                    .parse()
                    .ok()
                    .filter(|secs: &f64| (0.0..=3600.0).contains(secs))
                    .ok_or(format!(
                        "--wait {text:?} is invalid: expected seconds from 0 to 3600"
                    ))?;
                wait = Duration::from_secs_f64(secs);
            }
            id if !id.starts_with('-')
                && id.len() <= 32
                && id.chars().all(|c| c.is_ascii_hexdigit()) =>
            {
                trace_ids.push(id.to_ascii_lowercase());
            }
            other => return Err(format!("unexpected argument {other:?} (trace ids are hex)")),
        }
    }
    let jaeger = jaeger.ok_or("--jaeger URL is required (or set JAEGER_QUERY)")?;
    if trace_ids.is_empty() {
        return Err("no trace id given".to_owned());
    }
    Ok(Some(Args {
        jaeger,
        wait,
        trace_ids,
    }))
}

//! `overhead`: demo-service's overhead under each telemetry stack, side by side (see
//! `granular_e2e::bench::overhead`). Writes the "Service overhead" section of
//! docs/benchmarks.md unless `--smoke` or `--no-docs`.
//!
//! ```text
//! cargo run --release -p granular-e2e --bin overhead -- --rounds 5 --duration 10
//! cargo run -p granular-e2e --bin overhead -- --smoke      # CI: harness check, < 1 min
//! ```
//! Exit status: 0 done; 1 a correctness check failed (request errors, the violations
//! check at the fixed rate; the one at saturation is a reported target); 2 the harness could
//! not run.

use std::process::ExitCode;
use std::time::Duration;

use granular_e2e::bench::overhead::{Options, run};
use granular_e2e::workspace_root;

const USAGE: &str = "\
usage: overhead [options]

  --rounds N          alternating rounds (default 5)
  --duration SECS     length of each measured phase (default 10)
  --warmup SECS       warm-up per configuration and round (default 1)
  --rate N            fixed-rate phase, requests/s (default 500)
  --connections N,M   one saturation phase per connection count (default 32,64)
  --workers N         the service's tokio workers (default 1: pinned to one CPU, the load
                      generator and Jaeger to another; more: every CPU, shared with them)
  --only KEYS         comma-separated configuration keys, e.g. a,b,d,e (default: all)
  --no-compare        skip the dial9/console build (--cfg tokio_unstable --cfg granular_compare)
  --compare           include it even with --smoke
  --no-build          use the binaries already built
  --no-docs           do not write docs/benchmarks.md
  --smoke             1 round, 1 s phases, no compare build, no docs: checks the harness";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match parse(&args) {
        Ok(Some(options)) => options,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("error: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&options) {
        Ok((markdown, ok)) => {
            println!("{markdown}");
            if ok {
                ExitCode::SUCCESS
            } else {
                eprintln!("overhead: a correctness check failed (see the tables)");
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn parse(args: &[String]) -> Result<Option<Options>, String> {
    let smoke = args.iter().any(|a| a == "--smoke");
    let mut o = Options {
        rounds: if smoke { 1 } else { 5 },
        duration: Duration::from_secs(if smoke { 1 } else { 10 }),
        warmup: Duration::from_millis(if smoke { 300 } else { 1000 }),
        rate: if smoke { 200.0 } else { 500.0 },
        rate_connections: if smoke { 64 } else { 256 },
        connections: if smoke { vec![32] } else { vec![32, 64] },
        workers: 1,
        compare: !smoke,
        build: true,
        only: Vec::new(),
        docs: (!smoke).then(|| workspace_root().join("docs/benchmarks.md")),
        command: format!(
            "cargo run --release -p granular-e2e --bin overhead --{}",
            args.iter().map(|a| format!(" {a}")).collect::<String>()
        ),
        smoke,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        let number = |name: &str, v: String, min: f64, max: f64| match v.parse::<f64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(format!(
                "{name} {v:?}: expected a number from {min} to {max}"
            )),
        };
        match arg.as_str() {
            "--help" | "-h" => return Ok(None),
            "--smoke" => {}
            "--rounds" => o.rounds = number(arg, value(arg)?, 1.0, 100.0)? as usize,
            "--duration" => {
                o.duration = Duration::from_secs_f64(number(arg, value(arg)?, 0.2, 600.0)?)
            }
            "--warmup" => o.warmup = Duration::from_secs_f64(number(arg, value(arg)?, 0.0, 60.0)?),
            "--rate" => o.rate = number(arg, value(arg)?, 1.0, 100_000.0)?,
            "--workers" => o.workers = number(arg, value(arg)?, 1.0, 256.0)? as usize,
            "--connections" => {
                o.connections = value(arg)?
                    .split(',')
                    .map(|c| number(arg, c.trim().to_owned(), 1.0, 2000.0).map(|n| n as usize))
                    .collect::<Result<_, _>>()?
            }
            "--only" => {
                o.only = value(arg)?
                    .split(',')
                    .map(|k| k.trim().to_owned())
                    .collect()
            }
            "--no-compare" => o.compare = false,
            "--compare" => o.compare = true,
            "--no-build" => o.build = false,
            "--no-docs" => o.docs = None,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Some(o))
}

//! `granular`: look at Granular's answers without a UI. See [`granular_cli`].

use std::process::ExitCode;

use granular_cli::explain;

const USAGE: &str = "\
usage: granular <command> [options]

commands:
  explain TRACE_ID...   print traces from Jaeger's query API as span trees with
                        Granular's breakdowns, and where to open their timelines
  help                  print this text

`granular <command> --help` describes a command.";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("explain") => {
            let jaeger = std::env::var("JAEGER_QUERY").ok();
            match explain::parse(args, jaeger) {
                Ok(Some(a)) => match explain::run(&a) {
                    Ok(true) => ExitCode::SUCCESS,
                    Ok(false) => ExitCode::FAILURE,
                    Err(e) => {
                        eprintln!("error: {e}");
                        ExitCode::FAILURE
                    }
                },
                Ok(None) => {
                    println!("{}", explain::USAGE);
                    ExitCode::SUCCESS
                }
                Err(e) => usage_error(&e, explain::USAGE),
            }
        }
        Some("help" | "--help" | "-h") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some(other) => usage_error(&format!("unknown command {other:?}"), USAGE),
        None => usage_error("no command given", USAGE),
    }
}

/// Prints `error` and `usage` to stderr; exit code 2, as for any bad invocation.
fn usage_error(error: &str, usage: &str) -> ExitCode {
    eprintln!("error: {error}\n\n{usage}");
    ExitCode::from(2)
}

//! `granular`: the command-line companion of the Granular library (see [`granular_cli`]).
//!
//! Each subcommand is a module with a `run(args) -> ExitCode` taking the arguments after its
//! name; [`SUBCOMMANDS`] dispatches to them. Exit codes: 0 done, 1 failed while running, 2 bad
//! arguments (with the usage on stderr).

use std::process::ExitCode;

use granular_cli::explain;

mod serve;

/// A subcommand: its name, a one-line summary, and what runs it.
struct Subcommand {
    name: &'static str,
    summary: &'static str,
    run: fn(Vec<String>) -> ExitCode,
}

const SUBCOMMANDS: &[Subcommand] = &[
    Subcommand {
        name: "explain",
        summary: "print traces from Jaeger's query API with Granular's breakdowns and viewer links",
        run: run_explain,
    },
    Subcommand {
        name: "serve",
        summary: "serve a directory of artifacts (GRANULAR_ARTIFACT_DIR) with the viewer",
        run: serve::run,
    },
];

/// `granular explain [--jaeger URL] [--wait SECS] TRACE_ID...` ([`explain`]).
fn run_explain(args: Vec<String>) -> ExitCode {
    match explain::parse(args.into_iter(), std::env::var("JAEGER_QUERY").ok()) {
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
        Err(e) => {
            eprintln!("error: {e}\n\n{}", explain::USAGE);
            ExitCode::from(USAGE_ERROR)
        }
    }
}

/// Exit code for bad arguments.
pub(crate) const USAGE_ERROR: u8 = 2;

fn usage() -> String {
    let mut text = String::from("usage: granular <command> [arguments]\n\ncommands:\n");
    for s in SUBCOMMANDS {
        text.push_str(&format!("  {:<8} {}\n", s.name, s.summary));
    }
    text.push_str("\n`granular <command> --help` describes a command.\n");
    text
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(command) = args.next() else {
        eprint!("{}", usage());
        eprintln!("error: no command given");
        return ExitCode::from(USAGE_ERROR);
    };
    if command == "--help" || command == "-h" || command == "help" {
        print!("{}", usage());
        return ExitCode::SUCCESS;
    }
    match SUBCOMMANDS.iter().find(|s| s.name == command) {
        Some(s) => (s.run)(args.collect()),
        None => {
            eprint!("{}", usage());
            eprintln!("error: unknown command {command:?}");
            ExitCode::from(USAGE_ERROR)
        }
    }
}

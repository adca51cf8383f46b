//! `load-driver`: sends a mix of normal and slow-on-purpose requests to `demo-service` and prints
//! the trace ids of the slow ones. Run with `--help` for the flags.
//!
//! Exit status: 0 after a run in which some request succeeded, 1 when none did (the service is
//! probably down) or the JSON could not be written, 2 for a bad command line.

use std::process::ExitCode;

use granular_examples::load::args::{self, Command, USAGE};
use granular_examples::load::run;
use granular_examples::load::summary::Summary;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = match args::parse(std::env::args().skip(1)) {
        Ok(Command::Run(args)) => args,
        Ok(Command::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("error: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let outcome = match run::run(&args).await {
        Ok(outcome) => outcome,
        Err(e) => {
            eprintln!("error: cannot build the HTTP client: {e}");
            return ExitCode::FAILURE;
        }
    };
    let summary = Summary::new(&outcome);
    for error in &summary.first_errors {
        eprintln!("request failed: {error}");
    }
    print!("{}", summary.text());
    if let Some(path) = &args.json {
        let written = serde_json::to_vec_pretty(&summary)
            .map_err(std::io::Error::other)
            .and_then(|json| std::fs::write(path, json));
        if let Err(e) = written {
            eprintln!("error: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    if summary.ok == 0 {
        eprintln!("error: no request succeeded");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

//! `granular serve [--addr ADDR] [--allow-remote] <dir>`: a local artifact directory (the
//! default `dir` mode's `GRANULAR_ARTIFACT_DIR`) in the browser, through Granular's viewer
//! ([`granular::viewer`]), for hosts that cannot reach ui.perfetto.dev.
//!
//! Routes: `/` lists the artifacts newest first (with the span and trace each timeline is
//! titled with); `/view/<name>` is the viewer page of one, which fetches `/artifacts/<name>`,
//! its raw bytes (`application/octet-stream`). Names are checked ([`dir`]): a bad one is a 400
//! and a missing one a 404, each with a body naming what was wrong. Binds loopback by default;
//! another address needs `--allow-remote` (there is no authentication).

mod args;
mod dir;
mod index;
mod title;

use std::process::ExitCode;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use crate::USAGE_ERROR;
use args::{Args, Parsed};
use dir::{ArtifactDir, Refusal};

/// Runs `granular serve` with the arguments after `serve`.
pub(crate) fn run(argv: Vec<String>) -> ExitCode {
    let args = match args::parse(argv) {
        Ok(Parsed::Serve(args)) => args,
        Ok(Parsed::Help) => {
            print!("{}", args::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprint!("{}", args::USAGE);
            eprintln!("error: {e}");
            return ExitCode::from(USAGE_ERROR);
        }
    };
    let artifacts = match ArtifactDir::open(&args.dir) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(USAGE_ERROR);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(args, artifacts)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: Args, artifacts: ArtifactDir) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.addr))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("cannot read the bound address: {e}"))?;
    if args.allow_remote && !addr.ip().is_loopback() {
        eprintln!(
            "warning: serving on {addr}, beyond this host: anyone who reaches it can read every \
             artifact (span names, trace ids, timings); there is no authentication"
        );
    }
    let base = format!("http://{addr}");
    println!(
        "granular serve: serving {} at {base}/",
        artifacts.path().display()
    );
    let listed = artifacts.list()?;
    if listed.is_empty() {
        println!("  no artifacts yet: they are listed at {base}/ as they are written");
    }
    for a in &listed {
        println!(
            "  {base}/view/{}  {}",
            a.name,
            a.title.as_deref().unwrap_or("")
        );
    }
    let app = Router::new()
        .route("/", get(list))
        .route("/view/{name}", get(view))
        .route("/artifacts/{name}", get(raw))
        .fallback(not_found)
        .with_state(artifacts);
    axum::serve(listener, app)
        .await
        .map_err(|e| format!("serving {addr} failed: {e}"))
}

async fn list(State(artifacts): State<ArtifactDir>) -> Response {
    match artifacts.list() {
        Ok(listed) => Html(index::page(artifacts.path(), &listed)).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
    }
}

async fn view(State(artifacts): State<ArtifactDir>, Path(name): Path<String>) -> Response {
    match artifacts.find(&name) {
        Ok(path) => {
            let title = match title::read(&path) {
                Some(t) => format!("{t} — Granular"),
                None => format!("{name} — Granular"),
            };
            // Names are letters, digits, '.', '_' and '-' (checked by `find`): safe in a URL.
            Html(granular::viewer::page(
                &format!("/artifacts/{name}"),
                &title,
            ))
            .into_response()
        }
        Err(r) => refusal(r),
    }
}

async fn raw(State(artifacts): State<ArtifactDir>, Path(name): Path<String>) -> Response {
    match artifacts.read(&name) {
        Ok(bytes) => (
            [
                (header::CONTENT_TYPE, "application/octet-stream"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            bytes,
        )
            .into_response(),
        Err(r) => refusal(r),
    }
}

async fn not_found(uri: Uri) -> Response {
    (
        StatusCode::NOT_FOUND,
        format!(
            "not found: {}; this server serves /, /view/<name> and /artifacts/<name>\n",
            uri.path()
        ),
    )
        .into_response()
}

fn refusal(r: Refusal) -> Response {
    let (status, message) = match r {
        Refusal::BadName(m) => (StatusCode::BAD_REQUEST, m),
        Refusal::NotFound(m) => (StatusCode::NOT_FOUND, m),
        Refusal::Unreadable(m) => (StatusCode::INTERNAL_SERVER_ERROR, m),
    };
    (status, format!("{message}\n")).into_response()
}

//! `granular explain <trace-id>…`: each trace as Jaeger's query API returns it, as a readable
//! span tree (per span its service, name and duration, its `granular.*` attributes and events),
//! then where to open each violating span's timeline in the viewer.

use std::path::Path;
use std::time::Duration;

use crate::Result;
use crate::jaeger::QueryClient;
use crate::trace::Trace;

pub const USAGE: &str = "\
usage: granular explain [--jaeger URL] [--wait SECS] TRACE_ID...

  --jaeger URL   Jaeger query API base URL (default: $JAEGER_QUERY, as printed
                 by deploy/jaeger/run.sh)
  --wait SECS    how long to wait for each trace to arrive complete (default 10)
  --help         print this text";

/// What `explain` was asked.
#[derive(Debug, Clone, PartialEq)]
pub struct Args {
    pub jaeger: String,
    pub wait: Duration,
    pub trace_ids: Vec<String>,
}

/// Parses `explain`'s arguments (after the subcommand); `Ok(None)` for `--help`. `jaeger_env`
/// is `$JAEGER_QUERY`.
pub fn parse(
    mut args: impl Iterator<Item = String>,
    jaeger_env: Option<String>,
) -> std::result::Result<Option<Args>, String> {
    let mut jaeger = jaeger_env.filter(|v| !v.is_empty());
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
            other => {
                return Err(format!(
                    "unexpected argument {other:?} (a trace id is up to 32 hex digits)"
                ));
            }
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

/// The report of one trace: its tree, then its viewer links. An incomplete trace (some parent
/// never arrived within `wait`) is still shown, with a warning on stderr.
pub fn explain(query: &QueryClient, trace_id: &str, wait: Duration) -> Result<String> {
    let trace = match query.fetch_trace(trace_id, wait, Trace::is_connected) {
        Ok(trace) => trace,
        Err(incomplete) => {
            let trace = query
                .fetch_trace(trace_id, Duration::ZERO, |_| true)
                .map_err(|_| incomplete)?;
            eprintln!(
                "warning: trace {trace_id} is incomplete after {wait:?}; showing what arrived"
            );
            trace
        }
    };
    let mut out = trace.render();
    let links = viewer_links(&trace);
    if !links.is_empty() {
        out.push_str("\nOpen the runtime timeline:\n");
        for (span, how) in links {
            out.push_str(&format!("  {span}: {how}\n"));
        }
    }
    Ok(out)
}

/// For each span with a `granular.artifact`: its name and how to open it in the viewer.
pub fn viewer_links(trace: &Trace) -> Vec<(String, String)> {
    let mut links = Vec::new();
    for span in &trace.spans {
        if let Some(artifact) = span.tag_str("granular.artifact") {
            links.push((span.operation_name.clone(), open_with(artifact)));
        }
    }
    links
}

/// How to open an artifact in the viewer: the Collector extension's viewer page for one it
/// stores (`…/artifacts/<id>` → `…/view/<id>`), `granular serve` for a local file.
pub fn open_with(artifact: &str) -> String {
    if let Some(page) = viewer_url(artifact) {
        return page;
    }
    let path = artifact.strip_prefix("file://").unwrap_or(artifact);
    let path = Path::new(path);
    match (path.parent(), path.file_name()) {
        (Some(dir), Some(name)) if path.is_absolute() => format!(
            "granular serve {} (then open /view/{} at the address it prints)",
            dir.display(),
            name.to_string_lossy()
        ),
        _ => format!("{artifact} (not a link the viewer can open)"),
    }
}

/// The viewer page of an artifact the Collector's `granular_artifacts` extension serves.
pub fn viewer_url(artifact: &str) -> Option<String> {
    if !(artifact.starts_with("http://") || artifact.starts_with("https://")) {
        return None;
    }
    let (base, id) = artifact.rsplit_once("/artifacts/")?;
    (!id.is_empty() && !id.contains('/')).then(|| format!("{base}/view/{id}"))
}

/// Runs `explain` for every trace id; returns whether all were found.
pub fn run(args: &Args) -> Result<bool> {
    let query = QueryClient::new(&args.jaeger)?;
    let mut all = true;
    for (i, trace_id) in args.trace_ids.iter().enumerate() {
        if i > 0 {
            println!();
        }
        match explain(&query, trace_id, args.wait) {
            Ok(text) => print!("{text}"),
            Err(e) => {
                eprintln!("error: {e}");
                all = false;
            }
        }
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> impl Iterator<Item = String> {
        list.iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn arguments_are_checked_and_name_what_was_wrong() {
        let ok = parse(args(&["--wait=2", "ABC123"]), Some("http://j:16686".into()))
            .unwrap()
            .unwrap();
        assert_eq!(ok.trace_ids, ["abc123"]);
        assert_eq!(ok.wait, Duration::from_secs(2));
        assert_eq!(parse(args(&["--help"]), None), Ok(None));
        assert_eq!(
            parse(args(&["abc"]), None),
            Err("--jaeger URL is required (or set JAEGER_QUERY)".into())
        );
        assert_eq!(
            parse(args(&["--jaeger", "http://j", "--wait", "x", "abc"]), None),
            Err("--wait \"x\" is invalid: expected seconds from 0 to 3600".into())
        );
        assert_eq!(
            parse(args(&["--jaeger", "http://j", "not-hex"]), None),
            Err("unexpected argument \"not-hex\" (a trace id is up to 32 hex digits)".into())
        );
        assert_eq!(
            parse(args(&["--jaeger", "http://j"]), None),
            Err("no trace id given".into())
        );
    }

    #[test]
    fn artifacts_open_in_the_extension_viewer_or_through_serve() {
        assert_eq!(
            open_with("http://127.0.0.1:4399/granular/artifacts/abc-def"),
            "http://127.0.0.1:4399/granular/view/abc-def"
        );
        assert_eq!(
            open_with("file:///var/lib/granular/abc-def.pftrace"),
            "granular serve /var/lib/granular (then open /view/abc-def.pftrace at the address \
             it prints)"
        );
        assert_eq!(viewer_url("http://h/artifacts/"), None);
        assert_eq!(
            open_with("relative.pftrace"),
            "relative.pftrace (not a link the viewer can open)"
        );
    }
}

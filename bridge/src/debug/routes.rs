//! The endpoint's routes, and the 4xx a bad request gets: its body names the parameter and
//! what is accepted.

use std::time::{SystemTime, UNIX_EPOCH};

use super::DebugState;
use super::capture::{CaptureError, MAX_SECONDS};
use super::recent::KEEP_TIMELINES;
use super::render;
use super::response::Response;

const ROOT: &str = "/debug/granular/";

/// The routes, for the 404 that lists them.
const ROUTES: &str = "GET /debug/granular/ (per-operation view; ?format=json for JSON)\n\
GET /debug/granular/trace?seconds=N (Perfetto capture of the process's last N seconds, N 1..=60)\n\
GET /debug/granular/traces/<trace_id> (viewer page of a recently analysed trace)\n\
GET /debug/granular/traces/<trace_id>/artifact (its Perfetto timeline)";

/// The answer to `method target`.
pub(crate) fn respond(state: &DebugState, method: &str, target: &str) -> Response {
    if method != "GET" {
        return Response::text(
            405,
            format!("method {method} is not allowed: the debug endpoint answers GET only"),
        )
        .with_header("Allow", "GET".into());
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    match path {
        "/debug/granular" | ROOT => index(state, query),
        "/debug/granular/trace" => trace(state, query),
        _ => match path.strip_prefix("/debug/granular/traces/") {
            Some(rest) => traces(state, rest),
            None => Response::text(404, format!("no route {path}; the routes are:\n{ROUTES}")),
        },
    }
}

/// `name`'s value in `query` (`a=1&b=2`), if given.
fn param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn index(state: &DebugState, query: &str) -> Response {
    let view = render::View::gather(state);
    match param(query, "format") {
        None | Some("html") => Response::new(200, "text/html; charset=utf-8", render::html(&view)),
        Some("json") => Response::new(200, "application/json", render::json(&view)),
        Some(other) => Response::text(
            400,
            format!(
                "format={other:?} is not accepted: expected format=json or format=html (the default)"
            ),
        ),
    }
}

fn trace(state: &DebugState, query: &str) -> Response {
    let expected = format!("expected seconds=N, a whole number from 1 to {MAX_SECONDS}");
    let seconds = match param(query, "seconds") {
        None => return Response::text(400, format!("seconds is missing: {expected}")),
        Some(v) => match v.parse::<u64>() {
            Ok(n) if (1..=MAX_SECONDS).contains(&n) => n,
            Ok(n) => {
                return Response::text(400, format!("seconds={n} is out of range: {expected}"));
            }
            Err(_) => {
                return Response::text(400, format!("seconds={v:?} is not a number: {expected}"));
            }
        },
    };
    match state.captures.take(seconds) {
        Ok(c) => {
            let unix = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            Response::new(200, "application/octet-stream", c.bytes.clone())
                .with_header(
                    "Content-Disposition",
                    format!("attachment; filename=\"granular-{unix}.pftrace\""),
                )
                .with_header("X-Granular-Asked-Seconds", seconds.to_string())
                .with_header(
                    "X-Granular-Held-Seconds",
                    format!("{:.3}", c.held_seconds()),
                )
                .with_header("X-Granular-Window-Unix-Ns", format!("{}-{}", c.from, c.to))
        }
        Err(CaptureError::Busy) => Response::text(
            429,
            "another capture is running: one capture at a time; retry when it is done",
        ),
        Err(CaptureError::NoRecorder) => Response::text(
            503,
            "nothing is recorded: Granular is off in this process (GRANULAR_ENABLED)",
        ),
    }
}

/// `rest` is `<trace_id>` or `<trace_id>/artifact`.
fn traces(state: &DebugState, rest: &str) -> Response {
    let (id, artifact) = match rest.strip_suffix("/artifact") {
        Some(id) => (id, true),
        None => (rest.trim_end_matches('/'), false),
    };
    let Some(trace_id) = parse_trace_id(id) else {
        return Response::text(
            400,
            format!(
                "trace id {id:?} is malformed: expected 32 hex digits, e.g. 4bf92f3577b34da6a3ce929d0e0e4736"
            ),
        );
    };
    let Ok(recent) = state.recent.lock() else {
        return Response::text(
            500,
            "the debug endpoint's state is unavailable (a thread panicked holding it)",
        );
    };
    let Some(t) = recent.timeline_of(trace_id) else {
        return Response::text(
            404,
            format!("trace {id} was not analysed recently; the last {KEEP_TIMELINES} are kept"),
        );
    };
    if artifact {
        return Response::new(200, "application/octet-stream", t.bytes.clone()).with_header(
            "Content-Disposition",
            format!(
                "attachment; filename=\"granular-{trace_id:032x}-{:016x}.pftrace\"",
                t.span_id
            ),
        );
    }
    let name = recent
        .analyses_of(trace_id)
        .first()
        .map_or_else(String::new, |e| format!("{} · ", e.name));
    let title = format!("{name}trace {trace_id:032x}");
    let url = format!("{ROOT}traces/{trace_id:032x}/artifact");
    Response::new(
        200,
        "text/html; charset=utf-8",
        crate::viewer::page(&url, &title),
    )
}

fn parse_trace_id(s: &str) -> Option<u128> {
    (s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| u128::from_str_radix(s, 16).ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::debug::span_ends::SpanEnd;

    fn get(state: &DebugState, target: &str) -> Response {
        respond(state, "GET", target)
    }

    fn body(r: &Response) -> String {
        String::from_utf8_lossy(&r.body).into_owned()
    }

    #[test]
    fn bad_requests_name_the_parameter_and_what_is_accepted() {
        let s = super::super::test_state();
        let r = get(s, "/debug/granular/trace");
        assert_eq!(
            (r.status, body(&r).as_str()),
            (
                400,
                "seconds is missing: expected seconds=N, a whole number from 1 to 60\n"
            )
        );
        let r = get(s, "/debug/granular/trace?seconds=soon");
        assert_eq!(r.status, 400);
        assert!(
            body(&r).contains("\"soon\" is not a number"),
            "{}",
            body(&r)
        );
        let r = get(s, "/debug/granular/trace?seconds=61");
        assert!(body(&r).contains("out of range: expected seconds=N, a whole number from 1 to 60"));
        let r = get(s, "/debug/granular/traces/xyz");
        assert_eq!(r.status, 400);
        assert!(body(&r).contains("expected 32 hex digits"), "{}", body(&r));
        let id = "4bf92f3577b34da6a3ce929d0e0e4736";
        let r = get(s, &format!("/debug/granular/traces/{id}"));
        assert_eq!(r.status, 404);
        assert_eq!(
            body(&r),
            format!("trace {id} was not analysed recently; the last 64 are kept\n")
        );
        let r = get(s, "/debug/pprof/");
        assert_eq!(r.status, 404);
        assert!(
            body(&r).contains("GET /debug/granular/trace?seconds=N"),
            "{}",
            body(&r)
        );
        let r = get(s, "/debug/granular/?format=xml");
        assert_eq!(r.status, 400);
        let r = respond(s, "DELETE", "/debug/granular/");
        assert_eq!(r.status, 405);
    }

    #[test]
    fn a_kept_timeline_is_served_with_its_viewer_page() {
        let s = super::super::test_state();
        let trace = 0x4bf92f3577b34da6a3ce929d0e0e4736u128;
        s.recent
            .lock()
            .unwrap()
            .timeline(trace, 7, b"perfetto bytes");
        let page = get(s, "/debug/granular/traces/4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(page.status, 200);
        assert!(body(&page).contains(
            "<meta name=\"granular-artifact\" content=\"/debug/granular/traces/4bf92f3577b34da6a3ce929d0e0e4736/artifact\">"
        ), "{}", body(&page));
        let a = get(
            s,
            "/debug/granular/traces/4BF92F3577B34DA6A3CE929D0E0E4736/artifact",
        );
        assert_eq!((a.status, a.body.as_slice()), (200, &b"perfetto bytes"[..]));
    }

    #[test]
    fn the_operation_view_counts_every_span_in_json_and_html() {
        let s = super::super::test_state();
        {
            let mut ops = s.ops.lock().unwrap();
            for (i, ms) in [10u64, 12, 11, 150].into_iter().enumerate() {
                ops.record(SpanEnd {
                    name: "GET /x".into(),
                    route: Some("/x".into()),
                    trace_id: Some(i as u128 + 1),
                    local_root: true,
                    error: false,
                    duration_ns: ms * 1_000_000,
                    end_unix_ns: 1_700_000_000_000_000_000,
                });
            }
        }
        let j = get(s, "/debug/granular/?format=json");
        assert_eq!((j.status, j.content_type), (200, "application/json"));
        let json = body(&j);
        assert!(
            json.contains("\"name\":\"GET /x\",\"route\":\"/x\",\"count\":4"),
            "{json}"
        );
        assert!(json.contains("\"violated\":1"), "{json}");
        assert!(
            json.contains(
                "\"trace_id\":\"00000000000000000000000000000004\",\"duration_ms\":150.000"
            ),
            "{json}"
        );
        let h = get(s, "/debug/granular/");
        assert_eq!(h.status, 200);
        assert!(body(&h).contains("GET /x"));
        assert!(!body(&h).contains("<script"), "readable without JS");
    }
}

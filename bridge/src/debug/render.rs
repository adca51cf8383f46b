//! The per-operation view, as server-rendered HTML (no script, no external resource) and as
//! JSON with the same data.

use std::fmt::Write;

use super::DebugState;
use super::recent::{KEEP_TIMELINE_BYTES, KEEP_TIMELINES};
use super::span_ends::Missed;
use super::stats::{MAX_OPERATIONS, OpSummary};

/// One of an operation's slowest recent requests, joined with what the analyzer said of it.
#[derive(Debug)]
pub(super) struct SlowRow {
    pub trace_id: Option<u128>,
    pub duration_ns: u64,
    pub violated: bool,
    pub cause: Option<String>,
    pub verdict: Option<String>,
    /// Its timeline is kept: the viewer page is served.
    pub viewer: bool,
}

/// Everything the page shows, gathered under the locks and rendered after.
#[derive(Debug)]
pub(super) struct View {
    sample: &'static str,
    ops: Vec<(OpSummary, Vec<SlowRow>)>,
    overflow: (u64, usize),
    missed: Missed,
    timelines: (usize, usize),
}

impl View {
    pub(super) fn gather(state: &DebugState) -> View {
        let (summaries, overflow) = state
            .ops
            .lock()
            .map(|o| (o.summaries(), o.overflow()))
            .unwrap_or_default();
        let missed = state.missed.lock().map(|m| *m).unwrap_or_default();
        let recent = state.recent.lock().ok();
        let ops = summaries
            .into_iter()
            .map(|op| {
                let rows = op
                    .slowest
                    .iter()
                    .map(|s| {
                        let analysis = recent
                            .as_ref()
                            .zip(s.trace_id)
                            .and_then(|(r, t)| r.analysis(t, &op.key.name));
                        SlowRow {
                            trace_id: s.trace_id,
                            duration_ns: s.duration_ns,
                            violated: s.violated,
                            cause: analysis.map(|a| a.cause.clone()),
                            verdict: analysis.map(|a| a.verdict.clone()),
                            viewer: recent
                                .as_ref()
                                .zip(s.trace_id)
                                .is_some_and(|(r, t)| r.timeline_of(t).is_some()),
                        }
                    })
                    .collect();
                (op, rows)
            })
            .collect();
        let timelines = recent.map(|r| r.timelines_kept()).unwrap_or_default();
        View {
            sample: state.sample,
            ops,
            overflow,
            missed,
            timelines,
        }
    }
}

fn ms(ns: u64) -> String {
    format!("{:.3}", ns as f64 / 1e6)
}

fn viewer_url(trace_id: u128) -> String {
    format!("/debug/granular/traces/{trace_id:032x}")
}

/// A JSON string literal.
fn js(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn js_opt(s: Option<&str>) -> String {
    s.map_or_else(|| "null".to_string(), js)
}

pub(super) fn json(v: &View) -> String {
    let mut o = String::new();
    let _ = write!(o, "{{\"sample\":{},\"operations\":[", js(v.sample));
    for (i, (op, rows)) in v.ops.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        let _ = write!(
            o,
            "{{\"name\":{},\"route\":{},\"count\":{},\"local_roots\":{},\"mean_ms\":{}",
            js(&op.key.name),
            js_opt(op.key.route.as_deref()),
            op.count,
            op.local_roots,
            ms(op.mean_ns)
        );
        for (q, ns) in op.percentiles {
            let name = format!("p{}", q * 100.0).replace('.', "");
            let _ = write!(o, ",\"{name}_ms\":{}", ms(ns));
        }
        let _ = write!(o, ",\"max_ms\":{},\"histogram\":[", ms(op.max_ns));
        for (k, (from, n)) in op.histogram.iter().enumerate() {
            let sep = if k > 0 { "," } else { "" };
            let _ = write!(o, "{sep}{{\"from_ms\":{},\"count\":{n}}}", ms(*from));
        }
        o.push_str("],\"slo\":");
        match &op.slo {
            Some((rule, t)) => {
                let _ = write!(
                    o,
                    "{{\"rule\":{},\"threshold_ms\":{}}}",
                    js(rule),
                    ms(t.as_nanos() as u64)
                );
            }
            None => o.push_str("null"),
        }
        let share = if op.count == 0 {
            0.0
        } else {
            op.violated as f64 / op.count as f64
        };
        let explained: u64 = op.by_cause.iter().map(|(_, ns)| ns).sum();
        let _ = write!(
            o,
            ",\"violated\":{},\"violated_share\":{share:.6},\"violated_ms\":{},\"by_cause\":[",
            op.violated,
            ms(op.violated_ns)
        );
        for (k, (cause, ns)) in op.by_cause.iter().enumerate() {
            let sep = if k > 0 { "," } else { "" };
            let _ = write!(o, "{sep}{{\"cause\":{},\"ms\":{}}}", js(cause), ms(*ns));
        }
        let _ = write!(
            o,
            "],\"not_explained_ms\":{},\"slowest\":[",
            ms(op.violated_ns.saturating_sub(explained))
        );
        for (k, r) in rows.iter().enumerate() {
            let sep = if k > 0 { "," } else { "" };
            let trace = r.trace_id.map(|t| format!("{t:032x}"));
            let viewer = r.trace_id.filter(|_| r.viewer).map(viewer_url);
            let _ = write!(
                o,
                "{sep}{{\"trace_id\":{},\"duration_ms\":{},\"violated\":{},\"cause\":{},\"verdict\":{},\"viewer\":{}}}",
                js_opt(trace.as_deref()),
                ms(r.duration_ns),
                r.violated,
                js_opt(r.cause.as_deref()),
                js_opt(r.verdict.as_deref()),
                js_opt(viewer.as_deref())
            );
        }
        o.push_str("]}");
    }
    let m = v.missed;
    let _ = write!(
        o,
        "],\"overflow\":{{\"spans\":{},\"operations\":{}}},\"missed\":{{\"records\":{},\"unmatched_closes\":{},\"untracked_spans\":{}}},\"timelines_kept\":{},\"limits\":{{\"operations\":{MAX_OPERATIONS},\"timelines\":{KEEP_TIMELINES},\"timeline_bytes\":{KEEP_TIMELINE_BYTES}}}}}",
        v.overflow.0,
        v.overflow.1,
        m.missed_records,
        m.unmatched_closes,
        m.untracked,
        v.timelines.0
    );
    o
}

/// HTML-escaped text.
fn h(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}\
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{padding:2px 8px;text-align:right;\
border-bottom:1px solid #ddd}td.l,th.l{text-align:left}.bar{background:#4a7;height:10px;\
display:inline-block}.bad{color:#b22}h2{margin-bottom:.2em}code{background:#f4f4f4}";

pub(super) fn html(v: &View) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>granular: operations</title>\
         <style>{STYLE}</style></head><body data-state=\"ready\"><h1>Operations</h1><p>Every span that ended since \
         the process started (GRANULAR_SAMPLE={}), by name and route. \
         <a href=\"?format=json\">JSON</a> · capture the last seconds: \
         <a href=\"/debug/granular/trace?seconds=5\">/debug/granular/trace?seconds=5</a></p>",
        h(v.sample)
    );
    if v.ops.is_empty() {
        o.push_str("<p>No span has ended yet.</p>");
    }
    for (op, rows) in &v.ops {
        let route = op
            .key
            .route
            .as_deref()
            .map_or_else(String::new, |r| format!(" <small>route {}</small>", h(r)));
        let _ = write!(
            o,
            "<h2 data-role=\"operation\" data-name=\"{}\" data-count=\"{}\" data-violated=\"{}\">{}{route}</h2>",
            h(&op.key.name),
            op.count,
            op.violated,
            h(&op.key.name)
        );
        let slo = op.slo.as_ref().map_or_else(
            || "no SLO rule".to_string(),
            |(rule, _)| format!("SLO <code>{}</code>", h(rule)),
        );
        let share = if op.count == 0 {
            0.0
        } else {
            100.0 * op.violated as f64 / op.count as f64
        };
        let _ = write!(
            o,
            "<table><tr><th>count</th><th>mean</th><th>p50</th><th>p90</th><th>p99</th>\
             <th>p99.9</th><th>max</th><th class=l>SLO</th><th>violating</th></tr><tr><td>{}</td>\
             <td>{} ms</td>",
            op.count,
            ms(op.mean_ns)
        );
        for (_, ns) in op.percentiles {
            let _ = write!(o, "<td>{} ms</td>", ms(ns));
        }
        let _ = write!(
            o,
            "<td>{} ms</td><td class=l>{slo}</td><td>{} ({share:.2} %)</td></tr></table>",
            ms(op.max_ns),
            op.violated
        );
        let most = op
            .histogram
            .iter()
            .map(|(_, n)| *n)
            .max()
            .unwrap_or(1)
            .max(1);
        o.push_str("<table><tr><th>from</th><th>count</th><th class=l></th></tr>");
        for (from, n) in &op.histogram {
            let w = 1 + 300 * n / most;
            let _ = write!(
                o,
                "<tr><td>{} ms</td><td>{n}</td><td class=l><span class=bar style=\"width:{w}px\"></span></td></tr>",
                ms(*from)
            );
        }
        o.push_str("</table>");
        if op.violated > 0 {
            let explained: u64 = op.by_cause.iter().map(|(_, ns)| ns).sum();
            o.push_str("<table><tr><th class=l>violating time by cause</th><th></th></tr>");
            for (cause, ns) in &op.by_cause {
                let _ = write!(
                    o,
                    "<tr><td class=l>{}</td><td>{} ms</td></tr>",
                    h(cause),
                    ms(*ns)
                );
            }
            let _ = write!(
                o,
                "<tr><td class=l>not analysed</td><td>{} ms</td></tr></table>",
                ms(op.violated_ns.saturating_sub(explained))
            );
        }
        o.push_str(
            "<table><tr><th class=l>slowest recent</th><th>duration</th><th class=l>cause</th>\
             <th class=l>verdict</th></tr>",
        );
        for r in rows {
            let trace = match r.trace_id {
                Some(t) if r.viewer => format!(
                    "<a data-role=\"viewer-link\" data-trace=\"{t:032x}\" href=\"{}\">{t:032x}</a>",
                    viewer_url(t)
                ),
                Some(t) => format!("{t:032x}"),
                None => "(no trace id)".into(),
            };
            let class = if r.violated { " class=bad" } else { "" };
            let _ = write!(
                o,
                "<tr><td class=l><code>{trace}</code></td><td{class}>{} ms</td><td class=l>{}</td><td class=l>{}</td></tr>",
                ms(r.duration_ns),
                h(r.cause.as_deref().unwrap_or("")),
                h(r.verdict.as_deref().unwrap_or(""))
            );
        }
        o.push_str("</table>");
    }
    let m = v.missed;
    let _ = write!(
        o,
        "<p><small>Not counted: {} spans of operations beyond the first {MAX_OPERATIONS} ({} names); \
         {} records overwritten before they were read, {} closes whose creation was not read, \
         {} spans beyond the open-span limit. Timelines kept: {} (the last {KEEP_TIMELINES}, \
         at most {} MiB).</small></p></body></html>",
        v.overflow.0,
        v.overflow.1,
        m.missed_records,
        m.unmatched_closes,
        m.untracked,
        v.timelines.0,
        KEEP_TIMELINE_BYTES >> 20
    );
    o
}

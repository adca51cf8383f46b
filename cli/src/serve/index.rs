//! The index page: the directory's artifacts, newest first, each linked to its viewer page.

use std::path::Path;
use std::time::SystemTime;

use granular::viewer::escape_html;

use super::dir::Listed;

/// The index of `dir`'s artifacts `listed` (already newest first).
pub(super) fn page(dir: &Path, listed: &[Listed]) -> String {
    let now = SystemTime::now();
    let mut rows = String::new();
    for a in listed {
        let name = escape_html(&a.name);
        let (span, trace) = match a.title.as_deref().and_then(|t| t.split_once(" · trace ")) {
            Some((span, trace)) => (escape_html(span), escape_html(trace)),
            None => (String::new(), escape_html(trace_of_name(&a.name))),
        };
        let age = now
            .duration_since(a.modified)
            .map_or_else(|_| "just now".to_string(), |d| ago(d.as_secs()));
        rows.push_str(&format!(
            "<tr data-role=\"artifact\" data-name=\"{name}\"><td><a href=\"/view/{name}\">{span}</a></td>\
             <td><code>{trace}</code></td><td>{age}</td><td>{kib:.1} KiB</td>\
             <td><a href=\"/view/{name}\">view</a> · <a href=\"/artifacts/{name}\">raw</a> \
             <code>{name}</code></td></tr>\n",
            kib = a.bytes as f64 / 1024.0,
        ));
    }
    if listed.is_empty() {
        rows.push_str("<tr><td colspan=\"5\">No artifacts yet.</td></tr>\n");
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Granular artifacts</title><style>\
         body{{font:13px/1.5 system-ui,sans-serif;margin:16px;color:#212121}}\
         table{{border-collapse:collapse}}td,th{{padding:3px 12px 3px 0;text-align:left;vertical-align:top}}\
         th{{border-bottom:1px solid #ccc}}code{{font-size:12px}}</style></head>\
         <body data-state=\"ready\"><h1>Granular artifacts</h1><p>{dir}: {n} timeline(s) of slow \
         spans, newest first. Open one to see the request's runtime window.</p>\
         <table><tr><th>span</th><th>trace</th><th>written</th><th>size</th><th>artifact</th></tr>\n\
         {rows}</table></body></html>\n",
        dir = escape_html(&dir.display().to_string()),
        n = listed.len(),
    )
}

/// The trace id an artifact's file name starts with (`<trace>-<span>.perfetto-trace`).
fn trace_of_name(name: &str) -> &str {
    match name.split_once('-') {
        Some((trace, _)) if trace.len() == 32 && trace.bytes().all(|b| b.is_ascii_hexdigit()) => {
            trace
        }
        _ => "",
    }
}

fn ago(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs} s ago"),
        60..3600 => format!("{} min ago", secs / 60),
        3600..86400 => format!("{} h ago", secs / 3600),
        _ => format!("{} d ago", secs / 86400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_name_span_and_trace_and_escape_them() {
        let listed = [
            Listed {
                name: "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7.perfetto-trace".into(),
                bytes: 2048,
                modified: SystemTime::now(),
                title: None,
            },
            Listed {
                name: "b.perfetto-trace".into(),
                bytes: 10,
                modified: SystemTime::now(),
                title: Some("GET /<x> · trace abc".into()),
            },
        ];
        let html = page(Path::new("/tmp/a&b"), &listed);
        assert!(html.contains("<code>4bf92f3577b34da6a3ce929d0e0e4736</code>"));
        assert!(html.contains(">GET /&lt;x&gt;</a>"));
        assert!(html.contains("<code>abc</code>"));
        assert!(html.contains("/tmp/a&amp;b"));
        assert!(html.contains("href=\"/view/b.perfetto-trace\""));
    }
}

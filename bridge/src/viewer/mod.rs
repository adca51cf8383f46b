//! The trace viewer's page. A stand-in with the real viewer's API: [`page`] fills the
//! template's `{{GRANULAR_ARTIFACT_URL}}` and `{{GRANULAR_TITLE}}` with HTML-escaped values.

/// The page's template.
const TEMPLATE: &str = "<!doctype html>\n<html><head><meta charset=\"utf-8\">\n\
<meta name=\"granular-artifact\" content=\"{{GRANULAR_ARTIFACT_URL}}\">\n\
<title>{{GRANULAR_TITLE}}</title></head>\n<body><h1>{{GRANULAR_TITLE}}</h1>\n\
<p><a href=\"{{GRANULAR_ARTIFACT_URL}}\">Perfetto timeline</a> (open it at ui.perfetto.dev)</p>\n\
</body></html>\n";

/// The viewer page for the artifact at `artifact_url`, titled `title`.
pub fn page(artifact_url: &str, title: &str) -> String {
    TEMPLATE
        .replace("{{GRANULAR_ARTIFACT_URL}}", &escape(artifact_url))
        .replace("{{GRANULAR_TITLE}}", &escape(title))
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

//! The viewer: one self-contained HTML page that shows a slow request's runtime window from
//! the artifact Granular links from its span (`granular.artifact`, the Perfetto trace the
//! analyzer writes), for networks that cannot reach ui.perfetto.dev. It reads the artifact
//! with a protobuf reader of its own (exactly the subset `timeline::encode_perfetto` writes)
//! and draws the request's spans, its breakdown and verdict, and one lane per thread.
//!
//! # The contract with servers
//!
//! [`TEMPLATE`] holds two placeholders, each exactly once:
//! * [`ARTIFACT_URL_PLACEHOLDER`] in `<meta name="granular-artifact" content="…">`: the URL the
//!   page fetches the artifact from. It may be relative (`/artifacts/<id>`); the page fetches
//!   only it, from its own origin or wherever it points, and nothing else. Left empty (or
//!   unreplaced), the page reads `?artifact=<url>` from its own address.
//! * [`TITLE_PLACEHOLDER`] in `<title>`: the page's title (left empty, the page titles itself
//!   after the artifact's span).
//!
//! A server replaces each with its value HTML-escaped (`&`, `<`, `>`, `"`, `'`), as [`page`]
//! does. When done, the page sets `body[data-state]` to `ready`, or `error` with a message
//! naming the URL and what went wrong (fetch failed, HTTP status, not a Perfetto trace).

/// The page, with the placeholders unreplaced (see the module docs).
pub const TEMPLATE: &str = include_str!("viewer.html");

/// Replaced by the artifact's URL (HTML-escaped) in [`TEMPLATE`].
pub const ARTIFACT_URL_PLACEHOLDER: &str = "{{GRANULAR_ARTIFACT_URL}}";

/// Replaced by the page's title (HTML-escaped) in [`TEMPLATE`].
pub const TITLE_PLACEHOLDER: &str = "{{GRANULAR_TITLE}}";

/// The viewer page for the artifact at `artifact_url` (absolute, or relative to the page),
/// titled `title`: [`TEMPLATE`] with both placeholders replaced by their HTML-escaped values.
pub fn page(artifact_url: &str, title: &str) -> String {
    TEMPLATE
        .replacen(ARTIFACT_URL_PLACEHOLDER, &escape_html(artifact_url), 1)
        .replacen(TITLE_PLACEHOLDER, &escape_html(title), 1)
}

/// `text` safe inside an HTML attribute value or element: `&`, `<`, `>`, `"` and `'` escaped.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Servers in other languages replace the placeholders too: each must occur exactly once,
    /// in its element, or a replacement would also rewrite the page's script.
    #[test]
    fn each_placeholder_occurs_once_in_its_element() {
        assert_eq!(TEMPLATE.matches(ARTIFACT_URL_PLACEHOLDER).count(), 1);
        assert_eq!(TEMPLATE.matches(TITLE_PLACEHOLDER).count(), 1);
        assert!(TEMPLATE.contains(&format!(
            r#"<meta name="granular-artifact" content="{ARTIFACT_URL_PLACEHOLDER}">"#
        )));
        assert!(TEMPLATE.contains(&format!("<title>{TITLE_PLACEHOLDER}</title>")));
    }

    #[test]
    fn escaping_covers_the_five_characters() {
        assert_eq!(
            escape_html(r#"a&b<c>d"e'f"#),
            "a&amp;b&lt;c&gt;d&quot;e&#39;f"
        );
        assert_eq!(escape_html("/artifacts/4bf9-00f0"), "/artifacts/4bf9-00f0");
    }

    #[test]
    fn page_fills_both_placeholders_escaped() {
        let html = page("/artifacts/x?a=1&b=\"2\"", "GET /report <slow>");
        assert!(html.contains(
            r#"<meta name="granular-artifact" content="/artifacts/x?a=1&amp;b=&quot;2&quot;">"#
        ));
        assert!(html.contains("<title>GET /report &lt;slow&gt;</title>"));
        assert!(!html.contains(ARTIFACT_URL_PLACEHOLDER));
        assert!(!html.contains(TITLE_PLACEHOLDER));
    }

    /// The page may fetch nothing but the artifact: no external script, style, font or image.
    #[test]
    fn the_page_references_nothing_outside_itself() {
        for needle in [
            "<script src",
            "<link",
            "@import",
            "url(http",
            "//cdn",
            "https://",
        ] {
            assert!(
                !TEMPLATE.contains(needle),
                "viewer.html contains {needle:?}"
            );
        }
    }
}

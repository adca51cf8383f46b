//! The viewer page the Collector's `granular_artifacts` extension serves for
//! an artifact (`GET /view/{id}`), reached the way the Jaeger UI links it:
//! the link patterns of `deploy/jaeger/ui-config.json`, expanded with a
//! span's tags as the Jaeger UI expands them.
//!
//! [`check_viewer_page`] checks the page over plain HTTP; a check in a real
//! browser takes the same [`ViewerPage`] and sits next to it.

use reqwest::header::HeaderMap;
use serde_json::Value;

use crate::{Error, Result, workspace_root};
use granular_cli::jaeger::http_client;

/// Where the link patterns point at the artifact store: the address the
/// deploy layouts publish it at (`GRANULAR_ARTIFACTS_PUBLIC_URL`), as a
/// static Jaeger link pattern cannot take a host from the span.
pub const PUBLISHED_STORE: &str = "http://localhost:16700";
/// The one origin the store lets read artifacts from the browser.
pub const PERFETTO_UI_ORIGIN: &str = "https://ui.perfetto.dev";
const UI_CONFIG: &str = "deploy/jaeger/ui-config.json";
const META: &str = r#"<meta name="granular-artifact" content=""#;

/// The URLs the Jaeger UI shows for a span tag `key`, in the order of
/// `deploy/jaeger/ui-config.json`: every `tags` link pattern on `key` whose
/// parameters the span's `tags` all provide, each `#{name}` replaced by the
/// tag's value URL-encoded as the Jaeger UI does (`encodeURIComponent`).
pub fn jaeger_links(key: &str, tags: &[(&str, &str)]) -> Result<Vec<String>> {
    let path = workspace_root().join(UI_CONFIG);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Error::new(format!("cannot read {}: {e}", path.display())))?;
    let config: Value = serde_json::from_str(&text)
        .map_err(|e| Error::new(format!("{} is not JSON: {e}", path.display())))?;
    Ok(config["linkPatterns"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["type"] == "tags" && p["key"] == key)
        .filter_map(|p| expand(p["url"].as_str()?, tags))
        .collect())
}

/// `template` with each `#{name}` replaced; `None` if a tag is missing.
fn expand(template: &str, tags: &[(&str, &str)]) -> Option<String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("#{") {
        let end = rest[start..].find('}')? + start;
        let name = &rest[start + 2..end];
        let value = tags.iter().find(|(k, _)| *k == name)?.1;
        out.push_str(&rest[..start]);
        out.push_str(&encode_uri_component(value));
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

/// JavaScript's `encodeURIComponent`.
fn encode_uri_component(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The viewer link the Jaeger UI shows for a span whose `granular.artifact`
/// is `artifact_url` (the pattern on that key that goes to `/view/`), with
/// its [`PUBLISHED_STORE`] origin swapped for `store_base`, where the test's
/// store really listens.
pub fn viewer_link(artifact_url: &str, store_base: &str) -> Result<String> {
    let links = jaeger_links("granular.artifact", &[("granular.artifact", artifact_url)])?;
    let link = links.iter().find(|l| l.contains("/view/")).ok_or_else(|| {
        Error::new(format!(
            "{UI_CONFIG} has no granular.artifact link to the viewer (/view/): {links:?}"
        ))
    })?;
    let path = link.strip_prefix(PUBLISHED_STORE).ok_or_else(|| {
        Error::new(format!(
            "the viewer link {link} of {UI_CONFIG} is not on {PUBLISHED_STORE}, where the deploy layouts publish the artifact store"
        ))
    })?;
    Ok(format!("{}{path}", store_base.trim_end_matches('/')))
}

/// A viewer page as served.
#[derive(Debug, Clone)]
pub struct ViewerPage {
    /// Where the page was served from, after redirects.
    pub url: String,
    /// Its `granular-artifact` meta tag, resolved against [`Self::url`].
    pub artifact_url: String,
    pub html: String,
}

/// `GET viewer_url` (following redirects): a 200 HTML page with the
/// store's security headers and a `granular-artifact` meta tag whose URL,
/// resolved against the page, serves exactly `artifact`.
pub fn check_viewer_page(viewer_url: &str, artifact: &[u8]) -> Result<ViewerPage> {
    let http = http_client()?;
    let response = http
        .get(viewer_url)
        .send()
        .map_err(|e| Error::new(format!("GET {viewer_url} failed: {e}")))?;
    let status = response.status();
    let url = response.url().clone();
    let headers = response.headers().clone();
    let html = response
        .text()
        .map_err(|e| Error::new(format!("reading GET {viewer_url}: {e}")))?;
    let fail =
        |problem: String| Error::new(format!("viewer page {url} (from {viewer_url}): {problem}"));
    if !status.is_success() {
        return Err(fail(format!("answered {status}: {html}")));
    }
    for (name, want) in [
        ("content-type", "text/html; charset=utf-8"),
        ("x-content-type-options", "nosniff"),
        ("cache-control", "no-store"),
    ] {
        if header(&headers, name) != want {
            return Err(fail(format!(
                "{name}: {:?}, want {want:?}",
                header(&headers, name)
            )));
        }
    }
    let csp = header(&headers, "content-security-policy");
    if !csp.contains("default-src 'none'") || !csp.contains("connect-src 'self'") {
        return Err(fail(format!(
            "Content-Security-Policy {csp:?} does not confine the page to its own origin"
        )));
    }
    let content = html
        .find(META)
        .and_then(|at| {
            let rest = &html[at + META.len()..];
            rest.find('"').map(|end| &rest[..end])
        })
        .ok_or_else(|| fail(format!("no {META}...\"> tag in:\n{html}")))?;
    let artifact_url = url.join(&unescape_html(content)).map_err(|e| {
        fail(format!(
            "its artifact URL {content:?} does not resolve: {e}"
        ))
    })?;
    let served = crate::collector::fetch_bytes(artifact_url.as_str(), std::time::Duration::ZERO)
        .map_err(|e| fail(format!("its artifact: {e}")))?;
    if served != artifact {
        return Err(fail(format!(
            "its artifact {artifact_url} serves {} bytes that differ from the {} bytes of granular.artifact",
            served.len(),
            artifact.len()
        )));
    }
    Ok(ViewerPage {
        url: url.to_string(),
        artifact_url: artifact_url.to_string(),
        html,
    })
}

/// `GET url` with `Origin: <origin>`: the `Access-Control-Allow-Origin` answered.
pub fn allowed_origin(url: &str, origin: &str) -> Result<Option<String>> {
    let response = http_client()?
        .get(url)
        .header("Origin", origin)
        .send()
        .map_err(|e| Error::new(format!("GET {url} (Origin: {origin}) failed: {e}")))?;
    if !response.status().is_success() {
        return Err(Error::new(format!(
            "GET {url} (Origin: {origin}) answered {}",
            response.status()
        )));
    }
    Ok(response
        .headers()
        .get("access-control-allow-origin")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned))
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// The five escapes the store applies (`&amp; &lt; &gt; &#34; &#39;`), and
/// their named forms.
fn unescape_html(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#34;", "\"")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_link_patterns_as_the_jaeger_ui_does() {
        assert_eq!(
            expand(
                "https://ui.perfetto.dev/#!/?url=#{a}&x=#{b}",
                &[("a", "http://h:1/artifacts/t-s"), ("b", "é ()")]
            )
            .as_deref(),
            Some(
                "https://ui.perfetto.dev/#!/?url=http%3A%2F%2Fh%3A1%2Fartifacts%2Ft-s&x=%C3%A9%20()"
            )
        );
        assert_eq!(expand("/x/#{missing}", &[("a", "1")]), None);
    }

    #[test]
    fn the_viewer_link_follows_the_deploy_link_patterns() {
        let link = viewer_link(
            &format!("{PUBLISHED_STORE}/artifacts/t-s"),
            "http://127.0.0.1:9/",
        )
        .expect("a viewer link");
        assert_eq!(
            link,
            "http://127.0.0.1:9/view/?artifact=http%3A%2F%2Flocalhost%3A16700%2Fartifacts%2Ft-s"
        );
    }

    #[test]
    fn unescapes_what_the_store_escapes() {
        assert_eq!(
            unescape_html("/a?x=1&amp;y=&#34;2&#34;&#39;&lt;b&gt;&amp;lt;"),
            "/a?x=1&y=\"2\"'<b>&lt;"
        );
    }
}

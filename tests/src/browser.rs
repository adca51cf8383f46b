//! A real browser for end-to-end tests: opens a page in headless Chromium and returns what
//! it showed, every request it made and a screenshot.
//!
//! [`open`] runs `tests/browser/open_page.py` (Playwright driving the system Chromium,
//! `/usr/bin/chromium` or `$GRANULAR_CHROMIUM`, with a fresh profile and no background
//! networking) with `$GRANULAR_PYTHON` (see [`crate::perfetto::python`]), which needs the
//! `playwright` package (tests/requirements.txt). Nothing missing is skipped: without Chromium
//! or Playwright, [`open`] fails naming what to install (tests/run.sh installs both).
//!
//! # What a page does to be testable
//! * When done, it sets `document.body.dataset.state` to `"ready"` or `"error"`; [`open`]
//!   waits for that (a page that never gets there is an error, with its console output).
//! * It marks what it drew with a `data-role` attribute and puts the data on `data-*`
//!   attributes of the same element: [`Page::elements`] has every such element's dataset
//!   (keys as in `element.dataset`: `data-start-ms` is `startMs`), in document order, so tests
//!   assert on what was drawn without matching pixels.
//!
//! Granular's viewer (`bridge/src/viewer/viewer.html`) follows this; so can any page served
//! for a test (a debug endpoint, the Collector extension's viewer).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::perfetto::python;
use crate::{Error, Result, log_dir, workspace_root};

/// The browser the tests drive, unless `$GRANULAR_CHROMIUM` names another.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// How long a page may take to reach its state.
pub const PAGE_TIMEOUT: Duration = Duration::from_secs(60);

/// What a page showed once it reached `body[data-state]` `ready` or `error`.
#[derive(Debug, Clone, Deserialize)]
pub struct Page {
    /// The page's final URL.
    pub url: String,
    /// `body[data-state]`: `ready` or `error`.
    pub state: String,
    /// `document.title`.
    pub title: String,
    /// The body's visible text (its first 20,000 characters).
    pub text: String,
    /// The dataset of every element with a `data-role`, in document order.
    pub elements: Vec<Map<String, Value>>,
    /// Every URL the page requested, in order (the page itself first).
    pub requests: Vec<String>,
    /// Console messages, `"type: text"`.
    pub console: Vec<String>,
    /// Uncaught exceptions in the page.
    pub errors: Vec<String>,
    /// Where the full-page screenshot was written.
    #[serde(skip)]
    pub screenshot: PathBuf,
}

impl Page {
    /// The datasets of the elements whose `data-role` is `role`.
    pub fn role(&self, role: &str) -> Vec<&Map<String, Value>> {
        self.elements
            .iter()
            .filter(|e| e.get("role").and_then(Value::as_str) == Some(role))
            .collect()
    }

    /// The viewer's breakdown bar: each part's category and µs (`data-role=part`), in order.
    pub fn breakdown_parts(&self) -> Vec<(String, i64)> {
        self.role("part")
            .iter()
            .map(|p| {
                let text = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or("");
                (
                    text("part").to_string(),
                    text("us").parse::<f64>().map_or(-1, |us| us as i64),
                )
            })
            .collect()
    }

    /// The verdict the viewer shows (`data-role=verdict`).
    pub fn verdict(&self) -> Option<&str> {
        self.role("verdict")
            .first()
            .and_then(|v| v.get("text"))
            .and_then(Value::as_str)
    }

    /// Fails unless the viewer shows `span`'s breakdown: its `granular.time.*_us` parts in
    /// the bar and its `granular.verdict`.
    pub fn assert_shows_breakdown_of(&self, span: &crate::trace::Span) {
        let expected: Vec<(String, i64)> = crate::trace::GRANULAR_CATEGORIES
            .iter()
            .map(|c| {
                let us = span.granular_time_us(c).unwrap_or_else(|| {
                    panic!("the span lacks granular.time.{c}_us\n{}", self.describe())
                });
                (c.to_string(), us)
            })
            .collect();
        assert_eq!(
            self.breakdown_parts(),
            expected,
            "breakdown parts vs the span\n{}",
            self.describe()
        );
        assert_eq!(
            self.verdict(),
            span.tag_str("granular.verdict"),
            "the verdict shown is the span's\n{}",
            self.describe()
        );
    }

    /// The requests that left the page's origin (scheme, host and port of [`Page::url`]).
    pub fn requests_off_origin(&self) -> Vec<&str> {
        let own = origin(&self.url);
        self.requests
            .iter()
            .map(String::as_str)
            .filter(|r| origin(r) != own)
            .collect()
    }

    /// A summary for assertion messages: state, title, text, console and errors.
    pub fn describe(&self) -> String {
        format!(
            "page {} (state {:?}, title {:?}, screenshot {})\ntext:\n{}\nconsole: {:?}\nerrors: {:?}\nrequests: {:?}",
            self.url,
            self.state,
            self.title,
            self.screenshot.display(),
            self.text,
            self.console,
            self.errors,
            self.requests,
        )
    }
}

/// `scheme://host[:port]` of `url` (all of it when it has no path).
pub fn origin(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(i) => &url[..after_scheme + i],
        None => url,
    }
}

/// Where screenshots go: `<target>/e2e-screenshots`.
pub fn screenshot_dir() -> Result<PathBuf> {
    let logs = log_dir()?;
    Ok(logs.parent().unwrap_or(&logs).join("e2e-screenshots"))
}

/// Opens `url` in headless Chromium, waits for `body[data-state]` (`ready` or `error`), and
/// returns what the page showed; its screenshot is written to
/// `<target>/e2e-screenshots/<name>.png`. Fails when Chromium or Playwright is missing (naming
/// the install command), or the page never reaches a state within [`PAGE_TIMEOUT`].
pub fn open(url: &str, name: &str) -> Result<Page> {
    let chromium =
        std::env::var_os("GRANULAR_CHROMIUM").map_or(PathBuf::from(CHROMIUM), PathBuf::from);
    if !is_executable(&chromium) {
        return Err(Error::new(format!(
            "Chromium is missing at {}: the browser tests need it; install it with \
             `apt-get install -y chromium` (tests/run.sh does)",
            chromium.display()
        )));
    }
    let screenshot = screenshot_dir()?.join(format!("{name}.png"));
    let script = workspace_root().join("tests/browser/open_page.py");
    let python = python();
    let output = Command::new(&python)
        .arg(&script)
        .arg(url)
        .arg(&screenshot)
        .arg(PAGE_TIMEOUT.as_secs().to_string())
        .env("GRANULAR_CHROMIUM", &chromium)
        .output()
        .map_err(|e| {
            Error::new(format!(
                "cannot run {} {}: {e}; set GRANULAR_PYTHON to a Python with tests/requirements.txt \
                 installed (tests/run.sh provisions .cache/venv)",
                python.display(),
                script.display()
            ))
        })?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    match output.status.code() {
        Some(0) => {}
        Some(3) => {
            return Err(Error::new(format!(
                "{} lacks the playwright package ({stderr}); install tests/requirements.txt into it \
                 (tests/run.sh provisions .cache/venv) and set GRANULAR_PYTHON",
                python.display()
            )));
        }
        _ => {
            return Err(Error::new(format!(
                "open_page.py could not show {url} ({}): {stderr}",
                output.status
            )));
        }
    }
    let mut page: Page = serde_json::from_slice(&output.stdout).map_err(|e| {
        Error::new(format!(
            "open_page.py printed no page JSON for {url} ({e}): {stderr}"
        ))
    })?;
    page.screenshot = screenshot;
    Ok(page)
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_scheme_host_and_port() {
        assert_eq!(
            origin("http://127.0.0.1:80/view/a?x=1"),
            "http://127.0.0.1:80"
        );
        assert_eq!(origin("http://127.0.0.1:80"), "http://127.0.0.1:80");
        assert_eq!(
            origin("https://ui.perfetto.dev/#!/"),
            "https://ui.perfetto.dev"
        );
        assert_ne!(
            origin("http://127.0.0.1:81/"),
            origin("http://127.0.0.1:80/")
        );
    }
}

#!/usr/bin/env python3
"""Open one page in headless Chromium and print what it shows, as JSON.

Usage: open_page.py URL SCREENSHOT_PNG [TIMEOUT_SECONDS]

Driven by tests/src/browser.rs (see its doc for the contract a page follows). Launches the
system Chromium (/usr/bin/chromium, or $GRANULAR_CHROMIUM) through Playwright with a fresh
profile and no background networking (this machine's network is closed: without those flags
Chromium waits on lookups), loads URL, waits until body[data-state] is "ready" or "error",
writes a full-page screenshot to SCREENSHOT_PNG and prints one JSON object:

  url        the page's final URL
  state      body[data-state]
  title      document.title
  text       the body's visible text (first 20,000 characters)
  elements   for every element with a data-role attribute, its data-* attributes
             ({"role": ..., "lane": ..., ...}, keys as in element.dataset), in document order
  requests   every URL the page requested (its own included), in order
  console    console messages ("type: text")
  errors     uncaught exceptions in the page

Exit status: 0 when the page reached a state (even "error": the caller asserts on it),
1 when it did not within the timeout or the browser failed, 2 on usage, 3 when the playwright
package is missing, 4 when Chromium is missing.
"""

import json
import os
import shutil
import sys
import tempfile

CHROMIUM = os.environ.get("GRANULAR_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DONE = "() => document.body && ['ready', 'error'].includes(document.body.dataset.state)"
COLLECT = """() => ({
  url: location.href,
  state: document.body.dataset.state,
  title: document.title,
  text: document.body.innerText.slice(0, 20000),
  elements: [...document.querySelectorAll('[data-role]')].map(e => ({ ...e.dataset })),
})"""


def main(argv):
    if len(argv) not in (3, 4):
        sys.stderr.write(f"usage: {argv[0]} URL SCREENSHOT_PNG [TIMEOUT_SECONDS]\n")
        return 2
    url, screenshot = argv[1], argv[2]
    timeout_ms = float(argv[3]) * 1000 if len(argv) == 4 else 60_000
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as err:
        sys.stderr.write(
            f"cannot import playwright ({err}): install tests/requirements.txt into the Python "
            "that runs this script (tests/run.sh does: .cache/venv)\n"
        )
        return 3
    if not os.access(CHROMIUM, os.X_OK):
        sys.stderr.write(
            f"Chromium is missing at {CHROMIUM}: install it with `apt-get install -y chromium` "
            "(tests/run.sh does)\n"
        )
        return 4
    requests, console, errors = [], [], []
    profile = tempfile.mkdtemp(prefix="granular-chromium-")
    try:
        with sync_playwright() as p:
            context = p.chromium.launch_persistent_context(
                profile,
                executable_path=CHROMIUM,
                headless=True,
                args=ARGS,
                viewport={"width": 1400, "height": 900},
            )
            context.on("request", lambda r: requests.append(r.url))
            page = context.pages[0] if context.pages else context.new_page()
            page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
            page.on("pageerror", lambda e: errors.append(str(e)))
            try:
                page.goto(url, timeout=timeout_ms)
                page.wait_for_function(DONE, timeout=timeout_ms)
            except Exception as err:  # noqa: BLE001 - reported with what the page showed
                state = page.evaluate("() => document.body && document.body.dataset.state")
                sys.stderr.write(
                    f"{url} did not reach body[data-state] ready or error ({err}); state "
                    f"{state!r}; console {console}; page errors {errors}\n"
                )
                return 1
            result = page.evaluate(COLLECT)
            os.makedirs(os.path.dirname(os.path.abspath(screenshot)), exist_ok=True)
            page.screenshot(path=screenshot, full_page=True)
            context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    result.update(requests=requests, console=console, errors=errors)
    json.dump(result, sys.stdout, ensure_ascii=False)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

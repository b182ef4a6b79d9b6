"""Open built book pages in headless Chromium (Debian's package, driven by Playwright) and report
every page that fails to load, raises a JavaScript error or shows a missing image, and every result page
whose first screen (the top :data:`SCREEN` pixels of the window, before any scrolling) shows a line of
code that imports something: a page should open on its question, answer and main figure, its plumbing
hidden by the cell tags of :mod:`sepnet_core.pipeline.tags`.

Chromium is the system one (``/usr/bin/chromium``, installed by ``make test``'s ``system-deps``);
Playwright downloads nothing. Under ``CI=true`` a missing Chromium fails the test instead of skipping.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path

import pytest

CHROMIUM_ARGS = (
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
)

SCREEN = {"width": 1280, "height": 800}
"""The window of the first-screen check (CSS pixels)."""

# Import lines of code blocks drawn (not folded away) inside the first screen.
_FIRST_SCREEN_IMPORTS_JS = """
() => {
    const height = window.innerHeight;
    const found = [];
    for (const block of document.querySelectorAll('pre')) {
        const box = block.getBoundingClientRect();
        if (box.width === 0 || box.height === 0 || box.bottom <= 0 || box.top >= height) continue;
        if (!block.checkVisibility({visibilityProperty: true})) continue;
        for (const line of block.innerText.split('\\n')) {
            if (/^\\s*(import\\s+[\\w.]+|from\\s+[\\w.]+\\s+import\\s)/.test(line)) found.push(line.trim());
        }
    }
    return found;
}
"""

# For every <img>: loaded (complete) and decoded to a real picture (naturalWidth > 0).
_BROKEN_IMAGES_JS = """
() => Array.from(document.images)
    .filter(img => !(img.complete && img.naturalWidth > 0))
    .map(img => img.getAttribute('src'))
"""


def chromium_path() -> str:
    """Path of the system Chromium; skips the test (fails under CI) when it is not installed."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        message = "chromium not installed (make test installs Debian's chromium package)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def page_problems(html_files: Iterable[Path], result_pages: Iterable[Path] = ()) -> dict[str, list[str]]:
    """Load each HTML file in headless Chromium; return ``{file name: [problems]}`` (empty when all good).

    A problem is a failed navigation, a JavaScript error raised on the page, an ``<img>`` that did not
    load, a page without a title, or, for the files also listed in ``result_pages``, an import line
    visible in the first screen (a window of :data:`SCREEN`).
    """
    first_screen = {Path(p).resolve() for p in result_pages}
    sync_api = pytest.importorskip("playwright.sync_api")
    executable = chromium_path()
    problems: dict[str, list[str]] = {}
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=list(CHROMIUM_ARGS))
        try:
            page = browser.new_page(viewport=SCREEN)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(f"javascript error: {exc}"))
            for html in html_files:
                errors.clear()
                found: list[str] = []
                try:
                    page.goto(html.resolve().as_uri(), wait_until="load", timeout=60_000)
                except Exception as exc:  # noqa: BLE001 - any navigation failure is a problem to report
                    problems[html.name] = [f"did not load: {exc}"]
                    continue
                found += [f"missing image {src}" for src in page.evaluate(_BROKEN_IMAGES_JS)]
                if not page.title().strip():
                    found.append("no title")
                if html.resolve() in first_screen:
                    found += [f"import in the first screen: {line}"
                              for line in page.evaluate(_FIRST_SCREEN_IMPORTS_JS)]
                found += errors
                if found:
                    problems[str(html)] = found
        finally:
            browser.close()
    return problems

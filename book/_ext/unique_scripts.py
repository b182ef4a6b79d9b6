"""Sphinx extension: drop repeated ``<script>`` entries from every HTML page.

sphinx-thebe 0.3.1 registers its inline configuration script on ``env-before-read-docs``, which
Jupyter Book's build fires more than once, so each page declared ``const THEBE_JS_URL`` twice and the
browser raised "Identifier 'THEBE_JS_URL' has already been declared" (seen in headless Chromium by
tests/test_book_committed.py). Keeping the first of identical entries removes the error.
"""

from __future__ import annotations

from typing import Any


def _script_key(script: Any) -> tuple[str, str]:
    """(file name, attributes); an inline script's file name is None or "" depending on who added it."""
    filename = getattr(script, "filename", script) or ""
    attributes = getattr(script, "attributes", {}) or {}
    return str(filename), str(sorted(attributes.items()))


def _unique_scripts(app: Any, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen: set[tuple[str, str]] = set()
    unique = []
    for script in scripts:
        key = _script_key(script)
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def setup(app: Any) -> dict[str, Any]:
    app.connect("html-page-context", _unique_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

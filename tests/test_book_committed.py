"""The committed book: ``jupyter-book build`` of the executed pages in the repository (no stage runs)
finishes without warnings, every page opens in headless Chromium with all its images, and no result
page shows an import line in its first screen (1280 x 800)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from browser import page_problems
from repo_copy import copy_repo_parts

BOOK_PARTS = ("book", "docs", "figures", "results", "_config.yml", "_toc.yml", "README.md")


@pytest.mark.slow
def test_committed_book_builds_and_every_page_renders(tmp_path):
    root = tmp_path / "repo"
    root.mkdir()
    copy_repo_parts(root, BOOK_PARTS)
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    result = subprocess.run(
        [str(jupyter_book), "build", str(root), "--warningiserror", "--keep-going"],
        cwd=root, capture_output=True, text=True, timeout=900, check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    html = root / "_build" / "html"
    sources = [p for p in (root / "book").rglob("*") if p.suffix in (".ipynb", ".md")]
    sources += [root / "docs" / "phantom.md", root / "docs" / "clinical.md"]
    built = [html / p.relative_to(root).with_suffix(".html") for p in sources]
    missing = [str(p) for p in built if not p.is_file()]
    assert missing == []
    pages = (root / "book" / "pages").rglob("*.ipynb")
    results = [html / p.relative_to(root).with_suffix(".html") for p in pages]
    assert len(results) > 10
    assert page_problems(built, result_pages=results) == {}


def test_first_screen_check_sees_open_code_and_not_folded_code(tmp_path):
    """The browser check itself: an import drawn in the first screen is reported; one folded in a
    closed toggle, or below the first screen, is not."""
    code = "<pre>from sepnet_core import book\nimport numpy as np</pre>"
    pages = {
        "open.html": f"<title>open</title><h1>Q</h1>{code}",
        "folded.html": f"<title>folded</title><h1>Q</h1><details><summary>show</summary>{code}</details>",
        "below.html": f"<title>below</title><h1>Q</h1><div style='height:900px'></div>{code}",
    }
    paths = []
    for name, body in pages.items():
        paths.append(tmp_path / name)
        paths[-1].write_text(f"<!doctype html><html><body>{body}</body></html>", encoding="utf-8")
    problems = page_problems(paths, result_pages=paths)
    assert list(problems) == [str(tmp_path / "open.html")]
    assert problems[str(tmp_path / "open.html")] == [
        "import in the first screen: from sepnet_core import book",
        "import in the first screen: import numpy as np"]

"""The committed book: ``jupyter-book build`` of the executed pages in the repository (no stage runs)
finishes without warnings, and every page opens in headless Chromium with all its images."""

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
    assert page_problems(built) == {}

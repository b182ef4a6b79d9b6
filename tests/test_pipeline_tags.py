"""Display tags of the book's pages (sepnet_core.pipeline.tags): plumbing hidden, every notebook tagged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sepnet_core.pipeline.tags import DISPLAY_TAGS, main, tag_file, tag_notebook

ROOT = Path(__file__).resolve().parents[1]


def cell(kind, source, tags=None):
    return {"cell_type": kind, "metadata": {"tags": list(tags)} if tags is not None else {}, "source": source}


def page():
    return {"cells": [
        cell("markdown", "# Title\n\nThe question."),
        cell("code", "import numpy as np\n"),
        cell("code", "profile = 'cpu'\n", ["parameters"]),
        cell("code", "# Parameters\nprofile = 'smoke'\n", ["injected-parameters"]),
        cell("code", "RESULTS = make()\n", ["hide-output"]),
        cell("markdown", "## First section"),
        cell("code", "show(result)\n"),
        cell("code", "table\n", ["remove-cell"]),
        cell("markdown", "text"),
    ], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def tags(notebook):
    return [c["metadata"].get("tags", []) for c in notebook["cells"]]


def test_rule_hides_setup_folds_parameters_and_keeps_chosen_tags():
    notebook = page()
    assert tag_notebook(notebook)
    assert tags(notebook) == [[], ["remove-input"], ["parameters", "hide-cell"],
                              ["injected-parameters", "hide-cell"], ["hide-output", "remove-input"], [],
                              ["hide-input"], ["remove-cell"], []]
    assert not tag_notebook(notebook)  # idempotent


def test_tag_file_rewrites_only_when_changed_and_rejects_non_notebooks(tmp_path, capsys):
    path = tmp_path / "page.ipynb"
    path.write_text(json.dumps(page(), indent=1) + "\n", encoding="utf-8")
    assert tag_file(path) and not tag_file(path)
    assert tags(json.loads(path.read_text()))[1] == ["remove-input"]
    bad = tmp_path / "bad.ipynb"
    bad.write_text("{}", encoding="utf-8")
    with pytest.raises(ValueError, match="bad.ipynb: not a notebook"):
        tag_file(bad)
    assert main([str(path)]) == 0 and "unchanged" in capsys.readouterr().out
    assert main([str(bad)]) == 2 and "bad.ipynb" in capsys.readouterr().err


NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb")) + sorted((ROOT / "book" / "pages").rglob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_template_and_committed_page_is_tagged(path):
    notebook = json.loads(path.read_text(encoding="utf-8"))
    assert not tag_notebook(notebook), f"{path}: run python -m sepnet_core.pipeline.tags on it"
    code = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    assert all(set(c["metadata"].get("tags", [])) & DISPLAY_TAGS for c in code)  # no code shown open

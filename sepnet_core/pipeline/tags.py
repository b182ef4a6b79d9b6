"""Cell tags that make a book page read like a paper: plumbing hidden, results first.

Jupyter Book (myst-nb) reads display tags from each cell's ``metadata.tags``; they hide, they never
remove code from the notebook, so every template still runs by hand in JupyterLab:

* ``remove-input`` (:data:`SETUP`): the set-up code before the page's first section (imports, paths,
  loading): not shown, its output (if any) is;
* ``hide-cell`` (:data:`TOGGLE`): the ``parameters`` cell and the ``injected-parameters`` cell papermill
  inserts after it (papermill tags its cell ``injected-parameters`` only, it does not copy the
  parameters cell's tags, and myst-nb shows it like any cell): folded under a toggle;
* ``hide-input`` (:data:`FOLD`): every other code cell: its output shown, its code under a toggle for a
  curious reader.

A cell that already carries a display tag (:data:`DISPLAY_TAGS`) keeps it. :func:`tag_notebook` applies
the rule to a notebook in place (templates and executed pages alike; idempotent); the pipeline driver
calls it on every executed page (:mod:`sepnet_core.pipeline.runner`), and ``python -m
sepnet_core.pipeline.tags FILE...`` applies it to notebooks on disk (e.g. ``notebooks/*.ipynb`` and the
committed ``book/pages/**/*.ipynb``), rewriting only files whose tags change.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import MutableMapping, Sequence
from pathlib import Path
from typing import Any

from sepnet_core.fileio import write_text_atomic

__all__ = ["DISPLAY_TAGS", "FOLD", "SETUP", "TOGGLE", "display_tag", "main", "tag_file", "tag_notebook"]

SETUP = "remove-input"
"""Tag of the set-up cells (before the first section)."""
TOGGLE = "hide-cell"
"""Tag of the parameters and injected-parameters cells."""
FOLD = "hide-input"
"""Tag of the other code cells."""
DISPLAY_TAGS = frozenset({"remove-input", "remove-cell", "hide-input", "hide-cell"})
"""myst-nb tags that decide how a cell's code is shown; a cell with one of them is left as it is (the
output-only tags ``hide-output`` / ``remove-output`` combine with the rule's tag)."""

_PARAMETER_TAGS = ("parameters", "injected-parameters")


def _source(cell: MutableMapping[str, Any]) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def _is_section(cell: MutableMapping[str, Any]) -> bool:
    """A markdown cell opening a section (a ``##`` heading) ends the set-up part of a page."""
    return cell.get("cell_type") == "markdown" and any(
        line.startswith("## ") for line in _source(cell).splitlines())


def display_tag(cell: MutableMapping[str, Any], in_setup: bool) -> str | None:
    """The display tag the rule gives ``cell`` (None for markdown and raw cells, and for a cell that
    already has a display tag)."""
    if cell.get("cell_type") != "code":
        return None
    tags = set(cell.get("metadata", {}).get("tags", []))
    if tags & DISPLAY_TAGS:
        return None
    if tags & set(_PARAMETER_TAGS):
        return TOGGLE
    return SETUP if in_setup else FOLD


def tag_notebook(notebook: MutableMapping[str, Any]) -> bool:
    """Add the display tags of the module docstring to ``notebook`` (a notebook dict or nbformat node).

    Returns:
        True when a tag was added.

    Raises:
        ValueError: ``notebook`` has no ``cells`` list.
    """
    cells = notebook.get("cells")
    if not isinstance(cells, list):
        raise ValueError("not a notebook: no 'cells' list")
    changed, in_setup = False, True
    for cell in cells:
        if _is_section(cell):
            in_setup = False
        tag = display_tag(cell, in_setup)
        if tag is None:
            continue
        metadata = cell.setdefault("metadata", {})
        metadata["tags"] = [*metadata.get("tags", []), tag]
        changed = True
    return changed


def tag_file(path: str | os.PathLike[str]) -> bool:
    """Apply :func:`tag_notebook` to a notebook file, rewritten atomically (same JSON layout as Jupyter:
    indent 1, UTF-8) only when a tag changes.

    Returns:
        True when the file was rewritten.

    Raises:
        ValueError: the file is not a notebook (the message names it).
    """
    path = Path(path)
    try:
        notebook = json.loads(path.read_text(encoding="utf-8"))
        changed = tag_notebook(notebook)
    except (json.JSONDecodeError, ValueError, AttributeError) as exc:
        raise ValueError(f"{path}: not a notebook ({exc})") from None
    if changed:
        write_text_atomic(path, json.dumps(notebook, indent=1, ensure_ascii=False) + "\n", overwrite=True)
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m sepnet_core.pipeline.tags FILE...``: tag notebooks in place; print what changed."""
    paths = list(sys.argv[1:] if argv is None else argv)
    if not paths:
        print("usage: python -m sepnet_core.pipeline.tags NOTEBOOK.ipynb ...", file=sys.stderr)
        return 2
    for path in paths:
        try:
            changed = tag_file(path)
        except (OSError, ValueError) as exc:
            print(f"sepnet tags: error: {exc}", file=sys.stderr)
            return 2
        print(f"{path}: {'tagged' if changed else 'unchanged'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

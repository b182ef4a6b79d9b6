"""Copy parts of the repository into a scratch root, for tests that build the book there."""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def copy_repo_parts(root: Path, names: Iterable[str],
                    ignore: Iterable[str] = (".ipynb_checkpoints",)) -> None:
    """Copy each file or folder ``names`` (relative to the repository) to the same place under ``root``,
    skipping names that do not exist and, inside folders, entries matching the ``ignore`` patterns."""
    for name in names:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns(*ignore))
        elif source.exists():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / name)

"""A phantom data set that owns its folder: regenerated whole on request, never mixed with other files.

The book's data stage calls :func:`generate_phantom` (``sepnet_core.book.generate_phantom`` re-exports it).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path

__all__ = ["PHANTOM_MANIFEST", "generate_phantom"]

PHANTOM_MANIFEST = "dataset.json"
"""File the phantom writes into a data set folder (marks a folder as generated)."""
_PHANTOM_MANIFEST = PHANTOM_MANIFEST


def generate_phantom(data_dir: str | os.PathLike[str], profile: str, cases: Mapping[str, int], seed: int,
                     workers: int | None = None) -> list[Path]:
    """(Re)generate the phantom data set of a profile in ``data_dir``.

    A folder generated earlier (it holds the phantom's ``dataset.json``) is deleted first, so the folder
    always holds exactly this request; a non-empty folder without that manifest is never touched.

    Args:
        data_dir: Output folder (StructSeg layout ``<split>/<case>/data.nii.gz``).
        profile: Phantom profile (:data:`sepnet_core.data.phantom.PHANTOM_PROFILES`).
        cases: Cases per split, e.g. ``{"train": 6, "valid": 2, "test": 2}``.
        seed: Data-set seed.
        workers: Processes (default: the phantom's default).

    Returns:
        The case folders.

    Raises:
        FileExistsError: ``data_dir`` is a non-empty folder that the phantom did not write.
    """
    from sepnet_core.data.phantom import write_dataset

    folder = Path(data_dir)
    if folder.is_dir() and any(folder.iterdir()):
        if not (folder / _PHANTOM_MANIFEST).is_file():
            raise FileExistsError(f"{folder}: not empty and not a generated phantom "
                                  f"(no {_PHANTOM_MANIFEST}); refusing to replace it")
        shutil.rmtree(folder)
    counts = {str(k): int(v) for k, v in cases.items()}
    return write_dataset(folder, cases=sum(counts.values()), seed=seed, profile=profile, split=counts,
                         workers=workers)

"""Train/valid/test splits of a flat StructSeg folder, and the up-front check every stage runs.

StructSeg 2019 ships its 50 labelled cases as ``<root>/<patient>/data.nii.gz`` + ``label.nii.gz``
with no split folders, while the library reads ``<root>/<split>/<patient>/`` (:mod:`sepnet_core.data.io`).
:func:`make_splits` (``sepnet split ROOT``) creates that layout **without moving anything**: each split
folder holds relative symbolic links ``<root>/<split>/<patient> -> ../<patient>``, so every reader of
the library works unchanged, the user's files stay where they were, and the whole root can be moved or
mounted elsewhere. The assignment is recorded in ``<root>/splits.json`` (seed, counts, the patients of
each split), so a split is reproducible and auditable.

Our split of the 50 cases (ours, the default): **35 train / 5 valid / 10 test**. The reference code trains on
40 and validates on 10 and the challenge scored on a hidden test set we do not have, so a test split
must come out of the 50. We keep 10 test cases, as many as the reference evaluates on, because the
book's comparisons (ablations, ensemble vs members) are paired per test case and their precision
grows with the test cases; validation only picks the best checkpoint (a mean over 22 organs), for which
5 cases suffice; training keeps 35 cases (7/8 of the paper's 40). Other counts: ``--counts``. For
other case numbers the default is 70 / 10 / 20 % (at least one case in each split).

The assignment: patient folders sorted in natural order (``2`` before ``10``), permuted by
``numpy.random.default_rng(seed)``, then cut into train, valid, test in that order.

:func:`require_splits` checks, before any work starts, that the splits a stage will read exist and hold
cases with labels; the training notebook, the pipeline driver and ``sepnet split`` itself use it, so a
missing ``test/`` fails in one line at the start, not after 400 epochs.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sepnet_core.data._nifti import InputNotFoundError
from sepnet_core.data.io import DATA_NAME, LABEL_NAME, _natural_key, check_name, list_cases
from sepnet_core.errors import SepNetInputError
from sepnet_core.fileio import is_temporary, write_text_atomic

__all__ = [
    "SPLIT_NAMES",
    "SPLITS_FILE",
    "STRUCTSEG_COUNTS",
    "SplitPlan",
    "default_counts",
    "parse_counts",
    "find_patients",
    "plan_splits",
    "make_splits",
    "require_splits",
]

SPLIT_NAMES: tuple[str, ...] = ("train", "valid", "test")
"""The split folders, in the order cases are assigned to them."""
SPLITS_FILE = "splits.json"
"""Record of a split, written in the data root."""
STRUCTSEG_COUNTS: dict[str, int] = {"train": 35, "valid": 5, "test": 10}
"""Our split of StructSeg's 50 cases (see the module docstring for the reasons)."""
_FORMAT = 1


def default_counts(n: int) -> dict[str, int]:
    """Cases per split for ``n`` patients: :data:`STRUCTSEG_COUNTS` for 50, else 70/10/20 % (>= 1 each).

    Raises:
        ValueError: fewer than 3 patients.
    """
    if n < 3:
        raise ValueError(f"need at least 3 patients for train, valid and test, found {n}")
    if n == sum(STRUCTSEG_COUNTS.values()):
        return dict(STRUCTSEG_COUNTS)
    test = max(1, round(0.2 * n))
    valid = max(1, round(0.1 * n))
    return {"train": n - valid - test, "valid": valid, "test": test}


def parse_counts(text: str) -> dict[str, int]:
    """``"35,5,10"`` or ``"train=35,valid=5,test=10"`` -> ``{"train": 35, "valid": 5, "test": 10}``.

    Raises:
        ValueError: not three non-negative integers, unknown split names, or no training case.
    """
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    try:
        if all("=" in p for p in parts):
            counts = {k.strip(): int(v) for k, v in (p.split("=", 1) for p in parts)}
        else:
            counts = dict(zip(SPLIT_NAMES, (int(p) for p in parts), strict=True))
    except ValueError:
        raise ValueError(f"counts {text!r}: expected train,valid,test as three integers, e.g. 35,5,10 "
                         "or train=35,valid=5,test=10") from None
    if sorted(counts) != sorted(SPLIT_NAMES) or min(counts.values()) < 0 or counts["train"] < 1:
        raise ValueError(f"counts {text!r}: need train >= 1, valid >= 0, test >= 0 (all three named)")
    return {name: counts[name] for name in SPLIT_NAMES}


def find_patients(root: str | os.PathLike[str]) -> list[str]:
    """Patient folders directly under ``root`` (holding ``data.nii.gz``), in natural order.

    Split folders (``train``, ``valid``, ``test``), hidden folders and temporary files are skipped.

    Raises:
        InputNotFoundError: ``root`` does not exist.
        SepNetInputError: ``root`` is not a folder, holds no patient folder, or a patient lacks
            ``label.nii.gz``.
    """
    root = Path(root)
    if not root.exists():
        raise InputNotFoundError(f"{root}: data folder does not exist")
    if not root.is_dir():
        raise SepNetInputError(f"{root}: data path is not a folder")
    patients = []
    for entry in root.iterdir():
        if entry.name in SPLIT_NAMES or entry.name.startswith(".") or is_temporary(entry):
            continue
        if entry.is_dir() and (entry / DATA_NAME).is_file():
            if not (entry / LABEL_NAME).is_file():
                raise SepNetInputError(f"{entry}: no {LABEL_NAME} (every case of a split needs its labels)")
            patients.append(entry.name)
    if not patients:
        raise SepNetInputError(f"{root}: no patient folders <patient>/{DATA_NAME} at the top level "
                               "(a flat StructSeg folder is expected)")
    return sorted(patients, key=_natural_key)


@dataclass(frozen=True)
class SplitPlan:
    """Which patients go to which split.

    Attributes:
        root: The data root.
        seed: Seed of the permutation.
        splits: ``{split: [patient, ...]}`` in :data:`SPLIT_NAMES` order, each list in natural order.
    """

    root: Path
    seed: int
    splits: dict[str, list[str]]

    def record(self) -> dict[str, Any]:
        """The JSON object written to ``splits.json``."""
        return {"format": _FORMAT, "created_by": "sepnet split", "layout": "symlinks <split>/<patient> -> "
                "../<patient>", "seed": self.seed,
                "counts": {k: len(v) for k, v in self.splits.items()}, "splits": self.splits}


def plan_splits(root: str | os.PathLike[str], seed: int = 0,
                counts: Mapping[str, int] | None = None) -> SplitPlan:
    """Assign the patients of a flat folder to train/valid/test, deterministically from ``seed``.

    Args:
        root: Flat StructSeg folder, ``<root>/<patient>/data.nii.gz`` + ``label.nii.gz``.
        seed: Seed (>= 0) of the permutation.
        counts: Cases per split (summing to the number of patients); default :func:`default_counts`.

    Raises:
        ValueError: bad seed or counts that do not sum to the number of patients.
        InputNotFoundError / SepNetInputError: see :func:`find_patients`.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    patients = find_patients(root)
    counts = dict(counts) if counts is not None else default_counts(len(patients))
    if sum(counts.values()) != len(patients):
        raise SepNetInputError(f"{root}: {len(patients)} patient folders, but the counts "
                               f"{counts} sum to {sum(counts.values())}")
    order = np.random.default_rng(seed).permutation(len(patients))
    splits, start = {}, 0
    for name in SPLIT_NAMES:
        chosen = [patients[i] for i in order[start:start + counts[name]]]
        splits[name] = sorted(chosen, key=_natural_key)
        start += counts[name]
    return SplitPlan(Path(root), seed, splits)


def _current(folder: Path) -> tuple[set[str], list[str]]:
    """Names of the links in a split folder that point to ``../<name>``, and its other entries."""
    links, other = set(), []
    for entry in folder.iterdir():
        if entry.is_symlink() and os.readlink(entry) == os.path.join(os.pardir, entry.name):
            links.add(entry.name)
        else:
            other.append(entry.name)
    return links, other


def make_splits(plan: SplitPlan, force: bool = False) -> bool:
    """Create ``<root>/<split>/<patient> -> ../<patient>`` links and ``splits.json`` as ``plan`` says.

    Idempotent: if the split folders already hold exactly the planned links, nothing is written.
    Nothing a user made is removed: ``force`` replaces split folders that hold only links made by this
    function (``../<patient>``), never real files or folders.

    Returns:
        True if the folders were written, False if they were already as planned.

    Raises:
        FileExistsError: a split folder or ``splits.json`` differs from the plan and ``force`` is false.
        SepNetInputError: a split path is not a folder, or holds something other than our links.
    """
    root = plan.root
    record = json.dumps(plan.record(), indent=2) + "\n"
    existing, differs = {}, []
    for name in SPLIT_NAMES:
        folder = root / name
        if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
            raise SepNetInputError(f"{folder}: exists and is not a split folder; move it away")
        if folder.is_dir():
            links, other = _current(folder)
            if other:
                raise SepNetInputError(f"{folder}: holds {other[0]!r}, which is not a link made by "
                                       "sepnet split; move the folder away (nothing was changed)")
            existing[name] = links
            if links != set(plan.splits[name]) or not links:
                differs.append(name)
        elif plan.splits[name]:
            differs.append(name)
    record_path = root / SPLITS_FILE
    same_record = record_path.is_file() and record_path.read_text(encoding="utf-8") == record
    if not differs and same_record:
        return False
    if (existing and differs or record_path.exists() and not same_record) and not force:
        taken = [f"{root / n}" for n in existing] + ([str(record_path)] if record_path.exists() else [])
        raise FileExistsError(f"{taken[0]}: a different split exists ({', '.join(taken)}); "
                              "use --force to replace it (only links are removed)")
    for name in (n for n in SPLIT_NAMES if n in differs):
        folder, tmp = root / name, root / f".{name}.split-tmp"
        if tmp.exists():
            shutil.rmtree(tmp)  # left by an interrupted earlier call; holds only our links
        if plan.splits[name]:
            tmp.mkdir()
            for patient in plan.splits[name]:
                (tmp / patient).symlink_to(os.path.join(os.pardir, patient), target_is_directory=True)
        if folder.exists():
            for link in existing[name]:
                (folder / link).unlink()  # links only: _current() refused any other entry
            folder.rmdir()
        if plan.splits[name]:
            tmp.rename(folder)
    write_text_atomic(record_path, record, overwrite=True)
    return True


def require_splits(root: str | os.PathLike[str], splits: Sequence[str],
                   labels: bool = True) -> dict[str, int]:
    """Check up front that each split a stage needs exists and holds cases (with labels).

    Args:
        root: Data root, ``<root>/<split>/<case>/data.nii.gz``.
        splits: Split folder names the stage will read, e.g. ``["train", "valid", "test"]``.
        labels: Also require ``label.nii.gz`` in every case.

    Returns:
        ``{split: number of cases}``.

    Raises:
        InputNotFoundError: the root or a split folder is missing (one line naming it; for a flat
            StructSeg folder it says to run ``sepnet split``).
        SepNetInputError: a split holds no case, or a case has no label.
    """
    root = Path(root)
    found = {}
    for split in splits:
        check_name(split, "split name", root / split)
        if root.is_dir() and not (root / split).exists():
            hint = ""
            try:
                find_patients(root)
                hint = f"; this looks like a flat StructSeg folder: run `sepnet split {root}` first"
            except SepNetInputError:
                pass
            raise InputNotFoundError(f"{root / split}: split folder does not exist (needed before "
                                     f"this stage starts){hint}")
        cases = list_cases(root, split)
        if labels:
            missing = [c for c in cases if not (c / LABEL_NAME).is_file()]
            if missing:
                raise SepNetInputError(f"{missing[0]}: no {LABEL_NAME} ({len(missing)} of {len(cases)} "
                                       f"cases of {split} lack labels)")
        found[split] = len(cases)
    return found

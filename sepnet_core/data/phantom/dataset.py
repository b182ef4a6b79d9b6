"""Write a phantom data set in the StructSeg layout, cases generated in parallel.

Layout: ``<out>/<split>/phantom_<index>/data.nii.gz`` (int16 HU) and ``label.nii.gz`` (uint8, labels
0..22), plus ``<out>/dataset.json`` describing how the set was made. Case ``i`` is generated from the
seed ``case_seed(seed, i)`` (``numpy.random.SeedSequence(seed, spawn_key=(i,))``), so every file is
the same whatever the number of workers or the order they finish in; files are byte-identical
between runs (SimpleITK writes gzip headers without a time stamp).
"""

from __future__ import annotations

import logging
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from sepnet_core import __version__
from sepnet_core.data.io import DATA_NAME, LABEL_NAME, write_image
from sepnet_core.data.phantom.generator import DEFAULT_NOISE_HU, generate_case, get_profile
from sepnet_core.errors import SepNetError
from sepnet_core.fileio import write_json_atomic

__all__ = ["SPLITS", "default_split", "parse_split", "case_seed", "case_name", "check_request",
           "write_dataset", "OutputNotEmptyError"]

logger = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("train", "valid", "test")
"""Split folder names, in the order cases are assigned to them."""


class OutputNotEmptyError(SepNetError):
    """The output folder exists and is not empty (pass ``force=True`` / ``--force``)."""


def default_split(cases: int) -> dict[str, int]:
    """About 70/15/15 % train/valid/test, with at least one case in each split when ``cases >= 3``.

    Args:
        cases: Number of cases (>= 1). With 1 case all go to train; with 2, train and valid get one each.

    Returns:
        Dict ``{"train": n, "valid": n, "test": n}`` summing to ``cases``.
    """
    _check_count("cases", cases, 1)
    if cases < 3:
        return {"train": 1, "valid": cases - 1, "test": 0}
    valid = max(1, int(0.15 * cases + 0.5))
    test = max(1, int(0.15 * cases + 0.5))
    return {"train": cases - valid - test, "valid": valid, "test": test}


def parse_split(text: str) -> dict[str, int]:
    """Parse ``"train=7,valid=2,test=1"`` (any subset of the split names, counts >= 0).

    Raises:
        ValueError: Unknown split name, repeated name, or a count that is not a whole number >= 0.
    """
    out: dict[str, int] = {}
    for part in str(text).split(","):
        name, sep, value = part.strip().partition("=")
        if not sep or name not in SPLITS:
            raise ValueError(f"split entry {part.strip()!r} must be NAME=COUNT with NAME one of "
                             f"{', '.join(SPLITS)}")
        if name in out:
            raise ValueError(f"split {name!r} is given twice in {text!r}")
        try:
            count = int(value)
        except ValueError:
            count = -1
        if count < 0:
            raise ValueError(f"split count {value!r} for {name!r} must be a whole number >= 0")
        out[name] = count
    return {name: out.get(name, 0) for name in SPLITS}


def case_seed(seed: int, index: int) -> int:
    """Seed of case ``index`` of a data set made with ``seed`` (independent streams per case)."""
    state = np.random.SeedSequence(int(seed), spawn_key=(int(index),)).generate_state(2, np.uint32)
    return int(state[0]) << 32 | int(state[1])


def case_name(index: int) -> str:
    """Folder name of case ``index``: ``phantom_000``, ``phantom_001``, ..."""
    return f"phantom_{index:03d}"


def _check_count(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}={value!r} must be a whole number >= {minimum}")
    return int(value)


def check_request(cases: int, seed: int, profile: str, split: dict[str, int] | None, workers: int | None,
                  noise_hu: float) -> tuple[dict[str, int], int]:
    """Validate the arguments of :func:`write_dataset` before any work is done.

    Returns:
        ``(split, workers)``: the split counts for every split name and the number of workers.

    Raises:
        ValueError: A bad value; the message names the argument, the value and the rule.
    """
    _check_count("cases", cases, 1)
    _check_count("seed", seed, 0)
    get_profile(profile)
    if isinstance(noise_hu, bool) or not isinstance(noise_hu, (int, float)) or not 0.0 <= noise_hu <= 200.0:
        raise ValueError(f"noise_hu={noise_hu!r} must be a number in 0..200 HU")
    split = default_split(cases) if split is None else dict(split)
    unknown = sorted(set(split) - set(SPLITS))
    if unknown:
        raise ValueError(f"split has unknown names {unknown}; valid: {', '.join(SPLITS)}")
    counts = {name: _check_count(f"split[{name!r}]", split.get(name, 0), 0) for name in SPLITS}
    if sum(counts.values()) != cases:
        raise ValueError(f"split {counts} sums to {sum(counts.values())}, but cases={cases}")
    workers = min(2, os.cpu_count() or 1) if workers is None else _check_count("workers", workers, 1)
    return counts, workers


def _write_case(job: dict) -> dict:
    """Generate and write one case (runs in a worker process). Returns its manifest entry."""
    start = time.perf_counter()
    case = generate_case(job["seed"], job["profile"], job["name"], job["noise_hu"])
    folder = Path(job["folder"])
    folder.mkdir(parents=True, exist_ok=True)
    write_image(folder / DATA_NAME, case.image, case.geometry, dtype="int16", overwrite=job["overwrite"])
    write_image(folder / LABEL_NAME, case.label, case.geometry, dtype="uint8", overwrite=job["overwrite"])
    if job["preview"]:
        from sepnet_core.data.phantom.preview import preview_case

        preview_case(case.image, case.label, case.geometry.spacing_mm, job["preview"],
                     title=f"{job['split']}/{job['name']} ({job['profile']} profile, data-set seed "
                           f"{job['dataset_seed']})",
                     overwrite=job["overwrite"])
    labels = np.bincount(case.label.ravel(), minlength=23)
    return {"case": job["name"], "split": job["split"], "seed": job["seed"],
            "shape_zyx": list(case.geometry.shape), "spacing_zyx_mm": list(case.geometry.spacing_mm),
            "origin_xyz_mm": list(case.geometry.origin), "organ_voxels": labels[1:].tolist(),
            "seconds": time.perf_counter() - start}


def write_dataset(
    out_dir: str | os.PathLike[str],
    cases: int,
    seed: int,
    profile: str = "cpu",
    split: dict[str, int] | None = None,
    workers: int | None = None,
    noise_hu: float = DEFAULT_NOISE_HU,
    force: bool = False,
    preview: bool = False,
) -> list[Path]:
    """Generate ``cases`` phantom cases and write them in the StructSeg layout.

    Args:
        out_dir: Output folder; created if missing. Must be empty unless ``force``.
        cases: Number of cases (>= 1).
        seed: Data-set seed (>= 0); case ``i`` uses :func:`case_seed` ``(seed, i)``.
        profile: ``"cpu"`` or ``"structseg"``.
        split: Cases per split (``{"train": .., "valid": .., "test": ..}``) summing to ``cases``;
            ``None`` uses :func:`default_split`. Cases are assigned in index order.
        workers: Parallel processes; default ``min(2, os.cpu_count())``.
        noise_hu: Scanner noise standard deviation, HU.
        force: Write into a non-empty folder, replacing files of the same names.
        preview: Also write ``<out>/preview.png`` of the first case.

    Returns:
        The case folders, in index order.

    Raises:
        ValueError: Bad counts, a split that does not sum to ``cases``, unknown profile.
        OutputNotEmptyError: ``out_dir`` is not empty and ``force`` is false.
    """
    counts, workers = check_request(cases, seed, profile, split, workers, noise_hu)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise OutputNotEmptyError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise OutputNotEmptyError(f"{out}: folder is not empty (use --force to write into it)")
    out.mkdir(parents=True, exist_ok=True)
    names = [name for name in SPLITS for _ in range(counts[name])]
    jobs = [{"seed": case_seed(seed, i), "dataset_seed": seed, "profile": profile, "name": case_name(i),
             "split": names[i], "folder": str(out / names[i] / case_name(i)), "noise_hu": float(noise_hu),
             "overwrite": force, "preview": str(out / "preview.png") if preview and i == 0 else ""}
            for i in range(cases)]
    if workers == 1 or cases == 1:
        entries = [_write_case(job) for job in jobs]
    else:
        with ProcessPoolExecutor(max_workers=min(workers, cases)) as pool:
            entries = list(pool.map(_write_case, jobs))
    for entry in entries:
        logger.info("%s/%s written in %.1f s", entry["split"], entry["case"], entry["seconds"])
        del entry["seconds"]  # the manifest must not depend on timing
    manifest = {"generator": f"sepnet-book {__version__} phantom", "profile": profile, "seed": seed,
                "cases": cases, "split": counts, "noise_hu": float(noise_hu), "case_list": entries}
    write_json_atomic(out / "dataset.json", manifest, overwrite=force)
    return [Path(job["folder"]) for job in jobs]

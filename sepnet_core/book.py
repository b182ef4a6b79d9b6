"""Helpers of the book's stage notebooks that are not analysis: paths, quiet output, ``glue``, the result
files of a training stage and atomic result writers.

Names the notebooks use from elsewhere are re-exported here, so ``from sepnet_core import book`` is all a
notebook needs: stage commands (:mod:`sepnet_core.pipeline.commands`: ``train_overrides``,
``torchrun_command``, ``papermill_command``), the phantom data set (:mod:`sepnet_core.data.generated`:
``generate_phantom``), scoring a split (:func:`sepnet_core.evaluation.evaluate_split`, behind
``evaluate_split``) and installed versions (:func:`sepnet_core.clinical.report.distribution_versions`,
behind ``package_versions``).

Every analysis number is computed in :mod:`sepnet_core.analysis`; the notebooks (``notebooks/*.ipynb``)
call it and use this module for the plumbing around it.

Result files of a training stage (``results/<profile>/train_<run>_s<seed>/``, committed, so that the
ablation and summary pages can be re-rendered without checkpoints), :data:`RUN_FILES`:

* ``test_metrics.csv``: one row per (test case, organ): ``case, label, organ, dice, hd95`` (mm),
  ``volume_ref_ml, volume_pred_ml`` (:func:`sepnet_core.metrics.evaluate_case`);
* ``log.csv``: the training log (:data:`sepnet_core.training.LOG_COLUMNS`);
* ``config.json``: the :class:`~sepnet_core.training.TrainConfig` as a dict;
* ``timing.json``: ``run, seed, train_seconds`` (sum of the epochs' seconds in ``log.csv``, so a resumed
  run counts every epoch once), ``inference_seconds`` (per test case), ``device``.

Example:
    >>> table = evaluation_table({"SLF-1": ["results/cpu/train_sepnet_slf1_ath1_s0"]})  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from numbers import Real
from pathlib import Path
from typing import Any

import pandas as pd

from sepnet_core.data.generated import generate_phantom
from sepnet_core.fileio import write_csv_atomic, write_json_atomic
from sepnet_core.pipeline.commands import papermill_command, torchrun_command, train_overrides

__all__ = [
    "PACKAGES", "RUN_FILES", "RunResults", "evaluate_split", "evaluation_table", "format_value",
    "generate_phantom", "glue_text", "inference_device", "output_dir", "package_versions",
    "papermill_command", "prepare_run_dir", "quiet_notebook", "read_json", "read_run", "repo_path",
    "seed_spread", "show_figure", "spread_or_none", "torchrun_command", "train_overrides", "write_csv",
    "write_json",
]

RUN_FILES: tuple[str, ...] = ("test_metrics.csv", "log.csv", "config.json", "timing.json")
"""Files a training stage writes to its ``results_dir`` (see the module docstring)."""

PACKAGES: tuple[str, ...] = ("sepnet-book", "torch", "numpy", "scipy", "pandas", "SimpleITK", "nibabel",
                             "monai", "matplotlib", "papermill", "jupyter-book", "myst-nb")
"""Packages listed on the reproducibility page."""

# ------------------------------------------------------------------------------------------- paths
def repo_path(path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> Path:
    """``path`` resolved against the repository root (absolute paths are returned unchanged).

    The driver runs every notebook with the repository root as working directory; by hand Jupyter
    starts in ``notebooks/``. Resolving through this function makes the same relative parameters work
    in both.

    Args:
        path: A path relative to the repository root (``results/cpu/data``) or absolute.
        root: Repository root; default :func:`sepnet_core.pipeline.find_repo_root` of the cwd.
    """
    path = Path(path)
    if path.is_absolute():
        return path
    if root is None:
        from sepnet_core.pipeline.cache import find_repo_root

        root = find_repo_root()
    return Path(root) / path


def output_dir(path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> Path:
    """:func:`repo_path` of ``path``, created (with parents) if missing."""
    folder = repo_path(path, root)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def quiet_notebook() -> None:
    """Keep stage notebooks free of progress bars and log noise; call it before importing the library.

    Sets ``TQDM_DISABLE=1`` (tqdm reads it as the default of ``disable``), ignores tqdm's "IProgress not
    found" warning (``tqdm.auto`` in a kernel without ipywidgets, raised when
    :mod:`sepnet_core.training` is imported) and routes warnings of the library's loggers to stdout in
    one-line form, so the executed pages show no stderr streams.
    """
    import warnings

    os.environ["TQDM_DISABLE"] = "1"
    warnings.filterwarnings("ignore", message="IProgress not found")
    logger = logging.getLogger("sepnet_core")
    if not any(getattr(h, "_sepnet_book", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
        handler._sepnet_book = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    logger.propagate = False


def show_figure(fig: Any, folder: str | os.PathLike[str], name: str) -> None:
    """Save ``fig`` as ``folder/name`` (PNG, atomic) and display that file in the notebook.

    Showing the written file (not the live figure) puts exactly the committed PNG on the page, whatever
    matplotlib backend the kernel has. Returns None, so a cell ending with the call shows no ``Out``.
    """
    from IPython.display import Image, display

    from sepnet_core.analysis.plots import save_figure

    path = save_figure(fig, Path(folder) / name)
    display(Image(filename=str(path)))


def inference_device() -> str:
    """``"cuda"`` when a CUDA GPU is visible, else ``"cpu"``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


# -------------------------------------------------------------------------------------------- glue
def format_value(value: Any, fmt: str = "") -> str:
    """``value`` as text for prose: ``format(value, fmt)``; NaN, None and infinities give ``"n/a"``.

    Example:
        >>> format_value(0.81234, ".3f"), format_value(float("nan"), ".3f"), format_value("ok")
        ('0.812', 'n/a', 'ok')
    """
    if value is None:
        return "n/a"
    if isinstance(value, Real) and not isinstance(value, bool) and not math.isfinite(float(value)):
        return "n/a"
    return format(value, fmt)


def glue_text(name: str, value: Any, fmt: str = "") -> None:
    """Store ``value`` formatted by :func:`format_value` for ``{glue:text}`name``` in the page's prose.

    The value is glued as a string, without display, so the markdown shows exactly the formatted text
    (and a cell ending with the call shows no ``Out``).
    """
    from myst_nb import glue

    glue(name, format_value(value, fmt), display=False)


# ------------------------------------------------------------------------------------------ results
def write_csv(frame: pd.DataFrame, folder: str | os.PathLike[str], name: str, index: bool = False) -> None:
    """Write ``frame`` to ``folder/name`` atomically, replacing an older file (returns None, so a notebook
    cell ending with the call shows no ``Out``)."""
    write_csv_atomic(Path(folder) / name, frame, overwrite=True, index=index)


def write_json(obj: Any, folder: str | os.PathLike[str], name: str) -> None:
    """Write ``obj`` as JSON to ``folder/name`` atomically, replacing an older file (returns None)."""
    write_json_atomic(Path(folder) / name, obj, overwrite=True)


def read_json(path: str | os.PathLike[str]) -> Any:
    """The JSON content of ``path`` (NaN and Infinity accepted, as :func:`write_json` writes them)."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


@dataclass(frozen=True)
class RunResults:
    """The committed results of one training stage (see the module docstring).

    Attributes:
        path: The stage's results folder.
        run: Run id with seed, e.g. ``sepnet_slf1_ath1_s0``.
        seed: Training seed.
        config: The training config dict (``config.json``).
        metrics: Per (test case, organ) metrics (``test_metrics.csv``).
        timing: ``timing.json``.
        log: The training log (``log.csv``).
    """

    path: Path
    run: str
    seed: int
    config: dict[str, Any]
    metrics: pd.DataFrame
    timing: dict[str, Any]
    log: pd.DataFrame


def read_run(results_dir: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> RunResults:
    """Read the result files of a training stage.

    Args:
        results_dir: The stage's results folder (relative to the repository root or absolute).
        root: Repository root for a relative ``results_dir`` (default: found from the cwd).

    Raises:
        FileNotFoundError: the folder or one of :data:`RUN_FILES` is missing (the message names the stage
            to run).
    """
    folder = repo_path(results_dir, root)
    missing = [name for name in RUN_FILES if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder}: missing {', '.join(missing)}; run the training stage first "
                                f"(python -m sepnet_core.pipeline --only {folder.name})")
    timing = read_json(folder / "timing.json")
    config = read_json(folder / "config.json")
    return RunResults(path=folder, run=str(timing.get("run", folder.name)), seed=int(config["seed"]),
                      config=config, metrics=pd.read_csv(folder / "test_metrics.csv"), timing=timing,
                      log=pd.read_csv(folder / "log.csv"))


def evaluation_table(groups: Mapping[str, Sequence[str | os.PathLike[str]]],
                     root: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """The long evaluation table of :mod:`sepnet_core.analysis.comparison` from training-stage results.

    Args:
        groups: ``{config label: [results folder of each seed]}``, e.g.
            ``{"3D-SepNet": ["results/cpu/train_sepnet_slf1_ath1_s0"]}``.
        root: Repository root for relative folders.

    Returns:
        The ``test_metrics.csv`` rows of every run with ``config`` (the label), ``seed`` and ``run``
        columns in front.

    Raises:
        ValueError: an empty group, or two folders of one group with the same seed.
        FileNotFoundError: see :func:`read_run`.
    """
    frames = []
    for label, folders in groups.items():
        if not folders:
            raise ValueError(f"group {label!r} has no results folder")
        seeds: set[int] = set()
        for folder in folders:
            result = read_run(folder, root)
            if result.seed in seeds:
                raise ValueError(f"group {label!r} holds two runs with seed {result.seed} ({folder})")
            seeds.add(result.seed)
            frame = result.metrics.copy()
            frame.insert(0, "run", result.run)
            frame.insert(0, "seed", result.seed)
            frame.insert(0, "config", label)
            frames.append(frame)
    if not frames:
        raise ValueError("groups is empty; pass {label: [results folders]}")
    table = pd.concat(frames, ignore_index=True)
    table["case"] = table["case"].astype(str)
    return table


def seed_spread(folders: Sequence[str | os.PathLike[str]], root: str | os.PathLike[str] | None = None
                ) -> dict[str, float]:
    """Seed-to-seed standard deviation of each run score over the runs in ``folders`` (one config).

    Returns:
        ``{score: std}`` for every score of :data:`sepnet_core.analysis.comparison.SCORES` (sample std
        over seeds, ddof=1; NaN with fewer than two seeds), plus ``n_seeds``.
    """
    from sepnet_core.analysis.comparison import SCORES, config_summary

    summary = config_summary(evaluation_table({"baseline": list(folders)}, root)).loc["baseline"]
    spread = {score: float(summary[f"{score}_std"]) for score in SCORES}
    spread["n_seeds"] = int(summary["n_seeds"])
    return spread


def spread_or_none(value: float | None) -> float | None:
    """``value`` if it is a finite number, else ``None`` (what ``compare(baseline_spread=...)`` accepts)."""
    if value is None or not math.isfinite(float(value)):
        return None
    return float(value)


# -------------------------------------------------------------------------------------------- runs
_RUN_MARKER = "stage.json"


def prepare_run_dir(run_dir: str | os.PathLike[str], config: Any, code_hash: str | None = None) -> bool:
    """Decide whether a training stage resumes its run folder or starts over, and record the decision.

    A stage that was interrupted resumes (``fit(..., resume=True)``). A run folder written by other code
    or another configuration (the stage runs again because the library or the config changed) must not
    be resumed: its finished ``last.pt`` would be returned untouched. The folder's ``stage.json`` holds
    the code hash and configuration of the run that wrote it; only when both equal the current ones
    does the stage resume. The new marker is written before training starts.

    Args:
        run_dir: The run folder (created if missing).
        config: The :class:`~sepnet_core.training.TrainConfig` of this stage (its ``data.data_root`` is
            ignored: the same data may live at another path).
        code_hash: Hash of the library sources; default :func:`sepnet_core.pipeline.source_hash`.

    Returns:
        True to resume (``resume=True``), False to start over (``force=True``).
    """
    if code_hash is None:
        from sepnet_core.pipeline.cache import source_hash

        code_hash = source_hash()
    settings = config.to_dict()
    settings["data"].pop("data_root", None)
    marker = {"code_hash": code_hash, "config": settings}
    folder = Path(run_dir)
    path = folder / _RUN_MARKER
    try:
        resume = read_json(path) == json.loads(json.dumps(marker))
    except (OSError, ValueError):
        resume = False
    folder.mkdir(parents=True, exist_ok=True)
    write_json(marker, folder, _RUN_MARKER)
    return resume


def evaluate_split(models: Sequence[Any], data_dir: str | os.PathLike[str], split: str = "test",
                   mode: str = "gaussian", batch_size: int = 1, amp: bool | None = None
                   ) -> tuple[pd.DataFrame, dict[str, float]]:
    """:func:`sepnet_core.evaluation.evaluate_split` (segment every labelled case of a split and score it;
    one function used by the book, ``predict`` + ``evaluate`` and the tests)."""
    from sepnet_core.evaluation import evaluate_split as score_split

    return score_split(models, data_dir, split, mode=mode, batch_size=batch_size, amp=amp)


# ---------------------------------------------------------------------------------------- versions
def package_versions(names: Sequence[str] = PACKAGES) -> dict[str, str | None]:
    """Installed version of each distribution (``None`` when it is not installed), by default
    :data:`PACKAGES` (:func:`sepnet_core.clinical.report.distribution_versions`)."""
    from sepnet_core.clinical.report import distribution_versions

    return distribution_versions(names)

"""The trained-model gate: does a run count as a trained model whose comparisons mean something?

A run passes (issue 14, item 5) when all three criteria hold:

(a) **flattened**: its learning curve gains less than ``max_gain`` (2 points of validation mean Dice)
    over the last quarter of its steps: the last validation score minus the score of the last
    validation at or before 75 % of the final step (:func:`curve_gain`);
(b) **accurate**: its best validation mean Dice (the score that picked ``best.pt``; for a run whose
    ``best.pt`` was prior-corrected after training, the corrected network's validation score, from
    ``prior_correction.json``) is at least ``min_dice`` (0.65) and at least the atlas baseline plus
    ``over_atlas`` (0.25); the atlas score is an input (the registration-free majority-vote baseline,
    ``sepnet_core.analysis.atlas``);
(c) **volumes**: on every test case the predicted foreground volume (all organs) is within
    ``volume_tolerance`` (30 %) of the reference foreground volume.

:func:`gate_runs` returns one row per run with each criterion's value, its threshold and pass/fail, and
a ``verdict``: ``"trained"``, or ``"inconclusive: not trained — <reasons>"``. A comparison involving a
run that fails is to be reported with that verdict, never as reproduced or not reproduced. A criterion
that cannot be computed (too few validation points, no test volumes, no atlas score) fails with the
reason stated.

Example:
    >>> curve = pd.DataFrame({"step": [100, 200, 300, 400], "val_mean_dice": [0.5, 0.7, 0.75, 0.76]})
    >>> volumes = pd.DataFrame({"case": ["a"], "volume_pred_ml": [290.0], "volume_ref_ml": [300.0]})
    >>> row = gate_runs({"run": (curve, volumes)}, atlas_dice=0.31).iloc[0]
    >>> (round(float(row["curve_gain"]), 3), bool(row["trained"]), row["verdict"])
    (0.01, True, 'trained')
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "GateThresholds", "GATE", "GATE_COLUMNS", "ATLAS_FILE", "curve_gain", "foreground_volumes", "gate_run",
    "gate_runs", "read_atlas_dice", "read_corrected_dice", "gate_result_folders", "gate_by_config",
    "gate_groups",
]


@dataclass(frozen=True)
class GateThresholds:
    """Thresholds of the gate (fractions, Dice in [0, 1]).

    Attributes:
        max_gain: (a) largest validation mean Dice gain over the last quarter of steps (0.02).
        last_fraction: (a) the "last quarter": the fraction of the final step that ends the earlier part
            is ``1 - last_fraction`` (0.25).
        min_dice: (b) lowest best validation mean Dice (0.65).
        over_atlas: (b) least margin of the best validation mean Dice over the atlas baseline (0.25).
        volume_tolerance: (c) largest relative error of the predicted foreground volume per test case
            (0.30).
    """

    max_gain: float = 0.02
    last_fraction: float = 0.25
    min_dice: float = 0.65
    over_atlas: float = 0.25
    volume_tolerance: float = 0.30


GATE = GateThresholds()
"""The gate of issue 14."""

GATE_COLUMNS: tuple[str, ...] = (
    "run", "curve_gain", "flattened", "best_val_dice", "atlas_dice", "dice_needed", "accurate",
    "worst_volume_ratio", "volumes_ok", "trained", "verdict",
)
"""Columns of :func:`gate_runs`'s table (``worst_volume_ratio``: predicted / reference foreground volume
of the test case farthest from 1)."""


def curve_gain(curve: pd.DataFrame, last_fraction: float = GATE.last_fraction) -> tuple[float, str]:
    """Validation mean Dice gained over the last ``last_fraction`` of a run's steps.

    Args:
        curve: Table with ``step`` and ``val_mean_dice`` (NaN where the epoch was not validated), e.g.
            :func:`sepnet_core.analysis.curves.read_curve`.
        last_fraction: Length of the final stretch as a fraction of the final step.

    Returns:
        ``(gain, problem)``: the last score minus the score at the last validation at or before step
        ``(1 - last_fraction) x final step``, and ``""``; or ``(nan, reason)`` when the curve has no
        validation in the final stretch or none before it.
    """
    for column in ("step", "val_mean_dice"):
        if column not in curve.columns:
            raise ValueError(f"curve lacks column {column!r} (a learning curve needs step, val_mean_dice)")
    points = curve[["step", "val_mean_dice"]].dropna().sort_values("step")
    if len(points) < 2:
        return math.nan, f"{len(points)} validation point(s); a curve needs at least 2"
    final_step = float(curve["step"].max())
    cut = (1.0 - last_fraction) * final_step
    before = points[points["step"] <= cut]
    if before.empty:
        return math.nan, f"no validation at or before step {cut:g} (the last quarter's start)"
    last = points.iloc[-1]
    if float(last["step"]) <= cut:
        return math.nan, f"no validation in the last quarter of the steps (after step {cut:g})"
    return float(last["val_mean_dice"]) - float(before.iloc[-1]["val_mean_dice"]), ""


def foreground_volumes(metrics: pd.DataFrame) -> pd.DataFrame:
    """Per test case, predicted and reference foreground volume (ml): the sums over the organs.

    Args:
        metrics: Evaluation table with ``case``, ``volume_pred_ml`` and ``volume_ref_ml`` per organ
            (``test_metrics.csv``, :data:`sepnet_core.metrics.TABLE_COLUMNS`).

    Returns:
        Columns ``case``, ``volume_pred_ml``, ``volume_ref_ml``, ``ratio`` (pred / ref).
    """
    missing = [c for c in ("case", "volume_pred_ml", "volume_ref_ml") if c not in metrics.columns]
    if missing:
        raise ValueError(f"metrics lacks column(s) {missing}; needs case, volume_pred_ml, volume_ref_ml")
    table = metrics.groupby("case", sort=True)[["volume_pred_ml", "volume_ref_ml"]].sum().reset_index()
    with np.errstate(divide="ignore", invalid="ignore"):
        table["ratio"] = table["volume_pred_ml"] / table["volume_ref_ml"]
    return table


def gate_run(curve: pd.DataFrame, volumes: pd.DataFrame | None, atlas_dice: float | None,
             run: str = "", thresholds: GateThresholds = GATE,
             best_val_dice: float | None = None) -> dict[str, object]:
    """The gate for one run (a row of :func:`gate_runs`).

    Args:
        curve: The run's learning curve (``step``, ``val_mean_dice``).
        volumes: Per test case ``volume_pred_ml`` and ``volume_ref_ml`` (organ rows are summed per
            ``case``, so a ``test_metrics.csv`` table works as is); None if the run was not tested.
        atlas_dice: Validation mean Dice of the atlas baseline, or None if unknown (criterion (b) then
            fails: the margin cannot be checked).
        run: The run's name.
        thresholds: The gate's thresholds.
        best_val_dice: The validation mean Dice of the network the run hands on, when it is not the
            curve's best (a prior-corrected ``best.pt``: :func:`read_corrected_dice`); None: the curve's.

    Returns:
        Dict with :data:`GATE_COLUMNS`.
    """
    reasons = []
    gain, problem = curve_gain(curve, thresholds.last_fraction)
    flattened = not problem and gain < thresholds.max_gain
    if problem:
        reasons.append(f"curve: {problem}")
    elif not flattened:
        reasons.append(f"still learning: +{gain:.3f} validation mean Dice in the last quarter of the steps "
                       f"(limit {thresholds.max_gain:g})")

    scores = curve["val_mean_dice"].dropna()
    best = float(scores.max()) if len(scores) else math.nan
    if best_val_dice is not None:
        best = float(best_val_dice)
    atlas = math.nan if atlas_dice is None else float(atlas_dice)
    needed = max(thresholds.min_dice, atlas + thresholds.over_atlas) if not math.isnan(atlas) else math.nan
    accurate = not math.isnan(best) and not math.isnan(needed) and best >= needed
    if math.isnan(best):
        reasons.append("no validation score")
    elif math.isnan(atlas):
        reasons.append("no atlas baseline score to compare with")
    elif not accurate:
        reasons.append(f"best validation mean Dice {best:.3f} < {needed:.3f} "
                       f"(max of {thresholds.min_dice:g} and atlas {atlas:.3f} + {thresholds.over_atlas:g})")

    worst, volumes_ok = math.nan, False
    if volumes is None or len(volumes) == 0:
        reasons.append("no test-case volumes")
    else:
        ratios = foreground_volumes(volumes)
        errors = (ratios["ratio"] - 1.0).abs().fillna(math.inf)
        worst_row = ratios.loc[errors.idxmax()]
        worst = float(worst_row["ratio"])
        volumes_ok = bool((errors <= thresholds.volume_tolerance).all())
        if not volumes_ok:
            bad = ratios[errors > thresholds.volume_tolerance]
            listed = ", ".join(f"{c} {r:.2f}x" for c, r in zip(bad["case"], bad["ratio"], strict=True))
            reasons.append(f"predicted foreground volume off by more than {thresholds.volume_tolerance:.0%} "
                           f"of the reference on {len(bad)} of {len(ratios)} test case(s) ({listed})")

    trained = flattened and accurate and volumes_ok
    verdict = "trained" if trained else "inconclusive: not trained — " + "; ".join(reasons)
    return {"run": run, "curve_gain": gain, "flattened": flattened, "best_val_dice": best,
            "atlas_dice": atlas, "dice_needed": needed, "accurate": accurate,
            "worst_volume_ratio": worst, "volumes_ok": volumes_ok, "trained": trained, "verdict": verdict}


def gate_runs(runs: Mapping[str, tuple[pd.DataFrame, pd.DataFrame | None]], atlas_dice: float | None,
              thresholds: GateThresholds = GATE,
              corrected: Mapping[str, float] | None = None) -> pd.DataFrame:
    """The gate for several runs.

    Args:
        runs: Run name -> ``(curve, volumes)`` as :func:`gate_run` takes them.
        atlas_dice: The atlas baseline's validation mean Dice (one for all runs of a data set).
        thresholds: The gate's thresholds.
        corrected: Run name -> validation mean Dice of its prior-corrected network, for the runs that
            have one (:func:`gate_run`'s ``best_val_dice``).

    Returns:
        One row per run (in the mapping's order) with :data:`GATE_COLUMNS`.
    """
    rows = [gate_run(curve, volumes, atlas_dice, run=name, thresholds=thresholds,
                     best_val_dice=(corrected or {}).get(name))
            for name, (curve, volumes) in runs.items()]
    return pd.DataFrame(rows, columns=list(GATE_COLUMNS))


# ------------------------------------------------------------------------------- from committed results
ATLAS_FILE = "atlas_baseline.json"
"""File of the data stage's results folder holding the atlas baseline's scores (key ``mean_dice``)."""


def read_atlas_dice(data_results: str | os.PathLike[str]) -> float | None:
    """The atlas baseline's mean Dice from the data stage's results folder, or None if it has none.

    Args:
        data_results: The data stage's results folder (``results/<profile>/data``) or the JSON file itself.

    Raises:
        ValueError: the file exists but has no finite ``mean_dice``.
    """
    path = Path(data_results)
    if path.is_dir():
        path = path / ATLAS_FILE
    if not path.is_file():
        return None
    value = json.loads(path.read_text()).get("mean_dice")
    if not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{path}: mean_dice must be a finite number, got {value!r}")
    return float(value)


def read_corrected_dice(folder: str | os.PathLike[str]) -> float | None:
    """Validation mean Dice of a run's prior-corrected ``best.pt`` (``prior_correction.json``'s
    ``val_mean_dice``), or None when the folder has no such file (no correction).

    Raises:
        ValueError: the file exists without a number ``val_mean_dice``.
    """
    path = Path(folder) / "prior_correction.json"
    if not path.is_file():
        return None
    value = json.loads(path.read_text()).get("val_mean_dice")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{path}: val_mean_dice must be a number, got {value!r}")
    return float(value)


def gate_result_folders(folders: Mapping[str, str | os.PathLike[str]], atlas_dice: float | None,
                        thresholds: GateThresholds = GATE) -> pd.DataFrame:
    """The gate of every training stage from its committed results folder.

    Each folder (``results/<profile>/train_<run>/``) holds ``log.csv`` (the learning curve),
    ``test_metrics.csv`` (per test case and organ, with predicted and reference volumes) and, for a run
    whose ``best.pt`` was prior-corrected, ``prior_correction.json`` (:func:`read_corrected_dice`). A
    missing file fails the criteria it feeds, with the reason stated (a stage that never finished is not
    trained).

    Args:
        folders: Run id (``<run>_s<seed>``) -> its results folder.
        atlas_dice: The atlas baseline's mean Dice (:func:`read_atlas_dice`), or None.
        thresholds: The gate's thresholds.

    Returns:
        :func:`gate_runs`'s table, one row per run in the mapping's order.
    """
    from sepnet_core.analysis.curves import read_curve

    runs, corrected = {}, {}
    for run, folder in folders.items():
        folder = Path(folder)
        score = read_corrected_dice(folder)
        if score is not None:
            corrected[run] = score
        try:
            curve = read_curve(folder / "log.csv")
        except (FileNotFoundError, ValueError):
            curve = pd.DataFrame({"step": pd.Series(dtype=float), "val_mean_dice": pd.Series(dtype=float)})
        metrics = folder / "test_metrics.csv"
        runs[run] = (curve, pd.read_csv(metrics) if metrics.is_file() else None)
    return gate_runs(runs, atlas_dice, thresholds, corrected)


def gate_by_config(table: pd.DataFrame, configs: Mapping[str, Sequence[str]] | None = None,
                   members: Sequence[str] = ()) -> dict[str, bool]:
    """The gate as the comparisons and claims take it (``compare(..., gate=...)``, ``inputs["gate"]``).

    Args:
        table: :func:`gate_runs`'s table (``run``, ``trained``).
        configs: Config label -> its run ids (e.g. ``{"3D U-Net": ["unet_slf1_ath1_s0", ...]}``); a config
            passes when every one of its runs does. A run id missing from ``table`` fails.
        members: Run ids of the ensemble's members: key ``"ensemble"`` passes when every member does.

    Returns:
        ``{run id: bool}`` for every run of ``table``, plus ``{label: bool}`` for every config and
        ``"ensemble"`` when ``members`` is given.
    """
    passed = {str(r): bool(t) for r, t in zip(table["run"], table["trained"], strict=True)}
    gate = dict(passed)
    for label, runs in (configs or {}).items():
        gate[label] = bool(runs) and all(passed.get(r, False) for r in runs)
    if members:
        gate["ensemble"] = all(passed.get(r, False) for r in members)
    return gate


def gate_groups(groups: Mapping[str, Sequence[str | os.PathLike[str]]],
                data_results: str | os.PathLike[str] | None) -> tuple[pd.DataFrame, dict[str, bool]]:
    """The gate of an ablation page: its groups of training results folders and the data stage's atlas.

    Args:
        groups: Config label -> results folders of its training stages (``results/<profile>/train_<run id>``,
            the ablation stages' ``runs`` parameter).
        data_results: The data stage's results folder (:func:`read_atlas_dice`), or None.

    Returns:
        ``(table, gate)``: :func:`gate_result_folders`'s table of every run (once each) and
        :func:`gate_by_config`'s ``{run id / label: passed}``, to pass as ``compare(..., gate=gate)``.
    """
    def run_id(folder: str | os.PathLike[str]) -> str:
        return Path(folder).name.removeprefix("train_")

    folders = {run_id(f): f for runs in groups.values() for f in runs}
    atlas = read_atlas_dice(data_results) if data_results else None
    table = gate_result_folders(folders, atlas)
    return table, gate_by_config(table, {label: [run_id(f) for f in runs] for label, runs in groups.items()})

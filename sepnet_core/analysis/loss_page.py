"""The background question of the loss page: which Dice weighting lets the paper's loss learn the background?

Issue 14 found, on the phantom, that the paper's ATH loss with the "intended" Dice formula (mean over
classes, smoothing 1) labels tens of times the reference foreground volume as organ, while the reference
code's effective weighting (a sum over the 22 classes, smoothing 22; ``dice_weighting="reference"``) and
the background-counted variant (``loss_background=true``) learn it; on the harder phantom of issue 13 the
reference weighting learnt the small organs far more slowly, and the cpu preset now trains the
background-counted variant (:mod:`sepnet_core.losses`). The loss page answers the question on the book's
runs with three pieces of evidence per run, all computed here:

* the learning curve of every seed (:func:`run_curves`; figure
  :func:`sepnet_core.analysis.loss_plots.plot_group_curves`), read from the
  ``log.csv`` each training stage copies to its results folder;
* the predicted foreground volume over the reference foreground volume per test case
  (:func:`foreground_volume_table`, :func:`volume_summary`; figure
  :func:`sepnet_core.analysis.loss_plots.plot_volume_ratios`), from the organ
  volumes of ``test_metrics.csv`` (``volume_pred_ml``, ``volume_ref_ml``);
* the Dice, compared arm against arm with the book's one procedure (:func:`question_comparisons`:
  :func:`sepnet_core.analysis.comparison.compare`, Holm within the family, the verdict of
  :func:`sepnet_core.analysis.statistics.verdict` worded for a comparison that is not a paper claim), with
  the trained-model gate of every run (:func:`gate_table`): a comparison involving a run that fails it is
  *inconclusive: not trained*.

Every table takes the long evaluation table of :mod:`sepnet_core.analysis.comparison` (one row per config,
seed, test case and organ, e.g. ``sepnet_core.book.evaluation_table``). Which config label plays which
arm is looked up by :func:`find_group` (exact label, else the one label containing the text), so a profile
without a run simply leaves that arm out (:func:`resolve_arms`).

Example:
    >>> arms = resolve_arms(["ATH alpha=1", "ATH alpha=1 + background (ours)"],
    ...                     {"reference": "ATH alpha=1", "intended": "intended", "background": "background"})
    >>> arms
    {'reference': 'ATH alpha=1', 'intended': None, 'background': 'ATH alpha=1 + background (ours)'}
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from sepnet_core.analysis.comparison import SCORES, Comparison, compare, per_run_scores
from sepnet_core.analysis.curves import read_curve
from sepnet_core.analysis.gate import (
    GATE,
    GATE_COLUMNS,
    GateThresholds,
    foreground_volumes,
    gate_runs,
    read_corrected_dice,
)
from sepnet_core.analysis.statistics import ALPHA, holm, verdict

__all__ = [
    "QUESTION_COLUMNS",
    "find_group",
    "resolve_arms",
    "run_key",
    "run_curves",
    "run_corrected_dice",
    "run_settings",
    "foreground_volume_table",
    "volume_summary",
    "gate_table",
    "gate_mapping",
    "question_comparisons",
    "comparison_sentence",
    "arm_sentence",
    "arm_table",
    "read_atlas_dice",
]

QUESTION_COLUMNS: tuple[str, ...] = (
    "comparison", "a", "b", "metric", "mean_a", "mean_b", "difference", "ci_low", "ci_high", "p_value",
    "p_holm", "n_cases", "n_seeds_a", "n_seeds_b", "gate", "verdict", "reason",
)
"""Columns of :func:`question_comparisons`'s table."""


# ------------------------------------------------------------------------------------------ the arms
def find_group(labels: Iterable[str], key: str) -> str | None:
    """The config label an arm refers to: ``key`` itself, else the one label containing it.

    Args:
        labels: Config labels of the page's ``runs``.
        key: An exact label, or a piece of one (case-insensitive), e.g. ``"intended"``.

    Returns:
        The label, or None when no label matches.

    Raises:
        ValueError: ``key`` is empty, or several labels contain it (they are named).
    """
    if not key:
        raise ValueError("an arm's key must be a non-empty label or part of one")
    labels = list(labels)
    if key in labels:
        return key
    found = [label for label in labels if key.lower() in label.lower()]
    if len(found) > 1:
        raise ValueError(f"{key!r} matches several run groups {found}; give the exact label")
    return found[0] if found else None


def resolve_arms(labels: Iterable[str], arms: Mapping[str, str]) -> dict[str, str | None]:
    """``{arm name: config label or None}`` for each arm (:func:`find_group`), in ``arms``' order."""
    labels = list(labels)
    return {name: find_group(labels, key) for name, key in arms.items()}


def run_key(config: str, seed: int) -> str:
    """Name of one run (a config and a seed) in the gate and the curve tables: ``"<config>/<seed>"``
    (the per-run form :func:`sepnet_core.analysis.comparison.compare` accepts in ``gate``)."""
    return f"{config}/{int(seed)}"


def _seed_of(folder: Path) -> int:
    file = folder / "config.json"
    if not file.is_file():
        raise FileNotFoundError(f"{file}: no training configuration here (a training stage's results folder "
                                f"holds config.json, log.csv, test_metrics.csv)")
    config = json.loads(file.read_text(encoding="utf-8"))
    if "seed" not in config:
        raise ValueError(f"{file}: no 'seed' in the training configuration")
    return int(config["seed"])


def run_curves(groups: Mapping[str, Sequence[str | os.PathLike[str]]]) -> dict[str, pd.DataFrame]:
    """The learning curve of every run of ``groups``, keyed by :func:`run_key`.

    Args:
        groups: ``{config label: [results folder of each seed's training stage]}``; each folder holds the
            ``log.csv`` and ``config.json`` the training stage writes (paths as given: absolute, or
            relative to the working directory).

    Returns:
        ``{"<config>/<seed>": curve}`` (:func:`sepnet_core.analysis.curves.read_curve` tables), in group
        and folder order.

    Raises:
        FileNotFoundError: a folder lacks ``config.json`` or ``log.csv``.
        ValueError: a folder's files are malformed, or two folders of a group have the same seed.
    """
    curves: dict[str, pd.DataFrame] = {}
    for label, folders in groups.items():
        for folder in folders:
            key = run_key(label, _seed_of(Path(folder)))
            if key in curves:
                raise ValueError(f"group {label!r} holds two runs with the seed of {folder}")
            curves[key] = read_curve(folder)
    return curves


def run_corrected_dice(groups: Mapping[str, Sequence[str | os.PathLike[str]]]) -> dict[str, float]:
    """Validation mean Dice of each prior-corrected run of ``groups`` (``prior_correction.json``), keyed
    by :func:`run_key`; runs without a correction are left out (the gate then reads their curve)."""
    scores = {}
    for label, folders in groups.items():
        for folder in folders:
            score = read_corrected_dice(folder)
            if score is not None:
                scores[run_key(label, _seed_of(Path(folder)))] = score
    return scores


def run_settings(groups: Mapping[str, Sequence[str | os.PathLike[str]]]) -> pd.DataFrame:
    """What each config trained with, from the ``config.json`` of its first run.

    Returns:
        One row per config: ``config``, ``loss``, ``alpha``, ``loss_background``, ``dice_weighting``
        (``"not recorded"`` for a run from before the option existed), ``seeds`` (number of runs), ``steps``
        (epochs x iterations per epoch).
    """
    rows = []
    for label, folders in groups.items():
        if not folders:
            continue
        file = Path(folders[0]) / "config.json"
        config = json.loads(file.read_text(encoding="utf-8"))
        loss = config.get("loss", "")
        rows.append({
            "config": label, "loss": loss, "alpha": config.get("alpha"),
            "loss_background": bool(config.get("loss_background", False)),
            "dice_weighting": config.get("dice_weighting", "not recorded") if loss != "dice" else "n/a",
            "seeds": len(folders),
            "steps": int(config.get("epochs", 0)) * int(config.get("iterations_per_epoch", 0)),
        })
    columns = ["config", "loss", "alpha", "loss_background", "dice_weighting", "seeds", "steps"]
    return pd.DataFrame(rows, columns=columns)


# ------------------------------------------------------------------------------------------ volumes
def foreground_volume_table(table: pd.DataFrame, configs: Sequence[str] | None = None) -> pd.DataFrame:
    """Predicted and reference foreground volume (all organs, ml) of every run and test case.

    Args:
        table: Long evaluation table with ``config``, ``seed``, ``case``, ``volume_pred_ml``,
            ``volume_ref_ml`` (one row per organ).
        configs: Configs to keep, in this order; default every config in table order.

    Returns:
        Columns ``config``, ``seed``, ``case``, ``volume_pred_ml``, ``volume_ref_ml``, ``ratio``
        (predicted / reference; inf for an empty reference with a prediction).

    Raises:
        ValueError: a column is missing, or a config of ``configs`` is not in the table.
    """
    needed = ("config", "seed", "case", "volume_pred_ml", "volume_ref_ml")
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise ValueError(f"evaluation table lacks column(s) {missing}")
    known = list(dict.fromkeys(table["config"]))
    configs = known if configs is None else list(configs)
    unknown = [c for c in configs if c not in known]
    if unknown:
        raise ValueError(f"config(s) {unknown} not in the evaluation table (it has {known})")
    frames = []
    for config in configs:
        rows = table[table["config"] == config]
        for seed, run in rows.groupby("seed", sort=True):
            volumes = foreground_volumes(run)
            volumes.insert(0, "seed", int(seed))
            volumes.insert(0, "config", config)
            frames.append(volumes)
    columns = ["config", "seed", "case", "volume_pred_ml", "volume_ref_ml", "ratio"]
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)


def volume_summary(volumes: pd.DataFrame, tolerance: float = GATE.volume_tolerance) -> pd.DataFrame:
    """Per config, the predicted / reference foreground volume over its runs and test cases.

    Args:
        volumes: :func:`foreground_volume_table`.
        tolerance: The gate's relative tolerance (0.30): ``within`` counts ratios in ``[1 - t, 1 + t]``.

    Returns:
        Indexed by config (first-seen order): ``n`` (run x case pairs), ``median_ratio``, ``min_ratio``,
        ``max_ratio``, ``within`` (fraction of pairs within the tolerance).
    """
    rows = {}
    for config, group in volumes.groupby("config", sort=False):
        ratio = group["ratio"].to_numpy(dtype=float)
        rows[config] = {"n": len(ratio), "median_ratio": float(np.median(ratio)),
                        "min_ratio": float(ratio.min()), "max_ratio": float(ratio.max()),
                        "within": float(np.mean(np.abs(ratio - 1.0) <= tolerance))}
    frame = pd.DataFrame.from_dict(rows, orient="index",
                                   columns=["n", "median_ratio", "min_ratio", "max_ratio", "within"])
    frame.index.name = "config"
    return frame


# ------------------------------------------------------------------------------------------ the gate
def gate_table(table: pd.DataFrame, curves: Mapping[str, pd.DataFrame], atlas_dice: float | None,
               thresholds: GateThresholds = GATE,
               corrected: Mapping[str, float] | None = None) -> pd.DataFrame:
    """The trained-model gate (:func:`sepnet_core.analysis.gate.gate_runs`) of every run with a curve.

    Args:
        table: Long evaluation table (the runs' test-case organ volumes).
        curves: ``{run_key: curve}`` (:func:`run_curves`).
        atlas_dice: Mean Dice of the atlas baseline, or None when unknown (criterion (b) then fails).
        thresholds: The gate's thresholds.
        corrected: ``{run_key: validation mean Dice}`` of the prior-corrected runs
            (:func:`run_corrected_dice`), which criterion (b) reads instead of their curve's best, as the
            training and summary pages do.

    Returns:
        :data:`sepnet_core.analysis.gate.GATE_COLUMNS` with ``config`` and ``seed`` in front; ``run`` is the
        run key.
    """
    if not curves:
        return pd.DataFrame(columns=["config", "seed", *GATE_COLUMNS])
    runs = {}
    for key, curve in curves.items():
        config, seed = key.rsplit("/", 1)
        rows = table[(table["config"] == config) & (table["seed"].astype(int) == int(seed))]
        runs[key] = (curve, rows if len(rows) else None)
    gates = gate_runs(runs, atlas_dice, thresholds, corrected)
    split = gates["run"].str.rsplit("/", n=1, expand=True)
    gates.insert(0, "seed", split[1].astype(int))
    gates.insert(0, "config", split[0])
    return gates


def gate_mapping(gates: pd.DataFrame) -> dict[str, bool]:
    """``{run key: trained}`` of a :func:`gate_table`, the ``gate`` argument of ``compare``."""
    return {str(run): bool(trained) for run, trained in zip(gates["run"], gates["trained"], strict=True)}


# ------------------------------------------------------------------------------------------ comparisons
def _worded(c: Comparison, p_holm: float, alpha: float) -> tuple[str, str]:
    """The procedure's verdict worded for a comparison that is not a paper claim (b vs a)."""
    if c.gate_passed is False:
        return "inconclusive: not trained", "a run failed the trained-model gate"
    if c.n_cases < 2:
        return "inconclusive", f"{c.n_cases} test case(s): no interval"
    name, reason = verdict(c.difference, p_holm, c.higher_is_better, gate_passed=c.gate_passed, alpha=alpha)
    if name == "reproduced":
        return f"{c.b} better", reason
    if name == "opposite":
        return f"{c.a} better", reason
    return "inconclusive", reason.split(" (Holm p")[0]  # the sentence states the p-value


def question_comparisons(
    table: pd.DataFrame,
    pairs: Sequence[tuple[str, str]],
    metric: str = "mean_dice",
    gate: Mapping[str, bool] | None = None,
    baseline_spread: float | None = None,
    baseline_seeds: int | None = None,
    alpha: float = ALPHA,
) -> pd.DataFrame:
    """Compare each pair ``(a, b)`` (b vs a) with the book's procedure, Holm-corrected over the pairs.

    The pairs form one family. The verdict is :func:`sepnet_core.analysis.statistics.verdict` with ``b``
    as the favoured side, worded for a question rather than a claim: ``"<b> better"``, ``"<a> better"``,
    ``"inconclusive"`` (corrected p >= alpha, seed spread unknown, fewer than 2 cases), or
    ``"inconclusive: not trained"`` when a run of either config failed the gate.

    Args:
        table: Long evaluation table holding both configs of every pair.
        pairs: ``(a, b)`` config labels.
        metric: A key of :data:`sepnet_core.analysis.comparison.SCORES`.
        gate: ``{config or run key: passed}``; None: not known.
        baseline_spread: Seed spread for a config with one seed (``compare``).
        baseline_seeds: Seeds behind ``baseline_spread``.
        alpha: Family-wise level.

    Returns:
        One row per pair with :data:`QUESTION_COLUMNS` (``gate``: ``"passed"``, ``"failed"`` or
        ``"not known"``).
    """
    if metric not in SCORES:
        raise ValueError(f"unknown metric {metric!r}; valid: {sorted(SCORES)}")
    comps = [compare(table, a, b, metric, baseline_spread=baseline_spread, baseline_seeds=baseline_seeds,
                     gate=gate) for a, b in pairs]
    adjusted = holm([c.p_value for c in comps]) if comps else np.array([])
    rows = []
    for c, p_holm in zip(comps, adjusted, strict=True):
        worded, reason = _worded(c, float(p_holm), alpha)
        rows.append({"comparison": f"{c.b} vs {c.a}", "a": c.a, "b": c.b, "metric": metric,
                     "mean_a": c.mean_a, "mean_b": c.mean_b, "difference": c.difference, "ci_low": c.ci_low,
                     "ci_high": c.ci_high, "p_value": c.p_value, "p_holm": float(p_holm),
                     "n_cases": c.n_cases, "n_seeds_a": c.n_seeds_a, "n_seeds_b": c.n_seeds_b,
                     "gate": {True: "passed", False: "failed", None: "not known"}[c.gate_passed],
                     "verdict": worded, "reason": reason})
    return pd.DataFrame(rows, columns=list(QUESTION_COLUMNS))


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _gate_text(rows: pd.DataFrame) -> str:
    """``"gate: 2 of 3 runs trained"``; ``"gate: not known (no atlas score)"`` when no row has an atlas
    score (criterion (b) could not be checked, so a fail there means nothing)."""
    if not len(rows):
        return "gate: no runs"
    if not np.isfinite(rows["atlas_dice"].to_numpy(dtype=float)).any():
        return "gate: not known (no atlas score)"
    return f"gate: {int(rows['trained'].sum())} of {_count(len(rows), 'run')} trained"


def _pp(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{100 * value:+.1f}"


def comparison_sentence(row: Mapping[str, object]) -> str:
    """One line for the prose, e.g. ``"+12.3 points of mean Dice (95 % interval +5.0 to +19.6,
    Holm p = 0.003, 2 cases, seeds 2/3): B better"``; Dice scores in percentage points."""
    metric = str(row["metric"])
    dice = SCORES[metric][0] == "dice"
    scale = (lambda v: _pp(float(v))) if dice else (lambda v: f"{float(v):+.2f}")
    name = metric.replace("_", " ").replace("dice", "Dice").replace("hd95", "HD95")
    unit = f"points of {name}" if dice else f"mm of {name}"
    p = float(row["p_holm"])
    p_text = f"Holm p = {p:.2g}" if math.isfinite(p) else "no p-value"
    interval = (f"95 % interval {scale(row['ci_low'])} to {scale(row['ci_high'])}"
                if math.isfinite(float(row["ci_low"])) else "no interval")
    cases = _count(int(row["n_cases"]), "case")
    text = (f"{scale(row['difference'])} {unit} ({interval}, {p_text}, {cases}, "
            f"seeds {row['n_seeds_a']}/{row['n_seeds_b']}): {row['verdict']}")
    return text + (f" ({row['reason']})" if row.get("reason") else "")


def arm_sentence(config: str, volumes: pd.DataFrame, gates: pd.DataFrame) -> str:
    """One line on one arm for the prose: its volumes, validation Dice, plateau and gate.

    Args:
        config: The arm's config label.
        volumes: :func:`foreground_volume_table` (rows of other configs are ignored).
        gates: :func:`gate_table` (rows of other configs are ignored).

    Returns:
        E.g. ``"predicted / reference foreground volume 1.09x (1.02x to 1.15x over 4 run-case pairs); best
        validation mean Dice 0.77 (0.75 to 0.79); last-quarter gain +0.004 to +0.012; gate: 2 of 2 runs
        trained"``.
    """
    parts = []
    ratio = volumes.loc[volumes["config"] == config, "ratio"].to_numpy(dtype=float)
    if ratio.size:
        parts.append(f"predicted / reference foreground volume {np.median(ratio):.2f}x "
                     f"({ratio.min():.2f}x to {ratio.max():.2f}x over {_count(ratio.size, 'run-case pair')})")
    rows = gates[gates["config"] == config]
    if len(rows):
        best = rows["best_val_dice"].to_numpy(dtype=float)
        if np.isfinite(best).any():
            parts.append(f"best validation mean Dice {np.nanmedian(best):.2f} ({np.nanmin(best):.2f} to "
                         f"{np.nanmax(best):.2f})")
        else:
            parts.append("no validation score")
        gain = rows["curve_gain"].to_numpy(dtype=float)
        if np.isfinite(gain).any():
            low, high = (round(float(f(gain)), 3) + 0.0 for f in (np.nanmin, np.nanmax))  # no "-0.000"
            parts.append(f"last-quarter gain {low:+.3f} to {high:+.3f}")
        else:
            parts.append("last-quarter gain not measurable")
        parts.append(_gate_text(rows))
    return "; ".join(parts) if parts else "no results"


def arm_table(arms: Mapping[str, str], table: pd.DataFrame, gates: pd.DataFrame,
              metric: str = "mean_dice") -> pd.DataFrame:
    """The arms side by side: runs, test score, volume ratio, best validation Dice, plateau, gate.

    Args:
        arms: ``{arm name: config label}`` (arms without a label left out beforehand).
        table: Long evaluation table.
        gates: :func:`gate_table`.
        metric: Test score shown (a key of :data:`sepnet_core.analysis.comparison.SCORES`), the mean over
            runs of :func:`sepnet_core.analysis.comparison.per_run_scores`.

    Returns:
        Indexed by arm name: ``config``, ``runs``, ``test <metric>``, ``volume ratio (median)``,
        ``volume ratio (max)``, ``best val mean Dice``, ``last-quarter gain (max)``, ``gate``.
    """
    volumes = foreground_volume_table(table, list(arms.values()))
    scores = per_run_scores(table[table["config"].isin(list(arms.values()))])
    rows = {}
    for name, config in arms.items():
        ratio = volumes.loc[volumes["config"] == config, "ratio"].to_numpy(dtype=float)
        runs = gates[gates["config"] == config]
        rows[name] = {"config": config, "runs": int((scores["config"] == config).sum()),
                      f"test {metric}": float(scores.loc[scores["config"] == config, metric].mean()),
                      "volume ratio (median)": float(np.median(ratio)),
                      "volume ratio (max)": float(ratio.max()),
                      "best val mean Dice": float(runs["best_val_dice"].mean()) if len(runs) else math.nan,
                      "last-quarter gain (max)": float(runs["curve_gain"].max()) if len(runs) else math.nan,
                      "gate": _gate_text(runs).removeprefix("gate: ")}
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "arm"
    return frame


def read_atlas_dice(path: str | os.PathLike[str] | None) -> float | None:
    """The atlas baseline's ``mean_dice`` from the data stage's ``atlas_baseline.json``; None when
    ``path`` is None or empty or the file does not exist.

    Raises:
        ValueError: the file has no finite ``mean_dice``.
    """
    if not path or not Path(path).is_file():
        return None
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    value = data.get("mean_dice") if isinstance(data, dict) else None
    if value is None or not math.isfinite(float(value)):
        raise ValueError(f"{path}: no finite 'mean_dice' (the atlas baseline's score)")
    return float(value)

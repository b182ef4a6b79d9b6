"""Ablations reported straight: scores per run, and one statistical procedure for every comparison.

Input of every function: a long evaluation table, one row per (config, seed, case, organ), i.e. the
table of :func:`sepnet_core.metrics.evaluate_case` / :func:`sepnet_core.evaluation.evaluate_folders`
with two columns added: ``config`` (str, e.g. ``"sepnet"``, ``"unet"``) and ``seed`` (int). Required
columns: ``config, seed, case, label, dice, hd95`` (``organ``, ``missed``, ``hd95_penalized`` optional;
organs are named from ``label``). One (config, seed) pair is a *run*.

Scores of a run (:data:`SCORES`), all from :mod:`sepnet_core.metrics` conventions (per-organ mean over
cases first, NaN skipped, then a mean over organs):

* ``mean_dice``: unweighted mean over organs; ``weighted_dice``: StructSeg importance weights
  (:func:`sepnet_core.metrics.weighted_average`);
* ``mean_hd95``, ``weighted_hd95`` (mm): the same, with infinite HD95 (a missed organ) skipped;
  ``n_hd95_inf`` counts what was skipped. Tables with ``hd95_penalized`` also get
  ``weighted_hd95_penalized`` (misses at the image-diagonal penalty) and ``n_missed``.

**The comparison** (:func:`compare`, b versus a) is the procedure of
:mod:`sepnet_core.analysis.statistics` on *per-case scores*: for every run and case, the score of that
case alone (e.g. its weighted Dice over the organs it has; for the HD95 scores the penalised HD95 when
the table has it, so misses count, else the finite HD95). The effect is the difference of the grand means
of b and a, with a 95 % t interval and a p-value from the crossed cases-by-seeds model (cases shared by a
and b, seeds nested in each). A config with one seed takes ``baseline_spread`` (the seed-to-seed
standard deviation of the run score measured on the multi-seed baseline) as its seed variance; without
it the seed variance is unknown and the outcome says so. The outcome (:data:`OUTCOMES`) uses the
uncorrected p-value; the claims table (:mod:`sepnet_core.analysis.claims`) corrects within each family
(Holm) and adds the trained-model gate.

The per-organ tables (:func:`per_organ_table`, :func:`per_organ_std`, :func:`organ_differences`,
:func:`count_organs_better`) live in :mod:`sepnet_core.analysis.per_organ` and are re-exported here.

Example:
    >>> cmp = compare(table, "unet", "sepnet")  # doctest: +SKIP
    >>> cmp.outcome, cmp.p_value  # doctest: +SKIP
    ('b better', 0.003)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np
import pandas as pd

from sepnet_core.analysis._common import SPREAD_FACTOR, check_configs, check_table, finite, pooled_std
from sepnet_core.analysis.per_organ import (
    OrganCount,
    count_organs_better,
    organ_differences,
    per_organ_std,
    per_organ_table,
)
from sepnet_core.analysis.statistics import ALPHA, PairedEffect, paired_effect
from sepnet_core.metrics import weighted_average
from sepnet_core.organs import NUM_ORGANS, ORGANS, importance_weights

__all__ = [
    "SCORES",
    "SPREAD_FACTOR",
    "OUTCOMES",
    "SPREAD_UNKNOWN",
    "Comparison",
    "OrganCount",
    "case_scores",
    "per_run_scores",
    "config_summary",
    "compare",
    "comparisons_table",
    "organ_comparisons",
    "per_organ_table",
    "per_organ_std",
    "organ_differences",
    "count_organs_better",
]

#: Run scores -> (column of the evaluation table, StructSeg-weighted?, higher is better?).
SCORES: dict[str, tuple[str, bool, bool]] = {
    "mean_dice": ("dice", False, True),
    "weighted_dice": ("dice", True, True),
    "mean_hd95": ("hd95", False, False),
    "weighted_hd95": ("hd95", True, False),
}
OUTCOMES: tuple[str, ...] = ("b better", "a better", "no clear difference")
"""The outcomes of :func:`compare` (uncorrected p < :data:`~sepnet_core.analysis.statistics.ALPHA`)."""
SPREAD_UNKNOWN = "spread unknown (one seed)"
"""Qualifier appended to the verdict when no seed-to-seed spread is available."""


# ------------------------------------------------------------------------------------------- checks
def _check_score(metric: str) -> tuple[str, bool, bool]:
    if metric not in SCORES:
        raise ValueError(f"unknown metric {metric!r}; valid metrics: {', '.join(SCORES)}")
    return SCORES[metric]


# ------------------------------------------------------------------------------------------- scores
def per_run_scores(table: pd.DataFrame) -> pd.DataFrame:
    """The headline scores of every run.

    Args:
        table: Evaluation table (see the module docstring).

    Returns:
        DataFrame with one row per (config, seed), in order of first appearance, and columns ``config``,
        ``seed``, ``n_cases``, ``mean_dice``, ``weighted_dice``, ``mean_hd95`` (mm), ``weighted_hd95`` (mm),
        ``n_hd95_inf`` (rows with infinite HD95, skipped by the HD95 scores); with the columns of
        :func:`sepnet_core.metrics.evaluate_case` also ``weighted_hd95_penalized`` (mm) and ``n_missed``.

    Raises:
        TypeError: ``table`` is not a DataFrame.
        ValueError: missing columns, labels outside 1..22, duplicate rows, or no rows.
    """
    table = check_table(table)
    rows = []
    for (config, seed), run in table.groupby(["config", "seed"], sort=False):
        row: dict[str, Any] = {"config": config, "seed": seed, "n_cases": int(run["case"].nunique())}
        for score, (column, weighted, _) in SCORES.items():
            if weighted:
                row[score] = weighted_average(run, column, on_inf="skip")
            else:
                means = finite(run[column]).groupby(run["label"].to_numpy()).mean().dropna()
                row[score] = float(means.mean()) if not means.empty else math.nan
        row["n_hd95_inf"] = int(np.isinf(run["hd95"].astype(float)).sum())
        if "hd95_penalized" in run.columns:
            row["weighted_hd95_penalized"] = weighted_average(run, "hd95_penalized")
        if "missed" in run.columns:
            row["n_missed"] = int(run["missed"].astype(bool).sum())
        rows.append(row)
    extra = (["weighted_hd95_penalized"] if "hd95_penalized" in table.columns else []) + (
        ["n_missed"] if "missed" in table.columns else [])
    return pd.DataFrame(rows, columns=["config", "seed", "n_cases", *SCORES, "n_hd95_inf", *extra])


def config_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and seed-to-seed standard deviation of every score, per config.

    Args:
        table: Evaluation table (see the module docstring).

    Returns:
        DataFrame indexed by ``config`` (order of first appearance) with columns ``n_seeds`` and, for each
        score of :data:`SCORES`, ``<score>_mean`` and ``<score>_std`` (sample std over seeds, ddof=1;
        NaN with one seed).
    """
    runs = per_run_scores(table)
    groups = runs.groupby("config", sort=False)
    out = pd.DataFrame({"n_seeds": groups["seed"].count()})
    for score in SCORES:
        out[f"{score}_mean"] = groups[score].mean()
        out[f"{score}_std"] = groups[score].std(ddof=1)
    out.index.name = "config"
    return out


# --------------------------------------------------------------------------------- per-case scores
def case_scores(table: pd.DataFrame, config: str, metric: str) -> tuple[np.ndarray, list]:
    """Per run and case, the score of that case alone (the per-case input of :func:`compare`).

    Args:
        table: Evaluation table (see the module docstring).
        config: A config of the table.
        metric: A key of :data:`SCORES`. HD95 scores use ``hd95_penalized`` when the table has it
            (misses at the penalty), else the HD95 with infinite values skipped.

    Returns:
        ``(scores, cases)``: float array (n_seeds, n_cases), seeds ascending, columns in the order of
        ``cases`` (sorted case ids); NaN where a case has no organ with a value.
    """
    column, weighted, _ = _check_score(metric)
    if column == "hd95" and "hd95_penalized" in table.columns:
        column = "hd95_penalized"
    rows = table[table["config"] == config]
    cases = sorted(rows["case"].unique())
    weights = importance_weights() if weighted else np.ones(NUM_ORGANS)
    out = []
    for _, run in rows.groupby("seed", sort=True):
        wide = run.pivot(index="case", columns="label", values=column)
        values = wide.reindex(index=cases, columns=range(1, NUM_ORGANS + 1)).to_numpy(dtype=float)
        valid = np.isfinite(values)
        w = np.where(valid, weights[None, :], 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            out.append(np.sum(w * np.where(valid, values, 0.0), axis=1) / np.sum(w, axis=1))
    return np.array(out), cases


# --------------------------------------------------------------------------------------- comparison
@dataclass(frozen=True)
class Comparison:
    """Result of :func:`compare`: config ``b`` against config ``a`` on one score.

    Attributes:
        a: Reference config (e.g. the baseline, ``"unet"``).
        b: Config under test (e.g. ``"sepnet"``).
        metric: Score name, a key of :data:`SCORES`.
        mean_a: Mean of a's per-case scores over seeds and cases.
        mean_b: The same for b.
        difference: ``mean_b - mean_a``, the effect (score units: Dice fraction or mm).
        spread: Seed-to-seed standard deviation of a run score: pooled over the seeds of a and b, or
            ``baseline_spread``; NaN when unknown.
        spread_source: ``"pooled seeds"``, ``"baseline"`` (given) or ``"unknown"``.
        n_seeds_a: Seeds (runs) of a.
        n_seeds_b: Seeds (runs) of b.
        n_cases: Paired cases.
        ci_low: Lower end of the 95 % interval of ``difference`` (unadjusted; NaN with < 2 cases).
        ci_high: Upper end.
        outcome: One of :data:`OUTCOMES`, from the uncorrected p-value.
        p_value: Two-sided p-value of ``difference = 0``, uncorrected; NaN when the seed variance of a
            one-seed config is unknown.
        se: Standard error of ``difference``.
        dof: Degrees of freedom of the t interval.
        gate_passed: Every run of a and b passed the trained-model gate (None: not known).
        subset: What part of the table was compared, e.g. an organ key (:func:`organ_comparisons`); ""
            for the whole table.
    """

    a: str
    b: str
    metric: str
    mean_a: float
    mean_b: float
    difference: float
    spread: float
    spread_source: str
    n_seeds_a: int
    n_seeds_b: int
    n_cases: int
    ci_low: float
    ci_high: float
    outcome: str
    p_value: float = math.nan
    se: float = math.nan
    dof: float = math.nan
    gate_passed: bool | None = None
    subset: str = ""

    @property
    def spread_known(self) -> bool:
        """True when a seed-to-seed spread entered the interval."""
        return math.isfinite(self.spread)

    @property
    def verdict(self) -> str:
        """The outcome, followed by ``"; spread unknown (one seed)"`` when no spread was available."""
        return self.outcome if self.spread_known else f"{self.outcome}; {SPREAD_UNKNOWN}"

    @property
    def ci_excludes_zero(self) -> bool:
        """True when the interval is defined and lies entirely on one side of 0."""
        return bool(self.ci_low > 0 or self.ci_high < 0)

    @property
    def higher_is_better(self) -> bool:
        """True for the Dice scores, False for HD95."""
        return SCORES[self.metric][2]

    @property
    def winner(self) -> str | None:
        """Name of the better config when the outcome says so, else None."""
        return {"b better": self.b, "a better": self.a}.get(self.outcome)

    def describe(self) -> str:
        """One line for a page, e.g. ``"sepnet vs unet, weighted_dice: +0.0123 (95 % CI ...): ..."``."""
        subset = f" ({self.subset})" if self.subset else ""
        return (f"{self.b} vs {self.a}{subset}, {self.metric}: {self.difference:+.4g} "
                f"(95 % CI {self.ci_low:+.4g} to {self.ci_high:+.4g}, p = {self.p_value:.2g}, "
                f"{self.n_cases} cases, seeds {self.n_seeds_a}/{self.n_seeds_b}): {self.verdict}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict of the fields plus ``verdict`` (read back with :meth:`from_dict`)."""
        return {**asdict(self), "verdict": self.verdict}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Comparison:
        """Inverse of :meth:`to_dict` (extra keys such as ``verdict`` are ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def _gate(gate: Mapping[str, bool] | None, config: str, seeds: Sequence[Any]) -> bool | None:
    """Gate of a config: ``gate[config]``, else all of ``gate[f"{config}/{seed}"]``; None when absent."""
    if gate is None:
        return None
    if config in gate:
        return bool(gate[config])
    runs = [gate.get(f"{config}/{seed}") for seed in seeds]
    return None if any(r is None for r in runs) else all(bool(r) for r in runs)


def compare(
    table: pd.DataFrame,
    a: str,
    b: str,
    metric: str = "weighted_dice",
    baseline_spread: float | None = None,
    baseline_seeds: int | None = None,
    gate: Mapping[str, bool] | None = None,
) -> Comparison:
    """Compare config ``b`` with config ``a`` on one score (procedure in the module docstring).

    Args:
        table: Evaluation table holding at least the runs of ``a`` and ``b``; every run must cover the
            same cases.
        a: Reference config name.
        b: Config under test.
        metric: A key of :data:`SCORES` (default ``"weighted_dice"``).
        baseline_spread: Seed-to-seed standard deviation of the run score measured on a multi-seed
            baseline (same units); used for a config with one seed.
        baseline_seeds: Number of seeds behind ``baseline_spread`` (degrees of freedom + 1; default 3).
        gate: Trained-model gate per config (``{"sepnet": True}``) or per run (``{"sepnet/0": True}``).

    Returns:
        A :class:`Comparison`.

    Raises:
        ValueError: unknown metric or config, ``a == b``, runs on different cases, a negative or
            non-finite ``baseline_spread``; plus the table checks of :func:`per_run_scores`.
    """
    table = check_table(table)
    _, _, higher_is_better = _check_score(metric)
    if a == b:
        raise ValueError(f"a and b must be different configs, both are {a!r}")
    check_configs(table, [a, b])
    if baseline_spread is not None and (not math.isfinite(float(baseline_spread)) or baseline_spread < 0):
        raise ValueError(f"baseline_spread={baseline_spread!r} must be a finite number >= 0")
    scores_a, cases_a = case_scores(table, a, metric)
    scores_b, cases_b = case_scores(table, b, metric)
    case_sets = {(c, s): frozenset(run["case"]) for (c, s), run in
                 table[table["config"].isin([a, b])].groupby(["config", "seed"])}
    if cases_a != cases_b or len(set(case_sets.values())) > 1:
        sizes = {f"{c}/seed {s}": len(v) for (c, s), v in case_sets.items()}
        raise ValueError(f"runs of {a!r} and {b!r} were evaluated on different cases ({sizes}); a paired "
                         "comparison needs the same cases in every run")
    runs = per_run_scores(table[table["config"].isin([a, b])])
    run_values = [runs.loc[runs["config"] == c, metric].to_numpy(dtype=float) for c in (a, b)]
    if baseline_spread is not None:
        spread, source = float(baseline_spread), "baseline"
    else:
        spread = pooled_std(run_values)
        source = "pooled seeds" if math.isfinite(spread) else "unknown"
    dof = (baseline_seeds - 1) if baseline_seeds and baseline_seeds >= 2 else None
    complete = np.isfinite(scores_a).all(axis=0) & np.isfinite(scores_b).all(axis=0)
    if complete.sum() < 2:  # no interval from one case: report the difference, nothing more
        result = PairedEffect(effect=float(scores_b[:, complete].mean() - scores_a[:, complete].mean())
                              if complete.any() else math.nan, ci_low=math.nan, ci_high=math.nan,
                              p_value=math.nan, se=math.nan, dof=math.nan, n_cases=int(complete.sum()),
                              n_seeds_a=len(scores_a), n_seeds_b=len(scores_b),
                              seed_variance="seeds" if math.isfinite(spread) else "unknown")
    else:
        result = paired_effect(scores_a, scores_b, seed_spread=spread if math.isfinite(spread) else None,
                               seed_spread_dof=dof)
    if result.seed_variance == "unknown":
        spread, source = math.nan, "unknown"
    if math.isfinite(result.p_value) and result.p_value < ALPHA and result.effect != 0:
        outcome = "b better" if (result.effect > 0) == higher_is_better else "a better"
    else:
        outcome = "no clear difference"
    keep = complete
    seeds = {c: sorted(table.loc[table["config"] == c, "seed"].unique()) for c in (a, b)}
    gates = [_gate(gate, c, seeds[c]) for c in (a, b)]
    gate_passed = False if False in gates else (None if None in gates else True)
    return Comparison(
        a=a, b=b, metric=metric, mean_a=float(scores_a[:, keep].mean()),
        mean_b=float(scores_b[:, keep].mean()),
        difference=result.effect, spread=spread, spread_source=source, n_seeds_a=result.n_seeds_a,
        n_seeds_b=result.n_seeds_b, n_cases=result.n_cases, ci_low=result.ci_low, ci_high=result.ci_high,
        outcome=outcome, p_value=result.p_value, se=result.se, dof=result.dof, gate_passed=gate_passed,
    )


def organ_comparisons(
    table: pd.DataFrame,
    a: str,
    b: str,
    gate: Mapping[str, bool] | None = None,
) -> list[Comparison]:
    """One comparison per organ (b against a, that organ's Dice per case): the family of "most organs".

    Each organ is compared with :func:`compare` on the rows of that organ only (score ``mean_dice``, i.e.
    the organ's Dice per case); the seed variance comes from each config's own seeds (an organ's seed
    spread is not the baseline's whole-case spread), so with one seed the p-value is NaN. The claims
    table Holm-corrects over the organs.

    Returns:
        Comparisons in label order, each with ``subset`` = the organ key, for the organs that have a
        Dice in at least one case of both configs.
    """
    table = check_table(table)
    check_configs(table, [a, b])
    out = []
    for label, rows in table[table["config"].isin([a, b])].groupby("label", sort=True):
        dice = rows.groupby("config")["dice"].apply(lambda v: bool(np.isfinite(v.astype(float)).any()))
        if len(dice) < 2 or not dice.all():
            continue
        result = compare(rows, a, b, "mean_dice", gate=gate)
        out.append(replace(result, subset=ORGANS[int(label) - 1].key))
    return out


def comparisons_table(comparisons: Sequence[Comparison]) -> pd.DataFrame:
    """Several comparisons as a table: one row each, the columns of :meth:`Comparison.to_dict`."""
    return pd.DataFrame([c.to_dict() for c in comparisons])

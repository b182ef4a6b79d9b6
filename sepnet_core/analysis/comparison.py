"""Ablations reported straight: scores per run, seed-to-seed spread, paired bootstrap, a verdict rule.

Input of every function: a long evaluation table, one row per (config, seed, case, organ), i.e. the
table of :func:`sepnet_core.metrics.evaluate_case` / :func:`sepnet_core.evaluation.evaluate_folders`
with two columns added: ``config`` (str, e.g. ``"sepnet"``, ``"unet"``) and ``seed`` (int). Required
columns: ``config, seed, case, label, dice, hd95`` (``organ`` is optional; organs are named from
``label``). One (config, seed) pair is a *run*.

Scores of a run (:data:`SCORES`), all from :mod:`sepnet_core.metrics` conventions (per-organ mean over
cases first, NaN skipped, then a mean over organs):

* ``mean_dice``: unweighted mean over organs; ``weighted_dice``: StructSeg importance weights
  (:func:`sepnet_core.metrics.weighted_average`);
* ``mean_hd95``, ``weighted_hd95`` (mm): the same, with **infinite HD95 (a missed organ) skipped**, so
  one missed organ does not turn every score into ``inf``; ``n_hd95_inf`` counts what was skipped.

Verdict rule of :func:`compare` (b versus a, ``diff = mean over seeds of b - mean over seeds of a``;
"better" means higher for Dice and lower for HD95):

1. *spread* = seed-to-seed standard deviation of one run's score: the pooled within-config sample
   standard deviation over the seeds of a and b (``sqrt(sum (n_k - 1) s_k^2 / sum (n_k - 1))``), or
   ``baseline_spread`` when given (e.g. from a dedicated multi-seed baseline). Unknown when neither
   config has two seeds and no baseline is given.
2. *CI* = 95 % percentile interval of ``diff`` under a paired bootstrap over cases (the same resampled
   cases for a and b and for every seed; fixed ``rng_seed``, so the result is deterministic).
   Undefined (NaN) with fewer than 2 cases; an undefined CI never excludes 0.
3. Spread known: ``|diff| <= 2 x spread`` -> ``"within seed-to-seed spread"``; otherwise
   ``"b better"`` / ``"a better"`` if the CI excludes 0, else ``"no clear difference"``.
   Spread unknown: ``"b better"`` / ``"a better"`` if the CI excludes 0, else ``"no clear difference"``,
   each followed by ``"; spread unknown (one seed)"``.

The factor 2 (:data:`SPREAD_FACTOR`) is the whole rule's only tuning constant: a difference must exceed
twice the run-to-run noise of one training run to count, whatever the number of cases.

The per-organ tables (:func:`per_organ_table`, :func:`per_organ_std`, :func:`organ_differences`,
:func:`count_organs_better`) live in :mod:`sepnet_core.analysis.per_organ` and are re-exported here.

Example:
    >>> cmp = compare(table, "unet", "sepnet")  # doctest: +SKIP
    >>> cmp.verdict, cmp.winner  # doctest: +SKIP
    ('b better; spread unknown (one seed)', 'sepnet')
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
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
from sepnet_core.metrics import weighted_average
from sepnet_core.organs import NUM_ORGANS, importance_weights

__all__ = [
    "SCORES",
    "SPREAD_FACTOR",
    "OUTCOMES",
    "SPREAD_UNKNOWN",
    "Comparison",
    "OrganCount",
    "per_run_scores",
    "config_summary",
    "compare",
    "comparisons_table",
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
OUTCOMES: tuple[str, ...] = ("b better", "a better", "within seed-to-seed spread", "no clear difference")
"""The base verdicts of :func:`compare`."""
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
        ``n_hd95_inf`` (rows with infinite HD95, skipped by the HD95 scores).

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
        rows.append(row)
    return pd.DataFrame(rows, columns=["config", "seed", "n_cases", *SCORES, "n_hd95_inf"])


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


# ---------------------------------------------------------------------------------------- bootstrap
def _run_matrices(table: pd.DataFrame, config: str, column: str, cases: list) -> list[np.ndarray]:
    """Per seed of ``config``: (n_cases, 22) values of ``column`` (inf -> NaN), rows in ``cases`` order."""
    out = []
    for _, run in table[table["config"] == config].groupby("seed", sort=True):
        wide = run.pivot(index="case", columns="label", values=column)
        wide = wide.reindex(index=cases, columns=range(1, NUM_ORGANS + 1))
        values = np.array(wide.to_numpy(dtype=float), dtype=float, copy=True)
        values[~np.isfinite(values)] = np.nan
        out.append(values)
    return out


def _scores(values: np.ndarray, counts: np.ndarray, weighted: bool) -> np.ndarray:
    """Score of one run for each row of case multiplicities ``counts`` (n_boot, n_cases) -> (n_boot,)."""
    valid = np.isfinite(values)
    sums = counts @ np.where(valid, values, 0.0)
    n = counts @ valid.astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        organ_means = sums / n  # (n_boot, 22), NaN where the organ has no value in the sample
    present = np.isfinite(organ_means)
    w = importance_weights()[None, :] if weighted else np.ones((1, NUM_ORGANS))
    w = np.where(present, w, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sum(w * np.where(present, organ_means, 0.0), axis=1) / np.sum(w, axis=1)


def _bootstrap_difference(
    table: pd.DataFrame, a: str, b: str, metric: str, n_boot: int, rng_seed: int
) -> tuple[float, float, int]:
    column, weighted, _ = SCORES[metric]
    case_sets = {(c, s): frozenset(run["case"]) for (c, s), run in
                 table[table["config"].isin([a, b])].groupby(["config", "seed"])}
    first = next(iter(case_sets.values()))
    if any(cases != first for cases in case_sets.values()):
        sizes = {f"{c}/seed {s}": len(v) for (c, s), v in case_sets.items()}
        raise ValueError(f"runs of {a!r} and {b!r} were evaluated on different cases ({sizes}); a paired "
                         "comparison needs the same cases in every run")
    cases = sorted(first)
    if len(cases) < 2:
        return math.nan, math.nan, len(cases)
    rng = np.random.default_rng(rng_seed)
    counts = rng.multinomial(len(cases), np.full(len(cases), 1.0 / len(cases)), size=n_boot).astype(float)
    stats = []
    for config in (a, b):
        runs = _run_matrices(table, config, column, cases)
        stats.append(np.nanmean(np.stack([_scores(v, counts, weighted) for v in runs]), axis=0))
    diff = stats[1] - stats[0]
    diff = diff[np.isfinite(diff)]
    if diff.size == 0:
        return math.nan, math.nan, len(cases)
    low, high = np.percentile(diff, [2.5, 97.5])
    return float(low), float(high), len(cases)


# --------------------------------------------------------------------------------------- comparison
@dataclass(frozen=True)
class Comparison:
    """Result of :func:`compare`: config ``b`` against config ``a`` on one score.

    Attributes:
        a: Reference config (e.g. the baseline, ``"unet"``).
        b: Config under test (e.g. ``"sepnet"``).
        metric: Score name, a key of :data:`SCORES`.
        mean_a: Mean of the score over a's seeds.
        mean_b: Mean of the score over b's seeds.
        difference: ``mean_b - mean_a`` (score units: Dice fraction or mm).
        spread: Seed-to-seed standard deviation of one run's score used by the rule; NaN when unknown.
        spread_source: ``"pooled seeds"``, ``"baseline"`` (given) or ``"unknown"``.
        n_seeds_a: Seeds (runs) of a.
        n_seeds_b: Seeds (runs) of b.
        n_cases: Paired cases of the bootstrap.
        ci_low: Lower end of the paired-bootstrap 95 % interval of ``difference`` (NaN with < 2 cases).
        ci_high: Upper end of that interval.
        outcome: Base verdict, one of :data:`OUTCOMES`.
        n_boot: Bootstrap resamples.
        rng_seed: Seed of the bootstrap's generator.
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
    n_boot: int = 2000
    rng_seed: int = 0

    @property
    def spread_known(self) -> bool:
        """True when a seed-to-seed spread entered the rule."""
        return math.isfinite(self.spread)

    @property
    def verdict(self) -> str:
        """The outcome, followed by ``"; spread unknown (one seed)"`` when no spread was available."""
        return self.outcome if self.spread_known else f"{self.outcome}; {SPREAD_UNKNOWN}"

    @property
    def ci_excludes_zero(self) -> bool:
        """True when the bootstrap interval is defined and lies entirely on one side of 0."""
        return bool(self.ci_low > 0 or self.ci_high < 0)

    @property
    def winner(self) -> str | None:
        """Name of the better config when the outcome says so, else None."""
        return {"b better": self.b, "a better": self.a}.get(self.outcome)

    def describe(self) -> str:
        """One line for a page, e.g. ``"sepnet vs unet, weighted_dice: +0.0123 (95 % CI ...): ..."``."""
        spread = f"{self.spread:.4g}" if self.spread_known else "unknown"
        return (f"{self.b} vs {self.a}, {self.metric}: {self.difference:+.4g} (95 % CI {self.ci_low:+.4g} "
                f"to {self.ci_high:+.4g}, {self.n_cases} cases; seed spread {spread}): {self.verdict}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict of the fields plus ``verdict`` (read back with :meth:`from_dict`)."""
        return {**asdict(self), "verdict": self.verdict}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Comparison:
        """Inverse of :meth:`to_dict` (extra keys such as ``verdict`` are ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def _outcome(diff: float, spread: float, ci_low: float, ci_high: float, higher_is_better: bool) -> str:
    """The verdict rule of the module docstring."""
    if not math.isfinite(diff):
        return "no clear difference"
    if math.isfinite(spread) and abs(diff) <= SPREAD_FACTOR * spread:
        return "within seed-to-seed spread"
    if ci_low > 0 or ci_high < 0:
        return "b better" if (diff > 0) == higher_is_better else "a better"
    return "no clear difference"


def compare(
    table: pd.DataFrame,
    a: str,
    b: str,
    metric: str = "weighted_dice",
    baseline_spread: float | None = None,
    n_boot: int = 2000,
    rng_seed: int = 0,
) -> Comparison:
    """Compare config ``b`` with config ``a`` on one score (rule in the module docstring).

    Args:
        table: Evaluation table holding at least the runs of ``a`` and ``b``; every run must cover the
            same cases.
        a: Reference config name.
        b: Config under test.
        metric: A key of :data:`SCORES` (default ``"weighted_dice"``).
        baseline_spread: Seed-to-seed standard deviation of the score measured elsewhere (same units);
            replaces the pooled spread of a and b.
        n_boot: Bootstrap resamples (default 2000).
        rng_seed: Seed of the bootstrap generator (default 0).

    Returns:
        A :class:`Comparison`.

    Raises:
        ValueError: unknown metric or config, ``a == b``, runs on different cases, a negative or
            non-finite ``baseline_spread``, ``n_boot`` < 100; plus the table checks of
            :func:`per_run_scores`.
    """
    table = check_table(table)
    _, _, higher_is_better = _check_score(metric)
    if a == b:
        raise ValueError(f"a and b must be different configs, both are {a!r}")
    check_configs(table, [a, b])
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 100:
        raise ValueError(f"n_boot={n_boot!r} must be an integer >= 100")
    runs = per_run_scores(table[table["config"].isin([a, b])])
    values = {c: runs.loc[runs["config"] == c, metric].to_numpy(dtype=float) for c in (a, b)}
    if baseline_spread is not None:
        spread = float(baseline_spread)
        if not math.isfinite(spread) or spread < 0:
            raise ValueError(f"baseline_spread={baseline_spread!r} must be a finite number >= 0")
        source = "baseline"
    else:
        spread = pooled_std(list(values.values()))
        source = "pooled seeds" if math.isfinite(spread) else "unknown"
    mean_a, mean_b = (float(np.nanmean(v)) if np.isfinite(v).any() else math.nan for v in values.values())
    diff = mean_b - mean_a
    ci_low, ci_high, n_cases = _bootstrap_difference(table, a, b, metric, n_boot, rng_seed)
    return Comparison(
        a=a, b=b, metric=metric, mean_a=mean_a, mean_b=mean_b, difference=diff, spread=spread,
        spread_source=source, n_seeds_a=len(values[a]), n_seeds_b=len(values[b]), n_cases=n_cases,
        ci_low=ci_low, ci_high=ci_high, outcome=_outcome(diff, spread, ci_low, ci_high, higher_is_better),
        n_boot=n_boot, rng_seed=rng_seed,
    )


def comparisons_table(comparisons: Sequence[Comparison]) -> pd.DataFrame:
    """Several comparisons as a table: one row each, the columns of :meth:`Comparison.to_dict`."""
    return pd.DataFrame([c.to_dict() for c in comparisons])

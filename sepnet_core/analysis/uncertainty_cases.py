"""The uncertainty claim judged on cases, not on voxels or levels.

Voxels of one case are not independent samples, and the vote-entropy levels are not samples of anything,
so nothing here computes a p-value over voxels or levels. The case is the unit:

* :func:`per_case_auroc`: the error-detection AUROC of each case (from its table of
  :func:`sepnet_core.analysis.uncertainty_analysis.error_rate_by_level`), and :func:`auroc_interval`,
  their mean with a t interval over cases;
* :func:`level_table_with_interval`: the error rate of every level (level 0, where all members agree,
  included), pooled over cases, with a percentile interval from a bootstrap over cases.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy import stats

from sepnet_core.analysis.uncertainty_analysis import accumulate_levels, auroc_from_levels

__all__ = ["auroc_interval", "level_table_with_interval", "per_case_auroc"]


def per_case_auroc(level_tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Error-detection AUROC of each case, from its table of :func:`error_rate_by_level`.

    Returns:
        DataFrame with columns ``case``, ``auroc`` (NaN for a case without an error or without a correct
        voxel in the region), ``n_voxels``, ``n_errors``, ``error_rate``, in the input order.
    """
    rows = []
    for case, frame in level_tables.items():
        n_voxels, n_errors = int(frame["n_voxels"].sum()), int(frame["n_errors"].sum())
        rows.append({"case": str(case), "auroc": auroc_from_levels(frame), "n_voxels": n_voxels,
                     "n_errors": n_errors, "error_rate": n_errors / n_voxels if n_voxels else math.nan})
    return pd.DataFrame(rows, columns=["case", "auroc", "n_voxels", "n_errors", "error_rate"])


def auroc_interval(per_case: pd.DataFrame, confidence: float = 0.95) -> dict[str, float]:
    """Mean of the per-case AUROCs with a t interval over cases (cases with a NaN AUROC left out).

    Args:
        per_case: Table of :func:`per_case_auroc`.
        confidence: Coverage of the interval.

    Returns:
        ``{"mean", "ci_low", "ci_high", "n_cases"}``; the interval is NaN with fewer than 2 cases.
    """
    values = per_case["auroc"].to_numpy(dtype=float)
    values = values[np.isfinite(values)]
    n = int(values.size)
    mean = float(values.mean()) if n else math.nan
    if n < 2:
        return {"mean": mean, "ci_low": math.nan, "ci_high": math.nan, "n_cases": n}
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * float(values.std(ddof=1)) / math.sqrt(n)
    return {"mean": mean, "ci_low": mean - half, "ci_high": mean + half, "n_cases": n}


def level_table_with_interval(
    level_tables: Mapping[str, pd.DataFrame], n_boot: int = 2000, rng_seed: int = 0, confidence: float = 0.95
) -> pd.DataFrame:
    """Pooled error rate of every uncertainty level with a percentile interval from a bootstrap over cases.

    Args:
        level_tables: Per case, its table of :func:`error_rate_by_level`.
        n_boot: Bootstrap resamples of the cases.
        rng_seed: Seed of the generator (the result is deterministic).
        confidence: Coverage of the interval.

    Returns:
        The columns of :func:`accumulate_levels` (every level, 0 included) plus ``n_cases`` (cases that
        have the level), ``ci_low`` and ``ci_high`` (NaN with fewer than 2 cases).
    """
    frames = [f for f in level_tables.values() if len(f)]
    pooled = accumulate_levels(frames)
    if pooled.empty:
        return pooled.assign(n_cases=np.zeros(0, np.int64), ci_low=np.zeros(0), ci_high=np.zeros(0))
    levels = pooled["level"].to_numpy()
    voxels = np.zeros((len(frames), levels.size))
    errors = np.zeros_like(voxels)
    for i, frame in enumerate(frames):
        idx = np.searchsorted(levels, frame["level"].to_numpy())
        np.add.at(voxels[i], idx, frame["n_voxels"].to_numpy(dtype=float))
        np.add.at(errors[i], idx, frame["n_errors"].to_numpy(dtype=float))
    pooled["n_cases"] = (voxels > 0).sum(axis=0)
    if len(frames) < 2:
        return pooled.assign(ci_low=math.nan, ci_high=math.nan)
    rng = np.random.default_rng(rng_seed)
    weights = rng.multinomial(len(frames), np.full(len(frames), 1.0 / len(frames)), size=n_boot)
    with np.errstate(invalid="ignore", divide="ignore"):
        rates = (weights @ errors) / (weights @ voxels)  # (n_boot, n_levels), NaN where a level is absent
    tail = 50 * (1 - confidence)
    with np.errstate(invalid="ignore"):
        low, high = np.nanpercentile(rates, [tail, 100 - tail], axis=0)
    return pooled.assign(ci_low=low, ci_high=high)

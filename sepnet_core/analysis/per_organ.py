"""Per-organ views of an evaluation table: organs x configs tables and "better in how many organs".

Input: the long evaluation table of :mod:`sepnet_core.analysis.comparison` (columns ``config, seed,
case, label, dice, hd95``). Per run (config, seed) each organ's value is its mean over cases
(NaN skipped; infinite HD95 skipped); configs are then averaged over seeds.

The outcome rule of :func:`organ_differences` is the spread part of
:func:`sepnet_core.analysis.comparison.compare`: an organ counts for b (or a) only when
``|difference| > 2 x`` its pooled seed-to-seed standard deviation (margin 0 with one seed).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import pandas as pd

from sepnet_core.analysis._common import SPREAD_FACTOR, check_configs, check_table, finite, pooled_std
from sepnet_core.organs import NUM_ORGANS, ORGANS

__all__ = ["OrganCount", "per_organ_table", "per_organ_std", "organ_differences", "count_organs_better"]

_ORGAN_METRICS = ("dice", "hd95")
_ORGAN_KEYS = [o.key for o in ORGANS]


def _run_organ_means(table: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Mean of ``metric`` over cases per (config, seed) x organ label (inf skipped)."""
    if metric not in _ORGAN_METRICS:
        raise ValueError(f"unknown metric {metric!r}; valid metrics: {', '.join(_ORGAN_METRICS)}")
    values = finite(table[metric])
    keys = [table["config"], table["seed"], table["label"].astype(int)]
    return values.groupby(keys, sort=False).mean().unstack("label").reindex(columns=range(1, NUM_ORGANS + 1))


def _organ_frame(per_label: pd.DataFrame) -> pd.DataFrame:
    per_label.index = pd.Index(_ORGAN_KEYS, name="organ")
    return per_label


def per_organ_table(
    table: pd.DataFrame, configs: Sequence[str] | None = None, metric: str = "dice"
) -> pd.DataFrame:
    """Organs x configs: mean over seeds of each run's mean over cases.

    Args:
        table: Evaluation table.
        configs: Configs to show, in column order; default all, in order of first appearance.
        metric: ``"dice"`` or ``"hd95"`` (mm; infinite values skipped).

    Returns:
        DataFrame indexed by organ key (22 rows, label order, index name ``organ``), one column per
        config; NaN where an organ has no value.

    Raises:
        ValueError: unknown metric or config, plus the table checks.
    """
    table = check_table(table)
    configs = list(dict.fromkeys(table["config"])) if configs is None else list(configs)
    check_configs(table, configs)
    runs = _run_organ_means(table, metric)
    means = runs.groupby(level=0, sort=False).mean()
    return _organ_frame(means.reindex(configs).T.reset_index(drop=True).rename_axis(columns=None))


def per_organ_std(
    table: pd.DataFrame, configs: Sequence[str] | None = None, metric: str = "dice", over: str = "cases"
) -> pd.DataFrame:
    """Organs x configs spread, for error bars beside :func:`per_organ_table`.

    Args:
        table: Evaluation table.
        configs: Configs, as in :func:`per_organ_table`.
        metric: ``"dice"`` or ``"hd95"`` (infinite values skipped).
        over: ``"cases"``: sample std over cases of the seed-averaged per-case values; ``"seeds"``: sample
            std over seeds of each run's mean over cases (NaN with one seed).

    Returns:
        DataFrame shaped like :func:`per_organ_table`'s result.
    """
    table = check_table(table)
    configs = list(dict.fromkeys(table["config"])) if configs is None else list(configs)
    check_configs(table, configs)
    if over == "seeds":
        stds = _run_organ_means(table, metric).groupby(level=0, sort=False).std(ddof=1)
    elif over == "cases":
        if metric not in _ORGAN_METRICS:
            raise ValueError(f"unknown metric {metric!r}; valid metrics: {', '.join(_ORGAN_METRICS)}")
        keys = [table["config"], table["case"], table["label"].astype(int)]
        per_case = finite(table[metric]).groupby(keys, sort=False).mean()
        stds = per_case.groupby(level=[0, 2], sort=False).std(ddof=1).unstack("label")
        stds = stds.reindex(columns=range(1, NUM_ORGANS + 1))
    else:
        raise ValueError(f"unknown over={over!r}; valid options: cases, seeds")
    return _organ_frame(stds.reindex(configs).T.reset_index(drop=True).rename_axis(columns=None))


@dataclass(frozen=True)
class OrganCount:
    """Result of :func:`count_organs_better`: in how many organs ``b`` beats ``a``.

    Attributes:
        a: Reference config.
        b: Config under test.
        metric: ``"dice"`` or ``"hd95"``.
        n_better: Organs where b is better than a by more than the margin.
        n_worse: Organs where a is better than b by more than the margin.
        n_within: Organs with ``|difference| <=`` margin.
        n_organs: Organs with a value for both configs.
        spread_known: False when neither config has two seeds: the margin is then 0.
    """

    a: str
    b: str
    metric: str
    n_better: int
    n_worse: int
    n_within: int
    n_organs: int
    spread_known: bool

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the fields (read back with :meth:`from_dict`)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OrganCount:
        """Inverse of :meth:`to_dict` (extra keys ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def organ_differences(table: pd.DataFrame, a: str, b: str, metric: str = "dice") -> pd.DataFrame:
    """Per organ: b's and a's means, difference, seed spread and outcome.

    The margin of an organ is :data:`SPREAD_FACTOR` x its pooled seed-to-seed std of the per-run organ
    mean (same rule as :func:`compare`, without a bootstrap); 0 when the spread is unknown (one seed).

    Returns:
        DataFrame indexed by organ key (22 rows) with columns ``label``, ``mean_a``, ``mean_b``,
        ``difference`` (b - a), ``spread`` (NaN if unknown), ``outcome`` in ``{"b better", "a better",
        "within spread", "no data"}`` (better = higher Dice / lower HD95).
    """
    table = check_table(table)
    if a == b:
        raise ValueError(f"a and b must be different configs, both are {a!r}")
    check_configs(table, [a, b])
    higher_is_better = metric == "dice"
    runs = _run_organ_means(table[table["config"].isin([a, b])], metric)
    rows = []
    for label in range(1, NUM_ORGANS + 1):
        va = runs.xs(a, level=0)[label].to_numpy(dtype=float)
        vb = runs.xs(b, level=0)[label].to_numpy(dtype=float)
        mean_a = float(np.nanmean(va)) if np.isfinite(va).any() else math.nan
        mean_b = float(np.nanmean(vb)) if np.isfinite(vb).any() else math.nan
        diff, spread = mean_b - mean_a, pooled_std([va, vb])
        margin = SPREAD_FACTOR * spread if math.isfinite(spread) else 0.0
        if not math.isfinite(diff):
            outcome = "no data"
        elif abs(diff) <= margin:
            outcome = "within spread"
        else:
            outcome = "b better" if (diff > 0) == higher_is_better else "a better"
        rows.append((label, mean_a, mean_b, diff, spread, outcome))
    out = pd.DataFrame(rows, columns=["label", "mean_a", "mean_b", "difference", "spread", "outcome"])
    return _organ_frame(out)


def count_organs_better(table: pd.DataFrame, a: str, b: str, metric: str = "dice") -> OrganCount:
    """Count the organs where ``b`` beats ``a`` by more than the seed spread (see :func:`organ_differences`).

    The paper's claim "3D-SepNet has better Dice for most organs than 3D U-Net" is
    ``count_organs_better(table, "unet", "sepnet").n_better > n_organs / 2``.

    Returns:
        An :class:`OrganCount`.
    """
    diffs = organ_differences(table, a, b, metric)
    outcome = diffs["outcome"]
    return OrganCount(
        a=a, b=b, metric=metric,
        n_better=int((outcome == "b better").sum()), n_worse=int((outcome == "a better").sum()),
        n_within=int((outcome == "within spread").sum()), n_organs=int((outcome != "no data").sum()),
        spread_known=bool(diffs["spread"].notna().any()),
    )

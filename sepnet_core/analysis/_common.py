"""Checks and small statistics shared by the analysis modules (private)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from sepnet_core.organs import NUM_ORGANS

SPREAD_FACTOR = 2.0
"""A difference counts only if it exceeds this many seed-to-seed standard deviations."""

REQUIRED_COLUMNS = ("config", "seed", "case", "label", "dice", "hd95")
"""Columns of the long evaluation table read by ``comparison`` and ``per_organ``."""


def check_table(table: pd.DataFrame) -> pd.DataFrame:
    """Validate a long evaluation table (columns, labels 1..22, no duplicate rows); return it."""
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"table must be a pandas DataFrame, got {type(table).__name__}")
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"table lacks column(s) {missing}; an evaluation table needs "
                         f"{list(REQUIRED_COLUMNS)}")
    if table.empty:
        raise ValueError("table has no rows")
    labels = table["label"].to_numpy()
    if not np.isin(labels, np.arange(1, NUM_ORGANS + 1)).all():
        raise ValueError(f"table column 'label' must hold organ labels 1..{NUM_ORGANS}")
    if table.duplicated(["config", "seed", "case", "label"]).any():
        raise ValueError("table has several rows for the same (config, seed, case, label)")
    return table


def check_configs(table: pd.DataFrame, names: Sequence[str]) -> None:
    """Raise ValueError naming the configs of ``names`` absent from the table."""
    known = list(dict.fromkeys(table["config"]))
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"config(s) {unknown} not in the table; configs present: {known}")


def finite(values: pd.Series) -> pd.Series:
    """``values`` as float with +-inf replaced by NaN."""
    return values.astype(float).replace([np.inf, -np.inf], np.nan)


def pooled_std(groups: Sequence[np.ndarray]) -> float:
    """Pooled sample std of several groups (NaN values dropped); NaN when no group has 2 values."""
    ss, dof = 0.0, 0
    for values in groups:
        values = values[np.isfinite(values)]
        if values.size >= 2:
            ss += float(np.sum((values - values.mean()) ** 2))
            dof += values.size - 1
    return math.sqrt(ss / dof) if dof else math.nan


def mask_or_all(mask: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    """``mask`` checked to be bool of ``shape``, or all True when None."""
    if mask is None:
        return np.ones(shape, dtype=bool)
    mask = np.asarray(mask)
    if mask.dtype != bool or mask.shape != shape:
        raise ValueError(f"mask must be a bool array of shape {shape}, got {mask.dtype} {mask.shape}")
    return mask

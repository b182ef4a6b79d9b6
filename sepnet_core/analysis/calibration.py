"""Calibration of the ensemble's mean probability: reliability table and expected calibration error.

Confidence is the probability of the predicted class (the max over classes of the mean probability);
a voxel is correct when the predicted label equals the reference. Bins are equal-width on [0, 1].
Per-case tables pool exactly with :func:`accumulate_reliability` (counts and count-weighted means).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from sepnet_core.analysis._common import mask_or_all

__all__ = [
    "RELIABILITY_COLUMNS",
    "confidence_from_probabilities",
    "reliability_table",
    "accumulate_reliability",
    "expected_calibration_error",
]

RELIABILITY_COLUMNS = ("bin", "lower", "upper", "count", "mean_confidence", "accuracy")
"""Columns of :func:`reliability_table`."""


def confidence_from_probabilities(mean_prob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Confidence (max class probability) and argmax label of a (C, z, y, x) probability volume.

    Returns:
        ``(confidence float32 (z, y, x), labels uint8 (z, y, x))``.

    Raises:
        ValueError: not a 4-D float array.
    """
    prob = np.asarray(mean_prob)
    if prob.ndim != 4 or prob.dtype.kind != "f":
        raise ValueError(f"mean_prob must be a float (C, z, y, x) array, got {prob.dtype} {prob.shape}")
    return prob.max(axis=0).astype(np.float32), prob.argmax(axis=0).astype(np.uint8)


def reliability_table(
    confidence: np.ndarray, correct: np.ndarray, bins: int = 10, mask: np.ndarray | None = None
) -> pd.DataFrame:
    """Reliability diagram data: accuracy against mean confidence in equal-width confidence bins.

    Args:
        confidence: Probability of the predicted class, float in [0, 1], any shape.
        correct: bool, same shape: prediction equals the reference.
        bins: Number of equal-width bins on [0, 1] (default 10); confidence 1.0 falls in the last.
        mask: Optional bool, same shape: voxels to count.

    Returns:
        DataFrame with ``bins`` rows and columns ``bin`` (0..bins-1), ``lower``, ``upper`` (bin edges),
        ``count``, ``mean_confidence``, ``accuracy`` (NaN for an empty bin).

    Raises:
        ValueError: shapes differ, ``correct`` not bool, confidence outside [0, 1], ``bins`` < 1.
    """
    conf, ok = np.asarray(confidence), np.asarray(correct)
    if conf.dtype.kind != "f" or ok.dtype != bool or conf.shape != ok.shape:
        raise ValueError(f"confidence (float) and correct (bool) must have the same shape, got "
                         f"{conf.dtype} {conf.shape} and {ok.dtype} {ok.shape}")
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise ValueError(f"bins={bins!r} must be an integer >= 1")
    keep = mask_or_all(mask, conf.shape)
    conf, ok = conf[keep].astype(np.float64), ok[keep]
    if conf.size and (conf.min() < -1e-3 or conf.max() > 1 + 1e-3 or not np.isfinite(conf).all()):
        raise ValueError(f"confidence must lie in [0, 1], got values in [{conf.min()}, {conf.max()}]")
    index = np.clip((np.clip(conf, 0.0, 1.0) * bins).astype(np.int64), 0, bins - 1)
    count = np.bincount(index, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(index, weights=conf, minlength=bins) / count
        accuracy = np.bincount(index, weights=ok, minlength=bins) / count
    edges = np.linspace(0.0, 1.0, bins + 1)
    return pd.DataFrame({"bin": np.arange(bins), "lower": edges[:-1], "upper": edges[1:], "count": count,
                         "mean_confidence": mean_conf, "accuracy": accuracy})


def accumulate_reliability(tables: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Pool per-case :func:`reliability_table` results (same bins) into one table, count-weighted."""
    if not tables:
        raise ValueError("tables is empty; pass at least one reliability table")
    first = tables[0]
    if any(len(t) != len(first) or not np.allclose(t["lower"], first["lower"]) for t in tables):
        raise ValueError("reliability tables must all use the same bins")
    count = sum(t["count"].to_numpy() for t in tables)
    conf_sum = sum(np.nan_to_num(t["mean_confidence"].to_numpy() * t["count"].to_numpy()) for t in tables)
    ok_sum = sum(np.nan_to_num(t["accuracy"].to_numpy() * t["count"].to_numpy()) for t in tables)
    out = first[["bin", "lower", "upper"]].copy()
    out["count"] = count
    with np.errstate(invalid="ignore", divide="ignore"):
        out["mean_confidence"] = conf_sum / count
        out["accuracy"] = ok_sum / count
    return out


def expected_calibration_error(table: pd.DataFrame) -> float:
    """ECE = sum over bins of ``count / total * |accuracy - mean_confidence|``; NaN if the table is empty."""
    count = table["count"].to_numpy(dtype=float)
    if count.sum() == 0:
        return math.nan
    gap = np.abs(table["accuracy"].to_numpy(dtype=float) - table["mean_confidence"].to_numpy(dtype=float))
    return float(np.sum(np.where(count > 0, count * np.nan_to_num(gap), 0.0)) / count.sum())

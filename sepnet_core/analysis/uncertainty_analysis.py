"""Does the ensemble's uncertainty point at its errors? The paper's analysis and three more.

* **Error rate by uncertainty level** (the paper's): vote entropy takes few values (for 6 members 0,
  0.4506, 0.6365, 0.6931, 0.8676, 1.0114, 1.0986, ... nats); per level, the fraction of voxels whose
  fused label differs from the reference (:func:`error_rate_by_level`, summed over cases with
  :func:`accumulate_levels`), and the Spearman rank correlation of level and error rate
  (:func:`spearman_level_error`).
* **Error detection AUROC**: how well the uncertainty ranks erroneous above correct voxels
  (:func:`error_detection_auroc`; from a level table: :func:`auroc_from_levels`).
* **Calibration** of the mean probability: reliability table and expected calibration error
  (:mod:`sepnet_core.analysis.calibration`, re-exported here).
* **Organ flag**: does high mean uncertainty inside a predicted organ predict a low Dice?

Region of interest (:func:`region_mask`). Far-away background is correctly labelled by every member at
zero uncertainty; counting it would make the level-0 error rate ~0 and the AUROC ~1 whatever the
network does; counting a whole field of view labelled as organ by an untrained model makes it
meaningless the other way. The region the book judges the claim on is ``"reference"``: the union of
the reference organs dilated by ``margin_mm`` (default :data:`MARGIN_MM` = 10 mm, Euclidean in mm with
the voxel spacing), fixed by the reference alone, so it does not grow with a model's false positives.
``"union"`` keeps the voxels that the fused prediction, the reference or at least one member labels as
an organ (every voxel where an error or a disagreement is possible). All maps are (z, y, x).

**Judging the claim** (:mod:`sepnet_core.analysis.uncertainty_cases`):
voxels of one case are not independent samples, and the 11 vote-entropy levels are not 11 samples of
anything, so no p-value is computed over voxels or levels. The unit is the case: the error-detection
AUROC is computed per case and summarised by its mean with a t interval over cases; the error rate of
each level (level 0, where all members agree, included) is pooled over cases with a 95 % interval from a
bootstrap over cases. Calibration: :mod:`sepnet_core.analysis.calibration`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage, stats

from sepnet_core.analysis._common import mask_or_all
from sepnet_core.analysis.calibration import (
    accumulate_reliability,
    confidence_from_probabilities,
    expected_calibration_error,
    reliability_table,
)
from sepnet_core.organs import organ_by_key

__all__ = [
    "MARGIN_MM",
    "REGIONS",
    "SpearmanResult",
    "region_mask",
    "error_rate_by_level",
    "accumulate_levels",
    "spearman_level_error",
    "error_detection_auroc",
    "auroc_from_levels",
    "confidence_from_probabilities",
    "reliability_table",
    "accumulate_reliability",
    "expected_calibration_error",
    "organ_uncertainty_frame",
    "organ_uncertainty_vs_dice",
    "spearman_uncertainty_dice",
    "flag_auroc",
    "reference_flag_table",
]

MARGIN_MM = 10.0
"""Margin (mm) by which the ``"reference"`` region grows the union of the reference organs."""

REGIONS: dict[str, str] = {
    "reference": "union of the reference organs dilated by `margin_mm` mm",
    "union": "fused prediction, reference or any member (uncertainty > 0) is an organ",
    "foreground": "fused prediction or reference is an organ",
    "box": "bounding box of the 'union' region, grown by `margin` voxels on every side",
    "all": "every voxel",
}
"""Regions of interest of :func:`region_mask`, with what they keep."""

LEVEL_COLUMNS = ("level", "n_voxels", "n_errors", "error_rate")
"""Columns of :func:`error_rate_by_level`."""


@dataclass(frozen=True)
class SpearmanResult:
    """A Spearman rank correlation.

    Attributes:
        rho: Correlation coefficient in [-1, 1] (NaN with fewer than 3 points or a constant input).
        p_value: Two-sided p-value of scipy's test (t approximation).
        n: Number of points.
    """

    rho: float
    p_value: float
    n: int

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the fields (read back with :meth:`from_dict`)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SpearmanResult:
        """Inverse of :meth:`to_dict` (extra keys ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def _spearman(x: np.ndarray, y: np.ndarray) -> SpearmanResult:
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return SpearmanResult(math.nan, math.nan, int(x.size))
    result = stats.spearmanr(x, y)
    return SpearmanResult(float(result.statistic), float(result.pvalue), int(x.size))


# ------------------------------------------------------------------------------------------ checks
def _volume(array: np.ndarray, name: str, kinds: str) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim != 3:
        raise ValueError(f"{name} must be a 3-D (z, y, x) array, got shape {array.shape}")
    if array.dtype.kind not in kinds:
        raise ValueError(f"{name} has dtype {array.dtype}; expected kind(s) {kinds!r}")
    return array


def _same_shape(**arrays: np.ndarray) -> None:
    shapes = {name: a.shape for name, a in arrays.items() if a is not None}
    if len(set(shapes.values())) > 1:
        raise ValueError(f"arrays must have the same shape, got {shapes}")


# ----------------------------------------------------------------------------------- error by level
def region_mask(
    labels_pred: np.ndarray,
    labels_ref: np.ndarray,
    uncertainty: np.ndarray | None = None,
    region: str = "union",
    margin: int = 5,
    *,
    spacing_mm: Sequence[float] | None = None,
    margin_mm: float = MARGIN_MM,
) -> np.ndarray:
    """Boolean region of interest for the voxel statistics (see :data:`REGIONS`).

    Args:
        labels_pred: Fused labels, integer (z, y, x), 0 = background.
        labels_ref: Reference labels, same shape.
        uncertainty: Uncertainty map, float (z, y, x); needed by ``"union"`` and ``"box"``.
        region: A key of :data:`REGIONS` (default ``"union"``).
        margin: Voxels added on every side by ``"box"`` (default 5).
        spacing_mm: Voxel spacing (z, y, x) in mm; needed by ``"reference"``.
        margin_mm: Dilation of ``"reference"`` in mm (default :data:`MARGIN_MM`): a voxel is kept when
            its centre lies within ``margin_mm`` of the centre of a reference organ voxel.

    Returns:
        bool (z, y, x).

    Raises:
        ValueError: unknown region, missing uncertainty or spacing, bad shapes or dtypes, negative margin.
    """
    if region not in REGIONS:
        raise ValueError(f"unknown region {region!r}; valid regions: {', '.join(REGIONS)}")
    pred = _volume(labels_pred, "labels_pred", "iu")
    ref = _volume(labels_ref, "labels_ref", "iu")
    _same_shape(labels_pred=pred, labels_ref=ref)
    if region == "reference":
        return _dilated_reference(ref > 0, spacing_mm, margin_mm)
    if region == "all":
        return np.ones(pred.shape, dtype=bool)
    keep = (pred > 0) | (ref > 0)
    if region == "foreground":
        return keep
    if uncertainty is None:
        raise ValueError(f"region={region!r} needs the uncertainty map")
    unc = _volume(uncertainty, "uncertainty", "f")
    _same_shape(labels_pred=pred, uncertainty=unc)
    keep |= unc > 0
    if region == "union":
        return keep
    if isinstance(margin, bool) or not isinstance(margin, int) or margin < 0:
        raise ValueError(f"margin={margin!r} must be an integer >= 0 (voxels)")
    box = np.zeros(pred.shape, dtype=bool)
    found = ndimage.find_objects(keep.view(np.uint8))
    if found:
        box[tuple(slice(max(s.start - margin, 0), s.stop + margin) for s in found[0])] = True
    return box


def _dilated_reference(organs: np.ndarray, spacing_mm: Sequence[float] | None,
                       margin_mm: float) -> np.ndarray:
    """``organs`` grown by ``margin_mm`` (Euclidean distance in mm), computed inside its padded box."""
    if spacing_mm is None:
        raise ValueError("region='reference' needs spacing_mm (z, y, x) to dilate by a margin in mm")
    spacing = np.asarray(spacing_mm, dtype=float)
    if spacing.shape != (3,) or not (np.isfinite(spacing).all() and (spacing > 0).all()):
        raise ValueError(f"spacing_mm must be three positive numbers (z, y, x), got {spacing_mm!r}")
    if not (math.isfinite(margin_mm) and margin_mm >= 0):
        raise ValueError(f"margin_mm={margin_mm!r} must be a finite number >= 0")
    out = np.zeros(organs.shape, dtype=bool)
    found = ndimage.find_objects(organs.view(np.uint8))
    if not found:
        return out
    pad = np.ceil(margin_mm / spacing).astype(int)
    box = tuple(slice(max(s.start - p, 0), s.stop + p) for s, p in zip(found[0], pad, strict=True))
    distance = ndimage.distance_transform_edt(~organs[box], sampling=spacing)
    out[box] = distance <= margin_mm
    return out


def error_rate_by_level(
    vote_entropy: np.ndarray,
    labels_pred: np.ndarray,
    labels_ref: np.ndarray,
    mask: np.ndarray | None = None,
    region: str = "union",
    decimals: int = 4,
) -> pd.DataFrame:
    """Error rate of the fused labels at each uncertainty level (one case).

    Args:
        vote_entropy: Uncertainty, float (z, y, x), nats (any map works; values are rounded).
        labels_pred: Fused labels, integer (z, y, x).
        labels_ref: Reference labels, integer (z, y, x).
        mask: bool (z, y, x) region to count; if given, replaces ``region``.
        region: :func:`region_mask` region when no mask is given (default ``"union"``, margin 5 for "box").
        decimals: Levels are the distinct values rounded to this many decimals (default 4).

    Returns:
        DataFrame with columns ``level`` (float, ascending), ``n_voxels``, ``n_errors`` (int; error =
        fused label != reference), ``error_rate`` (= n_errors / n_voxels); one row per level present.

    Raises:
        ValueError: bad shapes or dtypes, unknown region.
    """
    unc = _volume(vote_entropy, "vote_entropy", "f")
    pred = _volume(labels_pred, "labels_pred", "iu")
    ref = _volume(labels_ref, "labels_ref", "iu")
    _same_shape(vote_entropy=unc, labels_pred=pred, labels_ref=ref)
    keep = region_mask(pred, ref, unc, region) if mask is None else mask_or_all(mask, unc.shape)
    levels, inverse = np.unique(np.round(unc[keep].astype(np.float64), decimals), return_inverse=True)
    n_voxels = np.bincount(inverse, minlength=levels.size)
    n_errors = np.bincount(inverse, weights=(pred[keep] != ref[keep]), minlength=levels.size).astype(np.int64)
    return _level_frame(levels, n_voxels, n_errors)


def _level_frame(levels: np.ndarray, n_voxels: np.ndarray, n_errors: np.ndarray) -> pd.DataFrame:
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = n_errors / n_voxels
    return pd.DataFrame({"level": np.asarray(levels, dtype=float), "n_voxels": n_voxels.astype(np.int64),
                         "n_errors": n_errors.astype(np.int64), "error_rate": rate.astype(float)})


def accumulate_levels(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Sum per-case tables of :func:`error_rate_by_level` level by level (pooled error rates).

    Returns:
        The same columns as :func:`error_rate_by_level`, levels ascending; empty when no frame is given.
    """
    frames = [f for f in frames if len(f)]
    if not frames:
        return _level_frame(np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.int64))
    for frame in frames:
        missing = [c for c in LEVEL_COLUMNS[:3] if c not in frame.columns]
        if missing:
            raise ValueError(f"a level table lacks column(s) {missing}")
    total = pd.concat(frames).groupby("level", sort=True)[["n_voxels", "n_errors"]].sum()
    return _level_frame(total.index.to_numpy(), total["n_voxels"].to_numpy(), total["n_errors"].to_numpy())


def spearman_level_error(frame: pd.DataFrame, min_voxels: int = 1) -> SpearmanResult:
    """Spearman correlation of uncertainty level and error rate, **unweighted** over levels.

    Every level with at least ``min_voxels`` voxels counts once, whatever its size (the paper's
    question is whether the error rate rises with the level; weighting by voxels would let level 0,
    which holds most voxels, dominate). With 6 members there are at most about 10 levels, so the
    p-value is rough.

    Args:
        frame: Table of :func:`error_rate_by_level` / :func:`accumulate_levels`.
        min_voxels: Levels with fewer voxels are left out (their rates are noise). Default 1.

    Returns:
        A :class:`SpearmanResult` (NaN rho with fewer than 3 levels).
    """
    kept = frame[frame["n_voxels"] >= min_voxels]
    return _spearman(kept["level"].to_numpy(), kept["error_rate"].to_numpy())


# ------------------------------------------------------------------------------------------ AUROC
def _auroc_counts(positives: np.ndarray, negatives: np.ndarray) -> float:
    """AUROC from per-score counts of positives and negatives, scores ascending (ties count 1/2).

    Mann-Whitney: ``AUC = U / (P N)`` with ``U = sum over positives of (negatives below + half the
    negatives tied)``; equal to the rank-sum formula with average ranks for ties.
    """
    positives, negatives = np.asarray(positives, dtype=float), np.asarray(negatives, dtype=float)
    n_pos, n_neg = positives.sum(), negatives.sum()
    if n_pos == 0 or n_neg == 0:
        return math.nan
    below = np.cumsum(negatives) - negatives
    return float(np.sum(positives * (below + 0.5 * negatives)) / (n_pos * n_neg))


def error_detection_auroc(
    uncertainty: np.ndarray, errors_mask: np.ndarray, mask: np.ndarray | None = None
) -> float:
    """ROC AUC of the uncertainty as a detector of voxel errors (Mann-Whitney U, ties count 1/2).

    The probability that a random erroneous voxel has higher uncertainty than a random correct one
    (0.5 = no information, 1 = perfect ranking).

    Args:
        uncertainty: float array, any shape (e.g. (z, y, x) vote entropy).
        errors_mask: bool array, same shape: True where the fused label is wrong.
        mask: Optional bool array, same shape: voxels to count (e.g. :func:`region_mask`). Default all.

    Returns:
        AUROC in [0, 1]; NaN when the counted voxels hold no error or no correct voxel.

    Raises:
        ValueError: shapes differ or dtypes are wrong.

    Example:
        >>> error_detection_auroc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([False, False, True, True]))
        0.75
    """
    unc, err = np.asarray(uncertainty), np.asarray(errors_mask)
    if unc.dtype.kind not in "fiu" or err.dtype != bool or unc.shape != err.shape:
        raise ValueError(f"uncertainty (numbers) and errors_mask (bool) must have the same shape, got "
                         f"{unc.dtype} {unc.shape} and {err.dtype} {err.shape}")
    keep = mask_or_all(mask, unc.shape)
    values, inverse = np.unique(unc[keep], return_inverse=True)
    positives = np.bincount(inverse, weights=err[keep], minlength=values.size)
    negatives = np.bincount(inverse, minlength=values.size) - positives
    return _auroc_counts(positives, negatives)


def auroc_from_levels(frame: pd.DataFrame) -> float:
    """Error-detection AUROC of the (rounded) uncertainty from a level table, pooled over its cases."""
    frame = frame.sort_values("level")
    errors = frame["n_errors"].to_numpy(dtype=float)
    return _auroc_counts(errors, frame["n_voxels"].to_numpy(dtype=float) - errors)


# -------------------------------------------------------------------------------------- organ flag
def organ_uncertainty_frame(per_case: Mapping[str, Mapping[str, float]]) -> pd.DataFrame:
    """Long table from ``{case: organ_uncertainty(labels, unc)}`` (see
    :func:`sepnet_core.inference.uncertainty.organ_uncertainty`).

    Returns:
        DataFrame with columns ``case``, ``organ`` (key), ``uncertainty`` (mean inside the predicted
        organ, NaN when not predicted), one row per case and organ.
    """
    rows = [(case, organ, float(value))
            for case, organs in per_case.items() for organ, value in organs.items()]
    return pd.DataFrame(rows, columns=["case", "organ", "uncertainty"])


def organ_uncertainty_vs_dice(
    per_case_organ_unc: pd.DataFrame, per_case_organ_dice: pd.DataFrame
) -> pd.DataFrame:
    """Join organ mean uncertainty and Dice per (case, organ).

    Args:
        per_case_organ_unc: Columns ``case``, ``organ`` (key), ``uncertainty``
            (:func:`organ_uncertainty_frame`).
        per_case_organ_dice: Columns ``case``, ``organ``, ``dice``
            (:func:`sepnet_core.metrics.evaluate_case` of the fused labels, concatenated over cases);
            one row per (case, organ).

    Returns:
        DataFrame with columns ``case``, ``organ``, ``label``, ``uncertainty``, ``dice``; only rows where
        both are defined (an organ that was not predicted has no mean uncertainty and is left out).

    Raises:
        ValueError: missing columns, duplicate (case, organ) rows, or unknown organ keys.
    """
    for name, frame, column in (("per_case_organ_unc", per_case_organ_unc, "uncertainty"),
                                ("per_case_organ_dice", per_case_organ_dice, "dice")):
        missing = [c for c in ("case", "organ", column) if c not in frame.columns]
        if missing:
            raise ValueError(f"{name} lacks column(s) {missing}")
        if frame.duplicated(["case", "organ"]).any():
            raise ValueError(f"{name} has several rows for the same (case, organ)")
    joined = per_case_organ_unc[["case", "organ", "uncertainty"]].merge(
        per_case_organ_dice[["case", "organ", "dice"]], on=["case", "organ"], how="inner")
    joined["label"] = [organ_by_key(k).label for k in joined["organ"]]
    defined = np.isfinite(joined["uncertainty"].astype(float)) & np.isfinite(joined["dice"].astype(float))
    joined = joined[defined]
    return joined[["case", "organ", "label", "uncertainty", "dice"]].reset_index(drop=True)


def spearman_uncertainty_dice(frame: pd.DataFrame) -> SpearmanResult:
    """Spearman correlation of organ mean uncertainty and Dice over all (case, organ) rows of
    :func:`organ_uncertainty_vs_dice`; a useful flag has a clearly negative rho."""
    return _spearman(frame["uncertainty"].to_numpy(), frame["dice"].to_numpy())


def flag_auroc(frame: pd.DataFrame, dice_below: float = 0.7) -> float:
    """AUROC of organ mean uncertainty as a detector of poor organs (Dice < ``dice_below``).

    Args:
        frame: Table of :func:`organ_uncertainty_vs_dice`.
        dice_below: Dice under which an organ counts as poor (default 0.7, our choice).

    Returns:
        AUROC in [0, 1]; NaN when all organs are poor or none is.
    """
    poor = frame["dice"].to_numpy(dtype=float) < dice_below
    return error_detection_auroc(frame["uncertainty"].to_numpy(dtype=float), poor)


def reference_flag_table(frame: pd.DataFrame, reference: Mapping[str, Any], dice_below: float = 0.7
                         ) -> pd.DataFrame:
    """How well the ``sepnet predict --statistics`` flag (organ uncertainty above its reference threshold)
    finds poor organs on held-out cases.

    Args:
        frame: Table of :func:`organ_uncertainty_vs_dice` (held-out cases: not those the reference
            thresholds were computed on).
        reference: :func:`sepnet_core.clinical.statistics.uncertainty_reference` result; organs without
            a threshold are not counted.
        dice_below: Dice under which an organ counts as poor.

    Returns:
        One-row DataFrame: ``n`` (case-organ rows with a threshold), ``n_flagged``, ``n_poor``,
        ``poor_flagged`` (true positives), ``sensitivity`` (flagged share of the poor), ``specificity``
        (unflagged share of the good), ``precision`` (poor share of the flagged),
        ``dice_flagged`` and ``dice_unflagged`` (mean Dice of each group); NaN where undefined.
    """
    thresholds = {k: v.get("threshold") for k, v in reference.get("organs", {}).items()}
    rows = frame[[thresholds.get(k) is not None for k in frame["organ"]]]
    limit = np.array([thresholds[k] for k in rows["organ"]], dtype=float)
    flagged = rows["uncertainty"].to_numpy(dtype=float) > limit
    dice_values = rows["dice"].to_numpy(dtype=float)
    poor = dice_values < dice_below

    def share(part: np.ndarray, whole: np.ndarray) -> float:
        return float(part.sum() / whole.sum()) if whole.sum() else math.nan

    def mean(values: np.ndarray) -> float:
        return float(values.mean()) if values.size else math.nan

    return pd.DataFrame([{
        "n": int(len(rows)), "n_flagged": int(flagged.sum()), "n_poor": int(poor.sum()),
        "poor_flagged": int((flagged & poor).sum()),
        "sensitivity": share(flagged & poor, poor), "specificity": share(~flagged & ~poor, ~poor),
        "precision": share(flagged & poor, flagged),
        "dice_flagged": mean(dice_values[flagged]), "dice_unflagged": mean(dice_values[~flagged]),
    }])

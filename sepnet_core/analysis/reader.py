"""What a reader of the paper expects to see: the final ensemble's per-organ table, its headline scores
beside the paper's, and the slices to draw predictions on (the figures are in
:mod:`sepnet_core.analysis.plots`).

* :func:`organ_report`: per organ, Dice, HD95 (misses skipped, and misses at the image-diagonal
  penalty of :mod:`sepnet_core.metrics`), missed instances and volume error, over the test cases.
* :func:`headline_table`: our weighted Dice and HD95 beside the paper's hidden-test-set figures and the
  public leaderboard's (``shared/paper.md``); the paper reports no per-organ figures, so only the
  weighted scores have a paper value. Ours are on other data (the phantom or a local split) and are
  not comparable; the table says so.
* :func:`reference_slices`: three views chosen from the *reference* labels alone (so every arm is drawn
  on the same slices): axial through the eyes, axial through the parotids, sagittal through the brain
  stem and spinal cord.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sepnet_core.analysis._common import check_table
from sepnet_core.analysis.paper_numbers import PAPER_NUMBERS
from sepnet_core.metrics import weighted_average
from sepnet_core.organs import ORGANS, importance_weights, organ_by_key

__all__ = ["SliceView", "headline_table", "organ_report", "reference_slices", "take_slice"]


def _config_rows(table: pd.DataFrame, config: str) -> pd.DataFrame:
    table = check_table(table)
    rows = table[table["config"] == config]
    if rows.empty:
        raise ValueError(f"config {config!r} not in the table; configs present: "
                         f"{list(dict.fromkeys(table['config']))}")
    return rows


def organ_report(table: pd.DataFrame, config: str = "ensemble") -> pd.DataFrame:
    """Per-organ scores of one configuration over its test cases (and seeds).

    Args:
        table: Long evaluation table (columns of :mod:`sepnet_core.analysis.comparison`, plus
            ``volume_ref_ml`` and ``volume_pred_ml``; ``missed`` and ``hd95_penalized`` when present).
        config: The configuration to report (default ``"ensemble"``).

    Returns:
        DataFrame indexed by organ key (22 rows, label order) with columns ``weight``, ``n`` (rows with a
        Dice), ``dice_mean``, ``dice_std``, ``hd95_mean`` (mm, misses skipped), ``n_missed``,
        ``hd95_penalized_mean`` (mm, misses at the penalty; NaN when the table lacks the column),
        ``volume_ref_ml``, ``volume_pred_ml`` (means) and ``volume_error_pct`` (mean over rows of
        ``100 (pred - ref) / ref``, rows with a reference).

    Raises:
        ValueError: unknown config or missing volume columns, plus the table checks.
    """
    rows = _config_rows(table, config)
    missing = [c for c in ("volume_ref_ml", "volume_pred_ml") if c not in rows.columns]
    if missing:
        raise ValueError(f"table lacks column(s) {missing}")
    labels = rows["label"].astype(int).to_numpy()
    hd = rows["hd95"].astype(float).replace([np.inf, -np.inf], np.nan)
    ref, pred = rows["volume_ref_ml"].astype(float), rows["volume_pred_ml"].astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        vol_err = (100.0 * (pred - ref) / ref).where(ref > 0)
    missed = (rows["missed"].astype(bool) if "missed" in rows.columns
              else np.isinf(rows["hd95"].astype(float)) & (pred == 0) & (ref > 0))
    penalized = rows["hd95_penalized"].astype(float) if "hd95_penalized" in rows.columns else hd * np.nan
    frame = pd.DataFrame({"dice": rows["dice"].astype(float).to_numpy(), "hd95": hd.to_numpy(),
                          "missed": np.asarray(missed, dtype=float), "penalized": penalized.to_numpy(),
                          "ref": ref.to_numpy(), "pred": pred.to_numpy(), "vol_err": vol_err.to_numpy()},
                         index=labels)
    groups = frame.groupby(level=0)
    out = pd.DataFrame(index=pd.Index([o.label for o in ORGANS]))
    out["weight"] = importance_weights()
    out["n"] = groups["dice"].count()
    for name, column, how in (("dice_mean", "dice", "mean"), ("dice_std", "dice", "std"),
                              ("hd95_mean", "hd95", "mean"), ("n_missed", "missed", "sum"),
                              ("hd95_penalized_mean", "penalized", "mean"), ("volume_ref_ml", "ref", "mean"),
                              ("volume_pred_ml", "pred", "mean"), ("volume_error_pct", "vol_err", "mean")):
        out[name] = getattr(groups[column], how)()
    out[["n", "n_missed"]] = out[["n", "n_missed"]].fillna(0).astype(int)
    out.index = pd.Index([o.key for o in ORGANS], name="organ")
    return out


def headline_table(table: pd.DataFrame, config: str = "ensemble", data: str = "phantom") -> pd.DataFrame:
    """Our weighted scores beside the paper's and the leaderboard's (numbers of ``shared/paper.md``).

    Args:
        table: Long evaluation table.
        config: The configuration (default ``"ensemble"``).
        data: What ours were measured on (``"phantom"`` or ``"structseg"``), written into the table.

    Returns:
        DataFrame indexed by score (``weighted Dice``, ``weighted HD95, misses skipped (mm)``,
        ``weighted HD95, misses at the penalty (mm)``, ``missed organ instances``) with columns ``ours``,
        ``paper (hidden test set)``, ``leaderboard 1st``, ``leaderboard nnU-Net``, ``leaderboard 3rd``
        (NaN where no figure exists) and ``ours measured on``.
    """
    rows = _config_rows(table, config)
    n = PAPER_NUMBERS
    penalized = (weighted_average(rows, "hd95_penalized") if "hd95_penalized" in rows.columns else math.nan)
    missed = int(rows["missed"].astype(bool).sum()) if "missed" in rows.columns else math.nan
    nan = math.nan
    out = pd.DataFrame(
        [[weighted_average(rows, "dice"), n["test_weighted_dice"].value, n["top_weighted_dice"].value,
          n["nnunet_weighted_dice"].value, n["leaderboard_weighted_dice_3"].value],
         [weighted_average(rows, "hd95", on_inf="skip"), n["test_weighted_hd95"].value, nan, nan, nan],
         [penalized, nan, nan, nan, nan],
         [missed, nan, nan, nan, nan]],
        index=pd.Index(["weighted Dice", "weighted HD95, misses skipped (mm)",
                        "weighted HD95, misses at the penalty (mm)", "missed organ instances"], name="score"),
        columns=["ours", "paper (hidden test set)", "leaderboard 1st", "leaderboard nnU-Net",
                 "leaderboard 3rd"])
    out["ours measured on"] = "real StructSeg data, local split" if data == "structseg" else "the phantom"
    return out


@dataclass(frozen=True)
class SliceView:
    """One view to draw: ``axis`` 0 (axial, a z index) or 2 (sagittal, an x index), and its ``index``."""

    name: str
    axis: int
    index: int

    @property
    def title(self) -> str:
        """E.g. ``"axial through the eyes (z=31)"``."""
        return f"{self.name} ({'zyx'[self.axis]}={self.index})"


_EYES = ("eye_l", "eye_r")
_PAROTIDS = ("parotid_l", "parotid_r")
_MIDLINE = ("brain_stem", "spinal_cord")


def _labels(keys: tuple[str, ...]) -> list[int]:
    return [organ_by_key(k).label for k in keys]


def _busiest(ref: np.ndarray, labels: list[int], axis: int) -> int:
    """Index along ``axis`` with the most voxels of ``labels`` (of any organ when none is present)."""
    mask = np.isin(ref, labels)
    if not mask.any():
        mask = ref > 0
    other = tuple(a for a in range(3) if a != axis)
    return int(np.argmax(mask.sum(axis=other)))


def reference_slices(labels_ref: np.ndarray) -> list[SliceView]:
    """The three views of the reader's figure, chosen from the reference labels.

    Axial through the eyes: the z slice with the most eye voxels; axial through the parotids: the z slice
    with the most parotid voxels; sagittal: the x column at the centroid of the brain stem and spinal cord
    (the midline). An organ group absent from the reference falls back to all organs.

    Args:
        labels_ref: Reference labels, integer (z, y, x), 0..22.

    Returns:
        Three :class:`SliceView`.

    Raises:
        ValueError: not a 3-D integer array, or no organ at all.
    """
    ref = np.asarray(labels_ref)
    if ref.ndim != 3 or ref.dtype.kind not in "iu":
        raise ValueError(f"labels_ref must be a 3-D integer (z, y, x) array, got {ref.dtype} {ref.shape}")
    if not (ref > 0).any():
        raise ValueError("labels_ref holds no organ: no slice to choose")
    midline = np.isin(ref, _labels(_MIDLINE))
    if not midline.any():
        midline = ref > 0
    x = int(round(float(np.nonzero(midline)[2].mean())))
    return [SliceView("axial through the eyes", 0, _busiest(ref, _labels(_EYES), 0)),
            SliceView("axial through the parotids", 0, _busiest(ref, _labels(_PAROTIDS), 0)),
            SliceView("sagittal through the midline", 2, x)]


def take_slice(volume: np.ndarray, view: SliceView) -> np.ndarray:
    """The 2-D slice of a (z, y, x) volume for ``view``, oriented for display: axial as stored (y down);
    sagittal with superior (high z) at the top, i.e. rows ``z`` reversed, columns ``y``."""
    volume = np.asarray(volume)
    if view.axis == 0:
        return volume[view.index]
    return volume[:, :, view.index][::-1]

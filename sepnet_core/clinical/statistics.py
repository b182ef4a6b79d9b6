"""Per-organ statistics of a segmentation, and the high-uncertainty flag against held-out reference data.

For each of the 22 organs: voxel count, volume (cm3), mean CT value (HU) and mean uncertainty (nats)
inside the predicted organ. The flag marks an organ whose mean uncertainty is above what the same
ensemble showed on held-out cases: the reference threshold of an organ is a high quantile (default the
90th percentile) of its per-case mean uncertainty over held-out cases
(:func:`uncertainty_reference`, computed by the book's ensemble stage and saved with
:func:`save_uncertainty_reference`). By construction about 10 % of held-out organs are flagged; the book
shows how well the flag picks out organs with low Dice. Without a reference, or with one made for
another uncertainty measure or ensemble size (vote entropy depends on the number of members), the flag
is ``null`` and the output says why.

Two files are written by :func:`write_statistics` (``sepnet predict --statistics``):
``organ_statistics.json`` (:func:`organ_statistics`: everything above) and ``statistics.json`` in
TotalSegmentator's ``--statistics`` schema (:func:`totalsegmentator_statistics`): one entry per organ
key with ``volume`` (mm3) and ``intensity`` (mean HU), the two fields both tools compute, so scripts
written for TotalSegmentator's output read ours unchanged.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sepnet_core.errors import SepNetInputError
from sepnet_core.fileio import write_json_atomic
from sepnet_core.organs import NUM_CLASSES, ORGANS, organ_by_key

__all__ = ["REFERENCE_FORMAT", "DEFAULT_QUANTILE", "DEFAULT_MIN_CASES", "STATISTICS_NAME",
           "ORGAN_STATISTICS_NAME", "organ_statistics", "totalsegmentator_statistics", "write_statistics",
           "uncertainty_reference", "save_uncertainty_reference", "load_uncertainty_reference"]

REFERENCE_FORMAT = "sepnet-uncertainty-reference"
"""Value of the ``format`` key of a reference file (version 1)."""
DEFAULT_QUANTILE = 0.9
DEFAULT_MIN_CASES = 5
STATISTICS_NAME = "statistics.json"
"""File name of :func:`totalsegmentator_statistics` (TotalSegmentator's name for the same content)."""
ORGAN_STATISTICS_NAME = "organ_statistics.json"
"""File name of :func:`organ_statistics` (voxels, cm3, HU, uncertainty and its flag)."""
_CHUNK_Z = 16


# ------------------------------------------------------------------------------------------ reference
def uncertainty_reference(
    table: Any,
    *,
    quantile: float = DEFAULT_QUANTILE,
    column: str = "mean_uncertainty",
    min_cases: int = DEFAULT_MIN_CASES,
    uncertainty_kind: str | None = None,
    num_members: int | None = None,
    source: str = "",
) -> dict[str, Any]:
    """Per-organ thresholds of the high-uncertainty flag from held-out per-case organ uncertainty.

    Args:
        table: pandas DataFrame with a column ``organ`` (organ key) and ``column``: the mean uncertainty
            inside the predicted organ of one held-out case (one row per case and organ; NaN rows, where
            the organ was not predicted, are ignored).
        quantile: Quantile of each organ's values used as its threshold, in (0, 1). Default 0.9.
        column: Name of the uncertainty column (the book's ensemble table calls it ``uncertainty``).
        min_cases: Fewest cases an organ needs for a threshold; below it the threshold is None.
        uncertainty_kind: "vote_entropy" or "predictive_entropy", recorded so that a prediction with
            another measure is not compared with these thresholds.
        num_members: Ensemble size the values were computed with (vote entropy depends on it).
        source: Free text stored with the reference (e.g. the results file it came from).

    Returns:
        JSON-able dict ``{"format", "version", "quantile", "min_cases", "uncertainty_kind",
        "num_members", "source", "organs": {key: {"threshold": float | None, "n_cases": int}}}``
        with an entry for every organ of the table.

    Raises:
        ValueError: missing columns, an unknown organ key, or arguments out of range.
    """
    if not 0.0 < float(quantile) < 1.0:
        raise ValueError(f"quantile={quantile!r} must lie in (0, 1)")
    if isinstance(min_cases, bool) or not isinstance(min_cases, int) or min_cases < 1:
        raise ValueError(f"min_cases={min_cases!r} must be an integer >= 1")
    missing = [c for c in ("organ", column) if c not in getattr(table, "columns", ())]
    if missing:
        raise ValueError(f"table lacks column(s) {missing}; it needs 'organ' and {column!r}")
    organs: dict[str, dict[str, Any]] = {}
    for key, values in table.groupby("organ", sort=False)[column]:
        organ_by_key(str(key))  # raises ValueError listing the valid keys
        finite = values.to_numpy(dtype=np.float64)
        finite = finite[np.isfinite(finite)]
        threshold = float(np.quantile(finite, quantile)) if finite.size >= min_cases else None
        organs[str(key)] = {"threshold": threshold, "n_cases": int(finite.size)}
    order = {o.key: o.label for o in ORGANS}
    return {"format": REFERENCE_FORMAT, "version": 1, "quantile": float(quantile), "min_cases": min_cases,
            "uncertainty_kind": uncertainty_kind, "num_members": num_members, "source": source,
            "organs": dict(sorted(organs.items(), key=lambda item: order[item[0]]))}


def save_uncertainty_reference(path: str | os.PathLike[str], reference: Mapping[str, Any],
                               overwrite: bool = False) -> Path:
    """Write a reference of :func:`uncertainty_reference` as JSON (atomically)."""
    return write_json_atomic(path, dict(reference), overwrite=overwrite)


def load_uncertainty_reference(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check a reference file written by :func:`save_uncertainty_reference`.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        SepNetInputError: not JSON, another format or version, an unknown organ key or a bad threshold.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: uncertainty reference file does not exist")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SepNetInputError(f"{path}: not a JSON file ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != REFERENCE_FORMAT or data.get("version") != 1:
        raise SepNetInputError(f"{path}: not an uncertainty reference (needs \"format\": "
                               f"\"{REFERENCE_FORMAT}\", \"version\": 1)")
    organs = data.get("organs")
    if not isinstance(organs, dict):
        raise SepNetInputError(f"{path}: \"organs\" must map organ keys to thresholds")
    for key, entry in organs.items():
        try:
            organ_by_key(key)
        except ValueError:
            raise SepNetInputError(f"{path}: unknown organ key {key!r}") from None
        threshold = entry.get("threshold") if isinstance(entry, dict) else "missing"
        if threshold is not None and not (isinstance(threshold, (int, float)) and math.isfinite(threshold)):
            raise SepNetInputError(f"{path}: organ {key!r} has threshold {threshold!r}; need a number or "
                                   "null")
    return data


def _reference_problem(
    reference: Mapping[str, Any] | None, kind: str | None, members: int | None
) -> str | None:
    """Why the reference cannot be used for this prediction, or None if it can."""
    if reference is None:
        return "no uncertainty reference given (predict --uncertainty-reference FILE.json)"
    ref_kind, ref_members = reference.get("uncertainty_kind"), reference.get("num_members")
    if ref_kind is not None and kind is not None and ref_kind != kind:
        return f"the reference was computed with {ref_kind}, this prediction uses {kind}"
    if ref_members is not None and members is not None and int(ref_members) != int(members):
        return f"the reference comes from an ensemble of {ref_members}, this prediction used {members}"
    return None


# ------------------------------------------------------------------------------------------ statistics
def organ_statistics(
    labels: np.ndarray,
    image_hu: np.ndarray,
    uncertainty: np.ndarray,
    spacing_mm: Sequence[float],
    *,
    reference: Mapping[str, Any] | None = None,
    uncertainty_kind: str | None = None,
    num_members: int | None = None,
) -> dict[str, Any]:
    """Volume, mean HU, mean uncertainty and the high-uncertainty flag of each organ.

    Args:
        labels: (z, y, x) integer labels 0..22.
        image_hu: (z, y, x) CT in HU, same grid.
        uncertainty: (z, y, x) uncertainty in nats, same grid.
        spacing_mm: Voxel spacing (z, y, x) in mm.
        reference: A reference of :func:`uncertainty_reference` (or None: flags are null).
        uncertainty_kind: Measure of ``uncertainty`` ("vote_entropy" or "predictive_entropy").
        num_members: Ensemble size of the prediction.

    Returns:
        JSON-able dict: ``units``, ``uncertainty_kind``, ``flag`` (``rule``, ``reference`` settings or
        null, ``note``: why flags are null, else null) and ``organs``: per organ key ``label``, ``name``,
        ``voxels``, ``volume_cm3``, ``mean_hu``, ``mean_uncertainty`` (null when not predicted),
        ``uncertainty_threshold`` and ``high_uncertainty`` (true/false, or null when there is no usable
        threshold or the organ was not predicted).

    Raises:
        ValueError: shapes differ, labels are not integers in 0..22, or the spacing is not 3 positive mm.
    """
    labels, image_hu, uncertainty = np.asarray(labels), np.asarray(image_hu), np.asarray(uncertainty)
    if labels.ndim != 3 or labels.shape != image_hu.shape or labels.shape != uncertainty.shape:
        raise ValueError(f"labels {labels.shape}, image_hu {image_hu.shape} and uncertainty "
                         f"{uncertainty.shape} must be (z, y, x) arrays of one shape")
    if labels.dtype.kind not in "iu":
        raise ValueError(f"labels must have an integer dtype, got {labels.dtype}")
    spacing = tuple(float(s) for s in spacing_mm)
    if len(spacing) != 3 or not all(math.isfinite(s) and s > 0 for s in spacing):
        raise ValueError(f"spacing_mm={tuple(spacing_mm)!r} must be 3 positive numbers (z, y, x) in mm")
    counts = np.zeros(NUM_CLASSES, dtype=np.int64)
    hu_sum = np.zeros(NUM_CLASSES, dtype=np.float64)
    unc_sum = np.zeros(NUM_CLASSES, dtype=np.float64)
    for z0 in range(0, labels.shape[0], _CHUNK_Z):
        lab = labels[z0:z0 + _CHUNK_Z].ravel()
        if lab.size and (lab.min() < 0 or lab.max() >= NUM_CLASSES):
            raise ValueError(f"labels has values in [{lab.min()}, {lab.max()}]; need 0..{NUM_CLASSES - 1}")
        counts += np.bincount(lab, minlength=NUM_CLASSES)
        hu_sum += np.bincount(lab, weights=image_hu[z0:z0 + _CHUNK_Z].ravel(), minlength=NUM_CLASSES)
        unc_sum += np.bincount(lab, weights=uncertainty[z0:z0 + _CHUNK_Z].ravel(), minlength=NUM_CLASSES)
    voxel_cm3 = float(np.prod(spacing)) / 1000.0
    problem = _reference_problem(reference, uncertainty_kind, num_members)
    thresholds = {} if problem else {k: v.get("threshold") for k, v in reference["organs"].items()}
    organs = {}
    for organ in ORGANS:
        n = int(counts[organ.label])
        mean_unc = float(unc_sum[organ.label] / n) if n else None
        threshold = thresholds.get(organ.key)
        organs[organ.key] = {
            "label": organ.label,
            "name": organ.name,
            "voxels": n,
            "volume_cm3": n * voxel_cm3,
            "mean_hu": float(hu_sum[organ.label] / n) if n else None,
            "mean_uncertainty": mean_unc,
            "uncertainty_threshold": threshold,
            "high_uncertainty": (bool(mean_unc > threshold) if mean_unc is not None and threshold is not None
                                 else None),
        }
    keys = ("quantile", "min_cases", "uncertainty_kind", "num_members", "source")
    settings = None if problem else {k: reference.get(k) for k in keys}
    return {
        "units": {"volume_cm3": "cm3", "mean_hu": "HU", "mean_uncertainty": "nats"},
        "uncertainty_kind": uncertainty_kind,
        "flag": {
            "rule": "high_uncertainty is true when the organ's mean uncertainty exceeds its threshold: the "
                    "reference quantile of the same ensemble's per-case organ means on held-out cases",
            "reference": settings,
            "note": problem,
        },
        "organs": organs,
    }


def totalsegmentator_statistics(stats: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """The fields TotalSegmentator's ``statistics.json`` shares with :func:`organ_statistics`.

    TotalSegmentator (``--statistics``) writes one entry per class, ``{name: {"volume": mm3,
    "intensity": mean CT value}}``, with both values 0.0 for a class not segmented. This gives the same
    layout for the 22 organs, keyed by our organ keys (``brain_stem``, ``parotid_l``, ...; TotalSegmentator's
    classes and names differ). Differences: intensity is the mean of the HU values as read (TotalSegmentator
    truncates the CT to int16 first), and organs touching the image border are reported like any other
    (TotalSegmentator reports 0.0 for them by default).

    Args:
        stats: Output of :func:`organ_statistics`.

    Returns:
        ``{organ key: {"volume": float mm3, "intensity": float HU}}`` in label order.
    """
    out = {}
    for key, entry in stats["organs"].items():
        voxels = int(entry["voxels"])
        out[key] = {"volume": float(entry["volume_cm3"]) * 1000.0 if voxels else 0.0,
                    "intensity": float(entry["mean_hu"]) if voxels else 0.0}
    return out


def write_statistics(folder: str | os.PathLike[str], stats: Mapping[str, Any],
                     overwrite: bool = False) -> tuple[Path, Path]:
    """Write :data:`ORGAN_STATISTICS_NAME` (``stats``) and :data:`STATISTICS_NAME` (its
    :func:`totalsegmentator_statistics`) into ``folder``, each atomically.

    Args:
        folder: Existing folder.
        stats: Output of :func:`organ_statistics`.
        overwrite: Replace existing files. Default ``False``.

    Returns:
        The two paths ``(organ_statistics.json, statistics.json)``.

    Raises:
        FileExistsError: a file exists and ``overwrite`` is false.
    """
    folder = Path(folder)
    ours = write_json_atomic(folder / ORGAN_STATISTICS_NAME, dict(stats), overwrite=overwrite)
    theirs = write_json_atomic(folder / STATISTICS_NAME, totalsegmentator_statistics(stats),
                               overwrite=overwrite)
    return ours, theirs

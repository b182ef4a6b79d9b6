"""A registration-free atlas baseline: how far memorising where organs usually lie gets.

Each training label map is placed so that its foreground centroid (all organ voxels) falls on the
test case's foreground centroid; every test voxel takes the label most training maps put there
(voxel majority, nearest-neighbour sampling, background counted as a label, ties to the lower
label). No image intensity is used. ``space="voxel"`` (default) aligns and samples in voxel indices,
as a network sees the data (it is not told the spacing); ``space="mm"`` in millimetres. If a network
scores little above this baseline, the data let it succeed by memorising positions, not by reading
the image: the check the data page runs.

The test case's own centroid is taken from its reference labels (``align="label"``), as in the issue
that asked for the check: an optimistic baseline (it knows where the organs are as a whole).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sepnet_core.metrics import evaluate_case, summarize
from sepnet_core.organs import NUM_CLASSES

__all__ = ["Atlas", "SPACES", "foreground_centroid_mm", "build_atlas", "atlas_predict", "score_atlas",
           "score_atlas_folders"]

SPACES = ("voxel", "mm")
"""Where the atlas aligns and votes: voxel indices (what a network sees) or millimetres."""

UNIT = (1.0, 1.0, 1.0)


def _space(space: str, spacing: Sequence[float]) -> Sequence[float]:
    if space not in SPACES:
        raise ValueError(f"space={space!r} must be one of {SPACES}")
    return UNIT if space == "voxel" else spacing


@dataclass(frozen=True)
class Atlas:
    """Training label maps with their spacing and foreground centroid.

    Attributes:
        labels: Label maps (z, y, x), uint8, values 0..22.
        spacings: Spacing (z, y, x) of each map, mm.
        centroids: Foreground centroid (z, y, x) of each map, mm from voxel 0 (voxels for ``"voxel"``).
        space: ``"voxel"`` (spacings stored as 1) or ``"mm"``.
    """

    labels: tuple[np.ndarray, ...]
    spacings: tuple[tuple[float, float, float], ...]
    centroids: tuple[np.ndarray, ...]
    space: str = "voxel"


def foreground_centroid_mm(label: np.ndarray, spacing_mm: Sequence[float]) -> np.ndarray:
    """Centroid (z, y, x), mm from voxel 0, of all organ voxels (label > 0).

    Raises:
        ValueError: The label map is not 3D, has no organ voxel, or the spacing is not 3 positive numbers.
    """
    label = np.asarray(label)
    spacing = np.asarray(spacing_mm, np.float64)
    if label.ndim != 3:
        raise ValueError(f"label must be 3D (z, y, x), got shape {label.shape}")
    if spacing.shape != (3,) or not (spacing > 0).all():
        raise ValueError(f"spacing_mm must be 3 positive numbers (z, y, x), got {tuple(spacing_mm)}")
    idx = np.argwhere(label > 0)
    if idx.size == 0:
        raise ValueError("label map has no organ voxel; its centroid is undefined")
    return idx.mean(axis=0) * spacing


def build_atlas(cases: Iterable[tuple[np.ndarray, Sequence[float]]], space: str = "voxel") -> Atlas:
    """Atlas from training ``(label, spacing_mm)`` pairs (at least one).

    Args:
        cases: Training label maps (z, y, x) with their spacing (z, y, x), mm.
        space: ``"voxel"`` (spacing ignored: alignment in voxel indices) or ``"mm"``.

    Raises:
        ValueError: No case, an unknown space, or a case as rejected by :func:`foreground_centroid_mm`.
    """
    labels, spacings, centroids = [], [], []
    for label, spacing in cases:
        spacing = _space(space, spacing)
        centroids.append(foreground_centroid_mm(label, spacing))
        labels.append(np.asarray(label, np.uint8))
        spacings.append(tuple(float(s) for s in spacing))
    if not labels:
        raise ValueError("an atlas needs at least one training case")
    return Atlas(tuple(labels), tuple(spacings), tuple(centroids), space)


def _resample(label: np.ndarray, spacing: Sequence[float], centroid: np.ndarray, shape: Sequence[int],
              out_spacing: Sequence[float], out_centroid: np.ndarray) -> np.ndarray:
    """``label`` moved so its centroid lies on ``out_centroid``, sampled (nearest) on the output grid."""
    index = []
    for axis in range(3):
        mm = np.arange(shape[axis]) * out_spacing[axis] - out_centroid[axis] + centroid[axis]
        i = np.rint(mm / spacing[axis]).astype(np.int64)
        index.append(np.where((i >= 0) & (i < label.shape[axis]), i, -1))
    valid = (index[0][:, None, None] >= 0) & (index[1][None, :, None] >= 0) & (index[2][None, None, :] >= 0)
    out = label[np.ix_(np.maximum(index[0], 0), np.maximum(index[1], 0), np.maximum(index[2], 0))]
    return np.where(valid, out, 0).astype(np.uint8)


def atlas_predict(atlas: Atlas, shape: Sequence[int], spacing_mm: Sequence[float],
                  centroid_mm: Sequence[float]) -> np.ndarray:
    """Voxel-majority label map on a test grid.

    Args:
        atlas: From :func:`build_atlas`.
        shape: Test grid (z, y, x) voxels.
        spacing_mm: Test spacing (z, y, x), mm.
        centroid_mm: Where the test case's foreground centroid lies (z, y, x), mm from voxel 0
            (:func:`foreground_centroid_mm` with the true spacing, whatever the atlas's space).

    Returns:
        uint8 (z, y, x) labels 0..22.
    """
    shape = tuple(int(s) for s in shape)
    if atlas.space == "voxel":
        centroid_mm = np.asarray(centroid_mm, np.float64) / np.asarray(spacing_mm, np.float64)
        spacing_mm = UNIT
    votes = np.zeros((NUM_CLASSES, int(np.prod(shape))), np.uint16)
    columns = np.arange(votes.shape[1])
    target = np.asarray(centroid_mm, np.float64)
    for label, spacing, centroid in zip(atlas.labels, atlas.spacings, atlas.centroids, strict=True):
        moved = _resample(label, spacing, centroid, shape, spacing_mm, target)
        votes[moved.ravel(), columns] += 1
    return np.argmax(votes, axis=0).astype(np.uint8).reshape(shape)


def score_atlas(atlas: Atlas, tests: Iterable[tuple[str, np.ndarray, Sequence[float]]]) -> pd.DataFrame:
    """Score the atlas on test cases ``(case_id, reference label, spacing_mm)``.

    Args:
        atlas: From :func:`build_atlas`.
        tests: Test cases; Dice and HD95 are measured with their true spacing.

    Returns:
        The concatenated :func:`sepnet_core.metrics.evaluate_case` tables (22 rows per case).

    Raises:
        ValueError: No test case.
    """
    tables = []
    for case_id, label, spacing in tests:
        pred = atlas_predict(atlas, np.shape(label), spacing, foreground_centroid_mm(label, spacing))
        tables.append(evaluate_case(pred, np.asarray(label), spacing, case_id))
    if not tables:
        raise ValueError("no test case to score the atlas on")
    return pd.concat(tables, ignore_index=True)


def score_atlas_folders(train: Sequence[str | os.PathLike[str]], test: Sequence[str | os.PathLike[str]],
                        space: str = "voxel") -> tuple[pd.DataFrame, dict]:
    """Build the atlas from StructSeg case folders ``train`` and score it on the folders ``test``.

    Returns:
        ``(table, summary)``: per-case, per-organ rows and :func:`sepnet_core.metrics.summarize`.
    """
    from sepnet_core.data.io import read_case

    cases = [read_case(folder, require_label=True) for folder in train]
    atlas = build_atlas(((case.label, case.geometry.spacing_mm) for case in cases), space)
    del cases
    table = score_atlas(atlas, ((c.case_id, c.label, c.geometry.spacing_mm)
                                for c in (read_case(folder, require_label=True) for folder in test)))
    return table, summarize(table)

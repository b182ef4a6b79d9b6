"""Figures of predictions on chosen slices: prediction vs reference for several arms, and the uncertainty
map on the same slices (slices from :func:`sepnet_core.analysis.reader.reference_slices`). Object API
only, like :mod:`sepnet_core.analysis.plots`; the pixel aspect follows the voxel spacing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from sepnet_core.analysis.plots import _grey
from sepnet_core.analysis.reader import SliceView, take_slice
from sepnet_core.organs import NUM_CLASSES, colour_table

__all__ = ["headline_figure", "slice_comparison", "uncertainty_slices"]


def _view_extent(shape: tuple[int, int], view: SliceView, spacing_mm: Sequence[float]) -> tuple:
    """imshow extent (mm) of a slice of ``shape`` so that the pixel aspect follows the voxel spacing."""
    sz, sy, sx = (float(s) for s in spacing_mm)
    rows, cols = shape
    return (0, cols * sx, rows * sy, 0) if view.axis == 0 else (0, cols * sy, 0, rows * sz)


def _contours(ax, labels2d: np.ndarray, extent: tuple, colours: np.ndarray, linestyles: str = "solid",
              linewidths: float = 0.8) -> None:
    for label in np.unique(labels2d):
        if 0 < label < NUM_CLASSES:
            ax.contour(labels2d == label, levels=[0.5], colors=[tuple(colours[label])], linewidths=linewidths,
                       extent=extent, origin="upper", linestyles=linestyles)


def _check_views(image_hu: np.ndarray, others: Sequence[np.ndarray], spacing_mm: Sequence[float]) -> None:
    shapes = {np.shape(image_hu), *(np.shape(o) for o in others)}
    if len(shapes) != 1 or np.ndim(image_hu) != 3:
        raise ValueError(f"image and maps must be (z, y, x) arrays of one shape, got {sorted(shapes)}")
    if len(tuple(spacing_mm)) != 3 or min(float(s) for s in spacing_mm) <= 0:
        raise ValueError(f"spacing_mm must be 3 positive numbers (z, y, x), got {tuple(spacing_mm)}")


def slice_comparison(
    image_hu: np.ndarray,
    labels_ref: np.ndarray,
    arms: Mapping[str, np.ndarray],
    views: Sequence[SliceView],
    spacing_mm: Sequence[float],
    window: tuple[float, float] = (40.0, 400.0),
    title: str | None = None,
) -> Figure:
    """Prediction against reference on a few slices, for several arms side by side.

    One row per view (e.g. :func:`sepnet_core.analysis.reader.reference_slices`), one column for the
    reference and one per arm; organ contours in the colours of :func:`sepnet_core.organs.colour_table`
    over the CT (soft-tissue window), each arm's panel titled with its Dice on that slice.

    Args:
        image_hu: CT (z, y, x) in HU.
        labels_ref: Reference labels (z, y, x).
        arms: ``{name: predicted labels (z, y, x)}``, in column order.
        views: Slices to draw.
        spacing_mm: Voxel spacing (z, y, x), mm: the pixel aspect.
        window: Display (level, width) in HU.
        title: Optional figure title.

    Returns:
        Figure with ``len(views) x (1 + len(arms))`` axes.

    Raises:
        ValueError: shapes differ, no arm or no view, bad spacing.
    """
    if not arms or not views:
        raise ValueError("slice_comparison needs at least one arm and one view")
    _check_views(image_hu, [labels_ref, *arms.values()], spacing_mm)
    colours = colour_table()
    columns = {"reference": labels_ref, **arms}
    fig = Figure(figsize=(2.6 * len(columns), 2.6 * len(views) + 0.4), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(views), len(columns), squeeze=False))
    for row, view in enumerate(views):
        ref2d = take_slice(labels_ref, view)
        grey = _grey(take_slice(image_hu, view).astype(float), window)
        extent = _view_extent(grey.shape, view, spacing_mm)
        for col, (name, labels) in enumerate(columns.items()):
            ax = axes[row, col]
            lab2d = take_slice(labels, view)
            ax.imshow(grey, cmap="gray", vmin=0, vmax=1, extent=extent, interpolation="nearest")
            _contours(ax, lab2d, extent, colours)
            if col == 0:
                ax.set_title(f"reference\n{view.title}", fontsize=8)
            else:
                both = (lab2d > 0) & (lab2d == ref2d)
                total = np.count_nonzero(lab2d > 0) + np.count_nonzero(ref2d > 0)
                score = 2 * np.count_nonzero(both) / total if total else float("nan")
                ax.set_title(f"{name}\nDice on this slice {score:.2f}", fontsize=8)
            ax.set_axis_off()
    if title:
        fig.suptitle(title)
    return fig


def uncertainty_slices(
    image_hu: np.ndarray,
    uncertainty: np.ndarray,
    labels_ref: np.ndarray,
    views: Sequence[SliceView],
    spacing_mm: Sequence[float],
    window: tuple[float, float] = (40.0, 400.0),
    title: str | None = None,
) -> Figure:
    """The uncertainty map on the same slices as :func:`slice_comparison`, reference contours on top.

    Returns:
        Figure with one axes per view and a shared colour bar (nats, 0 to the map's maximum).
    """
    if not views:
        raise ValueError("uncertainty_slices needs at least one view")
    _check_views(image_hu, [uncertainty, labels_ref], spacing_mm)
    colours = colour_table()
    top = max(float(np.max(uncertainty)), 1e-6)
    fig = Figure(figsize=(3.0 * len(views) + 0.8, 3.2), layout="constrained")
    axes = fig.subplots(1, len(views), squeeze=False)[0]
    for ax, view in zip(axes, views, strict=True):
        grey = _grey(take_slice(image_hu, view).astype(float), window)
        extent = _view_extent(grey.shape, view, spacing_mm)
        ax.imshow(grey, cmap="gray", vmin=0, vmax=1, extent=extent, interpolation="nearest")
        unc = np.ma.masked_equal(take_slice(uncertainty, view).astype(float), 0.0)
        heat = ax.imshow(unc, cmap="magma", vmin=0.0, vmax=top, alpha=0.85, extent=extent,
                         interpolation="nearest")
        _contours(ax, take_slice(labels_ref, view), extent, colours)
        ax.set_title(view.title, fontsize=8)
        ax.set_axis_off()
    fig.colorbar(heat, ax=list(axes), shrink=0.8, label="vote entropy (nats)")
    if title:
        fig.suptitle(title)
    return fig


def headline_figure(
    image_hu: np.ndarray,
    labels_ref: np.ndarray,
    labels: np.ndarray,
    uncertainty: np.ndarray,
    views: Sequence[SliceView],
    spacing_mm: Sequence[float],
    window: tuple[float, float] = (40.0, 400.0),
    title: str | None = None,
) -> Figure:
    """One case at a glance: per view, the prediction's contours over the reference's, and its uncertainty.

    Two panels per view, side by side: the CT with the predicted organs' contours (solid) and the
    reference's (dashed, thinner), then the uncertainty map with the predicted contours on top.

    Args:
        image_hu: CT (z, y, x) in HU.
        labels_ref: Reference labels (z, y, x).
        labels: Predicted labels (z, y, x), e.g. the ensemble's.
        uncertainty: Voxel uncertainty (z, y, x), e.g. the ensemble's vote entropy in nats.
        views: Slices to draw (:func:`sepnet_core.analysis.reader.reference_slices`).
        spacing_mm: Voxel spacing (z, y, x), mm: the pixel aspect.
        window: Display (level, width) in HU.
        title: Optional figure title.

    Returns:
        Figure with ``2 x len(views)`` axes and one colour bar (nats).

    Raises:
        ValueError: shapes differ, no view, bad spacing.
    """
    if not views:
        raise ValueError("headline_figure needs at least one view")
    _check_views(image_hu, [labels_ref, labels, uncertainty], spacing_mm)
    colours = colour_table()
    top = max(float(np.max(uncertainty)), 1e-6)
    fig = Figure(figsize=(3.2 * 2 * len(views) + 0.8, 3.6), layout="constrained")
    axes = fig.subplots(1, 2 * len(views), squeeze=False)[0]
    heat = None
    for index, view in enumerate(views):
        grey = _grey(take_slice(image_hu, view).astype(float), window)
        extent = _view_extent(grey.shape, view, spacing_mm)
        pred2d = take_slice(labels, view)
        left, right = axes[2 * index], axes[2 * index + 1]
        for ax in (left, right):
            ax.imshow(grey, cmap="gray", vmin=0, vmax=1, extent=extent, interpolation="nearest")
            ax.set_axis_off()
        _contours(left, take_slice(labels_ref, view), extent, colours, linestyles="dashed", linewidths=0.6)
        _contours(left, pred2d, extent, colours)
        left.set_title(f"{view.title}\nprediction (solid), reference (dashed)", fontsize=8)
        unc = np.ma.masked_equal(take_slice(uncertainty, view).astype(float), 0.0)
        heat = right.imshow(unc, cmap="magma", vmin=0.0, vmax=top, alpha=0.85, extent=extent,
                            interpolation="nearest")
        _contours(right, pred2d, extent, colours, linewidths=0.5)
        right.set_title(f"{view.title}\nuncertainty", fontsize=8)
    fig.colorbar(heat, ax=list(axes), shrink=0.8, label="vote entropy (nats)")
    if title:
        fig.suptitle(title)
    return fig

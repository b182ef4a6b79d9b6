"""A preview picture of a segmentation: axial, coronal and sagittal slices with labels and uncertainty.

Two rows of three panels through the centre of the predicted organs (the mean position of all organ
voxels; the volume centre when no organ was found): the top row shows the CT (soft-tissue window,
level 40 HU, width 400 HU) with the organs in their table colours, the bottom row the uncertainty (nats)
over the CT. Arrays are in the package's canonical orientation (x right-to-left, y anterior-to-
posterior, z inferior-to-superior), drawn in the radiological convention: the patient's right on the
left of the picture, anterior at the top of axial views and superior at the top of the others. Pixels
have their true aspect ratio (from the spacing). Rendered with matplotlib's Agg canvas without pyplot
(no global state, no display needed).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sepnet_core.fileio import atomic_write
from sepnet_core.organs import ORGANS, colour_table

__all__ = ["organ_centre", "write_preview"]

WINDOW_HU = (40.0, 400.0)  # level, width
PANELS_WIDTH_IN = 9.6  # the three panels of a row together, inches
_MARGIN_IN = (2.4, 0.9)  # legend and colour bar (width), titles (height), inches
_VIEWS = ("axial", "coronal", "sagittal")


def organ_centre(labels: np.ndarray) -> tuple[int, int, int]:
    """Rounded mean (z, y, x) index of all organ voxels (labels > 0); the volume centre if there is none."""
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise ValueError(f"labels must be a (z, y, x) array, got shape {labels.shape}")
    index = np.nonzero(labels)
    if index[0].size == 0:
        return tuple(int(s // 2) for s in labels.shape)  # type: ignore[return-value]
    return tuple(int(round(float(i.mean()))) for i in index)  # type: ignore[return-value]


def _cut(volume: np.ndarray, view: str, centre: Sequence[int]) -> np.ndarray:
    """The 2D slice of ``view`` through ``centre``: axial (y, x), coronal (z, x), sagittal (z, y)."""
    z, y, x = centre
    return {"axial": volume[z], "coronal": volume[:, y, :], "sagittal": volume[:, :, x]}[view]


def _aspect(view: str, spacing_mm: Sequence[float]) -> float:
    """Height / width of one pixel of the view."""
    sz, sy, sx = spacing_mm
    return {"axial": sy / sx, "coronal": sz / sx, "sagittal": sz / sy}[view]


def _panel_sizes(shape: Sequence[int], spacing_mm: Sequence[float]) -> tuple[list[float], float]:
    """Widths of the axial, coronal and sagittal panels and the row height, inches: panels share
    :data:`PANELS_WIDTH_IN` in proportion to their physical widths, and the row fits the tallest."""
    (nz, ny, nx), (sz, sy, sx) = shape, spacing_mm
    extents = [(nx * sx, ny * sy), (nx * sx, nz * sz), (ny * sy, nz * sz)]  # (width, height) mm per view
    total = sum(w for w, _ in extents)
    widths = [PANELS_WIDTH_IN * w / total for w, _ in extents]
    return widths, max(width * h / w for width, (w, h) in zip(widths, extents, strict=True))


def write_preview(
    path: str | os.PathLike[str],
    image_hu: np.ndarray,
    labels: np.ndarray,
    uncertainty: np.ndarray,
    spacing_mm: Sequence[float],
    *,
    title: str = "",
    overwrite: bool = False,
    dpi: int = 110,
) -> Path:
    """Write the preview PNG (see module docstring) atomically.

    Args:
        path: Destination ``.png``; its folder must exist.
        image_hu: (z, y, x) CT in HU, canonical orientation.
        labels: (z, y, x) labels 0..22, same grid.
        uncertainty: (z, y, x) uncertainty in nats, same grid.
        spacing_mm: Voxel spacing (z, y, x) in mm.
        title: Figure title (e.g. the input name).
        overwrite: Replace an existing file.
        dpi: Resolution of the PNG (the size in inches follows the volume's physical proportions:
            :data:`PANELS_WIDTH_IN` plus margins wide).

    Returns:
        ``path`` as a Path.

    Raises:
        ValueError: shapes differ or are not 3D, or the spacing is not 3 positive numbers.
        FileExistsError: ``path`` exists and ``overwrite`` is false.
    """
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    image_hu, labels, uncertainty = np.asarray(image_hu), np.asarray(labels), np.asarray(uncertainty)
    if image_hu.ndim != 3 or image_hu.shape != labels.shape or image_hu.shape != uncertainty.shape:
        raise ValueError(f"image_hu {image_hu.shape}, labels {labels.shape} and uncertainty "
                         f"{uncertainty.shape} must be (z, y, x) arrays of one shape")
    spacing = tuple(float(s) for s in spacing_mm)
    if len(spacing) != 3 or min(spacing) <= 0:
        raise ValueError(f"spacing_mm={tuple(spacing_mm)!r} must be 3 positive numbers (z, y, x) in mm")
    centre = organ_centre(labels)
    level, width = WINDOW_HU
    colours = np.concatenate([colour_table(), np.ones((len(colour_table()), 1))], axis=1)
    colours[0, 3] = 0.0  # background transparent
    label_map = ListedColormap(colours)
    top = float(max(np.nanmax(uncertainty), 1e-6)) if uncertainty.size else 1.0

    widths, height = _panel_sizes(labels.shape, spacing)
    fig = Figure(figsize=(sum(widths) + _MARGIN_IN[0], 2 * height + _MARGIN_IN[1]), dpi=dpi,
                 layout="constrained")
    axes = fig.subplots(2, 3, gridspec_kw={"width_ratios": widths})
    for column, view in enumerate(_VIEWS):
        ct = _cut(image_hu, view, centre)
        origin = "upper" if view == "axial" else "lower"  # superior at the top of coronal/sagittal views
        aspect = _aspect(view, spacing)
        for row in range(2):
            ax = axes[row, column]
            ax.imshow(ct, cmap="gray", vmin=level - width / 2, vmax=level + width / 2, origin=origin,
                      aspect=aspect, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        axes[0, column].imshow(_cut(labels, view, centre), cmap=label_map, vmin=-0.5, vmax=len(colours) - 0.5,
                               alpha=0.55, origin=origin, aspect=aspect, interpolation="nearest")
        unc = np.ma.masked_less_equal(_cut(uncertainty, view, centre), 0.0)
        shown = axes[1, column].imshow(unc, cmap="inferno", vmin=0.0, vmax=top, alpha=0.8, origin=origin,
                                       aspect=aspect, interpolation="nearest")
        index = {"axial": centre[0], "coronal": centre[1], "sagittal": centre[2]}[view]
        axes[0, column].set_title(f"{view} (slice {index})", fontsize=10)
    fig.colorbar(shown, ax=axes[1, :].tolist(), shrink=0.8, label="uncertainty (nats)")
    counts = np.bincount(labels.ravel().astype(np.int64), minlength=len(colours))
    present = [o for o in ORGANS if counts[o.label]]
    if present:
        handles = [Patch(color=o.colour_float, label=o.name) for o in present]
        fig.legend(handles=handles, loc="outside right upper", fontsize=7, frameon=False)
    axes[0, 0].set_ylabel("labels")
    axes[1, 0].set_ylabel("uncertainty")
    fig.suptitle(title or "SepNet segmentation", fontsize=11)
    with atomic_write(path, overwrite=overwrite) as tmp:
        fig.savefig(tmp, format="png")
    return Path(path)

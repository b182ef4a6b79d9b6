"""Tri-planar preview of a CT with its organ labels (PNG), for the book and for checking data.

Works on any (z, y, x) CT in HU with a StructSeg label map, phantom or real. Each view shows the
slice that contains the most different organs, cropped in-plane to everything denser than -300 HU.
Axial and coronal views are in radiological convention (patient's right on the image left), the
sagittal view has anterior on the left; the pixel aspect follows the voxel spacing.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sepnet_core.fileio import atomic_write
from sepnet_core.organs import NUM_CLASSES, colour_table, organ_by_id

__all__ = ["preview_case", "gallery", "write_gallery", "best_slices", "SOFT_TISSUE_WINDOW"]

SOFT_TISSUE_WINDOW = (40.0, 400.0)
"""(level, width) of the display window, HU."""


def best_slices(label: np.ndarray) -> tuple[int, int, int]:
    """Indices (z, y, x) of the axial, coronal and sagittal slices that contain the most organs.

    Ties go to the slice with the most labelled voxels; an empty label map gives the centre slices.
    """
    best = []
    for axis in range(3):
        others = tuple(a for a in range(3) if a != axis)
        counts = np.zeros(label.shape[axis], dtype=np.int64)
        for value in np.unique(label):
            if value == 0:
                continue
            counts += (label == value).any(axis=others)
        voxels = (label > 0).sum(axis=others)
        if counts.max() == 0:
            best.append(label.shape[axis] // 2)
        else:
            best.append(int(np.lexsort((voxels, counts))[-1]))
    return best[0], best[1], best[2]


def _body_box(image: np.ndarray, threshold_hu: float = -300.0, margin: int = 8) -> tuple[slice, slice]:
    """In-plane rows and columns around everything denser than ``threshold_hu`` (whole image if none)."""
    dense = image > threshold_hu
    rows, cols = np.nonzero(dense.any(axis=(0, 2)))[0], np.nonzero(dense.any(axis=(0, 1)))[0]
    if rows.size == 0:
        return slice(0, image.shape[1]), slice(0, image.shape[2])
    return (slice(max(rows[0] - margin, 0), min(rows[-1] + margin + 1, image.shape[1])),
            slice(max(cols[0] - margin, 0), min(cols[-1] + margin + 1, image.shape[2])))


def _overlay(ct: np.ndarray, lab: np.ndarray, alpha: float) -> np.ndarray:
    level, width = SOFT_TISSUE_WINDOW
    grey = np.clip((ct - (level - width / 2)) / width, 0.0, 1.0)
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    colours = colour_table()
    mask = lab > 0
    rgb[mask] = (1 - alpha) * rgb[mask] + alpha * colours[lab[mask]]
    return rgb


def preview_case(
    image: np.ndarray,
    label: np.ndarray | None,
    spacing_mm: Sequence[float],
    path: str | os.PathLike[str],
    title: str | None = None,
    alpha: float = 0.45,
    overwrite: bool = False,
    width_in: float = 12.0,
    dpi: int = 100,
) -> Path:
    """Save a tri-planar PNG (axial, coronal, sagittal) of a CT with its label overlay and legend.

    Args:
        image: CT (z, y, x) in HU.
        label: Labels (z, y, x), values 0..22, or None for the CT alone.
        spacing_mm: Voxel spacing (z, y, x), mm.
        path: Destination ``.png`` (written atomically; its folder must exist).
        title: Figure title; default none.
        alpha: Opacity of the label colours, 0..1.
        overwrite: Replace an existing file.
        width_in: Figure width, inches (the height follows the views' aspect).
        dpi: Pixels per inch of the PNG.

    Returns:
        ``path`` as a Path.

    Raises:
        ValueError: Shapes differ, the arrays are not 3D, or spacing is not 3 positive numbers.
        FileExistsError: ``path`` exists and ``overwrite`` is false.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 3:
        raise ValueError(f"image must be 3D (z, y, x), got shape {image.shape}")
    lab = np.zeros(image.shape, np.uint8) if label is None else np.asarray(label)
    if lab.shape != image.shape:
        raise ValueError(f"label shape {lab.shape} != image shape {image.shape}")
    if lab.size and (lab.min() < 0 or lab.max() >= NUM_CLASSES):
        raise ValueError(f"label values must be in 0..{NUM_CLASSES - 1}")
    sz, sy, sx = (float(s) for s in spacing_mm)
    if min(sz, sy, sx) <= 0 or len(tuple(spacing_mm)) != 3:
        raise ValueError(f"spacing_mm must be 3 positive numbers (z, y, x), got {tuple(spacing_mm)}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha={alpha!r} must be in 0..1")
    lab = lab.astype(np.intp)
    kz, ky, kx = best_slices(lab)
    rows, cols = _body_box(image)
    image, lab = image[:, rows, cols], lab[:, rows, cols]
    jy, jx = ky - rows.start, kx - cols.start
    nz, ny, nx = image.shape
    views = [  # (rgb, extent, name, left/right marks)
        (_overlay(image[kz], lab[kz], alpha), (0, nx * sx, ny * sy, 0), f"axial z={kz}", ("R", "L")),
        (_overlay(image[:, jy, :], lab[:, jy, :], alpha)[::-1], (0, nx * sx, 0, nz * sz), f"coronal y={ky}",
         ("R", "L")),
        (_overlay(image[:, :, jx], lab[:, :, jx], alpha)[::-1], (0, ny * sy, 0, nz * sz), f"sagittal x={kx}",
         ("A", "P")),
    ]
    widths = [nx * sx, nx * sx, ny * sy]
    height_mm = max(ny * sy, nz * sz)
    fig = Figure(figsize=(width_in, width_in * height_mm / sum(widths) + 1.3), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(2, 3, width_ratios=widths, height_ratios=[height_mm, 0.2 * height_mm])
    for col, (rgb, extent, name, marks) in enumerate(views):
        ax = fig.add_subplot(grid[0, col])
        ax.imshow(rgb, extent=extent, interpolation="nearest", origin="upper")
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        for x_frac, text in zip((0.02, 0.98), marks, strict=True):
            ax.text(x_frac, 0.98, text, color="yellow", fontsize=9, transform=ax.transAxes,
                    ha="left" if x_frac < 0.5 else "right", va="top")
    present = [int(v) for v in np.unique(lab) if v > 0]
    legend_ax = fig.add_subplot(grid[1, :])
    legend_ax.axis("off")
    if present:
        colours = colour_table()
        handles = [Patch(color=colours[v], label=f"{v} {organ_by_id(v).name}") for v in present]
        legend_ax.legend(handles=handles, loc="center", ncol=6, fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=11)
    path = Path(path)
    with atomic_write(path, overwrite=overwrite) as tmp:
        fig.savefig(tmp, format="png", facecolor="white", metadata={"Software": None})
    return path


def gallery(
    cases: Sequence,
    path: str | os.PathLike[str],
    titles: Sequence[str] | None = None,
    overwrite: bool = False,
    panel_in: float = 2.2,
    dpi: int = 100,
) -> Path:
    """Save a PNG of several cases side by side: one column per case, rows axial, coronal and sagittal,
    each organ drawn as a contour in its colour on the CT (soft-tissue window).

    Every view shows the whole field of view of the case as stored (voxel space, pixel aspect from the
    spacing), through the slice holding the most organs, so the figure shows what a network sees:
    where the anatomy lies in the grid, how big it is, what is cut off.

    Args:
        cases: Objects with ``image`` (z, y, x) HU, ``label`` (z, y, x) 0..22 and
            ``geometry.spacing_mm`` (:class:`~sepnet_core.data.io.Case`).
        path: Destination ``.png`` (written atomically).
        titles: One title per case; default the case ids.
        overwrite: Replace an existing file.
        panel_in: Width of one panel, inches.
        dpi: Pixels per inch.

    Returns:
        ``path`` as a Path.

    Raises:
        ValueError: No cases, or titles of the wrong length.
        FileExistsError: ``path`` exists and ``overwrite`` is false.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cases = list(cases)
    if not cases:
        raise ValueError("gallery needs at least one case")
    if titles is not None and len(titles) != len(cases):
        raise ValueError(f"{len(titles)} titles for {len(cases)} cases")
    if titles is None:
        titles = [str(getattr(c, "case_id", i)) for i, c in enumerate(cases)]
    level, width = SOFT_TISSUE_WINDOW
    colours = colour_table()
    fig = Figure(figsize=(panel_in * len(cases), panel_in * 3 + 0.4), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(3, len(cases), squeeze=False)
    for col, (case, title) in enumerate(zip(cases, titles, strict=True)):
        image, lab = np.asarray(case.image, np.float32), np.asarray(case.label).astype(np.intp)
        sz, sy, sx = (float(v) for v in case.geometry.spacing_mm)
        nz, ny, nx = image.shape
        kz, ky, kx = best_slices(lab)
        views = [(image[kz], lab[kz], (0, nx * sx, ny * sy, 0)),
                 (image[::-1, ky, :], lab[::-1, ky, :], (0, nx * sx, 0, nz * sz)),
                 (image[::-1, :, kx], lab[::-1, :, kx], (0, ny * sy, 0, nz * sz))]
        for row, (ct, lb, extent) in enumerate(views):
            ax = axes[row, col]
            ax.imshow(ct, cmap="gray", vmin=level - width / 2, vmax=level + width / 2, extent=extent,
                      interpolation="nearest", origin="upper")
            h, w = lb.shape
            ys = extent[3] + (np.arange(h) + 0.5) * (extent[2] - extent[3]) / h  # origin='upper'
            xs = extent[0] + (np.arange(w) + 0.5) * (extent[1] - extent[0]) / w
            for value in np.unique(lb):
                if value > 0:
                    ax.contour(xs, ys, (lb == value).astype(np.float32), levels=[0.5],
                               colors=[colours[value]], linewidths=0.8)
            ax.set_xlim(extent[0], extent[1])
            ax.set_ylim(min(extent[2], extent[3]), max(extent[2], extent[3]))
            if row == 0:
                ax.invert_yaxis()
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(title, fontsize=8)
    fig.suptitle("axial / coronal / sagittal through the slice with the most organs (whole field of view)",
                 fontsize=9)
    path = Path(path)
    with atomic_write(path, overwrite=overwrite) as tmp:
        fig.savefig(tmp, format="png", facecolor="white", metadata={"Software": None})
    return path


def write_gallery(path: str | os.PathLike[str] = "figures/phantom/gallery_cpu.png", profile: str = "cpu",
                  cases: int = 8, seed: int = 0, overwrite: bool = True) -> Path:
    """Generate ``cases`` phantom cases (as ``sepnet phantom --seed SEED --profile PROFILE``) and save
    their :func:`gallery`. The figure of ``docs/phantom.md``::

        .venv/bin/python -c "from sepnet_core.data.phantom.preview import write_gallery; write_gallery()"
    """
    from sepnet_core.data.phantom.dataset import case_name, case_seed
    from sepnet_core.data.phantom.generator import case_params, generate_case

    items, titles = [], []
    for i in range(cases):
        s = case_seed(seed, i)
        items.append(generate_case(s, profile, case_name(i)))
        p = case_params(s, profile)
        notes = [f"{p.grid.spacing_mm[1]:.2f} mm"] + (["metal"] if p.fillings else []) + (
            [f"cut {p.cutoff}"] if p.cutoff else [])
        titles.append(f"{case_name(i)} ({', '.join(notes)})")
    return gallery(items, path, titles=titles, overwrite=overwrite)


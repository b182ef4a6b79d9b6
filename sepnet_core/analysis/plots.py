"""Small figure helpers for the book's pages; each returns a :class:`matplotlib.figure.Figure`.

Figures are built with the object API (``Figure()``, never ``pyplot``), so no global state changes and
any backend, Agg included, works. In a notebook show one with ``IPython.display.display(fig)``; write it
with :func:`save_figure` (atomic PNG).

Example:
    >>> fig = organ_bar_chart(per_organ_table(table, ["unet", "sepnet"]))  # doctest: +SKIP
    >>> save_figure(fig, "figures/cpu/ablation_network/dice_per_organ.png")  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from sepnet_core.analysis.comparison import Comparison
from sepnet_core.fileio import atomic_write
from sepnet_core.organs import NUM_CLASSES, ORGANS, colour_table

__all__ = [
    "organ_bar_chart",
    "error_rate_chart",
    "reliability_diagram",
    "comparison_chart",
    "uncertainty_panel",
    "save_figure",
]


def organ_bar_chart(
    means: pd.DataFrame,
    errors: pd.DataFrame | None = None,
    ylabel: str = "Dice",
    title: str | None = None,
) -> Figure:
    """Grouped bars: one group per organ, one bar per config, optional error bars.

    Args:
        means: Organs x configs (:func:`sepnet_core.analysis.comparison.per_organ_table`).
        errors: Same shape, half-length of the error bars
            (e.g. :func:`~sepnet_core.analysis.comparison.per_organ_std`); NaN draws none.
        ylabel: Y-axis label (e.g. ``"Dice"``, ``"HD95 (mm)"``).
        title: Optional title.

    Returns:
        Figure with one axes.
    """
    if errors is not None and (errors.shape != means.shape or list(errors.columns) != list(means.columns)):
        raise ValueError(f"errors {errors.shape} must match means {means.shape} (same configs and organs)")
    n = max(1, means.shape[1])
    fig = Figure(figsize=(max(8.0, 0.25 * len(means) * n + 2), 4.0), layout="constrained")
    ax = fig.add_subplot()
    width = 0.8 / n
    x = np.arange(len(means))
    for i, config in enumerate(means.columns):
        err = None if errors is None else np.nan_to_num(errors[config].to_numpy(dtype=float))
        ax.bar(x + (i - (n - 1) / 2) * width, means[config].to_numpy(dtype=float), width, yerr=err,
               capsize=2 if err is not None else 0, label=str(config))
    ax.set_xticks(x, [str(i) for i in means.index], rotation=60, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8, ncols=min(n, 4))
    ax.grid(axis="y", alpha=0.3)
    if title:
        ax.set_title(title)
    return fig


def error_rate_chart(levels: pd.DataFrame, title: str | None = None) -> Figure:
    """Bars of the error rate at each uncertainty level, the voxel count written above each bar.

    Args:
        levels: Table of :func:`sepnet_core.analysis.uncertainty_analysis.error_rate_by_level` or
            ``accumulate_levels`` (columns ``level``, ``n_voxels``, ``error_rate``); with ``ci_low`` and
            ``ci_high`` (``level_table_with_interval``) the interval is drawn on each bar.
        title: Optional title.

    Returns:
        Figure with one axes (levels on a categorical x axis, nats).
    """
    fig = Figure(figsize=(max(5.0, 0.7 * len(levels) + 2), 3.5), layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(len(levels))
    rate = levels["error_rate"].to_numpy(dtype=float)
    errors = None
    if {"ci_low", "ci_high"} <= set(levels.columns):
        low, high = levels["ci_low"].to_numpy(dtype=float), levels["ci_high"].to_numpy(dtype=float)
        errors = np.nan_to_num(np.clip(np.vstack([rate - low, high - rate]), 0, None))
    bars = ax.bar(x, rate, color="tab:red", alpha=0.8, yerr=errors, capsize=3 if errors is not None else 0)
    ax.bar_label(bars, labels=[f"n={n:,}" for n in levels["n_voxels"]], fontsize=7, padding=2)
    ax.set_xticks(x, [f"{v:.4f}" for v in levels["level"]], rotation=45, ha="right", fontsize=8)
    ax.set_xlabel("vote entropy (nats)")
    ax.set_ylabel("error rate")
    ax.set_ylim(0, 1.1)
    if title:
        ax.set_title(title)
    return fig


def reliability_diagram(table: pd.DataFrame, title: str | None = None) -> Figure:
    """Accuracy against confidence (top) and the voxel count per bin (bottom, log scale).

    Args:
        table: :func:`sepnet_core.analysis.uncertainty_analysis.reliability_table` result.
        title: Optional title.

    Returns:
        Figure with two axes.
    """
    fig = Figure(figsize=(4.5, 5.5), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    centres = ((table["lower"] + table["upper"]) / 2).to_numpy(dtype=float)
    width = float((table["upper"] - table["lower"]).iloc[0]) if len(table) else 0.1
    top.bar(centres, table["accuracy"].to_numpy(dtype=float), width * 0.95, label="accuracy", alpha=0.8)
    top.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect calibration")
    top.plot(table["mean_confidence"], table["accuracy"], "o", color="tab:orange", markersize=3,
             label="mean confidence")
    top.set_ylabel("accuracy")
    top.set_ylim(0, 1)
    top.legend(fontsize=8, loc="upper left")
    bottom.bar(centres, table["count"].to_numpy(dtype=float), width * 0.95, color="grey")
    if (table["count"] > 0).any():
        bottom.set_yscale("log")
    bottom.set_xlabel("confidence (max mean probability)")
    bottom.set_ylabel("voxels")
    bottom.set_xlim(0, 1)
    if title:
        top.set_title(title)
    return fig


def comparison_chart(comparisons: Sequence[Comparison], title: str | None = None) -> Figure:
    """Forest plot: each comparison's difference with its bootstrap CI and the +-2 x seed-spread band.

    Args:
        comparisons: Results of :func:`sepnet_core.analysis.comparison.compare` (same metric expected).
        title: Optional title.

    Returns:
        Figure with one axes; rows labelled ``"b vs a"`` and the verdict.
    """
    fig = Figure(figsize=(7.0, 0.5 * len(comparisons) + 1.5), layout="constrained")
    ax = fig.add_subplot()
    y = np.arange(len(comparisons))[::-1]
    for yi, c in zip(y, comparisons, strict=True):
        if c.spread_known:
            ax.fill_betweenx([yi - 0.3, yi + 0.3], c.difference - 2 * c.spread, c.difference + 2 * c.spread,
                             color="tab:blue", alpha=0.15, linewidth=0)
        if np.isfinite(c.ci_low):
            ax.plot([c.ci_low, c.ci_high], [yi, yi], color="k", linewidth=1.5)
        ax.plot([c.difference], [yi], "o", color="tab:blue")
    ax.axvline(0, color="grey", linewidth=1)
    ax.set_yticks(y, [f"{c.b} vs {c.a}\n{c.verdict}" for c in comparisons], fontsize=8)
    metric = comparisons[0].metric if comparisons else ""
    ax.set_xlabel(f"difference in {metric} (b - a)")
    if title:
        ax.set_title(title)
    return fig


def _grey(image_hu: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    level, width = window
    return np.clip((image_hu - (level - width / 2)) / width, 0.0, 1.0)


def uncertainty_panel(
    image_hu: np.ndarray,
    labels_pred: np.ndarray,
    labels_ref: np.ndarray,
    uncertainty: np.ndarray,
    z: int | None = None,
    window: tuple[float, float] = (40.0, 400.0),
    title: str | None = None,
) -> Figure:
    """One axial slice in four panels: CT with prediction contours, reference contours, errors, uncertainty.

    Args:
        image_hu: CT (z, y, x) in HU.
        labels_pred: Fused labels (z, y, x), 0..22.
        labels_ref: Reference labels (z, y, x).
        uncertainty: Uncertainty map (z, y, x), e.g. vote entropy in nats.
        z: Slice index; default the slice with the most voxels where prediction and reference differ
            (the first slice with the most foreground when there is no error).
        window: Display (level, width) in HU (default soft tissue 40 / 400).
        title: Optional figure title.

    Returns:
        Figure with five axes: four panels and the uncertainty colour bar. Organ colours come from
        :func:`sepnet_core.organs.colour_table`.

    Raises:
        ValueError: shapes differ or ``z`` is out of range.
    """
    arrays = [np.asarray(a) for a in (image_hu, labels_pred, labels_ref, uncertainty)]
    if len({a.shape for a in arrays}) != 1 or arrays[0].ndim != 3:
        raise ValueError(f"image, labels and uncertainty must be (z, y, x) of one shape, got "
                         f"{[a.shape for a in arrays]}")
    image, pred, ref, unc = arrays
    errors = pred != ref
    if z is None:
        per_slice = errors.sum(axis=(1, 2))
        if not per_slice.any():
            per_slice = ((pred > 0) | (ref > 0)).sum(axis=(1, 2))
        z = int(np.argmax(per_slice))
    if not 0 <= z < image.shape[0]:
        raise ValueError(f"z={z} is outside 0..{image.shape[0] - 1}")
    colours = colour_table()
    grey = _grey(image[z].astype(float), window)
    fig = Figure(figsize=(14.0, 4.0), layout="constrained")
    axes = fig.subplots(1, 4)
    for ax, labels, name in ((axes[0], pred, "prediction"), (axes[1], ref, "reference")):
        ax.imshow(grey, cmap="gray", vmin=0, vmax=1)
        for label in np.unique(labels[z]):
            if 0 < label < NUM_CLASSES:
                ax.contour(labels[z] == label, levels=[0.5], colors=[tuple(colours[label])], linewidths=0.8)
        ax.set_title(f"{name} (z={z})", fontsize=9)
    overlay = np.dstack([grey, grey, grey])
    overlay[errors[z]] = (1.0, 0.1, 0.1)
    axes[2].imshow(overlay)
    axes[2].set_title(f"errors ({int(errors[z].sum())} voxels)", fontsize=9)
    heat = axes[3].imshow(unc[z].astype(float), cmap="magma", vmin=0.0, vmax=max(float(unc.max()), 1e-6))
    axes[3].set_title("uncertainty (nats)", fontsize=9)
    fig.colorbar(heat, ax=axes[3], shrink=0.8)
    for ax in axes:
        ax.set_axis_off()
    if title:
        fig.suptitle(title)
    return fig


def organ_dice_plot(table: pd.DataFrame, configs: Sequence[str], title: str | None = None) -> Figure:
    """Dice of every test case per organ for several configurations (seaborn box plot, cases as points).

    Args:
        table: Long evaluation table (``config``, ``label``, ``dice``; ``organ`` or labels 1..22).
        configs: Configurations to show, in legend order.
        title: Optional title.

    Returns:
        Figure with one axes: organs on x, Dice on y, one box per configuration.

    Raises:
        ValueError: a config is not in the table.
    """
    import seaborn as sns

    missing = [c for c in configs if c not in set(table["config"])]
    if missing:
        raise ValueError(f"config(s) {missing} not in the table")
    keys = [o.key for o in ORGANS]
    rows = table[table["config"].isin(configs)].reset_index(drop=True)
    rows = rows.assign(organ=[keys[int(label) - 1] for label in rows["label"]])
    fig = Figure(figsize=(14.0, 4.0), layout="constrained")
    ax = fig.add_subplot()
    sns.boxplot(data=rows, x="organ", y="dice", hue="config", hue_order=list(configs), order=keys, ax=ax,
                fliersize=0, linewidth=0.7)
    sns.stripplot(data=rows, x="organ", y="dice", hue="config", hue_order=list(configs), order=keys, ax=ax,
                  dodge=True, size=2, palette="dark:black", alpha=0.5, legend=False)
    ax.set_ylim(0, 1)
    ax.set_xlabel("")
    ax.set_ylabel("Dice per test case")
    ax.tick_params(axis="x", labelrotation=60, labelsize=8)
    if title:
        ax.set_title(title)
    return fig


def save_figure(fig: Figure, path: str | os.PathLike[str], dpi: int = 150, overwrite: bool = True) -> Path:
    """Write ``fig`` as PNG atomically (temporary file in the same folder, then rename).

    Args:
        fig: The figure.
        path: Destination ``.png``; its folder must exist.
        dpi: Resolution (default 150).
        overwrite: Replace an existing file (default True: figures are derived outputs).

    Returns:
        ``path`` as a Path.

    Raises:
        ValueError: ``path`` does not end in ``.png``.
        FileExistsError: the file exists and ``overwrite`` is false.
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"path={str(path)!r} must end in .png")
    with atomic_write(path, overwrite=overwrite) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    return path

"""Learning curves: a run's ``log.csv`` as a curve table, and a figure of several runs' curves.

A run folder's ``log.csv`` (:data:`sepnet_core.training.LOG_COLUMNS`) has one row per epoch; the
validation columns are empty (NaN) in epochs without validation. :func:`read_curve` returns that table
with the columns a curve needs (``epoch``, ``step``, ``lr``, ``train_loss``, ``val_mean_dice``,
``val_weighted_dice``, ``seconds``) plus ``elapsed_s`` (cumulative training seconds) and ``validated``
(whether the row has a validation score). :func:`plot_curves` draws validation mean Dice and training
loss against the optimiser step for several runs; :func:`plot_curve_panels` draws every run of a book,
one panel of validation mean Dice per configuration (its seeds as lines).

Example:
    >>> curves = {run: read_curve(f"work/cpu/runs/{run}") for run in runs}  # doctest: +SKIP
    >>> fig = plot_curves(curves)  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

__all__ = ["CURVE_COLUMNS", "read_curve", "validation_points", "plot_curves", "plot_curve_panels"]

CURVE_COLUMNS: tuple[str, ...] = (
    "epoch", "step", "lr", "train_loss", "val_mean_dice", "val_weighted_dice", "seconds", "elapsed_s",
    "validated",
)
"""Columns of :func:`read_curve`'s table."""
_REQUIRED = ("epoch", "step", "lr", "train_loss", "val_mean_dice", "seconds")


def read_curve(path: str | os.PathLike[str]) -> pd.DataFrame:
    """A run's learning curve from its ``log.csv``.

    Args:
        path: A run folder (holding ``log.csv``) or the ``log.csv`` file itself (e.g. a committed copy
            under ``results/``).

    Returns:
        One row per logged epoch, sorted by ``step``, with :data:`CURVE_COLUMNS` (``val_weighted_dice``
        NaN if the log has none; ``elapsed_s`` the cumulative sum of ``seconds``).

    Raises:
        FileNotFoundError: no ``log.csv`` at ``path``.
        ValueError: the file lacks a required column (named) or has no rows.
    """
    file = Path(path)
    if file.is_dir():
        file = file / "log.csv"
    if not file.is_file():
        raise FileNotFoundError(f"{file}: no training log (log.csv) here")
    table = pd.read_csv(file)
    missing = [c for c in _REQUIRED if c not in table.columns]
    if missing:
        raise ValueError(f"{file}: not a training log, column(s) {missing} missing")
    if table.empty:
        raise ValueError(f"{file}: the training log has no rows")
    if "val_weighted_dice" not in table.columns:
        table["val_weighted_dice"] = np.nan
    table = table.sort_values("step", kind="stable").reset_index(drop=True)
    table["elapsed_s"] = table["seconds"].cumsum()
    table["validated"] = table["val_mean_dice"].notna()
    return table[list(CURVE_COLUMNS)]


def validation_points(curve: pd.DataFrame) -> pd.DataFrame:
    """The rows of a curve that carry a validation score (``step``, ``val_mean_dice``, ...)."""
    return curve[curve["val_mean_dice"].notna()].reset_index(drop=True)


def plot_curves(curves: Mapping[str, pd.DataFrame], title: str | None = None,
                dice_threshold: float | None = None,
                line_styles: Mapping[str, tuple[str, str]] | None = None) -> Figure:
    """Validation mean Dice (left) and training loss (right) against the optimiser step, one line per run.

    Args:
        curves: Run name -> :func:`read_curve` table.
        title: Optional figure title.
        dice_threshold: Optional horizontal line on the Dice panel (e.g. the trained-model gate's 0.65).
        line_styles: Optional ``{name: (colour, linestyle)}``; runs not in it take matplotlib's next
            colour and a solid line. With it, the loss axis is logarithmic when every loss is positive.

    Returns:
        Figure with two axes.

    Raises:
        ValueError: no curves.
    """
    if not curves:
        raise ValueError("plot_curves needs at least one curve")
    fig = Figure(figsize=(11.0, 4.0), layout="constrained")
    dice_ax, loss_ax = fig.subplots(1, 2)
    for name, curve in curves.items():
        points = validation_points(curve)
        colour, style = (line_styles or {}).get(name, (None, "-"))
        (line,) = dice_ax.plot(points["step"], points["val_mean_dice"], style, marker="o", markersize=3,
                               color=colour, label=name)
        loss_ax.plot(curve["step"], curve["train_loss"], style, color=line.get_color(), label=name)
    if line_styles is not None and all((c["train_loss"] > 0).all() for c in curves.values()):
        loss_ax.set_yscale("log")
    if dice_threshold is not None:
        dice_ax.axhline(dice_threshold, color="grey", linestyle=":", linewidth=1)
    dice_ax.set(xlabel="optimiser step", ylabel="validation mean Dice", ylim=(0.0, 1.0),
                title="validation (whole volumes)")
    loss_ax.set(xlabel="optimiser step", ylabel="training loss (epoch mean)", title="training loss")
    for ax in (dice_ax, loss_ax):
        ax.grid(alpha=0.3)
    dice_ax.legend(fontsize=7, loc="lower right")
    if title:
        fig.suptitle(title)
    return fig


def plot_curve_panels(groups: Mapping[str, Mapping[str, pd.DataFrame]], columns: int = 4,
                      dice_threshold: float | None = None, title: str | None = None) -> Figure:
    """Validation mean Dice against the optimiser step, one panel per configuration, one line per run.

    Args:
        groups: Configuration -> {run name (e.g. its seed) -> :func:`read_curve` table}, in panel order.
        columns: Panels per row.
        dice_threshold: Optional horizontal line on every panel (e.g. the trained-model gate's 0.65).
        title: Optional figure title.

    Returns:
        Figure with one axes per configuration (shared axes; unused grid cells removed).

    Raises:
        ValueError: no configuration, a configuration without runs, or ``columns`` < 1.
    """
    if not groups:
        raise ValueError("plot_curve_panels needs at least one configuration")
    empty = [name for name, runs in groups.items() if not runs]
    if empty:
        raise ValueError(f"configuration(s) without runs: {empty}")
    if columns < 1:
        raise ValueError(f"columns must be >= 1, got {columns}")
    columns = min(columns, len(groups))
    rows = -(-len(groups) // columns)
    fig = Figure(figsize=(2.9 * columns, 2.4 * rows + 0.4), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False, sharex=True, sharey=True).ravel()
    for ax, (name, runs) in zip(axes, groups.items(), strict=False):
        for run, curve in runs.items():
            points = validation_points(curve)
            ax.plot(points["step"], points["val_mean_dice"], "o-", markersize=2, linewidth=1, label=run)
        if dice_threshold is not None:
            ax.axhline(dice_threshold, color="grey", linestyle=":", linewidth=1)
        ax.set_title(name, fontsize=8)
        ax.set_ylim(0.0, 1.0)
        ax.grid(alpha=0.3)
        if len(runs) > 1:
            ax.legend(fontsize=6, loc="lower right")
    for ax in axes[len(groups):]:
        fig.delaxes(ax)
    for index, ax in enumerate(axes[:len(groups)]):
        if index + columns >= len(groups):  # nothing below it
            ax.set_xlabel("optimiser step", fontsize=8)
            ax.xaxis.set_tick_params(labelbottom=True)
        if index % columns == 0:
            ax.set_ylabel("val. mean Dice", fontsize=8)
    if title:
        fig.suptitle(title)
    return fig

"""Figures of the loss page's background question: every seed's learning curve, and the predicted over the
reference foreground volume of every run and test case (tables from :mod:`sepnet_core.analysis.loss_page`)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from sepnet_core.analysis.curves import plot_curves
from sepnet_core.analysis.gate import GATE

__all__ = ["plot_group_curves", "plot_volume_ratios"]


def plot_group_curves(curves: Mapping[str, pd.DataFrame], title: str | None = None,
                      dice_threshold: float | None = GATE.min_dice) -> Figure:
    """Validation mean Dice (left) and training loss (right, log scale) of every run: one colour per
    config, one line per seed (solid, dashed, dotted, ...).

    Args:
        curves: ``{run_key: curve}`` (:func:`run_curves`).
        title: Optional figure title.
        dice_threshold: Horizontal line on the Dice panel (default: the gate's 0.65); None for none.

    Returns:
        Figure with two axes.

    Raises:
        ValueError: no curves.
    """
    if not curves:
        raise ValueError("plot_group_curves needs at least one curve")
    styles = ("-", "--", ":", "-.")
    colours: dict[str, str] = {}
    seeds_seen: dict[str, int] = {}
    labelled: dict[str, pd.DataFrame] = {}
    line_styles: dict[str, tuple[str, str]] = {}
    for key, curve in curves.items():
        config, seed = key.rsplit("/", 1)
        label = f"{config}, seed {seed}"
        n = seeds_seen.get(config, 0)
        seeds_seen[config] = n + 1
        line_styles[label] = (colours.setdefault(config, f"C{len(colours) % 10}"), styles[n % len(styles)])
        labelled[label] = curve
    return plot_curves(labelled, title=title, dice_threshold=dice_threshold, line_styles=line_styles)


def plot_volume_ratios(volumes: pd.DataFrame, tolerance: float = GATE.volume_tolerance,
                       title: str | None = None) -> Figure:
    """Predicted / reference foreground volume of every run and test case (log scale), one column per
    config, with the gate's band ``1 +- tolerance`` shaded.

    Args:
        volumes: :func:`foreground_volume_table`.
        tolerance: Half-width of the shaded band.
        title: Optional title.

    Raises:
        ValueError: an empty table.
    """
    if volumes.empty:
        raise ValueError("plot_volume_ratios needs at least one run and case")
    configs = list(dict.fromkeys(volumes["config"]))
    fig = Figure(figsize=(max(4.0, 1.6 * len(configs) + 1.5), 3.8), layout="constrained")
    ax = fig.add_subplot()
    ax.axhspan(1.0 - tolerance, 1.0 + tolerance, color="tab:green", alpha=0.15, label=f"±{tolerance:.0%}")
    ax.axhline(1.0, color="grey", linewidth=1)
    rng = np.random.default_rng(0)
    for i, config in enumerate(configs):
        ratio = volumes.loc[volumes["config"] == config, "ratio"].to_numpy(dtype=float)
        shown = np.clip(ratio, 1e-3, 1e4)  # an empty prediction (0) or reference (inf) stays on the axis
        ax.scatter(i + rng.uniform(-0.12, 0.12, size=ratio.size), shown, s=16, color=f"C{i % 10}")
    ax.set_yscale("log")
    ax.set_xticks(range(len(configs)), configs, rotation=20, ha="right", fontsize=8)
    ax.set(ylabel="predicted / reference foreground volume", xlim=(-0.6, len(configs) - 0.4))
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7, loc="upper right")
    if title:
        ax.set_title(title, fontsize=9)
    return fig

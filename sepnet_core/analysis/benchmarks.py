"""The performance targets of the project, checked against the tables ``make bench`` writes.

``benchmarks/bench_*.py`` write ``results/benchmarks/<name>.csv``; :func:`targets_table` reads the
figures each target is about and says whether it is met. A table that was not produced gives a row
with ``measured`` "not measured" and ``met`` None (never a pass).

Targets (shared/paper.md has none; these are the project's, for a 2-core CPU):

* ``train_fraction_of_peak``: the fast SepNet (base 24, 16 x 120 x 120) training step at >= 60 % of the
  fp32 matmul rate measured in the same run (``train_step.csv``, row sepnet/fast).
* ``train_vs_unet``: that step takes <= 0.55x the fast U-Net's step (same run).
* ``ensemble_time_<dtype>``: 6 members with uncertainty on a 120 x 256 x 256 crop in <= 180 s
  (``ensemble.csv``, case ``crop``), per dtype (float32, bfloat16).
* ``ensemble_rss_<dtype>``: peak resident memory <= 4 GiB on a whole 150 x 512 x 512 case
  (``ensemble.csv``, case ``full``). The benchmark processes call
  :func:`~sepnet_core.models.tune_cpu_allocator`; ``sepnet predict`` does not, so where
  ``ensemble_default_allocator.csv`` exists (``bench_ensemble.py --default-allocator --only full``) its
  memory rows are added with the suffix ``_default_allocator``.
* ``metrics_speedup``: Dice + HD95 of 22 organs >= 10x faster than MONAI's (``metrics.csv``: the sum of
  MONAI's per-organ times against :func:`~sepnet_core.metrics.evaluate_case` on the whole case), and
  ``metrics_equal``: the values agree (Dice to 1e-6, HD95 to 1e-3 mm).

Example:
    >>> targets_table({})["met"].isna().all()
    True
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

__all__ = ["BENCHMARK_TABLES", "TARGET_COLUMNS", "read_benchmark_tables", "targets_table"]

BENCHMARK_TABLES: tuple[str, ...] = ("train_step", "train_step_profile", "inference", "ensemble",
                                     "ensemble_default_allocator", "scaling", "metrics", "phantom")
"""Table names (``<name>.csv``) that ``make bench`` writes to ``results/benchmarks/``."""

TARGET_COLUMNS: tuple[str, ...] = ("target", "goal", "measured", "met", "source")
"""Columns of :func:`targets_table`."""

FRACTION_OF_PEAK = 0.60
VS_UNET = 0.55
ENSEMBLE_SECONDS = 180.0
ENSEMBLE_RSS_MIB = 4096.0
METRICS_SPEEDUP = 10.0
DICE_TOLERANCE = 1e-6
HD95_TOLERANCE_MM = 1e-3


def read_benchmark_tables(folder: str | Path) -> dict[str, pd.DataFrame]:
    """The benchmark tables present in ``folder`` (``{name: frame}``; absent ones are left out)."""
    folder = Path(folder)
    return {name: pd.read_csv(folder / f"{name}.csv") for name in BENCHMARK_TABLES
            if (folder / f"{name}.csv").is_file()}


def _row(target: str, goal: str, measured: str | None, met: bool | None, source: str) -> dict[str, object]:
    return {"target": target, "goal": goal, "measured": "not measured" if measured is None else measured,
            "met": None if measured is None else met, "source": source}


def _train_rows(train: pd.DataFrame | None) -> list[dict[str, object]]:
    source = "train_step.csv"
    sep = unet = None
    if train is not None:
        index = train.set_index(["model", "variant"])
        sep = index.loc[("sepnet", "fast")] if ("sepnet", "fast") in index.index else None
        unet = index.loc[("unet", "fast")] if ("unet", "fast") in index.index else None
    peak_goal = f">= {FRACTION_OF_PEAK:.0%} of fp32 matmul"
    unet_goal = f"<= {VS_UNET:g}x the U-Net step"
    rows = []
    if sep is None:
        rows.append(_row("train_fraction_of_peak", peak_goal, None, None, source))
    else:
        fraction = float(sep["fraction_of_peak"])
        rate, peak = float(sep["gflop_per_s"]), float(sep["matmul_peak_gflops"])
        measured = f"{fraction:.0%} ({rate:.0f} of {peak:.0f} GFLOP/s)"
        rows.append(_row("train_fraction_of_peak", peak_goal, measured, fraction >= FRACTION_OF_PEAK, source))
    if sep is None or unet is None:
        rows.append(_row("train_vs_unet", unet_goal, None, None, source))
    else:
        ratio = float(sep["step_s"]) / float(unet["step_s"])
        measured = f"{ratio:.2f}x ({float(sep['step_s']):.2f} s vs {float(unet['step_s']):.2f} s)"
        rows.append(_row("train_vs_unet", unet_goal, measured, ratio <= VS_UNET, source))
    return rows


def _ensemble_rows(ensemble: pd.DataFrame | None, name: str = "ensemble",
                   cases: tuple[str, ...] = ("crop", "full")) -> list[dict[str, object]]:
    source = f"{name}.csv"
    suffix = "" if name == "ensemble" else "_default_allocator"
    rows = []
    for dtype in ("float32", "bfloat16"):
        for case, key, goal in (("crop", "time", f"<= {ENSEMBLE_SECONDS:.0f} s, 6 members, 120x256x256"),
                                ("full", "rss", f"<= {ENSEMBLE_RSS_MIB / 1024:.0f} GiB peak RSS, "
                                                "150x512x512")):
            if case not in cases:
                continue
            match = None if ensemble is None else ensemble[(ensemble["case"] == case)
                                                           & (ensemble["dtype"] == dtype)]
            target = f"ensemble_{key}_{dtype}{suffix}"
            if match is None or match.empty:
                rows.append(_row(target, goal, None, None, source))
            elif key == "time":
                seconds = float(match["seconds"].iloc[-1])
                rows.append(_row(target, goal, f"{seconds:.0f} s", seconds <= ENSEMBLE_SECONDS, source))
            else:
                rss = float(match["peak_rss_mib"].iloc[-1])
                rows.append(_row(target, goal, f"{rss / 1024:.2f} GiB", rss <= ENSEMBLE_RSS_MIB, source))
    return rows


def _metrics_rows(metrics: pd.DataFrame | None) -> list[dict[str, object]]:
    source = "metrics.csv"
    if metrics is None or metrics.empty:
        return [_row("metrics_speedup", f">= {METRICS_SPEEDUP:g}x MONAI", None, None, source),
                _row("metrics_equal", "equal values", None, None, source)]
    monai = float(metrics["t_monai_s"].sum())
    ours = float(metrics["t_case_total_s"].iloc[0])
    speedup = monai / ours if ours > 0 else math.inf
    dice = float((metrics["dice"] - metrics["monai_dice"]).abs().max())
    both = metrics[["hd95_mm", "monai_hd95_mm"]].astype(float)
    finite = both.apply(lambda col: col.map(math.isfinite)).all(axis=1)
    same_inf = (~finite) & (both["hd95_mm"] == both["monai_hd95_mm"])
    hd95 = float((both["hd95_mm"] - both["monai_hd95_mm"])[finite].abs().max()) if finite.any() else 0.0
    equal = dice <= DICE_TOLERANCE and hd95 <= HD95_TOLERANCE_MM and bool((finite | same_inf).all())
    return [_row("metrics_speedup", f">= {METRICS_SPEEDUP:g}x MONAI",
                 f"{speedup:.0f}x ({monai:.2f} s vs {ours:.3f} s)", speedup >= METRICS_SPEEDUP, source),
            _row("metrics_equal", f"Dice within {DICE_TOLERANCE:g}, HD95 within {HD95_TOLERANCE_MM:g} mm",
                 f"max |diff| Dice {dice:.1e}, HD95 {hd95:.1e} mm", equal, source)]


def targets_table(tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per performance target: the goal, the measured figure, whether it is met, the source table.

    Args:
        tables: ``{name: frame}`` as :func:`read_benchmark_tables` returns (missing names allowed).

    Returns:
        DataFrame with columns :data:`TARGET_COLUMNS`; ``met`` is True/False, or None where the table
        (or its row) is missing.
    """
    rows = [*_train_rows(tables.get("train_step")), *_ensemble_rows(tables.get("ensemble"))]
    if "ensemble_default_allocator" in tables:  # glibc's default allocator, as `sepnet predict` runs
        rows += _ensemble_rows(tables["ensemble_default_allocator"], "ensemble_default_allocator", ("full",))
    rows += _metrics_rows(tables.get("metrics"))
    table = pd.DataFrame(rows, columns=list(TARGET_COLUMNS))
    table["met"] = table["met"].astype(object)  # True / False / None, also when every row is measured
    return table

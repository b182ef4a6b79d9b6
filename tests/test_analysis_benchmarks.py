"""The performance-target table read from benchmark CSVs (sepnet_core.analysis.benchmarks)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from sepnet_core.analysis.benchmarks import read_benchmark_tables, targets_table


def _train(sep_fraction: float, sep_step: float, unet_step: float) -> pd.DataFrame:
    return pd.DataFrame([
        {"model": "sepnet", "variant": "naive", "step_s": 4.0, "fraction_of_peak": 0.4, "gflop_per_s": 90.0,
         "matmul_peak_gflops": 200.0},
        {"model": "sepnet", "variant": "fast", "step_s": sep_step, "fraction_of_peak": sep_fraction,
         "gflop_per_s": 200.0 * sep_fraction, "matmul_peak_gflops": 200.0},
        {"model": "unet", "variant": "fast", "step_s": unet_step, "fraction_of_peak": 1.5,
         "gflop_per_s": 300.0, "matmul_peak_gflops": 200.0},
    ])


def _ensemble(crop_s: float, full_mib: float) -> pd.DataFrame:
    return pd.DataFrame([{"case": "crop", "dtype": "float32", "seconds": crop_s, "peak_rss_mib": 3000.0},
                         {"case": "full", "dtype": "float32", "seconds": 400.0, "peak_rss_mib": full_mib}])


def _metrics(monai_s: float, ours_s: float, dice_diff: float, inf_both: bool = False) -> pd.DataFrame:
    return pd.DataFrame({"t_monai_s": [monai_s / 2, monai_s / 2], "t_case_total_s": [ours_s, ours_s],
                         "dice": [0.5, 0.7], "monai_dice": [0.5 + dice_diff, 0.7],
                         "hd95_mm": [3.0, math.inf if inf_both else 2.0],
                         "monai_hd95_mm": [3.0, math.inf if inf_both else 2.0]})


def _met(table: pd.DataFrame) -> dict[str, object]:
    return dict(zip(table["target"], table["met"], strict=True))


def test_targets_pass_and_fail_on_the_figures():
    met = _met(targets_table({"train_step": _train(0.78, 2.2, 2.17), "ensemble": _ensemble(323.0, 4662.0),
                              "metrics": _metrics(31.0, 0.1, 0.0)}))
    assert met["train_fraction_of_peak"] is True
    assert met["train_vs_unet"] is False  # 2.2 / 2.17 > 0.55
    assert met["ensemble_time_float32"] is False and met["ensemble_rss_float32"] is False
    assert met["metrics_speedup"] is True and met["metrics_equal"] is True
    met = _met(targets_table({"train_step": _train(0.5, 1.0, 2.0), "ensemble": _ensemble(170.0, 4000.0),
                              "metrics": _metrics(0.5, 0.1, 1e-3)}))
    assert met["train_fraction_of_peak"] is False
    assert met["train_vs_unet"] is True  # 0.5x
    assert met["ensemble_time_float32"] is True and met["ensemble_rss_float32"] is True
    assert met["metrics_speedup"] is False  # 5x
    assert met["metrics_equal"] is False  # Dice differs by 1e-3


def test_missing_tables_are_not_measured_never_met(tmp_path):
    table = targets_table(read_benchmark_tables(tmp_path))
    assert len(table) == 8
    assert table["met"].isna().all()
    assert set(table["measured"]) == {"not measured"}
    # A table without the bfloat16 rows: those targets are not measured, the float32 ones are.
    met = _met(targets_table({"ensemble": _ensemble(100.0, 1000.0)}))
    assert met["ensemble_time_float32"] is True
    assert met["ensemble_time_bfloat16"] is None


def test_infinite_hd95_counts_as_equal_only_when_both_are_infinite():
    assert _met(targets_table({"metrics": _metrics(31.0, 0.1, 0.0, inf_both=True)}))["metrics_equal"] is True
    frame = _metrics(31.0, 0.1, 0.0)
    frame.loc[1, "hd95_mm"] = math.inf
    assert _met(targets_table({"metrics": frame}))["metrics_equal"] is False


def test_reads_the_csv_tables(tmp_path):
    _train(0.7, 1.0, 2.0).to_csv(tmp_path / "train_step.csv", index=False)
    tables = read_benchmark_tables(tmp_path)
    assert list(tables) == ["train_step"]
    row = targets_table(tables).set_index("target").loc["train_fraction_of_peak"]
    assert row["measured"].startswith("70%") and row["met"] is True


@pytest.mark.parametrize("ratio", [0.55, 0.56])
def test_vs_unet_boundary(ratio):
    met = _met(targets_table({"train_step": _train(0.7, ratio, 1.0)}))
    assert met["train_vs_unet"] is (ratio <= 0.55)


def test_default_allocator_rows_are_added_when_measured():
    plain = targets_table({"ensemble": _ensemble(170.0, 4500.0)})
    assert not plain["target"].str.endswith("_default_allocator").any()
    both = _met(targets_table({"ensemble": _ensemble(170.0, 4500.0),
                               "ensemble_default_allocator": _ensemble(300.0, 3900.0)}))
    assert both["ensemble_rss_float32"] is False and both["ensemble_rss_float32_default_allocator"] is True
    assert "ensemble_time_float32_default_allocator" not in both  # memory only: the time is the tuned run's

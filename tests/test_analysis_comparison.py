"""Tests of sepnet_core.analysis.comparison (and its figures): hand-made evaluation tables."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from sepnet_core.analysis import comparison as cmp
from sepnet_core.analysis.comparison import (
    Comparison,
    compare,
    comparisons_table,
    config_summary,
    count_organs_better,
    organ_differences,
    per_organ_std,
    per_organ_table,
    per_run_scores,
)
from sepnet_core.analysis.plots import comparison_chart, organ_bar_chart, save_figure
from sepnet_core.analysis.statistics import paired_effect


def make_table(runs: dict) -> pd.DataFrame:
    """runs: {(config, seed): {case: {label: dice or (dice, hd95)}}} -> long evaluation table."""
    rows = []
    for (config, seed), cases in runs.items():
        for case, organs in cases.items():
            for label, value in organs.items():
                dice, hd = value if isinstance(value, tuple) else (value, 1.0)
                rows.append({"config": config, "seed": seed, "case": case, "label": label,
                             "organ": f"o{label}", "dice": dice, "hd95": hd})
    return pd.DataFrame(rows)


def one_organ(config_values: dict) -> pd.DataFrame:
    """{(config, seed): [dice per case]} with organ 1 only (so every score = mean of the cases)."""
    return make_table({run: {f"c{i}": {1: v} for i, v in enumerate(values)}
                       for run, values in config_values.items()})


# ------------------------------------------------------------------------------------------ scores
def test_per_run_scores_hand_computed():
    table = make_table({("x", 0): {"c1": {1: (0.8, 2.0), 4: (0.6, 4.0), 20: (0.0, math.inf)},
                                   "c2": {1: (0.6, 4.0), 4: (math.nan, math.nan)}}})
    row = per_run_scores(table).iloc[0]
    # organ means: label 1 -> 0.7, label 4 -> 0.6, label 20 -> 0.0 (weights 100, 50, 100)
    assert row["mean_dice"] == pytest.approx((0.7 + 0.6 + 0.0) / 3)
    assert row["weighted_dice"] == pytest.approx((100 * 0.7 + 50 * 0.6 + 0) / 250)
    # HD95: label 1 -> 3, label 4 -> 4, label 20 inf skipped
    assert row["mean_hd95"] == pytest.approx(3.5)
    assert row["weighted_hd95"] == pytest.approx((100 * 3 + 50 * 4) / 150)
    assert row["n_hd95_inf"] == 1 and row["n_cases"] == 2


def test_config_summary_mean_and_std_over_seeds():
    table = one_organ({("x", 0): [0.6], ("x", 1): [0.8], ("y", 0): [0.5]})
    summary = config_summary(table)
    assert list(summary.index) == ["x", "y"]
    assert summary.loc["x", "n_seeds"] == 2
    assert summary.loc["x", "weighted_dice_mean"] == pytest.approx(0.7)
    assert summary.loc["x", "weighted_dice_std"] == pytest.approx(math.sqrt(0.02))
    assert math.isnan(summary.loc["y", "weighted_dice_std"])


def test_case_scores_average_equals_per_run_scores_without_missing_values():
    rng = np.random.default_rng(3)
    runs = {("x", 0): {f"c{i}": {lab: (float(rng.uniform()), float(rng.uniform(1, 9)))
                                  for lab in (1, 4, 8, 21)} for i in range(5)}}
    table = make_table(runs)
    expected = per_run_scores(table).iloc[0]
    for score in cmp.SCORES:
        values, cases = cmp.case_scores(table, "x", score)
        assert values.shape == (1, 5) and cases == [f"c{i}" for i in range(5)]
        assert values.mean() == pytest.approx(expected[score]), score


def test_case_scores_count_misses_at_the_penalty_when_the_table_has_it():
    table = make_table({("x", 0): {"c1": {1: (0.8, 2.0), 4: (0.0, math.inf)}, "c2": {1: (0.6, 4.0)}}})
    skipped, _ = cmp.case_scores(table, "x", "weighted_hd95")
    assert skipped[0] == pytest.approx([2.0, 4.0])  # legacy table: the miss is skipped
    table["hd95_penalized"] = table["hd95"].replace(math.inf, 300.0)
    penalized, _ = cmp.case_scores(table, "x", "weighted_hd95")
    assert penalized[0] == pytest.approx([(100 * 2.0 + 50 * 300.0) / 150, 4.0])


# -------------------------------------------------------------------------------------- compare rule
def test_compare_is_the_statistics_procedure_on_per_case_scores():
    a0, a1 = [0.70, 0.72, 0.74, 0.69], [0.74, 0.76, 0.78, 0.75]
    b0, b1 = [0.72, 0.75, 0.76, 0.73], [0.76, 0.78, 0.82, 0.80]
    table = one_organ({("a", 0): a0, ("a", 1): a1, ("b", 0): b0, ("b", 1): b1})
    result = compare(table, "a", "b")
    expected = paired_effect(np.array([a0, a1]), np.array([b0, b1]))
    assert result.difference == pytest.approx(expected.effect)
    assert (result.ci_low, result.ci_high, result.p_value) == pytest.approx(
        (expected.ci_low, expected.ci_high, expected.p_value))
    assert result.spread_source == "pooled seeds" and (result.n_seeds_a, result.n_seeds_b) == (2, 2)
    assert result.n_cases == 4 and result.gate_passed is None


def test_compare_clearly_better_and_direction():
    a0, a1 = [0.50, 0.52, 0.54, 0.56], [0.51, 0.53, 0.55, 0.57]
    table = one_organ({("a", 0): a0, ("a", 1): a1,
                       ("b", 0): [v + 0.2 for v in a0], ("b", 1): [v + 0.2 for v in a1]})
    result = compare(table, "a", "b")
    assert result.difference == pytest.approx(0.2) and result.p_value < 0.01
    assert result.ci_low > 0.1 and result.ci_high < 0.3
    assert result.verdict == "b better" and result.winner == "b"
    assert compare(table, "b", "a").verdict == "a better"


def test_compare_hd95_lower_is_better():
    runs = {("a", s): {f"c{i}": {1: (0.5, 5.0 + i + s + 0.1 * (i == 1))} for i in range(3)} for s in (0, 1)}
    runs |= {("b", s): {f"c{i}": {1: (0.5, 2.0 + i + s)} for i in range(3)} for s in (0, 1)}
    result = compare(make_table(runs), "a", "b", metric="weighted_hd95")
    assert result.difference == pytest.approx(-3.0 - 0.1 / 3)
    assert result.verdict == "b better" and not result.higher_is_better


def test_compare_one_seed_has_unknown_spread():
    table = one_organ({("a", 0): [0.5, 0.6, 0.7], ("b", 0): [0.6, 0.72, 0.8]})
    result = compare(table, "a", "b")
    assert not result.spread_known and result.spread_source == "unknown" and math.isnan(result.p_value)
    assert result.outcome == "no clear difference"
    assert result.verdict == "no clear difference; spread unknown (one seed)"


def test_compare_no_clear_difference_when_the_interval_includes_zero():
    a = [0.5, 0.6, 0.7, 0.8]
    b = [0.8, 0.4, 0.8, 0.7]  # paired differences +0.3, -0.2, +0.1, -0.1
    table = one_organ({("a", 0): a, ("a", 1): a, ("b", 0): b, ("b", 1): b})
    result = compare(table, "a", "b")
    assert result.spread == 0.0 and result.difference == pytest.approx(0.025)
    assert result.ci_low < 0 < result.ci_high and result.p_value > 0.05
    assert result.verdict == "no clear difference"


def test_compare_baseline_spread_decides_for_one_seed_configs():
    table = one_organ({("a", 0): [0.5, 0.6, 0.7], ("b", 0): [0.7, 0.81, 0.9]})
    wide = compare(table, "a", "b", baseline_spread=0.15, baseline_seeds=3)
    assert wide.spread_source == "baseline" and wide.verdict == "no clear difference"
    narrow = compare(table, "a", "b", baseline_spread=0.01, baseline_seeds=10)
    assert narrow.verdict == "b better" and narrow.ci_high - narrow.ci_low < wide.ci_high - wide.ci_low


def test_compare_one_case_has_no_interval():
    result = compare(one_organ({("a", 0): [0.5], ("b", 0): [0.9]}), "a", "b")
    assert result.difference == pytest.approx(0.4) and result.n_cases == 1
    assert math.isnan(result.ci_low) and result.verdict == "no clear difference; spread unknown (one seed)"


def test_compare_takes_the_gate_per_config_or_per_run():
    table = one_organ({("a", 0): [0.5, 0.6], ("b", 0): [0.6, 0.7], ("b", 1): [0.6, 0.7]})
    assert compare(table, "a", "b", gate={"a": True, "b": True}).gate_passed is True
    assert compare(table, "a", "b", gate={"a": True, "b/0": True, "b/1": False}).gate_passed is False
    assert compare(table, "a", "b", gate={"a": True, "b/0": True}).gate_passed is None


@pytest.mark.parametrize("kwargs, message", [
    ({"a": "a", "b": "zz"}, "not in the table"),
    ({"a": "a", "b": "a"}, "different configs"),
    ({"a": "a", "b": "b", "metric": "dice"}, "unknown metric"),
    ({"a": "a", "b": "b", "baseline_spread": -1.0}, "baseline_spread"),
])
def test_compare_rejects_bad_arguments(kwargs, message):
    table = one_organ({("a", 0): [0.5, 0.6], ("b", 0): [0.6, 0.7]})
    with pytest.raises(ValueError, match=message):
        compare(table, **kwargs)


def test_compare_rejects_runs_on_different_cases():
    table = one_organ({("a", 0): [0.5, 0.6, 0.7], ("b", 0): [0.6, 0.7]})
    with pytest.raises(ValueError, match="different cases"):
        compare(table, "a", "b")


def test_table_checks():
    with pytest.raises(ValueError, match="lacks column"):
        per_run_scores(pd.DataFrame({"config": ["a"], "dice": [0.5]}))
    table = one_organ({("a", 0): [0.5]})
    with pytest.raises(ValueError, match="several rows"):
        per_run_scores(pd.concat([table, table]))
    with pytest.raises(TypeError):
        per_run_scores([1, 2])


def test_comparison_round_trip_and_table():
    result = compare(one_organ({("a", 0): [0.5, 0.6, 0.7], ("b", 0): [0.6, 0.7, 0.8]}), "a", "b")
    assert Comparison.from_dict(result.to_dict()) == result
    frame = comparisons_table([result, result])
    assert len(frame) == 2 and frame.loc[0, "verdict"] == result.verdict
    assert "b vs a" in result.describe()


def test_organ_comparisons_compare_each_organs_dice_over_cases():
    rng = np.random.default_rng(5)
    runs = {}
    for seed in range(3):
        runs[("a", seed)] = {f"c{i}": {1: 0.6 + rng.normal(0, 0.01), 2: 0.7 + rng.normal(0, 0.01)}
                             for i in range(8)}
        runs[("b", seed)] = {f"c{i}": {1: 0.7 + rng.normal(0, 0.01), 2: 0.7 + rng.normal(0, 0.01)}
                             for i in range(8)}
    table = make_table(runs)
    brain_stem, eye_l = cmp.organ_comparisons(table, "a", "b")
    assert (brain_stem.subset, eye_l.subset) == ("brain_stem", cmp.ORGANS[1].key)
    only = table[table["label"] == 1]
    assert brain_stem.difference == pytest.approx(compare(only, "a", "b", "mean_dice").difference)
    assert brain_stem.outcome == "b better" and brain_stem.difference == pytest.approx(0.1, abs=0.01)
    assert eye_l.outcome == "no clear difference"
    assert "(brain_stem)" in brain_stem.describe()


# ---------------------------------------------------------------------------------------- per organ
def organ_runs() -> pd.DataFrame:
    return make_table({
        ("x", 0): {"c1": {1: 0.6, 2: 0.4}, "c2": {1: 0.8, 2: math.nan}},
        ("x", 1): {"c1": {1: 0.9, 2: 0.5}, "c2": {1: 0.9, 2: math.nan}},
        ("y", 0): {"c1": {1: 0.2, 2: 0.3}, "c2": {1: 0.4, 2: 0.3}},
    })


def test_per_organ_table_means_over_seeds_and_cases():
    means = per_organ_table(organ_runs(), ["y", "x"])
    assert list(means.columns) == ["y", "x"] and len(means) == 22
    assert means.index[0] == "brain_stem" and means.index.name == "organ"
    assert means.loc["brain_stem", "x"] == pytest.approx((0.7 + 0.9) / 2)
    assert means.loc["eye_l", "x"] == pytest.approx(0.45)
    assert means.loc["brain_stem", "y"] == pytest.approx(0.3)
    assert means.iloc[2:].isna().all().all()


def test_per_organ_std_over_seeds_and_cases():
    table = organ_runs()
    seeds = per_organ_std(table, ["x"], over="seeds")
    assert seeds.loc["brain_stem", "x"] == pytest.approx(np.std([0.7, 0.9], ddof=1))
    cases = per_organ_std(table, ["x"], over="cases")  # seed-averaged cases: 0.75, 0.85
    assert cases.loc["brain_stem", "x"] == pytest.approx(np.std([0.75, 0.85], ddof=1))
    with pytest.raises(ValueError, match="over"):
        per_organ_std(table, over="organs")


def count_table(two_seeds: bool) -> pd.DataFrame:
    # organ 1: b clearly better; 2: b better inside the spread; 3: a better; 4: b better.
    a = {0: {1: 0.5, 2: 0.5, 3: 0.9, 4: 0.3}, 1: {1: 0.5, 2: 0.6, 3: 0.9, 4: 0.3}}
    b = {0: {1: 0.8, 2: 0.55, 3: 0.5, 4: 0.6}, 1: {1: 0.8, 2: 0.65, 3: 0.5, 4: 0.6}}
    seeds = (0, 1) if two_seeds else (0,)
    return make_table({**{("a", s): {"c1": a[s]} for s in seeds}, **{("b", s): {"c1": b[s]} for s in seeds}})


def test_count_organs_better_with_spread():
    count = count_organs_better(count_table(True), "a", "b")
    assert (count.n_better, count.n_worse, count.n_within, count.n_organs) == (2, 1, 1, 4)
    assert count.spread_known
    diffs = organ_differences(count_table(True), "a", "b")
    assert diffs.loc["eye_l", "outcome"] == "within spread"
    assert diffs.loc["eye_l", "spread"] == pytest.approx(math.sqrt(0.005))
    assert diffs.loc["lens_r", "outcome"] == "no data"


def test_count_organs_better_one_seed_uses_zero_margin():
    count = count_organs_better(count_table(False), "a", "b")
    assert (count.n_better, count.n_worse, count.n_within) == (3, 1, 0)
    assert not count.spread_known
    assert cmp.OrganCount.from_dict(count.to_dict()) == count


# ------------------------------------------------------------------------------------------ figures
def test_organ_bar_chart_and_comparison_chart_write_png(tmp_path):
    table = organ_runs()
    fig = organ_bar_chart(per_organ_table(table), per_organ_std(table), ylabel="Dice")
    assert len(fig.axes) == 1
    path = save_figure(fig, tmp_path / "bars.png")
    assert path.stat().st_size > 0 and path.read_bytes()[:4] == b"\x89PNG"
    results = [compare(count_table(True), "a", "b"), compare(count_table(False), "a", "b")]
    fig = comparison_chart(results)
    assert len(fig.axes) == 1
    assert save_figure(fig, tmp_path / "forest.png").stat().st_size > 0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")]


def test_save_figure_rules(tmp_path):
    fig = organ_bar_chart(per_organ_table(organ_runs()))
    with pytest.raises(ValueError, match=".png"):
        save_figure(fig, tmp_path / "x.pdf")
    save_figure(fig, tmp_path / "x.png")
    with pytest.raises(FileExistsError):
        save_figure(fig, tmp_path / "x.png", overwrite=False)
    with pytest.raises(ValueError, match="errors"):
        organ_bar_chart(per_organ_table(organ_runs()), per_organ_std(organ_runs(), ["x"]))

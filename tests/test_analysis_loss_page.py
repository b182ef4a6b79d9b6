"""The background question of the loss page (sepnet_core.analysis.loss_page) on hand-made tables."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest

from sepnet_core.analysis import loss_page as lp
from sepnet_core.analysis import loss_plots
from sepnet_core.organs import NUM_ORGANS


def _table(config: str, seeds: int, cases: int, dice: float, volume_scale: float = 1.0,
           noise: float = 0.02, seed: int = 0) -> pd.DataFrame:
    """Evaluation rows: every organ of every case; each organ's reference volume is 10 ml."""
    rng = np.random.default_rng(seed)
    rows = []
    case_effect = rng.normal(0.0, 0.03, size=cases)
    for s in range(seeds):
        seed_effect = rng.normal(0.0, noise)
        for c in range(cases):
            for label in range(1, NUM_ORGANS + 1):
                rows.append({"config": config, "seed": s, "case": f"case{c}", "label": label,
                             "dice": float(np.clip(dice + case_effect[c] + seed_effect + rng.normal(0, 0.01),
                                                   0, 1)),
                             "hd95": 5.0, "volume_ref_ml": 10.0, "volume_pred_ml": 10.0 * volume_scale})
    return pd.DataFrame(rows)


def test_find_group_exact_then_unique_substring():
    labels = ["ATH alpha=1", "ATH alpha=1 intended formula", "ATH alpha=1 + background (ours)"]
    assert lp.find_group(labels, "ATH alpha=1") == "ATH alpha=1"  # exact beats the substring matches
    assert lp.find_group(labels, "INTENDED") == "ATH alpha=1 intended formula"
    assert lp.find_group(labels, "exp-log") is None
    with pytest.raises(ValueError, match="several"):
        lp.find_group(labels, "alpha=1 ")
    assert lp.resolve_arms(labels[:1], {"ref": "ATH alpha=1", "int": "intended"}) == {
        "ref": "ATH alpha=1", "int": None}


def test_foreground_volume_table_sums_organs_per_run_and_case():
    table = _table("a", seeds=2, cases=2, dice=0.8, volume_scale=1.5)
    one = (table["seed"] == 1) & (table["case"] == "case0") & (table["label"] == 1)
    table.loc[one, "volume_pred_ml"] = 235.0
    volumes = lp.foreground_volume_table(table)
    assert list(volumes.columns) == ["config", "seed", "case", "volume_pred_ml", "volume_ref_ml", "ratio"]
    assert len(volumes) == 4
    assert volumes["volume_ref_ml"].tolist() == pytest.approx([220.0] * 4)
    # seed 1, case 0: 21 organs at 15 ml plus one at 235 ml = 550 ml, ratio 2.5
    row = volumes[(volumes["seed"] == 1) & (volumes["case"] == "case0")].iloc[0]
    assert row["volume_pred_ml"] == pytest.approx(550.0) and row["ratio"] == pytest.approx(2.5)
    summary = lp.volume_summary(volumes)
    assert summary.loc["a", "n"] == 4
    assert summary.loc["a", "max_ratio"] == pytest.approx(2.5)
    assert summary.loc["a", "median_ratio"] == pytest.approx(1.5)
    assert summary.loc["a", "within"] == 0.0  # 1.5 and 2.5 are both outside +-30 %
    with pytest.raises(ValueError, match="not in the evaluation table"):
        lp.foreground_volume_table(table, ["b"])


def _write_run(folder, seed: int, dice_values, extra: dict | None = None) -> None:
    folder.mkdir(parents=True)
    steps = np.arange(1, len(dice_values) + 1) * 100
    pd.DataFrame({"epoch": range(1, len(steps) + 1), "step": steps, "lr": 0.01,
                  "train_loss": np.linspace(2.0, 0.5, len(steps)), "val_mean_dice": dice_values,
                  "seconds": 1.0}).to_csv(folder / "log.csv", index=False)
    config = {"seed": seed, "loss": "ath", "alpha": 1.0, "epochs": len(steps), "iterations_per_epoch": 100,
              **(extra or {})}
    (folder / "config.json").write_text(json.dumps(config))


def test_run_curves_settings_and_gate(tmp_path):
    flat, rising = [0.3, 0.6, 0.7, 0.75, 0.755, 0.76, 0.76, 0.765], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]
    _write_run(tmp_path / "r0", 0, flat, {"dice_weighting": "reference"})
    _write_run(tmp_path / "r1", 1, flat, {"dice_weighting": "reference"})
    _write_run(tmp_path / "i0", 0, rising)
    groups = {"ref": [tmp_path / "r0", tmp_path / "r1"], "int": [tmp_path / "i0"]}
    curves = lp.run_curves(groups)
    assert list(curves) == ["ref/0", "ref/1", "int/0"]
    assert curves["int/0"]["val_mean_dice"].iloc[-1] == pytest.approx(0.8)

    settings = lp.run_settings(groups).set_index("config")
    assert settings.loc["ref", "dice_weighting"] == "reference"
    assert settings.loc["int", "dice_weighting"] == "not recorded"
    assert settings.loc["ref", "seeds"] == 2 and settings.loc["ref", "steps"] == 800

    table = pd.concat([_table("ref", 2, 2, 0.8), _table("int", 1, 2, 0.7, volume_scale=3.0)])
    gates = lp.gate_table(table, curves, atlas_dice=0.3).set_index("run")
    assert list(gates.index) == ["ref/0", "ref/1", "int/0"]
    assert bool(gates.loc["ref/0", "trained"]) and gates.loc["ref/0", "verdict"] == "trained"
    assert not gates.loc["int/0", "trained"]
    assert "still learning" in gates.loc["int/0", "verdict"] and "3.00x" in gates.loc["int/0", "verdict"]
    assert gates.loc["int/0", "config"] == "int" and gates.loc["int/0", "seed"] == 0
    assert lp.gate_mapping(gates.reset_index()) == {"ref/0": True, "ref/1": True, "int/0": False}
    volumes = lp.foreground_volume_table(table)
    text = lp.arm_sentence("int", volumes, gates.reset_index())
    assert text.startswith("predicted / reference foreground volume 3.00x (3.00x to 3.00x over 2 run-case")
    assert "best validation mean Dice 0.80" in text and text.endswith("gate: 0 of 1 run trained")
    assert lp.arm_sentence("ref", volumes, gates.reset_index()).endswith("gate: 2 of 2 runs trained")
    assert lp.arm_sentence("other", volumes, gates.reset_index()) == "no results"
    arms = lp.arm_table({"reference": "ref", "intended": "int"}, table, gates.reset_index())
    assert arms.loc["intended", "runs"] == 1 and arms.loc["reference", "runs"] == 2
    assert arms.loc["intended", "volume ratio (median)"] == pytest.approx(3.0)
    assert arms.loc["intended", "gate"] == "0 of 1 run trained"
    assert arms.loc["reference", "best val mean Dice"] == pytest.approx(0.765)
    assert arms.loc["reference", "test mean_dice"] == pytest.approx(
        table[table["config"] == "ref"].groupby(["seed", "label"])["dice"].mean().mean())
    # no atlas score: criterion (b) cannot pass, and the prose says the gate is not known
    unknown = lp.gate_table(table, curves, atlas_dice=None)
    assert not unknown["trained"].any()
    assert lp.arm_sentence("ref", volumes, unknown).endswith("gate: not known (no atlas score)")
    assert lp.arm_table({"r": "ref"}, table, unknown).loc["r", "gate"] == "not known (no atlas score)"

    one_point = {"x/0": curves["ref/0"].iloc[:1]}  # one validation: no gain, and no warning either
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        renamed = table[table["config"] == "ref"].assign(config="x")
        text = lp.arm_sentence("x", volumes.assign(config="x"), lp.gate_table(renamed, one_point, 0.3))
    assert "last-quarter gain not measurable" in text
    with pytest.raises(FileNotFoundError, match="config.json"):
        lp.run_curves({"x": [tmp_path / "missing"]})
    with pytest.raises(ValueError, match="two runs"):
        lp.run_curves({"ref": [tmp_path / "r0", tmp_path / "r0"]})


def test_question_comparisons_finds_planted_effect_and_applies_gate():
    table = pd.concat([_table("intended", 3, 8, 0.55, seed=1), _table("reference", 3, 8, 0.80, seed=2),
                       _table("background", 3, 8, 0.805, seed=3)], ignore_index=True)
    pairs = [("intended", "reference"), ("reference", "background")]
    result = lp.question_comparisons(table, pairs, metric="mean_dice")
    first, second = result.iloc[0], result.iloc[1]
    assert first["comparison"] == "reference vs intended"
    assert first["difference"] == pytest.approx(first["mean_b"] - first["mean_a"])
    assert 0.2 < first["difference"] < 0.3 and first["ci_low"] > 0
    assert first["verdict"] == "reference better" and first["gate"] == "not known"
    assert first["p_holm"] >= first["p_value"]
    assert second["verdict"] == "inconclusive"  # 0.5 points inside the seed noise
    # the gate: one failed run makes the comparison inconclusive, never "better"
    gated = lp.question_comparisons(table, pairs, gate={"intended/0": False, "intended/1": True,
                                                        "intended/2": True, "reference": True,
                                                        "background": True})
    assert gated.iloc[0]["verdict"] == "inconclusive: not trained" and gated.iloc[0]["gate"] == "failed"
    assert gated.iloc[1]["gate"] == "passed"
    # reversed pair: the same effect, the other side wins
    reverse = lp.question_comparisons(table, [("reference", "intended")]).iloc[0]
    assert reverse["verdict"] == "reference better" and reverse["difference"] < 0

    sentence = lp.comparison_sentence(first)
    assert sentence.startswith(f"{100 * first['difference']:+.1f} points of mean Dice")
    assert "Holm p" in sentence and sentence.endswith("reference better (trained-model gate not known)")
    with pytest.raises(ValueError, match="unknown metric"):
        lp.question_comparisons(table, pairs, metric="dice")


def test_one_case_gives_no_verdict():
    table = pd.concat([_table("a", 2, 1, 0.5), _table("b", 2, 1, 0.9)], ignore_index=True)
    row = lp.question_comparisons(table, [("a", "b")]).iloc[0]
    assert row["verdict"] == "inconclusive" and "1 test case" in row["reason"]
    assert math.isnan(row["ci_low"]) and "no interval" in lp.comparison_sentence(row)


def test_read_atlas_dice(tmp_path):
    assert lp.read_atlas_dice(None) is None and lp.read_atlas_dice(tmp_path / "none.json") is None
    (tmp_path / "a.json").write_text(json.dumps({"mean_dice": 0.31, "n_cases": 2}))
    assert lp.read_atlas_dice(tmp_path / "a.json") == pytest.approx(0.31)
    (tmp_path / "b.json").write_text(json.dumps({"mean_dice": None}))
    with pytest.raises(ValueError, match="mean_dice"):
        lp.read_atlas_dice(tmp_path / "b.json")


def test_figures_draw_every_run(tmp_path):
    for name, seed in (("a0", 0), ("a1", 1), ("b0", 0)):
        _write_run(tmp_path / name, seed, [0.2, 0.5, 0.6])
    curves = lp.run_curves({"A": [tmp_path / "a0", tmp_path / "a1"], "B": [tmp_path / "b0"]})
    fig = loss_plots.plot_group_curves(curves)
    dice_ax, loss_ax = fig.axes
    lines = [line for line in dice_ax.get_lines() if line.get_label().startswith(("A", "B"))]
    assert len(lines) == 3
    assert lines[0].get_color() == lines[1].get_color() != lines[2].get_color()  # colour = config
    assert lines[0].get_linestyle() != lines[1].get_linestyle()  # line style = seed
    assert loss_ax.get_yscale() == "log"
    both = pd.concat([_table("A", 2, 2, 0.8, 1.1), _table("B", 1, 2, 0.8, 40.0)])
    volumes = lp.foreground_volume_table(both)
    fig = loss_plots.plot_volume_ratios(volumes)
    offsets = np.concatenate([c.get_offsets()[:, 1] for c in fig.axes[0].collections if len(c.get_offsets())])
    assert sorted(np.round(offsets, 3).tolist()) == [1.1] * 4 + [40.0] * 2
    with pytest.raises(ValueError):
        loss_plots.plot_group_curves({})

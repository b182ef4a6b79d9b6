"""Tests of sepnet_core.analysis.claims: each verdict rule on hand-made inputs."""

from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
import pytest

from sepnet_core.analysis import claims as claims_module
from sepnet_core.analysis.claims import (
    INPUT_KEYS,
    PAPER_CLAIMS,
    PAPER_NUMBERS,
    VERDICTS,
    assess_claims,
    evaluate_claims,
)
from sepnet_core.analysis.comparison import Comparison, OrganCount
from sepnet_core.analysis.uncertainty_analysis import SpearmanResult


def comparison(outcome: str, spread: float = 0.01, a: str = "window", b: str = "slf1") -> Comparison:
    return Comparison(a=a, b=b, metric="weighted_dice", mean_a=0.70, mean_b=0.75, difference=0.05,
                      spread=spread, spread_source="pooled seeds" if math.isfinite(spread) else "unknown",
                      n_seeds_a=2, n_seeds_b=2, n_cases=10, ci_low=0.01, ci_high=0.09, outcome=outcome)


def row(inputs: dict, claim_id: str) -> pd.Series:
    table = evaluate_claims(inputs)
    return table.set_index("id").loc[claim_id]


def test_tables_are_consistent():
    assert {c.id for c in PAPER_CLAIMS} == set(claims_module._RULES)
    assert len({c.id for c in PAPER_CLAIMS}) == len(PAPER_CLAIMS)
    assert all(n.source for n in PAPER_NUMBERS.values())
    by_id = {c.id: c for c in PAPER_CLAIMS}
    assert by_id["test_weighted_dice"].paper_value == "80.52 %"
    assert by_id["params_one_third"].paper_value.endswith("= 0.27")


def test_empty_inputs_give_not_measured_without_crashing():
    table = evaluate_claims({})
    assert list(table.columns) == ["id", "text", "paper_value", "ours", "spread", "verdict", "reason",
                                   "evidence"]
    assert table["id"].tolist() == [c.id for c in PAPER_CLAIMS]
    assert set(table["verdict"]) <= set(VERDICTS)
    verdicts = table.set_index("id")["verdict"]
    assert verdicts["test_weighted_dice"] == "not measurable without StructSeg"
    assert verdicts["member_valid_dice"] == "not measurable without StructSeg"
    assert verdicts["slf_beats_window"] == "not measured"
    assert verdicts["half_flops"] == "not measured"


def test_unknown_key_is_rejected():
    with pytest.raises(ValueError, match="valid keys"):
        evaluate_claims({"param_count": {}})
    with pytest.raises(ValueError, match="phantom"):
        evaluate_claims({"data": "mri"})
    assert "cost" in INPUT_KEYS


def test_hidden_test_set_is_never_measurable():
    r = row({"ensemble_scores": {"weighted_dice": 0.6123, "weighted_hd95": 7.5}, "data": "structseg"},
            "test_weighted_dice")
    assert r["verdict"] == "not measurable without StructSeg"
    assert "61.23 %" in r["ours"] and "StructSeg" in r["ours"]
    assert "phantom" in row({"ensemble_scores": {"weighted_hd95": 7.5}}, "test_weighted_hd95")["ours"]


@pytest.mark.parametrize("counts, verdict", [
    ({"sepnet": 2505527, "unet": 9179207}, "reproduced"),
    ({"sepnet": 100, "unet": 400}, "partly reproduced"),
    ({"sepnet": 300, "unet": 400}, "not reproduced"),
])
def test_parameter_rule(counts, verdict):
    r = row({"param_counts": counts}, "params_one_third")
    assert r["verdict"] == verdict
    assert f"{counts['sepnet'] / counts['unet']:.2f}" in r["ours"]


@pytest.mark.parametrize("outcomes, spread, verdict, reason", [
    (["b better"], 0.01, "reproduced", ""),
    (["b better"], math.nan, "partly reproduced", "seed spread unknown"),
    (["within seed-to-seed spread"], 0.05, "not reproduced", "difference within seed-to-seed spread"),
    (["a better"], 0.01, "not reproduced", "opposite: window better"),
    (["no clear difference"], 0.01, "not reproduced", "CI includes 0"),
    (["b better", "within seed-to-seed spread"], 0.01, "partly reproduced", "within seed-to-seed spread"),
    (["within seed-to-seed spread", "within seed-to-seed spread"], 0.05, "not reproduced",
     "difference within seed-to-seed spread"),
])
def test_comparison_rule(outcomes, spread, verdict, reason):
    comps = [comparison(o, spread) for o in outcomes]
    claim = {c.id: c for c in assess_claims({"intensity_comparisons": comps})}["slf_beats_window"]
    assert claim.verdict == verdict
    assert reason in claim.reason
    if verdict == "not reproduced" and "spread" in reason:
        assert claim.verdict_text == "not reproduced (difference within seed-to-seed spread)"


def test_comparisons_may_be_dicts_and_each_list_has_its_claim():
    inputs = {"loss_comparisons": [comparison("b better", a="dice", b="ath").to_dict()],
              "ensemble_vs_members": [comparison("a better", a="member", b="ensemble")]}
    table = evaluate_claims(inputs).set_index("id")
    assert table.loc["ath_improves", "verdict"] == "reproduced"
    assert "+5.00 pp" in table.loc["ath_improves", "ours"]
    assert table.loc["ensemble_beats_members", "verdict"] == "not reproduced"
    assert table.loc["slf_beats_window", "verdict"] == "not measured"


@pytest.mark.parametrize("count, verdict", [
    (OrganCount("unet", "sepnet", "dice", 14, 3, 5, 22, True), "reproduced"),
    (OrganCount("unet", "sepnet", "dice", 14, 8, 0, 22, False), "partly reproduced"),
    (OrganCount("unet", "sepnet", "dice", 8, 4, 10, 22, True), "partly reproduced"),
    (OrganCount("unet", "sepnet", "dice", 3, 4, 15, 22, True), "not reproduced"),
    (OrganCount("unet", "sepnet", "dice", 0, 0, 0, 0, True), "not measured"),
])
def test_most_organs_rule(count, verdict):
    assert row({"organ_count": count.to_dict()}, "sepnet_most_organs")["verdict"] == verdict


def test_most_organs_within_spread_reason():
    r = row({"organ_count": OrganCount("unet", "sepnet", "dice", 3, 4, 15, 22, True),
             "network_comparison": comparison("within seed-to-seed spread", a="unet", b="sepnet")},
            "sepnet_most_organs")
    assert "within seed-to-seed spread" in r["reason"] and "overall sepnet vs unet" in r["ours"]


@pytest.mark.parametrize("uncertainty, verdict", [
    ({"spearman": SpearmanResult(0.9, 0.01, 7), "auroc": 0.8}, "reproduced"),
    ({"spearman": {"rho": 0.9, "p_value": 0.01, "n": 7}}, "reproduced"),
    ({"spearman": SpearmanResult(0.9, 0.2, 4), "auroc": 0.8}, "partly reproduced"),
    ({"auroc": 0.6}, "partly reproduced"),
    ({"spearman": SpearmanResult(-0.3, 0.5, 7), "auroc": 0.4}, "not reproduced"),
    ({}, "not measured"),
])
def test_uncertainty_rule(uncertainty, verdict):
    assert row({"uncertainty": uncertainty}, "uncertainty_errors")["verdict"] == verdict


def cost_frame(gflop: tuple[float, float], seconds: tuple[float, float], shape: str = "1x1x16x120x120"):
    return pd.DataFrame({"input_shape": [shape, shape], "parameters": [2505527, 9179207],
                         "gflop_train": list(gflop), "train_step_s": list(seconds)},
                        index=pd.Index(["sepnet", "unet"], name="model"))


def test_flop_and_time_rules():
    table = evaluate_claims({"cost": cost_frame((358.17, 703.53), (5.0, 3.3))}).set_index("id")
    assert table.loc["half_flops", "verdict"] == "reproduced"
    assert "match paper.md" in table.loc["half_flops", "reason"]
    assert "0.51" in table.loc["half_flops", "ours"]
    assert table.loc["sepnet_slower_naive", "verdict"] == "reproduced"
    other = evaluate_claims({"cost": cost_frame((8.0, 10.0), (1.0, 2.0), "1x1x8x16x16")}).set_index("id")
    assert other.loc["half_flops", "verdict"] == "not reproduced"
    assert "ratio compared only" in other.loc["half_flops", "reason"]
    assert other.loc["sepnet_slower_naive", "verdict"] == "not reproduced"
    untimed = evaluate_claims({"cost": cost_frame((358.17, 703.53), (math.nan, math.nan))}).set_index("id")
    assert untimed.loc["sepnet_slower_naive", "verdict"] == "not measured"


def test_cost_survives_a_csv_round_trip():
    text = cost_frame((358.17, 703.53), (5.0, 3.3)).to_csv()
    frame = pd.read_csv(io.StringIO(text))  # 'model' is now a column
    assert row({"cost": frame}, "half_flops")["verdict"] == "reproduced"


@pytest.mark.parametrize("data, scores, verdict", [
    ("phantom", [0.79, 0.80], "not measurable without StructSeg"),
    ("structseg", [0.79, 0.80], "reproduced"),
    ("structseg", [0.79, 0.60], "partly reproduced"),
    ("structseg", [0.50], "not reproduced"),
    ("structseg", None, "not measured"),
])
def test_member_rule(data, scores, verdict):
    inputs = {"data": data}
    if scores is not None:
        inputs["member_scores"] = pd.DataFrame({"mean_dice": scores})
    assert row(inputs, "member_valid_dice")["verdict"] == verdict


def test_vote_entropy_levels_match_the_papers_list():
    from sepnet_core.analysis.claims import vote_entropy_levels

    levels = vote_entropy_levels(6)
    assert levels.size == 11  # partitions of 6
    for paper_value in (0.0, 0.4506, 0.6365, 0.6931, 0.8676, 1.0114, 1.0986):  # shared/paper.md
        assert np.isclose(levels, paper_value, atol=5e-5).any()
    assert levels[-1] == pytest.approx(math.log(6))
    assert vote_entropy_levels(2).tolist() == pytest.approx([0.0, math.log(2)])


def test_levels_claim_verdicts():
    from sepnet_core.analysis.claims import vote_entropy_levels

    good = evaluate_claims({"uncertainty_levels": {"levels": list(vote_entropy_levels(6)[:4]), "members": 6}})
    row = good.set_index("id").loc["vote_entropy_levels"]
    assert row["verdict"] == "reproduced" and "4 distinct levels" in row["ours"]
    bad = evaluate_claims({"uncertainty_levels": {"levels": [0.0, 0.3], "members": 6}})
    assert bad.set_index("id").loc["vote_entropy_levels", "verdict"] == "not reproduced"
    missing = evaluate_claims({}).set_index("id")
    assert missing.loc["vote_entropy_levels", "verdict"] == "not measured"
    assert missing.loc["third_place", "verdict"] == "not measurable without StructSeg"

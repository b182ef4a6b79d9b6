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


def comparison(p: float, difference: float = 0.05, a: str = "window", b: str = "slf1",
               gate: bool | None = None, metric: str = "weighted_dice") -> Comparison:
    return Comparison(a=a, b=b, metric=metric, mean_a=0.70, mean_b=0.70 + difference, difference=difference,
                      spread=0.01 if math.isfinite(p) else math.nan,  # NaN p: seed variance unknown
                      spread_source="pooled seeds" if math.isfinite(p) else "unknown",
                      n_seeds_a=3, n_seeds_b=3, n_cases=20,
                      ci_low=difference - 0.04, ci_high=difference + 0.04, outcome="(not used)", p_value=p,
                      gate_passed=gate)


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
    assert list(table.columns) == list(claims_module.CLAIM_COLUMNS)
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
    ({"sepnet": 100, "unet": 400}, "reproduced"),
    ({"sepnet": 300, "unet": 400}, "not reproduced"),
])
def test_parameter_rule(counts, verdict):
    r = row({"param_counts": counts}, "params_one_third")
    assert r["verdict"] == verdict
    assert f"{counts['sepnet'] / counts['unet']:.2f}" in r["ours"]


@pytest.mark.parametrize("p, difference, gate, verdict, reason", [
    (0.001, 0.05, True, "reproduced", ""),
    (0.001, 0.05, None, "reproduced", "gate not known"),
    (0.001, -0.05, True, "opposite", ""),
    (0.2, 0.05, True, "inconclusive", "not significant after the Holm correction (p = 0.2"),
    (math.nan, 0.05, True, "inconclusive", "seed spread unknown"),
    (0.001, 0.05, False, "inconclusive", "not trained"),
])
def test_comparison_rule(p, difference, gate, verdict, reason):
    (claim,) = [c for c in assess_claims({"intensity_comparisons": [comparison(p, difference, gate=gate)]})
                if c.id == "slf_beats_window"]
    assert claim.verdict == verdict and reason in claim.reason
    assert claim.effect == pytest.approx(difference * 100) and claim.unit == "pp"
    assert (claim.n_cases, claim.n_seeds) == (20, "3 / 3")
    assert claim.gate == {True: "passed", False: "failed", None: "not known"}[gate]


def test_a_family_is_holm_corrected_one_row_per_comparison():
    # p 0.02 and 0.03 in a family of two: Holm 0.04 and 0.04 -> both reproduced; 0.02 and 0.3: 0.04, 0.3
    both = [comparison(0.02, a="dice", b="ath"), comparison(0.03, a="explog", b="ath")]
    table = evaluate_claims({"loss_comparisons": both})
    rows = table[table["id"] == "ath_improves"]
    assert rows["comparison"].tolist() == ["ath vs dice", "ath vs explog"]
    assert rows["p_holm"].tolist() == pytest.approx([0.04, 0.04])
    assert (rows["verdict"] == "reproduced").all()
    one = evaluate_claims({"loss_comparisons": [both[0], comparison(0.3, a="explog", b="ath")]})
    rows = one[one["id"] == "ath_improves"]
    assert rows["p_holm"].tolist() == pytest.approx([0.04, 0.3])
    assert rows["verdict"].tolist() == ["reproduced", "inconclusive"]
    # uncorrected, a family of six at p = 0.02 each would all pass; Holm makes them 0.12
    members = [comparison(0.02, a=f"m{i}", b="ensemble") for i in range(6)]
    six = evaluate_claims({"ensemble_vs_members": members})
    rows = six[six["id"] == "ensemble_beats_members"]
    assert len(rows) == 6 and (rows["verdict"] == "inconclusive").all()


def test_gate_input_overrides_and_hd95_direction():
    comps = [comparison(0.001, a="window", b="slf1", gate=True)]
    r = row({"intensity_comparisons": comps, "gate": {"slf1": False}}, "slf_beats_window")
    assert r["verdict"] == "inconclusive" and r["gate"] == "failed"
    hd = [comparison(0.001, difference=-1.5, a="dice", b="ath", metric="weighted_hd95")]
    r = row({"loss_comparisons": hd}, "ath_improves")
    assert r["verdict"] == "reproduced" and r["unit"] == "mm" and r["effect"] == pytest.approx(-1.5)


def test_a_comparison_written_before_the_procedure_is_inconclusive_and_says_why():
    old = {k: v for k, v in comparison(0.001).to_dict().items() if k not in ("p_value", "se", "dof")}
    r = row({"intensity_comparisons": [old]}, "slf_beats_window")
    assert r["verdict"] == "inconclusive" and "rerun" in r["reason"]
    one_case = {**comparison(math.nan).to_dict(), "n_cases": 1}
    r = row({"intensity_comparisons": [one_case]}, "slf_beats_window")
    assert r["verdict"] == "inconclusive" and "fewer than 2" in r["reason"]


def test_comparisons_may_be_dicts_and_each_list_has_its_claim():
    inputs = {"loss_comparisons": [comparison(0.001, a="dice", b="ath").to_dict()],
              "ensemble_vs_members": [comparison(0.001, -0.05, a="member", b="ensemble")]}
    table = evaluate_claims(inputs).set_index("id")
    assert table.loc["ath_improves", "verdict"] == "reproduced"
    assert "+5.00 pp" in table.loc["ath_improves", "ours"]
    assert table.loc["ensemble_beats_members", "verdict"] == "opposite"
    assert table.loc["slf_beats_window", "verdict"] == "not measured"


def organ_family(better: int, worse: int, n: int = 22) -> list[Comparison]:
    return ([comparison(0.0001, 0.05, a="unet", b="sepnet", metric="mean_dice") for _ in range(better)]
            + [comparison(0.0001, -0.05, a="unet", b="sepnet", metric="mean_dice") for _ in range(worse)]
            + [comparison(0.5, 0.01, a="unet", b="sepnet", metric="mean_dice")
               for _ in range(n - better - worse)])


@pytest.mark.parametrize("better, worse, verdict", [(14, 3, "reproduced"), (3, 15, "opposite"),
                                                    (8, 4, "inconclusive")])
def test_most_organs_rule(better, worse, verdict):
    r = row({"organ_comparisons": [c.to_dict() for c in organ_family(better, worse)]}, "sepnet_most_organs")
    assert r["verdict"] == verdict
    assert f"better in {better} of 22 organs, worse in {worse}" in r["ours"]


def test_most_organs_without_tests_is_inconclusive():
    r = row({"organ_count": OrganCount("unet", "sepnet", "dice", 14, 3, 5, 22, True)}, "sepnet_most_organs")
    assert r["verdict"] == "inconclusive" and "not computed" in r["reason"]
    assert row({"organ_count": OrganCount("unet", "sepnet", "dice", 0, 0, 0, 0, True)},
               "sepnet_most_organs")["verdict"] == "not measured"


@pytest.mark.parametrize("uncertainty, gate, verdict", [
    ({"auroc_cases": {"mean": 0.8, "ci_low": 0.75, "ci_high": 0.85, "n_cases": 20}}, None, "reproduced"),
    ({"auroc_cases": {"mean": 0.8, "ci_low": 0.75, "ci_high": 0.85, "n_cases": 20}}, False, "inconclusive"),
    ({"auroc_cases": {"mean": 0.6, "ci_low": 0.55, "ci_high": 0.65, "n_cases": 20}}, None, "inconclusive"),
    ({"auroc_cases": {"mean": 0.52, "ci_low": 0.45, "ci_high": 0.59, "n_cases": 20}}, None, "inconclusive"),
    ({"auroc_cases": {"mean": 0.3, "ci_low": 0.25, "ci_high": 0.35, "n_cases": 20}}, None, "opposite"),
    ({"auroc": 0.9}, None, "inconclusive"),
    ({}, None, "not measured"),
])
def test_uncertainty_rule(uncertainty, gate, verdict):
    inputs = {"uncertainty": uncertainty} | ({"gate": {"ensemble": gate}} if gate is not None else {})
    r = row(inputs, "uncertainty_errors")
    assert r["verdict"] == verdict
    if "auroc_cases" in uncertainty:
        assert r["unit"] == "AUROC" and r["n_cases"] == 20


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
    ("structseg", [0.79, 0.60], "not reproduced"),
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

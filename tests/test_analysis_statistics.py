"""The statistical procedure of the book (sepnet_core.analysis.statistics) on synthetic score tables with
known effects: planted effects are found, absent ones are not (at the stated rates), Holm by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from sepnet_core.analysis.statistics import ALPHA, VERDICTS, holm, paired_effect, verdict

N_CASES, N_SEEDS = 20, 3
# Noise scenarios (standard deviations in Dice units): case difficulty (shared), seed-to-seed, residual
# per (run, case), case-by-configuration interaction.
SCENARIOS = {
    "seed noise dominates": (0.05, 0.02, 0.01, 0.005),
    "interaction dominates": (0.05, 0.005, 0.01, 0.02),
    "balanced": (0.05, 0.01, 0.02, 0.01),
}


def simulate(rng, n_tables, scenario, effect, n_seeds=N_SEEDS, n_cases=N_CASES):
    """``n_tables`` pairs of score tables (n_tables, n_seeds, n_cases) with ``b - a = effect`` planted."""
    sd_case, sd_seed, sd_res, sd_inter = SCENARIOS[scenario]
    case = rng.normal(0.8, sd_case, (n_tables, 1, n_cases))

    def arm(mu):
        return (mu + case + rng.normal(0, sd_inter, (n_tables, 1, n_cases))
                + rng.normal(0, sd_seed, (n_tables, n_seeds, 1))
                + rng.normal(0, sd_res, (n_tables, n_seeds, n_cases)))

    return arm(0.0), arm(effect)


def true_se(scenario, n_seeds=N_SEEDS, n_cases=N_CASES):
    """Standard deviation of the effect estimate under the simulation model."""
    _, sd_seed, sd_res, sd_inter = SCENARIOS[scenario]
    var = 2 * sd_inter**2 / n_cases + 2 * sd_seed**2 / n_seeds + 2 * sd_res**2 / (n_seeds * n_cases)
    return math.sqrt(var)


def binomial_upper(rate, n, z=3.0):
    """Rate plus z binomial standard errors: the tolerance of an estimated rejection rate."""
    return rate + z * math.sqrt(rate * (1 - rate) / n)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_no_planted_effect_is_found_at_most_at_the_stated_rate(scenario):
    rng = np.random.default_rng(sum(map(ord, scenario)))
    n = 1000
    a, b = simulate(rng, n, scenario, 0.0)
    p = np.array([paired_effect(a[i], b[i]).p_value for i in range(n)])
    false_positive = float(np.mean(p < ALPHA))
    assert false_positive <= binomial_upper(ALPHA, n)  # 5 % + 3 binomial SE = 7.1 %


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_a_planted_effect_is_found_with_the_stated_power(scenario):
    rng = np.random.default_rng(1 + sum(map(ord, scenario)))
    n, effect = 200, 5 * true_se(scenario)  # 5 standard errors: 3.9 to 8.3 Dice points
    a, b = simulate(rng, n, scenario, effect)
    results = [paired_effect(a[i], b[i]) for i in range(n)]
    power = np.mean([r.p_value < ALPHA and r.effect > 0 for r in results])
    assert power >= 0.80
    coverage = np.mean([r.ci_low <= effect <= r.ci_high for r in results])
    assert coverage >= 0.95 - 3 * math.sqrt(0.05 * 0.95 / n)


def test_the_interval_covers_a_planted_effect_with_one_seed_and_a_known_spread():
    rng = np.random.default_rng(7)
    n, effect = 1000, 0.02
    a, b = simulate(rng, n, "seed noise dominates", effect, n_seeds=1)
    # the spread of one run's mean score: seed plus residual averaged over cases
    spread = math.sqrt(0.02**2 + 0.01**2 / N_CASES)
    results = [paired_effect(a[i], b[i], seed_spread=spread, seed_spread_dof=50) for i in range(n)]
    assert all(r.seed_variance == "baseline" for r in results)
    coverage = np.mean([r.ci_low <= effect <= r.ci_high for r in results])
    assert coverage >= binomial_upper(0.95, n, -3.0)


def test_one_seed_each_and_no_spread_is_a_paired_t_test_with_unknown_seed_variance():
    rng = np.random.default_rng(3)
    a, b = rng.normal(0.7, 0.05, 12), rng.normal(0.72, 0.05, 12)
    unknown = paired_effect(a, b)
    assert unknown.seed_variance == "unknown" and math.isnan(unknown.p_value)
    known = paired_effect(a, b, seed_spread=0.0)  # no seed noise: exactly the paired t test
    reference = stats.ttest_rel(b, a)
    assert known.p_value == pytest.approx(reference.pvalue, rel=1e-9)
    assert known.effect == pytest.approx(np.mean(b - a))
    assert known.dof == pytest.approx(11)
    low, high = reference.confidence_interval(0.95)
    assert (known.ci_low, known.ci_high) == pytest.approx((low, high), rel=1e-9)


def test_variance_is_the_case_term_plus_each_arms_seed_term_by_hand():
    a = np.array([[0.70, 0.80, 0.60], [0.72, 0.78, 0.64]])
    b = np.array([[0.75, 0.85, 0.62], [0.71, 0.83, 0.70], [0.74, 0.86, 0.66]])
    d = b.mean(0) - a.mean(0)
    terms = [(np.var(d, ddof=1) / 3, 2), (np.var(a.mean(1), ddof=1) / 2, 1),
             (np.var(b.mean(1), ddof=1) / 3, 2)]
    var = sum(t for t, _ in terms)
    dof = var**2 / sum(t * t / f for t, f in terms)
    result = paired_effect(a, b)
    assert result.effect == pytest.approx(b.mean() - a.mean())
    assert result.se == pytest.approx(math.sqrt(var))
    assert result.dof == pytest.approx(dof)
    assert result.p_value == pytest.approx(2 * stats.t.sf(abs(result.effect) / result.se, dof))
    assert (result.n_cases, result.n_seeds_a, result.n_seeds_b) == (3, 2, 3)


def test_a_case_with_a_missing_score_is_left_out_of_both_arms():
    a = np.array([[0.7, 0.8, np.nan, 0.6]])
    b = np.array([[0.75, 0.85, 0.9, 0.62]])
    result = paired_effect(a, b, seed_spread=0.0)
    assert result.n_cases == 3
    assert result.effect == pytest.approx(np.mean([0.05, 0.05, 0.02]))


@pytest.mark.parametrize("a, b, match", [
    (np.zeros((2, 3)), np.zeros((2, 4)), "same cases"),
    (np.zeros((2, 1)), np.zeros((2, 1)), "at least 2 cases"),
    (np.array([[np.inf, 0.1]]), np.zeros((1, 2)), "infinite"),
    (np.zeros((2, 2, 2)), np.zeros((2, 2)), "array of scores"),
])
def test_bad_score_arrays_are_rejected(a, b, match):
    with pytest.raises(ValueError, match=match):
        paired_effect(a, b)


def test_holm_against_a_hand_computed_family():
    # sorted: 0.005 x 4 = 0.02; 0.01 x 3 = 0.03; 0.03 x 2 = 0.06; 0.04 x 1 = 0.04 -> max(0.06, 0.04) = 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    adjusted = holm([0.2, np.nan, 0.01])  # NaN does not count: m = 2
    assert adjusted[0] == pytest.approx(0.2) and math.isnan(adjusted[1])
    assert adjusted[2] == pytest.approx(0.02)
    assert holm([0.6, 0.7]) == pytest.approx([1.0, 1.0])
    with pytest.raises(ValueError, match="lie in"):
        holm([1.5])


def test_holm_keeps_the_family_wise_error_rate_over_many_null_families():
    rng = np.random.default_rng(11)
    p = rng.uniform(size=(4000, 6))  # six true nulls per family
    any_rejected = np.mean([(holm(row) < ALPHA).any() for row in p])
    assert any_rejected <= binomial_upper(ALPHA, 4000)
    assert np.mean((p < ALPHA).any(axis=1)) > 0.2  # uncorrected: about 1 - 0.95**6 = 26 %


def test_verdicts():
    assert verdict(0.03, 0.01) == ("reproduced", "")
    assert verdict(-0.03, 0.01)[0] == "opposite"
    assert verdict(-2.0, 0.01, higher_is_better=False)[0] == "reproduced"  # HD95 lower is better
    assert verdict(0.03, 0.2)[0] == "inconclusive"
    assert verdict(0.03, 0.01, gate_passed=False) == ("inconclusive",
                                                     "not trained: a run failed the trained-model gate")
    assert verdict(0.03, math.nan)[0] == "inconclusive"
    assert verdict(0.03, 0.01, measurable=False)[0] == "not measurable without StructSeg"
    assert {verdict(e, p)[0] for e in (-1, 1) for p in (0.01, 0.5)} <= set(VERDICTS)

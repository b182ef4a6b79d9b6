"""One statistical procedure for every comparison of the book: effect, 95 % interval, p-value, Holm, verdict.

**The design.** Two configurations ``a`` and ``b`` (e.g. the U-Net and the SepNet) are each trained with
one or more seeds, and every run is evaluated on the same test cases. A score per run and case (e.g. the
case's weighted Dice) gives one array per configuration, shape ``(n_seeds, n_cases)``, columns paired
across configurations (same case). The *effect* is ``mean(b) - mean(a)``, the difference of the grand
means (for complete tables, the difference of the configurations' mean run scores).

**The model: crossed random effects, fitted by the method of moments** (not a bootstrap), with

    y[x, s, c] = mu_x + case_c + g_x[c] + seed_x[s] + e_x[s, c]

(``case_c`` shared by both configurations, so it cancels in the paired difference; ``g`` the
case-by-configuration interaction; seeds nested in configurations). The variance of the effect is
estimated as

    var_hat = var_c(d_c) / n_cases + sum_x var_s(r_x[s]) / n_seeds_x

where ``d_c = mean_s y[b, s, c] - mean_s y[a, s, c]`` is the paired per-case difference and
``r_x[s]`` the mean over cases of run ``s`` (sample variances, ddof=1). Its expectation is the true
variance plus ``sigma_e^2 (1/n_a + 1/n_b) / n_cases``, so it is *conservative* by the residual term only
(the same overlap as resampling both cases and seeds in a "pigeonhole" bootstrap, Owen 2007). The
95 % interval is ``effect +- t * sqrt(var_hat)`` with Welch-Satterthwaite degrees of freedom, the p-value
the two-sided t test of ``effect = 0``.

**Why not the hierarchical bootstrap.** With three seeds an arm has 10 distinct seed resamples and the
bootstrap variance of its seed mean is (n - 1) / n = 2/3 of the unbiased one, so when seed-to-seed noise
dominates (as it does for briefly trained networks) a percentile bootstrap that resamples seeds within
arms and cases across arms rejects a true null well above its nominal rate. The t interval with
Satterthwaite degrees of freedom accounts for having only a few seeds. ``tests/test_analysis_statistics.py``
checks this procedure's false-positive rate (at most 5 % plus three binomial standard errors over 1,000
simulated null tables of 20 cases x 3 seeds, in three noise regimes), its power (at least 80 % for an
effect of five standard errors, over 200 tables) and the coverage of its interval.

**One seed.** A configuration with one seed has no seed variance of its own. When the seed-to-seed
standard deviation of a run score was measured on another configuration (the multi-seed baseline) it is
used for that arm (``seed_spread``, with ``seed_spread_dof`` degrees of freedom); without it the seed
variance is unknown and the verdict is *inconclusive*.

**Families and verdicts.** p-values are Holm-corrected within each family of claims (:func:`holm`: e.g.
the two loss comparisons, the six member-vs-ensemble comparisons, the 22 organs). A comparison is
*reproduced* when its corrected p-value is below :data:`ALPHA` and the effect favours the paper's
configuration, *opposite* when it is below :data:`ALPHA` the other way, *inconclusive* otherwise (or
when a run failed the trained-model gate, or the seed spread is unknown); a claim about the hidden test
set is *not measurable without StructSeg* (:data:`VERDICTS`, :func:`verdict`). The 95 % interval shown
is the unadjusted one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
from scipy import stats as _st

__all__ = [
    "ALPHA",
    "VERDICTS",
    "PairedEffect",
    "holm",
    "paired_effect",
    "verdict",
]

ALPHA = 0.05
"""Family-wise error rate of the Holm-corrected tests."""

VERDICTS: tuple[str, ...] = ("reproduced", "opposite", "inconclusive", "not measurable without StructSeg")
"""The verdicts of a statistical comparison."""


@dataclass(frozen=True)
class PairedEffect:
    """Result of :func:`paired_effect` (score units: Dice fraction, mm, ...).

    Attributes:
        effect: ``mean(b) - mean(a)``.
        ci_low: Lower end of the interval of ``effect`` (``confidence``, unadjusted).
        ci_high: Upper end.
        p_value: Two-sided p-value of ``effect = 0`` (uncorrected); NaN when the seed variance is unknown.
        se: Standard error of ``effect``.
        dof: Welch-Satterthwaite degrees of freedom of the t interval.
        n_cases: Paired cases.
        n_seeds_a: Seeds of a.
        n_seeds_b: Seeds of b.
        seed_variance: ``"seeds"`` (both arms have >= 2 seeds), ``"baseline"`` (an arm with one seed
            took ``seed_spread``) or ``"unknown"`` (an arm with one seed and no spread: p is NaN).
        confidence: Coverage of the interval.
    """

    effect: float
    ci_low: float
    ci_high: float
    p_value: float
    se: float
    dof: float
    n_cases: int
    n_seeds_a: int
    n_seeds_b: int
    seed_variance: str
    confidence: float = 0.95

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the fields."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PairedEffect:
        """Inverse of :meth:`to_dict` (extra keys ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def _scores(values: Any, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.shape[0] < 1 or array.shape[1] < 1:
        raise ValueError(f"{name} must be a (n_seeds, n_cases) array of scores, got shape {array.shape}")
    if np.isinf(array).any():
        raise ValueError(f"{name} holds infinite scores; count misses with a finite penalty first")
    return array


def paired_effect(
    a: Any,
    b: Any,
    *,
    seed_spread: float | None = None,
    seed_spread_dof: int | None = None,
    confidence: float = 0.95,
) -> PairedEffect:
    """Effect of ``b`` over ``a``, its interval and p-value (procedure in the module docstring).

    Args:
        a: Scores of configuration a, shape (n_seeds_a, n_cases) (a 1-D array is one seed). Column ``c``
            of ``a`` and of ``b`` is the same test case. A case with a NaN in any run is left out of both.
        b: Scores of configuration b, shape (n_seeds_b, n_cases).
        seed_spread: Seed-to-seed standard deviation of one run's mean score, measured elsewhere; used
            for an arm with a single seed.
        seed_spread_dof: Degrees of freedom of ``seed_spread`` (its number of seeds - 1); default 2.
        confidence: Coverage of the interval, in (0, 1).

    Returns:
        A :class:`PairedEffect`.

    Raises:
        ValueError: arrays not 2-D, different numbers of cases, infinite scores, fewer than 2 complete
            cases, a negative or non-finite ``seed_spread``, ``confidence`` outside (0, 1).
    """
    a, b = _scores(a, "a"), _scores(b, "b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"a and b must score the same cases: a has {a.shape[1]} cases, b {b.shape[1]}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence={confidence!r} must lie in (0, 1)")
    if seed_spread is not None and (not math.isfinite(seed_spread) or seed_spread < 0):
        raise ValueError(f"seed_spread={seed_spread!r} must be a finite number >= 0")
    complete = np.isfinite(a).all(axis=0) & np.isfinite(b).all(axis=0)
    a, b = a[:, complete], b[:, complete]
    n_cases = a.shape[1]
    if n_cases < 2:
        raise ValueError(f"a paired comparison needs at least 2 cases scored in every run, got {n_cases}")
    effect = float(b.mean() - a.mean())
    d = b.mean(axis=0) - a.mean(axis=0)
    terms = [(float(d.var(ddof=1)) / n_cases, n_cases - 1)]  # (variance term, its degrees of freedom)
    source = "seeds"
    for arm in (a, b):
        n = arm.shape[0]
        if n >= 2:
            terms.append((float(arm.mean(axis=1).var(ddof=1)) / n, n - 1))
        elif seed_spread is not None:
            terms.append((seed_spread**2 / n, seed_spread_dof if seed_spread_dof else 2))
            source = "baseline"
        else:
            source = "unknown"
    var = sum(t for t, _ in terms)
    se = math.sqrt(var)
    denom = sum(t * t / f for t, f in terms if t > 0)
    dof = var * var / denom if denom > 0 else math.inf
    if se == 0.0:
        low = high = effect
        p = 1.0 if effect == 0.0 else 0.0
    else:
        half = float(_st.t.ppf(0.5 + confidence / 2, dof)) * se
        low, high = effect - half, effect + half
        p = float(2 * _st.t.sf(abs(effect) / se, dof))
    if source == "unknown":
        p = math.nan
    return PairedEffect(effect=effect, ci_low=low, ci_high=high, p_value=p, se=se, dof=dof, n_cases=n_cases,
                        n_seeds_a=a.shape[0], n_seeds_b=b.shape[0], seed_variance=source,
                        confidence=confidence)


def holm(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values of one family (NaN entries stay NaN and do not count).

    Sorted ascending, ``p_(i)`` becomes ``max_{j <= i} min(1, (m - j + 1) p_(j))`` with ``m`` the number
    of finite p-values; a hypothesis is rejected at family-wise level alpha when its adjusted p < alpha.

    Args:
        p_values: p-values of the family, any order, each in [0, 1] or NaN.

    Returns:
        Adjusted p-values in the input order (float array).

    Raises:
        ValueError: a p-value outside [0, 1].
    """
    p = np.asarray(p_values, dtype=float).reshape(-1)
    finite = np.isfinite(p)
    if ((p[finite] < 0) | (p[finite] > 1)).any():
        raise ValueError(f"p-values must lie in [0, 1], got {p[finite].tolist()}")
    out = np.full(p.shape, np.nan)
    idx = np.flatnonzero(finite)
    m = idx.size
    if m == 0:
        return out
    order = idx[np.argsort(p[idx], kind="stable")]
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(scaled)
    return out


def verdict(
    effect: float,
    p_adjusted: float,
    higher_is_better: bool = True,
    *,
    gate_passed: bool | None = True,
    measurable: bool = True,
    alpha: float = ALPHA,
) -> tuple[str, str]:
    """Verdict and reason of one comparison whose ``b`` is the configuration the paper favours.

    Args:
        effect: ``mean(b) - mean(a)``.
        p_adjusted: Holm-corrected p-value (NaN: seed variance unknown).
        higher_is_better: True for Dice, False for HD95.
        gate_passed: Every run of both configurations passed the trained-model gate (None: not known).
        measurable: False for a claim that needs the StructSeg hidden test set.
        alpha: Family-wise level.

    Returns:
        ``(verdict, reason)``; the verdict is one of :data:`VERDICTS`.
    """
    if not measurable:
        return VERDICTS[3], "needs the StructSeg hidden test set"
    if gate_passed is False:
        return VERDICTS[2], "not trained: a run failed the trained-model gate"
    if not math.isfinite(p_adjusted):
        return VERDICTS[2], "seed spread unknown (one seed)"
    if p_adjusted >= alpha:
        return VERDICTS[2], f"not significant after the Holm correction (p = {p_adjusted:.2g} >= {alpha:g})"
    favoured = (effect > 0) == higher_is_better
    reason = "" if gate_passed else "trained-model gate not known"
    return (VERDICTS[0] if favoured else VERDICTS[1]), reason

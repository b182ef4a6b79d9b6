"""The summary page: every claim of ``shared/paper.md`` beside our number, its statistics and a verdict.

The paper's numbers and claims are data (:mod:`sepnet_core.analysis.paper_numbers`).
:func:`evaluate_claims` takes what the stages measured (keys of :data:`INPUT_KEYS`) and gives one row per
claim, or one row per comparison for a claim made of several (e.g. ATH vs Dice and ATH vs exp-log), with
the effect, its 95 % interval, the Holm-corrected p-value, the numbers of cases and seeds, the
trained-model gate and a verdict (:data:`VERDICTS`):

* **Comparisons** (SLF vs window, ATH vs Dice / exp-log, ensemble vs members, and the 22 organs of
  SepNet vs U-Net) use the one procedure of :mod:`sepnet_core.analysis.statistics` through
  :func:`sepnet_core.analysis.comparison.compare`, with the paper's favoured configuration as ``b``. The
  p-values are Holm-corrected within each claim (its *family*); *reproduced* when the corrected p is
  below :data:`~sepnet_core.analysis.statistics.ALPHA` in the paper's direction, *opposite* the other
  way, *inconclusive* otherwise, or whenever a run of either configuration failed the trained-model gate
  (input ``gate``), or the seed spread of a one-seed configuration is unknown. "Most organs":
  reproduced when more than half of the organs are significantly better after Holm over the organs,
  opposite when more than half are worse.
* **Uncertainty**: the per-case error-detection AUROC of the vote entropy, with its interval over
  cases; reproduced when the interval lies above 0.5 and the mean reaches :data:`STRONG_AUROC`, opposite
  when it lies below 0.5, inconclusive otherwise (no p-value over levels or voxels).
* **Exact quantities** (parameters, FLOPs, time, vote-entropy levels): reproduced or *not reproduced*
  by a fixed rule (:data:`PARAM_FRACTION_MAX`, :data:`FLOP_HALF_RANGE`); there is no sampling noise.
* Hidden-test-set scores and the challenge rank: always *not measurable without StructSeg*; ours is
  shown and labelled not comparable. Member validation Dice: the same unless ``inputs["data"] ==
  "structseg"``. A claim whose input is missing gets *not measured*.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from sepnet_core.analysis.claims_exact import (
    FLOP_HALF_RANGE,
    MEMBER_DICE_TOLERANCE,
    PARAM_FRACTION_MAX,
    _flops,
    _levels,
    _members,
    _params,
    _slower,
    vote_entropy_levels,
)
from sepnet_core.analysis.comparison import Comparison, OrganCount
from sepnet_core.analysis.paper_numbers import (
    PAPER_CLAIMS,
    PAPER_NUMBERS,
    PaperClaim,
    PaperNumber,
)
from sepnet_core.analysis.statistics import holm, verdict

__all__ = [
    "VERDICTS", "PAPER_NUMBERS", "PAPER_CLAIMS", "INPUT_KEYS", "CLAIM_COLUMNS", "PARAM_FRACTION_MAX",
    "FLOP_HALF_RANGE", "STRONG_AUROC", "MEMBER_DICE_TOLERANCE",
    "PaperNumber", "PaperClaim", "Claim", "assess_claims", "evaluate_claims", "vote_entropy_levels",
]

VERDICTS: tuple[str, ...] = ("reproduced", "opposite", "inconclusive", "not reproduced",
                             "not measurable without StructSeg", "not measured")
"""Verdicts of the claims table: the four of :data:`sepnet_core.analysis.statistics.VERDICTS` for
comparisons, "not reproduced" for an exact quantity that misses the claim, and "not measured"."""

STRONG_AUROC = 0.7
"""Mean per-case error-detection AUROC counted as 'highly correlated'."""

INPUT_KEYS: dict[str, str] = {
    "data": "'phantom' (default) or 'structseg': what our numbers were measured on",
    "ensemble_scores": "mapping with 'weighted_dice' (fraction) and 'weighted_hd95' (mm) of our ensemble "
                       "(optional 'weighted_hd95_penalized', 'n_missed')",
    "param_counts": "{'sepnet': int, 'unet': int} at base 24 (count_parameters)",
    "organ_comparisons": "list of Comparison (or dicts), one per organ, a = 'unet', b = 'sepnet'",
    "organ_count": "OrganCount (or its dict) of count_organs_better (used when no organ_comparisons)",
    "network_comparison": "Comparison (or dict) of compare(table, 'unet', 'sepnet'), shown with the organs",
    "intensity_comparisons": "list of Comparison, a = a window config, b = an SLF config",
    "loss_comparisons": "list of Comparison, a = Dice or exp-log, b = ATH",
    "uncertainty": "{'auroc_cases': auroc_interval(...) (mean, ci_low, ci_high, n_cases), 'region': str}",
    "ensemble_vs_members": "list of Comparison, a = a member, b = the ensemble",
    "cost": "cost_table DataFrame (index or column 'model' with 'sepnet' and 'unet')",
    "member_scores": "per_run_scores DataFrame of the members (column 'mean_dice') or a list of floats",
    "uncertainty_levels": "{'levels': observed vote-entropy values (nats), 'members': ensemble size}",
    "gate": "trained-model gate, {config: bool}; key 'ensemble': every member passed",
}
"""Keys :func:`evaluate_claims` understands, with what each holds."""

CLAIM_COLUMNS: tuple[str, ...] = ("id", "comparison", "text", "paper_value", "ours", "effect", "ci_low",
                                  "ci_high", "unit", "p_holm", "n_cases", "n_seeds", "gate", "verdict",
                                  "reason", "evidence")
"""Columns of :func:`evaluate_claims`."""


@dataclass(frozen=True)
class Claim:
    """One row of the summary table.

    Attributes:
        id: Claim id (:data:`PAPER_CLAIMS`).
        text: The claim in words.
        paper_value: The paper's value as shown.
        ours: Our measurement as shown ("—" when not measured).
        verdict: One of :data:`VERDICTS`.
        evidence: Stage (book page) that measured it.
        reason: Why the rule gave this verdict.
        comparison: ``"b vs a"`` for a row of a comparison claim, else "".
        effect: The effect (``b - a``) in ``unit``; NaN for claims that are not comparisons.
        ci_low: Lower end of its 95 % interval (unadjusted).
        ci_high: Upper end.
        unit: ``"pp"`` (Dice percentage points), ``"mm"``, ``"AUROC"``, ``"organs"``, or "".
        p_holm: Holm-corrected p-value within the claim's family.
        n_cases: Paired test cases (0 when not applicable).
        n_seeds: Seeds of a / b, e.g. ``"3 / 3"`` ("" when not applicable).
        gate: ``"passed"``, ``"failed"``, ``"not known"``, or "" (not applicable).
    """

    id: str
    text: str
    paper_value: str
    ours: str
    verdict: str
    evidence: str
    reason: str = ""
    comparison: str = ""
    effect: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan
    unit: str = ""
    p_holm: float = math.nan
    n_cases: int = 0
    n_seeds: str = ""
    gate: str = ""

    @property
    def verdict_text(self) -> str:
        """Verdict and reason, e.g. "inconclusive (not trained: a run failed the trained-model gate)"."""
        return f"{self.verdict} ({self.reason})" if self.reason else self.verdict


Row = dict[str, Any]  # fields of Claim other than id, text, paper_value, evidence
_MISSING: list[Row] = [{"ours": "—", "verdict": "not measured", "reason": "input missing"}]


# ------------------------------------------------------------------------------------------ helpers
def _comparison(value: Any) -> Comparison:
    if isinstance(value, Comparison):
        return value
    if isinstance(value, Mapping):
        return Comparison.from_dict(value)
    raise TypeError(f"expected a Comparison or its dict, got {type(value).__name__}")


def _scale(c: Comparison) -> tuple[float, str]:
    return (100.0, "pp") if "dice" in c.metric else (1.0, "mm")


def _fmt_diff(c: Comparison) -> str:
    scale, unit = _scale(c)
    ci = f" [{c.ci_low * scale:+.2f}, {c.ci_high * scale:+.2f}]" if math.isfinite(c.ci_low) else ""
    return f"{c.b} vs {c.a}: {c.difference * scale:+.2f} {unit}{ci}"


def _gate_of(c: Comparison, gate: Mapping[str, bool] | None) -> bool | None:
    """Gate of a comparison: from ``gate`` for its two configs where given, else the comparison's own."""
    if gate:
        known = [bool(gate[k]) for k in (c.a, c.b) if k in gate]
        if False in known:
            return False
        if len(known) == 2:
            return True
    return c.gate_passed


def _gate_text(passed: bool | None) -> str:
    return {True: "passed", False: "failed", None: "not known"}[passed]


def _comparison_rows(values: Any, gate: Mapping[str, bool] | None) -> list[Row]:
    """One row per comparison of a family, p-values Holm-corrected within it."""
    if isinstance(values, (Comparison, Mapping)):
        values = [values]
    comps = [_comparison(v) for v in values]
    if not comps:
        return _MISSING
    adjusted = holm([c.p_value for c in comps])
    rows = []
    for c, p in zip(comps, adjusted, strict=True):
        passed = _gate_of(c, gate)
        scale, unit = _scale(c)
        verdict_, reason = verdict(c.difference, float(p), c.higher_is_better, gate_passed=passed)
        if not math.isfinite(c.p_value) and passed is not False:
            if c.n_cases < 2:
                reason = "fewer than 2 paired test cases: no interval or p-value"
            elif c.spread_known:
                reason = "no p-value in the stage's result (written before the procedure: rerun it)"
        rows.append({"comparison": f"{c.b} vs {c.a}", "ours": _fmt_diff(c), "effect": c.difference * scale,
                     "ci_low": c.ci_low * scale, "ci_high": c.ci_high * scale, "unit": unit,
                     "p_holm": float(p), "n_cases": int(c.n_cases),
                     "n_seeds": f"{c.n_seeds_a} / {c.n_seeds_b}", "gate": _gate_text(passed),
                     "verdict": verdict_, "reason": reason})
    return rows


def _on(data: str) -> str:
    return "real StructSeg data, local split" if data == "structseg" else "the phantom"


def _one(ours: str, verdict_: str, reason: str = "") -> list[Row]:
    return [{"ours": ours, "verdict": verdict_, "reason": reason}]


# ----------------------------------------------------------------------------------------- the rules
def _test_score(key: str, fmt: Callable[[float], str]) -> Callable[[Mapping[str, Any]], list[Row]]:
    def rule(inputs: Mapping[str, Any]) -> list[Row]:
        scores = inputs.get("ensemble_scores")
        value = float(scores[key]) if scores is not None and key in scores else math.nan
        ours = f"{fmt(value)} on {_on(inputs.get('data', 'phantom'))}" if math.isfinite(value) else "—"
        if math.isfinite(value) and key == "weighted_hd95" and "weighted_hd95_penalized" in scores:
            ours += (f", misses skipped; {float(scores['weighted_hd95_penalized']):.3f} mm with the "
                     f"{int(scores.get('n_missed', 0))} missed organs at the image-diagonal penalty")
        return _one(ours, "not measurable without StructSeg",
                    "the hidden test set is not public; ours is not comparable")
    return rule


def _organs(inputs: Mapping[str, Any]) -> list[Row]:
    values = inputs.get("organ_comparisons")
    overall = inputs.get("network_comparison")
    suffix = f"; overall {_fmt_diff(_comparison(overall))}" if overall is not None else ""
    if not values:
        count = inputs.get("organ_count")
        if count is None:
            return _MISSING
        count = count if isinstance(count, OrganCount) else OrganCount.from_dict(count)
        if count.n_organs == 0:
            return _MISSING
        ours = f"{count.b} better in {count.n_better} of {count.n_organs} organs, worse in {count.n_worse}"
        return _one(ours + suffix, "inconclusive", "per-organ tests not computed (margin rule only)")
    comps = [_comparison(v) for v in values]
    rows = _comparison_rows(comps, inputs.get("gate"))
    better = sum(r["verdict"] == "reproduced" for r in rows)
    worse = sum(r["verdict"] == "opposite" for r in rows)
    n, first = len(rows), comps[0]
    ours = (f"{first.b} significantly better in {better} of {n} organs, worse in {worse} "
            f"(Holm over the {n} organs){suffix}")
    gates = {r["gate"] for r in rows}
    gate = "failed" if "failed" in gates else ("passed" if gates == {"passed"} else "not known")
    if gate == "failed":
        verdict_, reason = "inconclusive", "not trained: a run failed the trained-model gate"
    elif better > n / 2:
        verdict_, reason = "reproduced", ""
    elif worse > n / 2:
        verdict_, reason = "opposite", f"{first.a} better in most organs"
    else:
        verdict_, reason = "inconclusive", "no more than half of the organs differ significantly"
    return [{"comparison": f"{first.b} vs {first.a}, per organ", "ours": ours, "unit": "organs",
             "effect": float(better), "n_cases": int(first.n_cases),
             "n_seeds": f"{first.n_seeds_a} / {first.n_seeds_b}", "gate": gate, "verdict": verdict_,
             "reason": reason}]


def _comparison_rule(key: str) -> Callable[[Mapping[str, Any]], list[Row]]:
    def rule(inputs: Mapping[str, Any]) -> list[Row]:
        value = inputs.get(key)
        if value is None or (isinstance(value, Sequence) and not value):
            return _MISSING
        return _comparison_rows(value, inputs.get("gate"))
    return rule


def _uncertainty(inputs: Mapping[str, Any]) -> list[Row]:
    unc = inputs.get("uncertainty") or {}
    cases = unc.get("auroc_cases")
    if not cases:
        if unc.get("auroc") is None:
            return _MISSING
        ours = f"error-detection AUROC {float(unc['auroc']):.3f} (voxels pooled over cases)"
        return _one(ours, "inconclusive", "per-case AUROC not computed: no interval over cases")
    mean, low, high = (float(cases[k]) for k in ("mean", "ci_low", "ci_high"))
    n = int(cases["n_cases"])
    ours = f"per-case error-detection AUROC {mean:.3f} [{low:.3f}, {high:.3f}] over {n} cases"
    if unc.get("region"):
        ours += f" (region: {unc['region']})"
    gate = (inputs.get("gate") or {}).get("ensemble")
    row = {"ours": ours, "effect": mean, "ci_low": low, "ci_high": high, "unit": "AUROC", "n_cases": n,
           "gate": _gate_text(None if gate is None else bool(gate))}
    if gate is not None and not gate:
        return [{**row, "verdict": "inconclusive", "reason": "not trained: a member failed the gate"}]
    if math.isfinite(low) and low > 0.5 and mean >= STRONG_AUROC:
        return [{**row, "verdict": "reproduced", "reason": ""}]
    if math.isfinite(high) and high < 0.5:
        return [{**row, "verdict": "opposite", "reason": "uncertainty is lower where the labels are wrong"}]
    reason = (f"the interval includes 0.5 or the mean is below {STRONG_AUROC}" if math.isfinite(low)
              else "fewer than 2 cases: no interval")
    return [{**row, "verdict": "inconclusive", "reason": reason}]


def _exact(rule: Callable[[Mapping[str, Any]], tuple[str, str, str, str]]
           ) -> Callable[[Mapping[str, Any]], list[Row]]:
    """A row from a rule of an exact quantity returning (ours, how exact, verdict, reason)."""
    def wrapped(inputs: Mapping[str, Any]) -> list[Row]:
        ours, _, verdict_, reason = rule(inputs)
        return _one(ours, verdict_, reason)
    return wrapped


_RULES: dict[str, Callable[[Mapping[str, Any]], list[Row]]] = {
    "test_weighted_dice": _test_score("weighted_dice", lambda v: f"{v * 100:.2f} %"),
    "test_weighted_hd95": _test_score("weighted_hd95", lambda v: f"{v:.3f} mm"),
    "params_one_third": _exact(_params),
    "sepnet_most_organs": _organs,
    "slf_beats_window": _comparison_rule("intensity_comparisons"),
    "ath_improves": _comparison_rule("loss_comparisons"),
    "uncertainty_errors": _uncertainty,
    "ensemble_beats_members": _comparison_rule("ensemble_vs_members"),
    "half_flops": _exact(_flops),
    "sepnet_slower_naive": _exact(_slower),
    "member_valid_dice": _exact(_members),
    "third_place": lambda inputs: _one("—", "not measurable without StructSeg",
                                       "a challenge rank needs the challenge's hidden test set and entries"),
    "vote_entropy_levels": _exact(_levels),
}


def assess_claims(inputs: Mapping[str, Any]) -> list[Claim]:
    """Judge every claim of :data:`PAPER_CLAIMS` from the measured ``inputs`` (keys of :data:`INPUT_KEYS`).

    Returns:
        One :class:`Claim` per claim, or per comparison of a comparison claim, in page order.

    Raises:
        ValueError: an unknown key (the message lists the valid ones), or ``data`` not "phantom"/"structseg".
    """
    unknown = sorted(set(inputs) - set(INPUT_KEYS))
    if unknown:
        raise ValueError(f"unknown input key(s) {unknown}; valid keys: {', '.join(INPUT_KEYS)}")
    if inputs.get("data", "phantom") not in ("phantom", "structseg"):
        raise ValueError(f"inputs['data']={inputs['data']!r} must be 'phantom' or 'structseg'")
    return [Claim(id=spec.id, text=spec.text, paper_value=spec.paper_value, evidence=spec.evidence, **row)
            for spec in PAPER_CLAIMS for row in _RULES[spec.id](inputs)]


def evaluate_claims(inputs: Mapping[str, Any]) -> pd.DataFrame:
    """The summary table: one row per claim of :data:`PAPER_CLAIMS`, per comparison for comparison claims.

    Args:
        inputs: Measured results under the keys of :data:`INPUT_KEYS`; any may be missing (its claims
            then read "not measured"). Comparisons and organ counts may be given as objects or as their
            ``to_dict()`` (as read back from a stage's JSON).

    Returns:
        DataFrame with the columns :data:`CLAIM_COLUMNS`: the effect and its interval in ``unit``
        (percentage points of Dice, mm, AUROC), ``p_holm`` (Holm-corrected within the claim), ``n_cases``,
        ``n_seeds`` (a / b), ``gate``, ``verdict`` (one of :data:`VERDICTS`), ``reason``, ``evidence``.

    Raises:
        ValueError: unknown input key.
    """
    return pd.DataFrame([asdict(c) for c in assess_claims(inputs)], columns=list(CLAIM_COLUMNS))

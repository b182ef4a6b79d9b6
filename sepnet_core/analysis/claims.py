"""The summary page: every claim of ``shared/paper.md`` beside our number and a verdict from a rule.

The paper's numbers live in one table, :data:`PAPER_NUMBERS` (value, unit, source). The claims are
data, :data:`PAPER_CLAIMS`. :func:`evaluate_claims` takes what the stages measured (keys of
:data:`INPUT_KEYS`) and gives each claim a verdict (:data:`VERDICTS`) by these rules:

* **Comparisons** (SLF vs window, ATH vs Dice / exp-log, ensemble vs members), from the ``outcome`` of
  :func:`sepnet_core.analysis.comparison.compare` with the paper's favoured config as ``b``:
  ``"b better"`` -> reproduced (partly reproduced when the seed spread is unknown); ``"a better"``,
  ``"within seed-to-seed spread"``, ``"no clear difference"`` -> not reproduced, with that reason. A
  list of comparisons is reproduced when all are, not reproduced when none is, partly otherwise.
* **Most organs** (SepNet vs U-Net): :class:`~sepnet_core.analysis.comparison.OrganCount` with
  ``n_better > n_organs / 2`` -> reproduced (partly with one seed, where the margin is 0);
  ``n_better > n_worse`` -> partly; else not reproduced.
* **Parameters**: ratio SepNet / U-Net at base 24 <= :data:`PARAM_FRACTION_MAX` -> reproduced, partly
  when the counts differ from the reference code's.
* **FLOPs**: ratio within :data:`FLOP_HALF_RANGE` -> reproduced. **Time**: SepNet's training step
  slower than U-Net's -> reproduced (machine-dependent).
* **Uncertainty**: Spearman rho (level vs error rate) >= :data:`STRONG_RHO` with p < :data:`P_LEVEL`,
  and error-detection AUROC >= :data:`STRONG_AUROC` (each when given) -> reproduced; rho > 0 or
  AUROC > 0.5 -> partly; else not reproduced.
* Hidden-test-set scores: always "not measurable without StructSeg"; ours is shown and labelled not
  comparable. Member validation Dice: the same unless ``inputs["data"] == "structseg"``, then
  reproduced when every member lies within :data:`MEMBER_DICE_TOLERANCE` of the paper's range.
* A claim whose input is missing gets "not measured".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from sepnet_core.analysis.comparison import Comparison, OrganCount
from sepnet_core.analysis.uncertainty_analysis import SpearmanResult

__all__ = [
    "VERDICTS", "PAPER_NUMBERS", "PAPER_CLAIMS", "INPUT_KEYS", "PARAM_FRACTION_MAX", "FLOP_HALF_RANGE",
    "STRONG_RHO", "STRONG_AUROC", "P_LEVEL", "MEMBER_DICE_TOLERANCE",
    "PaperNumber", "PaperClaim", "Claim", "assess_claims", "evaluate_claims", "vote_entropy_levels",
]

VERDICTS: tuple[str, ...] = ("reproduced", "partly reproduced", "not reproduced",
                             "not measurable without StructSeg", "not measured")

# Rule constants (our choices, not the paper's numbers).
PARAM_FRACTION_MAX = 0.40
"""'One third of the parameters' holds for a SepNet / U-Net ratio up to this."""
FLOP_HALF_RANGE = (0.40, 0.60)
"""'About half the FLOPs' holds for a SepNet / U-Net FLOP ratio in this closed range."""
STRONG_RHO = 0.7
"""Spearman rho counted as 'highly correlated'."""
STRONG_AUROC = 0.7
"""Error-detection AUROC counted as a useful detector."""
P_LEVEL = 0.05
"""Significance level of the Spearman test."""
MEMBER_DICE_TOLERANCE = 0.02
"""On real StructSeg data, members within this of the paper's validation Dice range count as matching."""


@dataclass(frozen=True)
class PaperNumber:
    """A number stated by the paper or its reference code. ``value`` in ``unit``; ``source`` says where."""

    value: float
    unit: str
    source: str


PAPER_NUMBERS: dict[str, PaperNumber] = {
    "test_weighted_dice": PaperNumber(0.8052, "fraction", "abstract: 6-model ensemble, StructSeg 2019 task 1 "
                                      "hidden test set (3rd place)"),
    "test_weighted_hd95": PaperNumber(3.043, "mm", "abstract: 6-model ensemble, hidden test set"),
    "params_sepnet_b24": PaperNumber(2505527, "parameters", "reference code, 3D-SepNet base 24"),
    "params_unet_b24": PaperNumber(9179207, "parameters", "reference code, 3D U-Net base 24"),
    "param_fraction": PaperNumber(1 / 3, "ratio", "abstract: 'one third of the parameters of 3D U-Net'"),
    "gflop_sepnet_b24": PaperNumber(358, "GFLOP", "shared/paper.md measurement (not the paper): one "
                                    "16x120x120 patch, forward + backward, PyTorch 2.13"),
    "gflop_unet_b24": PaperNumber(704, "GFLOP", "shared/paper.md measurement, same setting"),
    "train_step_s_sepnet_b24": PaperNumber(5.0, "s", "shared/paper.md measurement: about 5 s, 2-core CPU"),
    "train_step_s_unet_b24": PaperNumber(3.3, "s", "shared/paper.md measurement: about 3.3 s, 2-core CPU"),
    "challenge_rank": PaperNumber(3, "rank", "abstract: 3rd place in StructSeg 2019 task 1"),
    "top_weighted_dice": PaperNumber(0.8109, "fraction", "public leaderboard summary (not the paper): "
                                     "first place's weighted Dice"),
    "member_valid_dice_min": PaperNumber(0.794, "fraction", "reference code artefacts: local validation "
                                         "mean Dice of the six members"),
    "member_valid_dice_max": PaperNumber(0.799, "fraction", "reference code artefacts, same"),
}
"""Every number of the paper (or its code, or ``shared/paper.md``'s measurement) used on the page."""

_REFERENCE_SHAPE = "1x1x16x120x120"
_N = PAPER_NUMBERS


@dataclass(frozen=True)
class PaperClaim:
    """A claim as data: ``id``, its ``text``, the paper's value as shown, and the stage measuring it."""

    id: str
    text: str
    paper_value: str
    evidence: str


PAPER_CLAIMS: tuple[PaperClaim, ...] = (
    PaperClaim("test_weighted_dice", "6-model ensemble: weighted Dice on the StructSeg 2019 hidden test set",
               f"{_N['test_weighted_dice'].value * 100:.2f} %", "ensemble"),
    PaperClaim("test_weighted_hd95", "6-model ensemble: weighted HD95 on the StructSeg 2019 hidden test set",
               f"{_N['test_weighted_hd95'].value:.3f} mm", "ensemble"),
    PaperClaim("params_one_third", "3D-SepNet has one third of the parameters of 3D U-Net (base 24)",
               f"{_N['params_sepnet_b24'].value:,.0f} / {_N['params_unet_b24'].value:,.0f} "
               f"= {_N['params_sepnet_b24'].value / _N['params_unet_b24'].value:.2f}", "performance"),
    PaperClaim("sepnet_most_organs", "3D-SepNet has better Dice than 3D U-Net for most organs",
               "better for most of 22 organs", "ablation_network"),
    PaperClaim("slf_beats_window", "SLF intensity transform beats window width/level", "SLF better",
               "ablation_intensity"),
    PaperClaim("ath_improves", "ATH loss improves accuracy over Dice and exp-log losses", "ATH better",
               "ablation_loss"),
    PaperClaim("uncertainty_errors", "Ensemble vote-entropy uncertainty is highly correlated with errors",
               "error rate rises with uncertainty", "ensemble"),
    PaperClaim("ensemble_beats_members", "The ensemble is better than each member (implicit)",
               "ensemble better", "ensemble"),
    PaperClaim("half_flops", "3D-SepNet does about half the FLOPs of 3D U-Net (forward + backward)",
               f"{_N['gflop_sepnet_b24'].value:.0f} / {_N['gflop_unet_b24'].value:.0f} GFLOP", "performance"),
    PaperClaim("sepnet_slower_naive", "Yet 3D-SepNet runs slower in a naive implementation",
               f"{_N['train_step_s_sepnet_b24'].value:g} s vs {_N['train_step_s_unet_b24'].value:g} s",
               "performance"),
    PaperClaim("third_place", "3rd place in StructSeg 2019 task 1 (first place: weighted Dice "
               f"{_N['top_weighted_dice'].value:.4f}, public leaderboard)", "3rd of the challenge",
               "ensemble"),
    PaperClaim("vote_entropy_levels", "With 6 members the vote entropy takes few values "
               "(6-0: 0; 5-1: 0.4506; 4-2: 0.6365; 3-3: 0.6931; 4-1-1: 0.8676; 3-2-1: 1.0114; ...)",
               "one level per vote split", "ensemble"),
    PaperClaim("member_valid_dice", "Each ensemble member reaches a local validation mean Dice of about 0.8",
               f"{_N['member_valid_dice_min'].value:.3f}-{_N['member_valid_dice_max'].value:.3f}",
               "ensemble"),
)
"""The claims of ``shared/paper.md`` ("Headline results" and the reference-code facts), in page order."""

INPUT_KEYS: dict[str, str] = {
    "data": "'phantom' (default) or 'structseg': what our numbers were measured on",
    "ensemble_scores": "mapping with 'weighted_dice' (fraction) and 'weighted_hd95' (mm) of our ensemble",
    "param_counts": "{'sepnet': int, 'unet': int} at base 24 (count_parameters)",
    "organ_count": "OrganCount (or its dict) of count_organs_better(table, 'unet', 'sepnet')",
    "network_comparison": "Comparison (or dict) of compare(table, 'unet', 'sepnet')",
    "intensity_comparisons": "list of Comparison, a = a window config, b = an SLF config",
    "loss_comparisons": "list of Comparison, a = Dice or exp-log, b = ATH",
    "uncertainty": "{'spearman': SpearmanResult or dict (level vs error rate), 'auroc': float}",
    "ensemble_vs_members": "list of Comparison, a = a member, b = the ensemble",
    "cost": "cost_table DataFrame (index or column 'model' with 'sepnet' and 'unet')",
    "member_scores": "per_run_scores DataFrame of the members (column 'mean_dice') or a list of floats",
    "uncertainty_levels": "{'levels': observed vote-entropy values (nats), 'members': ensemble size}",
}
"""Keys :func:`evaluate_claims` understands, with what each holds."""


@dataclass(frozen=True)
class Claim:
    """One row of the summary table.

    Attributes:
        id: Claim id (:data:`PAPER_CLAIMS`).
        text: The claim in words.
        paper_value: The paper's value as shown.
        ours: Our measurement as shown ("—" when not measured).
        spread: What the uncertainty of ours is (seed spread, CI, p-value, "exact").
        verdict: One of :data:`VERDICTS`.
        evidence: Stage (book page) that measured it.
        reason: Why the rule gave this verdict (e.g. "difference within seed-to-seed spread").
    """

    id: str
    text: str
    paper_value: str
    ours: str
    spread: str
    verdict: str
    evidence: str
    reason: str = ""

    @property
    def verdict_text(self) -> str:
        """Verdict and reason, e.g. "not reproduced (difference within seed-to-seed spread)"."""
        return f"{self.verdict} ({self.reason})" if self.reason else self.verdict


Result = tuple[str, str, str, str]  # ours, spread, verdict, reason
_MISSING: Result = ("—", "—", "not measured", "input missing")


# ------------------------------------------------------------------------------------------ helpers
def _comparison(value: Any) -> Comparison:
    if isinstance(value, Comparison):
        return value
    if isinstance(value, Mapping):
        return Comparison.from_dict(value)
    raise TypeError(f"expected a Comparison or its dict, got {type(value).__name__}")


def _fmt_diff(c: Comparison) -> str:
    scale, unit = (100.0, " pp") if "dice" in c.metric else (1.0, " mm")
    ci = (f" [{c.ci_low * scale:+.2f}, {c.ci_high * scale:+.2f}]" if math.isfinite(c.ci_low) else "")
    return f"{c.b} vs {c.a}: {c.difference * scale:+.2f}{unit}{ci}"


def _fmt_spread(c: Comparison) -> str:
    scale, unit = (100.0, " pp") if "dice" in c.metric else (1.0, " mm")
    if not c.spread_known:
        return "seed spread unknown (one seed)"
    return f"seed std {c.spread * scale:.2f}{unit} ({c.spread_source})"


def _one_comparison(c: Comparison) -> tuple[str, str]:
    """(verdict, reason) of a single comparison whose ``b`` is the paper's favoured config."""
    one_seed = "" if c.spread_known else "; one seed, seed spread unknown"
    if c.outcome == "b better":
        if c.spread_known:
            return "reproduced", ""
        return "partly reproduced", "bootstrap CI excludes 0" + one_seed
    if c.outcome == "a better":
        return "not reproduced", f"opposite: {c.a} better" + one_seed
    if c.outcome == "within seed-to-seed spread":
        return "not reproduced", "difference within seed-to-seed spread"
    return "not reproduced", "bootstrap CI includes 0" + one_seed


def _comparisons(values: Any) -> Result:
    if isinstance(values, (Comparison, Mapping)):
        values = [values]
    comps = [_comparison(v) for v in values]
    if not comps:
        return _MISSING
    judged = [_one_comparison(c) for c in comps]
    verdicts = {v for v, _ in judged}
    verdict = verdicts.pop() if len(verdicts) == 1 else "partly reproduced"
    reasons = [f"{c.b} vs {c.a}: {r}" for c, (_, r) in zip(comps, judged, strict=True) if r]
    if len({r for _, r in judged}) == 1:  # one shared reason: say it once
        reasons = [judged[0][1]] if judged[0][1] else []
    ours = "; ".join(_fmt_diff(c) for c in comps)
    spread = "; ".join(dict.fromkeys(_fmt_spread(c) for c in comps))
    return ours, spread, verdict, "; ".join(reasons)


def _cost_frame(value: Any) -> pd.DataFrame:
    frame = value if isinstance(value, pd.DataFrame) else pd.DataFrame(value)
    if "model" in frame.columns:
        frame = frame.set_index("model")
    missing = [m for m in ("sepnet", "unet") if m not in frame.index]
    if missing:
        raise ValueError(f"inputs['cost'] lacks row(s) {missing}; it has {list(frame.index)}")
    return frame


def _on(data: str) -> str:
    return "real StructSeg data, local split" if data == "structseg" else "the phantom"


# ----------------------------------------------------------------------------------------- the rules
def _test_score(key: str, fmt: Callable[[float], str]) -> Callable[[Mapping[str, Any]], Result]:
    def rule(inputs: Mapping[str, Any]) -> Result:
        scores = inputs.get("ensemble_scores")
        value = float(scores[key]) if scores is not None and key in scores else math.nan
        ours = f"{fmt(value)} on {_on(inputs.get('data', 'phantom'))}" if math.isfinite(value) else "—"
        reason = "the hidden test set is not public; ours is not comparable"
        return ours, "—", "not measurable without StructSeg", reason
    return rule


def _params(inputs: Mapping[str, Any]) -> Result:
    counts = inputs.get("param_counts")
    if not counts:
        return _MISSING
    sepnet, unet = int(counts["sepnet"]), int(counts["unet"])
    ratio = sepnet / unet
    ours = f"{sepnet:,} / {unet:,} = {ratio:.2f}"
    same = sepnet == _N["params_sepnet_b24"].value and unet == _N["params_unet_b24"].value
    if ratio > PARAM_FRACTION_MAX:
        return ours, "exact", "not reproduced", f"ratio above {PARAM_FRACTION_MAX}"
    if not same:
        return ours, "exact", "partly reproduced", "ratio as claimed, counts differ from the reference code's"
    return ours, "exact", "reproduced", "counts equal the reference code's"


def _most_organs(inputs: Mapping[str, Any]) -> Result:
    value = inputs.get("organ_count")
    if value is None:
        return _MISSING
    count = value if isinstance(value, OrganCount) else OrganCount.from_dict(value)
    if count.n_organs == 0:
        return _MISSING
    ours = f"{count.b} better in {count.n_better} of {count.n_organs} organs, worse in {count.n_worse}"
    if inputs.get("network_comparison") is not None:
        ours += f"; overall {_fmt_diff(_comparison(inputs['network_comparison']))}"
    spread = ("margin 2 x seed std per organ" if count.spread_known
              else "seed spread unknown (one seed): margin 0")
    if count.n_better > count.n_organs / 2:
        if count.spread_known:
            return ours, spread, "reproduced", ""
        return ours, spread, "partly reproduced", "one seed: differences not judged against seed spread"
    if count.n_better > count.n_worse:
        reason = f"more organs better than worse, but not most ({count.n_within} within spread)"
        return ours, spread, "partly reproduced", reason
    if count.spread_known and count.n_within >= count.n_organs / 2:
        reason = f"difference within seed-to-seed spread for {count.n_within} organs"
        return ours, spread, "not reproduced", reason
    return ours, spread, "not reproduced", f"{count.b} better in {count.n_better} organs only"


def _comparison_rule(key: str) -> Callable[[Mapping[str, Any]], Result]:
    def rule(inputs: Mapping[str, Any]) -> Result:
        return _MISSING if not inputs.get(key) else _comparisons(inputs[key])
    return rule


def _uncertainty(inputs: Mapping[str, Any]) -> Result:
    unc = inputs.get("uncertainty") or {}
    spearman, auroc = unc.get("spearman"), unc.get("auroc")
    if isinstance(spearman, Mapping):
        spearman = SpearmanResult.from_dict(spearman)
    rho = spearman.rho if spearman is not None else math.nan
    auroc = float(auroc) if auroc is not None else math.nan
    if not (math.isfinite(rho) or math.isfinite(auroc)):
        return _MISSING
    parts, strong, positive, spread = [], [], [], "—"
    if math.isfinite(rho):
        parts.append(f"Spearman rho {rho:.2f} (level vs error rate)")
        strong.append(rho >= STRONG_RHO and spearman.p_value < P_LEVEL)
        positive.append(rho > 0)
        spread = f"p = {spearman.p_value:.2g} over {spearman.n} levels"
    if math.isfinite(auroc):
        parts.append(f"error-detection AUROC {auroc:.3f}")
        strong.append(auroc >= STRONG_AUROC)
        positive.append(auroc > 0.5)
    ours = "; ".join(parts)
    if all(strong):
        return ours, spread, "reproduced", ""
    if any(positive):
        reason = (f"positive but below the strong thresholds (rho >= {STRONG_RHO}, p < {P_LEVEL}, "
                  f"AUROC >= {STRONG_AUROC})")
        return ours, spread, "partly reproduced", reason
    return ours, spread, "not reproduced", "uncertainty does not rise with errors"


def _flops(inputs: Mapping[str, Any]) -> Result:
    if inputs.get("cost") is None:
        return _MISSING
    frame = _cost_frame(inputs["cost"])
    sepnet, unet = float(frame.loc["sepnet", "gflop_train"]), float(frame.loc["unet", "gflop_train"])
    ratio = sepnet / unet
    shape = str(frame.loc["sepnet", "input_shape"]) if "input_shape" in frame.columns else "?"
    ours = f"{sepnet:.1f} / {unet:.1f} GFLOP = {ratio:.2f} (input {shape})"
    reference = (shape == _REFERENCE_SHAPE and "parameters" in frame.columns
                 and int(frame.loc["sepnet", "parameters"]) == _N["params_sepnet_b24"].value
                 and int(frame.loc["unet", "parameters"]) == _N["params_unet_b24"].value)
    if reference:
        match = (abs(sepnet / _N["gflop_sepnet_b24"].value - 1) <= 0.01
                 and abs(unet / _N["gflop_unet_b24"].value - 1) <= 0.01)
        note = "counts match paper.md's within 1 %" if match else "counts differ from paper.md's"
    else:
        note = "other base or input than paper.md's; ratio compared only"
    low, high = FLOP_HALF_RANGE
    verdict = "reproduced" if low <= ratio <= high else "not reproduced"
    return ours, "exact count", verdict, note


def _slower(inputs: Mapping[str, Any]) -> Result:
    if inputs.get("cost") is None:
        return _MISSING
    frame = _cost_frame(inputs["cost"])
    if "train_step_s" not in frame.columns:
        return _MISSING
    sepnet, unet = float(frame.loc["sepnet", "train_step_s"]), float(frame.loc["unet", "train_step_s"])
    if not (math.isfinite(sepnet) and math.isfinite(unet)):
        return _MISSING
    shape = str(frame.loc["sepnet", "input_shape"]) if "input_shape" in frame.columns else "?"
    ours = f"{sepnet:.2f} s vs {unet:.2f} s per training step (input {shape})"
    verdict = "reproduced" if sepnet > unet else "not reproduced"
    return ours, "median of repeated runs on one machine", verdict, "machine-dependent"


def _members(inputs: Mapping[str, Any]) -> Result:
    value = inputs.get("member_scores")
    data = inputs.get("data", "phantom")
    if value is None:
        dice = np.zeros(0)
    elif isinstance(value, pd.DataFrame):
        dice = value["mean_dice"].to_numpy(dtype=float)
    else:
        dice = np.asarray(list(value), dtype=float)
    dice = dice[np.isfinite(dice)]
    ours = f"{dice.min():.3f}-{dice.max():.3f} on {_on(data)} ({dice.size} members)" if dice.size else "—"
    if data != "structseg":
        reason = "not comparable to the reference code's validation"
        return ours, "—", "not measurable without StructSeg", reason
    if not dice.size:
        return _MISSING
    low = _N["member_valid_dice_min"].value - MEMBER_DICE_TOLERANCE
    high = _N["member_valid_dice_max"].value + MEMBER_DICE_TOLERANCE
    inside = (dice >= low) & (dice <= high)
    verdict = "reproduced" if inside.all() else ("partly reproduced" if inside.any() else "not reproduced")
    spread = f"members' range; tolerance {MEMBER_DICE_TOLERANCE}"
    return ours, spread, verdict, f"{inside.sum()} of {dice.size} within tolerance"


def vote_entropy_levels(members: int) -> np.ndarray:
    """Every value the vote entropy ``-sum_c f_c ln f_c`` can take with ``members`` votes (nats), sorted:
    one per partition of ``members`` into vote counts (6 members: 11 levels, 0 to ln 6)."""
    if isinstance(members, bool) or not isinstance(members, int) or members < 1:
        raise ValueError(f"members={members!r} must be an integer >= 1")

    def partitions(n: int, largest: int) -> list[list[int]]:
        if n == 0:
            return [[]]
        return [[k, *rest] for k in range(min(n, largest), 0, -1) for rest in partitions(n - k, k)]

    values = {round(-sum(k / members * math.log(k / members) for k in split), 9) + 0.0
              for split in partitions(members, members)}
    return np.array(sorted(values))


def _levels(inputs: Mapping[str, Any]) -> Result:
    value = inputs.get("uncertainty_levels")
    if not value or not len(value.get("levels", ())):
        return _MISSING
    members = int(value["members"])
    observed = np.unique(np.round(np.asarray(value["levels"], dtype=float), 4))
    theory = vote_entropy_levels(members)
    matched = np.array([np.isclose(theory, v, atol=1e-4).any() for v in observed])
    ours = (f"{observed.size} distinct levels observed with {members} members "
            f"({theory.size} possible): " + ", ".join(f"{v:.4f}" for v in observed))
    if matched.all():
        return ours, "exact", "reproduced", "every observed level is a vote-split entropy"
    reason = f"{int((~matched).sum())} observed levels are not vote-split entropies"
    return ours, "exact", "not reproduced", reason


_RULES: dict[str, Callable[[Mapping[str, Any]], Result]] = {
    "test_weighted_dice": _test_score("weighted_dice", lambda v: f"{v * 100:.2f} %"),
    "test_weighted_hd95": _test_score("weighted_hd95", lambda v: f"{v:.3f} mm"),
    "params_one_third": _params,
    "sepnet_most_organs": _most_organs,
    "slf_beats_window": _comparison_rule("intensity_comparisons"),
    "ath_improves": _comparison_rule("loss_comparisons"),
    "uncertainty_errors": _uncertainty,
    "ensemble_beats_members": _comparison_rule("ensemble_vs_members"),
    "half_flops": _flops,
    "sepnet_slower_naive": _slower,
    "member_valid_dice": _members,
    "third_place": lambda inputs: ("—", "—", "not measurable without StructSeg",
                                   "a challenge rank needs the challenge's hidden test set and entries"),
    "vote_entropy_levels": _levels,
}


def assess_claims(inputs: Mapping[str, Any]) -> list[Claim]:
    """Judge every claim of :data:`PAPER_CLAIMS` from the measured ``inputs`` (keys of :data:`INPUT_KEYS`).

    Raises:
        ValueError: an unknown key (the message lists the valid ones), or ``data`` not "phantom"/"structseg".
    """
    unknown = sorted(set(inputs) - set(INPUT_KEYS))
    if unknown:
        raise ValueError(f"unknown input key(s) {unknown}; valid keys: {', '.join(INPUT_KEYS)}")
    if inputs.get("data", "phantom") not in ("phantom", "structseg"):
        raise ValueError(f"inputs['data']={inputs['data']!r} must be 'phantom' or 'structseg'")
    claims = []
    for spec in PAPER_CLAIMS:
        ours, spread, verdict, reason = _RULES[spec.id](inputs)
        claims.append(Claim(spec.id, spec.text, spec.paper_value, ours, spread, verdict, spec.evidence,
                            reason))
    return claims


def evaluate_claims(inputs: Mapping[str, Any]) -> pd.DataFrame:
    """The summary table: one row per claim of :data:`PAPER_CLAIMS`, in order.

    Args:
        inputs: Measured results under the keys of :data:`INPUT_KEYS`; any may be missing (its claims
            then read "not measured"). Comparisons, organ counts and Spearman results may be given as
            objects or as their ``to_dict()`` (as read back from a stage's JSON).

    Returns:
        DataFrame with columns ``id``, ``text``, ``paper_value``, ``ours``, ``spread``, ``verdict`` (one of
        :data:`VERDICTS`), ``reason``, ``evidence`` (stage name).

    Raises:
        ValueError: unknown input key.
    """
    rows = [asdict(c) for c in assess_claims(inputs)]
    columns = ["id", "text", "paper_value", "ours", "spread", "verdict", "reason", "evidence"]
    return pd.DataFrame(rows)[columns]

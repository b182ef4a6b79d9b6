"""Rules of the claims about exact quantities (parameters, FLOPs, step time, member scores, vote-entropy
levels): no sampling noise, so a fixed rule gives *reproduced* or *not reproduced*. Used by
:mod:`sepnet_core.analysis.claims`; each rule returns ``(ours, how exact, verdict, reason)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from sepnet_core.analysis.paper_numbers import _REFERENCE_SHAPE, PAPER_NUMBERS

__all__ = ["FLOP_HALF_RANGE", "MEMBER_DICE_TOLERANCE", "PARAM_FRACTION_MAX", "vote_entropy_levels"]

PARAM_FRACTION_MAX = 0.40
"""'One third of the parameters' holds for a SepNet / U-Net ratio up to this."""
FLOP_HALF_RANGE = (0.40, 0.60)
"""'About half the FLOPs' holds for a SepNet / U-Net FLOP ratio in this closed range."""
MEMBER_DICE_TOLERANCE = 0.02
"""On real StructSeg data, members within this of the paper's validation Dice range count as matching."""

_N = PAPER_NUMBERS
Result = tuple[str, str, str, str]  # ours, how exact, verdict, reason
_MISSING_EXACT: Result = ("—", "—", "not measured", "input missing")


def _on(data: str) -> str:
    return "real StructSeg data, local split" if data == "structseg" else "the phantom"


def _cost_frame(value: Any) -> pd.DataFrame:
    frame = value if isinstance(value, pd.DataFrame) else pd.DataFrame(value)
    if "model" in frame.columns:
        frame = frame.set_index("model")
    missing = [m for m in ("sepnet", "unet") if m not in frame.index]
    if missing:
        raise ValueError(f"inputs['cost'] lacks row(s) {missing}; it has {list(frame.index)}")
    return frame


def _params(inputs: Mapping[str, Any]) -> Result:
    counts = inputs.get("param_counts")
    if not counts:
        return _MISSING_EXACT
    sepnet, unet = int(counts["sepnet"]), int(counts["unet"])
    ratio = sepnet / unet
    ours = f"{sepnet:,} / {unet:,} = {ratio:.2f}"
    same = sepnet == _N["params_sepnet_b24"].value and unet == _N["params_unet_b24"].value
    if ratio > PARAM_FRACTION_MAX:
        return ours, "exact", "not reproduced", f"ratio above {PARAM_FRACTION_MAX}"
    if not same:
        return ours, "exact", "reproduced", "ratio as claimed; counts differ from the reference code's"
    return ours, "exact", "reproduced", "counts equal the reference code's"


def _flops(inputs: Mapping[str, Any]) -> Result:
    if inputs.get("cost") is None:
        return _MISSING_EXACT
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
        return _MISSING_EXACT
    frame = _cost_frame(inputs["cost"])
    if "train_step_s" not in frame.columns:
        return _MISSING_EXACT
    sepnet, unet = float(frame.loc["sepnet", "train_step_s"]), float(frame.loc["unet", "train_step_s"])
    if not (math.isfinite(sepnet) and math.isfinite(unet)):
        return _MISSING_EXACT
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
        return _MISSING_EXACT
    low = _N["member_valid_dice_min"].value - MEMBER_DICE_TOLERANCE
    high = _N["member_valid_dice_max"].value + MEMBER_DICE_TOLERANCE
    inside = (dice >= low) & (dice <= high)
    verdict = "reproduced" if inside.all() else "not reproduced"
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
        return _MISSING_EXACT
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

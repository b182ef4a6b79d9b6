"""The paper's numbers and claims as data (``shared/paper.md``): what the summary page judges.

:data:`PAPER_NUMBERS` holds every number of the paper (or its reference code, or ``shared/paper.md``'s
measurement) with unit and source; :data:`PAPER_CLAIMS` the claims, in page order, each with the stage
(book page) that measures it. The rules live in :mod:`sepnet_core.analysis.claims`.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PAPER_CLAIMS", "PAPER_NUMBERS", "PaperClaim", "PaperNumber"]


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
    "nnunet_weighted_dice": PaperNumber(0.7988, "fraction", "public leaderboard summary (not the paper): "
                                        "nnU-Net's weighted Dice"),
    "leaderboard_weighted_dice_3": PaperNumber(0.7956, "fraction", "public leaderboard summary (not the "
                                               "paper): the third of the top weighted-Dice scores listed"),
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

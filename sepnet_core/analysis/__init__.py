"""Analysis behind the book's pages: ablation comparisons, uncertainty, network cost, the claims table.

The notebooks stay thin (parameters, calls into this package, a figure or table); every number they
show is computed here, and tested.

* :mod:`~sepnet_core.analysis.comparison`: per-run scores, seed-to-seed spread, paired bootstrap and
  the verdict rule of an ablation (:func:`compare`); :mod:`~sepnet_core.analysis.per_organ`:
  organs x configs tables and :func:`count_organs_better`.
* :mod:`~sepnet_core.analysis.uncertainty_analysis`: error rate per uncertainty level, Spearman,
  error-detection AUROC, organ uncertainty vs Dice, the region of interest;
  :mod:`~sepnet_core.analysis.uncertainty_cases`: the claim judged per case (AUROC and error rates with
  intervals over cases); :mod:`~sepnet_core.analysis.calibration`:
  reliability table and ECE.
* :mod:`~sepnet_core.analysis.cost`: parameters, FLOPs (forward + backward) and timing of networks.
* :mod:`~sepnet_core.analysis.statistics`: the one statistical procedure (paired effect over cases and
  seeds, Holm, verdicts); :mod:`~sepnet_core.analysis.claims`: the paper's claims
  (:mod:`~sepnet_core.analysis.paper_numbers`) beside ours, with verdicts.
* :mod:`~sepnet_core.analysis.reader`: what a reader of the paper expects (the ensemble's per-organ
  table, the headline beside the paper's figures, the slices to draw).
* :mod:`~sepnet_core.analysis.plots`: figures (matplotlib object API) and atomic PNG writing;
  :mod:`~sepnet_core.analysis.slice_plots`: predictions and uncertainty on chosen slices.

``cost`` (torch), ``plots`` and ``slice_plots`` (matplotlib) are not imported here, so
``import sepnet_core.analysis`` stays light: ``from sepnet_core.analysis.cost import cost_table``,
``from sepnet_core.analysis.plots import organ_bar_chart, save_figure``.
"""

from __future__ import annotations

from sepnet_core.analysis.claims import (
    INPUT_KEYS,
    PAPER_CLAIMS,
    PAPER_NUMBERS,
    VERDICTS,
    Claim,
    PaperClaim,
    PaperNumber,
    assess_claims,
    evaluate_claims,
)
from sepnet_core.analysis.comparison import (
    SCORES,
    SPREAD_FACTOR,
    Comparison,
    OrganCount,
    compare,
    comparisons_table,
    config_summary,
    count_organs_better,
    organ_comparisons,
    organ_differences,
    per_organ_std,
    per_organ_table,
    per_run_scores,
)
from sepnet_core.analysis.statistics import ALPHA, PairedEffect, holm, paired_effect
from sepnet_core.analysis.uncertainty_analysis import (
    MARGIN_MM,
    REGIONS,
    SpearmanResult,
    accumulate_levels,
    accumulate_reliability,
    auroc_from_levels,
    confidence_from_probabilities,
    error_detection_auroc,
    error_rate_by_level,
    expected_calibration_error,
    flag_auroc,
    organ_uncertainty_frame,
    organ_uncertainty_vs_dice,
    reference_flag_table,
    region_mask,
    reliability_table,
    spearman_level_error,
    spearman_uncertainty_dice,
)
from sepnet_core.analysis.uncertainty_cases import auroc_interval, level_table_with_interval, per_case_auroc

__all__ = [
    "ALPHA",
    "PairedEffect",
    "holm",
    "paired_effect",
    "INPUT_KEYS",
    "MARGIN_MM",
    "PAPER_CLAIMS",
    "PAPER_NUMBERS",
    "REGIONS",
    "SCORES",
    "SPREAD_FACTOR",
    "VERDICTS",
    "Claim",
    "Comparison",
    "OrganCount",
    "PaperClaim",
    "PaperNumber",
    "SpearmanResult",
    "accumulate_levels",
    "accumulate_reliability",
    "assess_claims",
    "auroc_from_levels",
    "auroc_interval",
    "compare",
    "comparisons_table",
    "confidence_from_probabilities",
    "config_summary",
    "count_organs_better",
    "error_detection_auroc",
    "error_rate_by_level",
    "evaluate_claims",
    "expected_calibration_error",
    "flag_auroc",
    "level_table_with_interval",
    "reference_flag_table",
    "organ_comparisons",
    "organ_differences",
    "organ_uncertainty_frame",
    "organ_uncertainty_vs_dice",
    "per_organ_std",
    "per_case_auroc",
    "per_organ_table",
    "per_run_scores",
    "region_mask",
    "reliability_table",
    "spearman_level_error",
    "spearman_uncertainty_dice",
]

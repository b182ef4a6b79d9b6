"""Inference: sliding-window prediction of a volume, ensembles of checkpoints, uncertainty maps.

* :func:`predict_volume` (``sliding``): softmax probabilities of a whole volume from one network;
  :func:`predict_slabs` yields them slab by slab along z (no whole-volume float32 accumulator).
* :func:`predict_case` (``ensemble``): HU volume -> fused labels, vote and predictive entropy, with
  each member's own intensity transform and in-plane crop undone.
* :func:`vote_entropy`, :func:`predictive_entropy`, :func:`organ_uncertainty` (``uncertainty``).

Example:
    >>> from sepnet_core.training import load_model  # doctest: +SKIP
    >>> members = [load_model(p) for p in ("runs/a/best.pt", "runs/b/best.pt")]  # doctest: +SKIP
    >>> result = predict_case(members, image_hu)  # doctest: +SKIP
    >>> result.labels.shape == image_hu.shape  # doctest: +SKIP
    True
"""

from __future__ import annotations

from sepnet_core.inference.ensemble import EnsembleResult, predict_case
from sepnet_core.inference.sliding import MODES, predict_slabs, predict_volume
from sepnet_core.inference.uncertainty import organ_uncertainty, predictive_entropy, vote_entropy

__all__ = [
    "MODES",
    "EnsembleResult",
    "organ_uncertainty",
    "predict_case",
    "predict_slabs",
    "predict_volume",
    "predictive_entropy",
    "vote_entropy",
]

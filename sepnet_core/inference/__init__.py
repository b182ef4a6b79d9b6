"""Inference: sliding-window prediction of a volume, ensembles of checkpoints, uncertainty maps.

* :func:`segment` (``segment``): the one entry point, CT (array or file) + checkpoints ->
  :class:`Segmentation` (uint8 labels, uncertainty, probabilities on request, geometry);
  :func:`load_members` loads checkpoints once for a loop over cases.

* :func:`predict_volume` (``sliding``): softmax probabilities of a whole volume from one network;
  :func:`predict_slabs` yields them slab by slab along z (no whole-volume float32 accumulator).
* :func:`predict_case` (``ensemble``): HU volume -> fused labels, vote and predictive entropy, with
  each member's own intensity transform and in-plane crop undone; streaming slabs on the CPU, the
  whole volume on the device (``on_device``) on an accelerator.

Nothing here imports :mod:`sepnet_core.training` (checkpoints: :mod:`sepnet_core.checkpoint`, devices and
precision: :mod:`sepnet_core.device`; ``tests/test_ensemble.py`` checks it).
* :func:`vote_entropy`, :func:`predictive_entropy`, :func:`organ_uncertainty` (``uncertainty``).

Example:
    >>> members = load_members(["runs/a/best.pt", "runs/b/best.pt"], device="cpu")  # doctest: +SKIP
    >>> result = segment(image_hu, members)  # doctest: +SKIP
    >>> result.labels.shape == image_hu.shape  # doctest: +SKIP
    True
"""

from __future__ import annotations

from sepnet_core.inference.ensemble import EnsembleResult, predict_case
from sepnet_core.inference.segmentation import Segmentation, load_members, segment
from sepnet_core.inference.sliding import MODES, predict_slabs, predict_volume
from sepnet_core.inference.uncertainty import organ_uncertainty, predictive_entropy, vote_entropy

__all__ = [
    "MODES",
    "EnsembleResult",
    "Segmentation",
    "load_members",
    "segment",
    "organ_uncertainty",
    "predict_case",
    "predict_slabs",
    "predict_volume",
    "predictive_entropy",
    "vote_entropy",
]

"""Voxel-wise uncertainty of an ensemble: vote entropy (the paper's), predictive entropy, organ means.

* Vote entropy (Lei et al. 2021): ``U = -sum_c f_c ln f_c`` with ``f_c`` the fraction of the M members
  whose label is c. It takes few values; for M = 6: 6-0 -> 0, 5-1 -> 0.4506, 4-2 -> 0.6365,
  3-3 -> 0.6931, 4-1-1 -> 0.8676, 3-2-1 -> 1.0114, 2-2-2 -> 1.0986 (nats).
* Predictive entropy: ``H = -sum_c p_c ln p_c`` of the mean probability (defined for a single model too).

All volumes are (z, y, x); work is done in slabs along z so that no temporary exceeds a few slices'
worth of the largest input.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from sepnet_core.organs import NUM_CLASSES, ORGANS

__all__ = ["vote_entropy", "predictive_entropy", "organ_uncertainty", "vote_entropy_tensor",
           "predictive_entropy_tensor"]

#: Slices per slab of the chunked loops (bounds temporaries to about 16 slices).
_CHUNK_Z = 16


def vote_entropy(member_labels: np.ndarray, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """Entropy of the members' votes per voxel, in nats.

    Uses ``-sum_c f_c ln f_c = -(1/M) sum_m ln f_(label of m)``: each member contributes the log of
    the fraction of members that agree with it, so no loop over classes is needed, and only voxels
    where the members disagree are visited.

    Args:
        member_labels: ``(M, z, y, x)`` integer labels of the M members (uint8), values
            ``0 .. num_classes - 1``.
        num_classes: Number of classes including background (23), used to validate the labels.

    Returns:
        float32 ``(z, y, x)``, 0 where all members agree, at most ``ln(min(M, num_classes))``.

    Raises:
        ValueError: ``member_labels`` is not a 4-D integer array with M >= 1, or holds a label outside
            ``0 .. num_classes - 1``.

    Example:
        >>> votes = np.array([1, 1, 1, 2, 2, 3], dtype=np.uint8).reshape(6, 1, 1, 1)  # 3-2-1
        >>> round(float(vote_entropy(votes)[0, 0, 0]), 4)
        1.0114
    """
    labels = np.asarray(member_labels)
    if labels.ndim != 4 or labels.shape[0] < 1 or labels.dtype.kind not in "iu":
        raise ValueError(f"member_labels must be an integer (M, z, y, x) array with M >= 1, "
                         f"got dtype {labels.dtype} and shape {labels.shape}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes={num_classes!r} must be an integer >= 1")
    members = labels.shape[0]
    out = np.zeros(labels.shape[1:], dtype=np.float32)
    for z0 in range(0, labels.shape[1], _CHUNK_Z):
        chunk = labels[:, z0:z0 + _CHUNK_Z]
        if chunk.size and (chunk.min() < 0 or chunk.max() >= num_classes):
            raise ValueError(f"member_labels has values in [{chunk.min()}, {chunk.max()}]; "
                             f"labels must be 0..{num_classes - 1}")
        disagree = np.zeros(chunk.shape[1:], dtype=bool)
        for m in range(1, members):
            disagree |= chunk[m] != chunk[0]
        if not disagree.any():
            continue
        votes = chunk[:, disagree]  # (M, N) labels of the voxels where members differ
        log_sum = np.zeros(votes.shape[1], dtype=np.float64)
        for m in range(members):
            agreeing = (votes == votes[m]).sum(axis=0)  # members voting like member m (>= 1)
            log_sum += np.log(agreeing / members)
        out[z0:z0 + _CHUNK_Z][disagree] = -log_sum / members
    return out


def predictive_entropy(mean_prob: np.ndarray) -> np.ndarray:
    """Entropy of the (mean) class probabilities per voxel, in nats (``0 ln 0 = 0``).

    Args:
        mean_prob: ``(C, z, y, x)`` probabilities (float16/float32), summing to 1 over C.

    Returns:
        float32 ``(z, y, x)`` in ``[0, ln C]``.

    Raises:
        ValueError: ``mean_prob`` is not a 4-D float array.
    """
    prob = np.asarray(mean_prob)
    if prob.ndim != 4 or prob.dtype.kind != "f":
        raise ValueError(f"mean_prob must be a float (C, z, y, x) array, got dtype {prob.dtype} "
                         f"and shape {prob.shape}")
    out = np.empty(prob.shape[1:], dtype=np.float32)
    for z0 in range(0, prob.shape[1], _CHUNK_Z):
        p = np.clip(prob[:, z0:z0 + _CHUNK_Z].astype(np.float32), 0.0, 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(p > 0, p * np.log(p), 0.0)
        out[z0:z0 + _CHUNK_Z] = np.maximum(-terms.sum(axis=0), 0.0)
    return out


def organ_uncertainty(labels: np.ndarray, uncertainty: np.ndarray) -> dict[str, float]:
    """Mean uncertainty inside each predicted organ.

    Args:
        labels: ``(z, y, x)`` integer labels 0..22 (the fused segmentation).
        uncertainty: ``(z, y, x)`` float map (vote or predictive entropy), same shape.

    Returns:
        ``{organ key: mean}`` for the 22 organs in label order; NaN for an organ not predicted.

    Raises:
        ValueError: shapes differ, ``labels`` is not integer, or a label is outside 0..22.
    """
    labels, uncertainty = np.asarray(labels), np.asarray(uncertainty)
    if labels.shape != uncertainty.shape or labels.ndim != 3:
        raise ValueError(f"labels {labels.shape} and uncertainty {uncertainty.shape} must be (z, y, x) "
                         "arrays of the same shape")
    if labels.dtype.kind not in "iu":
        raise ValueError(f"labels must have an integer dtype, got {labels.dtype}")
    counts = np.zeros(NUM_CLASSES, dtype=np.int64)
    sums = np.zeros(NUM_CLASSES, dtype=np.float64)
    for z0 in range(0, labels.shape[0], _CHUNK_Z):
        lab = labels[z0:z0 + _CHUNK_Z].ravel()
        if lab.size and (lab.min() < 0 or lab.max() >= NUM_CLASSES):
            raise ValueError(f"labels has values in [{lab.min()}, {lab.max()}]; labels must be "
                             f"0..{NUM_CLASSES - 1}")
        counts += np.bincount(lab, minlength=NUM_CLASSES)
        sums += np.bincount(lab, weights=uncertainty[z0:z0 + _CHUNK_Z].ravel(), minlength=NUM_CLASSES)
    return {o.key: (float(sums[o.label] / counts[o.label]) if counts[o.label] else math.nan) for o in ORGANS}


def vote_entropy_tensor(member_labels: torch.Tensor) -> torch.Tensor:
    """:func:`vote_entropy` on a tensor's device: ``(M, z, y, x)`` integer labels -> float32 (z, y, x), nats.

    The per-member log fractions are summed in float64 as the NumPy version does, so both give the same
    float32 values. Labels are not range-checked (the caller made them with an argmax).
    """
    if member_labels.ndim != 4 or member_labels.shape[0] < 1:
        raise ValueError(f"member_labels must be (M, z, y, x) with M >= 1, got {tuple(member_labels.shape)}")
    members = member_labels.shape[0]
    out = torch.zeros(member_labels.shape[1:], dtype=torch.float32, device=member_labels.device)
    for z0 in range(0, member_labels.shape[1], _CHUNK_Z):
        chunk = member_labels[:, z0:z0 + _CHUNK_Z]
        log_sum = torch.zeros(chunk.shape[1:], dtype=torch.float64, device=chunk.device)
        for m in range(members):
            agreeing = (chunk == chunk[m]).sum(dim=0, dtype=torch.float64)
            log_sum += torch.log(agreeing / members)
        out[z0:z0 + _CHUNK_Z] = (-log_sum / members).float()
    return out.clamp_(min=0.0)


def predictive_entropy_tensor(mean_prob: torch.Tensor) -> torch.Tensor:
    """:func:`predictive_entropy` on a tensor's device: ``(C, z, y, x)`` -> float32 (z, y, x), nats."""
    if mean_prob.ndim != 4 or not mean_prob.is_floating_point():
        raise ValueError(f"mean_prob must be a float (C, z, y, x) tensor, got {mean_prob.dtype} "
                         f"{tuple(mean_prob.shape)}")
    out = torch.empty(mean_prob.shape[1:], dtype=torch.float32, device=mean_prob.device)
    for z0 in range(0, mean_prob.shape[1], _CHUNK_Z):
        p = mean_prob[:, z0:z0 + _CHUNK_Z].float().clamp(0.0, 1.0)
        terms = torch.where(p > 0, p * torch.log(p), torch.zeros((), device=p.device))
        out[z0:z0 + _CHUNK_Z] = (-terms.sum(dim=0)).clamp_(min=0.0)
    return out

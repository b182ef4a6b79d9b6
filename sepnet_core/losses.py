"""Training losses: soft Dice, exponential-logarithmic (Wong et al. 2018) and ATH (Lei et al. 2021).

Every loss is an ``nn.Module`` whose ``forward(logits, target)`` takes

* ``logits``: float tensor (B, C, D, H, W), raw network outputs (softmax is applied here; logarithms
  come from ``log_softmax``, so no ``log(0)``); float16/bfloat16 are computed in float32;
* ``target``: int64 tensor (B, D, H, W) of labels in ``0..C-1`` (0 = background),

and returns a scalar tensor. ``g`` below is the one-hot target, ``p`` the softmax probabilities.

Soft Dice, per sample ``b`` and class ``c``, sums over the D x H x W voxels of one sample
(``I = sum p g``, ``P = sum p``, ``G = sum g``), in two forms:

* :func:`soft_dice` (smoothing ``s = 1``), used by :class:`DiceLoss` and by the "intended" weighting::

      Dice_bc = (2 I + s) / (P + G + s)

* :func:`soft_dice_reference`, the reference code's form, used by the "reference" weighting (the
  default of the exp-log and ATH losses), with ``s`` = the number of classes in the Dice term::

      Dice_bc = 2 (I + s) / (P + s + G + s)

Dice is computed **per sample**, as the reference code's ``SoftDiceLoss`` and ``Ldice`` do (it also has
a batch-pooled ``BatchLdice``, unused by its training script).

Losses (paper.md, "Losses"):

* :class:`DiceLoss`: ``1 - mean_{b, c} Dice_bc`` over all classes including background (the baseline).
* :class:`ExpLogLoss`: ``L_dice + L_cross``. ``L_dice`` over the foreground classes (C' = 22 for
  StructSeg) weighted as ``dice_weighting`` says (below); ``L_cross = sum_{foreground voxels v}
  w_{c(v)} (-ln p_{c(v)}(v))^gamma / N``, where ``n_bc`` is the voxel count of class c in sample b,
  ``N = sum_{b, c >= 1} (n_bc + 1)`` and ``w_c = (N / sum_b (n_bc + 1))^0.5``. Background voxels do not
  enter ``L_cross``. The "+1" is added per (sample, class), as in the reference code (paper.md: "counts
  + 1"), so a patch without foreground gives ``L_cross = 0`` rather than 0/0.
* :class:`ATHLoss`: ``L_dice(p') + L_cross(p)`` with, for foreground classes,
  ``p' = p * exp((p - g) / alpha)``: a false positive (g = 0) is inflated by up to ``e^{1/alpha}``, a
  missed foreground voxel (g = 1, small p) is deflated by up to ``e^{-1/alpha}``, easy voxels (p close
  to g) are hardly changed, so hard voxels dominate the Dice term. ``alpha -> inf`` gives ``p' = p``
  and the :class:`ExpLogLoss`. ``p'`` can exceed 1 for a false positive; Dice stays <= 1 because
  ``p' <= p`` wherever ``g = 1``. In float32 ``alpha`` below about 0.012 overflows ``exp``.
  In gradient terms ``dp'/dp = exp((p - g) / alpha) (1 + p / alpha)``: above 1 for false positives
  (3.4 at p = 0.7, alpha = 1), so their share of the Dice gradient rises, but *below* 1 for a missed
  foreground voxel with small p (0.54 at p = 0.2, alpha = 1): ATH lowers Dice (raises the loss) for
  missed foreground, yet gives such a voxel a smaller gradient share. Tests check the false-positive side.

Background (ours, an option): with ``background=True`` (``TrainConfig.loss_background``) the exp-log
and ATH losses also count class 0, in ``L_dice`` (23 classes) and in ``L_cross`` (background voxels
weighted by the same ``(N / N_c)^0.5`` rule). The paper's formulas, the default, never name the
background: it is learnt only through the Dice denominators (a false positive raises ``sum p``), so a
briefly trained network can give background voxels a tiny background probability and label them as
organs. Counting background is the usual remedy (e.g. Dice + cross-entropy in nnU-Net); whether it
helps on the phantom is measured in the book's loss ablation, not assumed.

The Dice-term weighting (``dice_weighting``): the loss the paper trained with. The reference code
(HiLab-git/SepNet, ``models/loss_function.py``; its ``train.py`` trains with
``loss_func = AttentionExpDiceLoss(n_class=class_num, alpha=0.5)``) declares its Dice helper as::

    class Ldice(nn.Module):
        def __init__(self, smooth, n_class):
        ...
        inter = torch.sum(input * target, 2) + self.smooth
        union1 = torch.sum(input, 2) + self.smooth
        union2 = torch.sum(target, 2) + self.smooth
        dice = 2.0 * inter / (union1 + union2)
        logdice = -torch.log(dice)
        expdice = torch.sum(logdice) # ** self.gama
        Ldice = expdice / (batch_size*self.n_class)

but constructs it with the arguments swapped, ``smooth = 1; self.Ldice = Ldice(n_class-1, smooth)``
in ``AttentionExpDiceLoss`` (``Ldice(n_class, smooth)`` in ``ExpDiceLoss``). So the smoothing is the
class count (22; 23 for ``ExpDiceLoss``, whose Dice runs over all 23 classes) in all three sums, and the
normaliser ``batch_size * n_class`` is ``batch_size * 1``: the Dice term is a *sum* over the 22
foreground classes (a mean over the batch), 22 times the mean relative to ``L_cross``, and with
smoothing 22 an absent class costs almost nothing (``Dice = 44 / (P + 44)``).

* ``dice_weighting="reference"`` (default; the ``paper`` training preset) computes what
  the reference computed: ``L_dice = (1/B) sum_{b, c} (-ln Dice_bc)^gamma`` with
  :func:`soft_dice_reference` and ``s = C'``, the number of classes in the Dice term (22; 23 with
  ``background=True``).
* ``dice_weighting="intended"`` is what the argument names say: ``L_dice = mean_{b, c} (-ln
  Dice_bc)^gamma`` with :func:`soft_dice` (``s = 1``). Earlier versions of this library implemented
  only this form and called the reference's a defect. The ``cpu`` training preset uses it, with
  ``background=True`` (below).

What the measurements show (issue 14's probe on the cpu phantom: the cpu preset with 36 epochs of 90
steps, lr 1e-2 halved every 12 epochs, 8 training / 2 validation cases; these numbers are the probe's,
not recomputed here): with the intended formula ATH (alpha 1) plateaus at validation mean Dice 0.64
after 3,240 steps while labelling 43-45x the reference organ volume as organ on the two test cases: it
never learns the background. With the reference weighting the same run reaches 0.77 and is still
rising, with predicted organ volume 1.09x the reference on the test cases (test mean Dice 0.76 /
0.79), near the background-counted variant (``background=True``, intended weighting: validation 0.81,
test volumes 1.28x / 1.25x, test mean Dice 0.77 / 0.81). The reference weighting is what lets the
paper's loss learn the background, and it is what produced the paper's numbers, so it is the loss to
reproduce, and the ``paper`` preset trains it.

On the phantom of issue 13 (more varied patients, an annotator's 1-2 mm boundary noise; 10 training /
4 validation cases, the cpu preset with poly decay, one seed each, 2026-12-06) the order changed. The
reference weighting reached validation mean Dice 0.38 after 2,400 steps with 11 of the 22 organs (lenses,
optic nerves, chiasm, inner and middle ears, TMJs: the small ones) still at 0: with smoothing 22 a
structure of a few dozen voxels gets almost no Dice gradient, while every patch without it penalises a
false positive. Reference weighting + background: 0.13 after 2,400 steps. Intended formula, foreground
only: 0.32 after a 1,200-step run, with brain stem and temporal lobes at 0.01-0.02 (the background not
learnt, as before). Intended formula + background: 0.42 after a 1,200-step run. So the ``cpu`` preset
(a CPU budget of a few thousand steps) trains ``dice_weighting="intended", background=True``, and the
book's loss page trains the other versions beside it, to the same budget, with their curves.

Other differences from the reference code:

* The reference ``ExpDiceLoss`` (plain explog) takes Dice over all 23 classes; paper.md defines
  ``L_dice`` over foreground classes, which we follow for both weightings (as the reference's ATH loss
  does).
* The reference ignores ``gamma`` (the exponent is commented out, i.e. ``gamma = 1``); we implement it
  (per class, before the sum or mean).
* The reference receives softmax probabilities and takes ``log`` of them; we take logits and use
  ``log_softmax`` for ``L_cross``.
"""

from __future__ import annotations

import contextvars
import math
import numbers
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "DiceLoss", "ExpLogLoss", "ATHLoss", "LOSS_NAMES", "DICE_WEIGHTINGS", "build_loss", "soft_dice",
    "soft_dice_reference", "SMOOTH",
]

SMOOTH = 1.0
"""Dice smoothing of the "intended" weighting, added to numerator and denominator (module docstring)."""
DICE_WEIGHTINGS: tuple[str, ...] = ("reference", "intended")
"""Dice-term weightings of the exp-log and ATH losses: what the reference code computes (the paper's
numbers) and what its argument names intended (module docstring)."""

# x^gamma with gamma < 1 has an infinite slope at x = 0. Values at or below this floor count as 0 (value
# and gradient); above it the slope is at most gamma * 1e30, finite in float32, and the value error at
# most 1e-30^gamma (1e-9 for gamma = 0.3).
_POW_FLOOR = 1e-30


def _positive(arg: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{arg} must be a real number, got {value!r} of type {type(value).__name__}")
    out = float(value)
    if not (math.isfinite(out) and out > 0):
        raise ValueError(f"{arg} must be finite and > 0, got {value!r}")
    return out


_CHECK_LABEL_RANGE: contextvars.ContextVar[bool] = contextvars.ContextVar("check_label_range", default=True)


@contextmanager
def labels_prechecked() -> Iterator[None]:
    """Inside this block the losses skip their label-range check (``target.min()``/``max()``, which on a
    GPU makes the host wait for the device every step); every other input check stays. For targets
    already checked on the host, as the training loop's (:class:`~sepnet_core.data.sampling.PatchSampler`
    checks each case once when it is loaded). Direct calls outside the block are fully checked."""
    token = _CHECK_LABEL_RANGE.set(False)
    try:
        yield
    finally:
        _CHECK_LABEL_RANGE.reset(token)


def _check_inputs(logits: Any, target: Any) -> None:
    """ValueError/TypeError naming the argument unless logits (B,C,D,H,W) float and target (B,D,H,W) int64."""
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"logits must be a torch.Tensor, got {type(logits).__name__}")
    if not isinstance(target, torch.Tensor):
        raise TypeError(f"target must be a torch.Tensor, got {type(target).__name__}")
    if not logits.is_floating_point():
        raise ValueError(f"logits must have a floating dtype, got {logits.dtype}")
    if logits.dim() != 5:
        raise ValueError(f"logits must be 5-D (B, C, D, H, W), got shape {tuple(logits.shape)}")
    if logits.shape[1] < 2:
        raise ValueError(f"logits must have at least 2 classes (dim 1), got shape {tuple(logits.shape)}")
    if logits.numel() == 0:
        raise ValueError(f"logits must not be empty, got shape {tuple(logits.shape)}")
    if target.dtype != torch.int64:
        raise ValueError(f"target must have dtype torch.int64 (labels), got {target.dtype}")
    expected = (logits.shape[0], *logits.shape[2:])
    if tuple(target.shape) != expected:
        raise ValueError(
            f"target must have shape (B, D, H, W) = {expected} to match logits {tuple(logits.shape)}, "
            f"got {tuple(target.shape)}"
        )
    if target.device != logits.device:
        raise ValueError(f"target is on {target.device} but logits are on {logits.device}; they must match")
    if not _CHECK_LABEL_RANGE.get():
        return
    low, high = int(target.min()), int(target.max())
    num_classes = logits.shape[1]
    if low < 0 or high >= num_classes:
        raise ValueError(
            f"target labels must lie in 0..{num_classes - 1} (C = {num_classes} from logits), "
            f"got min {low}, max {high}"
        )


def _prepare(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Validate; return probabilities, log-probabilities and the one-hot target, all (B, C, D, H, W)."""
    _check_inputs(logits, target)
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    log_p = F.log_softmax(logits, dim=1)
    p = log_p.exp()
    g = F.one_hot(target, logits.shape[1]).permute(0, 4, 1, 2, 3).to(p.dtype)
    return p, log_p, g


def soft_dice(probs: torch.Tensor, onehot: torch.Tensor, smooth: float = SMOOTH) -> torch.Tensor:
    """Per-sample, per-class soft Dice ``(2 sum p g + s) / (sum p + sum g + s)``.

    Args:
        probs: (B, C, D, H, W) probabilities (or re-weighted probabilities, >= 0).
        onehot: (B, C, D, H, W) one-hot target, same dtype as ``probs``.
        smooth: ``s``, added to numerator and denominator.

    Returns:
        (B, C) tensor of Dice values, sums taken over D, H, W of each sample.
    """
    dims = tuple(range(2, probs.dim()))
    intersection = (probs * onehot).sum(dims)
    return (2.0 * intersection + smooth) / (probs.sum(dims) + onehot.sum(dims) + smooth)


def soft_dice_reference(probs: torch.Tensor, onehot: torch.Tensor, smooth: float) -> torch.Tensor:
    """Per-sample, per-class Dice as the reference code's ``Ldice`` computes it.

    ``Dice_bc = 2 (I + s) / (P + s + G + s)``.

    ``I = sum p g``, ``P = sum p``, ``G = sum g`` over the D x H x W voxels of one sample; the
    smoothing ``s`` is added to all three sums.

    Args:
        probs: (B, C, D, H, W) probabilities (or re-weighted probabilities, >= 0).
        onehot: (B, C, D, H, W) one-hot target, same dtype as ``probs``.
        smooth: ``s`` (> 0); the reference's effective value is the number of classes C.

    Returns:
        (B, C) tensor of Dice values.
    """
    dims = tuple(range(2, probs.dim()))
    intersection = (probs * onehot).sum(dims) + smooth
    return 2.0 * intersection / (probs.sum(dims) + smooth + onehot.sum(dims) + smooth)


def _power(x: torch.Tensor, gamma: float) -> torch.Tensor:
    """``x ** gamma`` for x >= 0 with finite gradients; the where-twice form keeps NaN out of backward."""
    if gamma == 1.0:
        return x
    keep = x > _POW_FLOOR
    safe = torch.where(keep, x, torch.ones_like(x))
    return torch.where(keep, safe.pow(gamma), torch.zeros_like(x))


class DiceLoss(nn.Module):
    """Soft Dice loss over all classes (background included): ``1 - mean_{b, c} Dice_bc``.

    Dice per sample and class with smoothing 1 (module docstring). Range [0, 1); about 0 for a
    confident correct prediction.

    Example:
        >>> logits = torch.zeros(1, 2, 1, 1, 2)  # p = 0.5 everywhere
        >>> target = torch.tensor([[[[0, 1]]]])
        >>> round(float(DiceLoss()(logits, target)), 4)  # Dice = (2*0.5 + 1) / (1 + 1 + 1) per class
        0.3333
    """

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Loss for logits (B, C, D, H, W) float and target (B, D, H, W) int64; scalar tensor."""
        p, _, g = _prepare(logits, target)
        return 1.0 - soft_dice(p, g).mean()


class ExpLogLoss(nn.Module):
    """Exponential-logarithmic loss (Wong et al., MICCAI 2018): ``L_dice + L_cross``.

    Args:
        gamma: Exponent of both terms (> 0); 1 in the reference code, 0.3 in Wong et al.
        background: False (the paper's and the reference code's formulas): foreground classes only in
            ``L_dice``, foreground voxels only in ``L_cross``. True (ours, see the module docstring):
            the background class joins ``L_dice`` and background voxels join ``L_cross`` with the same
            count-based weight rule, so the network is also told where no organ is.
        dice_weighting: "reference" (default: what the reference code computes and the paper trained
            with): ``L_dice = (1/B) sum_{b, c} (-ln Dice_bc)^gamma`` with
            ``Dice = 2 (I + s) / (P + s + G + s)`` and ``s`` = the number of classes in the Dice term
            (22 foreground organs). "intended": ``L_dice = mean_{b, c} (-ln Dice_bc)^gamma`` with
            ``Dice = (2 I + 1) / (P + G + 1)``. See the module docstring.

    See the module docstring for the exact formulas (class weights ``w_c = (N / N_c)^0.5`` with
    counts + 1).

    Raises:
        TypeError, ValueError: ``gamma`` not a finite number > 0, ``background`` not a bool,
            ``dice_weighting`` not one of :data:`DICE_WEIGHTINGS`.
    """

    def __init__(self, gamma: float = 1.0, background: bool = False,
                 dice_weighting: str = "reference") -> None:
        super().__init__()
        self.gamma = _positive("gamma", gamma)
        if not isinstance(background, bool):
            raise TypeError(f"background must be True or False, got {background!r}")
        self.background = background
        if dice_weighting not in DICE_WEIGHTINGS:
            raise ValueError(f"dice_weighting must be one of {', '.join(DICE_WEIGHTINGS)}, "
                             f"got {dice_weighting!r}")
        self.dice_weighting = dice_weighting

    @property
    def first_class(self) -> int:
        """First channel counted by both terms: 0 with ``background``, else 1."""
        return 0 if self.background else 1

    def extra_repr(self) -> str:
        return f"gamma={self.gamma:g}, background={self.background}, dice_weighting={self.dice_weighting!r}"

    def dice_term(self, probs: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:
        """``L_dice`` over the given channels (B, C', D, H, W), weighted as ``dice_weighting`` says.

        "intended": ``mean_{b, c} (-ln Dice_bc)^gamma``, smoothing 1. "reference":
        ``sum_{b, c} (-ln Dice_bc)^gamma / B`` with the reference's Dice and smoothing ``C'``.
        """
        if self.dice_weighting == "intended":
            return _power(-torch.log(soft_dice(probs, onehot)), self.gamma).mean()
        dice = soft_dice_reference(probs, onehot, smooth=float(probs.shape[1]))
        return _power(-torch.log(dice), self.gamma).sum() / probs.shape[0]

    def cross_term(self, log_p: torch.Tensor, target: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:
        """Class-weighted ``(-ln p)^gamma`` over the counted voxels, divided by the smoothed count ``N``.

        Counted classes are ``first_class..C-1``; voxels of an uncounted class (background, unless
        ``background``) have weight 0.
        """
        first = self.first_class
        with torch.no_grad():
            counts = onehot[:, first:].sum(dim=(2, 3, 4)) + 1.0  # (B, C'): n_bc + 1
            total = counts.sum()
            weights = torch.sqrt(total / counts.sum(dim=0))  # (C',)
            voxel_weight = torch.cat([weights.new_zeros(first), weights])[target]
        nll = -log_p.gather(1, target.unsqueeze(1)).squeeze(1)  # (B, D, H, W), -ln p of the true class
        return (voxel_weight * _power(nll, self.gamma)).sum() / total

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Loss for logits (B, C, D, H, W) float and target (B, D, H, W) int64; scalar tensor."""
        p, log_p, g = _prepare(logits, target)
        first = self.first_class
        return self.dice_term(p[:, first:], g[:, first:]) + self.cross_term(log_p, target, g)


class ATHLoss(ExpLogLoss):
    """Attention-to-hard-voxels loss (Lei et al. 2021): ``L_dice(p') + L_cross(p)``.

    ``p' = p * exp((p - g) / alpha)`` for every counted class and voxel; ``L_dice`` and ``L_cross``
    as in :class:`ExpLogLoss` (module docstring).

    Args:
        alpha: Attention temperature (> 0); the paper's ensemble uses 1 and 0.5. Smaller alpha gives
            hard voxels more weight; ``alpha -> inf`` recovers :class:`ExpLogLoss`.
        gamma: Exponent, as in :class:`ExpLogLoss`.
        background: As in :class:`ExpLogLoss`.
        dice_weighting: As in :class:`ExpLogLoss` ("reference" default, or "intended").

    Raises:
        TypeError, ValueError: ``alpha`` or ``gamma`` not a finite number > 0, bad ``background`` or
            ``dice_weighting``.
    """

    def __init__(self, alpha: float = 1.0, gamma: float = 1.0, background: bool = False,
                 dice_weighting: str = "reference") -> None:
        super().__init__(gamma=gamma, background=background, dice_weighting=dice_weighting)
        self.alpha = _positive("alpha", alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha:g}, " + super().extra_repr()

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Loss for logits (B, C, D, H, W) float and target (B, D, H, W) int64; scalar tensor."""
        p, log_p, g = _prepare(logits, target)
        first = self.first_class
        p_c, g_c = p[:, first:], g[:, first:]
        attended = p_c * torch.exp((p_c - g_c) / self.alpha)
        return self.dice_term(attended, g_c) + self.cross_term(log_p, target, g)


_LOSSES: dict[str, tuple[type[nn.Module], tuple[str, ...]]] = {
    "dice": (DiceLoss, ()),
    "explog": (ExpLogLoss, ("gamma", "background", "dice_weighting")),
    "ath": (ATHLoss, ("alpha", "gamma", "background", "dice_weighting")),
}
LOSS_NAMES: tuple[str, ...] = tuple(_LOSSES)


def build_loss(name: str, **kwargs: Any) -> nn.Module:
    """Build a loss by name.

    Args:
        name: One of :data:`LOSS_NAMES` (``"dice"``, ``"explog"``, ``"ath"``).
        **kwargs: That loss's options: none for ``"dice"``; ``gamma``, ``background`` and
            ``dice_weighting`` for ``"explog"``; the same and ``alpha`` for ``"ath"``.

    Raises:
        ValueError: Unknown name (the message lists the valid ones) or invalid option values.
        TypeError: An option the chosen loss does not take (it would have no effect).
    """
    if not isinstance(name, str) or name not in _LOSSES:
        raise ValueError(f"unknown loss {name!r}; valid names: {', '.join(LOSS_NAMES)}")
    cls, accepted = _LOSSES[name]
    unexpected = sorted(set(kwargs) - set(accepted))
    if unexpected:
        raise TypeError(
            f"loss {name!r} does not take option(s) {unexpected}; it accepts {list(accepted) or 'none'}"
        )
    return cls(**kwargs)

"""Tests for sepnet_core.losses: hand-computed values, reductions, ATH behaviour, stability, validation."""

from __future__ import annotations

import math

import pytest
import torch

from sepnet_core.losses import DICE_WEIGHTINGS, LOSS_NAMES, ATHLoss, DiceLoss, ExpLogLoss, build_loss

INTENDED = {"dice_weighting": "intended"}
ALL_LOSSES = [DiceLoss(), ExpLogLoss(), ExpLogLoss(gamma=0.3), ATHLoss(alpha=1.0), ATHLoss(alpha=0.5),
              ExpLogLoss(**INTENDED), ExpLogLoss(gamma=0.3, **INTENDED), ATHLoss(alpha=0.5, **INTENDED)]


def two_class_logits(p1, dtype=torch.float64):
    """Logits (1, 2, 1, 1, N) whose softmax gives foreground probability p1[i] at voxel i."""
    p1 = torch.tensor(p1, dtype=dtype)
    return torch.stack([torch.zeros_like(p1), torch.log(p1 / (1 - p1))]).reshape(1, 2, 1, 1, -1)


def labels(values):
    """Target (1, 1, 1, N) int64 from a flat list of labels."""
    return torch.tensor(values, dtype=torch.int64).reshape(1, 1, 1, -1)


# ---------------------------------------------------------------------------- hand-computed values
# The "intended" Dice weighting (smoothing 1, mean over (batch, class)) unless a test says otherwise.
# Case A: 2 voxels, target [0, 1], p1 = [0.25, 0.75] (so p0 = [0.75, 0.25]).
#   Dice class 0: I = 0.75, P = 1, G = 1 -> (2 * 0.75 + 1) / (1 + 1 + 1) = 5/6; class 1 likewise 5/6.
#   DiceLoss = 1 - 5/6 = 1/6.
#   ExpLog (gamma 1): L_dice = -ln(5/6) (foreground class only);
#     counts + 1: n_1 = 1 + 1 = 2, N = 2, w_1 = sqrt(2 / 2) = 1; L_cross = 1 * (-ln 0.75) / 2.
#   ExpLog (gamma 2): (ln 6/5)^2 + (ln 4/3)^2 / 2.
#   ATH (alpha 1): p'_1 = [0.25 e^{0.25}, 0.75 e^{-0.25}], I' = 0.75 e^{-0.25}, P' = sum p'_1, G = 1,
#     Dice' = (2 I' + 1) / (P' + 2); L = -ln Dice' + ln(4/3) / 2.
_I = 0.75 * math.exp(-0.25)
_P = 0.25 * math.exp(0.25) + _I
CASE_A = [
    (DiceLoss(), 1 / 6),
    (ExpLogLoss(**INTENDED), math.log(6 / 5) + math.log(4 / 3) / 2),
    (ExpLogLoss(gamma=2.0, **INTENDED), math.log(6 / 5) ** 2 + math.log(4 / 3) ** 2 / 2),
    (ATHLoss(alpha=1.0, **INTENDED), -math.log((2 * _I + 1) / (_P + 2)) + math.log(4 / 3) / 2),
    # reference weighting, C' = 1 foreground class -> s = 1: Dice = 2 (0.75 + 1) / (1 + 1 + 1 + 1) = 7/8
    (ExpLogLoss(), math.log(8 / 7) + math.log(4 / 3) / 2),
    (ATHLoss(alpha=1.0), -math.log(2 * (_I + 1) / (_P + 1 + 1 + 1)) + math.log(4 / 3) / 2),
]


@pytest.mark.parametrize("loss, expected", CASE_A, ids=[repr(loss) for loss, _ in CASE_A])
def test_case_a_hand_computed(loss, expected):
    value = loss(two_class_logits([0.25, 0.75]), labels([0, 1]))
    assert value.dim() == 0
    assert value.item() == pytest.approx(expected, rel=1e-10)


def test_uniform_prediction_dice():
    # logits 0 -> p = 0.5 everywhere; per class I = 0.5, P = 1, G = 1: Dice = 2/3, loss 1/3
    value = DiceLoss()(torch.zeros(1, 2, 1, 1, 2), labels([0, 1]))
    assert value.item() == pytest.approx(1 / 3, rel=1e-6)


def test_three_class_weights_hand_computed():
    # 4 voxels, C = 3, target [1, 1, 1, 2], uniform logits -> p = 1/3 for every class and voxel.
    # counts + 1: class 1: 3 + 1 = 4, class 2: 1 + 1 = 2; N = 6; w_1 = sqrt(6/4), w_2 = sqrt(6/2).
    # L_cross = (w_1 * 3 * ln 3 + w_2 * 1 * ln 3) / 6.
    # Dice class 1: I = 3 * 1/3 = 1, P = 4/3, G = 3 -> 3 / (4/3 + 4) = 9/16.
    # Dice class 2: I = 1/3, P = 4/3, G = 1 -> (5/3) / (10/3) = 1/2.   L_dice = (ln 16/9 + ln 2) / 2.
    logits = torch.zeros(1, 3, 1, 1, 4, dtype=torch.float64)
    target = labels([1, 1, 1, 2])
    cross = (math.sqrt(6 / 4) * 3 * math.log(3) + math.sqrt(3) * math.log(3)) / 6
    dice = (math.log(16 / 9) + math.log(2)) / 2
    assert ExpLogLoss(**INTENDED)(logits, target).item() == pytest.approx(dice + cross, rel=1e-10)
    # ATH with p = 1/3: p' = p e^{(p - g)/alpha} changes only the Dice term
    assert ATHLoss(alpha=1e9, **INTENDED)(logits, target).item() == pytest.approx(dice + cross, rel=1e-6)
    assert ATHLoss(alpha=1.0, **INTENDED)(logits, target).item() != pytest.approx(dice + cross, rel=1e-3)
    # Reference weighting: C' = 2 foreground classes -> s = 2 in all three sums, Dice summed over classes.
    # class 1: 2 (1 + 2) / (4/3 + 2 + 3 + 2) = 18/25; class 2: 2 (1/3 + 2) / (4/3 + 2 + 1 + 2) = 14/19.
    reference = math.log(25 / 18) + math.log(19 / 14)
    assert ExpLogLoss()(logits, target).item() == pytest.approx(reference + cross, rel=1e-10)


def test_dice_is_per_sample_not_batch_pooled():
    # B = 2, 2 voxels each, p = 0.5 everywhere; sample 0 all class 1, sample 1 all class 0.
    # Per sample: the present class has I = 1, P = 1, G = 2 -> 3/4;
    #   the absent class I = 0, P = 1, G = 0 -> 1/2.
    #   DiceLoss = 1 - mean(3/4, 1/2, 1/2, 3/4) = 3/8.   (Batch-pooled would be 1 - 3/5 = 2/5.)
    # ExpLog: L_dice = mean(-ln 3/4, -ln 1/2); counts + 1 per sample: 3 and 1, N = 4, w_1 = 1;
    #   L_cross = 2 * ln 2 / 4.
    logits = torch.zeros(2, 2, 1, 1, 2, dtype=torch.float64)
    target = torch.tensor([[1, 1], [0, 0]]).reshape(2, 1, 1, 2)
    assert DiceLoss()(logits, target).item() == pytest.approx(3 / 8, rel=1e-10)
    expected = (math.log(4 / 3) + math.log(2)) / 2 + math.log(2) / 2
    assert ExpLogLoss(**INTENDED)(logits, target).item() == pytest.approx(expected, rel=1e-10)
    # Reference (s = 1, C' = 1): sample 0 Dice 2 (1 + 1) / (1 + 1 + 2 + 1) = 4/5, sample 1
    # 2 (0 + 1) / (1 + 1 + 0 + 1) = 2/3; summed over classes (one here) and averaged over the batch.
    expected = (math.log(5 / 4) + math.log(3 / 2)) / 2 + math.log(2) / 2
    assert ExpLogLoss()(logits, target).item() == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("loss", ALL_LOSSES, ids=repr)
def test_perfect_confident_prediction_gives_about_zero(loss):
    target = torch.tensor([[0, 1, 2], [2, 2, 1]]).reshape(1, 2, 1, 3)  # (B, D, H, W) = (1, 2, 1, 3)
    logits = 30.0 * torch.nn.functional.one_hot(target, 3).permute(0, 4, 1, 2, 3).float()
    assert 0.0 <= loss(logits, target).item() < 1e-6


@pytest.mark.parametrize("loss", ALL_LOSSES, ids=repr)
def test_wrong_confident_prediction_is_much_worse_than_right(loss):
    target = labels([0, 1, 1, 0])
    right = 8.0 * torch.nn.functional.one_hot(target, 2).permute(0, 4, 1, 2, 3).float()
    assert loss(-right, target).item() > loss(right, target).item() + 0.5


def test_softmax_shift_invariance_and_half_precision():
    torch.manual_seed(1)
    logits = torch.randn(2, 4, 2, 3, 3)
    target = torch.randint(0, 4, (2, 2, 3, 3))
    for loss in ALL_LOSSES:
        base = loss(logits, target)
        assert loss(logits + 7.0, target).item() == pytest.approx(base.item(), rel=1e-5)
        half = loss(logits.half(), target)
        assert half.dtype == torch.float32 and half.item() == pytest.approx(base.item(), rel=1e-2)


# ---------------------------------------------------------------------------------------- ATH
def test_ath_tends_to_explog_for_large_alpha():
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 2, 3, 3, dtype=torch.float64)
    target = torch.randint(0, 4, (2, 2, 3, 3))
    explog = ExpLogLoss()(logits, target).item()
    assert ATHLoss(alpha=1e8)(logits, target).item() == pytest.approx(explog, rel=1e-7)
    gaps = [abs(ATHLoss(alpha=a)(logits, target).item() - explog) for a in (0.5, 1.0, 10.0, 100.0)]
    assert gaps == sorted(gaps, reverse=True) and gaps[-1] < 0.1 * gaps[0]


def _logit_grad(loss, p1, target):
    logits = two_class_logits(p1).requires_grad_(True)
    loss(logits, labels(target)).backward()
    return logits.grad[0, 1, 0, 0].abs()  # |dL / d(foreground logit)| per voxel


@pytest.mark.parametrize("alpha", [1.0, 0.5])
def test_ath_raises_the_weight_of_false_positives(alpha):
    # voxels: two easy foreground (p1 0.9), a false positive (p1 0.7, label 0), two easy background
    # (p1 0.1), a missed foreground (p1 0.2). Compare the gradient at the false positive with that at an
    # easy background voxel; L_cross is identical for both losses and zero at background voxels.
    p1, target = [0.9, 0.9, 0.7, 0.1, 0.1, 0.2], [1, 1, 0, 0, 0, 1]
    g_explog = _logit_grad(ExpLogLoss(), p1, target)
    g_ath = _logit_grad(ATHLoss(alpha=alpha), p1, target)
    fp, easy = 2, 3
    assert g_ath[fp] > g_explog[fp]
    assert g_ath[fp] / g_ath[easy] > 2.0 * g_explog[fp] / g_explog[easy]


def test_ath_attention_is_stronger_for_smaller_alpha():
    p1, target = [0.9, 0.7, 0.1, 0.2], [1, 0, 0, 1]
    grads = [_logit_grad(ATHLoss(alpha=a), p1, target) for a in (2.0, 1.0, 0.5)]
    ratios = [(g[1] / g[2]).item() for g in grads]  # false positive / easy background
    assert ratios[0] < ratios[1] < ratios[2]


# ------------------------------------------------------------------------------ absent classes
@pytest.mark.parametrize("loss", ALL_LOSSES, ids=repr)
@pytest.mark.parametrize("scale", [1.0, 50.0])
@pytest.mark.parametrize("present", [(0,), (0, 1), (2,)])
def test_absent_classes_give_finite_loss_and_gradients(loss, scale, present):
    torch.manual_seed(2)
    logits = (scale * torch.randn(2, 5, 2, 3, 3)).requires_grad_(True)
    choices = torch.tensor(present)
    target = choices[torch.randint(0, len(present), (2, 2, 3, 3))]
    value = loss(logits, target)
    value.backward()
    assert torch.isfinite(value) and value.item() >= 0.0
    assert torch.isfinite(logits.grad).all()


def test_absent_class_is_penalised_with_smoothing_one():
    # target all background; the more probability on (absent) class 1, the larger the Dice term:
    # Dice_1 = 1 / (sum p_1 + 1), so ExpLog's L_dice = ln(sum p_1 + 1) and L_cross = 0.
    target = labels([0, 0, 0, 0])
    for p in (0.01, 0.3):
        expected = math.log(4 * p + 1)
        value = ExpLogLoss(**INTENDED)(two_class_logits([p] * 4), target).item()
        assert value == pytest.approx(expected, rel=1e-9)


# ---------------------------------------------------------------------------------- gradcheck
GRADCHECK_LOSSES = [
    DiceLoss(),
    ExpLogLoss(**INTENDED),
    ATHLoss(alpha=0.5, gamma=2.0, **INTENDED),
    ExpLogLoss(),
    ExpLogLoss(gamma=0.5),
    ATHLoss(alpha=1.0),
    ATHLoss(alpha=0.5, gamma=2.0),
]


@pytest.mark.parametrize("loss", GRADCHECK_LOSSES, ids=repr)
def test_gradcheck(loss):
    torch.manual_seed(3)
    logits = torch.randn(2, 3, 1, 2, 2, dtype=torch.float64, requires_grad=True)
    target = torch.tensor([[0, 1, 2, 1], [2, 2, 0, 0]]).reshape(2, 1, 2, 2)
    assert torch.autograd.gradcheck(lambda x: loss(x, target), (logits,), eps=1e-6, atol=1e-5)


# --------------------------------------------------------------------------------- validation
GOOD_LOGITS = torch.zeros(1, 3, 1, 2, 2)
GOOD_TARGET = torch.zeros(1, 1, 2, 2, dtype=torch.int64)

INPUT_ERRORS = [
    # (logits, target, exception, words in the message)
    (GOOD_LOGITS[0], GOOD_TARGET, ValueError, ["logits", "5-D", "(3, 1, 2, 2)"]),
    (GOOD_LOGITS.long(), GOOD_TARGET, ValueError, ["logits", "floating", "int64"]),
    (GOOD_LOGITS[:, :1], GOOD_TARGET, ValueError, ["logits", "at least 2 classes"]),
    (GOOD_LOGITS, GOOD_TARGET.int(), ValueError, ["target", "int64", "int32"]),
    (GOOD_LOGITS, GOOD_TARGET.float(), ValueError, ["target", "int64", "float32"]),
    (GOOD_LOGITS, GOOD_TARGET[:, :, :1], ValueError, ["target", "(1, 1, 2, 2)", "(1, 1, 1, 2)"]),
    (GOOD_LOGITS, GOOD_TARGET[:, None], ValueError, ["target", "(B, D, H, W)"]),
    (GOOD_LOGITS, GOOD_TARGET + 3, ValueError, ["target", "0..2", "max 3"]),
    (GOOD_LOGITS, GOOD_TARGET - 1, ValueError, ["target", "0..2", "min -1"]),
    (GOOD_LOGITS.numpy(), GOOD_TARGET, TypeError, ["logits", "ndarray"]),
    (GOOD_LOGITS, [[0]], TypeError, ["target", "list"]),
    (torch.zeros(0, 3, 1, 2, 2), torch.zeros(0, 1, 2, 2, dtype=torch.int64), ValueError, ["logits", "empty"]),
]


@pytest.mark.parametrize("logits, target, exc, words", INPUT_ERRORS)
@pytest.mark.parametrize("loss", [DiceLoss(), ExpLogLoss(), ATHLoss()], ids=repr)
def test_input_validation_messages(loss, logits, target, exc, words):
    with pytest.raises(exc) as info:
        loss(logits, target)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


@pytest.mark.parametrize(
    "make, exc, words",
    [
        (lambda: ATHLoss(alpha=0.0), ValueError, ["alpha", "> 0", "0.0"]),
        (lambda: ATHLoss(alpha=-1), ValueError, ["alpha", "> 0", "-1"]),
        (lambda: ATHLoss(alpha=math.inf), ValueError, ["alpha", "finite", "inf"]),
        (lambda: ATHLoss(alpha="0.5"), TypeError, ["alpha", "'0.5'", "str"]),
        (lambda: ATHLoss(gamma=math.nan), ValueError, ["gamma", "nan"]),
        (lambda: ExpLogLoss(gamma=0), ValueError, ["gamma", "> 0"]),
        (lambda: ExpLogLoss(gamma=True), TypeError, ["gamma", "bool"]),
    ],
)
def test_option_validation(make, exc, words):
    with pytest.raises(exc) as info:
        make()
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def test_build_loss():
    assert LOSS_NAMES == ("dice", "explog", "ath")
    assert type(build_loss("dice")) is DiceLoss
    assert build_loss("explog", gamma=0.3).gamma == 0.3
    ath = build_loss("ath", alpha=0.5)
    assert type(ath) is ATHLoss and (ath.alpha, ath.gamma) == (0.5, 1.0)
    assert "alpha=0.5" in repr(ath)


@pytest.mark.parametrize("name", ["Dice", "focal", "", None])
def test_build_loss_unknown_name_lists_valid_ones(name):
    with pytest.raises(ValueError) as info:
        build_loss(name)
    assert repr(name) in str(info.value) and "dice, explog, ath" in str(info.value)


@pytest.mark.parametrize(
    "name, kwargs, word",
    [("dice", {"alpha": 1.0}, "alpha"), ("explog", {"alpha": 1}, "alpha"), ("dice", {"gamma": 1}, "gamma")],
)
def test_build_loss_rejects_options_without_effect(name, kwargs, word):
    with pytest.raises(TypeError) as info:
        build_loss(name, **kwargs)
    assert word in str(info.value) and name in str(info.value)


# ------------------------------------------------------------------------ background option (ours)
def test_background_option_hand_computed():
    # Case A with background=True: Dice over classes 0 and 1 (both 5/6), mean -> -ln(5/6);
    # counts + 1: n_0 = 2, n_1 = 2, N = 4, w_0 = w_1 = sqrt(4 / 2); L_cross = sqrt(2) (-ln 0.75) * 2 / 4.
    value = ExpLogLoss(background=True, **INTENDED)(two_class_logits([0.25, 0.75]), labels([0, 1]))
    expected = math.log(6 / 5) + math.sqrt(2) * 2 * math.log(4 / 3) / 4
    assert value.item() == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("make", [lambda b: ExpLogLoss(background=b),
                                  lambda b: ATHLoss(alpha=1.0, background=b)])
def test_background_option_supervises_background_voxels(make):
    # One organ voxel predicted right; two background voxels predicted as organ with growing confidence.
    # Foreground-only (the paper): the background voxels enter only through the Dice denominator.
    # With background: their -ln p_background enters the cross term too, so the loss grows faster.
    target = labels([1, 0, 0])
    mild, bad = two_class_logits([0.9, 0.6, 0.6]), two_class_logits([0.9, 0.99, 0.99])
    rise_fg = (make(False)(bad, target) - make(False)(mild, target)).item()
    rise_bg = (make(True)(bad, target) - make(True)(mild, target)).item()
    assert rise_fg > 0
    assert rise_bg > rise_fg + 1.0


def test_background_option_validation_and_build():
    with pytest.raises(TypeError, match="background"):
        ExpLogLoss(background=1)
    assert build_loss("ath", alpha=0.5, background=True).background is True
    with pytest.raises(TypeError, match="does not take"):
        build_loss("dice", background=True)


# ------------------------------------------------------------------ Dice weighting (reference code)
def reference_attention_exp_dice(probs, target, n_class, alpha):
    """The reference code's ``AttentionExpDiceLoss`` (HiLab-git/SepNet, models/loss_function.py) written
    out line by line on probabilities (B, C, ...), including its swapped ``Ldice(n_class - 1, 1)``
    arguments (smooth = n_class - 1, normaliser batch_size * 1) and its per-class ``Lcross`` loop."""
    batch_size = probs.shape[0]
    flat = probs.reshape(batch_size, n_class, -1)[:, 1:]
    onehot = torch.nn.functional.one_hot(target, n_class).movedim(-1, 1).to(probs.dtype)
    onehot = onehot.reshape(batch_size, n_class, -1)[:, 1:]
    attention = torch.exp((flat - onehot) / alpha) * flat
    label_sum = onehot.sum(2) + 1
    weights = (label_sum.sum() / label_sum.sum(0)) ** 0.5
    smooth, normaliser = n_class - 1, 1  # Ldice(smooth, n_class) called as Ldice(n_class - 1, 1)
    inter = (attention * onehot).sum(2) + smooth
    union1 = attention.sum(2) + smooth
    union2 = onehot.sum(2) + smooth
    l_dice = (-torch.log(2.0 * inter / (union1 + union2))).sum() / (batch_size * normaliser)
    l_cross = 0.0
    for i in range(1, n_class):
        mask = target == i
        if mask.sum() > 0:
            l_cross = l_cross + weights[i - 1] * (-torch.log(probs[:, i][mask])).sum()
    return l_dice + l_cross / label_sum.sum()


@pytest.mark.parametrize("alpha", [1.0, 0.5, 1e9])
def test_reference_weighting_equals_the_reference_code(alpha):
    torch.manual_seed(4)
    logits = torch.randn(2, 5, 2, 3, 3, dtype=torch.float64)
    target = torch.randint(0, 5, (2, 2, 3, 3))
    target[0, 0, 0, :] = 0  # background present; some classes absent from a sample
    target[1] = torch.where(target[1] == 3, 0, target[1])
    expected = reference_attention_exp_dice(torch.softmax(logits, 1), target, 5, alpha).item()
    assert ATHLoss(alpha=alpha)(logits, target).item() == pytest.approx(expected, rel=1e-10)
    if alpha == 1e9:  # ATH -> exp-log: the same weighting in ExpLogLoss
        assert ExpLogLoss()(logits, target).item() == pytest.approx(expected, rel=1e-7)


def test_reference_dice_term_is_a_sum_over_classes_with_class_count_smoothing():
    # Uniform p = 1/C everywhere, every class present in equal numbers: each foreground class has the same
    # Dice, so the reference Dice term is C' times one class's -ln Dice (a sum, not a mean) and its
    # smoothing is C'. B = 1, C = 4 (C' = 3), 8 voxels, 2 per class: I = 2/4, P = 8/4, G = 2.
    logits = torch.zeros(1, 4, 1, 1, 8, dtype=torch.float64)
    target = labels([0, 0, 1, 1, 2, 2, 3, 3])
    one_reference = -math.log(2 * (0.5 + 3) / (2 + 3 + 2 + 3))
    one_intended = -math.log((2 * 0.5 + 1) / (2 + 2 + 1))
    explog_ref, explog_int = ExpLogLoss(), ExpLogLoss(**INTENDED)
    p = torch.softmax(logits, 1)[:, 1:]
    g = torch.nn.functional.one_hot(target, 4).movedim(-1, 1).double()[:, 1:]
    assert explog_ref.dice_term(p, g).item() == pytest.approx(3 * one_reference, rel=1e-12)
    assert explog_int.dice_term(p, g).item() == pytest.approx(one_intended, rel=1e-12)


def test_reference_weighting_barely_penalises_absent_classes():
    # All background; probability p on the single (absent) foreground class over 4 voxels.
    # intended: -ln(1 / (4p + 1)); reference (s = 1 here): -ln(2 / (4p + 2)), half the slope at p = 0.
    target = labels([0, 0, 0, 0])
    for p in (0.01, 0.3):
        logits = two_class_logits([p] * 4)
        assert ExpLogLoss()(logits, target).item() == pytest.approx(math.log(2 * p + 1), rel=1e-9)
        assert ExpLogLoss(**INTENDED)(logits, target).item() == pytest.approx(math.log(4 * p + 1), rel=1e-9)


def test_dice_weighting_option_validation_and_build():
    assert DICE_WEIGHTINGS == ("reference", "intended")
    assert ExpLogLoss().dice_weighting == "reference" and ATHLoss().dice_weighting == "reference"
    assert build_loss("ath", alpha=0.5, dice_weighting="intended").dice_weighting == "intended"
    assert "dice_weighting='intended'" in repr(build_loss("explog", dice_weighting="intended"))
    with pytest.raises(ValueError, match="dice_weighting must be one of reference, intended"):
        ATHLoss(dice_weighting="mean")
    with pytest.raises(TypeError, match="does not take"):
        build_loss("dice", dice_weighting="reference")

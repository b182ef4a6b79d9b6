"""Network cost: parameters, floating-point operations and wall-clock time of one patch.

FLOPs are counted by :class:`torch.utils.flop_counter.FlopCounterMode`: convolutions and matrix
products only, 2 FLOPs per multiply-add, bias, normalisation, activations, pooling and interpolation
not counted. The backward pass counts the weight gradients of every convolution and the input
gradients of all but the first (the network's input needs no gradient), about twice the forward.
Counting runs on a copy of the model on PyTorch's ``meta`` device (shapes only, no arithmetic), so it
takes well under a second even for the base-24 networks.

Measured with this module (PyTorch 2.13): one 1 x 1 x 16 x 120 x 120 patch, forward + backward,
3D-SepNet b=24 358.17 GFLOP, 3D U-Net b=24 703.53 GFLOP, the figures of ``shared/paper.md``.

Timing (:func:`time_train_step`, :func:`time_inference`) runs the real model on its device and reports
the median of ``repeats`` runs after ``warmup`` runs; it depends on the machine and its load, so pages
must state where it was measured.

Example:
    >>> from sepnet_core.models import build_model
    >>> table = cost_table({"sepnet": build_model("sepnet", base=4)}, (1, 1, 8, 16, 16),
    ...                    timing=False)  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence

import pandas as pd
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["COST_COLUMNS", "count_flops", "time_train_step", "time_inference", "cost_table"]

COST_COLUMNS: tuple[str, ...] = ("input_shape", "parameters", "gflop_forward", "gflop_train", "train_step_s",
                                 "inference_s", "gflop_per_s")
"""Columns of :func:`cost_table`."""

_SEED = 0


def _check_shape(input_shape: Sequence[int]) -> tuple[int, ...]:
    try:
        shape = tuple(int(s) for s in input_shape)
    except (TypeError, ValueError):
        raise ValueError(f"input_shape={input_shape!r} must be 5 integers (B, C, D, H, W)") from None
    if len(shape) != 5 or min(shape) < 1:
        raise ValueError(f"input_shape={input_shape!r} must be 5 positive integers (B, C, D, H, W)")
    return shape


def _check_repeats(repeats: int, warmup: int) -> None:
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats={repeats!r} must be an integer >= 1")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup={warmup!r} must be an integer >= 0")


def _device_of(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def _logits(output: object) -> torch.Tensor:
    """The model's logits (the first element when it returns a tuple or list)."""
    if isinstance(output, (tuple, list)):
        output = output[0]
    if not isinstance(output, torch.Tensor):
        raise TypeError(f"the model must return a tensor (or a tuple starting with one), got "
                        f"{type(output).__name__}")
    return output


def count_flops(model: nn.Module, input_shape: Sequence[int], backward: bool = True) -> float:
    """Floating-point operations of one forward (and backward) pass.

    Args:
        model: Network mapping (B, C, D, H, W) to logits; it is copied, not changed.
        input_shape: (B, C, D, H, W) of the input.
        backward: Also count the backward pass of ``logits.sum()`` (default True).

    Returns:
        FLOPs (not GFLOP) as a float; see the module docstring for what is counted.

    Raises:
        ValueError: bad ``input_shape`` (and whatever the model raises for it, e.g. D not divisible by 8).
    """
    shape = _check_shape(input_shape)
    twin = copy.deepcopy(model).to("meta")
    twin.train(backward)
    x = torch.zeros(shape, device="meta")
    counter = FlopCounterMode(display=False)
    with counter:
        logits = _logits(twin(x))
        if backward:
            logits.sum().backward()
    return float(counter.get_total_flops())


def _random_batch(shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    generator = torch.Generator(device="cpu").manual_seed(_SEED)
    return torch.rand(shape, generator=generator).to(device)


def _median_seconds(step: Callable[[], None], repeats: int, warmup: int, device: torch.device) -> float:
    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        step()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)
    return float(statistics.median(times))


def time_train_step(
    model: nn.Module,
    input_shape: Sequence[int],
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    repeats: int = 3,
    warmup: int = 1,
) -> float:
    """Median wall-clock seconds of one training step: zero grads, forward, loss, backward.

    The optimizer update is not included (Adam's update is negligible next to the convolutions).
    Input is uniform random in [0, 1) (seed 0), the target uniform random labels of the logits' classes.
    The model runs on the device of its parameters, in training mode; its mode is restored afterwards.

    Args:
        model: Network mapping (B, C, D, H, W) to logits (B, K, D, H, W).
        input_shape: (B, C, D, H, W).
        loss_fn: ``loss_fn(logits, target (B, D, H, W) int64) -> scalar`` (e.g. ``build_loss("ath")``);
            default ``logits.mean()``.
        repeats: Timed runs (default 3).
        warmup: Untimed runs before (default 1).

    Returns:
        Median seconds.

    Raises:
        ValueError: bad ``input_shape``, ``repeats`` < 1 or ``warmup`` < 0.
    """
    shape = _check_shape(input_shape)
    _check_repeats(repeats, warmup)
    device = _device_of(model)
    x = _random_batch(shape, device)
    was_training = model.training
    model.train()
    target: list[torch.Tensor] = []

    def step() -> None:
        model.zero_grad(set_to_none=True)
        logits = _logits(model(x))
        if loss_fn is None:
            loss = logits.float().mean()
        else:
            if not target:
                generator = torch.Generator(device="cpu").manual_seed(_SEED)
                labels = torch.randint(0, logits.shape[1], (shape[0], *logits.shape[2:]), generator=generator)
                target.append(labels.to(device))
            loss = loss_fn(logits, target[0])
        loss.backward()

    try:
        return _median_seconds(step, repeats, warmup, device)
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)


def time_inference(model: nn.Module, input_shape: Sequence[int], repeats: int = 3, warmup: int = 1) -> float:
    """Median wall-clock seconds of one forward pass in eval mode under ``torch.inference_mode``.

    Args:
        model: Network; runs on the device of its parameters; its mode is restored afterwards.
        input_shape: (B, C, D, H, W).
        repeats: Timed runs (default 3).
        warmup: Untimed runs before (default 1).

    Returns:
        Median seconds.
    """
    shape = _check_shape(input_shape)
    _check_repeats(repeats, warmup)
    device = _device_of(model)
    x = _random_batch(shape, device)
    was_training = model.training
    model.eval()

    def step() -> None:
        with torch.inference_mode():
            model(x)

    try:
        return _median_seconds(step, repeats, warmup, device)
    finally:
        model.train(was_training)


def cost_table(
    models: Mapping[str, nn.Module],
    input_shape: Sequence[int],
    timing: bool = True,
    repeats: int = 3,
    warmup: int = 1,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> pd.DataFrame:
    """Parameters, FLOPs and time of several networks on the same input.

    Args:
        models: ``{name: model}``, e.g. ``{"sepnet": build_model("sepnet"), "unet": build_model("unet")}``.
        input_shape: (B, C, D, H, W), e.g. ``(1, 1, 16, 120, 120)`` (the paper's training patch).
        timing: Also time a training step and an inference pass (default True; False leaves NaN).
        repeats: Timed runs per measurement.
        warmup: Untimed runs before.
        loss_fn: Loss for the training step (see :func:`time_train_step`).

    Returns:
        DataFrame indexed by name (index name ``model``) with columns :data:`COST_COLUMNS`:
        ``input_shape`` (str, e.g. ``"1x1x16x120x120"``, kept so the table survives a CSV round trip),
        ``parameters`` (int), ``gflop_forward``, ``gflop_train`` (forward + backward, GFLOP = 1e9),
        ``train_step_s``, ``inference_s`` (median seconds), ``gflop_per_s`` (gflop_train / train_step_s).

    Raises:
        ValueError: no models, or a bad ``input_shape`` / ``repeats`` / ``warmup``.
    """
    if not models:
        raise ValueError("models is empty; pass {name: model}")
    shape = _check_shape(input_shape)
    _check_repeats(repeats, warmup)
    rows = []
    for name, model in models.items():
        train_flops = count_flops(model, shape, backward=True)
        train_s = time_train_step(model, shape, loss_fn, repeats, warmup) if timing else math.nan
        rows.append({
            "model": name,
            "input_shape": "x".join(str(s) for s in shape),
            "parameters": int(sum(p.numel() for p in model.parameters())),
            "gflop_forward": count_flops(model, shape, backward=False) / 1e9,
            "gflop_train": train_flops / 1e9,
            "train_step_s": train_s,
            "inference_s": time_inference(model, shape, repeats, warmup) if timing else math.nan,
            "gflop_per_s": train_flops / 1e9 / train_s if timing else math.nan,
        })
    return pd.DataFrame(rows).set_index("model")[list(COST_COLUMNS)]

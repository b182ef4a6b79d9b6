"""Fast CPU kernels of the networks' building blocks, numerically equal to the plain modules.

Profile of the plain implementation (PyTorch 2.13, 2-core AMD EPYC with AVX-512, one 16 x 120 x 120
patch, forward + backward of 3D-SepNet b=24, ``benchmarks/bench_train_step.py --profile``): convolution
backward 40 % and forward 20 % of the time (oneDNN on NCDHW tensors; batch-1 convolutions whose
``B*C*D*H`` is at most 20480 go to PyTorch's im2col fallback), ``copy_`` 8 % (``InstanceNorm3d`` reshapes
its input to ``(1, B*C, ...)``, in-place ReLU adds ``CopySlices``), instance norm forward + backward 10 %,
ReLU backward and ``fill_`` 6 %.

What the fast path does instead (``ConvNormAct.fast`` / :func:`~sepnet_core.models.set_fast_path`):

* tensors stay in ``torch.channels_last_3d`` memory (NDHWC) and float32 convolutions call oneDNN
  directly (:func:`conv3d_fast`): NDHWC forward passes of the 1x3x3, 3x1x1 and 1x1x1 kernels run up to
  1.8x faster than NCDHW (channels are the contiguous GEMM dimension, no reorders), and small
  convolutions no longer take the im2col fallback (20x slower; 4x on a whole base-8 network).
  Tried and not kept: 1x3x3 as a 2-D convolution over the B*D slices (a free view of NDHWC memory;
  12 % faster for one convolution, no gain inside a block), 3x1x1 as a 2-D (3, 1) convolution over
  (D, H*W) (24 % slower), NCDHW convolutions with the fused norm (5 % slower).
* instance norm + ReLU is one autograd function (:func:`instance_norm_relu`): two-pass statistics over
  the (B, D*H*W, C) view, normalisation and ReLU in place, a hand-written backward of about five passes
  (no reshapes, no ``CopySlices``); without autograd in bfloat16 it uses the per-sample batch-norm
  kernel (2.5x faster than the row reductions there).

FLOP counters: ``torch.utils.flop_counter.FlopCounterMode`` has no formula for
``aten.mkldnn_convolution``, so it saw only the backward of the fast path's convolutions (which autograd
runs as ``aten.convolution_backward``) and, of the forward pass, only the convolutions that do not go
through :func:`conv3d_fast` (the output layer). Importing this module registers torch's convolution
formula for that op too (:func:`register_flop_formulas`; only if torch has none), so a counter
constructed afterwards gives the fast path the same FLOPs as the plain modules
(``tests/test_models_fast.py``). Counters that trace instead of dispatching (fvcore's JIT tracer) are
not covered: count those with the fast path off (:func:`~sepnet_core.models.set_fast_path`).

Both give the same numbers as ``nn.Conv3d`` -> ``nn.InstanceNorm3d(affine=False)`` -> ``nn.ReLU`` up to
float rounding (``tests/test_models_fast.py`` checks outputs and gradients); parameters and state-dict
keys do not change. Most of the rest of the speed-up on a CPU is outside the network: see
:func:`~sepnet_core.models.tune_cpu_allocator`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import conv_flop_count, flop_registry, register_flop_formula

__all__ = ["CHANNELS_LAST", "CONV_LAYOUT", "conv3d_fast", "instance_norm_relu", "register_flop_formulas"]

CHANNELS_LAST = torch.channels_last_3d
"""NDHWC memory format of 5-D tensors."""

CONV_LAYOUT = CHANNELS_LAST
"""Memory format the fast path runs its convolutions in."""


def _use_onednn(x: torch.Tensor) -> bool:
    return (x.device.type == "cpu" and x.dtype == torch.float32 and torch.backends.mkldnn.is_available()
            and not torch.is_autocast_enabled("cpu"))


def conv3d_fast(x: torch.Tensor, conv: torch.nn.Conv3d) -> torch.Tensor:
    """``conv(x)`` with the fast path's memory layout and kernel choice.

    On the CPU in float32 (no autocast) the convolution calls oneDNN directly
    (``torch.mkldnn_convolution``): PyTorch's own dispatcher sends batch-1 convolutions whose
    ``B*C*D*H`` is at most 20480 (the SepNet blocks below full resolution, every window of a base-8 model)
    to its im2col fallback, which is up to 20x slower. Elsewhere (CUDA, float64, autocast) it is
    ``F.conv3d``. The input and weight are laid out as :data:`CONV_LAYOUT` (channels-last by default;
    the weight copy per call is tiny).

    Args:
        x: ``(B, Cin, D, H, W)`` float tensor, any memory format.
        conv: the module whose weight ``(Cout, Cin, kz, ky, kx)``, bias, padding, stride, dilation and
            groups are used (zero padding; its parameters are not changed).

    Returns:
        ``(B, Cout, D', H', W')``, equal to ``conv(x)`` up to float rounding.
    """
    x = x.contiguous(memory_format=CONV_LAYOUT)
    weight = conv.weight.contiguous(memory_format=CONV_LAYOUT)
    if _use_onednn(x) and isinstance(conv.padding, tuple):
        return torch.mkldnn_convolution(x, weight, conv.bias, list(conv.padding), list(conv.stride),
                                        list(conv.dilation), conv.groups)
    return F.conv3d(x, weight, conv.bias, conv.stride, conv.padding, conv.dilation, conv.groups)


def _mkldnn_convolution_flops(x_shape: list[int], w_shape: list[int], _bias: object, _padding: object,
                              _stride: object, _dilation: object, _groups: int, *, out_shape: list[int],
                              **kwargs: object) -> int:
    """FLOPs of ``aten.mkldnn_convolution(x, weight, bias, padding, stride, dilation, groups)``: torch's
    own count for a convolution, 2 x (multiply-adds) = 2 x B x prod(weight shape) x output voxels
    (``weight`` holds Cin / groups input channels, so groups are included; the bias is not counted)."""
    return conv_flop_count(list(x_shape), list(w_shape), list(out_shape), transposed=False)


def register_flop_formulas() -> bool:
    """Give ``torch.utils.flop_counter`` a formula for ``aten.mkldnn_convolution`` (the fast path's
    convolution on the CPU), unless it already has one. Called once when this module is imported;
    counters constructed afterwards see the fast path's forward convolutions.

    Returns:
        True if the formula was registered now, False if one was registered already.
    """
    op = torch.ops.aten.mkldnn_convolution
    if op in flop_registry:
        return False
    register_flop_formula(op)(_mkldnn_convolution_flops)
    return True


register_flop_formulas()


def _rows(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """A 3-D view of ``(B, C, D, H, W)`` memory with the voxels along one dim, and that dim:
    ``(B, S, C)``, dim 1, for channels-last memory; ``(B, C, S)``, dim 2, for contiguous memory
    (S = D*H*W). Other layouts are copied to contiguous first."""
    b, c = x.shape[:2]
    if x.is_contiguous():
        return x.view(b, c, -1), 2
    if x.is_contiguous(memory_format=CHANNELS_LAST):
        return x.permute(0, 2, 3, 4, 1).reshape(b, -1, c), 1
    return x.contiguous().view(b, c, -1), 2


def _unrows(v: torch.Tensor, dim: int, shape: torch.Size) -> torch.Tensor:
    """Inverse of :func:`_rows`: the ``(B, C, D, H, W)`` view of ``v``."""
    b, c, d, h, w = shape
    if dim == 2:
        return v.view(shape)
    return v.reshape(b, d, h, w, c).permute(0, 4, 1, 2, 3)


def _like_rows(t: torch.Tensor, dim: int) -> torch.Tensor:
    """``t`` (B, C, D, H, W) as rows in the layout ``dim`` names (copied if its memory differs)."""
    if dim == 2:
        return t.contiguous().view(t.shape[0], t.shape[1], -1)
    return _rows(t.contiguous(memory_format=CHANNELS_LAST))[0]


_LOW_PRECISION = (torch.bfloat16, torch.float16)


def _accumulation_dtype(x: torch.Tensor) -> torch.dtype:
    return x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32


def _normalise(xv: torch.Tensor, dim: int, eps: float, inplace: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(xhat, rstd): xhat = (x - mean) * rstd over ``dim`` of the rows ``xv`` and rstd per (sample,
    channel), kept-dim shaped. Two-pass statistics (mean, then the mean square of the centred values),
    accumulated in float32 or float64; ``xhat`` overwrites ``xv`` if ``inplace``."""
    acc = _accumulation_dtype(xv)
    n = xv.shape[dim]
    mean = xv.sum(dim=dim, keepdim=True, dtype=acc) / n
    centred = xv.sub_(mean.to(xv.dtype)) if inplace else xv - mean.to(xv.dtype)
    var = torch.mul(centred, centred).sum(dim=dim, keepdim=True, dtype=acc) / n
    rstd = torch.rsqrt(var + eps)
    return centred.mul_(rstd.to(xv.dtype)), rstd


class _InstanceNormReLU(torch.autograd.Function):
    """y = relu((x - mean) * rstd), mean/var per (sample, channel) over D, H, W (biased variance)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, eps: float) -> torch.Tensor:  # type: ignore[override]
        xv, dim = _rows(x)
        xhat, rstd = _normalise(xv, dim, eps, inplace=False)
        ctx.save_for_backward(xhat, rstd)
        ctx.dim = dim
        return _unrows(xhat.clamp_min(0), dim, x.shape)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        xhat, rstd = ctx.saved_tensors
        dim = ctx.dim
        n = xhat.shape[dim]
        g = torch.ops.aten.threshold_backward(_like_rows(grad, dim), xhat, 0)  # ReLU: g = dy [xhat > 0]
        # dx = rstd * (g - mean(g) - xhat * mean(g * xhat))
        mean_g = g.sum(dim=dim, keepdim=True, dtype=rstd.dtype) / n
        mean_gx = torch.mul(g, xhat).sum(dim=dim, keepdim=True, dtype=rstd.dtype) / n
        dx = g.sub_(mean_g.to(g.dtype)).addcmul_(xhat, (-mean_gx).to(g.dtype)).mul_(rstd.to(g.dtype))
        return _unrows(dx, dim, grad.shape), None


def instance_norm_relu(x: torch.Tensor, eps: float = 1e-5, inplace: bool = False) -> torch.Tensor:
    """``relu(instance_norm(x))`` without affine parameters, in one autograd node.

    Equal to ``F.relu(F.instance_norm(x, eps=eps))`` up to float rounding, forward and backward.
    Statistics are computed in float32 when ``x`` is bfloat16/float16 (autocast), the output keeps
    ``x``'s dtype.

    Args:
        x: ``(B, C, D, H, W)`` float tensor, contiguous or channels-last (others are copied).
        eps: added to the variance.
        inplace: without autograd (inference), overwrite ``x`` instead of allocating the output;
            ignored when a graph is recorded.

    Returns:
        ``(B, C, D, H, W)`` tensor in ``x``'s memory format (contiguous or channels-last), dtype of ``x``.

    Raises:
        ValueError: ``x`` is not 5-D.
    """
    if x.ndim != 5:
        raise ValueError(f"instance_norm_relu needs a 5-D (B, C, D, H, W) tensor, got shape {tuple(x.shape)}")
    if torch.is_grad_enabled() and x.requires_grad:
        return _InstanceNormReLU.apply(x, eps)
    # No graph to record: no tensors saved.
    if x.dtype in _LOW_PRECISION:
        # bfloat16/float16 (autocast inference): the per-sample batch-norm kernel keeps float32 statistics
        # without converting the tensor (2.5x faster than the row reductions here); its one-pass variance
        # costs ~5e-4 relative in float32, below these dtypes' own rounding (4e-3 for bfloat16).
        parts = [F.batch_norm(sample, None, None, training=True, eps=eps) for sample in x.split(1)]
        return (parts[0] if len(parts) == 1 else torch.cat(parts)).relu_()
    # Otherwise normalise in place when allowed.
    xv, dim = _rows(x)
    inplace = inplace and xv.data_ptr() == x.data_ptr()
    xhat, _ = _normalise(xv, dim, eps, inplace=inplace)
    return _unrows(xhat.relu_(), dim, x.shape)

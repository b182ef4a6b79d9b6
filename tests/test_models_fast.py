"""The fast forward path of the networks (channels-last convolutions, fused instance norm + ReLU) against
the plain module-by-module path and against ``torch.nn.functional`` on small random inputs."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from sepnet_core.analysis.cost import count_flops
from sepnet_core.models import (
    ConvNormAct,
    SeparableResBlock,
    build_model,
    count_parameters,
    instance_norm_relu,
    set_fast_path,
    tune_cpu_allocator,
)

CL = torch.channels_last_3d


def _reference_norm_relu(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    return F.relu(F.instance_norm(x, eps=eps))


# ---------------------------------------------------------------- fused instance norm + ReLU


@pytest.mark.parametrize(
    "shape",
    [
        (1, 1, 1, 2, 3),  # one channel, 6 voxels
        (2, 3, 2, 3, 4),  # batch > 1: statistics per sample
        (1, 5, 4, 1, 1),  # a line of voxels
        (3, 2, 1, 4, 4),  # one slice
    ],
)
def test_instance_norm_relu_equals_functional_forward_and_backward(shape):
    gen = torch.Generator().manual_seed(sum(shape))
    x = (torch.randn(shape, generator=gen, dtype=torch.float64) * 3 + 1.5).requires_grad_()
    ref_x = x.detach().clone().requires_grad_()
    grad = torch.randn(shape, generator=gen, dtype=torch.float64)
    y, ref = instance_norm_relu(x), _reference_norm_relu(ref_x)
    torch.testing.assert_close(y, ref, rtol=1e-10, atol=1e-10)
    (dx,), (ref_dx,) = torch.autograd.grad(y, x, grad), torch.autograd.grad(ref, ref_x, grad)
    torch.testing.assert_close(dx, ref_dx, rtol=1e-9, atol=1e-9)


def test_instance_norm_relu_hand_computed_values():
    # One channel holding 1, 2, 3, 4 (mean 2.5, biased var 1.25): xhat = (x - 2.5) / sqrt(1.25 + eps).
    x = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64).reshape(1, 1, 1, 2, 2)
    y = instance_norm_relu(x, eps=0.0)
    s = 1.25**0.5
    expected = torch.tensor([0.0, 0.0, 0.5 / s, 1.5 / s], dtype=torch.float64).reshape(1, 1, 1, 2, 2)
    torch.testing.assert_close(y, expected, rtol=1e-12, atol=1e-12)
    # A constant channel: xhat = 0 everywhere, output 0, gradient 0 (nothing depends on x).
    const = torch.full((1, 1, 2, 2, 2), 7.0, dtype=torch.float64, requires_grad=True)
    out = instance_norm_relu(const)
    assert not out.any()
    (g,) = torch.autograd.grad(out.sum(), const)
    assert not g.any()


def test_instance_norm_relu_passes_gradcheck():
    x = torch.randn(2, 2, 2, 3, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(instance_norm_relu, (x,))


def test_instance_norm_relu_without_graph_matches_and_respects_inplace():
    x = torch.randn(1, 4, 2, 4, 4).contiguous(memory_format=CL)
    keep = x.clone()
    with torch.no_grad():
        y = instance_norm_relu(x)
    torch.testing.assert_close(x, keep, rtol=0, atol=0)  # not overwritten by default
    torch.testing.assert_close(y, _reference_norm_relu(keep), rtol=1e-5, atol=1e-6)
    with torch.inference_mode():
        z = instance_norm_relu(x, inplace=True)
    assert z.data_ptr() == x.data_ptr()
    torch.testing.assert_close(z, y, rtol=1e-6, atol=1e-6)


def test_instance_norm_relu_layout_and_dtypes():
    x = torch.randn(2, 3, 4, 5, 6)
    y = instance_norm_relu(x)
    assert y.shape == x.shape and y.is_contiguous()
    last = instance_norm_relu(x.contiguous(memory_format=CL))  # the layout is kept, the values equal
    assert last.is_contiguous(memory_format=CL) and not last.is_contiguous()
    torch.testing.assert_close(last, y, rtol=1e-5, atol=1e-6)
    strided = instance_norm_relu(x.transpose(3, 4))  # neither layout: copied
    torch.testing.assert_close(strided, y.transpose(3, 4), rtol=1e-5, atol=1e-6)
    bf = instance_norm_relu(x.bfloat16())
    assert bf.dtype == torch.bfloat16
    torch.testing.assert_close(bf.float(), y, rtol=0.02, atol=0.03)
    with pytest.raises(ValueError, match="5-D"):
        instance_norm_relu(torch.zeros(2, 3, 4, 5))


# ---------------------------------------------------------------- blocks and networks: fast == plain


def _plain_copy(model: nn.Module) -> nn.Module:
    return set_fast_path(copy.deepcopy(model), enabled=False)


@pytest.mark.parametrize(
    ("block", "shape"),
    [
        (lambda: ConvNormAct(3, 4, (1, 3, 3)), (2, 3, 4, 6, 5)),
        (lambda: ConvNormAct(2, 3, (3, 3, 3)), (1, 2, 4, 4, 4)),
        (lambda: SeparableResBlock(3, 4, "axial"), (2, 3, 4, 6, 5)),
        (lambda: SeparableResBlock(1, 2, "sagittal"), (1, 1, 5, 4, 3)),
        (lambda: SeparableResBlock(2, 2, "coronal"), (1, 2, 3, 5, 4)),
    ],
)
def test_fast_block_equals_plain_conv3d_modules(block, shape):
    torch.manual_seed(0)
    fast = block().double()
    plain = _plain_copy(fast)
    assert fast.fast and not plain.fast
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()
    y, ref = fast(x), plain(x_ref)
    torch.testing.assert_close(y, ref, rtol=1e-10, atol=1e-10)
    grad = torch.randn_like(ref)
    y.backward(grad)
    ref.backward(grad)
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-9, atol=1e-9)
    for (name, p), q in zip(fast.named_parameters(), plain.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-9, atol=1e-9, msg=name)


def _run(model: nn.Module, x: torch.Tensor, dtype: torch.dtype) -> list[torch.Tensor]:
    """Output and parameter gradients (as float64) of one training step on ``x``."""
    model = copy.deepcopy(model).to(dtype).train()
    torch.manual_seed(1)  # same Dropout3d channel mask in the head
    out = model(x.to(dtype))
    out.square().mean().backward()
    assert out.is_contiguous() and out.shape == (2, 3, 8, 16, 24)
    return [t.detach().double() for t in (out, *(p.grad for p in model.parameters()))]


@pytest.mark.parametrize("name", ["sepnet", "unet"])
def test_fast_network_equals_plain_network(name):
    torch.manual_seed(0)
    # Bottleneck dropout off: element-wise masks are drawn in memory order, which differs between layouts.
    fast = build_model(name, base=2, num_classes=3, dropout=0.0)
    plain = _plain_copy(fast)
    x = torch.randn(2, 1, 8, 16, 24)
    exact = _run(plain, x, torch.float64)
    for got, ref in zip(_run(fast, x, torch.float64), exact, strict=True):  # float64: equal
        torch.testing.assert_close(got, ref, rtol=1e-9, atol=1e-9)
    # float32: both paths round; the fast one stays within the plain one's rounding error of the float64
    # result (10x, plus 0.1 % of the tensor's scale: at this tiny size the bottleneck norms average 6 voxels,
    # so float32 rounding of either path reaches ~1 % of some gradients). A wrong formula errs by ~100 %.
    fast32, plain32 = _run(fast, x, torch.float32), _run(plain, x, torch.float32)
    for got, other, ref in zip(fast32, plain32, exact, strict=True):
        err, err_plain = float((got - ref).abs().max()), float((other - ref).abs().max())
        assert err <= 10 * err_plain + 1e-3 * float(ref.abs().max()), (err, err_plain)


def test_fast_path_keeps_parameters_and_state_dict_keys():
    fast, plain = build_model("sepnet"), set_fast_path(build_model("sepnet"), enabled=False)
    assert count_parameters(fast) == count_parameters(plain) == 2_505_527
    assert list(fast.state_dict()) == list(plain.state_dict())
    assert all(p.is_contiguous() for p in fast.parameters())  # weights are not re-laid out in place
    unet = build_model("unet")
    assert count_parameters(set_fast_path(unet, enabled=False)) == 9_179_207
    assert {m.fast for m in unet.modules() if isinstance(m, ConvNormAct)} == {False}
    set_fast_path(unet)
    assert {m.fast for m in unet.modules() if isinstance(m, ConvNormAct)} == {True}


def test_fast_training_step_is_deterministic():
    x = torch.rand(1, 1, 8, 16, 16)
    grads = []
    for _ in range(2):
        torch.manual_seed(3)
        model = build_model("sepnet", base=2, num_classes=3)
        model(x).logsumexp(dim=1).mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert torch.equal(grads[0], grads[1])


def test_flop_count_is_the_same_on_both_paths():
    model = build_model("sepnet", base=2, num_classes=3)
    fast = count_flops(model, (1, 1, 8, 16, 16))
    plain = count_flops(_plain_copy(model), (1, 1, 8, 16, 16))
    assert fast == plain > 0


def _counted(model: nn.Module, x: torch.Tensor, backward: bool) -> tuple[int, dict[str, int]]:
    """FlopCounterMode on a real CPU run (not meta tensors): total and per-op FLOPs."""
    counter = FlopCounterMode(display=False)
    with counter:
        if backward:
            model(x).sum().backward()
        else:
            with torch.no_grad():
                model(x)
    return counter.get_total_flops(), {str(k): v for k, v in counter.get_flop_counts()["Global"].items()}


@pytest.mark.parametrize("name", ["sepnet", "unet"])
def test_flop_counter_sees_the_fast_path(name):
    # The paper's networks (b=24) on a small input, fast path on (the default) against the plain modules.
    torch.manual_seed(0)
    fast = build_model(name)
    plain = _plain_copy(fast)
    x = torch.randn(1, 1, 8, 32, 32)
    fast_forward, ops = _counted(fast.eval(), x, backward=False)
    plain_forward, plain_ops = _counted(plain.eval(), x, backward=False)
    assert fast_forward == plain_forward == count_flops(plain, tuple(x.shape), backward=False) > 0
    if torch.backends.mkldnn.is_available():  # the fast path's own convolution op is the one counted
        assert ops["aten.mkldnn_convolution"] > 0.9 * fast_forward
        assert "aten.mkldnn_convolution" not in plain_ops
    fast_total, _ = _counted(fast.train(), x, backward=True)
    plain_total, _ = _counted(plain.train(), x, backward=True)
    assert fast_total == plain_total == count_flops(plain, tuple(x.shape)) > fast_forward


def test_eval_output_same_under_no_grad_and_with_graph():
    torch.manual_seed(0)
    model = build_model("sepnet", base=2, num_classes=3).eval()
    x = torch.randn(1, 1, 8, 16, 16)
    with torch.inference_mode():
        quick = model(x)
    torch.testing.assert_close(quick, model(x), rtol=1e-5, atol=1e-5)


def test_tune_cpu_allocator_is_reversible():
    applied = tune_cpu_allocator()
    try:
        assert isinstance(applied, bool)
        x = torch.randn(1, 4, 8, 64, 64)  # still allocates and computes normally
        assert torch.isfinite(instance_norm_relu(x)).all()
    finally:
        assert tune_cpu_allocator(enabled=False) == applied


def test_blocks_run_the_plain_modules_while_torch_compile_traces(monkeypatch):
    from sepnet_core.models import blocks

    calls = []
    monkeypatch.setattr(blocks, "instance_norm_relu", lambda *a, **k: calls.append(1))
    block = SeparableResBlock(1, 2).eval()
    x = torch.randn(1, 1, 2, 4, 4)
    monkeypatch.setattr(blocks, "_compiling", lambda: True)
    with torch.no_grad():
        out = block(x)
    assert not calls and out.shape == (1, 2, 2, 4, 4)
    torch.testing.assert_close(out, _plain_copy(block)(x), rtol=0, atol=0)

"""Estimate (not a measurement) of the paper profile's time on one modern GPU, printed for the README.

No GPU has been lent to this project, so the README's GPU times are computed here from counts and
stated assumptions, to be replaced by ``benchmarks/gpu.sh`` figures once a GPU runs it:

* work per unit, counted on PyTorch's ``meta`` device (no arithmetic): FLOPs of a training step
  (batch 4 x 16 x 120 x 120, forward + backward) and of one reference-mode inference window
  (16 x 256 x 256, forward) from :func:`sepnet_core.analysis.cost.count_flops`; activation elements
  (outputs of every leaf module of the plain network: convolutions, instance norms, ReLUs, pooling,
  upsampling);
* memory traffic: every activation written once and read once in the forward pass, about twice that in
  the backward pass, at 3 bytes on average (bf16 convolution outputs, float32 normalisation under
  autocast): 6 bytes per activation element for inference, 18 for training;
* throughput, H100 assumptions (SXM: about 990 TFLOP/s dense bf16 and 3.35 TB/s HBM3 at peak): the
  optimistic bound overlaps compute at 250 TFLOP/s with memory at 2.6 TB/s (the slower one counts);
  the pessimistic bound adds compute at 100 TFLOP/s to memory at 2.0 TB/s. The low sustained rates
  reflect the network: shallow convolutions (24-192 channels, separable 1x3x3 and 3x1x1 kernels) and
  55 memory-bound instance norms; on the 2-core CPU the same step reaches 31 % of the bf16 matmul rate
  and 77 % of the float32 one (``results/benchmarks/train_step.csv``);
* the chain: the paper profile's training stages (:func:`sepnet_core.pipeline.stages_for_profile`),
  each 400 epochs x 100 steps with validation of 5 cases every ``--validate-every`` epochs, each run
  evaluated on 10 test cases, and the 6-member ensemble on the 10 test cases; 150-slice cases (68
  windows per model in the reference mode). Not counted: data loading, host-side stitching and argmax
  (today's validation copies every window's probabilities to the host), kernel-launch gaps, checkpoints.

Usage: ``python benchmarks/gpu_estimate.py [--validate-every N]`` (default: the paper preset's).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pandas as pd  # noqa: E402
import torch  # noqa: E402

from sepnet_core.analysis.cost import count_flops  # noqa: E402
from sepnet_core.models import build_model, set_fast_path  # noqa: E402

OPTIMISTIC = {"tflops": 250.0, "tb_per_s": 2.6}
PESSIMISTIC = {"tflops": 100.0, "tb_per_s": 2.0}
BYTES_PER_ELEMENT = {"train": 18, "inference": 6}
SLICES, SLAB, STRIDE, CROP = 150, 16, 2, 256
VALID_CASES, TEST_CASES, MEMBERS = 5, 10, 6


def activation_elements(model: torch.nn.Module, shape: Sequence[int]) -> int:
    """Elements of every leaf module's output in one forward pass of ``model`` on ``shape`` (meta device)."""
    net = set_fast_path(model.to("meta"), False)
    total = 0

    def hook(module, inputs, output) -> None:
        nonlocal total
        total += output.numel() if isinstance(output, torch.Tensor) else 0

    handles = [m.register_forward_hook(hook) for m in net.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            net(torch.zeros(tuple(shape), device="meta"))
    finally:
        for handle in handles:
            handle.remove()
    return total


def seconds(flops: float, nbytes: float) -> tuple[float, float]:
    """(optimistic, pessimistic) seconds for ``flops`` and ``nbytes`` of memory traffic."""
    fast = max(flops / (OPTIMISTIC["tflops"] * 1e12), nbytes / (OPTIMISTIC["tb_per_s"] * 1e12))
    slow = flops / (PESSIMISTIC["tflops"] * 1e12) + nbytes / (PESSIMISTIC["tb_per_s"] * 1e12)
    return fast, slow


def unit_costs(name: str, batch: int, patch: Sequence[int]) -> dict[str, tuple[float, float]]:
    """(optimistic, pessimistic) seconds of one training step and of one model on one case."""
    train_shape, window_shape = (batch, 1, *patch), (1, 1, SLAB, CROP, CROP)
    step = seconds(count_flops(build_model(name, base=24), train_shape),
                   activation_elements(build_model(name, base=24), train_shape) * BYTES_PER_ELEMENT["train"])
    window = seconds(count_flops(build_model(name, base=24), window_shape, backward=False),
                     activation_elements(build_model(name, base=24), window_shape)
                     * BYTES_PER_ELEMENT["inference"])
    windows = (SLICES - SLAB) // STRIDE + 1
    return {"step": step, "case": (window[0] * windows, window[1] * windows)}


def duration(value: float) -> str:
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 60:
        return f"{value:.2f} s"
    if value < 3600:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.1f} h"


def estimate(validate_every: int | None = None) -> pd.DataFrame:
    """Rows: what, optimistic and pessimistic time on one H100 (see the module docstring)."""
    from sepnet_core.pipeline import stages_for_profile
    from sepnet_core.training import preset

    config = preset("paper")
    every = validate_every or config.validate_every
    steps = config.epochs * config.iterations_per_epoch
    validations = config.epochs // every
    runs = [s.parameters["model"] for s in stages_for_profile("paper", data_root="/data")
            if s.name.startswith("train_")]
    cost = {name: unit_costs(name, config.batch_size, config.patch_size) for name in sorted(set(runs))}

    def total(fn) -> tuple[float, float]:
        return tuple(fn(i) for i in (0, 1))  # type: ignore[return-value]

    sep = cost["sepnet"]
    run = total(lambda i: steps * sep["step"][i] + validations * VALID_CASES * sep["case"][i])
    chain = total(lambda i: sum(steps * cost[m]["step"][i] + (validations * VALID_CASES + TEST_CASES)
                                * cost[m]["case"][i] for m in runs) + TEST_CASES * MEMBERS * sep["case"][i])
    rows = [("3D-SepNet training step (batch 4 x 16 x 120 x 120)", sep["step"]),
            (f"one model, one {SLICES}-slice case (reference mode)", sep["case"]),
            (f"{MEMBERS}-member ensemble, one case", total(lambda i: MEMBERS * sep["case"][i])),
            (f"one training run ({steps} steps, validation every {every} epochs)", run),
            (f"whole paper chain ({len(runs)} training runs, their test cases, the ensemble)", chain)]
    return pd.DataFrame([{"what": what, "optimistic": duration(lo), "pessimistic": duration(hi)}
                         for what, (lo, hi) in rows])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--validate-every", type=int, default=None,
                        help="epochs between validations (default: the paper preset's)")
    args = parser.parse_args(argv)
    if args.validate_every is not None and args.validate_every < 1:
        parser.error("--validate-every must be >= 1")
    print(estimate(args.validate_every).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())

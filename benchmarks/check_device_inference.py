"""Device-side ensemble inference against the CPU streaming path: same labels, probabilities to rounding.

Builds ``--members`` random-weight SepNets (base 24, two with the reference 256 x 256 in-plane crop), runs
:func:`sepnet_core.inference.ensemble.predict_case` once with the members on the CPU (streaming slabs,
float32) and once on ``--device`` (whole volume on the device, ``--batch-size`` windows per forward), both
float32 (``--amp`` adds a bf16 device run, compared by label agreement only), and prints the seconds of
each run, whether the labels are identical, the largest probability difference and the vote-entropy
agreement. No file is written. On a CPU-only machine ``--device cpu`` compares the two paths on the CPU.

    .venv/bin/python benchmarks/check_device_inference.py --device cuda --shape 150 512 512   # on a GPU
    .venv/bin/python benchmarks/check_device_inference.py --device cpu --shape 20 64 64 --base 4  # dry
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from sepnet_core.checkpoint import LoadedModel
from sepnet_core.inference.ensemble import predict_case
from sepnet_core.intensity import get_intensity
from sepnet_core.models import ModelConfig


def members(count: int, base: int, crop: int | None, device: str) -> list[LoadedModel]:
    out = []
    for seed in range(count):
        torch.manual_seed(seed)
        config = ModelConfig(name="sepnet", base=base)
        out.append(LoadedModel(model=config.build().eval().to(device), model_config=config,
                               intensity=get_intensity(("slf1", "slf2", "slf3")[seed % 3]),
                               crop_yx=(crop, crop) if crop and seed % 2 == 0 else None,
                               meta={"path": f"random{seed}", "config": {"patch_size": [16, 256, 256]}}))
    return out


def timed(fn):
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--shape", type=int, nargs=3, default=(40, 256, 256), metavar=("Z", "Y", "X"))
    parser.add_argument("--members", type=int, default=2)
    parser.add_argument("--base", type=int, default=24)
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--amp", action="store_true")
    args = parser.parse_args()
    image = np.random.default_rng(0).uniform(-1000, 1500, size=args.shape).astype(np.float32)
    window = (16, min(args.shape[1], 256), min(args.shape[2], 256))
    kwargs = dict(mode="reference", patch_size=window, keep_mean_prob=True)
    cpu, cpu_s = timed(lambda: predict_case(members(args.members, args.base, args.crop, "cpu"), image,
                                            amp=False, stream=True, **kwargs))
    on_device = members(args.members, args.base, args.crop, args.device)
    dev, dev_s = timed(lambda: predict_case(on_device, image, amp=False, stream=False,
                                            batch_size=args.batch_size, **kwargs))
    print(f"shape {tuple(args.shape)}, {args.members} members base {args.base}, reference windows {window}")
    print(f"cpu streaming float32: {cpu_s:.1f} s; {args.device} whole volume float32 batch "
          f"{args.batch_size}: {dev_s:.1f} s")
    print(f"labels identical: {np.array_equal(cpu.labels, dev.labels)} "
          f"(differing voxels {int((cpu.labels != dev.labels).sum())} of {cpu.labels.size}); "
          f"max |prob difference| {np.abs(cpu.mean_prob - dev.mean_prob).max():.2e}; "
          f"vote entropy identical: {np.array_equal(cpu.vote_entropy, dev.vote_entropy)}")
    if args.amp:
        bf16, bf16_s = timed(lambda: predict_case(on_device, image, amp=True, stream=False,
                                                  batch_size=args.batch_size, **kwargs))
        print(f"{args.device} bf16: {bf16_s:.1f} s; labels equal to float32 in "
              f"{float((bf16.labels == dev.labels).mean()):.4%} of voxels")


if __name__ == "__main__":
    main()

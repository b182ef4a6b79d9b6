"""GPU figures (run by ``benchmarks/gpu.sh`` on a machine with a CUDA GPU; not part of ``make bench``).

bfloat16 autocast throughout, each with and without ``torch.compile``:

* train step of 3D-SepNet and 3D U-Net (base 24, batch 4 of 16 x 120 x 120, the paper's setting):
  seconds per step, patches per second, GFLOP/s (PyTorch's flop counter);
* the 6-member ensemble with uncertainty on a 150 x 512 x 512 phantom case (crop 256 x 256, Gaussian
  windows 16 x 256 x 256, overlap 0.5): seconds per case.

Writes ``results/benchmarks/gpu_train_step.csv`` and ``results/benchmarks/gpu_ensemble.csv`` (CUDA runs only).
``--device cpu --quick`` runs the same code on tiny sizes (a check that needs no GPU).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from _common import print_table, write_csv  # noqa: E402
from _perf import random_members, synthetic_case  # noqa: E402

from sepnet_core.analysis.cost import count_flops  # noqa: E402
from sepnet_core.inference.ensemble import predict_case  # noqa: E402
from sepnet_core.models import build_model  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_rows(device: torch.device, quick: bool, repeats: int) -> list[dict]:
    shape = (1, 1, 16, 32, 32) if quick else (4, 1, 16, 120, 120)
    x = torch.rand(shape, device=device)
    rows = []
    for name in ("sepnet", "unet"):
        torch.manual_seed(0)
        model = build_model(name, base=8 if quick else 24).to(device).train()
        flops = count_flops(model, shape)
        for compiled in (False, True):
            runner = torch.compile(model) if compiled else model
            optimiser = torch.optim.Adam(model.parameters(), lr=1e-4)

            def step(runner=runner, optimiser=optimiser) -> None:
                optimiser.zero_grad(set_to_none=True)
                with torch.autocast(device.type, dtype=torch.bfloat16):
                    loss = runner(x).float().mean()
                loss.backward()
                optimiser.step()

            start = time.perf_counter()
            step()
            _sync(device)
            first = time.perf_counter() - start
            for _ in range(2):
                step()
            times = []
            for _ in range(repeats):
                _sync(device)
                start = time.perf_counter()
                step()
                _sync(device)
                times.append(time.perf_counter() - start)
            seconds = statistics.median(times)
            rows.append({"model": name, "compiled": compiled, "dtype": "bfloat16",
                         "input_shape": "x".join(map(str, shape)), "first_step_s": round(first, 2),
                         "step_s": round(seconds, 4), "patches_per_s": round(shape[0] / seconds, 1),
                         "gflop_per_s": round(flops / 1e9 / seconds, 1)})
            print(rows[-1], flush=True)
    return rows


def ensemble_rows(device: torch.device, quick: bool) -> list[dict]:
    shape, crop, count = ((32, 128, 128), 64, 2) if quick else ((150, 512, 512), 256, 6)
    image, _ = synthetic_case(shape)
    window = (16, crop, crop)
    rows = []
    for compiled in (False, True):
        members = random_members(count, base=8 if quick else 24, crop_yx=(crop, crop), patch=window)
        for member in members:
            member.model.to(device)
            if compiled:
                object.__setattr__(member, "model", torch.compile(member.model))
        predict_case(members, image[: 2 * window[0]], amp=True)  # warm-up (and compilation)
        _sync(device)
        start = time.perf_counter()
        predict_case(members, image, amp=True)
        _sync(device)
        rows.append({"volume": "x".join(map(str, shape)), "members": count, "compiled": compiled,
                     "dtype": "bfloat16", "seconds_per_case": round(time.perf_counter() - start, 2)})
        print(rows[-1], flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--device", default="cuda", help="device (default: cuda)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a check, e.g. with --device cpu)")
    parser.add_argument("--repeats", type=int, default=10, help="timed train steps (default: 10)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA device visible; nothing measured", file=sys.stderr)
        return 2
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    train = [{**r, "device": name} for r in train_rows(device, args.quick, args.repeats)]
    ensemble = [{**r, "device": name} for r in ensemble_rows(device, args.quick)]
    print_table(train)
    print_table(ensemble)
    if device.type != "cuda":  # a check of the script: its figures are not GPU figures, so no CSV
        print(f"check on {name}: no CSV written (results/benchmarks/gpu_*.csv are for CUDA runs only)")
        return 0
    print(f"wrote {write_csv('gpu_train_step', train)}")
    print(f"wrote {write_csv('gpu_ensemble', ensemble)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

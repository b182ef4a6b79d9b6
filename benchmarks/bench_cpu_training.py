"""Benchmark: the cpu preset's training levers, each measured against its alternative in one process.

1. Training step (forward, ATH loss, backward, Adam) of the ``cpu`` preset's network, batch and patch
   (SepNet b=8, batch 2 of 16 x 64 x 64), float32 against bf16 autocast, interleaved round by round
   so that machine noise hits both alike, at 1 thread and at 2 threads. Prints the median step time
   and the bf16/fp32 ratio, and whether this CPU has native bf16 (what ``amp="auto"`` decides on).
2. Validation windows: a cpu-preset network trained for ``--train-steps`` steps on phantom cases (or
   ``--checkpoint`` on ``--data``) is validated with ``val_overlap`` 0.5 (the default), 0.25 and 0 (and
   bf16 inference at 0.5): seconds and mean Dice of each, so that fewer windows are used only where
   the score hardly changes (measure on a trained network: an untrained one's Dice says nothing).

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_cpu_training.py            # ~5-10 min on 2 cores
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_cpu_training.py --quick    # a check, ~1 min
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_cpu_training.py --skip-steps \
        --checkpoint RUN/best.pt --data DATA                                        # overlap on a trained net
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP (see _perf)
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from _common import machine_info, print_table, write_csv  # noqa: E402
from _perf import load_average  # noqa: E402

from sepnet_core.data.phantom import write_dataset  # noqa: E402
from sepnet_core.device import native_bf16  # noqa: E402
from sepnet_core.inference.sliding import predict_volume  # noqa: E402
from sepnet_core.losses import build_loss  # noqa: E402
from sepnet_core.metrics import dice  # noqa: E402
from sepnet_core.organs import ORGANS  # noqa: E402
from sepnet_core.training import apply_overrides, fit, load_model, preset  # noqa: E402
from sepnet_core.training.data import load_split  # noqa: E402
from sepnet_core.training.loop import loss_options  # noqa: E402
from sepnet_core.training.validation import validate  # noqa: E402


def step_times(rounds: int, steps: int, threads: int) -> list[dict]:
    """Median seconds per training step, fp32 and bf16 interleaved, at ``threads`` threads."""
    torch.set_num_threads(threads)
    config = preset("cpu")
    torch.manual_seed(0)
    model = config.model.build().train()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.optim.lr)
    loss_fn = build_loss(config.loss, **loss_options(config))
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.normal(size=(config.batch_size, 1, *config.patch_size)).astype(np.float32))
    y = torch.from_numpy(rng.integers(0, 23, size=(config.batch_size, *config.patch_size)))

    def step(bf16: bool) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(x)
        loss = loss_fn(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for bf16 in (False, True):  # warm-up (oneDNN kernels, heap)
        step(bf16)
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(rounds):
        for bf16 in (False, True):
            start = time.perf_counter()
            for _ in range(steps):
                step(bf16)
            times[bf16].append((time.perf_counter() - start) / steps)
    fp32, bf16 = statistics.median(times[False]), statistics.median(times[True])
    return [{"part": "train_step", "threads": threads, "variant": "fp32", "seconds": round(fp32, 4),
             "ratio_to_fp32": 1.0},
            {"part": "train_step", "threads": threads, "variant": "bf16", "seconds": round(bf16, 4),
             "ratio_to_fp32": round(bf16 / fp32, 3)}]


def validation_windows(train_steps: int, rounds: int, work: Path, checkpoint: Path | None = None,
                       data: Path | None = None) -> list[dict]:
    """Validation seconds and mean Dice for several overlaps, of ``checkpoint`` on ``data``/valid or of a
    cpu-preset network trained here for ``train_steps`` steps on new phantom cases."""
    if checkpoint is None:
        data = work / "data"
        write_dataset(data, cases=8, seed=0, profile="cpu", split={"train": 6, "valid": 2}, workers=1)
        config = apply_overrides(preset("cpu", data_root=str(data)),
                                 [f"epochs={max(1, train_steps // 30)}", "iterations_per_epoch=30",
                                  "amp=off", "val_points=1"])
        started = time.perf_counter()
        fit(config, work / "run")
        print(f"trained {config.epochs * 30} steps in {time.perf_counter() - started:.0f} s", flush=True)
        checkpoint = work / "run" / "last.pt"
    loaded = load_model(checkpoint)
    net = loaded.model.eval()
    config = preset("cpu")
    cases = load_split(str(data), "valid", loaded.intensity, loaded.crop_yx)
    rows: dict[str, list] = {}
    variants = [("overlap 0.5", 0.5, False), ("overlap 0.25", 0.25, False), ("overlap 0", 0.0, False),
                ("overlap 0.5 bf16", 0.5, True)]
    for _ in range(rounds):
        for name, overlap, bf16 in variants:
            start = time.perf_counter()
            if bf16:
                scores = _bf16_validate(net, cases, config.patch_size, overlap, config.batch_size)
            else:
                scores = validate(net, cases, config.patch_size, mode="gaussian", overlap=overlap,
                                  batch_size=config.batch_size)["mean_dice"]
            rows.setdefault(name, []).append((time.perf_counter() - start, scores))
    base = statistics.median(t for t, _ in rows["overlap 0.5"])
    out = []
    for name, values in rows.items():
        seconds = statistics.median(t for t, _ in values)
        out.append({"part": "validation", "threads": torch.get_num_threads(), "variant": name,
                    "seconds": round(seconds, 3), "ratio_to_fp32": round(seconds / base, 3),
                    "mean_dice": round(values[0][1], 4)})
    return out


def _bf16_validate(net, cases, patch_size, overlap, batch_size) -> float:
    """Mean foreground Dice (organs averaged over cases, then over organs) with bf16 CPU inference."""
    per_organ: dict[int, list[float]] = {}
    for case in cases:
        probs = predict_volume(net, case.image, patch_size, overlap=overlap, mode="gaussian",
                               batch_size=batch_size, device="cpu", amp=True, out_dtype=np.float32)
        pred = probs.argmax(axis=0)
        for organ in ORGANS:
            per_organ.setdefault(organ.label, []).append(dice(pred == organ.label, case.label == organ.label))
    means = [np.nanmean(v) for v in per_organ.values() if not np.all(np.isnan(v))]
    return float(np.mean(means))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--quick", action="store_true", help="few rounds and 30 training steps (a check)")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per variant (default: 5)")
    parser.add_argument("--steps", type=int, default=3, help="steps per timed round (default: 3)")
    parser.add_argument("--train-steps", type=int, default=300,
                        help="steps the network is trained before the validation part (default: 300)")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="validation part: use this trained checkpoint instead of training one")
    parser.add_argument("--data", type=Path, default=None,
                        help="with --checkpoint: data set whose valid/ split is validated")
    parser.add_argument("--skip-steps", action="store_true", help="skip the training-step part")
    parser.add_argument("--csv", action="store_true", help="write results/benchmarks/cpu_training.csv")
    args = parser.parse_args(argv)
    rounds, steps, train_steps = (2, 1, 30) if args.quick else (args.rounds, args.steps, args.train_steps)
    if args.checkpoint is not None and args.data is None:
        parser.error("--checkpoint needs --data (the data set whose valid/ split is validated)")
    load_before = load_average()
    rows = []
    if not args.skip_steps:
        rows = step_times(rounds, steps, threads=1) + step_times(rounds, steps, threads=2)
        print_table(rows)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        rows += validation_windows(train_steps, max(1, rounds // 2), Path(tmp), args.checkpoint, args.data)
    rows = [{**r, "mean_dice": r.get("mean_dice", "")} for r in rows]
    info = {**machine_info(), "native_bf16": native_bf16("cpu"), "load_before": load_before,
            "load_after": load_average(), "rounds": rounds}
    print_table(rows)
    print(f"native bf16 on this CPU: {info['native_bf16']}; "
          f"load average {load_before} -> {info['load_after']}")
    if args.csv:
        print(f"wrote {write_csv('cpu_training', [{**r, **info} for r in rows])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

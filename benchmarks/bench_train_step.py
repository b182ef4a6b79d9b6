"""Benchmark: one training step (forward + backward) of 3D-SepNet and the 3D U-Net at the paper's size.

For each network (base 24, one 1 x 1 x 16 x 120 x 120 patch) three variants are timed, interleaved in one
process so that machine noise hits all of them alike:

* ``naive``: the plain module-by-module forward (``set_fast_path(model, False)``: NCDHW ``Conv3d``,
  ``InstanceNorm3d``, in-place ReLU) with glibc's default allocator;
* ``fast``: our default path (channels-last oneDNN convolutions, fused instance norm + ReLU) with
  :func:`~sepnet_core.models.tune_cpu_allocator`, float32;
* ``fast_bf16``: the same under ``torch.autocast("cpu", torch.bfloat16)`` (reported apart; CPU training
  stays float32).

FLOPs come from PyTorch's flop counter (:func:`sepnet_core.analysis.cost.count_flops`); the fp32 and bf16
matmul rates are measured between the steps of every round. Printed: time (median of the rounds),
GFLOP/s and its ratio to the matmul rate of the same precision, and SepNet's time over the U-Net's.
It also prints and stores (``train_step_profile.csv``) where the time of each SepNet variant goes, by
operator (``--no-profile`` skips it); ``--compile`` adds a ``torch.compile`` variant (compilation takes
minutes here).

Usage::

    .venv/bin/python benchmarks/bench_train_step.py            # about 2 minutes on 2 cores
    .venv/bin/python benchmarks/bench_train_step.py --quick    # 16 x 64 x 64 patch, 2 rounds
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP (see _perf)
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from _common import machine_info, print_table, write_csv  # noqa: E402
from _perf import load_average, matmul_gflops, thread_settings  # noqa: E402

from sepnet_core.analysis.cost import count_flops  # noqa: E402
from sepnet_core.models import build_model, count_parameters, set_fast_path, tune_cpu_allocator  # noqa: E402

VARIANTS = ("naive", "fast", "fast_bf16")


def _step(model: torch.nn.Module, x: torch.Tensor, bf16: bool) -> None:
    model.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        logits = model(x)
    logits.float().mean().backward()


def _prepare(model: torch.nn.Module, variant: str) -> None:
    """Switch the model and the process allocator to ``variant``."""
    set_fast_path(model, variant != "naive")
    tune_cpu_allocator(enabled=variant != "naive")


def _profile(model: torch.nn.Module, x: torch.Tensor, variant: str, rows: int = 12) -> list[dict]:
    from torch.profiler import ProfilerActivity, profile

    _prepare(model, variant)
    _step(model, x, variant.endswith("bf16"))
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        _step(model, x, variant.endswith("bf16"))
    events = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
    total = sum(e.self_cpu_time_total for e in events)
    table = [{"variant": variant, "op": e.key, "calls": e.count,
              "self_cpu_ms": round(e.self_cpu_time_total / 1e3, 1),
              "share": round(e.self_cpu_time_total / total, 3)} for e in events[:rows]]
    print(f"\nprofile of one SepNet step, variant {variant} (self CPU time, profiler overhead included):")
    print_table([{k: r[k] for k in ("op", "calls", "self_cpu_ms", "share")} for r in table])
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--quick", action="store_true", help="16 x 64 x 64 patch and 2 rounds (a check)")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per variant (default: 3)")
    parser.add_argument("--batch", type=int, default=1, help="patches per step (default: 1)")
    parser.add_argument("--no-profile", dest="profile", action="store_false",
                        help="skip the profile of the SepNet variants by operator")
    parser.add_argument("--compile", action="store_true",
                        help="also time torch.compile of the fast path (compilation takes minutes)")
    parser.add_argument("--no-csv", action="store_true",
                        help="do not write results/benchmarks/train_step.csv")
    args = parser.parse_args(argv)
    patch = (16, 64, 64) if args.quick else (16, 120, 120)
    rounds = 2 if args.quick else args.rounds
    shape = (args.batch, 1, *patch)
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    variants = list(VARIANTS) + (["fast_compiled"] if args.compile else [])

    models, flops = {}, {}
    for name in ("sepnet", "unet"):
        torch.manual_seed(0)
        models[name] = build_model(name).train()
        flops[name] = count_flops(models[name], shape)
    compiled = {}
    if args.compile:
        for name, model in models.items():
            _prepare(model, "fast")
            compiled[name] = torch.compile(model)
            start = time.perf_counter()
            _step(compiled[name], x, False)
            seconds = time.perf_counter() - start
            print(f"torch.compile {name}: first step (compilation) {seconds:.0f} s", flush=True)

    load_before = load_average()
    times: dict[tuple[str, str], list[float]] = {(n, v): [] for n in models for v in variants}
    peaks: dict[str, list[float]] = {"float32": [], "bfloat16": []}
    for name in models:  # warm-up: first-call costs (oneDNN kernels, heap growth) are not timed
        for variant in variants:
            _prepare(models[name], variant.replace("_compiled", ""))
            _step(compiled.get(name, models[name]) if variant == "fast_compiled" else models[name], x,
                  variant.endswith("bf16"))
    for _ in range(rounds):
        for dtype in peaks:
            peaks[dtype].append(matmul_gflops(dtype))
        for name, model in models.items():
            for variant in variants:
                _prepare(model, variant.replace("_compiled", ""))
                runner = compiled[name] if variant == "fast_compiled" else model
                start = time.perf_counter()
                _step(runner, x, variant.endswith("bf16"))
                times[(name, variant)].append(time.perf_counter() - start)
    tune_cpu_allocator(enabled=True)
    load_after = load_average()

    peak = {dtype: statistics.median(v) for dtype, v in peaks.items()}
    rows = []
    for (name, variant), ts in times.items():
        seconds = statistics.median(ts)
        dtype = "bfloat16" if variant.endswith("bf16") else "float32"
        gflops = flops[name] / 1e9 / seconds
        rows.append({
            "model": name, "variant": variant, "dtype": dtype, "input_shape": "x".join(map(str, shape)),
            "parameters": count_parameters(models[name]), "gflop_train": round(flops[name] / 1e9, 2),
            "step_s": round(seconds, 3), "step_s_min": round(min(ts), 3), "gflop_per_s": round(gflops, 1),
            "matmul_peak_gflops": round(peak[dtype], 1), "fraction_of_peak": round(gflops / peak[dtype], 3),
        })
    by_key = {(r["model"], r["variant"]): r for r in rows}
    for r in rows:
        r["vs_unet_same_variant"] = round(r["step_s"] / by_key[("unet", r["variant"])]["step_s"], 3)
        r["vs_unet_naive"] = round(r["step_s"] / by_key[("unet", "naive")]["step_s"], 3)
        r["speedup_vs_naive"] = round(by_key[(r["model"], "naive")]["step_s"] / r["step_s"], 2)

    info = {**machine_info(), **thread_settings(), "load_before": load_before, "load_after": load_after,
            "rounds": rounds}
    columns = ("model", "variant", "step_s", "gflop_train", "gflop_per_s", "fraction_of_peak",
               "vs_unet_same_variant", "vs_unet_naive", "speedup_vs_naive")
    print_table([{k: r[k] for k in columns} for r in rows])
    print(f"\nmatmul peak (median of {rounds}): fp32 {peak['float32']:.0f} GFLOP/s, "
          f"bf16 {peak['bfloat16']:.0f} GFLOP/s; {info['cpus']} CPUs, {info['threads']} threads, "
          f"OMP_WAIT_POLICY={info['omp_wait_policy']}, load average {load_before} -> {load_after}")
    sep = by_key[("sepnet", "fast")]
    print(f"SepNet fast fp32: {sep['gflop_per_s']:.0f} GFLOP/s = {sep['fraction_of_peak']:.0%} of the fp32 "
          f"matmul peak (target >= 60 %); step = {sep['vs_unet_same_variant']:.2f} x the fast U-Net's, "
          f"{sep['vs_unet_naive']:.2f} x the naive U-Net's (target <= 0.55)")
    profile_rows: list[dict] = []
    if args.profile:
        for variant in VARIANTS:
            profile_rows += _profile(models["sepnet"], x, variant)
        tune_cpu_allocator(enabled=True)
    if not args.no_csv:
        print(f"wrote {write_csv('train_step', [{**r, **info} for r in rows])}")
        if profile_rows:
            print(f"wrote {write_csv('train_step_profile', profile_rows)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

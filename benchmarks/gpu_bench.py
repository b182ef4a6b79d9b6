"""GPU check (``benchmarks/gpu.sh``; not part of ``make bench``): what one GPU does with the paper profile.

Three parts, all bf16 autocast on CUDA, in one run bounded by ``--budget-s`` (default 450 s, so that
``gpu.sh`` with its 8-minute limit always ends with its tables written):

* ``fit``: the real :func:`sepnet_core.training.fit` with the paper preset (3D-SepNet b=24, batch 4 of
  16 x 120 x 120, ATH, SLF-1, 256 x 256 crop) on structseg-profile phantom cases (4 train, 1 valid) for
  4 epochs x 75 steps: epoch 1 warms up (cuDNN picks its algorithms), epoch 2 runs under
  ``torch.profiler`` (share of the wall time in which the GPU runs a kernel or a copy: the union of
  their intervals over the epoch's wall time, checkpoint write included), epoch 3 gives the plain step
  time, epoch 4 adds one reference-mode validation of the valid case (its extra seconds);
* ``train_step``: one optimiser step of the same model and batch as a loop of its own, three ways:
  the fast path (default), the plain modules (``set_fast_path(model, False)``) and ``torch.compile``;
* ``ensemble``: the paper's 6-member ensemble (seeded untrained SepNets, SLF-1/2/3) with uncertainty
  on a 150 x 512 x 512 case in the reference mode (windows of 16 slices x the whole 256 x 256 crop,
  stride 2 slices), fast path, plain modules and ``torch.compile``: seconds per case.

Each part's rows go to ``<out>/gpu_fit.csv``, ``gpu_train_step.csv`` and ``gpu_ensemble.csv`` as soon
as it ends (default ``--out results/benchmarks``, which the book's Benchmarks page shows). A part that
would not fit the remaining budget is recorded as skipped, not run.

``--dry`` runs every part end to end on tiny sizes (smoke phantom, base-2 models, 2 members,
``torch.compile`` with the "eager" backend) on the CPU in about a minute: ``tests/test_gpu_bench.py``
runs it, so the script cannot break unseen. Its numbers are not GPU figures; it writes CSV only to an
``--out`` given explicitly. The README's estimate of the paper profile on one GPU is
``benchmarks/gpu_estimate.py``.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from _common import RESULTS_DIR, print_table  # noqa: E402
from _perf import CACHE_DIR, random_members, synthetic_case  # noqa: E402

from sepnet_core.analysis.cost import count_flops  # noqa: E402
from sepnet_core.fileio import write_text_atomic  # noqa: E402
from sepnet_core.losses import build_loss, labels_prechecked  # noqa: E402
from sepnet_core.models import build_model, set_fast_path  # noqa: E402

VARIANTS = ("fast", "plain", "compiled")


@dataclasses.dataclass(frozen=True)
class Sizes:
    """Everything that differs between the GPU run and the dry check."""

    phantom: str
    preset: str
    epochs: int
    steps: int
    batch: tuple[int, ...]
    base: int
    volume: tuple[int, int, int]
    crop: int
    members: int
    slab: int
    repeats: int
    compile_backend: str
    # conservative seconds each part may take, to decide whether it fits the remaining budget
    cost_s: dict[str, float]


GPU = Sizes("structseg", "paper", epochs=4, steps=75, batch=(4, 1, 16, 120, 120), base=24,
            volume=(150, 512, 512), crop=256, members=6, slab=16, repeats=20, compile_backend="inductor",
            cost_s={"fit": 150, "train_step_fast": 15, "train_step_plain": 15, "train_step_compiled": 150,
                    "ensemble_fast": 60, "ensemble_plain": 60, "ensemble_compiled": 150})
DRY = Sizes("smoke", "smoke", epochs=4, steps=2, batch=(1, 1, 8, 32, 32), base=2, volume=(20, 64, 64),
            crop=32, members=2, slab=8, repeats=2, compile_backend="eager",
            cost_s={"fit": 1, "train_step_fast": 1, "train_step_plain": 1, "train_step_compiled": 1,
                    "ensemble_fast": 1, "ensemble_plain": 1, "ensemble_compiled": 1})


class Budget:
    """Seconds left of the run; a part runs only if its conservative cost fits."""

    def __init__(self, seconds: float) -> None:
        self.end = time.perf_counter() + seconds

    def left(self) -> float:
        return self.end - time.perf_counter()

    def allows(self, cost_s: float) -> bool:
        return self.left() >= cost_s


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def busy_seconds(prof: torch.profiler.profile, device: torch.device) -> float:
    """Seconds covered by the union of the profiled device activities (CUDA kernels, copies, memsets);
    on the CPU (the dry check) of the CPU operators instead."""
    want = torch.autograd.DeviceType.CUDA if device.type == "cuda" else torch.autograd.DeviceType.CPU
    spans = []
    for event in prof.profiler.kineto_results.events():
        if event.device_type() == want and event.duration_ns() > 0:
            spans.append((event.start_ns(), event.start_ns() + event.duration_ns()))
    spans.sort()
    total, end = 0, -math.inf
    for start, stop in spans:
        if start > end:
            total += stop - start
            end = stop
        elif stop > end:
            total += stop - end
            end = stop
    return total / 1e9


# ---------------------------------------------------------------------------------------------- fit
def phantom_root(sizes: Sizes, work: Path) -> Path:
    """Phantom cases (4 train, 1 valid) for the fit, generated once under ``work``."""
    from sepnet_core.data.phantom import write_dataset

    root = work / f"gpu_phantom_{sizes.phantom}"
    if not (root / "valid").is_dir():
        if root.exists():
            shutil.rmtree(root)
        write_dataset(root, 5, seed=0, profile=sizes.phantom, split={"train": 4, "valid": 1, "test": 0},
                      workers=min(8, os.cpu_count() or 1))
    return root


def case_image(sizes: Sizes, work: Path) -> np.ndarray:
    """The ensemble's CT (HU): a structseg-profile phantom cut or padded to ``sizes.volume`` (GPU), the
    fit's valid case (dry check: no 512 x 512 phantom to generate)."""
    if sizes is DRY:
        from sepnet_core.data.io import list_cases, read_case

        return read_case(list_cases(phantom_root(sizes, work), "valid")[0]).image
    return synthetic_case(sizes.volume)[0]


def fit_rows(device: torch.device, sizes: Sizes, work: Path) -> list[dict[str, Any]]:
    from sepnet_core.training import fit, preset
    from sepnet_core.training.precision import use_bf16

    data = phantom_root(sizes, work)
    config = preset(sizes.preset, data_root=str(data), epochs=sizes.epochs, iterations_per_epoch=sizes.steps,
                    validate_every=sizes.epochs, val_mode="reference", device=device.type)
    activity = torch.profiler.ProfilerActivity.CUDA if device.type == "cuda" else \
        torch.profiler.ProfilerActivity.CPU
    prof = torch.profiler.profile(activities=[activity])
    marks: dict[int, float] = {}

    def callback(event: dict[str, Any]) -> None:
        sync(device)
        marks[event["epoch"]] = time.perf_counter()
        if event["epoch"] == 1:
            prof.start()
        elif event["epoch"] == 2:
            sync(device)
            prof.stop()

    out = Path(tempfile.mkdtemp(prefix="gpu_fit_", dir=work))
    try:
        fit(config, out / "run", callback=callback)
        log = pd.read_csv(out / "run" / "log.csv")
    finally:
        shutil.rmtree(out, ignore_errors=True)
    seconds = log["seconds"].tolist()  # per epoch, from its first step to its log row (no checkpoint)
    window = marks[2] - marks[1]
    busy = busy_seconds(prof, device)
    step = seconds[2] / sizes.steps
    return [{
        "part": "fit", "model": f"sepnet b{config.model.base}", "batch": config.batch_size,
        "patch": "x".join(map(str, config.patch_size)), "crop": "x".join(map(str, config.data.crop_yx or ())),
        "amp_bf16": use_bf16(config.amp, device), "steps": sizes.epochs * sizes.steps,
        "first_epoch_s": round(seconds[0], 2), "step_s": round(step, 4),
        "steps_per_s": round(1 / step, 2), "profiled_step_s": round(seconds[1] / sizes.steps, 4),
        "gpu_busy_share": round(busy / window, 3), "busy_source": "cuda kernels and copies"
        if device.type == "cuda" else "cpu operators (dry check, not a GPU figure)",
        "validation_s_per_case": round(seconds[3] - seconds[2], 2),
        "gflop_per_step": round(count_flops(config.model.build(), (config.batch_size, 1, *config.patch_size))
                                / 1e9, 1),
    }]


# --------------------------------------------------------------------------------------- train step
def make_variant(model: torch.nn.Module, variant: str, sizes: Sizes) -> torch.nn.Module:
    if variant == "plain":
        return set_fast_path(model, False)
    if variant == "compiled":
        return torch.compile(model, backend=sizes.compile_backend)
    return model


def step_row(device: torch.device, sizes: Sizes, variant: str) -> dict[str, Any]:
    torch.manual_seed(0)
    model = build_model("sepnet", base=sizes.base).to(device).train()
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last_3d)
    runner = make_variant(model, variant, sizes)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True if device.type == "cuda" else None)
    loss_fn = build_loss("ath")
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(sizes.batch, generator=generator).to(device)
    y = torch.randint(0, 23, (sizes.batch[0], *sizes.batch[2:]), generator=generator).to(device)
    amp = device.type == "cuda"

    def step() -> None:
        with labels_prechecked():
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                logits = runner(x)
            loss = loss_fn(logits.float(), y)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()

    start = time.perf_counter()
    step()
    sync(device)
    first = time.perf_counter() - start
    for _ in range(2):
        step()
    times = []
    for _ in range(sizes.repeats):
        sync(device)
        start = time.perf_counter()
        step()
        sync(device)
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    flops = count_flops(model, sizes.batch)
    return {"part": "train_step", "variant": variant, "model": f"sepnet b{sizes.base}",
            "input_shape": "x".join(map(str, sizes.batch)), "dtype": "bfloat16" if amp else "float32",
            "first_step_s": round(first, 2), "step_s": round(seconds, 4), "patches_per_s":
            round(sizes.batch[0] / seconds, 1), "gflop_per_s": round(flops / 1e9 / seconds, 1)}


# ----------------------------------------------------------------------------------------- ensemble
def ensemble_row(device: torch.device, sizes: Sizes, variant: str, image: np.ndarray) -> dict[str, Any]:
    from sepnet_core.inference.ensemble import predict_case

    window = (sizes.slab, sizes.crop, sizes.crop)
    members = random_members(sizes.members, base=sizes.base, crop_yx=(sizes.crop, sizes.crop), patch=window)
    for member in members:
        model = member.model.to(device)
        if device.type == "cuda":
            model = model.to(memory_format=torch.channels_last_3d)
        object.__setattr__(member, "model", make_variant(model, variant, sizes))
    amp = device.type == "cuda"
    start = time.perf_counter()
    predict_case(members, image[: 2 * sizes.slab], mode="reference", patch_size=window, amp=amp)  # warm-up
    sync(device)
    warm = time.perf_counter() - start
    start = time.perf_counter()
    result = predict_case(members, image, mode="reference", patch_size=window, amp=amp)
    sync(device)
    seconds = time.perf_counter() - start
    windows = sizes.members * ((image.shape[0] - sizes.slab) // 2 + 1)
    flops = count_flops(members[0].model_config.build(), (1, 1, *window), backward=False) * windows
    return {"part": "ensemble", "variant": variant, "volume": "x".join(map(str, image.shape)),
            "members": sizes.members, "mode": "reference", "window": "x".join(map(str, window)),
            "stride_slices": 2, "dtype": "bfloat16" if amp else "float32", "warmup_s": round(warm, 2),
            "seconds_per_case": round(seconds, 2), "windows": windows,
            "tflop_per_s": round(flops / 1e12 / seconds, 2),
            "labels_present": int(np.unique(result.labels).size)}


# --------------------------------------------------------------------------------------------- main
def skipped(part: str, variant: str, budget: Budget) -> dict[str, Any]:
    print(f"{part} {variant}: skipped, {budget.left():.0f} s of the budget left", flush=True)
    return {"part": part, "variant": variant, "status": f"skipped: {budget.left():.0f} s of the budget left"}


def write(out: Path | None, name: str, rows: list[dict[str, Any]], facts: dict[str, Any]) -> None:
    print_table([{k: v for k, v in r.items() if k != "busy_source"} for r in rows])
    if out is None:
        return
    out.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame([{**r, **facts} for r in rows])
    path = write_text_atomic(out / f"{name}.csv", frame.to_csv(index=False), overwrite=True)
    print(f"wrote {path}", flush=True)


def run(device: torch.device, sizes: Sizes, out: Path | None, work: Path, budget: Budget,
        parts: tuple[str, ...]) -> dict[str, list[dict[str, Any]]]:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu (dry check)"
    facts = {"device": name, "torch": torch.__version__, "cuda": torch.version.cuda or "",
             "budget_left_s": None}
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    tables: dict[str, list[dict[str, Any]]] = {}

    def guarded(part: str, variant: str, action: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        key = f"{part}_{variant}" if part != "fit" else "fit"
        if not budget.allows(sizes.cost_s[key]):
            return skipped(part, variant, budget)
        start = time.perf_counter()
        row = {**action(), "status": "measured", "part_s": round(time.perf_counter() - start, 1)}
        print(row, flush=True)
        return row

    # cheapest and most telling first; torch.compile (minutes of compilation) last
    order = [("train_step", "fast"), ("train_step", "plain"), ("fit", ""), ("ensemble", "fast"),
             ("ensemble", "plain"), ("train_step", "compiled"), ("ensemble", "compiled")]
    image = None
    for part, variant in order:
        if part not in parts:
            continue
        if part == "fit":
            rows = [guarded("fit", "", lambda: fit_rows(device, sizes, work)[0])]
        elif part == "train_step":
            rows = [guarded(part, variant, lambda v=variant: step_row(device, sizes, v))]
        else:
            if image is None:
                image = case_image(sizes, work)
            rows = [guarded(part, variant, lambda v=variant, im=image: ensemble_row(device, sizes, v, im))]
        tables.setdefault(part, []).extend(rows)
        write(out, f"gpu_{part}", tables[part], {**facts, "budget_left_s": round(budget.left())})
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return tables


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--dry", action="store_true", help="tiny sizes on the CPU: a check of the script")
    parser.add_argument("--device", default=None, help="device (default: cuda; cpu with --dry)")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder of the CSV files (default: results/benchmarks on CUDA; none with --dry)")
    parser.add_argument("--work", type=Path, default=CACHE_DIR,
                        help="folder for the phantom cases and the temporary run (default: work/benchmarks)")
    parser.add_argument("--budget-s", type=float, default=450.0, help="time for all parts (default: 450 s)")
    parser.add_argument("--parts", default="fit,train_step,ensemble",
                        help="comma-separated parts to run (default: fit,train_step,ensemble)")
    args = parser.parse_args(argv)
    device = torch.device(args.device or ("cpu" if args.dry else "cuda"))
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpu_bench: error: no CUDA device visible; nothing measured (use --dry for a CPU check)",
              file=sys.stderr)
        return 2
    parts = tuple(p.strip() for p in args.parts.split(",") if p.strip())
    unknown = sorted(set(parts) - {"fit", "train_step", "ensemble"})
    if unknown:
        print(f"gpu_bench: error: unknown part(s) {unknown}", file=sys.stderr)
        return 2
    out = args.out if args.out is not None or args.dry else RESULTS_DIR
    if device.type != "cuda" and not args.dry:
        print("gpu_bench: error: a non-CUDA device needs --dry (its figures are not GPU figures)",
              file=sys.stderr)
        return 2
    args.work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    run(device, DRY if args.dry else GPU, out, args.work, Budget(args.budget_s), parts)
    print(f"gpu_bench: done in {time.perf_counter() - started:.0f} s on {device}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

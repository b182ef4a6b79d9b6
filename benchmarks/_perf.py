"""Helpers of the performance benchmarks (train step, inference, ensemble, scaling).

* thread settings: ``OMP_WAIT_POLICY=PASSIVE`` unless the caller set it (each script sets it before torch
  is imported; on a shared 2-core machine spinning OpenMP threads that lose their core stall every
  parallel op, measured 2-5x slower steps);
* :func:`matmul_gflops`: the fp32 / bf16 matmul rate of this process, the reference each figure is a
  ratio to;
* :func:`run_child`: a measurement in a fresh process (its own peak RSS, no allocator state carried over),
  returning the JSON dict the child printed last;
* :func:`synthetic_case`: a StructSeg-like phantom CT (and labels) cut to the requested shape, cached as
  ``.npy`` so that children load it instead of regenerating it;
* :func:`random_members`: the 6-member ensemble of the paper ({SLF-1, SLF-2, SLF-3} x 2) with seeded,
  untrained base-24 SepNets (timing and memory do not depend on the weights).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["CACHE_DIR", "load_average", "matmul_gflops", "peak_rss_mib", "random_members", "run_child",
           "synthetic_case", "thread_settings"]

CACHE_DIR = Path(__file__).resolve().parent.parent / "work" / "benchmarks"
"""Synthetic volumes shared between a benchmark and its child processes: uncommitted heavy files, so under
the git-ignored ``work/`` (``results/`` holds only the committed tables, which the book tests copy)."""

MEMBER_INTENSITIES = ("slf1", "slf2", "slf3")


def thread_settings() -> dict[str, Any]:
    """Threads and OpenMP wait policy of this process (to store beside timings)."""
    import torch

    return {"threads": torch.get_num_threads(), "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "")}


def load_average() -> float:
    """1-minute load average of the machine (other processes share the cores)."""
    return round(os.getloadavg()[0], 2)


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, MiB (Linux ``ru_maxrss`` is in KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def matmul_gflops(dtype: str = "float32", n: int = 2048, repeats: int = 3) -> float:
    """Best GFLOP/s of an ``n x n`` matmul in ``dtype`` ("float32" or "bfloat16") over ``repeats`` runs."""
    import torch

    dt = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype]
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(n, n, generator=gen).to(dt), torch.randn(n, n, generator=gen).to(dt)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def run_child(script: str | Path, args: Sequence[str], timeout_s: float = 3600) -> dict[str, Any]:
    """Run ``python script --child ARGS`` and return the JSON object on its last stdout line.

    Raises:
        RuntimeError: the child failed or printed no JSON (its stderr tail is in the message).
    """
    cmd = [sys.executable, str(script), "--child", *map(str, args)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(cmd)} failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(lines[-1])


def synthetic_case(shape_zyx: Sequence[int], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A StructSeg-profile phantom (HU float32, labels uint8) centre-cut or padded to ``shape_zyx``.

    The phantom (about 114 x 512 x 512 at ~1 mm in-plane) is generated once per seed and cached under
    :data:`CACHE_DIR`; slices are cut around the centre or padded with air (-1000 HU, label 0).
    """
    from sepnet_core.data.crop import center_crop_pad

    shape = tuple(int(s) for s in shape_zyx)
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    tag = f"case_s{seed}_{'x'.join(map(str, shape))}"
    image_path, label_path = CACHE_DIR / f"{tag}_image.npy", CACHE_DIR / f"{tag}_label.npy"
    if image_path.exists() and label_path.exists():
        return np.load(image_path), np.load(label_path)
    source = CACHE_DIR / f"phantom_s{seed}"
    if not (source / "image.npy").exists():
        from sepnet_core.data.phantom import generate_case

        case = generate_case(seed, "structseg")
        source.mkdir(exist_ok=True)
        np.save(source / "image.npy", case.image.astype(np.float32))
        np.save(source / "label.npy", case.label)
    image, label = np.load(source / "image.npy"), np.load(source / "label.npy")
    image, _ = center_crop_pad(image, shape[1:], fill=-1000.0)
    label, _ = center_crop_pad(label, shape[1:], fill=0)
    # z: centre cut or symmetric pad
    depth = image.shape[0]
    if depth >= shape[0]:
        start = (depth - shape[0]) // 2
        image, label = image[start:start + shape[0]], label[start:start + shape[0]]
    else:
        before = (shape[0] - depth) // 2
        pad = ((before, shape[0] - depth - before), (0, 0), (0, 0))
        image = np.pad(image, pad, constant_values=-1000.0)
        label = np.pad(label, pad, constant_values=0)
    image, label = np.ascontiguousarray(image, np.float32), np.ascontiguousarray(label, np.uint8)
    np.save(image_path, image)
    np.save(label_path, label)
    return image, label


def random_members(count: int = 6, base: int = 24, crop_yx: tuple[int, int] | None = (256, 256),
                   patch: Sequence[int] = (16, 256, 256), seed: int = 0) -> list[Any]:
    """``count`` seeded, untrained SepNets as :class:`~sepnet_core.training.checkpoint.LoadedModel`
    members, intensities cycling through SLF-1, SLF-2, SLF-3 (the paper's 6 = 3 SLFs x 2 losses)."""
    import torch

    from sepnet_core.intensity import get_intensity
    from sepnet_core.models import ModelConfig
    from sepnet_core.training.checkpoint import LoadedModel

    members = []
    for index in range(count):
        torch.manual_seed(seed + index)
        config = ModelConfig(base=base)
        name = MEMBER_INTENSITIES[index % len(MEMBER_INTENSITIES)]
        members.append(LoadedModel(
            model=config.build().eval(), model_config=config, intensity=get_intensity(name), crop_yx=crop_yx,
            meta={"path": f"random_{name}_{index}", "config": {"patch_size": list(patch)}},
        ))
    return members

"""Benchmark of the phantom generator: seconds per case for the ``cpu`` and ``structseg`` profiles.

Measurements per profile:

* ``generate``: :func:`sepnet_core.data.phantom.generate_case` in this process, wall-clock and
  process CPU seconds per case (run with ``OMP_NUM_THREADS=1`` for one core; the CPU time is the
  figure to compare with the targets, cpu case <= 2 s, structseg case <= 15 s, on a busy machine);
* ``metal_streaks``: the metal-artefact simulation of one slice at the profile's matrix (projection,
  detector model, filtered back-projection), CPU seconds per slice with metal;
* ``write_dataset``: the full ``sepnet phantom`` path (generation and NIfTI writing) with
  ``--workers`` processes, wall-clock seconds divided by the number of cases.

Prints a table and writes ``results/benchmarks/phantom.csv``.

Usage::

    .venv/bin/python benchmarks/bench_phantom.py [--cpu-cases 4] [--structseg-cases 2] [--workers 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from _common import machine_info, print_table, write_csv  # noqa: E402

from sepnet_core.data.phantom import generate_case, get_profile, write_dataset  # noqa: E402
from sepnet_core.data.phantom.scanner import MU_WATER_PER_MM, metal_streaks  # noqa: E402


def bench(profile: str, cases: int, workers: int) -> list[dict]:
    """Time ``cases`` cases of ``profile`` both ways; returns one row per measurement."""
    rows = []
    start, cpu = time.perf_counter(), time.process_time()
    shapes = [generate_case(seed, profile).image.shape for seed in range(cases)]
    seconds, cpu = (time.perf_counter() - start) / cases, (time.process_time() - cpu) / cases
    rows.append({"profile": profile, "measure": "generate", "workers": 1, "cases": cases,
                 "seconds_per_case": round(seconds, 2), "cpu_seconds_per_case": round(cpu, 2),
                 "example_shape_zyx": "x".join(map(str, shapes[0]))})
    n = get_profile(profile).matrix
    metal = np.zeros((n, n), np.float32)
    metal[n // 2 - n // 32:n // 2, n // 3:n // 3 + n // 40 + 1] = 80 * MU_WATER_PER_MM
    metal[n // 2 - n // 32:n // 2, 2 * n // 3:2 * n // 3 + n // 40 + 1] = 80 * MU_WATER_PER_MM
    cpu = time.process_time()
    for k in range(3):
        metal_streaks(metal, 2.0 * 128 / n, np.random.default_rng(k))
    rows.append({"profile": profile, "measure": "metal_streaks", "workers": 1, "cases": 3,
                 "seconds_per_case": "", "cpu_seconds_per_case": round((time.process_time() - cpu) / 3, 3),
                 "example_shape_zyx": f"{n}x{n}"})
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        write_dataset(Path(tmp) / "set", cases, seed=0, profile=profile, workers=workers)
        seconds = (time.perf_counter() - start) / cases
    rows.append({"profile": profile, "measure": "write_dataset", "workers": workers, "cases": cases,
                 "seconds_per_case": round(seconds, 2), "cpu_seconds_per_case": "", "example_shape_zyx": ""})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--cpu-cases", type=int, default=4, help="cpu-profile cases to time (default: 4)")
    parser.add_argument("--structseg-cases", type=int, default=2,
                        help="structseg-profile cases to time (default: 2)")
    parser.add_argument("--workers", type=int, default=2, help="processes for write_dataset (default: 2)")
    args = parser.parse_args(argv)
    rows = []
    for profile, cases in (("cpu", args.cpu_cases), ("structseg", args.structseg_cases)):
        if cases > 0:
            rows += bench(profile, cases, args.workers)
    info = machine_info()
    print_table(rows)
    print(f"machine: {info['cpus']} CPUs, {info['platform']}, Python {info['python']}")
    path = write_csv("phantom", [{**row, **info} for row in rows])
    print(f"written {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

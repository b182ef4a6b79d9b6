"""Benchmark: how the cost of inference grows with the volume (one base-24 SepNet member).

:func:`~sepnet_core.inference.predict_case` with one member (crop 256 x 256, Gaussian windows
16 x 256 x 256, overlap 0.5), float32 and bfloat16, on phantom CTs of 40, 80 and 120 slices of 256 x 256
and on a whole 150 x 512 x 512 case. Each run is a fresh process reporting its wall time and
peak resident memory. Time follows the number of windows (one per 8 slices along z: the in-plane crop
fixes the window); memory is the process baseline plus one window's activations plus the outputs, which
grow with the volume.

Prints a table; writes ``results/benchmarks/scaling.csv``.

Usage::

    .venv/bin/python benchmarks/bench_scaling.py            # about 4 minutes on 2 idle cores
    .venv/bin/python benchmarks/bench_scaling.py --quick    # 16, 32, 48 slices of 128 x 128
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP (see _perf)
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import report  # noqa: E402
from _perf import run_child, synthetic_case  # noqa: E402
from bench_ensemble import child  # noqa: E402


def _windows(depth: int, window: int = 16, stride: int = 8) -> int:
    """Gaussian windows along z (in-plane one window: the crop)."""
    starts = list(range(0, max(depth - window, 0) + 1, stride))
    return len(starts) + (starts[-1] != max(depth - window, 0))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--quick", action="store_true", help="small volumes (a check)")
    parser.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    parser.add_argument("--no-csv", action="store_true", help="do not write results/benchmarks/scaling.csv")
    args = parser.parse_args(argv)
    if args.child is not None:
        spec = json.loads(args.child[0])
        print(json.dumps(child(tuple(spec["shape"]), 1, tuple(spec["window"]), spec["crop"], spec["amp"])))
        return 0

    if args.quick:
        crop, shapes = 128, [(16, 128, 128), (32, 128, 128), (48, 128, 128)]
    else:
        crop = 256
        shapes = [(40, 256, 256), (80, 256, 256), (120, 256, 256), (150, 512, 512)]
    window = (16, crop, crop)
    rows = []
    for shape in shapes:
        synthetic_case(shape)
        for amp in (False, True):
            spec = {"shape": shape, "window": window, "crop": crop, "amp": amp}
            result = run_child(__file__, [json.dumps(spec)])
            row = {"volume": "x".join(map(str, shape)), "slices": shape[0], "voxels_m": round(
                shape[0] * shape[1] * shape[2] / 1e6, 2), "windows": _windows(shape[0]),
                "dtype": "bfloat16" if amp else "float32", **result}
            row["seconds_per_window"] = round(row["seconds"] / row["windows"], 2)
            rows.append(row)
            print(f"  {row['volume']:12s} {row['dtype']:8s} {row['seconds']:7.1f} s  {row['windows']:3d} "
                  f"windows  peak RSS {row['peak_rss_mib']:6.0f} MiB (load {row['load']})", flush=True)
    report(rows, ("volume", "dtype", "windows", "seconds", "seconds_per_window", "peak_rss_mib",
                  "rss_before_call_mib"), "scaling", write=not args.no_csv)
    return 0


if __name__ == "__main__":
    sys.exit(main())

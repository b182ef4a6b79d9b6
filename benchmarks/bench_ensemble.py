"""Benchmark: the 6-model ensemble with uncertainty maps, wall time and peak memory.

Members: six seeded, untrained base-24 SepNets with the paper's intensity transforms (SLF-1, SLF-2,
SLF-3, twice), in-plane crop 256 x 256, Gaussian windows 16 x 256 x 256 with overlap 0.5.
:func:`~sepnet_core.inference.predict_case` returns the fused labels, vote entropy and predictive entropy.
Each configuration runs in a fresh process (:func:`_perf.run_child`) that reports its own peak resident
memory (``ru_maxrss``) and the resident memory before the call (Python, torch, the image, the members):

* ``crop``: a 120 x 256 x 256 phantom CT (the crop the members see), float32 and bfloat16 autocast;
* ``full``: a whole 150 x 512 x 512 case (members crop 256 x 256 and their outputs go back on the full
  grid), float32 and bfloat16.

Targets: the crop in <= 3 minutes on 2 cores, peak RSS <= 4 GiB on the full case. The child processes
use :func:`~sepnet_core.models.tune_cpu_allocator` (as a production process should); its RSS includes
the heap the allocator then keeps, fragmentation included (it varies from run to run by a few hundred
MB). ``--default-allocator`` measures glibc's default instead (lower peak, about 2x slower in float32).

Prints a table; writes ``results/benchmarks/ensemble.csv`` (``ensemble_default_allocator.csv`` with
``--default-allocator``).

Usage::

    .venv/bin/python benchmarks/bench_ensemble.py            # about 10 minutes on 2 cores
    .venv/bin/python benchmarks/bench_ensemble.py --quick    # 2 members, 48 x 128 x 128 and 64 x 256 x 256
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP (see _perf)
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import machine_info, report  # noqa: E402
from _perf import load_average, peak_rss_mib, run_child, synthetic_case  # noqa: E402

from sepnet_core.analysis.benchmarks import ENSEMBLE_RSS_MIB as TARGET_RSS_MIB  # noqa: E402
from sepnet_core.analysis.benchmarks import ENSEMBLE_SECONDS as TARGET_SECONDS  # noqa: E402


def child(shape: tuple[int, int, int], members: int, window: tuple[int, int, int], crop: int,
          amp: bool, tune: bool = True) -> dict:
    """One ensemble prediction in this (fresh) process; returns the figures as a dict."""
    import numpy as np
    import torch

    from sepnet_core.inference.ensemble import predict_case
    from sepnet_core.models import tune_cpu_allocator

    if tune:
        tune_cpu_allocator()
    from _perf import random_members, thread_settings

    image, _ = synthetic_case(shape)
    models = random_members(members, crop_yx=(crop, crop), patch=window)
    rss_before = peak_rss_mib()
    load = load_average()
    start = time.perf_counter()
    result = predict_case(models, image, amp=amp)
    seconds = time.perf_counter() - start
    levels = np.unique(np.round(result.vote_entropy[result.vote_entropy > 0], 4))
    return {
        "seconds": round(seconds, 1), "peak_rss_mib": peak_rss_mib(), "rss_before_call_mib": rss_before,
        "load": load, "tuned_allocator": tune, "labels_present": int(len(np.unique(result.labels))),
        "vote_entropy_levels": int(len(levels)), "max_predictive_entropy": round(float(
            result.predictive_entropy.max()), 3), **thread_settings(), "torch": torch.__version__,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--quick", action="store_true", help="2 members on small volumes (a check)")
    parser.add_argument("--precision", choices=("both", "float32", "bfloat16"), default="both",
                        help="which precisions to run (default: both)")
    parser.add_argument("--default-allocator", action="store_true",
                        help="run the children with glibc's default allocator (lower peak RSS, slower)")
    parser.add_argument("--only", choices=("crop", "full"), default=None, help="run one of the two cases")
    parser.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    parser.add_argument("--no-csv", action="store_true", help="do not write results/benchmarks/ensemble.csv")
    args = parser.parse_args(argv)
    if args.child is not None:
        spec = json.loads(args.child[0])
        print(json.dumps(child(tuple(spec["shape"]), spec["members"], tuple(spec["window"]), spec["crop"],
                               spec["amp"], spec.get("tune", True))))
        return 0

    if args.quick:
        members, configs = 2, [("crop", (48, 128, 128), 128), ("full", (64, 256, 256), 128)]
    else:
        members, configs = 6, [("crop", (120, 256, 256), 256), ("full", (150, 512, 512), 256)]
    precisions = {"both": (False, True), "float32": (False,), "bfloat16": (True,)}[args.precision]
    rows = []
    for case, shape, crop in configs:
        if args.only not in (None, case):
            continue
        synthetic_case(shape)  # generate and cache once, outside the timed children
        window = (16, crop, crop)
        for amp in precisions:
            spec = {"shape": shape, "members": members, "window": window, "crop": crop, "amp": amp,
                    "tune": not args.default_allocator}
            result = run_child(__file__, [json.dumps(spec)])
            row = {"case": case, "volume": "x".join(map(str, shape)), "members": members,
                   "window": "x".join(map(str, window)), "dtype": "bfloat16" if amp else "float32", **result}
            row["seconds_per_member"] = round(row["seconds"] / members, 1)
            row["time_target_met"] = bool(case != "crop" or members != 6 or row["seconds"] <= TARGET_SECONDS)
            row["rss_target_met"] = bool(case != "full" or row["peak_rss_mib"] <= TARGET_RSS_MIB)
            rows.append(row)
            print(f"  {case:4s} {row['volume']:12s} {row['dtype']:8s} {row['seconds']:7.1f} s  "
                  f"peak RSS {row['peak_rss_mib']:7.0f} MiB (load {row['load']})", flush=True)
    report(rows, ("case", "volume", "dtype", "seconds", "seconds_per_member", "peak_rss_mib",
                  "rss_before_call_mib", "time_target_met", "rss_target_met"),
           "ensemble_default_allocator" if args.default_allocator else "ensemble", write=not args.no_csv)
    print(f"targets: crop 6 members <= {TARGET_SECONDS:.0f} s; full case peak RSS <= "
          f"{TARGET_RSS_MIB:.0f} MiB; {machine_info()['cpus']} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: whole-volume inference of one network, our path against MONAI's and the reference scheme.

Needs MONAI, which is not a dependency of the package: the ``bench`` extra (``pip install -e '.[bench]'``;
``make bench`` installs it). Without it the script stops with one line saying so (exit status 2).

Timing part (the paper's network, base 24, seeded and untrained; a 120 x 256 x 256 phantom CT, SLF-1):

* ``monai_naive``: ``monai.inferers.sliding_window_inference`` (Gaussian windows 16 x 256 x 256,
  overlap 0.5, sigma 0.125) over the plain network with glibc's default allocator: the naive baseline;
* ``monai_fast``: the same stitching over our fast network (channels-last oneDNN, fused norm) with
  :func:`~sepnet_core.models.tune_cpu_allocator`: what the network alone gains;
* ``ours`` / ``ours_bf16``: :func:`~sepnet_core.inference.predict_volume`, same windows, float32 and
  bfloat16 autocast (slab-streaming accumulator, ``inference_mode``);
* ``reference`` / ``reference_bf16``: the reference scheme (16-slice slabs of the whole crop, stride 2).
  ``--naive-reference`` adds it with the plain network (about 4 x the MONAI baseline's time).

MONAI blends the softmax probabilities here (the predictor applies softmax) with our Gaussian map
(``roi_weight_map``; its own map is discretised differently and clamped at 1e-3), so both compute the
same quantity: their labels must agree. Beside each time: the agreement of its labels with ``ours``
(mean Dice over the labels either predicts) and the largest probability difference. An untrained
network's labels say nothing about accuracy, so a second part runs a trained checkpoint
(``--checkpoint``; default: the ``work/*/runs/*/best.pt`` with the best validation metric) on a test case
of its data set with ours, ours_bf16, MONAI and the reference scheme, and gives the mean organ Dice
against the ground truth beside each time.

Prints both tables; writes ``results/benchmarks/inference.csv``.

Usage::

    .venv/bin/python benchmarks/bench_inference.py           # about 8 minutes on 2 cores
    .venv/bin/python benchmarks/bench_inference.py --quick   # 48 x 128 x 128, windows 16 x 128 x 128
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP (see _perf)
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from _common import REPO_ROOT, machine_info, print_table, require, write_csv  # noqa: E402
from _perf import load_average, synthetic_case, thread_settings  # noqa: E402

from sepnet_core.inference.sliding import gaussian_importance_map, predict_volume  # noqa: E402
from sepnet_core.intensity import get_intensity  # noqa: E402
from sepnet_core.metrics import dice  # noqa: E402
from sepnet_core.models import build_model, set_fast_path, tune_cpu_allocator  # noqa: E402

OVERLAP = 0.5


def _monai(model: torch.nn.Module, volume: np.ndarray, window: tuple[int, int, int]) -> np.ndarray:
    from monai.inferers import sliding_window_inference

    x = torch.from_numpy(np.ascontiguousarray(volume, dtype=np.float32))[None, None]
    with torch.inference_mode():
        out = sliding_window_inference(x, window, 1, lambda w: torch.softmax(model(w), dim=1),
                                       overlap=OVERLAP, mode="gaussian",
                                       roi_weight_map=gaussian_importance_map(window),
                                       padding_mode="constant", cval=float(x.min()))
    return out[0].numpy()


def _run(method: str, model: torch.nn.Module, volume: np.ndarray, window: tuple[int, int, int]) -> np.ndarray:
    """Probabilities (K, D, H, W) float32 of ``method`` (network and allocator set by the caller)."""
    if method.startswith("monai"):
        return _monai(model, volume, window)
    mode = "reference" if method.startswith("reference") else "gaussian"
    return predict_volume(model, volume, window, overlap=OVERLAP if mode == "gaussian" else None, mode=mode,
                          amp=method.endswith("bf16"), out_dtype=np.float32)


def _setup(model: torch.nn.Module, method: str) -> None:
    naive = method.endswith("naive")
    set_fast_path(model, not naive)
    tune_cpu_allocator(enabled=not naive)


def _agreement(labels: np.ndarray, ref: np.ndarray) -> float:
    """Mean Dice between two label maps over the labels either contains."""
    present = np.union1d(np.unique(labels), np.unique(ref))
    return float(np.mean([dice(labels == k, ref == k) for k in present]))


def _organ_dice(labels: np.ndarray, truth: np.ndarray) -> float:
    values = [dice(labels == k, truth == k) for k in range(1, 23)]
    return float(np.nanmean(values))


def timing_part(quick: bool, naive_reference: bool) -> list[dict]:
    shape = (48, 128, 128) if quick else (120, 256, 256)
    window = (16, *shape[1:])
    image, _ = synthetic_case(shape)
    volume = get_intensity("slf1")(image)
    torch.manual_seed(0)
    model = build_model("sepnet").eval()
    methods = ["monai_naive", "monai_fast", "ours", "ours_bf16", "reference", "reference_bf16"]
    if naive_reference:
        methods.append("reference_naive")
    _setup(model, "ours")
    _run("ours", model, volume[: window[0]], window)  # warm-up (first-call costs)
    rows, results = [], {}
    for method in methods:
        _setup(model, method)
        load = load_average()
        start = time.perf_counter()
        probs = _run(method, model, volume, window)
        seconds = time.perf_counter() - start
        results[method] = probs
        rows.append({"part": "timing", "method": method, "volume": "x".join(map(str, shape)),
                     "window": "x".join(map(str, window)), "seconds": round(seconds, 1), "load": load})
        print(f"  {method:16s} {seconds:7.1f} s (load {load})", flush=True)
    tune_cpu_allocator(enabled=True)
    ours = results["ours"]
    ours_labels = ours.argmax(0)
    base = {r["method"]: r["seconds"] for r in rows}
    for row in rows:
        probs = results[row["method"]]
        row["speedup_vs_monai_naive"] = round(base["monai_naive"] / row["seconds"], 2)
        row["label_agreement_vs_ours"] = round(_agreement(probs.argmax(0), ours_labels), 4)
        row["voxel_agreement_vs_ours"] = round(float((probs.argmax(0) == ours_labels).mean()), 5)
        row["max_abs_prob_diff_vs_ours"] = round(float(np.abs(probs - ours).max()), 4)
    return rows


def _default_checkpoint() -> Path | None:
    """The ``work/*/runs/*/best.pt`` with the highest validation metric, if any."""
    from sepnet_core.training.checkpoint import load_checkpoint

    best, best_metric = None, -np.inf
    for path in glob.glob(str(REPO_ROOT / "work" / "*" / "runs" / "*" / "best.pt")):
        try:
            metric = load_checkpoint(path).get("best_metric")
        except Exception:  # noqa: BLE001 (a run being written or a foreign file: skip it)
            continue
        if metric is not None and np.isfinite(metric) and metric > best_metric:
            best, best_metric = Path(path), float(metric)
    return best


def trained_part(checkpoint: Path, case_dir: Path | None) -> list[dict]:
    from sepnet_core.data.io import read_case
    from sepnet_core.inference.ensemble import member_patch_size
    from sepnet_core.training.checkpoint import load_model

    member = load_model(checkpoint)
    if case_dir is None:
        root = Path(member.meta["config"]["data"]["data_root"])
        cases = sorted((root / "test").glob("*")) or sorted((root / "valid").glob("*"))
        if not cases:
            print(f"no test or valid case under {root}; skipping the trained part")
            return []
        case_dir = cases[0]
    case = read_case(case_dir)
    if member.crop_yx is not None:
        from sepnet_core.data.crop import center_crop_pad

        image, _ = center_crop_pad(case.image, member.crop_yx, fill=-1000.0)
        truth, _ = center_crop_pad(case.label, member.crop_yx, fill=0)
    else:
        image, truth = case.image, case.label
    volume = member.intensity(image)
    window = member_patch_size(member)
    name = str(checkpoint.relative_to(REPO_ROOT) if checkpoint.is_relative_to(REPO_ROOT) else checkpoint)
    print(f"trained model {name} (base {member.model_config.base}, window {window}) on {case_dir.name} "
          f"{volume.shape}")
    _setup(member.model, "ours")
    _run("ours", member.model, volume[: window[0]], window)
    rows = []
    for method in ("ours", "ours_bf16", "monai_fast", "reference", "reference_bf16"):
        start = time.perf_counter()
        probs = _run(method, member.model, volume, window)
        seconds = time.perf_counter() - start
        organ_dice = round(_organ_dice(probs.argmax(0), truth), 4)
        rows.append({"part": "trained", "method": method, "volume": "x".join(map(str, volume.shape)),
                     "window": "x".join(map(str, window)), "seconds": round(seconds, 1),
                     "load": load_average(), "mean_organ_dice": organ_dice, "checkpoint": name,
                     "case": case_dir.name})
        print(f"  {method:16s} {seconds:7.1f} s  mean organ Dice {organ_dice:.4f}", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--quick", action="store_true", help="48 x 128 x 128 volume (a check)")
    parser.add_argument("--naive-reference", action="store_true",
                        help="also time the reference scheme with the plain network (slow)")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="trained checkpoint for the Dice part (default: the work/*/runs/*/best.pt with "
                             "the best validation metric)")
    parser.add_argument("--case", type=Path, default=None,
                        help="case folder (data.nii.gz + label.nii.gz) for the Dice part (default: the first "
                             "test case of the checkpoint's data root)")
    parser.add_argument("--no-trained", action="store_true", help="skip the trained-checkpoint part")
    parser.add_argument("--no-csv", action="store_true", help="do not write results/benchmarks/inference.csv")
    args = parser.parse_args(argv)
    require("monai", "bench_inference.py")  # the comparison needs the 'bench' extra
    warnings.filterwarnings("ignore", module="monai")

    print("timing (base-24 SepNet, untrained):", flush=True)
    rows = timing_part(args.quick, args.naive_reference)
    checkpoint = args.checkpoint or (None if args.no_trained else _default_checkpoint())
    if checkpoint is not None and not args.no_trained:
        rows += trained_part(checkpoint, args.case)
    elif not args.no_trained:
        print("no trained checkpoint found (work/*/runs/*/best.pt); Dice part skipped")
    info = {**machine_info(), **thread_settings()}
    print()
    print_table([{k: r.get(k, "") for k in ("part", "method", "seconds", "speedup_vs_monai_naive",
                                            "label_agreement_vs_ours", "max_abs_prob_diff_vs_ours",
                                            "mean_organ_dice")} for r in rows])
    print(f"{info['cpus']} CPUs, {info['threads']} threads, OMP_WAIT_POLICY={info['omp_wait_policy']}")
    if not args.no_csv:
        print(f"wrote {write_csv('inference', [{**r, **info} for r in rows])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

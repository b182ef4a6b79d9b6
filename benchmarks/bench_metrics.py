"""Benchmark: our Dice + HD95 against MONAI's on the 22 organs of one synthetic 120 x 512 x 512 case.

Needs MONAI, which is not a dependency of the package: the ``bench`` extra (``pip install -e '.[bench]'``;
``make bench`` installs it). Without it the script stops with one line saying so (exit status 2).

The reference is 22 irregular blobs of plausible head-and-neck sizes (mm) painted into a label volume;
the prediction perturbs each (shifted centre, scaled axes, different surface noise) and adds a few
spurious islands, as real predictions have. Both are made from a fixed seed.

Three timings:

* ``monai``: per organ, ``compute_hausdorff_distance(percentile=95, spacing=...)`` + ``compute_dice``
  on the organ's two full-size boolean masks (mask creation not timed);
* ``ours_masks``: our :func:`~sepnet_core.metrics.dice` + :func:`~sepnet_core.metrics.hd95` on the very
  same masks (mask creation not timed);
* ``ours_case``: :func:`~sepnet_core.metrics.evaluate_case` on the two label volumes (everything timed);
  also on a prediction with 0.2 % scattered false-positive voxels, whose organ boxes span the volume
  (ours only; it exercises the KD-tree path).

Values are checked to agree (max abs difference of HD95 in mm and of Dice). Output: a per-organ table,
the totals and speed ratios on stdout, and ``results/benchmarks/metrics.csv``.

Usage::

    .venv/bin/python benchmarks/bench_metrics.py                 # 120 x 512 x 512, about a minute
    .venv/bin/python benchmarks/bench_metrics.py --size 40 128 128   # quick run
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import machine_info, print_table, require, time_call, write_csv  # noqa: E402

from sepnet_core.metrics import dice, evaluate_case, hd95  # noqa: E402
from sepnet_core.organs import ORGANS  # noqa: E402

DEFAULT_SIZE = (120, 512, 512)
SPACING_MM = (3.0, 0.977, 0.977)

# label: (semi-axes (z, y, x) mm, centre offset from the volume centre (z, y, x) mm). Plausible, not anatomy.
_BLOBS: dict[int, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    1: ((15, 12, 12), (30, 20, 0)),
    2: ((11, 11, 11), (60, -70, 32)),
    3: ((11, 11, 11), (60, -70, -32)),
    4: ((3, 2, 4), (60, -80, 32)),
    5: ((3, 2, 4), (60, -80, -32)),
    6: ((3, 15, 3), (57, -45, 20)),
    7: ((3, 15, 3), (57, -45, -20)),
    8: ((3, 5, 8), (54, -25, 0)),
    9: ((25, 35, 20), (45, -5, 48)),
    10: ((25, 35, 20), (45, -5, -48)),
    11: ((4, 4, 5), (48, -18, 0)),
    12: ((25, 20, 12), (-15, 10, 60)),
    13: ((25, 20, 12), (-15, 10, -60)),
    14: ((4, 4, 6), (25, 10, 35)),
    15: ((4, 4, 6), (25, 10, -35)),
    16: ((6, 7, 6), (25, 4, 48)),
    17: ((6, 7, 6), (25, 4, -48)),
    18: ((5, 5, 6), (12, -8, 52)),
    19: ((5, 5, 6), (12, -8, -52)),
    20: ((80, 6, 6), (-70, 30, 0)),
    21: ((20, 40, 10), (-35, -40, 42)),
    22: ((20, 40, 10), (-35, -40, -42)),
}
_SPURIOUS = (9, 12, 20)  # organs whose prediction gets an extra island 25-40 mm away


def _paint_blob(volume: np.ndarray, label: int, semi_mm: np.ndarray, centre_mm: np.ndarray,
                rng: np.random.Generator) -> None:
    """Paint an irregular ellipsoid (surface noise +-15 %) of ``label`` into ``volume`` in place."""
    spacing = np.asarray(SPACING_MM)
    semi_vox = np.maximum(semi_mm / spacing, 0.6)
    centre_vox = centre_mm / spacing + (np.asarray(volume.shape) - 1) / 2
    lo = np.maximum(np.floor(centre_vox - 1.3 * semi_vox).astype(int), 0)
    hi = np.minimum(np.ceil(centre_vox + 1.3 * semi_vox).astype(int) + 1, volume.shape)
    if np.any(hi <= lo):
        return
    grids = np.ogrid[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))]
    q = sum(((g - c) / s) ** 2 for g, c, s in zip(grids, centre_vox, semi_vox, strict=True))
    noise = ndimage.gaussian_filter(rng.standard_normal(q.shape), sigma=2.0)
    noise /= max(float(noise.std()), 1e-6)
    inside = q < 1.0 + 0.15 * np.clip(noise, -3, 3)
    volume[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))][inside] = label


def make_case(size: tuple[int, int, int], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A (reference, prediction) pair of uint8 label volumes of shape ``size`` with all 22 organs."""
    rng = np.random.default_rng(seed)
    scale = np.asarray(size, dtype=float) / np.asarray(DEFAULT_SIZE)
    ref = np.zeros(size, dtype=np.uint8)
    pred = np.zeros(size, dtype=np.uint8)
    # Largest first, so that small organs (lens inside eye) stay visible.
    order = sorted(_BLOBS, key=lambda k: -float(np.prod(_BLOBS[k][0])))
    for label in order:
        semi, centre = (np.asarray(v, dtype=float) * scale for v in _BLOBS[label])
        _paint_blob(ref, label, semi, centre, rng)
        semi_p = semi * (1 + rng.normal(0, 0.06, 3))
        centre_p = centre + rng.normal(0, 1.5, 3)
        _paint_blob(pred, label, semi_p, centre_p, rng)
        if label in _SPURIOUS:
            direction = rng.normal(size=3)
            offset = direction / np.linalg.norm(direction) * rng.uniform(25, 40)
            _paint_blob(pred, label, np.full(3, 3.0), centre + offset * scale, rng)
    return ref, pred


def _monai_pair(pred: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    import torch
    from monai.metrics import compute_dice, compute_hausdorff_distance

    p, r = torch.from_numpy(pred)[None, None], torch.from_numpy(ref)[None, None]
    hd = compute_hausdorff_distance(p, r, include_background=True, percentile=95, directed=False,
                                    spacing=list(SPACING_MM))
    dc = compute_dice(p, r, include_background=True)
    return float(dc[0, 0]), float(hd[0, 0])


def _max_diff(pairs: list[tuple[float, float]]) -> tuple[float, int]:
    """(max |ours - monai| over pairs where both are finite, number of documented convention differences).

    Our inf (or Dice 0) against MONAI's NaN for one empty mask is a documented convention, counted apart;
    any other disagreement in finiteness counts as an infinite difference.
    """
    worst, conventions = 0.0, 0
    for ours, theirs in pairs:
        if np.isfinite(ours) and np.isfinite(theirs):
            worst = max(worst, abs(ours - theirs))
        elif np.isnan(theirs) and (np.isinf(ours) or ours == 0.0):
            conventions += 1
        elif not (np.isnan(ours) and np.isnan(theirs)):
            worst = float("inf")
    return worst, conventions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--size", type=int, nargs=3, default=list(DEFAULT_SIZE), metavar=("Z", "Y", "X"),
                        help="volume shape in voxels (default: 120 512 512); spacing is 3 x 0.977 x 0.977 mm")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the synthetic case (default: 0)")
    parser.add_argument("--no-csv", action="store_true", help="do not write results/benchmarks/metrics.csv")
    args = parser.parse_args(argv)
    size = tuple(args.size)
    if any(s < 8 for s in size):
        parser.error(f"--size {size} must be at least 8 voxels per axis")

    require("monai", "bench_metrics.py")  # the comparison needs the 'bench' extra
    warnings.filterwarnings("ignore", module="monai")
    ref, pred = make_case(size, args.seed)
    _monai_pair(pred == 1, ref == 1)  # warm-up: imports, first-call overheads

    t_case, table = time_call(lambda: evaluate_case(pred, ref, SPACING_MM, case_id="bench"), repeats=3)
    rows = []
    for organ in ORGANS:
        p, r = pred == organ.label, ref == organ.label
        t_monai, (dc_m, hd_m) = time_call(lambda p=p, r=r: _monai_pair(p, r))
        t_ours, (dc_o, hd_o) = time_call(lambda p=p, r=r: (dice(p, r), hd95(p, r, SPACING_MM)))
        row = table.loc[table["label"] == organ.label].iloc[0]
        rows.append({
            "organ": organ.key, "ref_voxels": int(r.sum()), "pred_voxels": int(p.sum()),
            "dice": dc_o, "hd95_mm": hd_o, "monai_dice": dc_m, "monai_hd95_mm": hd_m,
            "case_dice": float(row["dice"]), "case_hd95_mm": float(row["hd95"]),
            "t_monai_s": t_monai, "t_ours_masks_s": t_ours,
        })

    hd_diff, hd_conv = _max_diff([(r[k], r["monai_hd95_mm"])
                                  for r in rows for k in ("hd95_mm", "case_hd95_mm")])
    dc_diff, dc_conv = _max_diff([(r[k], r["monai_dice"]) for r in rows for k in ("dice", "case_dice")])
    # Robustness: 0.2 % of voxels set to random organ labels spreads every organ's box over the volume.
    rng = np.random.default_rng(args.seed + 1)
    noisy = pred.copy()
    scatter = rng.random(size) < 0.002
    noisy[scatter] = rng.integers(1, 23, int(scatter.sum()))
    t_noisy, _ = time_call(lambda: evaluate_case(noisy, ref, SPACING_MM))
    t_monai = sum(r["t_monai_s"] for r in rows)
    t_masks = sum(r["t_ours_masks_s"] for r in rows)
    print_table([{k: r[k] for k in ("organ", "ref_voxels", "dice", "monai_dice", "hd95_mm", "monai_hd95_mm",
                                    "t_monai_s", "t_ours_masks_s")} for r in rows])
    info = machine_info()
    print(f"\nvolume {size[0]}x{size[1]}x{size[2]}, spacing {SPACING_MM} mm, seed {args.seed}, "
          f"{info['cpus']} CPUs")
    print(f"MONAI (compute_hausdorff_distance + compute_dice, 22 organs): {t_monai:8.3f} s")
    print(f"ours, dice + hd95 on the same masks:                       {t_masks:8.3f} s "
          f"(x{t_monai / t_masks:.1f})")
    print(f"ours, evaluate_case on the label volumes (best of 3):       {t_case:8.3f} s "
          f"(x{t_monai / t_case:.1f})")
    print(f"ours, evaluate_case, prediction with 0.2 % scattered voxels:  {t_noisy:8.3f} s (not compared)")
    print(f"max |HD95 ours - MONAI| = {hd_diff:.3g} mm, max |Dice ours - MONAI| = {dc_diff:.3g} "
          f"(over organs where both are finite)")
    if hd_conv or dc_conv:
        print(f"empty-mask convention differences (ours inf/0, MONAI NaN): "
              f"{hd_conv // 2} HD95, {dc_conv // 2} Dice")

    if not args.no_csv:
        for r in rows:
            r.update(size=f"{size[0]}x{size[1]}x{size[2]}", seed=args.seed, cpus=info["cpus"],
                     t_case_total_s=t_case, t_case_noisy_total_s=t_noisy)
        path = write_csv("metrics", rows)
        print(f"wrote {path}")
    ok = hd_diff <= 1e-3 and dc_diff <= 1e-6
    if not ok:
        print("ERROR: values differ from MONAI's beyond tolerance (1e-3 mm, 1e-6 Dice)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

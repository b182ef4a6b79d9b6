"""``sepnet train``: train one network into a run folder (a thin layer over :func:`sepnet_core.training.fit`).

Multi-GPU / multi-node: start it under torchrun, e.g.
``torchrun --nproc_per_node 2 -m sepnet_core.cli train --preset paper --data-root DIR --out RUN``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
from pathlib import Path

from sepnet_core.errors import SepNetError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` parser."""
    parser = subparsers.add_parser(
        "train",
        help="train a 3D-SepNet (or U-Net) on <data-root>/train, validating on <data-root>/valid",
        description=(
            "Train one network. Presets: 'paper' = the reference settings (SepNet b=24, Adam lr 1e-3, "
            "weight decay 1e-8, StepLR x0.9 every 10 epochs, 400 epochs x 100 iterations, batch 4 of "
            "16x120x120 voxel patches (z, y, x), 256x256 in-plane crop, SLF-1, ATH loss alpha 1 with the "
            "reference code's Dice weighting); 'cpu' = the phantom's cpu profile on CPU cores (SepNet b=8, "
            "warm-up + poly decay, 12 validations); 'smoke' = seconds, for "
            "tests. The run folder receives config.json, log.csv, last.pt, best.pt and, once finished, "
            "summary.json (seed, config hash, versions, best epoch). "
            "Under torchrun every process trains on its own patches and rank 0 writes."
        ),
        allow_abbrev=False,
    )
    parser.add_argument("--preset", choices=("paper", "cpu", "smoke"), default="cpu",
                        help="settings to start from (default: cpu)")
    parser.add_argument("--data-root", type=Path, default=None,
                        help="dataset folder holding train/ and valid/ case folders "
                             "(<split>/<case>/data.nii.gz in HU + label.nii.gz); required unless "
                             "--set data.data_root=... or --resume")
    parser.add_argument("-o", "--output", "--out", dest="out", type=Path, required=True, metavar="RUN_DIR",
                        help="run folder to write (created if missing); --out is the older spelling")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, repeatable; dotted keys, e.g. epochs=20, "
                             "optim.lr=5e-4 (learning rate), model.base=16 (channels), "
                             "patch_size=16x64x64 (voxels z,y,x), data.crop_yx=none, data.sampling=organ, "
                             "data.augment_flip=true, device=cuda, seed=1, amp=off (auto|bf16|off), "
                             "optim.schedule=step (step|poly|cosine), dice_weighting=intended, "
                             "val_points=8")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out from last.pt (its config.json is the base "
                             "config; only epochs, device, amp, validate_every, val_points "
                             "and data.data_root may change)")
    parser.add_argument("--force", action="store_true",
                        help="start a new run even if --out already holds one (its run files are replaced)")
    parser.set_defaults(func=run)


def _config(args: argparse.Namespace):
    from sepnet_core.training import TrainConfig, apply_overrides, preset

    saved = args.out / "config.json"
    if args.resume and saved.is_file():
        try:
            config = TrainConfig.from_dict(json.loads(saved.read_text(encoding="utf-8")))
        except (TypeError, ValueError) as exc:
            raise SepNetError(f"{saved}: not a valid run config ({exc})") from None
    else:
        config = preset(args.preset)
    if args.data_root is not None:
        data = dataclasses.replace(config.data, data_root=str(args.data_root))
        config = dataclasses.replace(config, data=data)
    try:
        config = apply_overrides(config, args.overrides)
    except (TypeError, ValueError) as exc:
        raise SepNetError(f"--set: {exc}") from None
    if not config.data.data_root:
        raise SepNetError("no dataset: give --data-root DIR (or --set data.data_root=DIR)")
    return config


def run(args: argparse.Namespace) -> int:
    """Train; print where the best checkpoint is and its validation Dice. Returns 0."""
    from sepnet_core.training import fit, load_checkpoint

    config = _config(args)
    best = fit(config, args.out, resume=args.resume, force=args.force)
    if int(os.environ.get("RANK", "0")) == 0 and best.exists():  # under torchrun only rank 0 reports
        ckpt = load_checkpoint(best)
        metrics = ckpt.get("val_metrics", {})
        mean, weighted = metrics.get("mean_dice", math.nan), metrics.get("weighted_dice", math.nan)
        print(f"best checkpoint: {best} (epoch {ckpt['epoch']}, step {ckpt['step']}); "
              f"validation mean Dice {mean:.4f}, weighted Dice {weighted:.4f}")
    return 0

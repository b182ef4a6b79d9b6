"""``sepnet phantom``: write a synthetic StructSeg-like train/valid/test data set."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from sepnet_core.errors import SepNetError

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``phantom`` sub-command to the ``sepnet`` parser."""
    from sepnet_core.data.phantom.generator import DEFAULT_NOISE_HU, PHANTOM_PROFILES

    parser = subparsers.add_parser(
        "phantom",
        help="generate synthetic head-and-neck CT cases with 22 organ labels (StructSeg layout)",
        description=(
            "Write OUT_DIR/<split>/phantom_NNN/data.nii.gz (CT, int16 HU) and label.nii.gz (uint8, "
            "organ labels 1..22) plus OUT_DIR/dataset.json. Profiles: 'cpu' = 128 x 128 pixels of "
            "1.8-2.4 mm, 3 mm slices, about 50-90 slices (trains on a laptop CPU); 'structseg' = "
            "512 x 512 pixels of about 1 mm, 3 mm slices, 100-150 slices (like StructSeg 2019); "
            "'smoke' = 64 x 64 pixels of 3.6-4.8 mm (CI)."
        ),
        allow_abbrev=False,
    )
    parser.add_argument("out_dir", metavar="OUT_DIR", nargs="?", default=None,
                        help="output folder (created; must be empty unless --force); or -o OUT_DIR")
    parser.add_argument("-o", "--output", dest="output", metavar="OUT_DIR", default=None,
                        help="output folder, as the positional OUT_DIR")
    parser.set_defaults(_parser=parser)
    parser.add_argument("--cases", type=int, default=10, help="number of cases (default: 10)")
    parser.add_argument("--seed", type=int, default=0, help="data-set seed, >= 0 (default: 0)")
    parser.add_argument("--profile", choices=sorted(PHANTOM_PROFILES), default="cpu",
                        help="output grid (default: cpu)")
    parser.add_argument("--split", default=None, metavar="train=N,valid=N,test=N",
                        help="cases per split, summing to --cases (default: about 70/15/15 %%, "
                             "at least one case each from 3 cases on)")
    parser.add_argument("--workers", type=int, default=None,
                        help="parallel processes (default: min(2, CPU count))")
    parser.add_argument("--noise-hu", type=float, default=DEFAULT_NOISE_HU,
                        help="standard deviation of the CT noise in HU at a water-equivalent "
                             "diameter of 160 mm (each slice scales it with its own), 0..200 "
                             f"(default: {DEFAULT_NOISE_HU:g})")
    parser.add_argument("--preview", action="store_true",
                        help="also write OUT_DIR/preview.png of the first case")
    parser.add_argument("--force", action="store_true",
                        help="write into a non-empty OUT_DIR, replacing files of the same names")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write the data set; argument errors become one-line SepNetErrors (exit code 2)."""
    from sepnet_core.data.phantom.dataset import check_request, parse_split, write_dataset

    if (args.out_dir is None) == (args.output is None):
        args._parser.error("give the output folder once: OUT_DIR or -o OUT_DIR")
    args.out_dir = args.out_dir if args.out_dir is not None else args.output

    try:
        split = parse_split(args.split) if args.split is not None else None
        if split is not None and sum(split.values()) != args.cases:
            total = sum(split.values())
            raise ValueError(f"--split {args.split} sums to {total}, but --cases is {args.cases}")
        check_request(args.cases, args.seed, args.profile, split, args.workers, args.noise_hu)
    except ValueError as exc:
        raise SepNetError(str(exc)) from None
    out = Path(args.out_dir)
    ancestor = next((p for p in out.absolute().parents if p.exists()), None)
    if ancestor is not None and not ancestor.is_dir():
        raise SepNetError(f"{out}: cannot create the output folder ({ancestor} is a file, not a folder)")
    start = time.perf_counter()
    folders = write_dataset(args.out_dir, args.cases, args.seed, args.profile, split, args.workers,
                            noise_hu=args.noise_hu, force=args.force, preview=args.preview)
    counts = {}
    for folder in folders:
        counts[folder.parent.name] = counts.get(folder.parent.name, 0) + 1
    summary = ", ".join(f"{name} {n}" for name, n in counts.items())
    print(f"wrote {len(folders)} {args.profile} phantom cases ({summary}) to {args.out_dir} "
          f"in {time.perf_counter() - start:.1f} s")
    return 0

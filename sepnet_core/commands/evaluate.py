"""``sepnet evaluate``: Dice and HD95 of a prediction folder against a StructSeg split folder.

A thin layer over :func:`sepnet_core.evaluation.evaluate_folders` and
:func:`sepnet_core.evaluation.write_evaluation`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``evaluate`` parser."""
    parser = subparsers.add_parser(
        "evaluate",
        help="score predicted label maps against reference labels (Dice, HD95 in mm)",
        description=(
            "Compare every prediction in PRED_DIR (<case>/labels.nii.gz as 'sepnet predict' writes, or "
            "<case>.nii.gz) with REF_DIR/<case>/label.nii.gz (a StructSeg split folder). Writes one CSV "
            "row per case and organ (Dice, HD95 in mm using the reference file's spacing, reference and "
            "predicted volumes in ml) and a JSON summary (means, standard deviations and the StructSeg "
            "importance-weighted Dice and HD95). A case missing on either side is an error unless "
            "--allow-missing."
        ),
        allow_abbrev=False,
    )
    parser.add_argument("pred_dir", type=Path, metavar="PRED_DIR", help="folder of predicted label maps")
    parser.add_argument("ref_dir", type=Path, metavar="REF_DIR",
                        help="split folder of reference cases (<case>/label.nii.gz)")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="CSV",
                        help="per case and organ table to write, e.g. metrics.csv")
    parser.add_argument("--summary", type=Path, default=None, metavar="JSON",
                        help="summary file to write (default: the CSV path with suffix .json)")
    parser.add_argument("--allow-missing", action="store_true",
                        help="evaluate the cases present on both sides and list the others in the summary "
                             "(default: a missing case is an error)")
    parser.add_argument("--force", action="store_true",
                        help="replace the CSV and summary if they exist (default: refuse)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``sepnet evaluate``; prints the headline numbers. Returns 0."""
    from sepnet_core.evaluation import evaluate_folders, write_evaluation

    summary_path = args.summary if args.summary is not None else args.output.with_suffix(".json")
    table, summary = evaluate_folders(args.pred_dir, args.ref_dir, allow_missing=args.allow_missing)
    write_evaluation(table, summary, args.output, summary_path, overwrite=args.force)
    print(f"{summary['n_cases']} case(s): weighted Dice {summary['weighted_dice']:.4f}, weighted HD95 "
          f"{summary['weighted_hd95']:.3f} mm ({summary['weighted_hd95_finite']:.3f} mm without "
          f"{summary['n_hd95_inf']} missed organ(s)); wrote {args.output} and {summary_path}")
    return 0

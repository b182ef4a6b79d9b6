"""``sepnet split``: make the train/valid/test layout of a flat StructSeg folder (links, nothing moved)."""

from __future__ import annotations

import argparse

from sepnet_core.errors import SepNetError

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``split`` sub-command to the ``sepnet`` parser."""
    parser = subparsers.add_parser(
        "split",
        help="create train/valid/test split folders (symbolic links) in a flat StructSeg folder",
        description=(
            "DATA_ROOT holds one folder per patient, <patient>/data.nii.gz (CT, HU) and label.nii.gz, "
            "as StructSeg 2019 ships them. Creates DATA_ROOT/{train,valid,test}/<patient> as relative "
            "symbolic links to ../<patient> (no file is moved or copied) and records the assignment in "
            "DATA_ROOT/splits.json. Patients are sorted by name and permuted with --seed. Default for "
            "50 patients: 35 train / 5 valid / 10 test (ours: the paper trains on 40 and validates on 10; "
            "we keep 10 for testing and 5 to pick the best checkpoint); other numbers of patients: "
            "70/10/20 %. Running it again with the same settings changes nothing."
        ),
        allow_abbrev=False,
    )
    parser.add_argument("data_root", metavar="DATA_ROOT", help="flat folder of patient folders")
    parser.add_argument("--seed", type=int, default=0, help="seed of the assignment, >= 0 (default: 0)")
    parser.add_argument("--counts", default=None, metavar="TRAIN,VALID,TEST",
                        help="cases per split, summing to the number of patients, e.g. 40,5,5 or "
                             "train=40,valid=5,test=5 (default: 35,5,10 for 50 patients)")
    parser.add_argument("--dry-run", action="store_true", help="print the assignment, write nothing")
    parser.add_argument("--force", action="store_true",
                        help="replace a different earlier split (only its links are removed, never data)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Plan, print and (unless ``--dry-run``) write the split; errors are one-line SepNetErrors."""
    from sepnet_core.data.splits import SPLITS_FILE, make_splits, parse_counts, plan_splits, require_splits

    try:
        counts = parse_counts(args.counts) if args.counts is not None else None
        plan = plan_splits(args.data_root, seed=args.seed, counts=counts)
    except ValueError as exc:  # includes SepNetInputError
        raise SepNetError(str(exc)) from None
    for name, patients in plan.splits.items():
        print(f"{name} ({len(patients)}): {' '.join(patients)}")
    if args.dry_run:
        print(f"dry run: nothing written to {plan.root}")
        return 0
    written = make_splits(plan, force=args.force)
    require_splits(plan.root, [n for n, p in plan.splits.items() if p])
    counts_text = ", ".join(f"{n} {len(p)}" for n, p in plan.splits.items())
    if written:
        print(f"wrote {plan.root}/{{train,valid,test}} (links) and {plan.root / SPLITS_FILE}: {counts_text}")
    else:
        print(f"{plan.root} is already split this way ({counts_text}); nothing changed")
    return 0

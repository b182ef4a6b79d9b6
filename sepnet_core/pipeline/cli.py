"""Command line of the book pipeline: ``python -m sepnet_core.pipeline`` (what ``make book`` runs).

Usage::

    python -m sepnet_core.pipeline [--profile cpu] [--jobs N] [--only STAGE ...] [--force STAGE ...]
                                   [--force-all] [--data-root DIR] [--nproc-per-stage N] [--no-build]
                                   [--list]

Runs the stages of the profile that are not up to date (:func:`~sepnet_core.pipeline.runner.run_pipeline`),
then ``jupyter-book build .`` (:func:`build_book`; execution is off in ``_config.yml``, the pages are
already executed). Exit codes: 0 done, 1 a stage failed, 2 bad arguments or a failed book build,
130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from sepnet_core.pipeline.cache import find_repo_root, plan_pipeline
from sepnet_core.pipeline.runner import run_one, run_pipeline
from sepnet_core.pipeline.stage import Stage
from sepnet_core.pipeline.table import PROFILES, get_profile, stages_for_profile

__all__ = ["BOOK_BUILD_ARGS", "build_book", "main"]

log = logging.getLogger(__name__)

BOOK_BUILD_ARGS: tuple[str, ...] = ("--warningiserror", "--keep-going")
"""Extra arguments of ``jupyter-book build .``."""


def build_book(root: str | os.PathLike[str], extra_args: Sequence[str] = BOOK_BUILD_ARGS) -> int:
    """Run ``jupyter-book build .`` in ``root`` (execution is off in ``_config.yml``).

    Returns:
        The exit code of jupyter-book (2 when it is not installed).
    """
    exe = Path(sys.executable).parent / "jupyter-book"
    command = [str(exe) if exe.is_file() else (shutil.which("jupyter-book") or "jupyter-book"),
               "build", ".", *extra_args]
    log.info("building the book: %s", " ".join(command))
    try:
        return subprocess.run(command, cwd=root).returncode
    except FileNotFoundError:
        log.error("jupyter-book not found; install the package's `book` extra")
        return 2


def _warn_stray_pages(root: Path, stages: Sequence[Stage], pages: str = "book/pages") -> None:
    """Warn about executed notebooks under ``pages`` that no stage of this profile writes (e.g. the page
    of a seed the profile no longer trains); a glob in ``_toc.yml`` would still publish them."""
    outputs = {s.output for s in stages}
    stray = sorted(p.relative_to(root).as_posix() for p in (root / pages).rglob("*.ipynb")
                   if p.relative_to(root).as_posix() not in outputs and ".ipynb_checkpoints" not in p.parts)
    if stray:
        log.warning("executed notebooks that no stage of this profile writes (delete them if stale): %s",
                    ", ".join(stray))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sepnet_core.pipeline", allow_abbrev=False,
        description="Run the book's notebooks (papermill) in dependency order, skipping up-to-date stages, "
                    "then build the Jupyter Book.")
    parser.add_argument("--profile", default="cpu", choices=sorted(PROFILES),
                        help="size of the run (default: cpu)")
    parser.add_argument("--jobs", type=int, default=None, metavar="N",
                        help="stages run at the same time, one GPU each when GPUs exist "
                             "(default: the profile's, 1)")
    parser.add_argument("--only", nargs="+", default=None, metavar="STAGE",
                        help="run only these stages and, where not up to date, what they depend on")
    parser.add_argument("--force", nargs="+", default=[], metavar="STAGE",
                        help="run these stages (and everything downstream) even if up to date")
    parser.add_argument("--force-all", action="store_true", help="run every stage")
    parser.add_argument("--data-root", default=None, metavar="DIR",
                        help="real StructSeg-layout data (<DIR>/<split>/<patient>/data.nii.gz); required "
                             "by --profile paper (default: generate the phantom)")
    parser.add_argument("--nproc-per-stage", type=int, default=1, metavar="N",
                        help="GPUs (torchrun processes) per training stage (default: 1)")
    parser.add_argument("--no-build", action="store_true", help="do not run `jupyter-book build .`")
    parser.add_argument("--list", action="store_true", help="print the stages and what would run, then exit")
    parser.add_argument("--root", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--run-one", default=None, metavar="SPEC", help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m sepnet_core.pipeline``; returns the exit code (0 ok, 1 a stage failed,
    2 bad arguments or a failed book build, 130 interrupted)."""
    args = _parser().parse_args(argv)
    if args.run_one:
        return run_one(args.run_one)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        root = Path(args.root) if args.root else find_repo_root()
        if args.jobs is not None and args.jobs < 1:
            raise ValueError(f"--jobs must be >= 1, got {args.jobs}")
        profile = get_profile(args.profile)
        stages = stages_for_profile(profile, data_root=args.data_root, nproc=args.nproc_per_stage, root=root)
        if args.data_root is not None and not args.list:  # before any stage runs, not after training
            from sepnet_core.data.splits import SPLIT_NAMES, require_splits

            require_splits(args.data_root, SPLIT_NAMES)
        if args.list:
            plan = plan_pipeline(stages, root, profile.name, args.force, args.force_all, args.only,
                                 strict=False)
            print(f"profile {profile.name}: {profile.description}")
            for p in plan:
                n = len(p.stage.depends_on)
                deps = ", ".join(p.stage.depends_on) if n < 3 else f"{n} stages"
                print(f"  {p.stage.name:32s} {p.action:8s} {p.reason}" + (f"  <- {deps}" if n else ""))
            return 0
        report = run_pipeline(stages, root, profile.name, jobs=args.jobs or profile.jobs, force=args.force,
                              force_all=args.force_all, only=args.only)
    except (ValueError, FileNotFoundError) as exc:
        print(f"pipeline: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pipeline: interrupted; finished stages are kept, rerun to continue", file=sys.stderr)
        return 130
    if not report.ok:
        failed = [n for n, s in report.status.items() if s in ("failed", "blocked")]
        print(f"pipeline: error: stages did not finish: {', '.join(failed)}", file=sys.stderr)
        return 1
    if args.only is None:
        _warn_stray_pages(root, stages)
    if args.no_build:
        return 0
    return 0 if build_book(root) == 0 else 2

"""The ``sepnet`` command line: a thin layer over the library.

Each sub-command lives in :mod:`sepnet_core.commands` as a module exposing
``register(subparsers) -> None`` (adds its parser and sets ``func``) and a function
``run(args: argparse.Namespace) -> int``. User errors (:class:`~sepnet_core.errors.SepNetError`,
missing files) are printed as one line on stderr with exit code 2; no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from sepnet_core import __version__
from sepnet_core.errors import SepNetError

COMMANDS: tuple[str, ...] = ("phantom", "train", "predict", "evaluate")
"""Sub-command module names under :mod:`sepnet_core.commands`, in ``--help`` order."""


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every available sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="sepnet",
        description="3D-SepNet organ-at-risk segmentation of head-and-neck CT (StructSeg 2019 task 1).",
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"sepnet {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"sepnet_core.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"sepnet_core.commands.{name}":
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sepnet`` console script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except (SepNetError, FileNotFoundError, NotADirectoryError, PermissionError) as exc:
        print(f"sepnet {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"sepnet {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

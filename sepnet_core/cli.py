"""The ``sepnet`` command line: a thin layer over the library.

Each sub-command lives in :mod:`sepnet_core.commands` as a module exposing
``register(subparsers) -> None`` (adds its parser and sets ``func``) and a function
``run(args: argparse.Namespace) -> int``.

Streams: progress and INFO messages go to stdout; warnings (logged ones and Python warnings such as
:class:`~sepnet_core.data.io.SepNetIntensityWarning`) go to stderr as one line each,
``sepnet <command>: warning: <message>``. User errors (:class:`~sepnet_core.errors.SepNetError`,
missing files, unusable output paths: ``FileNotFoundError``, ``FileExistsError``,
``NotADirectoryError``, ``IsADirectoryError``, ``PermissionError``) are printed as one line
``sepnet <command>: error: <message>`` on stderr with exit code 2 and no traceback. Anything else is a
bug or a fault (such as a full disk) and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import NoReturn

from sepnet_core import __version__
from sepnet_core.errors import SepNetError

COMMANDS: tuple[str, ...] = ("phantom", "split", "train", "predict", "evaluate")
"""Sub-command module names under :mod:`sepnet_core.commands`, in ``--help`` order."""

USER_ERRORS: tuple[type[BaseException], ...] = (
    SepNetError, FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError, PermissionError,
)
"""Exceptions reported as one line with exit code 2 (the input or the output path is at fault)."""


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line on stderr (exit code 2), like user errors:
    ``sepnet <command>: error: <problem> (see 'sepnet <command> --help')``."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {_one_line(message)} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every available sub-command registered.

    Options shared by every command (``-v``) are accepted before or after the sub-command.
    """
    parser = OneLineParser(
        prog="sepnet",
        description="3D-SepNet organ-at-risk segmentation of head-and-neck CT (StructSeg 2019 task 1).",
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"sepnet {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True,
                                       parser_class=OneLineParser)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"sepnet_core.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"sepnet_core.commands.{name}":
                raise
            continue
        module.register(subparsers)
    for sub in subparsers.choices.values():  # after the sub-command too; SUPPRESS keeps a -v given before
        sub.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                         help="log debug messages")
    return parser


def _one_line(text: str) -> str:
    """``text`` with its lines joined by spaces (a message must never span lines)."""
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


def error_message(exc: BaseException) -> str:
    """One-line text of a user error: ``<file>: <reason>`` for OS errors raised by the system."""
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        target = exc.filename if exc.filename2 is None else f"{exc.filename} -> {exc.filename2}"
        return _one_line(f"{target}: {exc.strerror}")
    return _one_line(str(exc)) or type(exc).__name__


class _StderrFormatter(logging.Formatter):
    def __init__(self, command: str) -> None:
        super().__init__()
        self.command = command

    def format(self, record: logging.LogRecord) -> str:
        return f"sepnet {self.command}: {record.levelname.lower()}: {_one_line(record.getMessage())}"


class _BelowWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < logging.WARNING


@contextmanager
def _console(command: str, verbose: bool) -> Iterator[None]:
    """Route log records (INFO to stdout, WARNING and above to stderr) and warnings for one CLI call.

    Handlers are attached to the root logger for the duration of the call only, so calling
    :func:`main` repeatedly in one process (tests, notebooks) neither duplicates output nor leaves
    logging configured afterwards.
    """
    root = logging.getLogger()
    out = logging.StreamHandler(sys.stdout)
    out.addFilter(_BelowWarning())
    out.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    err = logging.StreamHandler(sys.stderr)
    err.setLevel(logging.WARNING)
    err.setFormatter(_StderrFormatter(command))
    level = root.level
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    root.addHandler(out)
    root.addHandler(err)

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        print(f"sepnet {command}: warning: {_one_line(str(message))}", file=sys.stderr)

    try:
        with warnings.catch_warnings():
            for category in (DeprecationWarning, PendingDeprecationWarning, FutureWarning):
                warnings.simplefilter("ignore", category)  # addressed to developers, not CLI users
            warnings.showwarning = show
            yield
    finally:
        root.removeHandler(out)
        root.removeHandler(err)
        root.setLevel(level)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sepnet`` console script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    with _console(args.command, args.verbose):
        try:
            return int(args.func(args) or 0)
        except USER_ERRORS as exc:
            print(f"sepnet {args.command}: error: {error_message(exc)}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(f"sepnet {args.command}: interrupted", file=sys.stderr)
            return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

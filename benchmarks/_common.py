"""Small helpers shared by the benchmark scripts: timing, a printed table, an atomic CSV write.

Every benchmark writes ``results/benchmarks/<name>.csv`` (relative to the repository root) so that the
book can show the measured numbers beside the machine that produced them.
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["REPO_ROOT", "RESULTS_DIR", "require", "time_call", "machine_info", "print_table", "write_csv"]

REPO_ROOT = Path(__file__).resolve().parent.parent
"""Repository root (the folder holding ``benchmarks/``)."""

RESULTS_DIR = REPO_ROOT / "results" / "benchmarks"
"""Where benchmark CSV files go."""


def require(module: str, script: str, extra: str = "bench") -> None:
    """Import ``module`` or stop ``script`` with one line saying how to install it.

    MONAI is not a dependency of the package: the benchmarks that compare with it need the ``bench`` extra
    (``pip install -e '.[bench]'``; ``make bench`` installs it).

    Raises:
        SystemExit: ``module`` cannot be imported (exit status 2, message on stderr).
    """
    import importlib

    try:
        importlib.import_module(module)
    except ImportError as exc:
        print(f"{script}: error: needs {module} ({exc}); install the '{extra}' extra: "
              f"pip install -e '.[{extra}]' (make bench does)", file=sys.stderr)
        raise SystemExit(2) from None


def time_call(fn: Callable[[], Any], repeats: int = 1) -> tuple[float, Any]:
    """Run ``fn()`` ``repeats`` times and return (best wall-clock seconds, result of the last call).

    Raises:
        ValueError: if ``repeats`` < 1.
    """
    if repeats < 1:
        raise ValueError(f"repeats={repeats!r} must be >= 1")
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def machine_info() -> dict[str, Any]:
    """A few facts about the machine, to store beside timings (CPU count, platform, Python)."""
    affinity = getattr(os, "sched_getaffinity", None)
    return {
        "cpus": len(affinity(0)) if affinity else os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def print_table(rows: Sequence[dict[str, Any]], float_format: str = "{:.4g}") -> None:
    """Print ``rows`` (dicts with the same keys) as an aligned text table on stdout."""
    if not rows:
        print("(no rows)")
        return
    columns = list(rows[0])

    def fmt(value: Any) -> str:
        return float_format.format(value) if isinstance(value, float) else str(value)

    cells = [[fmt(row.get(c, "")) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True)))
    for r in cells:
        print("  ".join(v.rjust(w) for v, w in zip(r, widths, strict=True)))


def report(rows: Sequence[dict[str, Any]], columns: Sequence[str], name: str, write: bool = True,
           extra_info: dict[str, Any] | None = None) -> None:
    """Print ``columns`` of ``rows`` as a table and, if ``write``, save every column plus the machine
    description (:func:`machine_info` and ``extra_info``) to ``results/benchmarks/<name>.csv``."""
    info = {**machine_info(), **(extra_info or {})}
    print()
    print_table([{k: r.get(k, "") for k in columns} for r in rows])
    if write:
        print(f"wrote {write_csv(name, [{**r, **info} for r in rows])}")


def write_csv(name: str, rows: Sequence[dict[str, Any]] | pd.DataFrame) -> Path:
    """Write ``rows`` to ``results/benchmarks/<name>.csv`` atomically (temporary file, then rename).

    Args:
        name: File stem, e.g. ``"metrics"``; letters, digits, ``_`` and ``-`` only.
        rows: A DataFrame or a sequence of dicts with the same keys.

    Returns:
        Path of the written file.

    Raises:
        ValueError: if ``name`` is empty or holds other characters.
    """
    if not name or not all(ch.isalnum() or ch in "_-" for ch in name):
        raise ValueError(f"name={name!r} must be non-empty and use only letters, digits, '_' and '-'")
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    target = RESULTS_DIR / f"{name}.csv"
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".csv.tmp", dir=RESULTS_DIR)
    try:
        with os.fdopen(fd, "w", newline="") as handle:
            frame.to_csv(handle, index=False)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target

"""Atomic, no-clobber file writers: a file is either absent or complete, never half written.

Every writer in the package goes through :func:`atomic_write`: the content is written to a hidden
temporary file in the destination folder (same file system, same file-name ending, so format
detection by suffix such as ``.nii.gz`` still works), and only a complete file is moved onto the
final name with :func:`os.replace`. If the writer raises, the temporary file is removed and the
destination is untouched. An existing destination is never replaced unless ``overwrite=True``.

Example:
    >>> from sepnet_core.fileio import atomic_write
    >>> with atomic_write("out/result.txt") as tmp:  # doctest: +SKIP
    ...     tmp.write_text("done")
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "atomic_write", "write_text_atomic", "write_json_atomic", "write_csv_atomic", "is_temporary",
    "sha256_file",
]

_TEMP_PREFIX = ".tmp-"


def _check_destination(path: Path, overwrite: bool) -> None:
    """Raise if ``path`` cannot be (re)written under the overwrite rule."""
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a folder, not a file")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: already exists (pass overwrite=True to replace it)")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{path.parent}: folder does not exist (needed to write {path.name})")


def _publish(tmp: Path, path: Path, overwrite: bool) -> None:
    """Move the finished temporary file onto ``path``; without ``overwrite`` never replace a file."""
    if overwrite:
        os.replace(tmp, path)
        return
    try:
        # A hard link fails atomically if the destination appeared since the first check.
        os.link(tmp, path)
    except FileExistsError:
        raise FileExistsError(f"{path}: already exists (pass overwrite=True to replace it)") from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        # File systems without hard links: re-check, then rename (a tiny race window remains).
        if path.exists():
            raise FileExistsError(f"{path}: already exists (pass overwrite=True to replace it)") from None
        os.replace(tmp, path)
        return
    tmp.unlink()


@contextmanager
def atomic_write(path: str | os.PathLike[str], overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write to; on success move it onto ``path``.

    The temporary file lives in the destination folder and is named ``.tmp-<random>-<name>``, so it
    keeps the full ending of ``path`` (``.nii.gz``, ``.csv``). The body must create it. On normal
    exit it replaces ``path`` atomically; if the body raises, it is deleted and ``path`` is left as
    it was.

    Args:
        path: Final file path. Its folder must exist.
        overwrite: Replace an existing file at ``path``. Default ``False``.

    Yields:
        The temporary path (not yet existing) to write the content to.

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is false (checked before and after writing).
        FileNotFoundError: The folder of ``path`` does not exist, or the body wrote no file.
        IsADirectoryError: ``path`` is a folder.
    """
    path = Path(path)
    _check_destination(path, overwrite)
    tmp = path.with_name(f"{_TEMP_PREFIX}{secrets.token_hex(6)}-{path.name}")
    try:
        yield tmp
        if not tmp.is_file():
            raise FileNotFoundError(f"{path}: the writer produced no file")
        _publish(tmp, path, overwrite)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(
    path: str | os.PathLike[str], text: str, overwrite: bool = False, encoding: str = "utf-8"
) -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write`). Returns ``path`` as a Path."""
    with atomic_write(path, overwrite=overwrite) as tmp:
        with open(tmp, "x", encoding=encoding, newline="") as handle:
            handle.write(text)
    return Path(path)


def _json_default(value: Any) -> Any:
    """Convert numpy scalars/arrays and paths, which ``json`` cannot encode, to plain Python."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "tolist") and callable(value.tolist):  # numpy scalars and arrays
        return value.tolist()
    raise TypeError(f"cannot encode {type(value).__name__} as JSON: {value!r}")


def write_json_atomic(
    path: str | os.PathLike[str], obj: Any, overwrite: bool = False, indent: int = 2
) -> Path:
    """Write ``obj`` as UTF-8 JSON (trailing newline) to ``path`` atomically.

    ``obj`` is encoded before anything is written, so an unencodable object leaves no file at all.
    Numpy scalars/arrays and paths are converted; NaN and infinity are written as ``NaN`` and
    ``Infinity`` (Python's and pandas' JSON readers accept them).

    Args:
        path: Destination ``.json`` file; its folder must exist.
        obj: JSON-able object.
        overwrite: Replace an existing file. Default ``False``.
        indent: Indentation of the JSON text. Default 2.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        TypeError: ``obj`` holds a value that cannot be encoded.
        FileExistsError: ``path`` exists and ``overwrite`` is false.
    """
    text = json.dumps(obj, indent=indent, ensure_ascii=False, default=_json_default) + "\n"
    return write_text_atomic(path, text, overwrite=overwrite)


def write_csv_atomic(
    path: str | os.PathLike[str],
    dataframe: pd.DataFrame,
    overwrite: bool = False,
    index: bool = False,
    float_format: str | None = None,
) -> Path:
    """Write a pandas DataFrame as CSV to ``path`` atomically.

    Args:
        path: Destination ``.csv`` file; its folder must exist.
        dataframe: The table (anything with pandas' ``to_csv``).
        overwrite: Replace an existing file. Default ``False``.
        index: Also write the index column. Default ``False``.
        float_format: Optional format such as ``"%.6g"``; default writes full precision.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        TypeError: ``dataframe`` has no ``to_csv`` method.
        FileExistsError: ``path`` exists and ``overwrite`` is false.
    """
    if not callable(getattr(dataframe, "to_csv", None)):
        raise TypeError(f"dataframe must be a pandas DataFrame, got {type(dataframe).__name__}")
    with atomic_write(path, overwrite=overwrite) as tmp:
        dataframe.to_csv(tmp, index=index, float_format=float_format)
    return Path(path)


def is_temporary(path: str | os.PathLike[str]) -> bool:
    """True for a name that :func:`atomic_write` uses for its temporary files (to skip in listings)."""
    return Path(path).name.startswith(_TEMP_PREFIX)


def sha256_file(path: str | os.PathLike[str]) -> str:
    """SHA-256 (hex) of the bytes of ``path``, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()

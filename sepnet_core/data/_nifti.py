"""Raw-file checks SimpleITK does not do, and one-line SimpleITK errors (private to data.io).

SimpleITK (ITK 5.4) silently reads a truncated ``.nii``/``.nii.gz`` (missing voxels come back as
garbage or zeros) and its NIfTI reader replaces NaN and infinity by 0. :func:`read_sitk` therefore
first parses the NIfTI-1/2 header itself, checks that the (decompressed) file holds every voxel the
header promises, and counts non-finite values of floating-point data, before handing the file to
SimpleITK. Files that are not single-file NIfTI (``.mha``, ``.nrrd``) are left to SimpleITK.
"""

from __future__ import annotations

import gzip
import math
import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from sepnet_core.errors import SepNetInputError

__all__ = ["InputNotFoundError", "one_line", "read_sitk"]

_MAX_MESSAGE = 200
_CHUNK = 1 << 20
# NIfTI datatype code -> element type whose finiteness is checked (complex: real/imaginary parts).
_FLOAT_CODES = {16: "f4", 64: "f8", 32: "f4", 1792: "f8"}


class InputNotFoundError(SepNetInputError, FileNotFoundError):
    """An input file or folder does not exist (catchable as either parent class)."""


def one_line(text: str) -> str:
    """Condense a (multi-line) SimpleITK error into one short line."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    line = lines[-1] if lines else "unknown error"
    line = re.sub(r"^.*?(sitk::ERROR|itk::ERROR|ERROR):\s*", "", line)
    if line.startswith("Unable to determine ImageIO reader"):
        line = "not a readable image (unknown format, or a damaged or truncated header)"
    line = " ".join(line.split())
    return line if len(line) <= _MAX_MESSAGE else line[: _MAX_MESSAGE - 3] + "..."


@dataclass(frozen=True)
class NiftiLayout:
    """Where the voxels of a single-file NIfTI lie (byte offsets in the decompressed stream)."""

    data_start: int
    data_end: int
    float_dtype: np.dtype | None  # element type to check for NaN/inf, None for integer data


def nifti_layout(head: bytes) -> NiftiLayout | None:
    """Parse the first 544 bytes of a file; None if it is not a well-formed single-file NIfTI-1/2."""
    for endian in "<>":
        size = struct.unpack(endian + "i", head[:4])[0] if len(head) >= 4 else 0
        if size == 348 and len(head) >= 348 and head[344:348] == b"n+1\0":
            dims = struct.unpack(endian + "8h", head[40:56])
            code, bitpix = struct.unpack(endian + "2h", head[70:74])
            offset = struct.unpack(endian + "f", head[108:112])[0]
        elif size == 540 and len(head) >= 540 and head[4:8] == b"n+2\0":
            dims = struct.unpack(endian + "8q", head[16:80])
            code, bitpix = struct.unpack(endian + "2h", head[12:16])
            offset = struct.unpack(endian + "q", head[168:176])[0]
        else:
            continue
        ndim = dims[0]
        if not 1 <= ndim <= 7 or min(dims[1 : ndim + 1]) < 1 or bitpix < 1 or not math.isfinite(offset):
            return None  # malformed: let SimpleITK report it
        start = max(int(offset), size + 4)
        kind = _FLOAT_CODES.get(code)
        return NiftiLayout(
            data_start=start,
            data_end=start + math.prod(dims[1 : ndim + 1]) * bitpix // 8,
            float_dtype=np.dtype(endian + kind) if kind else None,
        )
    return None


def _scan(path: Path, compressed: bool) -> tuple[NiftiLayout | None, int, int]:
    """(layout, bytes available, non-finite values); streams the data only when it must."""
    opener = gzip.open if compressed else open
    with opener(path, "rb") as handle:
        head = handle.read(544)
        layout = nifti_layout(head)
        if not compressed and (layout is None or layout.float_dtype is None):
            return layout, path.stat().st_size, 0
        dtype = layout.float_dtype if layout is not None else None
        position, nonfinite, carry, chunk = 0, 0, b"", head
        while chunk:
            if dtype is not None:
                low = max(layout.data_start - position, 0)
                high = min(layout.data_end - position, len(chunk))
                if high > low:
                    data = carry + chunk[low:high]
                    usable = len(data) - len(data) % dtype.itemsize
                    values = np.frombuffer(data, dtype=dtype, count=usable // dtype.itemsize)
                    nonfinite += int(values.size - np.count_nonzero(np.isfinite(values)))
                    carry = data[usable:]
            position += len(chunk)
            chunk = handle.read(_CHUNK)
    return layout, position, nonfinite


def check_file(path: Path) -> None:
    """Existence, type, completeness and finiteness checks; raises SepNetInputError naming ``path``."""
    if not path.exists():
        raise InputNotFoundError(f"{path}: file does not exist")
    if not path.is_file():
        raise SepNetInputError(f"{path}: is not a file")
    try:
        if path.stat().st_size == 0:
            raise SepNetInputError(f"{path}: empty file (0 bytes)")
        with open(path, "rb") as handle:
            compressed = handle.read(2) == b"\x1f\x8b"
        layout, available, nonfinite = _scan(path, compressed)
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise SepNetInputError(f"{path}: truncated or corrupt gzip data ({one_line(str(exc))})") from None
    except OSError as exc:
        raise SepNetInputError(f"{path}: cannot read file ({exc.strerror or exc})") from None
    if layout is not None and available < layout.data_end:
        raise SepNetInputError(f"{path}: truncated file: {available} bytes, header needs {layout.data_end}")
    if nonfinite:
        raise SepNetInputError(f"{path}: contains {nonfinite} non-finite voxel value(s) (NaN or inf)")


def read_sitk(path: Path) -> sitk.Image:
    """Check ``path`` with :func:`check_file`, read it with SimpleITK, require a scalar 3D image."""
    check_file(path)
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise SepNetInputError(f"{path}: {one_line(str(exc))}") from None
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise SepNetInputError(f"{path}: has {image.GetNumberOfComponentsPerPixel()} values per voxel "
                               f"({image.GetPixelIDTypeAsString()}); expected a scalar 3D volume")
    if image.GetDimension() != 3:
        raise SepNetInputError(f"{path}: is {image.GetDimension()}D (size {image.GetSize()}); "
                               "expected a 3D volume")
    return image

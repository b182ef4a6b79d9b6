"""Raw-file checks SimpleITK does not do, and one-line SimpleITK errors (private to data.io).

SimpleITK (ITK 5.4) silently reads a truncated ``.nii``/``.nii.gz`` (missing voxels come back as
garbage or zeros) and its NIfTI reader replaces NaN and infinity by 0. :func:`read_sitk` therefore
first reads the NIfTI-1/2 header with nibabel, checks that the (decompressed) file holds every voxel the
header promises, and counts non-finite values of floating-point data, before handing the file to
SimpleITK. Files that are not single-file NIfTI (``.mha``, ``.nrrd``) are left to SimpleITK.
"""

from __future__ import annotations

import gzip
import math
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from nibabel.nifti1 import Nifti1Header
from nibabel.nifti2 import Nifti2Header
from nibabel.spatialimages import HeaderDataError

from sepnet_core.errors import SepNetInputError

__all__ = ["InputNotFoundError", "one_line", "read_sitk"]

_MAX_MESSAGE = 200
_CHUNK = 1 << 20
_HEAD_BYTES = 544  # the largest header (NIfTI-2, 540 bytes) and the 4-byte extension flag
# nibabel's header classes and their sizes (sizeof_hdr); single files carry their ``single_magic``.
_HEADERS = ((Nifti1Header, 348), (Nifti2Header, 540))


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


def _checked_dtype(header: Nifti1Header) -> np.dtype | None:
    """Element type whose finiteness is checked: float32/64 data, the parts of complex64/128 data,
    in the header's byte order; None for integer, RGB, float128 or unknown datatypes."""
    try:
        dtype = header.get_data_dtype()
    except (HeaderDataError, KeyError, ValueError):
        return None
    if dtype.kind == "f" and dtype.itemsize in (4, 8):
        return dtype
    if dtype.kind == "c" and dtype.itemsize in (8, 16):
        return np.dtype(f"{dtype.byteorder}f{dtype.itemsize // 2}")
    return None


def nifti_layout(head: bytes) -> NiftiLayout | None:
    """Read the header at the start of a file with nibabel; None if it is not a well-formed
    single-file NIfTI-1/2 (``head``: at least the first 544 bytes, or the whole file if shorter)."""
    for header_class, size in _HEADERS:
        if len(head) < size:
            continue
        try:
            header = header_class(head[:size], check=False)  # byte order guessed from sizeof_hdr
        except (HeaderDataError, ValueError):
            continue
        if int(header["sizeof_hdr"]) != size or header["magic"].item() != header_class.single_magic:
            continue
        dims = [int(d) for d in header["dim"]]
        bitpix, offset = int(header["bitpix"]), header["vox_offset"].item()  # float32 (v1), int64 (v2)
        ndim = dims[0]
        if not 1 <= ndim <= 7 or min(dims[1 : ndim + 1]) < 1 or bitpix < 1 or not math.isfinite(offset):
            return None  # malformed: let SimpleITK report it
        start = max(int(offset), size + 4)
        return NiftiLayout(
            data_start=start,
            data_end=start + math.prod(dims[1 : ndim + 1]) * bitpix // 8,
            float_dtype=_checked_dtype(header),
        )
    return None


def _scan(path: Path, compressed: bool) -> tuple[NiftiLayout | None, int, int]:
    """(layout, bytes available, non-finite values); streams the data only when it must."""
    opener = gzip.open if compressed else open
    with opener(path, "rb") as handle:
        head = handle.read(_HEAD_BYTES)
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

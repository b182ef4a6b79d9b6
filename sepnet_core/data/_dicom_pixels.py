"""Decoding the pixel data of one DICOM CT slice into HU (private to :mod:`sepnet_core.data.dicom`).

pydicom decodes uncompressed, deflated and RLE pixel data itself and, through its GDCM plugin
(``python-gdcm``, a dependency of the package), the compressed transfer syntaxes scanners and PACS
exports use: JPEG Lossless, JPEG-LS, JPEG 2000 and JPEG Baseline (:data:`SUPPORTED_COMPRESSION`). Not
decoded: JPEG Extended with 12-bit samples (GDCM's plugin refuses them), High-Throughput JPEG 2000 and
JPEG XL (pydicom needs ``pylibjpeg`` plugins for them) and video syntaxes (MPEG, HEVC): such a slice
fails with one line naming the file and the transfer syntax.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sepnet_core.errors import SepNetInputError

__all__ = ["SUPPORTED_COMPRESSION", "read_slice_hu"]

SUPPORTED_COMPRESSION = ("RLE, JPEG Lossless (Process 14 and its SV1), JPEG-LS (lossless and near-lossless), "
                         "JPEG 2000 (lossless and lossy), JPEG Baseline")
"""Compressed transfer syntaxes whose pixel data is decoded (pydicom: RLE itself, the others with GDCM),
besides the uncompressed and deflated ones."""


def _syntax_problem(syntax: object) -> str | None:
    """Why pixel data in transfer syntax ``syntax`` (a UID) cannot be decoded here, or None if it can."""
    from pydicom.pixels import get_decoder
    from pydicom.uid import UID

    uid = UID(str(syntax))
    name = f"{uid.name} ({uid})" if uid.name != str(uid) else str(uid)
    try:
        decoder = get_decoder(uid)
    except NotImplementedError:
        return (f"transfer syntax {name} is not supported (pydicom has no decoder for it); supported: "
                f"{SUPPORTED_COMPRESSION}; convert the series first (e.g. gdcmconv --raw)")
    if not decoder.is_available:
        missing = "; ".join(decoder.missing_dependencies) or "no decoder plugin"
        return f"transfer syntax {name} needs a pixel data decoder that is not installed ({missing})"
    return None


def read_slice_hu(file: Path, rows: int, columns: int) -> np.ndarray:
    """One single-frame greyscale slice in HU: stored value x RescaleSlope + RescaleIntercept.

    Args:
        file: A DICOM image file whose header was already checked (rows, columns from it).
        rows, columns: Expected pixel matrix.

    Returns:
        float32 array (rows, columns).

    Raises:
        SepNetInputError: unreadable file, a transfer syntax without a decoder, undecodable data, or
            pixel data that is not one greyscale slice of that size (one line naming ``file``).
    """
    import pydicom

    try:
        ds = pydicom.dcmread(file)
    except Exception as exc:  # the header was readable a moment ago; report whatever broke now
        raise SepNetInputError(f"{file}: cannot read the file ({' '.join(str(exc).split())[:160]})") from None
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    problem = _syntax_problem(syntax) if syntax is not None else None
    if problem:
        raise SepNetInputError(f"{file}: cannot decode the pixel data: {problem}")
    try:
        stored = ds.pixel_array
    except Exception as exc:  # pydicom raises many types for undecodable data (handlers, lengths)
        reason = " ".join(str(exc).split())[:160]
        raise SepNetInputError(f"{file}: cannot decode the pixel data (transfer syntax {syntax or '?'}): "
                               f"{reason}") from None
    if int(getattr(ds, "SamplesPerPixel", 1)) != 1 or stored.shape != (rows, columns):
        raise SepNetInputError(f"{file}: pixel data of shape {stored.shape} is not one greyscale "
                               f"{rows} x {columns} slice")
    slope = float(getattr(ds, "RescaleSlope", 1.0) or 1.0)
    intercept = float(getattr(ds, "RescaleIntercept", 0.0) or 0.0)
    return (stored.astype(np.float64) * slope + intercept).astype(np.float32)

"""One front door for CT inputs: a NIfTI file, or a DICOM CT series as a folder or a zip.

:data:`INPUT_READERS` maps each input kind to a recogniser and a reader; :func:`read_input` uses the
first that accepts the path. Every image comes back as float32 HU (z, y, x) in the package's canonical
orientation with the :class:`~sepnet_core.data.geometry.Geometry` that writes outputs back on the
input's own grid; DICOM input also carries the series references an RT Structure Set needs.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sepnet_core.errors import SepNetInputError

__all__ = ["InputVolume", "InputReader", "INPUT_READERS", "read_input"]

_NIFTI_SUFFIXES = (".nii.gz", ".nii")


@dataclass(frozen=True)
class InputVolume:
    """A CT read by :func:`read_input`.

    Attributes:
        kind: Key of :data:`INPUT_READERS` that read it ("nifti", "dicom-zip", "dicom-folder").
        path: The input as given.
        image: float32 HU (z, y, x), canonical orientation.
        geometry: Its :class:`~sepnet_core.data.geometry.Geometry`.
        dicom: :class:`~sepnet_core.data.dicom.DicomSeriesInfo` for DICOM input, else None.
    """

    kind: str
    path: Path
    image: np.ndarray
    geometry: Any
    dicom: Any = None


@dataclass(frozen=True)
class InputReader:
    """One kind of input: ``accepts(path)`` recognises it; ``read(path, series_uid)`` gives
    ``(image HU (z, y, x), Geometry, DicomSeriesInfo or None)``; ``series``: whether it holds series."""

    description: str
    accepts: Callable[[Path], bool]
    read: Callable[[Path, str | None], tuple[np.ndarray, Any, Any]]
    series: bool = False


def _read_nifti(path: Path, series_uid: str | None) -> tuple[np.ndarray, Any, Any]:
    from sepnet_core.data.io import read_image

    return (*read_image(path), None)


def _read_dicom(path: Path, series_uid: str | None) -> tuple[np.ndarray, Any, Any]:
    from sepnet_core.data.dicom import read_dicom_series

    return read_dicom_series(path, series_uid)


INPUT_READERS: dict[str, InputReader] = {
    "nifti": InputReader("a NIfTI file (.nii.gz or .nii) of CT in HU",
                         lambda p: p.is_file() and p.name.lower().endswith(_NIFTI_SUFFIXES), _read_nifti),
    "dicom-zip": InputReader("a zip of one DICOM CT series",
                             lambda p: p.is_file() and p.name.lower().endswith(".zip"), _read_dicom, True),
    "dicom-folder": InputReader("a folder holding one DICOM CT series", lambda p: p.is_dir(), _read_dicom,
                                True),
}
"""Input kinds, tried in order; the first whose ``accepts`` is true reads the input."""


def read_input(path: str | os.PathLike[str], series_uid: str | None = None) -> InputVolume:
    """Read a CT input with the first matching reader of :data:`INPUT_READERS`.

    Args:
        path: NIfTI file, DICOM folder or zip of a DICOM series.
        series_uid: SeriesInstanceUID to read from a DICOM input holding several series.

    Returns:
        An :class:`InputVolume`.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        SepNetInputError: no reader accepts it (the message lists the supported kinds), it is invalid,
            or ``series_uid`` is given for an input without series. One line starting with the path.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: input does not exist")
    for kind, reader in INPUT_READERS.items():
        if reader.accepts(path):
            if series_uid is not None and not reader.series:
                raise SepNetInputError(f"{path}: --series applies to DICOM input; this is "
                                       f"{reader.description}")
            image, geometry, dicom = reader.read(path, series_uid)
            return InputVolume(kind, path, image, geometry, dicom)
    kinds = "; ".join(r.description for r in INPUT_READERS.values())
    raise SepNetInputError(f"{path}: unsupported input; expected {kinds}")

"""Reading, validating and writing StructSeg-layout NIfTI volumes.

Layout: ``<root>/<split>/<case>/data.nii.gz`` (CT in Hounsfield units) and, for annotated cases,
``label.nii.gz`` (labels 0..22, see :mod:`sepnet_core.organs`) on the same voxel grid.

Arrays are returned in (z, y, x) order in the canonical orientation described in
:mod:`sepnet_core.data.geometry` (axial files with an identity direction, such as StructSeg and the
phantom, are returned exactly as SimpleITK's ``GetArrayFromImage`` gives them). The accompanying
:class:`Geometry` remembers the file's own grid, so :func:`write_image` puts any output (labels,
probabilities, uncertainty) back on the input's grid, voxel for voxel.

Every problem with an input file raises :class:`~sepnet_core.errors.SepNetInputError` with a
one-line message ``"<path>: <problem>"``; a missing file or folder raises :class:`InputNotFoundError`,
which is both a ``SepNetInputError`` and a ``FileNotFoundError``. Intensities that do not look like
HU only warn (``SepNetIntensityWarning``).
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from sepnet_core.data._nifti import InputNotFoundError, one_line, read_sitk
from sepnet_core.data.geometry import Geometry
from sepnet_core.errors import SepNetInputError
from sepnet_core.fileio import atomic_write, is_temporary
from sepnet_core.organs import NUM_CLASSES

__all__ = [
    "Case",
    "Geometry",
    "InputNotFoundError",
    "SepNetIntensityWarning",
    "DATA_NAME",
    "LABEL_NAME",
    "WRITE_DTYPES",
    "check_name",
    "read_image",
    "read_label",
    "read_case",
    "list_cases",
    "write_image",
]

logger = logging.getLogger(__name__)

DATA_NAME = "data.nii.gz"
LABEL_NAME = "label.nii.gz"
WRITE_DTYPES: dict[str, type] = {
    "uint8": np.uint8,
    "int16": np.int16,
    "uint16": np.uint16,
    "int32": np.int32,
    "float32": np.float32,
}
_WRITE_SUFFIXES = (".nii.gz", ".nii", ".mha")


class SepNetIntensityWarning(UserWarning):
    """Image intensities look implausible for CT in Hounsfield units (the read still succeeds)."""


# --------------------------------------------------------------------------------------- names
def check_name(name: str, what: str = "case name", where: str | os.PathLike[str] | None = None) -> str:
    """Return ``name`` if it is safe as a single folder name, else raise SepNetInputError.

    Rejects empty names, ``.``/``..``, path separators (``/``, ``\\``), NUL and control characters,
    and leading/trailing white space, so that ``<root>/<split>/<name>`` can never leave its folder.
    The error message starts with ``where`` (a path) if given, else with the name itself.
    """
    if not isinstance(name, str):
        raise TypeError(f"{what} must be a str, got {type(name).__name__}")
    problem = None
    if name in ("", ".", ".."):
        problem = "is empty, '.' or '..'"
    elif "/" in name or "\\" in name or (os.altsep and os.altsep in name):
        problem = "contains a path separator"
    elif any(ord(c) < 32 for c in name):
        problem = "contains a control character"
    elif name != name.strip():
        problem = "starts or ends with white space"
    if problem:
        prefix = str(where) if where is not None else repr(name)
        raise SepNetInputError(f"{prefix}: {what} {name!r} {problem}; it must be a single folder name")
    return name


# --------------------------------------------------------------------------------------- Case
@dataclass
class Case:
    """One scan, optionally with its label map.

    Attributes:
        case_id: Name of the case (its folder name); ``""`` for an unnamed case. Never contains a path
            separator or ``..`` (checked).
        image: CT volume (z, y, x), float32, HU (other real dtypes are converted to float32).
        label: Label map (z, y, x), uint8, values 0..22, or ``None`` for an unannotated case
            (integer dtypes are converted to uint8 after a range check).
        geometry: Grid of ``image`` and of the file it came from (to write outputs back).

    Raises:
        ValueError: Shapes disagree, a dtype is not numeric, or label values are outside 0..22.
        SepNetInputError: ``case_id`` is not a safe folder name.
    """

    case_id: str
    image: np.ndarray
    label: np.ndarray | None
    geometry: Geometry

    def __post_init__(self) -> None:
        if self.case_id != "":
            check_name(self.case_id)
        if not isinstance(self.geometry, Geometry):
            raise TypeError(f"geometry must be a Geometry, got {type(self.geometry).__name__}")
        image = np.asarray(self.image)
        if image.dtype.kind not in "biuf":
            raise ValueError(f"image must have a real dtype, got {image.dtype}")
        if image.shape != self.geometry.shape:
            raise ValueError(f"image shape {image.shape} != geometry.shape {self.geometry.shape}")
        self.image = image.astype(np.float32, copy=False)
        if self.label is not None:
            label = np.asarray(self.label)
            if label.dtype.kind not in "biu":
                raise ValueError(f"label must have an integer dtype, got {label.dtype}")
            if label.shape != image.shape:
                raise ValueError(f"label shape {label.shape} != image shape {image.shape}")
            if label.size and (label.min() < 0 or label.max() >= NUM_CLASSES):
                raise ValueError(f"label values must lie in 0..{NUM_CLASSES - 1}, got "
                                 f"{int(label.min())}..{int(label.max())}")
            self.label = label.astype(np.uint8, copy=False)


# --------------------------------------------------------------------------------------- reading
def _read_array(path: Path) -> tuple[np.ndarray, Geometry]:
    """Read a scalar 3D image: canonical (z, y, x) array (file dtype) and its Geometry."""
    image = read_sitk(path)
    file_array = sitk.GetArrayFromImage(image)
    if file_array.dtype.kind not in "biuf":
        raise SepNetInputError(f"{path}: voxel type {image.GetPixelIDTypeAsString()} is not real-valued")
    try:
        geometry = Geometry.from_file_grid(
            file_array.shape, image.GetSpacing()[::-1], image.GetOrigin(), image.GetDirection()
        )
    except ValueError as exc:
        raise SepNetInputError(f"{path}: invalid voxel grid: {exc}") from None
    return geometry.to_canonical(file_array), geometry


def _hu_problem(low: float, high: float) -> str | None:
    """Why intensities in [low, high] do not look like CT in HU, or None if they do."""
    if low == high:
        return f"all voxels have the same value {low:g}"
    if low >= 0.0 and high <= 1.0:
        return f"intensities lie in [{low:g}, {high:g}]; the image looks normalised, not HU"
    if low > -200.0:
        return (f"no voxel below -200 HU (minimum {low:g}); air should be about -1000 HU "
                "(missing rescale slope/intercept?)")
    if high > 50000.0 or low < -50000.0:
        return f"intensities span [{low:g}, {high:g}], far outside the HU range"
    return None


def read_image(path: str | os.PathLike[str]) -> tuple[np.ndarray, Geometry]:
    """Read a CT volume in Hounsfield units.

    Args:
        path: Image file readable by SimpleITK (normally ``.nii.gz`` or ``.nii``).

    Returns:
        ``(image, geometry)``: image of shape (z, y, x), float32, HU, in canonical orientation (a
        contiguous array); ``geometry`` describes its grid and the file's, for :func:`write_image`.

    Raises:
        InputNotFoundError: The file does not exist.
        SepNetInputError: Not a file, unreadable, truncated, not 3D, not scalar, or with NaN/inf
            values. The message is one line and starts with the path.

    Warns:
        SepNetIntensityWarning: Intensities look normalised or otherwise not like HU.
    """
    path = Path(path)
    array, geometry = _read_array(path)
    image = np.ascontiguousarray(array, dtype=np.float32)
    finite = np.isfinite(image)
    if not finite.all():
        bad = int(image.size - np.count_nonzero(finite))
        raise SepNetInputError(f"{path}: contains {bad} non-finite voxel value(s) (NaN or inf)")
    problem = _hu_problem(float(image.min()), float(image.max()))
    if problem:
        warnings.warn(f"{path}: {problem}", SepNetIntensityWarning, stacklevel=2)
    return image, geometry


def read_label(path: str | os.PathLike[str], geometry: Geometry | None = None) -> np.ndarray:
    """Read a label map and check it against the image grid.

    Args:
        path: Label file (normally ``label.nii.gz``).
        geometry: Geometry of the matching image; if given, the label's grid (shape, spacing,
            origin, direction, file voxel order) must match it within the tolerances of
            :meth:`Geometry.mismatch`.

    Returns:
        Labels (z, y, x), uint8, values 0..22, in the same canonical orientation as the image.

    Raises:
        InputNotFoundError: The file does not exist.
        SepNetInputError: Unreadable/truncated/not 3D, non-integer values, values outside 0..22, or a
            grid that differs from ``geometry``.
    """
    path = Path(path)
    array, label_geometry = _read_array(path)
    if geometry is not None:
        problem = label_geometry.mismatch(geometry)
        if problem:
            raise SepNetInputError(f"{path}: label grid does not match the image: {problem}")
    if array.dtype.kind == "f":
        if not np.isfinite(array).all() or not np.array_equal(array, np.round(array)):
            raise SepNetInputError(f"{path}: label values must be whole numbers 0..{NUM_CLASSES - 1}")
    if array.size and (array.min() < 0 or array.max() >= NUM_CLASSES):
        values = np.unique(array)
        bad = values[(values < 0) | (values >= NUM_CLASSES)]
        shown = ", ".join(f"{v:g}" for v in bad[:5].tolist()) + (", ..." if bad.size > 5 else "")
        raise SepNetInputError(f"{path}: label values outside 0..{NUM_CLASSES - 1}: {shown}")
    return np.ascontiguousarray(array, dtype=np.uint8)


def read_case(case_dir: str | os.PathLike[str], require_label: bool = False) -> Case:
    """Read ``<case_dir>/data.nii.gz`` and, if present, ``<case_dir>/label.nii.gz``.

    Args:
        case_dir: Case folder; its name becomes ``Case.case_id``.
        require_label: Raise if ``label.nii.gz`` is missing (training, evaluation). Default
            ``False``: a case without a label gets ``label=None``.

    Returns:
        The :class:`Case` (image float32 HU, label uint8 or None, geometry of the image file).

    Raises:
        InputNotFoundError: The folder does not exist.
        SepNetInputError: Not a folder, unsafe name, a required file missing, or any check of
            :func:`read_image`/:func:`read_label` failing (label grid must match the image's).
    """
    case_dir = Path(case_dir)
    case_id = check_name(case_dir.name or case_dir.resolve().name, "case folder name", case_dir)
    if not case_dir.exists():
        raise InputNotFoundError(f"{case_dir}: case folder does not exist")
    if not case_dir.is_dir():
        raise SepNetInputError(f"{case_dir}: is not a folder")
    data_path, label_path = case_dir / DATA_NAME, case_dir / LABEL_NAME
    if not data_path.exists():
        raise SepNetInputError(f"{data_path}: missing (a case folder must contain {DATA_NAME})")
    if require_label and not label_path.exists():
        raise SepNetInputError(f"{label_path}: missing (this case needs a label)")
    image, geometry = read_image(data_path)
    label = read_label(label_path, geometry) if label_path.exists() else None
    return Case(case_id=case_id, image=image, label=label, geometry=geometry)


def _natural_key(name: str) -> tuple:
    """Sort key putting 'case_2' before 'case_10'; ties broken by the plain name."""
    parts = re.split(r"(\d+)", name)
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts), name


def list_cases(root: str | os.PathLike[str], split: str) -> list[Path]:
    """Case folders of ``<root>/<split>/`` that contain ``data.nii.gz``, in natural name order.

    Hidden folders (starting with ``.``) are skipped; other folders without ``data.nii.gz`` are
    skipped with a log message.

    Args:
        root: Dataset root folder.
        split: Split sub-folder name such as ``"train"`` or ``"test"`` (a single folder name).

    Returns:
        Sorted list of case folder paths (natural order: ``2`` before ``10``).

    Raises:
        InputNotFoundError: ``root`` or ``<root>/<split>`` does not exist (the message lists the
            splits that do).
        SepNetInputError: ``split`` is not a single folder name, a path is not a folder, or no
            case folder holds ``data.nii.gz``.
    """
    root = Path(root)
    check_name(split, "split name", root / split)
    if not root.exists():
        raise InputNotFoundError(f"{root}: dataset folder does not exist")
    if not root.is_dir():
        raise SepNetInputError(f"{root}: dataset path is not a folder")
    folder = root / split
    if not folder.is_dir():
        splits = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not folder.exists() and not splits:
            raise InputNotFoundError(f"{root}: dataset folder is empty; {split} folder does not exist "
                                     f"(expected {root}/{split}/<case>/{DATA_NAME})")
        if not folder.exists():
            raise InputNotFoundError(f"{folder}: split folder does not exist (splits found: {splits})")
        raise SepNetInputError(f"{folder}: split path is not a folder")
    cases = []
    for entry in folder.iterdir():
        if not entry.is_dir() or entry.name.startswith("."):
            continue
        if (entry / DATA_NAME).is_file():
            cases.append(entry)
        else:
            logger.info("%s: skipped, no %s", entry, DATA_NAME)
    if not cases:
        raise SepNetInputError(f"{folder}: no case folders containing {DATA_NAME}")
    return sorted(cases, key=lambda p: _natural_key(p.name))


# --------------------------------------------------------------------------------------- writing
def _output_dtype(array: np.ndarray, dtype: Any) -> np.dtype:
    """Resolve ``dtype`` (None: uint8 for bool/uint8, int16 for other integers, float32 otherwise)."""
    if dtype is None:
        if array.dtype.kind == "b" or array.dtype == np.uint8:
            return np.dtype(np.uint8)
        return np.dtype(np.int16 if array.dtype.kind in "iu" else np.float32)
    name = np.dtype(dtype).name if not isinstance(dtype, str) else dtype
    if name not in WRITE_DTYPES:
        raise ValueError(f"dtype={dtype!r} is not supported for writing; valid: {sorted(WRITE_DTYPES)}")
    return np.dtype(WRITE_DTYPES[name])


def _convert(array: np.ndarray, out: np.dtype) -> np.ndarray:
    """Convert to ``out``: floats are rounded for integer types; values must fit exactly."""
    if array.dtype.kind not in "biuf":
        raise ValueError(f"array must have a real dtype, got {array.dtype}")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise ValueError("array contains NaN or inf; cannot write it")
    if out.kind == "f":
        return array.astype(out, copy=False)
    values = np.rint(array) if array.dtype.kind == "f" else array
    info = np.iinfo(out)
    if values.size and (values.min() < info.min or values.max() > info.max):
        raise ValueError(f"array values {values.min()}..{values.max()} do not fit dtype {out.name} "
                         f"({info.min}..{info.max})")
    return values.astype(out)


def write_image(
    path: str | os.PathLike[str],
    array: np.ndarray,
    geometry: Geometry,
    dtype: Any = None,
    overwrite: bool = False,
) -> Path:
    """Write a (z, y, x) array on the grid of ``geometry``, in the original file's voxel order.

    The file gets the spacing, origin and direction of ``geometry.file_geometry`` and the array is
    re-ordered with :meth:`Geometry.to_file`, so an output of a volume read with :func:`read_image`
    overlays the input file exactly. The write is atomic (temporary file + rename).

    Args:
        path: Destination ending in ``.nii.gz``, ``.nii`` or ``.mha``; its folder must exist.
        array: Values (z, y, x) in the canonical order of ``geometry`` (``array.shape ==
            geometry.shape``).
        geometry: Grid from :func:`read_image`/:func:`read_case`, or a hand-made :class:`Geometry`.
        dtype: Stored type, a key of ``WRITE_DTYPES`` or numpy dtype; ``None`` picks uint8 for bool or
            uint8 arrays (labels), int16 for other integer arrays (CT in HU) and float32 otherwise.
            Floats written as integers are rounded; values must fit the type.
        overwrite: Replace an existing file. Default ``False``.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is false.
        ValueError: Wrong suffix, shape mismatch, unsupported dtype, NaN/inf, or values that do not
            fit the dtype.
        TypeError: ``geometry`` is not a Geometry.
    """
    path = Path(path)
    if not path.name.endswith(_WRITE_SUFFIXES) or is_temporary(path):
        raise ValueError(f"path {str(path)!r} must end with one of {list(_WRITE_SUFFIXES)}")
    if not isinstance(geometry, Geometry):
        raise TypeError(f"geometry must be a Geometry, got {type(geometry).__name__}")
    array = np.asarray(array)
    if array.shape != geometry.shape:
        raise ValueError(f"array shape {array.shape} != geometry.shape {geometry.shape} (z, y, x)")
    data = _convert(array, _output_dtype(array, dtype))
    file_grid = geometry.file_geometry
    image = sitk.GetImageFromArray(np.ascontiguousarray(geometry.to_file(data)))
    image.SetSpacing(file_grid.spacing_mm[::-1])
    image.SetOrigin(file_grid.origin)
    image.SetDirection(file_grid.direction)
    with atomic_write(path, overwrite=overwrite) as tmp:
        try:
            sitk.WriteImage(image, str(tmp), useCompression=path.name.endswith(".gz"))
        except RuntimeError as exc:
            raise OSError(f"{path}: could not write image: {one_line(str(exc))}") from None
    return path

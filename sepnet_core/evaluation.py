"""Score segmentations: a folder of predicted label maps against a StructSeg split folder
(:func:`evaluate_folders`, ``sepnet evaluate``), or a split segmented by checkpoints on the fly
(:func:`evaluate_split`, the book's test evaluation: :func:`sepnet_core.inference.segment` per case).

Layouts:

* predictions (``pred_dir``): ``<case>/labels.nii.gz`` (what ``sepnet predict`` writes) or
  ``<case>.nii.gz`` / ``<case>.nii`` files, possibly mixed; hidden and temporary files are ignored;
* references (``ref_dir``): a split folder ``<case>/label.nii.gz`` (``data.nii.gz`` beside it is not read).

Cases are matched by name. Every prediction must lie on its reference's voxel grid (shape, spacing,
origin, direction; checked by :func:`sepnet_core.data.io.read_label`); distances use the reference
file's spacing (mm). Per case and organ the table holds Dice, HD95 (mm) and both volumes (ml), see
:func:`sepnet_core.metrics.evaluate_case`; the summary adds means, spreads and the StructSeg weighted
averages (:func:`sepnet_core.metrics.summarize`).

Example:
    >>> table, summary = evaluate_folders("runs/pred", "data/valid")  # doctest: +SKIP
    >>> write_evaluation(table, summary, "metrics.csv", "metrics.json")  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import SimpleITK as sitk

from sepnet_core import __version__
from sepnet_core.data.geometry import Geometry
from sepnet_core.data.io import LABEL_NAME, check_name, read_label
from sepnet_core.errors import SepNetError, SepNetInputError
from sepnet_core.fileio import is_temporary, write_csv_atomic, write_json_atomic
from sepnet_core.metrics import evaluate_case, summarize

__all__ = ["PREDICTION_NAME", "find_predictions", "find_references", "evaluate_folders", "evaluate_split",
           "write_evaluation"]

logger = logging.getLogger(__name__)

PREDICTION_NAME = "labels.nii.gz"
"""Label file inside a case folder of predictions (``sepnet predict``'s output)."""
_SUFFIXES = (".nii.gz", ".nii")
_MAX_LISTED = 5


def _folder(path: str | os.PathLike[str], what: str) -> Path:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: {what} folder does not exist")
    if not path.is_dir():
        raise SepNetInputError(f"{path}: {what} path is not a folder")
    return path


def _listed(names: list[str]) -> str:
    shown = ", ".join(names[:_MAX_LISTED])
    return shown + (f", ... ({len(names)} in all)" if len(names) > _MAX_LISTED else "")


def find_predictions(pred_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Prediction files of ``pred_dir`` by case name (see the module docstring for the layouts).

    Raises:
        FileNotFoundError: ``pred_dir`` does not exist.
        SepNetInputError: not a folder, no prediction found, a case given twice, or a case name that
            is not a single folder name (a path separator, for instance).
    """
    folder = _folder(pred_dir, "prediction")
    found: dict[str, Path] = {}
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith(".") or is_temporary(entry):
            continue
        if entry.is_dir() and (entry / PREDICTION_NAME).is_file():
            case, path = entry.name, entry / PREDICTION_NAME
        elif entry.is_file() and entry.name.endswith(_SUFFIXES):
            case, path = entry.name[: -len(next(s for s in _SUFFIXES if entry.name.endswith(s)))], entry
        else:
            continue
        check_name(case, "case name", path)
        if case in found:
            raise SepNetInputError(f"{folder}: case {case!r} has two predictions: {found[case].name} and "
                                   f"{path.relative_to(folder)}")
        found[case] = path
    if not found:
        raise SepNetInputError(f"{folder}: no predictions (expected <case>/{PREDICTION_NAME} or "
                               "<case>.nii.gz)")
    return found


def find_references(ref_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Reference label files ``<case>/label.nii.gz`` of a split folder, by case name.

    Raises:
        FileNotFoundError: ``ref_dir`` does not exist.
        SepNetInputError: not a folder, no case folder holds ``label.nii.gz``, or a case name that is
            not a single folder name.
    """
    folder = _folder(ref_dir, "reference")
    found = {check_name(e.name, "case name", e / LABEL_NAME): e / LABEL_NAME for e in sorted(folder.iterdir())
             if e.is_dir() and not e.name.startswith(".") and (e / LABEL_NAME).is_file()}
    if not found:
        raise SepNetInputError(f"{folder}: no case folders holding {LABEL_NAME} (is it a split folder "
                               "such as <root>/valid?)")
    return found


def _file_geometry(path: Path) -> Geometry:
    """Canonical Geometry of an image file from its header alone (no voxel data read)."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
        return Geometry.from_file_grid(reader.GetSize()[::-1], reader.GetSpacing()[::-1], reader.GetOrigin(),
                                       reader.GetDirection())
    except (RuntimeError, ValueError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
        raise SepNetInputError(f"{path}: cannot read the voxel grid ({reason})") from None


def evaluate_folders(
    pred_dir: str | os.PathLike[str], ref_dir: str | os.PathLike[str], allow_missing: bool = False
) -> tuple[pd.DataFrame, dict]:
    """Dice and HD95 of every matched case and organ, and the summary.

    Args:
        pred_dir: Folder of predictions.
        ref_dir: StructSeg split folder of references.
        allow_missing: Evaluate the cases present on both sides and list the others in the summary,
            instead of failing when a case is missing on either side.

    Returns:
        ``(table, summary)``: the table has 22 rows per case (columns
        :data:`sepnet_core.metrics.TABLE_COLUMNS`, HD95 in mm, volumes in ml); the summary is
        :func:`sepnet_core.metrics.summarize` of it plus ``cases``, ``missing_predictions``,
        ``missing_references``, ``pred_dir``, ``ref_dir`` and ``sepnet_version``.

    Raises:
        FileNotFoundError: a folder does not exist.
        SepNetInputError: a case missing on either side (unless ``allow_missing``), no common case, or
            an invalid file (e.g. a prediction on another grid than its reference).
    """
    preds, refs = find_predictions(pred_dir), find_references(ref_dir)
    no_pred = sorted(set(refs) - set(preds))
    no_ref = sorted(set(preds) - set(refs))
    common = sorted(set(preds) & set(refs))
    problems = []
    if no_pred:
        problems.append(f"{len(no_pred)} reference case(s) without prediction: {_listed(no_pred)}")
    if no_ref:
        problems.append(f"{len(no_ref)} prediction(s) without reference: {_listed(no_ref)}")
    if problems and not allow_missing:
        raise SepNetInputError(f"{pred_dir} vs {ref_dir}: {'; '.join(problems)} (--allow-missing evaluates "
                               f"the {len(common)} common case(s))")
    if not common:
        raise SepNetInputError(f"{pred_dir} vs {ref_dir}: no case present on both sides")
    for problem in problems:
        logger.warning("skipped: %s", problem)

    tables = []
    for case in common:
        ref = read_label(refs[case])
        geometry = _file_geometry(refs[case])
        pred = read_label(preds[case], geometry=geometry)
        tables.append(evaluate_case(pred, ref, geometry.spacing_mm, case_id=case))
        logger.info("%s: mean Dice %.4f", case, tables[-1]["dice"].mean())
    table = pd.concat(tables, ignore_index=True)
    summary = summarize(table)
    summary.update({
        "cases": common,
        "missing_predictions": no_pred,
        "missing_references": no_ref,
        "pred_dir": str(Path(pred_dir).resolve()),
        "ref_dir": str(Path(ref_dir).resolve()),
        "sepnet_version": __version__,
    })
    return table, summary


def evaluate_split(
    models: Sequence[Any],
    data_dir: str | os.PathLike[str],
    split: str = "test",
    *,
    mode: str = "gaussian",
    batch_size: int | None = None,
    amp: bool | None = None,
    overlap: float | None = None,
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Segment every labelled case of ``<data_dir>/<split>`` with :func:`sepnet_core.inference.segment`
    and score it (what ``sepnet predict`` on each case + ``sepnet evaluate`` gives, in one call).

    Args:
        models: Checkpoint files or :class:`~sepnet_core.checkpoint.LoadedModel` members (one for a single
            network), loaded once for all cases.
        data_dir: Data set folder (StructSeg layout).
        split: Split folder (default ``"test"``).
        mode: Sliding-window mode (``"gaussian"`` | ``"reference"``), e.g. the run's ``val_mode``.
        batch_size: Windows per forward pass (default: by device, see ``segment``).
        amp: bfloat16 autocast; None: the device's default (:func:`sepnet_core.device.resolve_amp`), the
            rule validation uses too.
        overlap: Gaussian-mode overlap (default 0.5).

    Returns:
        ``(table, seconds)``: :func:`sepnet_core.metrics.evaluate_case` rows of every case (22 per case)
        and the inference wall-clock seconds of each case (prediction only, not reading or scoring).
    """
    from sepnet_core.data.io import list_cases, read_case
    from sepnet_core.inference.segmentation import load_members, segment

    members = load_members(models, "auto")
    frames, seconds = [], {}
    for case_dir in list_cases(data_dir, split):
        case = read_case(case_dir, require_label=True)
        start = time.perf_counter()
        result = segment(case.image, members, mode=mode, batch_size=batch_size, amp=amp, overlap=overlap)
        seconds[case.case_id] = round(time.perf_counter() - start, 3)
        frames.append(evaluate_case(result.labels, case.label, case.geometry.spacing_mm, case.case_id))
    return pd.concat(frames, ignore_index=True), seconds


def write_evaluation(
    table: pd.DataFrame,
    summary: dict,
    csv_path: str | os.PathLike[str],
    json_path: str | os.PathLike[str],
    overwrite: bool = False,
) -> tuple[Path, Path]:
    """Write the table as CSV and the summary as JSON, each atomically; nothing is written if either
    destination exists and ``overwrite`` is false.

    Raises:
        SepNetError: a destination exists (without ``overwrite``), or both paths are the same file.
    """
    csv_path, json_path = Path(csv_path), Path(json_path)
    if csv_path.resolve() == json_path.resolve():
        raise SepNetError(f"{csv_path}: the table and the summary cannot be the same file")
    existing = [str(p) for p in (csv_path, json_path) if p.exists()]
    if existing and not overwrite:
        raise SepNetError(f"{' and '.join(existing)}: already exist(s); pass --force to replace")
    for path in (csv_path, json_path):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SepNetError(f"{path.parent}: cannot create the folder ({exc.strerror})") from None
    write_csv_atomic(csv_path, table, overwrite=overwrite)
    write_json_atomic(json_path, summary, overwrite=overwrite)
    return csv_path, json_path

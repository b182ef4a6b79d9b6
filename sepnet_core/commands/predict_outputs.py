"""The files of ``sepnet predict``: inputs expanded into cases, outputs written and published at once.

:func:`predict_to_folder` (one input -> ``OUT_DIR``) and :func:`predict_cases` (several inputs or a folder
of cases -> ``OUT_DIR/<case>/``) load the checkpoints once, segment every case with
:func:`sepnet_core.inference.segment` and write its outputs (:data:`OUTPUT_NAMES`) into a hidden
temporary sibling of ``OUT_DIR`` that is renamed to ``OUT_DIR`` at the end (or whose files are moved into
an existing ``OUT_DIR``), so a failure in any case leaves no partial output. An output folder that
already holds any of :data:`OUTPUT_NAMES` is refused unless ``force``, which replaces them (and removes
those this run does not write, so the folder describes one run).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import secrets
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sepnet_core import __version__
from sepnet_core.clinical.outputs import (
    ORGAN_STATISTICS_NAME,
    PREVIEW_NAME,
    RTSTRUCT_NAME,
    STATISTICS_NAME,
    ClinicalOptions,
)
from sepnet_core.data.inputs import INPUT_READERS, InputVolume, read_input
from sepnet_core.errors import SepNetError, SepNetInputError

__all__ = ["LABELS_NAME", "UNCERTAINTY_NAME", "REPORT_NAME", "PROBABILITIES_NAME", "MASKS_NAME",
           "OUTPUT_NAMES", "expand_inputs", "predict_cases", "predict_to_folder"]

logger = logging.getLogger(__name__)

LABELS_NAME = "labels.nii.gz"
UNCERTAINTY_NAME = "uncertainty.nii.gz"
REPORT_NAME = "report.json"
PROBABILITIES_NAME = "probabilities.npz"
MASKS_NAME = "masks"
OUTPUT_NAMES: tuple[str, ...] = (LABELS_NAME, UNCERTAINTY_NAME, REPORT_NAME, RTSTRUCT_NAME, STATISTICS_NAME,
                                 ORGAN_STATISTICS_NAME, PREVIEW_NAME, PROBABILITIES_NAME, MASKS_NAME)
"""Every file (``masks`` is a folder) ``sepnet predict`` may write into a case's output folder."""

_NIFTI = (".nii.gz", ".nii")
_CASE_IMAGE = "data.nii.gz"


def _case_name(path: Path) -> str:
    """A case's name: the file name without its ending; a StructSeg ``<case>/data.nii.gz`` is ``<case>``."""
    if path.name == _CASE_IMAGE and path.parent.name:
        return path.parent.name
    name = path.name
    for suffix in (*_NIFTI, ".zip"):
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def _folder_cases(folder: Path) -> list[Path] | None:
    """The cases of a folder of cases (NIfTI files, or StructSeg case folders holding data.nii.gz), or
    None when ``folder`` is one input itself (a DICOM series)."""
    cases = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_file() and entry.name.endswith(_NIFTI):
            cases.append(entry)
        elif entry.is_dir() and (entry / _CASE_IMAGE).is_file():
            cases.append(entry / _CASE_IMAGE)
    return cases or None


def expand_inputs(paths: Sequence[str | os.PathLike[str]]) -> tuple[list[tuple[str, Path]], bool]:
    """The cases of the inputs: ``([(case name, input path)], batch)``.

    A file (NIfTI, zip) or a DICOM folder is one case named after it; a folder holding NIfTI files or
    case folders with ``data.nii.gz`` (a StructSeg split) gives one case per file or folder. ``batch`` is
    false for one input that is one case (outputs go straight into ``OUT_DIR``), else true (outputs in
    ``OUT_DIR/<case>/``).

    Raises:
        FileNotFoundError: an input does not exist.
        SepNetInputError: no input, or two cases with the same name.
    """
    if not paths:
        raise SepNetInputError("no input given (INPUT or -i INPUT)")
    cases: list[tuple[str, Path]] = []
    batch = len(paths) > 1
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise FileNotFoundError(f"{path}: input does not exist")
        found = _folder_cases(path) if path.is_dir() else None
        if found is None:
            cases.append((_case_name(path), path))
        else:
            batch = True
            cases += [(_case_name(p), p) for p in found]
    seen: dict[str, Path] = {}
    for name, path in cases:
        if name in seen:
            raise SepNetInputError(f"{path}: case name {name!r} also names {seen[name]}; outputs would "
                                   "collide")
        seen[name] = path
    return cases, batch


def _check_out_dir(out_dir: Path, force: bool) -> None:
    """Refuse an output folder that is a file, or that already holds outputs (without ``force``)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise SepNetError(f"{out_dir}: output path exists and is not a folder")
    ancestor = next((p for p in out_dir.absolute().parents if p.exists()), None)
    if ancestor is not None and not ancestor.is_dir():
        raise SepNetError(f"{out_dir}: cannot create the output folder ({ancestor} is a file)")
    existing = [name for name in OUTPUT_NAMES if (out_dir / name).exists()]
    if existing and not force:
        raise SepNetError(f"{out_dir}: already holds {', '.join(existing)}; pass --force to replace")


def _replace(src: Path, dst: Path) -> None:
    if dst.is_dir() and not dst.is_symlink():
        shutil.rmtree(dst)
    os.replace(src, dst)


def _rename_if_new(tmp: Path, out_dir: Path) -> bool:
    """Publish ``tmp`` as ``out_dir`` in one rename when ``out_dir`` does not exist yet; False when it
    exists (the caller then moves file by file). A rename that fails for another reason raises."""
    if out_dir.exists():
        return False
    try:
        os.rename(tmp, out_dir)
        return True
    except OSError:
        if not out_dir.is_dir():
            raise
        return False


def _publish(tmp: Path, out_dir: Path) -> None:
    """Move the finished files of ``tmp`` to ``out_dir``: one rename if it is new, else file by file;
    outputs of an earlier run that this run did not write are then removed."""
    if _rename_if_new(tmp, out_dir):
        return
    written = {p.name for p in tmp.iterdir()}
    for name in OUTPUT_NAMES:
        if name in written:
            _replace(tmp / name, out_dir / name)
        elif (out_dir / name).is_dir():
            shutil.rmtree(out_dir / name)
        elif (out_dir / name).exists():
            (out_dir / name).unlink()


def _publish_cases(tmp: Path, out_dir: Path, names: Sequence[str]) -> None:
    if _rename_if_new(tmp, out_dir):
        return
    for name in names:
        _publish(tmp / name, out_dir / name)


def _progress_bar(total: int, desc: str, enabled: bool, leave: bool = True) -> Any:
    """A tqdm bar on stderr, or None when progress is off (``--quiet`` or stderr is not a terminal)."""
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="window" if not leave else "case", file=sys.stderr, leave=leave,
                dynamic_ncols=True)


def _windows(members: Sequence[Any], shape: tuple[int, ...], mode: str, overlap: float | None) -> int:
    from sepnet_core.inference.ensemble import member_patch_size
    from sepnet_core.inference.sliding import count_windows

    return sum(count_windows((shape[0], *(m.crop_yx or shape[1:])), member_patch_size(m), overlap, mode)
               for m in members)


def _write_case(folder: Path, volume: InputVolume, seg: Any, members: Sequence[Any],
                checkpoints: Sequence[Path], clinical: ClinicalOptions, *, masks: bool,
                report_extra: dict[str, Any], start: float, predict_s: float) -> None:
    """Write one case's outputs into ``folder`` (an existing temporary folder)."""
    from sepnet_core.clinical.outputs import write_clinical_outputs
    from sepnet_core.clinical.report import checkpoint_entry, device_description, package_versions, timestamp
    from sepnet_core.data.io import write_image
    from sepnet_core.fileio import write_json_atomic
    from sepnet_core.inference.ensemble import member_patch_size
    from sepnet_core.organs import ORGANS

    write_image(folder / LABELS_NAME, seg.labels, volume.geometry, dtype=np.uint8)
    write_image(folder / UNCERTAINTY_NAME, seg.uncertainty, volume.geometry, dtype=np.float32)
    single = seg.num_members == 1
    outputs: dict[str, Any] = {
        "labels": LABELS_NAME,
        "uncertainty": UNCERTAINTY_NAME,
        "uncertainty_kind": seg.uncertainty_kind,
        "uncertainty_note": ("single checkpoint: entropy of its softmax probabilities (nats)" if single else
                             f"entropy of the votes of {seg.num_members} members, -sum_c f_c ln f_c (nats)"),
    }
    if seg.probabilities is not None:
        np.savez(folder / PROBABILITIES_NAME, probabilities=seg.probabilities.astype(np.float16),
                 classes=np.array(["background", *(o.key for o in ORGANS)]))
        outputs["probabilities"] = {"file": PROBABILITIES_NAME, "array": "probabilities", "dtype": "float16",
                                    "axes": "(class, z, y, x) on the grid of sepnet_core.data.io.read_image"}
    if masks:
        (folder / MASKS_NAME).mkdir()
        keep = seg.settings.get("roi_subset")
        for organ in ORGANS:
            if keep is None or organ.key in keep:
                write_image(folder / MASKS_NAME / f"{organ.key}.nii.gz", seg.labels == organ.label,
                            volume.geometry, dtype=np.uint8)
        outputs["masks"] = {"folder": MASKS_NAME, "files": "<organ key>.nii.gz, uint8 0/1"}
    extra, warnings = write_clinical_outputs(folder, volume, seg.labels, seg.uncertainty, clinical,
                                             uncertainty_kind=seg.uncertainty_kind,
                                             num_members=seg.num_members)
    outputs.update(extra)
    device = members[0].model.parameters().__next__().device
    report = {
        "sepnet_version": __version__,
        "created": timestamp(),
        "input": {"path": str(Path(volume.path).resolve()), "kind": volume.kind,
                  "geometry": volume.geometry.to_dict(),
                  "dicom": volume.dicom.to_dict() if volume.dicom is not None else None},
        "checkpoints": [checkpoint_entry(ckpt, m, member_patch_size(m))
                        for ckpt, m in zip(checkpoints, members, strict=True)],
        "inference": {**seg.settings, "fusion": "argmax of the mean probability", **report_extra},
        "device": device_description(device),
        "versions": package_versions(),
        "outputs": outputs,
        "warnings": warnings,
        "run_time_s": {"predict": round(predict_s, 3), "total": round(time.perf_counter() - start, 3)},
    }
    write_json_atomic(folder / REPORT_NAME, report)


def predict_cases(
    inputs: Sequence[str | os.PathLike[str]],
    checkpoints: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    device: str = "auto",
    amp: bool | None = None,
    overlap: float | None = None,
    mode: str = "gaussian",
    batch_size: int | None = None,
    force: bool = False,
    series_uid: str | None = None,
    clinical: ClinicalOptions | None = None,
    uncertainty_reference: str | os.PathLike[str] | None = None,
    roi_subset: Sequence[str] | None = None,
    save_probabilities: bool = False,
    masks: bool = False,
    progress: bool = False,
    load: Callable[..., Any] | None = None,
) -> list[Path]:
    """Segment every case of ``inputs`` with the checkpoints loaded once and write its outputs.

    Args:
        inputs: CT inputs (NIfTI files, DICOM folders or zips) and/or folders of cases
            (:func:`expand_inputs`).
        checkpoints: Checkpoint files (``best.pt`` of ``sepnet train`` runs); several form an ensemble.
        out_dir: Output folder: the outputs of a single case, or one subfolder per case.
        device: "auto", "cpu", "cuda", "cuda:N" or "mps".
        amp: bfloat16 autocast; None: the device's default (:mod:`sepnet_core.device`).
        overlap, mode, batch_size: Sliding window (:func:`sepnet_core.inference.segment`).
        force: Replace outputs of an earlier run.
        series_uid: SeriesInstanceUID of a DICOM input holding several series.
        clinical: Optional RT Structure Set, statistics, preview.
        uncertainty_reference: JSON of per-organ uncertainty thresholds for the statistics' flag.
        roi_subset: Organ keys kept in the labels and masks (default all 22).
        save_probabilities: Also write ``probabilities.npz`` (mean probability, float16).
        masks: Also write ``masks/<organ>.nii.gz``, one 0/1 file per organ.
        progress: tqdm bars on stderr (windows, and cases in batch mode).
        load: Checkpoint loader (default :func:`sepnet_core.inference.load_members`; tests count calls).

    Returns:
        The case output folders.

    Raises:
        FileNotFoundError, SepNetInputError, CheckpointError, SepNetError: bad input, checkpoint, output
            folder or device (one line naming it); nothing is written.
    """
    from sepnet_core.device import pick_device
    from sepnet_core.inference.segmentation import load_members, organ_labels, segment

    start = time.perf_counter()
    out_dir = Path(out_dir)
    checkpoints = [Path(c) for c in checkpoints]
    clinical = clinical or ClinicalOptions()
    if not checkpoints:
        raise SepNetError("no checkpoint given (-m CKPT [CKPT ...])")
    cases, batch = expand_inputs(inputs)
    _check_out_dir(out_dir, force)
    targets = [out_dir / name for name, _ in cases] if batch else [out_dir]
    if batch:
        for target in targets:
            _check_out_dir(target, force)
    try:
        torch_device = pick_device(device)
        organ_labels(roi_subset)
    except ValueError as exc:
        raise SepNetError(str(exc)) from None
    for ckpt in checkpoints:
        if not ckpt.is_file():
            raise FileNotFoundError(f"{ckpt}: checkpoint file does not exist")
    if uncertainty_reference is not None:
        from sepnet_core.clinical.statistics import load_uncertainty_reference

        clinical = dataclasses.replace(clinical, reference=load_uncertainty_reference(uncertainty_reference))

    members = (load or load_members)(checkpoints, torch_device)
    created = [p for p in out_dir.absolute().parents if not p.exists()]  # removed again on failure
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SepNetError(f"{out_dir.parent}: cannot create the output folder ({exc.strerror})") from None
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{secrets.token_hex(4)}"
    tmp.mkdir()
    case_bar = _progress_bar(len(cases), "cases", progress and batch)
    try:
        for name, path in cases:
            case_start = time.perf_counter()
            volume = read_input(path, series_uid)
            if clinical.rtstruct and volume.dicom is None:
                raise SepNetInputError(f"{path}: --rtstruct needs DICOM input (a folder or zip of the CT "
                                       "series the structure set references); this is "
                                       f"{INPUT_READERS[volume.kind].description}")
            logger.info("read %s (%s): %s voxels (z, y, x), spacing %s mm", path, volume.kind,
                        volume.image.shape, volume.geometry.spacing_mm)
            windows = _windows(members, volume.image.shape, mode, overlap)
            bar = _progress_bar(windows, name, progress, leave=False)
            try:
                seg = segment(volume.image, members, amp=amp, mode=mode, overlap=overlap,
                              batch_size=batch_size, probabilities=save_probabilities, roi_subset=roi_subset,
                              progress=bar.update if bar is not None else None)
            finally:
                if bar is not None:
                    bar.close()
            seg = dataclasses.replace(seg, geometry=volume.geometry)
            if not clinical.needs_image:  # free the CT
                volume = InputVolume(volume.kind, volume.path, np.empty(0, np.float32), volume.geometry,
                                     volume.dicom)
            folder = tmp / name if batch else tmp
            folder.mkdir(exist_ok=True)
            _write_case(folder, volume, seg, members, checkpoints, clinical, masks=masks,
                        report_extra={"case": name}, start=case_start,
                        predict_s=time.perf_counter() - case_start)
            if case_bar is not None:
                case_bar.update(1)
            logger.info("%s: segmented in %.1f s", name, time.perf_counter() - case_start)
        _check_out_dir(out_dir, force)  # outputs may have appeared meanwhile
        if batch:
            for target in targets:
                _check_out_dir(target, force)
            _publish_cases(tmp, out_dir, [name for name, _ in cases])
        else:
            _publish(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for folder in created:  # deepest first: leave the file system as it was
            try:
                folder.rmdir()
            except OSError:
                break
        raise
    finally:
        if case_bar is not None:
            case_bar.close()
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("wrote %s in %.1f s", out_dir, time.perf_counter() - start)
    return targets


def predict_to_folder(
    input_path: str | os.PathLike[str],
    checkpoints: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    **options: Any,
) -> Path:
    """Segment one CT input (NIfTI file, DICOM folder or zip) and write its outputs into ``out_dir``.

    ``options`` are those of :func:`predict_cases`. A folder of cases is refused here (use
    :func:`predict_cases`).

    Returns:
        ``out_dir`` as a Path.
    """
    cases, batch = expand_inputs([input_path])
    if batch:
        raise SepNetInputError(f"{input_path}: a folder of {len(cases)} cases; use predict_cases "
                               "(one output subfolder per case)")
    return predict_cases([input_path], checkpoints, out_dir, **options)[0]

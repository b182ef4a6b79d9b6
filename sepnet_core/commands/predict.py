"""``sepnet predict``: segment one CT (NIfTI, or a DICOM series as a folder or zip) with an ensemble.

Writes into ``OUT_DIR``, all volumes on the input's exact voxel grid (shape, spacing, origin, direction
and voxel order of the input file or series):

* ``labels.nii.gz``: uint8 labels 0..22 (argmax of the members' mean probability);
* ``uncertainty.nii.gz``: float32, nats: the members' vote entropy (the paper's), or for a single
  checkpoint the predictive entropy of its probabilities (``report.json`` says which);
* ``report.json``: input, checkpoints (SHA-256, seed, config hash), settings, package versions, device,
  run time;
* with ``--rtstruct`` (DICOM input only): ``rtstruct.dcm``, a DICOM RT Structure Set referencing the
  input series, one ROI per organ found (plus, with ``--uncertainty-roi T``, the voxels above T nats);
* with ``--statistics``: ``organ_statistics.json``, per organ volume (cm3), mean HU, mean uncertainty and a
  high-uncertainty flag against ``--uncertainty-reference`` (see :mod:`sepnet_core.clinical.statistics`),
  and ``statistics.json``, per organ volume (mm3) and intensity (mean HU) in TotalSegmentator's schema;
* with ``--preview``: ``preview.png``, axial/coronal/sagittal views with labels and uncertainty.

All-or-nothing: the files are written into a hidden temporary sibling folder that is renamed to
``OUT_DIR`` at the end (or whose files are moved into an existing ``OUT_DIR``), so a failure leaves no
partial output. An ``OUT_DIR`` that already holds any of :data:`OUTPUT_NAMES` is refused unless
``--force``, which replaces them (and removes those this run does not write, so the folder describes
one run).

Inputs are read by :data:`INPUT_READERS` (kind -> recogniser and reader); a new input kind is one more
entry there.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import os
import secrets
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sepnet_core import __version__
from sepnet_core.clinical.outputs import PREVIEW_NAME, RTSTRUCT_NAME, STATISTICS_NAME, ClinicalOptions
from sepnet_core.clinical.statistics import ORGAN_STATISTICS_NAME
from sepnet_core.data.inputs import INPUT_READERS, InputReader, InputVolume, read_input
from sepnet_core.errors import SepNetError, SepNetInputError

__all__ = ["OUTPUT_NAMES", "INPUT_READERS", "InputReader", "InputVolume", "read_input", "predict_to_folder",
           "register", "run"]

logger = logging.getLogger(__name__)

LABELS_NAME = "labels.nii.gz"
UNCERTAINTY_NAME = "uncertainty.nii.gz"
REPORT_NAME = "report.json"
OUTPUT_NAMES: tuple[str, ...] = (LABELS_NAME, UNCERTAINTY_NAME, REPORT_NAME, RTSTRUCT_NAME, STATISTICS_NAME,
                                 ORGAN_STATISTICS_NAME, PREVIEW_NAME)
"""Every file ``sepnet predict`` may write into its output folder."""

DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda", "mps")


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


def _publish(tmp: Path, out_dir: Path) -> None:
    """Move the finished files of ``tmp`` to ``out_dir``: one rename if it is new, else file by file;
    outputs of an earlier run that this run did not write are then removed."""
    if not out_dir.exists():
        try:
            os.rename(tmp, out_dir)
            return
        except OSError:
            if not out_dir.is_dir():
                raise
    written = {p.name for p in tmp.iterdir()}
    for name in OUTPUT_NAMES:
        if name in written:
            os.replace(tmp / name, out_dir / name)
        elif (out_dir / name).exists():
            (out_dir / name).unlink()


def predict_to_folder(
    input_path: str | os.PathLike[str],
    checkpoints: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    device: str = "auto",
    overlap: float | None = None,
    mode: str = "gaussian",
    batch_size: int = 1,
    force: bool = False,
    series_uid: str | None = None,
    clinical: ClinicalOptions | None = None,
    uncertainty_reference: str | os.PathLike[str] | None = None,
) -> Path:
    """Segment one CT input with an ensemble and write the outputs of the module docstring.

    Args:
        input_path: CT input (see :data:`INPUT_READERS`): NIfTI file, DICOM folder or zip.
        checkpoints: One or more checkpoint files (``best.pt`` of ``sepnet train`` runs).
        out_dir: Output folder (created; its parent folders too).
        device: "auto" (cuda, then mps, then cpu), "cpu", "cuda" or "mps".
        overlap: Sliding-window overlap in "gaussian" mode (default 0.5).
        mode: "gaussian" (windows of each checkpoint's training patch) or "reference" (slabs of the
            training patch's depth, 16 slices in the paper, stride 2 slices, summed softmax).
        batch_size: Windows per forward pass (speed and memory only; same result up to rounding).
        force: Replace outputs already in ``out_dir``.
        series_uid: SeriesInstanceUID to read from a DICOM input holding several series.
        clinical: Optional outputs (RT Structure Set, statistics, preview); default none.
        uncertainty_reference: JSON file of
            :func:`~sepnet_core.clinical.statistics.save_uncertainty_reference` for the statistics' flag
            (read before inference; replaces ``clinical.reference``).

    Returns:
        ``out_dir`` as a Path.

    Raises:
        FileNotFoundError: The input, a checkpoint or the reference file does not exist.
        SepNetInputError: Unsupported or invalid input or reference (one line naming it), or an RT
            Structure Set requested for NIfTI input.
        CheckpointError: A checkpoint is corrupt, unsafe or of a newer format.
        SepNetError: ``out_dir`` holds outputs and ``force`` is false, or the device is unavailable.
    """
    from sepnet_core.clinical.outputs import write_clinical_outputs
    from sepnet_core.clinical.report import (
        checkpoint_entry,
        device_description,
        package_versions,
        timestamp,
    )
    from sepnet_core.data.io import write_image
    from sepnet_core.fileio import write_json_atomic
    from sepnet_core.inference.ensemble import member_patch_size, predict_case
    from sepnet_core.inference.sliding import DEFAULT_OVERLAP
    from sepnet_core.training.checkpoint import load_model
    from sepnet_core.training.distributed import pick_device

    start = time.perf_counter()
    input_path, out_dir = Path(input_path), Path(out_dir)
    checkpoints = [Path(c) for c in checkpoints]
    clinical = clinical or ClinicalOptions()
    if not checkpoints:
        raise SepNetError("no checkpoint given (-m CKPT [CKPT ...])")
    _check_out_dir(out_dir, force)
    try:
        torch_device = pick_device(device)
    except ValueError as exc:
        raise SepNetError(str(exc)) from None
    for ckpt in checkpoints:
        if not ckpt.is_file():
            raise FileNotFoundError(f"{ckpt}: checkpoint file does not exist")
    if uncertainty_reference is not None:
        from sepnet_core.clinical.statistics import load_uncertainty_reference

        clinical = dataclasses.replace(clinical, reference=load_uncertainty_reference(uncertainty_reference))

    volume = read_input(input_path, series_uid)
    if clinical.rtstruct and volume.dicom is None:
        raise SepNetInputError(f"{input_path}: --rtstruct needs DICOM input (a folder or zip of the CT "
                               "series the structure set references); this is "
                               f"{INPUT_READERS[volume.kind].description}")
    logger.info("read %s (%s): %s voxels (z, y, x), spacing %s mm", input_path, volume.kind,
                volume.image.shape, volume.geometry.spacing_mm)
    members = [load_model(ckpt, device=torch_device) for ckpt in checkpoints]
    result = predict_case(members, volume.image, overlap=overlap, mode=mode, batch_size=batch_size)
    if not clinical.needs_image:  # free the CT
        volume = InputVolume(volume.kind, volume.path, np.empty(0, np.float32), volume.geometry, volume.dicom)
    single = result.num_members == 1
    kind = "predictive_entropy" if single else "vote_entropy"
    uncertainty = result.predictive_entropy if single else result.vote_entropy
    predict_s = time.perf_counter() - start

    effective_overlap = (overlap if overlap is not None else DEFAULT_OVERLAP) if mode == "gaussian" else None
    report: dict[str, Any] = {
        "sepnet_version": __version__,
        "created": timestamp(),
        "input": {"path": str(input_path.resolve()), "kind": volume.kind,
                  "geometry": volume.geometry.to_dict(),
                  "dicom": volume.dicom.to_dict() if volume.dicom is not None else None},
        "checkpoints": [checkpoint_entry(ckpt, m, member_patch_size(m))
                        for ckpt, m in zip(checkpoints, members, strict=True)],
        "inference": {"mode": mode, "overlap": effective_overlap, "batch_size": batch_size,
                      "device": str(torch_device), "fusion": "argmax of the mean probability"},
        "device": device_description(torch_device),
        "versions": package_versions(),
        "outputs": {
            "labels": LABELS_NAME,
            "uncertainty": UNCERTAINTY_NAME,
            "uncertainty_kind": kind,
            "uncertainty_note": (
                "single checkpoint: entropy of its softmax probabilities (nats)" if single else
                f"entropy of the votes of {result.num_members} members, -sum_c f_c ln f_c (nats)"
            ),
        },
        "warnings": [],
        "run_time_s": None,  # filled in below
    }

    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SepNetError(f"{out_dir.parent}: cannot create the output folder ({exc.strerror})") from None
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{secrets.token_hex(4)}"
    tmp.mkdir()
    try:
        write_image(tmp / LABELS_NAME, result.labels, volume.geometry, dtype=np.uint8)
        write_image(tmp / UNCERTAINTY_NAME, uncertainty, volume.geometry, dtype=np.float32)
        outputs, warnings = write_clinical_outputs(tmp, volume, result.labels, uncertainty, clinical,
                                                   uncertainty_kind=kind, num_members=result.num_members)
        report["outputs"].update(outputs)
        report["warnings"] = warnings
        total_s = time.perf_counter() - start
        report["run_time_s"] = {"predict": round(predict_s, 3), "total": round(total_s, 3)}
        write_json_atomic(tmp / REPORT_NAME, report)
        _check_out_dir(out_dir, force)  # outputs may have appeared meanwhile
        _publish(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("wrote %s in %.1f s", out_dir, time.perf_counter() - start)
    return out_dir


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not in [0, 1)")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not >= 1")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text} is not a finite number > 0")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``predict`` parser."""
    parser = subparsers.add_parser(
        "predict",
        help="segment a CT (NIfTI, DICOM folder or zip) with one or more checkpoints and map its uncertainty",
        description=(
            "Segment the 22 organs-at-risk of one CT (HU): a NIfTI file, a folder holding one DICOM CT "
            "series, or a zip of one. With several checkpoints the members' probabilities are averaged "
            "(each member uses its own intensity transform and in-plane crop). OUT_DIR receives "
            "labels.nii.gz (uint8, labels 0..22), uncertainty.nii.gz (float32, nats: vote entropy of the "
            "members, or the predictive entropy for a single checkpoint), both on the input's voxel grid, "
            "and report.json (checkpoints with SHA-256, versions, device, run time); optionally "
            "rtstruct.dcm (DICOM RT Structure Set), organ_statistics.json (organ volume in cm3 = ml, mean "
            "HU, mean uncertainty, high-uncertainty flag) with statistics.json (TotalSegmentator's schema: "
            "volume mm3, intensity HU) and preview.png."
        ),
        allow_abbrev=False,
    )
    parser.add_argument("input", type=Path, metavar="INPUT",
                        help="CT in HU: .nii.gz/.nii file, folder of one DICOM CT series, or .zip of one")
    parser.add_argument("-m", "--models", type=Path, nargs="+", required=True, metavar="CKPT",
                        help="checkpoint file(s) written by 'sepnet train' (e.g. RUN/best.pt); several "
                             "form an ensemble")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="OUT_DIR",
                        help="output folder (created; must not already hold outputs unless --force)")
    parser.add_argument("--series", default=None, metavar="UID",
                        help="SeriesInstanceUID to segment when the DICOM input holds several series "
                             "(default: the only series)")
    parser.add_argument("--rtstruct", action="store_true",
                        help="also write rtstruct.dcm, a DICOM RT Structure Set referencing the input "
                             "series, one ROI per organ found (DICOM input only; default: off)")
    parser.add_argument("--uncertainty-roi", type=_positive_float, default=None, metavar="NATS",
                        help="with --rtstruct, add an ROI of the voxels whose uncertainty exceeds NATS "
                             "(e.g. 0.5; default: none)")
    parser.add_argument("--statistics", action="store_true",
                        help="also write organ_statistics.json: per organ volume (cm3), mean HU, mean "
                             "uncertainty (nats) and a high-uncertainty flag, and statistics.json in "
                             "TotalSegmentator's schema (volume mm3, intensity HU) (default: off)")
    parser.add_argument("--uncertainty-reference", type=Path, default=None, metavar="FILE",
                        help="JSON of per-organ uncertainty thresholds from held-out cases (the book's "
                             "ensemble stage) for the flag of --statistics (default: none, flag null)")
    parser.add_argument("--preview", action="store_true",
                        help="also write preview.png: axial, coronal and sagittal slices with labels and "
                             "uncertainty (default: off)")
    parser.add_argument("--device", choices=DEVICES, default="auto",
                        help="where the networks run: auto = cuda, then mps, then cpu (default: auto)")
    parser.add_argument("--mode", choices=("gaussian", "reference"), default="gaussian",
                        help="sliding window: 'gaussian' = windows of each checkpoint's training patch "
                             "blended with Gaussian weights; 'reference' = the reference code's slabs "
                             "(as many slices as the training patch, 16 in the paper) of the whole in-plane "
                             "crop, stride 2 slices, summed softmax (default: gaussian)")
    parser.add_argument("--overlap", type=_fraction, default=None, metavar="FRACTION",
                        help="fraction of a window shared with its neighbour, 0 <= f < 1, gaussian mode "
                             "only (default: 0.5)")
    parser.add_argument("--batch-size", type=_positive_int, default=1, metavar="N",
                        help="windows per forward pass; larger is faster on a GPU and needs more memory, "
                             "the result is the same up to rounding (default: 1)")
    parser.add_argument("--force", action="store_true",
                        help="replace the outputs of an earlier run in OUT_DIR (" + ", ".join(OUTPUT_NAMES)
                             + "); other files are kept (default: refuse)")
    parser.set_defaults(func=run, _parser=parser)


def run(args: argparse.Namespace) -> int:
    """Run ``sepnet predict``; prints where the outputs are. Returns 0."""
    if args.overlap is not None and args.mode != "gaussian":
        args._parser.error("--overlap applies to --mode gaussian only (reference mode uses stride 2 slices)")
    if args.uncertainty_roi is not None and not args.rtstruct:
        args._parser.error("--uncertainty-roi applies with --rtstruct only")
    if args.uncertainty_reference is not None and not args.statistics:
        args._parser.error("--uncertainty-reference applies with --statistics only")
    clinical = ClinicalOptions(rtstruct=args.rtstruct, uncertainty_roi=args.uncertainty_roi,
                               statistics=args.statistics, preview=args.preview)
    out_dir = predict_to_folder(args.input, args.models, args.output, device=args.device,
                                overlap=args.overlap, mode=args.mode, batch_size=args.batch_size,
                                force=args.force, series_uid=args.series, clinical=clinical,
                                uncertainty_reference=args.uncertainty_reference)
    written = [name for name in OUTPUT_NAMES if (out_dir / name).exists()]
    print(f"wrote {', '.join(written)} into {out_dir}")
    return 0

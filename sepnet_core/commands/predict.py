"""``sepnet predict``: segment one CT volume with one or more checkpoints (an ensemble).

Writes into ``OUT_DIR``, all on the input's exact voxel grid (shape, spacing, origin, direction and
voxel order of the input file):

* ``labels.nii.gz``: uint8 labels 0..22 (argmax of the members' mean probability);
* ``uncertainty.nii.gz``: float32, nats: the members' vote entropy (the paper's), or for a single
  checkpoint the predictive entropy of its probabilities (``summary.json`` says which);
* ``summary.json``: input, checkpoints (with SHA-256), settings, device, run time, package version and
  per organ its volume (ml) and mean uncertainty.

All-or-nothing: the files are written into a hidden temporary sibling folder that is renamed to
``OUT_DIR`` at the end (or whose files are moved into an existing ``OUT_DIR``), so a failure leaves no
partial output. An ``OUT_DIR`` that already holds any of the outputs is refused unless ``--force``.

Inputs are read by :data:`INPUT_READERS` (kind -> recogniser and reader); a new input kind such as a
DICOM folder is one more entry there.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sepnet_core import __version__
from sepnet_core.errors import SepNetError, SepNetInputError
from sepnet_core.fileio import sha256_file

__all__ = ["OUTPUT_NAMES", "INPUT_READERS", "InputReader", "read_input", "predict_to_folder", "register",
           "run"]

logger = logging.getLogger(__name__)

LABELS_NAME = "labels.nii.gz"
UNCERTAINTY_NAME = "uncertainty.nii.gz"
SUMMARY_NAME = "summary.json"
OUTPUT_NAMES: tuple[str, ...] = (LABELS_NAME, UNCERTAINTY_NAME, SUMMARY_NAME)
"""Files ``sepnet predict`` writes into its output folder."""

DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda", "mps")
_NIFTI_SUFFIXES = (".nii.gz", ".nii")


@dataclass(frozen=True)
class InputReader:
    """One kind of input: ``accepts(path)`` recognises it, ``read(path)`` gives (HU (z, y, x), Geometry)."""

    description: str
    accepts: Callable[[Path], bool]
    read: Callable[[Path], tuple[np.ndarray, Any]]


def _read_nifti(path: Path) -> tuple[np.ndarray, Any]:
    from sepnet_core.data.io import read_image

    return read_image(path)


INPUT_READERS: dict[str, InputReader] = {
    "nifti": InputReader("a NIfTI file (.nii.gz or .nii) of CT in HU",
                         lambda p: p.is_file() and p.name.lower().endswith(_NIFTI_SUFFIXES), _read_nifti),
}
"""Input kinds, tried in order; the first whose ``accepts`` is true reads the input."""


def read_input(path: str | os.PathLike[str]) -> tuple[str, np.ndarray, Any]:
    """Read a CT input with the first matching reader of :data:`INPUT_READERS`.

    Returns:
        ``(kind, image, geometry)``: the reader's name, float32 HU (z, y, x) and its Geometry.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        SepNetInputError: no reader accepts it (the message lists the supported kinds), or it is invalid.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: input does not exist")
    for kind, reader in INPUT_READERS.items():
        if reader.accepts(path):
            image, geometry = reader.read(path)
            return kind, image, geometry
    kinds = "; ".join(r.description for r in INPUT_READERS.values())
    raise SepNetInputError(f"{path}: unsupported input; expected {kinds}")


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
    """Move the finished files of ``tmp`` to ``out_dir``: one rename if it is new, else file by file."""
    if not out_dir.exists():
        try:
            os.rename(tmp, out_dir)
            return
        except OSError:
            if not out_dir.is_dir():
                raise
    for name in OUTPUT_NAMES:
        os.replace(tmp / name, out_dir / name)


def _organ_summary(labels: np.ndarray, uncertainty: np.ndarray, spacing_mm: Sequence[float]) -> dict:
    from sepnet_core.inference.uncertainty import organ_uncertainty
    from sepnet_core.organs import NUM_CLASSES, ORGANS

    voxel_ml = float(np.prod(spacing_mm)) / 1000.0
    counts = np.bincount(labels.ravel(), minlength=NUM_CLASSES)
    means = organ_uncertainty(labels, uncertainty)
    return {
        o.key: {
            "label": o.label,
            "name": o.name,
            "voxels": int(counts[o.label]),
            "volume_ml": float(counts[o.label] * voxel_ml),
            "mean_uncertainty": None if np.isnan(means[o.key]) else means[o.key],
        }
        for o in ORGANS
    }


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
) -> Path:
    """Segment one CT input with an ensemble and write labels, uncertainty and summary (see module doc).

    Args:
        input_path: CT input (see :data:`INPUT_READERS`).
        checkpoints: One or more checkpoint files (``best.pt`` of ``sepnet train`` runs).
        out_dir: Output folder (created; its parent folders too).
        device: "auto" (cuda, then mps, then cpu), "cpu", "cuda" or "mps".
        overlap: Sliding-window overlap in "gaussian" mode (default 0.5).
        mode: "gaussian" (windows of each checkpoint's training patch) or "reference" (slabs of the
            training patch's depth, 16 slices in the paper, stride 2 slices, summed softmax).
        batch_size: Windows per forward pass (speed and memory only; same result up to rounding).
        force: Replace outputs already in ``out_dir``.

    Returns:
        ``out_dir`` as a Path.

    Raises:
        FileNotFoundError: The input or a checkpoint does not exist.
        SepNetInputError: Unsupported or invalid input.
        CheckpointError: A checkpoint is corrupt, unsafe or of a newer format.
        SepNetError: ``out_dir`` holds outputs and ``force`` is false, or the device is unavailable.
    """
    from sepnet_core.data.io import write_image
    from sepnet_core.fileio import write_json_atomic
    from sepnet_core.inference.ensemble import member_patch_size, predict_case
    from sepnet_core.inference.sliding import DEFAULT_OVERLAP
    from sepnet_core.training.checkpoint import load_model
    from sepnet_core.training.distributed import pick_device

    start = time.perf_counter()
    input_path, out_dir = Path(input_path), Path(out_dir)
    checkpoints = [Path(c) for c in checkpoints]
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

    kind, image, geometry = read_input(input_path)
    logger.info("read %s (%s): %s voxels (z, y, x), spacing %s mm", input_path, kind, image.shape,
                geometry.spacing_mm)
    members = [load_model(ckpt, device=torch_device) for ckpt in checkpoints]
    result = predict_case(members, image, overlap=overlap, mode=mode, batch_size=batch_size)
    del image
    single = result.num_members == 1
    effective_overlap = (overlap if overlap is not None else DEFAULT_OVERLAP) if mode == "gaussian" else None
    uncertainty = result.predictive_entropy if single else result.vote_entropy
    predict_s = time.perf_counter() - start

    summary = {
        "sepnet_version": __version__,
        "input": {"path": str(input_path.resolve()), "kind": kind, "geometry": geometry.to_dict()},
        "checkpoints": [
            {
                "path": str(ckpt.resolve()),
                "sha256": sha256_file(ckpt),
                "model": m.model_config.to_dict(),
                "intensity": m.intensity.to_dict(),
                "crop_yx": list(m.crop_yx) if m.crop_yx is not None else None,
                "patch_size": list(member_patch_size(m)),
                "epoch": m.meta.get("epoch"),
                "best_metric": m.meta.get("best_metric"),
            }
            for ckpt, m in zip(checkpoints, members, strict=True)
        ],
        "inference": {"mode": mode, "overlap": effective_overlap, "batch_size": batch_size,
                      "device": str(torch_device), "fusion": "argmax of the mean probability"},
        "outputs": {
            "labels": LABELS_NAME,
            "uncertainty": UNCERTAINTY_NAME,
            "uncertainty_kind": "predictive_entropy" if single else "vote_entropy",
            "uncertainty_note": (
                "single checkpoint: entropy of its softmax probabilities (nats)" if single else
                f"entropy of the votes of {result.num_members} members, -sum_c f_c ln f_c (nats)"
            ),
        },
        "organs": _organ_summary(result.labels, uncertainty, geometry.spacing_mm),
        "run_time_s": None,  # filled in below
    }

    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SepNetError(f"{out_dir.parent}: cannot create the output folder ({exc.strerror})") from None
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{secrets.token_hex(4)}"
    tmp.mkdir()
    try:
        write_image(tmp / LABELS_NAME, result.labels, geometry, dtype=np.uint8)
        write_image(tmp / UNCERTAINTY_NAME, uncertainty, geometry, dtype=np.float32)
        total_s = time.perf_counter() - start
        summary["run_time_s"] = {"predict": round(predict_s, 3), "total": round(total_s, 3)}
        write_json_atomic(tmp / SUMMARY_NAME, summary)
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


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``predict`` parser."""
    parser = subparsers.add_parser(
        "predict",
        help="segment a CT volume with one or more checkpoints (ensemble) and map its uncertainty",
        description=(
            "Segment the 22 organs-at-risk of one CT volume (NIfTI, HU). With several checkpoints the "
            "members' probabilities are averaged (each member uses its own intensity transform and "
            "in-plane crop). OUT_DIR receives labels.nii.gz (uint8, labels 0..22), uncertainty.nii.gz "
            "(float32, nats: vote entropy of the members, or the predictive entropy for a single "
            "checkpoint) and summary.json (checkpoints with SHA-256, organ volumes in ml, mean "
            "uncertainty per organ, run time), all on the input's voxel grid."
        ),
        allow_abbrev=False,
    )
    parser.add_argument("input", type=Path, metavar="INPUT", help="CT volume in HU (.nii.gz or .nii)")
    parser.add_argument("-m", "--models", type=Path, nargs="+", required=True, metavar="CKPT",
                        help="checkpoint file(s) written by 'sepnet train' (e.g. RUN/best.pt); several "
                             "form an ensemble")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="OUT_DIR",
                        help="output folder (created; must not already hold outputs unless --force)")
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
                        help="replace labels.nii.gz, uncertainty.nii.gz and summary.json already in "
                             "OUT_DIR (default: refuse)")
    parser.set_defaults(func=run, _parser=parser)


def run(args: argparse.Namespace) -> int:
    """Run ``sepnet predict``; prints where the outputs are. Returns 0."""
    if args.overlap is not None and args.mode != "gaussian":
        args._parser.error("--overlap applies to --mode gaussian only (reference mode uses stride 2 slices)")
    out_dir = predict_to_folder(args.input, args.models, args.output, device=args.device,
                                overlap=args.overlap, mode=args.mode, batch_size=args.batch_size,
                                force=args.force)
    print(f"wrote {out_dir / LABELS_NAME}, {out_dir / UNCERTAINTY_NAME} and {out_dir / SUMMARY_NAME}")
    return 0

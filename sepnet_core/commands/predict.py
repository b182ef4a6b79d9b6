"""``sepnet predict``: segment CTs (NIfTI, or DICOM series as folders or zips) with an ensemble.

Writes into ``OUT_DIR`` (one input) or ``OUT_DIR/<case>/`` (several inputs, or a folder of cases: NIfTI
files or StructSeg case folders), all volumes on the input's exact voxel grid (shape, spacing, origin,
direction and voxel order of the input file or series):

* ``labels.nii.gz``: uint8 labels 0..22 (argmax of the members' mean probability);
* ``uncertainty.nii.gz``: float32, nats: the members' vote entropy (the paper's), or for a single
  checkpoint the predictive entropy of its probabilities (``report.json`` says which);
* ``report.json``: input, checkpoints (SHA-256, seed, config hash), settings (device, amp, window batch),
  package versions, device, run time;
* with ``--rtstruct`` (DICOM input only): ``rtstruct.dcm``, a DICOM RT Structure Set referencing the
  input series, one ROI per organ found (plus, with ``--uncertainty-roi T``, the voxels above T nats);
* with ``--statistics``: ``organ_statistics.json``, per organ volume (cm3), mean HU, mean uncertainty and a
  high-uncertainty flag against ``--uncertainty-reference`` (see :mod:`sepnet_core.clinical.statistics`),
  and ``statistics.json``, per organ volume (mm3) and intensity (mean HU) in TotalSegmentator's schema;
* with ``--preview``: ``preview.png``, axial/coronal/sagittal views with labels and uncertainty;
* with ``--save-probabilities``: ``probabilities.npz``, the mean probability (class, z, y, x) float16;
* with ``--masks``: ``masks/<organ>.nii.gz``, one uint8 0/1 file per organ (named from the organ table).

The checkpoints are loaded once for all cases. All-or-nothing: see
:mod:`sepnet_core.commands.predict_outputs`. Progress: a tqdm bar over windows (and cases) on stderr when
stderr is a terminal, off with ``--quiet``; the library entry point is :func:`sepnet_core.inference.segment`.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from sepnet_core.clinical.outputs import ClinicalOptions
from sepnet_core.commands.predict_outputs import OUTPUT_NAMES, expand_inputs, predict_cases, predict_to_folder
from sepnet_core.data.inputs import INPUT_READERS, InputReader, InputVolume, read_input
from sepnet_core.device import parse_device
from sepnet_core.organs import ORGANS

__all__ = ["OUTPUT_NAMES", "INPUT_READERS", "InputReader", "InputVolume", "read_input", "expand_inputs",
           "predict_cases", "predict_to_folder", "register", "run"]

CHECKPOINT_SUFFIXES: tuple[str, ...] = (".pt", ".pth")
"""File endings ``-m`` accepts (so that ``-m a.pt ct.nii.gz`` cannot take the CT for a checkpoint)."""


def _device(text: str) -> str:
    try:
        return parse_device(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _checkpoint(text: str) -> Path:
    if not text.lower().endswith(CHECKPOINT_SUFFIXES):
        raise argparse.ArgumentTypeError(
            f"{text}: not a checkpoint file name (.pt or .pth); give the CT with -i INPUT or before -m")
    return Path(text)


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
        help="segment CTs (NIfTI, DICOM folder or zip, or a folder of cases) with one or more checkpoints "
             "and map their uncertainty",
        description=(
            "Segment the 22 organs-at-risk of CTs (HU): NIfTI files, folders holding one DICOM CT series, "
            "zips of one, or a folder of cases (NIfTI files or StructSeg case folders with data.nii.gz). "
            "The checkpoints are loaded once. With several checkpoints the members' probabilities are "
            "averaged (each member uses its own intensity transform and in-plane crop). OUT_DIR (one "
            "input) or OUT_DIR/<case>/ (several) receives labels.nii.gz (uint8, labels 0..22), "
            "uncertainty.nii.gz (float32, nats: vote entropy of the members, or the predictive entropy "
            "for a single checkpoint), both on the input's voxel grid, and report.json (checkpoints with "
            "SHA-256, settings, versions, device, run time); optionally rtstruct.dcm (DICOM RT Structure "
            "Set), organ_statistics.json (organ volume in cm3 = ml, mean HU, mean uncertainty, "
            "high-uncertainty flag) with statistics.json (TotalSegmentator's schema: volume mm3, intensity "
            "HU), preview.png, probabilities.npz and masks/<organ>.nii.gz. A progress "
            "bar is shown on stderr when it is a terminal (not with --quiet)."
        ),
        allow_abbrev=False,
    )
    parser.add_argument("inputs", type=Path, nargs="*", metavar="INPUT",
                        help="CT in HU: .nii.gz/.nii file, folder of one DICOM CT series, .zip of one, or a "
                             "folder of cases (same as -i)")
    parser.add_argument("-i", "--input", dest="more_inputs", type=Path, nargs="+", action="extend",
                        default=[], metavar="INPUT", help="input(s), as the positional INPUT")
    parser.add_argument("-m", "--models", type=_checkpoint, nargs="+", required=True, metavar="CKPT",
                        help="checkpoint file(s) (.pt or .pth) written by 'sepnet train' (e.g. RUN/best.pt); "
                             "several form an ensemble")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="OUT_DIR",
                        help="output folder (created; must not already hold outputs unless --force); one "
                             "subfolder per case for several inputs or a folder of cases")
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
    parser.add_argument("--save-probabilities", action="store_true",
                        help="also write probabilities.npz: the mean probability, array 'probabilities' "
                             "float16 (class, z, y, x), 23 classes (default: off)")
    parser.add_argument("--masks", action="store_true",
                        help="also write masks/<organ>.nii.gz: one uint8 0/1 file per organ, named from the "
                             "organ table (default: off)")
    parser.add_argument("--roi-subset", nargs="+", choices=[o.key for o in ORGANS], default=None,
                        metavar="ORGAN",
                        help="keep only these organs in labels, masks and statistics (others are "
                             "background); organ keys: " + ", ".join(o.key for o in ORGANS)
                             + " (default: all)")
    parser.add_argument("--device", type=_device, default="auto", metavar="{auto,cpu,cuda,cuda:N,mps}",
                        help="where the networks run: auto = cuda, then mps, then cpu (default: auto)")
    parser.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                        help="bfloat16 autocast (--amp) or float32 (--no-amp); default: bf16 on CUDA GPUs "
                             "with bf16 and on CPUs with native bf16 (AVX512-BF16 or AMX), float32 "
                             "elsewhere; the same rule as training's validation")
    parser.add_argument("--mode", choices=("gaussian", "reference"), default="gaussian",
                        help="sliding window: 'gaussian' = windows of each checkpoint's training patch "
                             "blended with Gaussian weights; 'reference' = the reference code's slabs "
                             "(as many slices as the training patch, 16 in the paper) of the whole in-plane "
                             "crop, stride 2 slices, summed softmax (default: gaussian)")
    parser.add_argument("--overlap", type=_fraction, default=None, metavar="FRACTION",
                        help="fraction of a window shared with its neighbour, 0 <= f < 1, gaussian mode "
                             "only (default: 0.5)")
    parser.add_argument("--batch-size", type=_positive_int, default=None, metavar="N",
                        help="windows per forward pass; larger is faster on a GPU and needs more memory, "
                             "the result is the same up to rounding (default: 1 on the CPU, 4 on a GPU)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar (default: a bar on "
                        "stderr when it is a terminal)")
    parser.add_argument("--force", action="store_true",
                        help="replace the outputs of an earlier run in OUT_DIR (" + ", ".join(OUTPUT_NAMES)
                             + "); other files are kept (default: refuse)")
    parser.set_defaults(func=run, _parser=parser)


def run(args: argparse.Namespace) -> int:
    """Run ``sepnet predict``; prints where the outputs are. Returns 0."""
    import sys

    inputs = [*args.inputs, *args.more_inputs]
    if not inputs:
        args._parser.error("no input given: INPUT or -i INPUT")
    if args.overlap is not None and args.mode != "gaussian":
        args._parser.error("--overlap applies to --mode gaussian only (reference mode uses stride 2 slices)")
    if args.uncertainty_roi is not None and not args.rtstruct:
        args._parser.error("--uncertainty-roi applies with --rtstruct only")
    if args.uncertainty_reference is not None and not args.statistics:
        args._parser.error("--uncertainty-reference applies with --statistics only")
    clinical = ClinicalOptions(rtstruct=args.rtstruct, uncertainty_roi=args.uncertainty_roi,
                               statistics=args.statistics, preview=args.preview)
    folders = predict_cases(inputs, args.models, args.output, device=args.device, amp=args.amp,
                            overlap=args.overlap, mode=args.mode, batch_size=args.batch_size,
                            force=args.force,
                            series_uid=args.series, clinical=clinical,
                            uncertainty_reference=args.uncertainty_reference, roi_subset=args.roi_subset,
                            save_probabilities=args.save_probabilities, masks=args.masks,
                            progress=not args.quiet and sys.stderr.isatty())
    if len(folders) == 1 and folders[0] == args.output:
        written = [name for name in OUTPUT_NAMES if (args.output / name).exists()]
        print(f"wrote {', '.join(written)} into {args.output}")
    else:
        print(f"wrote {len(folders)} case folder(s) into {args.output}: {', '.join(f.name for f in folders)}")
    return 0

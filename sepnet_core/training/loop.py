"""The training loop: ``fit(config, out_dir)`` trains one network and leaves a self-describing run folder.

A run folder holds ``config.json`` (the :class:`~sepnet_core.training.config.TrainConfig`), ``log.csv``
(one row per epoch: epoch, step, lr, train_loss, val_mean_dice, val_weighted_dice, dice_<organ> x 22,
seconds), ``last.pt`` (end of the latest epoch), ``best.pt`` (best validation score so far) and, once
the run has finished, ``summary.json`` (seed, config hash, versions, device, best epoch, wall time; see
:mod:`sepnet_core.training.summary`). With ``prior_scale_max > 0`` the finished run's ``best.pt`` is
prior-corrected once, after the last epoch, and ``prior_correction.json`` records how
(:mod:`sepnet_core.training.prior`; its ``best_metric`` is then the corrected network's validation).

The loop reads top to bottom, as in nanoGPT: set up (folder, device, seeds, data, model, optimiser,
resume), then per epoch: ``iterations_per_epoch`` Adam steps on random patches, the learning-rate
schedule (:mod:`sepnet_core.training.schedule`: per step or per epoch), whole-volume validation at the
epochs of :func:`~sepnet_core.training.config.validation_epochs`, checkpoint, log row. ``resume=True``
restores the model, optimiser, scheduler, every random state, the step counter and the best score from
``last.pt`` and truncates the log to that step, so on CPU a stopped-and-resumed run ends with exactly
the weights of an uninterrupted one (CPU runs use ``torch.use_deterministic_algorithms``). Nothing is
written before the run folder, the data and the checkpoint to resume from have been checked, so a run
refused for bad input leaves its folder untouched. Under ``torchrun`` the model is wrapped in
DistributedDataParallel, the configured batch is split over the ranks and only rank 0 validates and
writes (see :mod:`sepnet_core.training.distributed`).

Keeping a GPU busy (none of it changes a CPU run's numbers): the next batch is cut on a background
thread into pinned memory and uploaded with non-blocking copies (:mod:`sepnet_core.training.batches`,
same batches in the same order); labels are range-checked once per case by the sampler, so the loss
skips its per-step check (a host-device synchronisation); on CUDA ``cudnn.benchmark`` is on (the
patch shape is fixed; CUDA runs are not bit-reproducible anyway), the model is converted to
``channels_last_3d`` once and Adam is the fused kernel; ``compile=true`` trains through
``torch.compile``. The loss is read back once per epoch (every step only with a progress bar on a
terminal).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from sepnet_core.data.sampling import PatchSampler
from sepnet_core.errors import SepNetError
from sepnet_core.fileio import is_temporary, write_text_atomic
from sepnet_core.intensity import get_intensity
from sepnet_core.losses import build_loss, labels_prechecked
from sepnet_core.training import distributed as D
from sepnet_core.training.batches import BatchStream
from sepnet_core.training.checkpoint import load_checkpoint, save_checkpoint, unwrap
from sepnet_core.training.config import TrainConfig, validation_epochs
from sepnet_core.training.data import AIR_HU, load_split
from sepnet_core.training.precision import use_bf16, validation_amp
from sepnet_core.training.prior import PRIOR_FILE, correct_checkpoint
from sepnet_core.training.schedule import build_schedule
from sepnet_core.training.seeding import deterministic_algorithms, rng_state, seed_everything, set_rng_state
from sepnet_core.training.summary import SUMMARY_NAME, write_summary
from sepnet_core.training.validation import metric_names, validate

__all__ = ["fit", "RUN_FILES", "RESUMABLE_KEYS", "LOG_COLUMNS"]

logger = logging.getLogger(__name__)

RUN_FILES: tuple[str, ...] = ("config.json", "log.csv", "last.pt", "best.pt", PRIOR_FILE, SUMMARY_NAME)
"""Files a run folder holds (``summary.json`` only once the run has finished; ``prior_correction.json``
only with ``prior_scale_max > 0``, once ``best.pt`` has been corrected after the last epoch)."""
RESUMABLE_KEYS: tuple[str, ...] = (
    "epochs", "device", "amp", "validate_every", "val_points", "data.data_root", "compile",
    "dist_timeout_s", "prior_scale_max", "prior_scale_step",
)
"""Config keys that may differ between a stopped run and its resumption (e.g. to extend a run)."""
LOG_COLUMNS: tuple[str, ...] = (
    "epoch", "step", "lr", "train_loss", "val_mean_dice", "val_weighted_dice", *metric_names()[2:], "seconds"
)
"""Columns of ``log.csv``."""

Callback = Callable[[dict[str, Any]], None]


def loss_options(config: TrainConfig) -> dict[str, Any]:
    """Keyword options of :func:`~sepnet_core.losses.build_loss` for ``config.loss``."""
    options: dict[str, Any] = {}
    if config.loss == "ath":
        options["alpha"] = config.alpha
    if config.loss in ("ath", "explog"):
        options["background"] = config.loss_background
        options["dice_weighting"] = config.dice_weighting
    return options


def fit(
    config: TrainConfig,
    out_dir: str | os.PathLike[str],
    resume: bool = False,
    force: bool = False,
    callback: Callback | None = None,
) -> Path:
    """Train a network as ``config`` says and write the run folder ``out_dir``.

    Args:
        config: The run's configuration.
        out_dir: Run folder; created if missing. A new run refuses a folder that already holds run
            files unless ``force`` (which replaces them) or ``resume``.
        resume: Continue from ``out_dir/last.pt`` (a folder without ``last.pt`` starts from scratch).
            ``config`` must equal the saved ``config.json`` except for :data:`RESUMABLE_KEYS`.
        force: Start a new run even if ``out_dir`` holds an earlier run's files.
        callback: Called on every rank after each epoch with ``{"epoch", "step", "row" (the log
            row), "model" (the plain network), "rank", "out_dir"}``; raising in it stops training
            (the epoch's checkpoint is already written).

    Returns:
        Path of ``best.pt`` (the checkpoint with the best validation ``config.select_by`` score; the
        last epoch's if there is no validation split).

    Raises:
        SepNetError: run folder conflicts (existing run without ``resume``/``force``, config differs
            on resume, a path below a file), an unavailable device; data errors from
            :mod:`sepnet_core.data.io`; CheckpointError for a bad ``last.pt``. In each case the run
            folder is left as it was.
    """
    info = D.init_distributed(config.device, timeout_s=config.dist_timeout_s)
    benchmark = torch.backends.cudnn.benchmark
    try:
        try:
            device = D.pick_device(config.device, info.local_rank)
        except ValueError as exc:
            raise SepNetError(f"device: {exc}") from None
        try:
            D.per_rank_batch(config.batch_size, info.world_size)
        except ValueError as exc:
            raise SepNetError(f"batch_size: {exc}") from None
        # CPU kernels have deterministic variants at no real cost: demand them (warn if an op has none).
        # On CUDA (not deterministic unless the caller asked, see seeding.deterministic_algorithms) let
        # cuDNN time its convolution algorithms once per shape: the patch shape never changes in training.
        deterministic = torch.are_deterministic_algorithms_enabled()
        torch.backends.cudnn.benchmark = device.type == "cuda" and not deterministic
        with deterministic_algorithms(device.type == "cpu"):
            return _fit(config, Path(out_dir), resume, force, callback, info, device)
    finally:
        torch.backends.cudnn.benchmark = benchmark
        D.close_distributed(info)


# -------------------------------------------------------------------------------------- run folder
def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in d.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _config_change(saved: dict[str, Any], config: TrainConfig, source: Path) -> None:
    """Raise if ``config`` differs from a saved config dict in a key outside :data:`RESUMABLE_KEYS`."""
    before, after = _flatten(saved), _flatten(config.to_dict())
    if before.get("num_workers") == 0:  # the removed no-op key of older runs (config._legacy_num_workers)
        del before["num_workers"]
    differ = sorted(k for k in set(before) | set(after)
                    if k not in RESUMABLE_KEYS and before.get(k) != after.get(k))
    if differ:
        details = ", ".join(f"{k}: {before.get(k)!r} -> {after.get(k)!r}" for k in differ[:4])
        raise SepNetError(f"{source}: cannot resume with a different config ({details}); "
                          f"only {', '.join(RESUMABLE_KEYS)} may change")


def _check_run_dir(config: TrainConfig, out: Path, resume: bool, force: bool) -> None:
    """Refuse a run folder that breaks the rules of :func:`fit`; writes nothing.

    Raises:
        SepNetError: the path (or a parent) is a file, the folder holds a run and neither ``resume``
            nor ``force`` is given, or ``config`` differs from the saved ``config.json`` on resume.
    """
    if out.exists() and not out.is_dir():
        raise SepNetError(f"{out}: the run folder path exists and is not a folder")
    ancestor = next((p for p in out.absolute().parents if p.exists()), None)
    if ancestor is not None and not ancestor.is_dir():
        raise SepNetError(f"{out}: cannot create the run folder ({ancestor} is a file, not a folder)")
    present = [name for name in RUN_FILES if (out / name).exists()]
    config_path = out / "config.json"
    if resume and config_path.exists():
        try:
            saved = json.loads(config_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise SepNetError(f"{config_path}: not a readable run config ({exc})") from None
        if not isinstance(saved, dict):
            raise SepNetError(f"{config_path}: not a run config (a JSON object is expected)")
        _config_change(saved, config, config_path)
    elif present and not resume and not force:
        raise SepNetError(f"{out}: already holds a run ({', '.join(present)}); "
                          "use --resume to continue it or --force to start over")


def _prepare_run_dir(config: TrainConfig, out: Path, resume: bool) -> None:
    """Create the folder, clear an earlier run (``force``) or a finished run's summary (``resume``),
    remove temporary files of a killed write, and write config.json. Call after :func:`_check_run_dir`."""
    out.mkdir(parents=True, exist_ok=True)
    stale = [SUMMARY_NAME] if resume else list(RUN_FILES)
    for name in stale:
        (out / name).unlink(missing_ok=True)
    for entry in out.iterdir():  # temporary files of a write interrupted by a kill
        if is_temporary(entry) and entry.is_file():
            entry.unlink()
    write_text_atomic(out / "config.json", config.to_json(), overwrite=True)


def _on_main(info: D.DistInfo, action: Callable[[], None]) -> None:
    """Run ``action`` on rank 0; if it fails, every rank raises (a one-line SepNetError under torchrun)."""
    error = None
    if info.is_main:
        try:
            action()
        except (SepNetError, OSError, ValueError) as exc:
            if not info.distributed:
                raise
            error = str(exc)
    error = D.broadcast_object(info, error)
    if error:
        raise SepNetError(error)


class _CsvLog:
    """``log.csv``: append one row per epoch; on resume drop rows after the checkpoint's step."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def truncate(self, step: int) -> None:
        if not self.path.exists():
            return
        with open(self.path, newline="", encoding="utf-8") as handle:
            rows = [r for r in csv.DictReader(handle) if self._complete(r) and int(r["step"]) <= step]
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=LOG_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        write_text_atomic(self.path, text.getvalue(), overwrite=True)

    @staticmethod
    def _complete(row: dict[str, Any]) -> bool:
        """False for a row cut short by a kill during its append (fewer fields, or no step)."""
        return None not in row and row.get(LOG_COLUMNS[-1]) not in (None, "") and \
            str(row.get("step", "")).isdigit()

    def append(self, row: dict[str, Any]) -> None:
        new = not self.path.exists()
        with open(self.path, "a", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=LOG_COLUMNS, lineterminator="\n")
            if new:
                writer.writeheader()
            writer.writerow(row)
            handle.flush()
            os.fsync(handle.fileno())


def _better(value: float, best: float) -> bool:
    return not math.isnan(value) and (math.isnan(best) or value > best)


# -------------------------------------------------------------------------------------------- fit
def _fit(config: TrainConfig, out: Path, resume: bool, force: bool, callback: Callback | None,
         info: D.DistInfo, device: torch.device) -> Path:
    # Nothing is written until the run folder, the data and the checkpoint to resume from have all
    # been checked: a run that fails on bad input leaves the folder as it was.
    started_at = time.perf_counter()
    # ---- run folder (rank 0 decides, every rank learns the outcome)
    _on_main(info, lambda: _check_run_dir(config, out, resume, force))

    # ---- seeds, model
    amp = use_bf16(config.amp, device)  # bf16 autocast (sepnet_core.training.precision)
    seed_everything(config.seed)
    model = config.model.build().to(device)  # identical initial weights on every rank
    if device.type == "cuda":  # once, so the fast path's per-call weight layout copies are no-ops
        model = model.to(memory_format=torch.channels_last_3d)
    if info.rank:
        torch.manual_seed(config.seed + 1_000_003 * info.rank)  # each rank its own dropout masks
    sampler_rng = np.random.default_rng([config.seed, info.rank])

    # ---- data: training cases on every rank, validation cases on rank 0
    intensity = get_intensity(config.intensity)
    train = load_split(config.data.data_root, config.data.train_split, intensity, config.data.crop_yx)
    valid: list = []  # rank 0 only; a bad validation case must stop every rank, not leave them waiting
    _on_main(info, lambda: valid.extend(load_split(config.data.data_root, config.data.valid_split, intensity,
                                                   config.data.crop_yx, required=False)))
    if info.is_main and not valid:
        logger.warning("no validation cases in %s/%s: best.pt will be the last epoch",
                       config.data.data_root, config.data.valid_split)
    sampler = PatchSampler(
        [c.image for c in train], [c.label for c in train], config.patch_size, mode=config.data.sampling,
        rng=sampler_rng, organ_fraction=config.data.organ_fraction, flip=config.data.augment_flip,
        pad_value=float(np.asarray(intensity(np.array([AIR_HU], dtype=np.float32)))[0]),
    )

    # ---- optimiser, schedule, loss
    # Fused Adam (one kernel for all parameters) on CUDA; CPU keeps the default, bit for bit as before.
    optimizer = torch.optim.Adam(model.parameters(), lr=config.optim.lr,
                                 weight_decay=config.optim.weight_decay,
                                 fused=True if device.type == "cuda" else None)
    scheduler = build_schedule(optimizer, config.optim, config.epochs * config.iterations_per_epoch)
    loss_fn = build_loss(config.loss, **loss_options(config))

    # ---- resume
    start_epoch, step, best = 0, 0, math.nan
    log = _CsvLog(out / "log.csv")
    resumed = resume and (out / "last.pt").exists()
    if resumed:
        ckpt = load_checkpoint(out / "last.pt")
        _config_change(ckpt["train_config"], config, out / "last.pt")
        model.load_state_dict(ckpt["model_state"])
        optimizer.load_state_dict(ckpt["optimizer_state"])
        scheduler.load_state_dict(ckpt["scheduler_state"])
        ranks = (ckpt["rng_state"] or {}).get("ranks", [])
        if len(ranks) == info.world_size:
            set_rng_state(ranks[info.rank], sampler_rng)
        else:
            logger.warning("last.pt holds random states of %d processes, this run has %d: the patch "
                           "sequence differs from an uninterrupted run", len(ranks), info.world_size)
            sampler.rng = np.random.default_rng([config.seed, info.rank, ckpt["step"]])
        start_epoch, step, best = int(ckpt["epoch"]), int(ckpt["step"]), float(ckpt["best_metric"])
        del ckpt

    # ---- run folder: everything checked, now write
    _on_main(info, lambda: _prepare_run_dir(config, out, resume))
    if resumed and info.is_main:
        log.truncate(step)
        logger.info("resumed %s at epoch %d, step %d", out, start_epoch, step)
    if info.distributed:
        model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    net = unwrap(model)
    forward = torch.compile(model) if config.compile else model
    per_rank = D.per_rank_batch(config.batch_size, info.world_size)

    # ---- epochs
    show = info.is_main and sys.stderr.isatty()
    validate_at = set(validation_epochs(config))
    for epoch in range(start_epoch, config.epochs):
        started = time.time()
        lr = optimizer.param_groups[0]["lr"]
        model.train()
        losses = []
        bar = tqdm(total=config.iterations_per_epoch, desc=f"epoch {epoch + 1}/{config.epochs}",
                   disable=not show, leave=False)
        # The next batch is cut (and pinned) on a background thread while this one trains; labels were
        # range-checked once per case by the sampler, so the loss skips its per-step device check.
        with BatchStream(sampler, per_rank, config.iterations_per_epoch, device) as batches, \
                labels_prechecked():
            for x, y in batches:
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                    logits = forward(x)
                loss = loss_fn(logits.float(), y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.after_step()  # per-step schedules (poly, cosine)
                step += 1
                losses.append(loss.detach())
                if show:  # a terminal only: .item() waits for the device
                    bar.update()
                    bar.set_postfix(loss=f"{loss.item():.4f}")
        bar.close()
        scheduler.after_epoch()  # per-epoch schedules (the paper's StepLR)
        train_loss = D.mean_over_ranks(info, torch.stack(losses).mean().item())

        # ---- validate (rank 0)
        last_epoch = epoch + 1 == config.epochs
        scores = {name: math.nan for name in metric_names()}
        if info.is_main and valid and (epoch + 1 in validate_at or last_epoch):
            with D.main_rank_threads(info):  # the other ranks only wait: use their cores
                scores = validate(net, valid, config.patch_size, mode=config.val_mode, device=device,
                                  amp=validation_amp(config.amp),  # the device's rule (sepnet_core.device)
                                  batch_size=config.batch_size, overlap=config.val_overlap)
        improved = _better(scores[config.select_by], best) or (not valid and info.is_main)
        if improved and valid:
            best = scores[config.select_by]

        # ---- checkpoint and log (rank 0), random states of every rank
        states = D.gather_objects(info, rng_state(sampler.rng))
        row = {"epoch": epoch + 1, "step": step, "lr": lr, "train_loss": train_loss,
               "val_mean_dice": scores["mean_dice"], "val_weighted_dice": scores["weighted_dice"],
               **{k: v for k, v in scores.items() if k.startswith("dice_")},
               "seconds": round(time.time() - started, 3)}
        if info.is_main:
            kwargs = dict(optimizer=optimizer, scheduler=scheduler, rng_state={"ranks": states},
                          epoch=epoch + 1, step=step, best_metric=best, val_metrics=scores)
            save_checkpoint(out / "last.pt", net, config, **kwargs)
            if improved:
                save_checkpoint(out / "best.pt", net, config, **kwargs)
            log.append(row)
            logger.info("epoch %d/%d step %d loss %.4f val %s %.4f%s", epoch + 1, config.epochs, step,
                        train_loss, config.select_by, scores[config.select_by], " (best)" if improved else "")
        D.barrier(info)
        if callback is not None:
            callback({"epoch": epoch + 1, "step": step, "row": row, "model": net, "rank": info.rank,
                      "out_dir": out})
    # ---- prior correction of best.pt (rank 0; once: a corrected checkpoint is left as it is)
    def correct() -> None:
        if not valid:
            return
        with D.main_rank_threads(info):
            record = correct_checkpoint(out / "best.pt", config, train, valid, device=device,
                                        amp=validation_amp(config.amp))
        logger.info("prior correction k = %g: validation mean_dice %.4f -> %.4f", record["scale"],
                    record["val_mean_dice_uncorrected"], record["val_mean_dice"])

    if config.prior_scale_max > 0:
        _on_main(info, correct)  # a failure stops every rank at once instead of leaving them waiting
    if info.is_main:
        write_summary(out, config, device=device, world_size=info.world_size, amp=amp,
                      resumed_from_epoch=start_epoch if resumed else None,
                      wall_time_s=time.perf_counter() - started_at)
    return out / "best.pt"


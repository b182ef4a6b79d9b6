"""Multi-process training with ``torchrun``: process group, devices and the helpers the loop needs.

``torchrun --nproc_per_node N -m sepnet_core.cli train ...`` (or ``--nnodes``/``--rdzv_*`` for several
machines) starts N copies of the command and sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR`` and ``MASTER_PORT``. :func:`init_distributed` reads them; without them (a plain run)
it returns a single-process :class:`DistInfo` and creates no process group.

Rules of the loop: the model is wrapped in ``DistributedDataParallel`` (gradients averaged over
ranks, so every rank keeps identical weights); each rank draws its own patches from a generator seeded
with ``(seed, rank)``; only rank 0 validates, logs and writes files, the others wait at a barrier.
Backend: NCCL on CUDA, gloo otherwise (CPU, also for tests).

The batch is global: ``TrainConfig.batch_size`` patches per optimiser step in all, ``batch_size / N``
on each of N ranks (:func:`per_rank_batch`; a size N does not divide is an error, not a silent change),
so the paper's batch of 4 stays 4 on 1, 2 or 4 GPUs. Each rank's loss is the mean over its own patches
and DDP averages the gradients over ranks, which is the mean over the global batch for the per-sample
Dice terms (the cross term's voxel-count normaliser is per rank, a small difference).

The process group gets an explicit timeout (``TrainConfig.dist_timeout_s``, default 2 h): NCCL's
default would abort the waiting ranks during a long rank-0 validation. ``torchrun`` sets
``OMP_NUM_THREADS=1``; while rank 0 validates alone the others only wait, so :func:`main_rank_threads`
lets rank 0 use every core this process may run on (``os.sched_getaffinity``) for that time.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from sepnet_core.device import pick_device  # re-exported at its old path

__all__ = [
    "DistInfo",
    "init_distributed",
    "close_distributed",
    "barrier",
    "gather_objects",
    "broadcast_object",
    "mean_over_ranks",
    "pick_device",
    "per_rank_batch",
    "main_rank_threads",
    "available_cores",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in a (possibly single-process) run.

    Attributes:
        rank: Global rank, 0..world_size-1.
        world_size: Number of processes.
        local_rank: Rank on this machine (selects the CUDA device).
        initialised: True when this module created the process group (close it with
            :func:`close_distributed`).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    initialised: bool = False

    @property
    def is_main(self) -> bool:
        """True on rank 0, the process that validates and writes."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True when more than one process takes part."""
        return self.world_size > 1


def per_rank_batch(batch_size: int, world_size: int) -> int:
    """Patches each rank draws per step so that all ranks together draw ``batch_size``.

    Raises:
        ValueError: ``world_size`` does not divide ``batch_size`` (the message says what would).
    """
    if world_size < 1 or batch_size < 1:
        raise ValueError(f"batch_size and world size must be >= 1, got {batch_size} and {world_size}")
    if batch_size % world_size:
        raise ValueError(f"batch_size={batch_size} (the global batch) is not divisible by the {world_size} "
                         f"processes; use a multiple of {world_size} or another number of processes")
    return batch_size // world_size


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask; ``os.cpu_count()`` where there is none)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


@contextmanager
def main_rank_threads(info: DistInfo) -> Iterator[int]:
    """Within the block, a distributed rank 0 uses :func:`available_cores` torch threads (restored after).

    Meant for work rank 0 does while the other ranks wait (validation): ``torchrun`` starts every rank
    with ``OMP_NUM_THREADS=1``. Single-process runs and other ranks keep their setting.

    Yields:
        The number of torch threads inside the block.
    """
    before = torch.get_num_threads()
    wanted = max(before, available_cores()) if info.distributed and info.is_main else before
    torch.set_num_threads(wanted)
    try:
        yield wanted
    finally:
        torch.set_num_threads(before)


def init_distributed(device_name: str = "auto", timeout_s: float = 7200.0) -> DistInfo:
    """Join the process group described by torchrun's environment variables, if any.

    Args:
        device_name: The config's device; "cuda" (or "auto" with CUDA present) selects NCCL and sets
            the current CUDA device to ``LOCAL_RANK``; otherwise gloo.
        timeout_s: How long a collective may wait (seconds) before the group fails.

    Returns:
        A :class:`DistInfo`; single-process (rank 0 of 1) when ``WORLD_SIZE`` is unset or 1.

    Raises:
        ValueError: malformed ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` values.
    """
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError:
        raise ValueError("RANK, WORLD_SIZE and LOCAL_RANK must be integers (as torchrun sets them)") from None
    if world <= 1:
        return DistInfo()
    if dist.is_initialized():  # the caller manages the group
        return DistInfo(dist.get_rank(), dist.get_world_size(), local, initialised=False)
    use_cuda = device_name == "cuda" or (device_name == "auto" and torch.cuda.is_available())
    backend = "nccl" if use_cuda else "gloo"
    if use_cuda:
        torch.cuda.set_device(local % torch.cuda.device_count())
    dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_s))
    logger.info("rank %d of %d joined the %s process group (timeout %g s)", rank, world, backend, timeout_s)
    return DistInfo(dist.get_rank(), dist.get_world_size(), local, initialised=True)


def close_distributed(info: DistInfo) -> None:
    """Destroy the process group if :func:`init_distributed` created it."""
    if info.initialised and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    """Wait for every rank (no-op in a single process)."""
    if info.distributed:
        dist.barrier()


def gather_objects(info: DistInfo, obj: Any) -> list[Any]:
    """``[obj of rank 0, obj of rank 1, ...]`` on every rank (``[obj]`` in a single process)."""
    if not info.distributed:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(info: DistInfo, obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (``obj`` itself in a single process)."""
    if not info.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def mean_over_ranks(info: DistInfo, value: float) -> float:
    """Average of ``value`` over all ranks (``value`` itself in a single process)."""
    if not info.distributed:
        return float(value)
    tensor = torch.tensor([float(value)], dtype=torch.float64)
    if dist.get_backend() == "nccl":
        tensor = tensor.cuda()
    dist.all_reduce(tensor)
    return float(tensor.item()) / info.world_size

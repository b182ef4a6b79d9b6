"""Training batches prepared one step ahead on a background thread, copied to the device without a stall.

:class:`BatchStream` yields exactly ``count`` batches of a :class:`~sepnet_core.data.sampling.PatchSampler`
as tensors on the training device. While the network computes step ``k``, one worker thread cuts the
patches of step ``k + 1`` (numpy crops and flips release the GIL for their copies) and, on CUDA, copies
them into page-locked (pinned) host memory, so that the upload is an asynchronous ``non_blocking`` copy
that overlaps the previous step's kernels instead of a blocking one.

Determinism: the worker is the only user of the sampler's generator and it prepares the batches strictly
in order (batch ``k + 1`` is submitted only after batch ``k`` was taken), so the stream gives the same
batches, in the same order, as ``count`` calls of ``sampler.batch(batch_size)`` in the main thread; and
since it never draws more than ``count`` batches, the generator's state after the stream (what a
checkpoint saves at the end of an epoch) is exactly the state after those calls. ``tests/test_batches.py``
checks both.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType

import torch

from sepnet_core.data.sampling import PatchSampler

__all__ = ["BatchStream"]


class BatchStream:
    """``count`` training batches ``(images (B, 1, D, H, W) float32, labels (B, D, H, W) int64)``.

    Use as a context manager (the worker thread is stopped on exit, also when the loop raises)::

        with BatchStream(sampler, batch_size=4, count=100, device=device) as batches:
            for images, labels in batches:
                ...

    Args:
        sampler: Source of patches; only this stream may draw from it while it runs.
        batch_size: Patches per batch.
        count: Number of batches; the stream draws exactly this many.
        device: Where the tensors are delivered.
        prefetch: Prepare the next batch on a background thread (False: in the calling thread, as a
            plain loop would).
    """

    def __init__(self, sampler: PatchSampler, batch_size: int, count: int, device: torch.device | str,
                 prefetch: bool = True) -> None:
        if batch_size < 1 or count < 0:
            raise ValueError(f"batch_size must be >= 1 and count >= 0, got {batch_size} and {count}")
        self.sampler, self.batch_size, self.count = sampler, int(batch_size), int(count)
        self.device = torch.device(device)
        self.pin = self.device.type == "cuda"
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="sepnet-batches") if prefetch else None

    def _host_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = self.sampler.batch(self.batch_size)
        x, y = torch.from_numpy(images), torch.from_numpy(labels)
        if self.pin:
            x, y = x.pin_memory(), y.pin_memory()
        return x, y

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        pending: Future | None = None
        for index in range(self.count):
            if self._pool is None:
                x, y = self._host_batch()
            else:
                if pending is None:
                    pending = self._pool.submit(self._host_batch)
                x, y = pending.result()
                pending = self._pool.submit(self._host_batch) if index + 1 < self.count else None
            yield x.to(self.device, non_blocking=self.pin), y.to(self.device, non_blocking=self.pin)

    def __enter__(self) -> BatchStream:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

"""Seeds and random-number-generator states (python, numpy, torch), for reproducible and resumable runs.

A training process has four sources of randomness: python's ``random``, numpy's global state, torch's
CPU (and CUDA) generators (weight initialisation, dropout) and the patch sampler's own
``numpy.random.Generator``. :func:`rng_state` captures all of them as plain values (lists, ints,
uint8 tensors) that ``torch.load(weights_only=True)`` accepts; :func:`set_rng_state` puts them back.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

__all__ = ["seed_everything", "rng_state", "set_rng_state", "deterministic_algorithms"]


def seed_everything(seed: int) -> None:
    """Seed python's ``random``, numpy's global generator and torch (CPU and all CUDA devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device


def rng_state(generator: np.random.Generator | None = None) -> dict[str, Any]:
    """The current states of python, numpy (global), torch and CUDA, and of ``generator`` if given.

    Returns:
        dict with keys "python" (list), "numpy_global" (list), "torch" (uint8 tensor), "cuda" (list of
        uint8 tensors, empty without CUDA) and "sampler" (the generator's ``bit_generator.state`` dict,
        or None). Only lists, dicts, ints, strings and tensors: safe for ``weights_only`` loading.
    """
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": [version, list(internal), gauss],
        "numpy_global": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "sampler": generator.bit_generator.state if generator is not None else None,
    }


def set_rng_state(state: dict[str, Any], generator: np.random.Generator | None = None) -> None:
    """Restore states captured by :func:`rng_state` (and the sampler's into ``generator``).

    CUDA states are restored only when CUDA is available and the device count matches.

    Raises:
        ValueError: ``state`` lacks a key or ``generator`` is given but the state has no sampler.
    """
    missing = [k for k in ("python", "numpy_global", "torch") if k not in state]
    if missing:
        raise ValueError(f"RNG state lacks key(s) {missing}")
    version, internal, gauss = state["python"]
    random.setstate((int(version), tuple(int(v) for v in internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy_global"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), int(pos), int(has_gauss), float(cached)))
    torch.set_rng_state(state["torch"].cpu())
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda])
    if generator is not None:
        if state.get("sampler") is None:
            raise ValueError("RNG state has no sampler state to restore")
        generator.bit_generator.state = state["sampler"]


@contextmanager
def deterministic_algorithms(enabled: bool = True) -> Iterator[bool]:
    """Run the body with ``torch.use_deterministic_algorithms(enabled, warn_only=True)``, then restore.

    With it on, torch picks deterministic kernels where it has a choice and warns (instead of silently
    varying) when an operation has none. :func:`sepnet_core.training.fit` turns it on for CPU runs,
    where the deterministic kernels cost nothing measurable; on CUDA it would also need
    ``CUBLAS_WORKSPACE_CONFIG`` and slower convolution algorithms, so GPU runs are reproducible only
    up to rounding. The previous global setting is restored on exit (notebooks keep theirs).

    Yields:
        Whether deterministic algorithms are on inside the body.
    """
    previous = (torch.are_deterministic_algorithms_enabled(),
                torch.is_deterministic_algorithms_warn_only_enabled())
    if enabled:
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])

"""Suite-wide test hygiene."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """Tests that pin ``torch.set_num_threads(1)`` (exact-equality checks) leave the thread count as they
    found it: later tests' float32 rounding depends on it (oneDNN picks other kernels at one thread)."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)

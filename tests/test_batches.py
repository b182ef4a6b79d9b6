"""The busy training loop's parts: prefetched batches equal the plain ones, label checks on the host,
the DDP batch rule and rank 0's validation threads (no GPU needed)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sepnet_core.data.sampling import PatchSampler
from sepnet_core.losses import build_loss, labels_prechecked
from sepnet_core.training import distributed as D
from sepnet_core.training.batches import BatchStream


def make_sampler(seed: int, mode: str = "organ") -> PatchSampler:
    data = np.random.default_rng(42)
    volumes = [data.random((12, 20, 24), dtype=np.float32) for _ in range(3)]
    labels = [data.integers(0, 23, size=v.shape).astype(np.uint8) for v in volumes]
    return PatchSampler(volumes, labels, (8, 16, 16), mode=mode, rng=np.random.default_rng(seed), flip=True)


@pytest.mark.parametrize("prefetch", [True, False])
def test_stream_gives_the_plain_batches_in_order_and_leaves_the_same_rng_state(prefetch):
    plain, streamed = make_sampler(7), make_sampler(7)
    expected = [plain.batch(3) for _ in range(5)]
    with BatchStream(streamed, batch_size=3, count=5, device="cpu", prefetch=prefetch) as batches:
        got = list(batches)
    assert len(got) == 5
    for (images, labels), (x, y) in zip(expected, got, strict=True):
        assert x.dtype == torch.float32 and y.dtype == torch.int64 and tuple(x.shape) == (3, 1, 8, 16, 16)
        assert np.array_equal(images, x.numpy()) and np.array_equal(labels, y.numpy())
    # the stream drew exactly five batches: a checkpoint taken now saves the plain loop's state
    assert streamed.rng.bit_generator.state == plain.rng.bit_generator.state
    assert not np.array_equal(expected[0][0], expected[1][0])  # batches differ: the check can fail


def test_stream_passes_on_a_sampler_error_and_stops_its_thread():
    sampler = make_sampler(0)

    def broken(n):
        raise RuntimeError("cut failed")

    sampler.batch = broken
    with pytest.raises(RuntimeError, match="cut failed"), BatchStream(sampler, 2, 3, "cpu") as batches:
        list(batches)
    assert batches._pool._shutdown


def test_sampler_checks_label_range_once_at_load():
    volume = np.zeros((4, 8, 8), np.float32)
    for bad, found in ((23, "0..23"), (-1, "-1..0")):
        label = np.zeros((4, 8, 8), np.int16)
        label[1, 2, 3] = bad
        with pytest.raises(ValueError, match=f"case 0: label values must be 0..22, found {found}"):
            PatchSampler([volume], [label], (4, 8, 8), mode="uniform")


def test_labels_prechecked_skips_only_the_range_check():
    loss = build_loss("ath")
    logits = torch.randn(1, 23, 2, 4, 4)
    target = torch.zeros(1, 2, 4, 4, dtype=torch.int64)
    bad = target.clone()
    bad[0, 0, 0, 0] = 30
    with pytest.raises(ValueError, match="target labels must lie in 0..22"):
        loss(logits, bad)
    with labels_prechecked():
        assert torch.equal(loss(logits, target), build_loss("ath")(logits, target))
        with pytest.raises(ValueError, match="target must have dtype torch.int64"):
            loss(logits, target.int())  # the cheap checks stay
    with pytest.raises(ValueError, match="target labels must lie"):
        loss(logits, bad)  # and the range check is back after the block


def test_global_batch_is_divided_over_ranks():
    assert D.per_rank_batch(4, 1) == 4 and D.per_rank_batch(4, 2) == 2 and D.per_rank_batch(4, 4) == 1
    with pytest.raises(ValueError, match="batch_size=4 .* not divisible by the 3 processes"):
        D.per_rank_batch(4, 3)
    with pytest.raises(ValueError, match="not divisible"):
        D.per_rank_batch(2, 4)


def test_rank0_validation_threads_use_the_available_cores():
    before = torch.get_num_threads()
    cores = D.available_cores()
    try:
        torch.set_num_threads(1)  # as torchrun's OMP_NUM_THREADS=1
        with D.main_rank_threads(D.DistInfo(rank=0, world_size=2)) as threads:
            assert threads == cores == torch.get_num_threads()
        assert torch.get_num_threads() == 1
        for info in (D.DistInfo(rank=1, world_size=2), D.DistInfo()):  # other ranks, single process
            with D.main_rank_threads(info) as threads:
                assert threads == 1 == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)

"""Multi-process training under torchrun on CPU (gloo): every rank ends with identical weights."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from sepnet_core.data.io import Geometry, write_image
from sepnet_core.data.sampling import PatchSampler
from sepnet_core.intensity import get_intensity
from sepnet_core.training import load_checkpoint
from sepnet_core.training.data import load_split

SHAPE = (16, 32, 32)

RANK_SCRIPT = textwrap.dedent(
    """
    import dataclasses, hashlib, sys
    from pathlib import Path
    from sepnet_core.training import fit, preset

    data_root, out, hashes, batch = sys.argv[1:5]
    config = dataclasses.replace(preset("smoke", data_root=data_root), epochs=2, batch_size=int(batch))

    def weights_hash(model):
        digest = hashlib.sha256()
        for key, value in sorted(model.state_dict().items()):
            digest.update(key.encode())
            digest.update(value.detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()

    def record(event):
        if event["epoch"] == config.epochs:
            Path(hashes, f"rank{event['rank']}.txt").write_text(weights_hash(event["model"]))

    fit(config, out, callback=record)
    """
)


def write_cases(root: Path, n_train: int = 2, n_valid: int = 1) -> Path:
    """Tiny cases: noise, a body block and two organ blocks."""
    rng = np.random.default_rng(0)
    for split, count in (("train", n_train), ("valid", n_valid)):
        for i in range(count):
            folder = root / split / f"case_{i}"
            folder.mkdir(parents=True)
            image = rng.normal(-1000, 5, SHAPE)
            label = np.zeros(SHAPE, np.uint8)
            image[2:14, 4:28, 4:28] = 40
            image[4:12, 8:14, 8:14], label[4:12, 8:14, 8:14] = 20, 1
            image[4:12, 18:22, 20:24], label[4:12, 18:22, 20:24] = 80, 2
            geometry = Geometry(shape=SHAPE, spacing_mm=(3.0, 2.0, 2.0))
            write_image(folder / "data.nii.gz", image.round().astype(np.int16), geometry)
            write_image(folder / "label.nii.gz", label, geometry)
    return root


def torchrun(tmp_path: Path, batch_size: int) -> tuple[subprocess.CompletedProcess, Path, Path, Path]:
    """Train the smoke preset on two gloo ranks with a global batch of ``batch_size``."""
    data_root = write_cases(tmp_path / "data")
    script = tmp_path / "train_rank.py"
    script.write_text(RANK_SCRIPT)
    hashes, out = tmp_path / "hashes", tmp_path / "run"
    hashes.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(script), str(data_root), str(out), str(hashes), str(batch_size)]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    return result, data_root, out, hashes


@pytest.mark.slow
def test_two_gloo_ranks_end_with_identical_weights_and_share_the_global_batch(tmp_path):
    result, data_root, out, hashes = torchrun(tmp_path, batch_size=2)
    assert result.returncode == 0, result.stderr[-3000:]

    rank0, rank1 = (hashes / "rank0.txt").read_text(), (hashes / "rank1.txt").read_text()
    assert rank0 == rank1

    # rank 0 wrote the run folder; its checkpoint holds the same weights and both ranks' random states
    ckpt = load_checkpoint(out / "last.pt")
    digest = hashlib.sha256()
    for key, value in sorted(ckpt["model_state"].items()):
        digest.update(key.encode())
        digest.update(value.contiguous().numpy().tobytes())
    assert digest.hexdigest() == rank0
    states = ckpt["rng_state"]["ranks"]
    assert len(states) == 2 and states[0]["sampler"] != states[1]["sampler"]  # each rank its own patches
    assert ckpt["step"] == 4 and sorted(p.name for p in out.iterdir()) == [
        "best.pt", "config.json", "last.pt", "log.csv", "summary.json"]
    assert json.loads((out / "summary.json").read_text())["world_size"] == 2

    # the global batch of 2 is one patch per rank and step: each rank's sampler is exactly where a
    # sampler seeded (seed, rank) is after one patch per step (two per step would leave it elsewhere)
    train = load_split(data_root, "train", get_intensity("slf1"), None)
    for rank, state in enumerate(states):
        replay = PatchSampler([c.image for c in train], [c.label for c in train], (8, 32, 32),
                              rng=np.random.default_rng([0, rank]))
        for _ in range(ckpt["step"]):
            replay.batch(1)
        assert state["sampler"] == replay.rng.bit_generator.state


@pytest.mark.slow
def test_a_global_batch_the_ranks_cannot_share_is_refused_before_training(tmp_path):
    result, _, out, _ = torchrun(tmp_path, batch_size=3)
    assert result.returncode != 0
    assert "batch_size: batch_size=3 (the global batch) is not divisible by the 2 processes" in result.stderr
    assert not out.exists()  # refused before anything was written

"""Reproducibility (issue 8): one seed gives byte-identical phantom files and, on CPU, identical training.

A different seed must change the result, so that equality is not an accident of a constant output.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from sepnet_core import cli
from sepnet_core.data.phantom import write_dataset
from sepnet_core.training import fit, load_checkpoint, preset


def file_hashes(root: Path) -> dict[str, str]:
    """SHA-256 of every file under ``root``, by relative path."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_phantom_files_are_byte_identical_for_one_seed(tmp_path, capsys):
    runs = {}
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        argv = ["phantom", str(tmp_path / name), "--cases", "2", "--seed", str(seed), "--profile", "smoke",
                "--split", "train=1,valid=1,test=0", "--workers", "1"]
        assert cli.main(argv) == 0
        runs[name] = file_hashes(tmp_path / name)
    assert set(runs["a"]) == {"dataset.json", "train/phantom_000/data.nii.gz",
                              "train/phantom_000/label.nii.gz", "valid/phantom_001/data.nii.gz",
                              "valid/phantom_001/label.nii.gz"}
    assert runs["a"] == runs["b"]
    differ = {k for k in runs["a"] if runs["a"][k] != runs["c"].get(k)}
    assert {"train/phantom_000/data.nii.gz", "valid/phantom_001/label.nii.gz"} <= differ


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("phantom")
    write_dataset(root, cases=1, seed=3, profile="smoke", split={"train": 1, "valid": 0, "test": 0},
                  workers=1)
    return root


def test_training_on_cpu_is_identical_for_one_seed(data_root, tmp_path):
    """Two fresh smoke runs with seed 0 agree bit for bit; seed 1 does not."""
    runs = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        config = preset("smoke", data_root=str(data_root), seed=seed, iterations_per_epoch=3)
        fit(config, tmp_path / name)
        runs[name] = load_checkpoint(tmp_path / name / "last.pt")["model_state"]
    assert runs["a"].keys() == runs["b"].keys()
    for key, value in runs["a"].items():
        assert torch.equal(value, runs["b"][key]), key
    assert any(not torch.equal(value, runs["c"][key]) for key, value in runs["a"].items())

    summaries = {name: json.loads((tmp_path / name / "summary.json").read_text()) for name in runs}
    assert summaries["a"]["deterministic"] is True and summaries["a"]["device"] == "cpu"
    assert summaries["a"]["config_hash"] == summaries["b"]["config_hash"] != summaries["c"]["config_hash"]
    # Same weights, optimiser state, random states and config: the checkpoint files are the same bytes.
    assert summaries["a"]["checkpoints"] == summaries["b"]["checkpoints"]

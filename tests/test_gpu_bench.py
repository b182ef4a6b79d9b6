"""``benchmarks/gpu.sh`` end to end in its dry mode (tiny sizes, CPU): the GPU check cannot break unseen."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PY": sys.executable}


def run(*args: str, script: str = "benchmarks/gpu.sh", timeout: int = 300) -> subprocess.CompletedProcess:
    command = ["bash", script, *args] if script.endswith(".sh") else [sys.executable, script, *args]
    return subprocess.run(command, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_dry_run_measures_every_part_and_writes_the_tables(tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    result = run("--dry", "--out", str(out), "--work", str(work))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "gpu_bench: done" in result.stdout

    fit = pd.read_csv(out / "gpu_fit.csv")
    assert len(fit) == 1 and fit["status"].tolist() == ["measured"]
    row = fit.iloc[0]
    assert row["steps"] == 8 and row["step_s"] > 0 and 0 < row["gpu_busy_share"] <= 1
    assert row["validation_s_per_case"] > 0 and row["device"] == "cpu (dry check)"
    assert "not a GPU figure" in row["busy_source"]

    steps = pd.read_csv(out / "gpu_train_step.csv")
    assert steps["variant"].tolist() == ["fast", "plain", "compiled"]
    assert (steps["status"] == "measured").all() and (steps["step_s"] > 0).all()

    ensemble = pd.read_csv(out / "gpu_ensemble.csv")
    assert ensemble["variant"].tolist() == ["fast", "plain", "compiled"]
    assert (ensemble["mode"] == "reference").all() and (ensemble["members"] == 2).all()
    assert (ensemble["seconds_per_case"] > 0).all() and (ensemble["labels_present"] > 1).all()
    # the temporary run folder is gone; the phantom cases stay for the next run
    assert sorted(p.name for p in work.iterdir()) == ["gpu_phantom_smoke"]


def test_parts_that_do_not_fit_the_budget_are_recorded_as_skipped(tmp_path):
    result = run("--dry", "--budget-s", "0", "--parts", "train_step", "--out", str(tmp_path),
                 "--work", str(tmp_path / "work"), script="benchmarks/gpu_bench.py")
    assert result.returncode == 0, result.stderr[-3000:]
    table = pd.read_csv(tmp_path / "gpu_train_step.csv")
    assert table["variant"].tolist() == ["fast", "plain", "compiled"]
    assert table["status"].str.startswith("skipped").all()
    assert not (tmp_path / "gpu_fit.csv").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
def test_without_cuda_the_real_run_refuses_in_one_line(tmp_path):
    result = run("--out", str(tmp_path))
    assert result.returncode != 0 and "no CUDA device visible" in result.stderr
    assert list(tmp_path.iterdir()) == []
    direct = run("--out", str(tmp_path), script="benchmarks/gpu_bench.py")
    assert direct.returncode == 2 and direct.stderr.strip().startswith("gpu_bench: error: no CUDA device")


def test_estimate_prints_the_paper_profile_table():
    result = run("--validate-every", "10", script="benchmarks/gpu_estimate.py")
    assert result.returncode == 0, result.stderr[-3000:]
    for needle in ("training step (batch 4", "6-member ensemble, one case",
                   "one training run (40000 steps, validation every 10 epochs)",
                   f"whole paper chain ({_paper_training_stages()} training runs"):
        assert needle in result.stdout


def _paper_training_stages() -> int:
    """Training stages of the paper profile's stage table (what the estimate must count)."""
    from sepnet_core.pipeline.table import stages_for_profile
    stages = stages_for_profile("paper", data_root="/data/structseg")
    return sum(s.name.startswith("train_") for s in stages)

"""A training stage killed mid-run resumes from its last checkpoint when the chain is rerun.

A scratch repository holds the real training template (``notebooks/03_train.ipynb``) and a tiny data
set. The pipeline driver runs it as one stage (smoke preset, 10 epochs); the driver, its stage process
and the notebook's kernel are all SIGKILLed (as by a machine stop) once the run folder has two epochs
logged. Rerunning the driver resumes the run (``book.prepare_run_dir`` finds its own marker) and ends
with exactly the weights of an uninterrupted :func:`~sepnet_core.training.fit` of the same config.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from repo_copy import REPO, copy_repo_parts
from test_training import write_dataset

from sepnet_core.training import apply_overrides, fit, load_checkpoint
from sepnet_core.training import preset as training_preset

OVERRIDES = ["epochs=10", "iterations_per_epoch=3"]
PARAMETERS = {"preset": "smoke", "data_dir": "work/test/data", "run": "r", "run_dir": "work/test/runs/r",
              "model": "sepnet", "intensity": "slf1", "loss": "ath", "alpha": 1.0, "seed": 0, "nproc": 1,
              "overrides": OVERRIDES, "test_split": "test"}
DRIVER = """
import sys
from sepnet_core.pipeline import Stage, run_pipeline
stage = Stage("train_r", "notebooks/03_train.ipynb", "book/pages/train_r.ipynb", {parameters})
report = run_pipeline([stage], sys.argv[1], "test", gpus=(), code_hash="tests")
sys.exit(0 if report.ok else 1)
"""


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (Linux /proc), the kernel in its own session included."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _logged_rows(log: Path) -> int:
    if not log.exists():
        return 0
    with open(log, newline="") as handle:
        return sum(1 for _ in csv.DictReader(handle))


def _driver(root: Path) -> list[str]:
    return [sys.executable, "-c", DRIVER.format(parameters=repr(PARAMETERS)), str(root)]


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the kernel process through /proc")
def test_killed_training_stage_resumes_to_the_uninterrupted_weights(tmp_path):
    root = tmp_path / "repo"
    root.mkdir()
    copy_repo_parts(root, ["_toc.yml", "_config.yml", "notebooks/03_train.ipynb"])
    (root / "sepnet_core").symlink_to(REPO / "sepnet_core")
    data = write_dataset(root / "work" / "test" / "data")
    shutil.copytree(data / "valid", data / "test")
    run_dir = root / PARAMETERS["run_dir"]

    # ---- kill the whole chain (driver, stage process, kernel) once two epochs are checkpointed
    driver = subprocess.Popen(_driver(root), cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline and driver.poll() is None and _logged_rows(run_dir / "log.csv") < 2:
            time.sleep(0.05)
        assert driver.poll() is None, "the chain ended before it could be killed"
        assert _logged_rows(run_dir / "log.csv") >= 2, "training did not start in time"
        victims = _descendants(driver.pid)
        for pid in [driver.pid, *victims]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    finally:
        driver.wait()
    epoch_killed = load_checkpoint(run_dir / "last.pt")["epoch"]
    assert 2 <= epoch_killed < 10
    assert not (root / "book" / "pages" / "train_r.ipynb").exists()  # the stage did not finish

    # ---- rerun the chain: the stage resumes and finishes
    done = subprocess.run(_driver(root), cwd=root, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    page = json.loads((root / "book" / "pages" / "train_r.ipynb").read_text())
    text = "".join("".join(o.get("text", "")) for c in page["cells"] for o in c.get("outputs", []))
    assert "resumed: 10 epochs" in text

    # ---- the same weights as an uninterrupted run
    config = apply_overrides(training_preset("smoke", data_root=str(data)),
                             ["model.name=sepnet", "intensity=slf1", "loss=ath", "seed=0", "alpha=1",
                              *OVERRIDES])
    fit(config, tmp_path / "uninterrupted")
    resumed = load_checkpoint(run_dir / "last.pt")
    whole = load_checkpoint(tmp_path / "uninterrupted" / "last.pt")
    assert resumed["step"] == whole["step"] == 30
    for key, value in whole["model_state"].items():
        assert torch.equal(resumed["model_state"][key], value), key

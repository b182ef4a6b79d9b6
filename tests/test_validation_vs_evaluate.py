"""The Dice that training logs for its best checkpoint is what a user gets from the command line:
``sepnet train`` -> ``sepnet predict`` on each validation case with ``best.pt`` -> ``sepnet evaluate``
reproduces the per-organ validation Dice of ``log.csv`` (same windows, same grid, same metric, same
precision: :func:`sepnet_core.device.resolve_amp` decides for validation and predict alike). Both
settings run: the default (``amp`` true in the config, no flag to predict: bf16 on a CPU with native
bf16, float32 elsewhere) and float32 (``amp=false`` in training, ``--no-amp`` to predict)."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from sepnet_core import cli
from sepnet_core.data.phantom import write_dataset
from sepnet_core.organs import ORGANS


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["default", "float32"])
def test_evaluate_reproduces_the_validation_log(tmp_path, precision):
    train_amp, predict_amp = (["--set", "amp=false"], ["--no-amp"]) if precision == "float32" else ([], [])
    data = tmp_path / "data"
    write_dataset(data, cases=4, seed=3, profile="smoke", split={"train": 2, "valid": 2}, workers=1)
    run = tmp_path / "run"
    torch.set_num_threads(1)
    # A few steps: the network is poor, but labels some voxels of several organs, so the Dice values
    # compared are not all 0 or NaN.
    assert cli.main(["train", "--preset", "smoke", "--data-root", str(data), "--out", str(run),
                     "--set", "epochs=3", "--set", "iterations_per_epoch=12", "--set", "model.base=4",
                     "--set", "optim.lr=0.01", *train_amp]) == 0
    log = pd.read_csv(run / "log.csv")
    validated = log.dropna(subset=["val_mean_dice"])
    best = validated.loc[validated["val_mean_dice"].idxmax()]

    predictions = tmp_path / "pred"
    cases = sorted(p for p in (data / "valid").iterdir() if p.is_dir())
    for case in cases:
        assert cli.main(["predict", str(case / "data.nii.gz"), "-m", str(run / "best.pt"),
                         "-o", str(predictions / case.name), "--device", "cpu", *predict_amp]) == 0
    metrics = tmp_path / "metrics.csv"
    assert cli.main(["evaluate", str(predictions), str(data / "valid"), "-o", str(metrics)]) == 0

    table = pd.read_csv(metrics)
    assert sorted(table["case"].unique()) == [c.name for c in cases]
    per_organ = table.groupby("organ")["dice"].mean()
    compared = 0
    for organ in ORGANS:
        logged = float(best[f"dice_{organ.key}"])
        evaluated = float(per_organ.get(organ.key, math.nan))
        if math.isnan(logged):
            assert math.isnan(evaluated), organ.key
            continue
        assert evaluated == pytest.approx(logged, abs=1e-6), organ.key
        compared += 1
    assert compared >= 10
    assert (table["dice"] > 0).sum() >= 3, "every Dice is 0: the comparison would be vacuous"
    assert table.groupby("organ")["dice"].mean().mean() == pytest.approx(best["val_mean_dice"], abs=1e-6)
